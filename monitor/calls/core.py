"""The tracker's core: the calls it holds, the queries other parts read them through, and the
transitions every input shares (fail, activate, hold and release an avatar's departure, end),
told to listeners.

An avatar sent away (removed, room deleted) from a call with a voice agent, before the agent has
been seen to end the call, is held for up to AGENT_HANGUP_WINDOW: the agent's own end (its leave,
or its session closing) often arrives just after, and then the call ended normally. One that
nothing explains yet, in a call whose voice agent reports (instrument()), is held for up to
AVATAR_WORD_WINDOW for the avatar's own word, which that agent forwards by HTTP (so it can come
after the leave's webhook)."""

from __future__ import annotations

import fnmatch
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, Protocol

from avatar_monitor_agent.roles import Role, RoleClassifier

from monitor.calls.departures import (
    AGENT_HANGUP_WINDOW,
    AVATAR_WORD_WINDOW,
    ROOM_END_API_DELETE,
    SERVER_REASONS,
    Departure,
    DepartureFacts,
    classify,
)
from monitor.calls.listener import CallListener
from monitor.calls.model import Call, CallState, EndedRooms, MediaOff, silence_seconds
from monitor.intake.events import Event, Participant
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
from monitor.reports.signals import Signal

log = logging.getLogger(__name__)
P = ParamSpec("P")

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
    """Reports held for calls not started yet (BackendBridge)."""

    def take_waiting(self, call: Call) -> list[tuple[Signal, float]]: ...
    def drop_waiting(self, call: Call) -> None: ...


class _NoWaitingReports:
    def take_waiting(self, call: Call) -> list[tuple[Signal, float]]:
        return []

    def drop_waiting(self, call: Call) -> None:
        pass


class TrackerCore:
    """The tracked calls, their queries, and the transitions every input shares (fail, activate,
    release a held departure, end, forget), told to listeners."""

    def __init__(self, roles: RoleClassifier, settings: TrackerSettings,
                 listeners: Iterable[CallListener] = ()) -> None:
        self._roles = roles
        self.settings = settings
        self._announces_ready = ReadyAnnouncers(settings.ready_identities,
                                                settings.ready_providers)
        self._listeners = list(listeners)
        # transition -> the listeners' methods that do something for it (built on first use)
        self._sinks: dict[str, list[Callable[..., None]]] = {}
        self._calls: dict[str, Call] = {}
        self._sid_by_name: dict[str, str] = {}  # room name -> sid of its latest tracked call
        self._counts: dict[CallState, int] = dict.fromkeys(CallState, 0)
        self._deadlines: list[tuple[float, str]] = []
        self._lingering: deque[tuple[float, str]] = deque()
        self._holding: deque[tuple[float, str]] = deque()  # (local release time, room sid)
        self._awaiting_word: deque[tuple[float, str]] = deque()  # the same, AVATAR_WORD_WINDOW
        # Rooms found gone, ended after ROOM_GONE_GRACE: (local time, room sid, server time).
        self._going: deque[tuple[float, str, float]] = deque()
        # Rooms whose call ended, remembered long after eviction (at least as many as calls
        # are tracked), so late webhooks and listings do not revive them.
        self._ended_rooms = EndedRooms(max(settings.max_calls, 10_000))
        self._now = 0.0
        # Server time this process started (a function: the server's clock is measured only
        # once webhooks arrive): calls under way before it count from then on.
        self.started_at: Callable[[], float] = lambda: 0.0
        # Reports that arrived before their call started (the bridge's buffer): applied once
        # the call has started and every listener has heard so; dropped if it ends unstarted.
        self.reports: WaitingReports = _NoWaitingReports()
        self._counted_from = 0.0  # for calls made now (set while reconciling)
        # The last RoomService listing: room sids live then, and when it was asked.
        self._listed: set[str] = set()
        self._listed_at: float | None = None

    # -- queries (the tracker's door: callers read calls through these) ---------------------

    def call(self, room_sid: str) -> Call | None:
        """The tracked call with this room sid (live, or lingering after its end)."""
        return self._calls.get(room_sid)

    def call_in_room(self, room_name: str, room_sid: str | None = None) -> Call | None:
        """The call with that sid in that room; without a sid, the room's latest call."""
        if room_sid:
            call = self._calls.get(room_sid)
            return call if call is not None and call.room_name == room_name else None
        sid = self._sid_by_name.get(room_name)
        return self._calls.get(sid) if sid else None

    def has_ended(self, room_sid: str) -> bool:
        """Whether the latest call with this room sid has ended (tracked or long evicted)."""
        call = self._calls.get(room_sid)
        if call is not None:
            return call.state is CallState.ENDED
        return self._ended_rooms.ended_at(room_sid) is not None

    def open_calls(self) -> list[Call]:
        """The calls that have not ended."""
        return [call for call in self._calls.values() if call.ended_at is None]

    def role_of(self, participant: Participant) -> Role:
        return self._roles.role_of(participant)

    @property
    def tracked(self) -> int:
        """Calls held in memory, ended ones lingering included."""
        return len(self._calls)

    @property
    def counts(self) -> Mapping[CallState, int]:
        """Tracked calls by state."""
        return self._counts

    # -- transitions shared by every input ---------------------------------------------------

    def _fail(self, call: Call, cause: str, at: float | None = None) -> None:
        if at is None:
            at = call.deadline if call.deadline is not None else self._now
        call.startup_failure_counted = True
        if call.state is CallState.RINGING:
            call.deadline = None
            self._set_state(call, CallState.FAILED)
        self._emit(CallListener.startup_failed, call, cause, at)

    def _activate(self, call: Call, latency: float) -> None:
        call.deadline = None
        self._set_state(call, CallState.ACTIVE)
        self._emit(CallListener.avatar_joined, call, max(latency, 0.0))

    def _may_wait_for_agent(self, call: Call) -> bool:
        """Whether the held leave, not yet an agent hang-up, could become one when the agent's end
        arrives (it often comes just after the avatar is removed or the room deleted)."""
        held = call.held
        if held is None or call.agent_ended_at is not None:
            return False
        if not (call.avatar_agent or call.agent_seen):
            return False  # no voice agent in this call: nothing will come to wait for
        if call.room_finished and call.room_end_reason != ROOM_END_API_DELETE:
            return False
        if held.reason not in AGENT_MAY_HAVE_ENDED or call.session_close_reason == "error":
            return False
        departure = classify(self._facts(call, held.reason, held.session_seconds, held.left))
        return departure in (Departure.REMOVED, Departure.SERVER)

    def _hold(self, call: Call) -> None:
        """Release the avatar's held leave now, or hold it for the agent's end or the avatar's
        word (see the module's docstring)."""
        if self._may_wait_for_agent(call):
            self._holding.append((self._now + AGENT_HANGUP_WINDOW, call.room_sid))
        elif self._may_wait_for_word(call):
            self._awaiting_word.append((self._now + AVATAR_WORD_WINDOW, call.room_sid))
        else:
            self._release(call)

    def _may_wait_for_word(self, call: Call) -> bool:
        """Whether the held leave is unexplained so far, in a call whose voice agent may still
        forward its avatar's word: one that reports its state runs instrument(), which does."""
        held = call.held
        if held is None or call.speech_reported_at is None:
            return False
        facts = self._facts(call, held.reason, held.session_seconds, held.left)
        return classify(facts) is Departure.UNKNOWN

    def _release_due(self, now: float) -> None:
        """Release the held leaves whose wait is over."""
        for holding in (self._holding, self._awaiting_word):
            while holding and holding[0][0] <= now:
                _, sid = holding.popleft()
                call = self._calls.get(sid)
                if call is not None and call.held is not None:
                    self._release(call)

    def _release(self, call: Call) -> None:
        """Classify the held leave with what is known now, and end the call."""
        held = call.held
        if held is None:
            return
        facts = self._facts(call, held.reason, held.session_seconds, held.left)
        call.held = None
        if call.state is CallState.ACTIVE:
            log.debug("avatar left %s: %s", call.room_name, facts)
            self._emit(CallListener.avatar_left, call, classify(facts), held.session_seconds,
                       held.at)
        self._end(call, held.at)

    def _agent_ended(self, call: Call, at: float) -> None:
        if call.agent_ended_at is None:
            call.agent_ended_at = at
        if call.held is not None:
            self._release(call)

    def _end_poor_quality(self, call: Call, at: float) -> None:
        if call.poor_quality_since is not None:
            seconds = max(at - call.poor_quality_since, 0.0)
            self._emit(CallListener.poor_quality, call, call.poor_quality, seconds)
        call.poor_quality, call.poor_quality_since = "", None

    def _close_media(self, call: Call, at: float) -> None:
        """The avatar left or the call ended (`at`, this machine's clock): media still off
        never came back."""
        if call.media_off is not None:
            for kind, off in list(call.media_off.items()):
                self._end_media(call, kind, off, at, restored=False)

    def _end_media(self, call: Call, kind: str, off: MediaOff, at: float, restored: bool
                   ) -> None:
        """The avatar's `kind` is off no more: counted if it outlasted the grace, and then its
        length told."""
        if call.media_off is not None:
            call.media_off.pop(kind, None)
            if not call.media_off:
                call.media_off = None
        self._count_media(call, kind, off, at)
        if off.counted:
            self._emit(CallListener.media_interruption_ended, call, kind, off.how, off.since,
                       max(at - off.since, 0.0), restored)

    def _count_media(self, call: Call, kind: str, off: MediaOff, at: float) -> None:
        """Count the interruption once, if it has outlasted the grace at `at` in an active
        call (the caller knows the avatar was still there then)."""
        if off.counted or call.state is not CallState.ACTIVE:
            return
        if at - off.since >= self.settings.interruption_grace:
            off.counted = True
            self._emit(CallListener.media_interrupted, call, kind, off.how, off.since)

    def _call_for(self, event: Event, replace_ended: bool = False) -> Call:
        call = self._calls.get(event.room_sid)
        if call is not None and not (replace_ended and call.state is CallState.ENDED):
            if call.room_created_at is None:
                call.room_created_at = event.room_created_at
            return call
        if call is not None:
            self._forget(call)
        while len(self._calls) >= self.settings.max_calls:
            oldest = self._calls[next(iter(self._calls))]
            if oldest.state is not CallState.ENDED:
                self._attended(oldest, self._now)
                self._emit(CallListener.call_evicted, oldest)
            self._forget(oldest)
        call = Call(event.room_sid, event.room_name, event.room_created_at, tracked_at=self._now,
                    counted_from=self._counted_from)
        self._calls[call.room_sid] = call
        self._sid_by_name[call.room_name] = call.room_sid
        self._counts[CallState.PENDING] += 1
        return call

    def _facts(self, call: Call, reason: str, session: float | None, at: float
               ) -> DepartureFacts:
        silence = silence_seconds(call, at)
        error_age = None
        if call.unrecoverable_error_at is not None:
            error_age = max(at - call.unrecoverable_error_at, 0.0)
        left = call.held.at if call.held is not None else at  # server time, when known
        agent_ended_before = None
        if call.agent_ended_at is not None:
            agent_ended_before = left - call.agent_ended_at
        user_left_before = None
        if call.held is not None and call.user_left_first and call.users_left_at is not None:
            user_left_before = max(left - call.users_left_at, 0.0)
        agent_lost_before = None
        if call.agent_lost_at is not None and call.held is not None:
            agent_lost_before = left - call.agent_lost_at
        return DepartureFacts(
            disconnect_reason=reason,
            session_seconds=session,
            user_left_first=call.user_left_first,
            session_timeout=self.settings.session_timeout,
            timeout_tolerance=self.settings.timeout_tolerance,
            silence_seconds=silence,
            idle_timeout=self.settings.idle_timeout,
            unrecoverable_error_age=error_age,
            agent_ended_before=agent_ended_before,
            session_close_reason=call.session_close_reason,
            room_end_reason=call.room_end_reason,
            user_left_before=user_left_before,
            user_connection_lost=call.user_connection_lost,
            agent_lost_before=agent_lost_before,
            agent_lost_reason=call.agent_lost_reason,
            avatar_said_idle_timeout=call.avatar_said_idle_timeout,
        )

    def _finish_without_departure(self, call: Call) -> None:
        """The room finished and the avatar's leave never arrived."""
        facts = self._facts(call, "unknown_reason", None, self._now)
        if call.state is CallState.ACTIVE:
            self._emit(CallListener.avatar_left, call, classify(facts), 0.0, self._now)
        self._end(call, self._now)

    def _alone(self, call: Call, since: float) -> None:
        """The avatar is in the room with no user from `since` (server time)."""
        if call.unattended_since is None:
            call.unattended_since = since
            self._emit(CallListener.avatar_alone, call, since)

    def _attended(self, call: Call, at: float) -> None:
        """The avatar's time alone in the room ends at `at` (server time): a user came, the
        avatar left, or the call ended."""
        since, call.unattended_since = call.unattended_since, None
        if since is not None:
            self._emit(CallListener.avatar_unattended, call, since, max(at, since))

    def _end(self, call: Call, at: float) -> None:
        if call.state is CallState.ENDED:
            return
        self._attended(call, at)
        self._close_media(call, self._now)  # the avatar's leave closed it, unless it never came
        self._set_state(call, CallState.ENDED)
        call.ended_at = at
        self._ended_rooms.add(call.room_sid, at)
        self.reports.drop_waiting(call)  # reports for a call that never started: not a later one's
        self._emit(CallListener.call_ended, call, at)
        self._lingering.append((self._now + self.settings.linger, call.room_sid))

    def _forget(self, call: Call) -> None:
        if self._calls.get(call.room_sid) is call:
            del self._calls[call.room_sid]
            if self._sid_by_name.get(call.room_name) == call.room_sid:
                del self._sid_by_name[call.room_name]
            self._counts[call.state] -= 1
            if call.state is CallState.ENDED:
                self._emit(CallListener.call_forgotten, call)

    def _set_state(self, call: Call, state: CallState) -> None:
        self._counts[call.state] -= 1
        self._counts[state] += 1
        call.state = state

    def add_listener(self, listener: CallListener) -> None:
        """Receive transitions from now on, after the listeners already there."""
        self._listeners.append(listener)
        self._sinks.clear()

    def _emit(self, transition: Callable[Concatenate[CallListener, P], None],
              *args: P.args, **kwargs: P.kwargs) -> None:
        """Tell the listeners that override `transition` (a CallListener method) what changed."""
        name = transition.__name__
        sinks = self._sinks.get(name)
        if sinks is None:
            sinks = self._sinks[name] = self._overriding(name)
        for sink in sinks:
            try:
                sink(*args, **kwargs)
            except Exception:  # one broken sink must not stop the others or the intake
                log.exception("%s failed in %s", name,
                              type(getattr(sink, "__self__", sink)).__name__)

    def _overriding(self, transition: str) -> list[Callable[..., None]]:
        """The bound methods of listeners that override the no-op for `transition`: calls to
        the rest are skipped on the hot path."""
        noop = getattr(CallListener, transition)
        return [getattr(listener, transition) for listener in self._listeners
                if getattr(type(listener), transition, noop) is not noop]
