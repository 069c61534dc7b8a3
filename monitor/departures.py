"""Why an avatar left a call: an ordered list of rules over the facts known at its departure.

The first rule that matches names the departure. Rules for richer signals (idle timeout, pipeline
errors, from the room observer) slot into `RULES` at the place their priority says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Departure(StrEnum):
    USER_HANGUP = "user_hangup"
    PIPELINE_ERROR = "pipeline_error"
    IDLE_TIMEOUT = "idle_timeout"
    SESSION_TIMEOUT = "session_timeout"
    REMOVED = "removed"
    SERVER = "server"
    NETWORK = "network"
    UNKNOWN = "unknown"


SERVER_REASONS = frozenset({"room_deleted", "room_closed", "server_shutdown"})
NETWORK_REASONS = frozenset(
    {"signal_close", "connection_timeout", "media_failure", "state_mismatch", "join_failure"}
)


@dataclass(slots=True, frozen=True)
class DepartureFacts:
    """What is known when the avatar leaves. Durations come from server timestamps."""

    disconnect_reason: str
    session_seconds: float | None
    user_left_first: bool
    session_timeout: float
    timeout_tolerance: float
    # From the room observer; None when the call was not observed.
    silence_seconds: float | None = None
    idle_timeout: float = 60.0
    unrecoverable_error_age: float | None = None  # seconds from the last such error to leaving


# An unrecoverable pipeline error this long before the avatar left is taken as the reason.
PIPELINE_ERROR_WINDOW = 30.0


Rule = Callable[[DepartureFacts], Departure | None]


def removed(facts: DepartureFacts) -> Departure | None:
    return Departure.REMOVED if facts.disconnect_reason == "participant_removed" else None


def server(facts: DepartureFacts) -> Departure | None:
    return Departure.SERVER if facts.disconnect_reason in SERVER_REASONS else None


def user_hangup(facts: DepartureFacts) -> Departure | None:
    return Departure.USER_HANGUP if facts.user_left_first else None


def pipeline_error(facts: DepartureFacts) -> Departure | None:
    age = facts.unrecoverable_error_age
    return Departure.PIPELINE_ERROR if age is not None and age <= PIPELINE_ERROR_WINDOW else None


def idle_timeout(facts: DepartureFacts) -> Departure | None:
    if facts.silence_seconds is None or facts.unrecoverable_error_age is not None:
        return None
    near = abs(facts.silence_seconds - facts.idle_timeout) <= facts.timeout_tolerance
    return Departure.IDLE_TIMEOUT if near else None


def session_timeout(facts: DepartureFacts) -> Departure | None:
    if facts.session_seconds is None or facts.session_timeout <= 0:
        return None
    near = abs(facts.session_seconds - facts.session_timeout) <= facts.timeout_tolerance
    return Departure.SESSION_TIMEOUT if near else None


def network(facts: DepartureFacts) -> Departure | None:
    return Departure.NETWORK if facts.disconnect_reason in NETWORK_REASONS else None


# Root causes first: a dead pipeline (the user may hang up on a mute avatar, the backend may then
# remove it), then the user hanging up (after which livekit-server closes the room on the agents,
# or the backend removes them). Then explicit server-side ends, then the avatar's own timeouts (a
# process killed at its session limit may still look like a network drop).
RULES: tuple[Rule, ...] = (
    pipeline_error, user_hangup, removed, server, idle_timeout, session_timeout, network)


def classify(facts: DepartureFacts, rules: tuple[Rule, ...] = RULES) -> Departure:
    """The departure named by the first matching rule, or UNKNOWN."""
    for rule in rules:
        departure = rule(facts)
        if departure is not None:
            return departure
    return Departure.UNKNOWN
