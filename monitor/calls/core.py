"""What the tracker's parts share: its settings, its limits and windows (what each means: docs/
tracking.md, "Invariants"), which avatars announce readiness, and the reports waiting for calls
not started yet.

An avatar sent away (removed, room deleted) from a call with a voice agent, before the agent has
been seen to end the call, is held for up to AGENT_HANGUP_WINDOW: the agent's own end (its leave,
or its session closing) often arrives just after, and then the call ended normally. One that
nothing explains yet, in a call whose voice agent reports (instrument()), is held for up to
AVATAR_WORD_WINDOW for the avatar's own word, which that agent forwards by HTTP (so it can come
after the leave's webhook)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Protocol

from monitor.calls.departures import SERVER_REASONS
from monitor.calls.inputs import Participant, Signal
from monitor.calls.model import Call
from monitor.limits import (
    IDLE_TIMEOUT,
    INTERRUPTION_GRACE,
    JOIN_TIMEOUT,
    MAX_CALLS,
    READY_IDENTITIES,
    READY_PROVIDERS,
    SESSION_TIMEOUT,
    TIMEOUT_TOLERANCE,
)

# Users remembered per call (to tell who hung up, to ignore reordered joins); more are untracked.
# The same bound holds for the other participants (agents, recorders) whose leaves count once.
MAX_USERS_PER_CALL = 32
# How long a join that arrives after its deadline waits for the webhooks behind it.
LATE_JOIN_GRACE = 1.0
# A webhook's createdAt has whole seconds: an end time taken from it may be up to 1 s early.
CREATED_AT_PRECISION = 1.0
# Disconnect reasons that say the server ended a participant's stay, not the participant.
SENT_AWAY = SERVER_REASONS | {"participant_removed"}
# A room found gone ends its call this long after: the webhooks queued behind the
# listing that found it gone (livekit-server sends them in order) arrive first.
ROOM_GONE_GRACE = 2.0
# Avatar departures that the voice agent's end, seen just after, can show to be an agent hang-up
# (an avatar that leaves by itself follows an agent that has already left).
AGENT_MAY_HAVE_ENDED = frozenset({"participant_removed", "room_deleted"})


@dataclass(slots=True, frozen=True)
class TrackerSettings:
    join_timeout: float = JOIN_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    session_timeout: float = SESSION_TIMEOUT
    timeout_tolerance: float = TIMEOUT_TOLERANCE
    max_calls: int = MAX_CALLS
    linger: float = 10.0
    interruption_grace: float = INTERRUPTION_GRACE  # the avatar's media off longer is counted
    # Avatars that announce readiness (bot_ready): identity globs, lk.avatar_provider values.
    ready_identities: tuple[str, ...] = READY_IDENTITIES
    ready_providers: tuple[str, ...] = READY_PROVIDERS


class ReadyAnnouncers:
    """Which avatars say bot_ready once their video is visible: an identity matching one of the
    globs, or an lk.avatar_provider among the providers."""

    def __init__(self, identities: tuple[str, ...], providers: tuple[str, ...]) -> None:
        pattern = "|".join(fnmatch.translate(glob) for glob in identities)
        self._identity = re.compile(pattern) if pattern else None
        self._providers = frozenset(providers)

    def __call__(self, participant: Participant) -> bool:
        return ((bool(participant.avatar_provider)
                 and participant.avatar_provider in self._providers)
                or (self._identity is not None
                    and self._identity.match(participant.identity) is not None))


class WaitingReports(Protocol):
    """Reports held for calls not started yet (monitor.reports.pending.PendingReports)."""

    def take_waiting(self, call: Call) -> list[tuple[Signal, float]]: ...
    def drop_waiting(self, call: Call) -> None: ...


class NoWaitingReports:
    """No reports wait: a tracker with no bridge."""

    def take_waiting(self, call: Call) -> list[tuple[Signal, float]]:
        return []

    def drop_waiting(self, call: Call) -> None:
        pass
