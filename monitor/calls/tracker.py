"""Call state: a synchronous state machine over typed webhook events, with server timestamps.

One tracked call per room sid. A call starts when its first user joins (ringing) and becomes
active when the avatar joins. Listeners (metrics, traces) receive the transitions; the tracker
itself knows nothing of Prometheus or HTTP.

Lifecycle: pending (room known, no user yet) -> ringing -> active -> ended, with ringing -> failed
when no avatar joins within the join timeout (a failed call still turns active if the avatar joins
late) and ringing -> ended when every user leaves first (abandoned). Ended calls linger briefly to
absorb late or reordered webhooks, then are evicted.

An avatar sent away (removed, room deleted) before the voice agent has been seen to end the call
is held for up to AGENT_HANGUP_WINDOW: the agent's own end (its leave, or its
session closing) often arrives just after, and then the call ended normally.
"""

from __future__ import annotations

import heapq
import logging
import sys
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Concatenate, ParamSpec

from monitor.calls.departures import (
    AGENT_ENDED_REASONS,
    AGENT_HANGUP_WINDOW,
    ROOM_END_API_DELETE,
    SERVER_REASONS,
    Departure,
    DepartureFacts,
    classify,
)
from monitor.calls.roles import Role, RoleClassifier
from monitor.intake.events import Event, Participant
from monitor.limits import IDLE_TIMEOUT, JOIN_TIMEOUT, SESSION_TIMEOUT, TIMEOUT_TOLERANCE
from monitor.reports.signals import (
    AgentLatency,
    PipelineError,
    SessionClosed,
    Signal,
    StartupFailureMessage,
)

log = logging.getLogger("monitor.state")
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


class CallState(StrEnum):
    PENDING = "pending"
    RINGING = "ringing"
    ACTIVE = "active"
    FAILED = "failed"
    ENDED = "ended"


@dataclass(slots=True)
class Call:
    """What is tracked of one call. Times are unix seconds from the server."""

    room_sid: str
    room_name: str
    room_created_at: float | None
    state: CallState = CallState.PENDING
    tracked_at: float = 0.0  # local clock: when this record was made
    started_at: float | None = None
    deadline: float | None = None
    avatar_sid: str | None = None
    avatar_identity: str | None = None
    avatar_joined_at: float | None = None
    avatar_left: bool = False
    tracks_seen: int = 0  # bit per track kind: audio 1, video 2
    users: dict[str, bool] = field(default_factory=dict)  # user sid -> still present
    user_left_first: bool = False
    room_finished: bool = False
    startup_failure_counted: bool = False
    ended_at: float | None = None  # server time the call ended
    # Agents and other non-user participants: sid -> still present (a retried leave counts once).
    others: dict[str, bool] | None = None
    # Server time from which this call's transitions are counted in metrics: a call rebuilt
    # from a RoomService listing after a restart was counted up to then by the previous process.
    counted_from: float = 0.0
    # First seen through the leave of a user who joined before this process started, with no
    # listing to say whether the avatar had joined: its startup outcome cannot be known.
    avatar_unknown: bool = False
    # From the room observer (local clock, unix seconds); unknown until it watches the room.
    observed_at: float | None = None
    speaking: bool = False
    first_speech_at: float | None = None
    last_speech_at: float | None = None
    unrecoverable_error_at: float | None = None
    poor_quality_since: float | None = None
    poor_quality: str = ""
    # The voice agent the avatar publishes for (lk.publish_on_behalf), when it said so.
    avatar_agent: str = ""
    # When the voice agent ended the call (server time of its own leave, or its session closing
    # for a non-error reason), and how its session closed, when it reported that.
    agent_ended_at: float | None = None
    session_close_reason: str | None = None
    room_end_reason: str | None = None
    held: HeldDeparture | None = None  # the avatar's leave, waiting for the agent's end


@dataclass(slots=True, frozen=True)
class HeldDeparture:
    """An avatar's leave kept back until the voice agent's end is seen, or the wait is over."""

    reason: str
    session_seconds: float
    at: float  # server time of the leave
    left: float  # the leave on this machine's clock (see CallTracker._avatar_left)


_TRACK_BIT = {"audio": 1, "video": 2}


class EndedRooms:
    """Room sids whose call ended, with the server time it ended: a late or retried webhook for
    a finished call is recognised by its room sid long after the call itself was evicted.
    Bounded; the oldest are forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ended: OrderedDict[str, float] = OrderedDict()

    def add(self, room_sid: str, ended_at: float) -> None:
        self._ended[room_sid] = ended_at
        self._ended.move_to_end(room_sid)
        if len(self._ended) > self._capacity:
            self._ended.popitem(last=False)

    def ended_at(self, room_sid: str) -> float | None:
        return self._ended.get(room_sid)

    def __contains__(self, room_sid: object) -> bool:
        return room_sid in self._ended

    def __len__(self) -> int:
        return len(self._ended)


class CallListener:
    """Receives call transitions. Subclasses override what they need; every method is a no-op.
    Times (`at`, `call.started_at`, `call.avatar_joined_at`) are server unix seconds."""

    def call_started(self, call: Call) -> None: ...
    def participant_joined(self, call: Call, role: Role, participant: Participant,
                           at: float) -> None: ...
    def avatar_joined(self, call: Call, latency: float) -> None: ...
    def startup_failed(self, call: Call, cause: str, at: float) -> None: ...
    def call_abandoned(self, call: Call, at: float) -> None: ...
    def first_track(self, call: Call, kind: str, delay: float, at: float) -> None: ...
    def participant_left(self, call: Call | None, role: Role, participant: Participant,
                         at: float) -> None: ...
    def avatar_left(self, call: Call, departure: Departure, session_seconds: float,
                    at: float) -> None: ...
    def call_ended(self, call: Call, at: float) -> None: ...  # also calls that never started
    def call_evicted(self, call: Call) -> None: ...
    def first_speech(self, call: Call, delay: float, at: float) -> None: ...
    def pipeline_error(self, call: Call, error: PipelineError, at: float) -> None: ...
    def session_closed(self, call: Call, reason: str, at: float) -> None: ...
    def agent_latency(self, call: Call, latency: AgentLatency, at: float) -> None: ...
    def backend_message(self, call: Call, message: str, at: float) -> None: ...
    def observation_started(self, call: Call, at: float) -> None: ...
    def poor_quality(self, call: Call, quality: str, seconds: float) -> None: ...
    def late_event(self, room_sid: str, event: Event) -> None: ...  # for a finished call
    def reconciled(self, call: Call, action: str, participant: Participant | None,
                   at: float) -> None: ...  # a join or leave taken from a RoomService listing


@dataclass(slots=True, frozen=True)
class TrackerSettings:
    join_timeout: float = JOIN_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    session_timeout: float = SESSION_TIMEOUT
    timeout_tolerance: float = TIMEOUT_TOLERANCE
    max_calls: int = 50_000
    linger: float = 10.0


class CallTracker:
    """Applies events to calls and tells listeners what changed."""

    def __init__(self, roles: RoleClassifier, settings: TrackerSettings,
                 listeners: Iterable[CallListener] = ()) -> None:
        self.roles = roles
        self.settings = settings
        self.listeners = list(listeners)
        # transition -> the listeners' methods that do something for it (built on first use)
        self._sinks: dict[str, list[Callable[..., None]]] = {}
        self.calls: dict[str, Call] = {}
        self.sid_by_name: dict[str, str] = {}  # room name -> sid of its latest tracked call
        self.counts: dict[CallState, int] = dict.fromkeys(CallState, 0)
        self._deadlines: list[tuple[float, str]] = []
        self._lingering: deque[tuple[float, str]] = deque()
        self._holding: deque[tuple[float, str]] = deque()  # (local release time, room sid)
        # Rooms found gone, ended after ROOM_GONE_GRACE: (local time, room sid, server time).
        self._going: deque[tuple[float, str, float]] = deque()
        # Rooms whose call ended, remembered long after eviction (at least as many as calls
        # are tracked), so late webhooks and listings do not revive them.
        self.ended_rooms = EndedRooms(max(settings.max_calls, 10_000))
        self._now = 0.0
        # Server time this process started (a function: the server's clock is measured only
        # once webhooks arrive): calls under way before it count from then on.
        self.started_at: Callable[[], float] = lambda: 0.0
        self._counted_from = 0.0  # for calls made now (set while reconciling)
        # The last RoomService listing: room sids live then, and when it was asked.
        self._listed: set[str] = set()
        self._listed_at: float | None = None
        self._handlers: dict[str, Callable[[Event], None]] = {
            "room_started": self._room_started,
            "room_finished": self._room_finished,
            "participant_joined": self._participant_joined,
            "participant_left": self._participant_left,
            "participant_connection_aborted": self._participant_left,
            "track_published": self._track_published,
        }

    # -- input -----------------------------------------------------------------------------

    def apply(self, event: Event, now: float) -> None:
        """Apply one event; `now` is the local clock, used only for housekeeping."""
        handler = self._handlers.get(event.name)
        if handler is not None and event.room_sid:
            self._now = now
            if self._is_late(event):
                self._emit(CallListener.late_event, event.room_sid, event)
                return
            handler(event)

    def _is_late(self, event: Event) -> bool:
        """An event for a call that has ended and been evicted: it happened (by server time)
        before the call ended, so it changes nothing but the record. A participant who joined
        after the end starts a new call in the same room."""
        if event.room_sid in self.calls:
            return False
        participant = event.participant
        ended_at = self.ended_rooms.ended_at(event.room_sid)
        if ended_at is None:
            # Not tracked: late if a listing made after it happened no longer had its room, and
            # it happened before this process (or, with a state file, its predecessor's last
            # run) began counting: the call it belongs to ended and was counted then. What
            # happened after is counted now, even for a room gone (an outage): the observer
            # checks that a room exists before it joins.
            if self._listed_at is None or event.room_sid in self._listed:
                return False
            happened = participant.joined_at if participant and participant.joined_at \
                else event.created_at
            return happened + CREATED_AT_PRECISION < min(self._listed_at, self.started_at())
        if participant is not None and participant.joined_at is not None:
            return participant.joined_at <= ended_at + CREATED_AT_PRECISION
        return event.created_at <= ended_at + CREATED_AT_PRECISION

    def expire(self, now: float) -> None:
        """Fire join deadlines that have passed and evict calls that finished lingering."""
        self._now = now
        while self._deadlines and self._deadlines[0][0] <= now:
            _, sid = heapq.heappop(self._deadlines)
            call = self.calls.get(sid)
            if call is not None and call.state is CallState.RINGING and \
                    call.deadline is not None and call.deadline <= now:
                self._fail(call, "join_timeout")
        while self._holding and self._holding[0][0] <= now:
            _, sid = self._holding.popleft()
            call = self.calls.get(sid)
            if call is not None and call.held is not None:
                self._release(call)
        while self._going and self._going[0][0] <= now:
            _, sid, gone_at = self._going.popleft()
            self._end_gone_room(sid, gone_at)
        while self._lingering and self._lingering[0][0] <= now:
            _, sid = self._lingering.popleft()
            call = self.calls.get(sid)
            if call is None:
                continue
            unknown_ended = call.avatar_unknown and call.state is CallState.FAILED
            if call.held is not None:
                self._release(call)
            elif call.state is not CallState.ENDED and (call.room_finished or unknown_ended):
                self._finish_without_departure(call)
            if call.state is CallState.ENDED:
                self._forget(call)

    # -- handlers --------------------------------------------------------------------------

    def _room_started(self, event: Event) -> None:
        self._call_for(event)

    def _room_finished(self, event: Event) -> None:
        call = self.calls.get(event.room_sid)
        if call is None or call.state is CallState.ENDED:
            return
        call.room_finished = True
        call.room_end_reason = event.room_end_reason
        if call.held is not None:
            if not self._may_wait_for_agent(call):
                self._release(call)
        elif call.avatar_joined_at is not None and not call.avatar_left:
            # The avatar's own participant_left may still be on its way: wait for it a little.
            self._lingering.append((self._now + self.settings.linger, call.room_sid))
        else:
            self._end(call, event.created_at)

    def _participant_joined(self, event: Event) -> None:
        participant = event.participant
        if participant is None or participant.hidden:
            return  # hidden participants (observers, recorders) are not part of the call
        role = self.roles.role_of(participant)
        call = self.calls.get(event.room_sid)
        if role is Role.USER:
            if call is not None and participant.sid in call.users:
                return  # a retry or a join reordered after its leave
            self._user_joined(event, participant)
        elif role is Role.AVATAR:
            if call is not None and call.avatar_sid == participant.sid:
                return  # a retry
            call = self._call_for(event)
            self._avatar_joined(call, participant, event.created_at)
        elif call is not None:
            if call.others is None:
                call.others = {}
            if participant.sid in call.others:
                return  # a retry
            if len(call.others) < MAX_USERS_PER_CALL:
                call.others[participant.sid] = True
        call = self.calls.get(event.room_sid)
        if call is not None and call.started_at is not None:
            self._emit(CallListener.participant_joined, call, role, participant,
                       participant.joined_at or event.created_at)

    def _user_joined(self, event: Event, participant: Participant,
                     blind: bool = False) -> None:
        """A user's join; `blind` when it is known only from its leave, after a restart."""
        call = self.calls.get(event.room_sid)
        if call is not None and participant.sid in call.users:
            return  # a retry or a join reordered after its leave
        if call is not None and call.state is CallState.ENDED:
            joined = participant.joined_at or event.created_at
            if call.ended_at is not None and joined <= call.ended_at + CREATED_AT_PRECISION:
                return  # in the room before the call ended: part of that call, not a new one
        if call is None or call.state is CallState.ENDED:
            call = self._call_for(event, replace_ended=True)
        if len(call.users) < MAX_USERS_PER_CALL:
            call.users[participant.sid] = True
        if call.state is not CallState.PENDING:
            return
        call.started_at = participant.joined_at or event.created_at
        if blind:
            # Counted as started by the previous process; whether the avatar joined then is
            # unknown (no listing says), so no join timeout or abandon can be counted.
            call.counted_from = max(call.counted_from, self.started_at())
            call.avatar_unknown = call.avatar_joined_at is None
        self._emit(CallListener.call_started, call)
        if call.avatar_joined_at is not None:
            origin = call.started_at
            if call.avatar_joined_at < call.started_at:
                # The avatar was there before any user (dispatched at room creation): measure
                # from the room's creation time.
                origin = call.room_created_at or call.avatar_joined_at
            self._activate(call, call.avatar_joined_at - origin)
            return
        if call.startup_failure_counted:
            # A startup failure reported before the call started, replayed by the bridge on
            # call_started (emitted above, while the call is still pending).
            self._set_state(call, CallState.FAILED)
            return
        self._set_state(call, CallState.RINGING)
        if call.avatar_unknown:
            return  # no deadline: the avatar may have joined before this process started
        call.deadline = call.started_at + self.settings.join_timeout
        # A join delivered after its deadline (a retried webhook) is followed at once by the
        # room's next events, its leave perhaps: they decide before the deadline fires.
        fire_at = max(call.deadline, self._now + LATE_JOIN_GRACE)
        heapq.heappush(self._deadlines, (fire_at, call.room_sid))

    def _avatar_joined(self, call: Call, participant: Participant, at: float) -> None:
        if call.avatar_sid == participant.sid:
            return  # a retry, or a join reordered after the leave that created this call's record
        if call.avatar_sid is not None and not call.avatar_left:
            return  # a second avatar: the first one defines the call
        call.avatar_sid = participant.sid
        call.avatar_identity = sys.intern(participant.identity)
        call.avatar_agent = participant.on_behalf_of
        call.avatar_joined_at = participant.joined_at or at
        call.avatar_left = False
        if call.state in (CallState.RINGING, CallState.FAILED) and call.started_at is not None:
            self._activate(call, call.avatar_joined_at - call.started_at)
        if call.speaking and call.first_speech_at is None:
            # The voice agent was already speaking (lk.agent.state): the avatar speaks at once.
            call.first_speech_at = call.last_speech_at = max(self._now, call.avatar_joined_at)
            self._emit(CallListener.first_speech, call, 0.0, call.avatar_joined_at)

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

    def _participant_left(self, event: Event) -> None:
        participant = event.participant
        if participant is None or participant.hidden:
            return
        role = self.roles.role_of(participant)
        call = self.calls.get(event.room_sid)
        if call is not None and not self._first_leave(call, role, participant):
            return  # a retry, recognised by its content when its id is no longer remembered
        self._emit(CallListener.participant_left, call, role, participant, event.created_at)
        if role is Role.USER:
            if call is not None and call.state is CallState.ENDED:
                if participant.sid in call.users:
                    call.users[participant.sid] = False
                return
            if call is None or participant.sid not in call.users:
                # Its join never reached us (lost or reordered, or before this process started):
                # the leave carries the join time.
                joined = participant.joined_at or event.created_at
                self._user_joined(event, participant, blind=joined < self.started_at())
                call = self.calls[event.room_sid]
            self._user_left(call, participant, event.created_at)
        elif role is Role.AVATAR and call is not None:
            self._avatar_left(call, participant, event.created_at)
        elif role is Role.AGENT and call is not None:
            self._agent_left(call, participant, event.created_at)

    @staticmethod
    def _first_leave(call: Call, role: Role, participant: Participant) -> bool:
        """False for a leave this call has already seen."""
        if role is Role.USER:
            return call.users.get(participant.sid) is not False
        if role is Role.AVATAR and call.avatar_sid == participant.sid:
            return not call.avatar_left
        if call.others is None:
            call.others = {}
        if call.others.get(participant.sid) is False:
            return False
        if participant.sid in call.others or len(call.others) < MAX_USERS_PER_CALL:
            call.others[participant.sid] = False
        return True

    def _user_left(self, call: Call, participant: Participant, at: float) -> None:
        if call.users.get(participant.sid) is False:
            return  # a retry
        call.users[participant.sid] = False
        if any(call.users.values()):
            return
        if call.state is CallState.RINGING and call.avatar_unknown:
            # The avatar's leave, if it was there, is the call's departure; else the call ends
            # uncounted when its room finishes or after the linger.
            call.user_left_first = participant.disconnect_reason not in SENT_AWAY
            self._set_state(call, CallState.FAILED)
            self._lingering.append((self._now + self.settings.linger, call.room_sid))
        elif call.state is CallState.RINGING and call.deadline is not None and \
                at >= call.deadline:
            self._fail(call, "join_timeout")  # the deadline passed before the leave (server time)
            self._end(call, at)
        elif call.state is CallState.RINGING:
            self._emit(CallListener.call_abandoned, call, at)
            self._end(call, at)
        elif call.state is CallState.FAILED:
            self._end(call, at)
        elif (call.state is CallState.ACTIVE and not call.avatar_left
              and participant.disconnect_reason not in SENT_AWAY):
            call.user_left_first = True  # not when the server sent everyone away

    def _avatar_left(self, call: Call, participant: Participant, at: float) -> None:
        if call.state is CallState.ENDED:
            return
        if call.avatar_left and call.avatar_sid == participant.sid:
            return
        if call.avatar_sid != participant.sid:
            # Its join never reached us (lost or reordered): the leave carries the join time.
            self._avatar_joined(call, participant, at)
            if call.avatar_sid != participant.sid:
                return  # another avatar is the call's
        call.avatar_left = True
        session = max(at - (call.avatar_joined_at or at), 0.0)
        # createdAt has whole seconds: the leave happened in [at, at + 1). For what the observer
        # timed on this machine's clock (silence, poor quality), arrival narrows that down.
        left = min(max(self._now, at), at + 1.0)
        self._end_poor_quality(call, left)
        if call.state is CallState.PENDING:
            self._end(call, at)  # the avatar came and went before any user: no call happened
            return
        if call.state is not CallState.ACTIVE:
            return
        call.held = HeldDeparture(participant.disconnect_reason, session, at, left)
        if self._may_wait_for_agent(call):
            self._holding.append((self._now + AGENT_HANGUP_WINDOW, call.room_sid))
        else:
            self._release(call)

    def _may_wait_for_agent(self, call: Call) -> bool:
        """Whether the held leave, not yet an agent hang-up, could become one when the agent's end
        arrives (it often comes just after the avatar is removed or the room deleted)."""
        held = call.held
        if held is None or call.agent_ended_at is not None:
            return False
        if call.room_finished and call.room_end_reason != ROOM_END_API_DELETE:
            return False
        if held.reason not in AGENT_MAY_HAVE_ENDED or call.session_close_reason == "error":
            return False
        departure = classify(self._facts(call, held.reason, held.session_seconds, held.left))
        return departure in (Departure.REMOVED, Departure.SERVER)

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

    def _agent_left(self, call: Call, participant: Participant, at: float) -> None:
        """The voice agent left by itself: it ended the call (unless a user hung up first)."""
        if participant.disconnect_reason != "client_initiated":
            return
        if call.avatar_agent and participant.identity != call.avatar_agent:
            return  # another agent in the room, not the one the avatar works for
        self._agent_ended(call, at)

    def _agent_ended(self, call: Call, at: float) -> None:
        if call.agent_ended_at is None:
            call.agent_ended_at = at
        if call.held is not None:
            self._release(call)

    def _track_published(self, event: Event) -> None:
        participant, kind = event.participant, event.track_kind or ""
        bit = _TRACK_BIT.get(kind)
        if participant is None or bit is None:
            return
        call = self.calls.get(event.room_sid)
        if call is None or call.avatar_sid != participant.sid or call.tracks_seen & bit:
            return
        call.tracks_seen |= bit
        published = event.track_published_at or event.created_at
        joined = call.avatar_joined_at or published
        delay = max(published - joined, 0.0)
        self._emit(CallListener.first_track, call, kind, delay, joined + delay)

    # -- reconciliation (RoomService listings) ----------------------------------------------

    def listed(self, live_sids: set[str], at: float) -> None:
        """A RoomService listing asked at `at` (server time) had these rooms."""
        self._listed, self._listed_at = live_sids, at

    def present(self, room_sid: str) -> list[Participant]:
        """The participants this room's live call holds present (users and the avatar)."""
        call = self.calls.get(room_sid)
        if call is None or call.state is CallState.ENDED:
            return []
        here = [Participant(sid, "", "STANDARD", None, "unknown_reason", False)
                for sid, present in call.users.items() if present]
        if call.avatar_sid is not None and not call.avatar_left:
            here.append(Participant(call.avatar_sid, call.avatar_identity or "", "AGENT",
                                    call.avatar_joined_at, "unknown_reason", True))
        return here

    def reconcile(self, room_sid: str, room_name: str, room_created_at: float | None,
                  present: list[Participant], gone: list[Participant], at: float) -> list[str]:
        """Apply what a listing shows and webhooks did not: joins of participants present but
        unknown (a call rebuilt after a restart counts from `started_at`), leaves of participants
        gone. Returns the actions taken: call_recovered, join, leave."""
        self._now = at
        actions: list[str] = []
        existed = room_sid in self.calls
        self._counted_from = self.started_at()
        try:
            for participant in sorted(present, key=lambda p: p.joined_at or at):
                if participant.hidden or self._knows(room_sid, participant):
                    continue
                event = Event("participant_joined", "", at, room_sid, room_name,
                              room_created_at, participant, None, None)
                if self._is_late(event):
                    continue
                self._participant_joined(event)
                call = self.calls.get(room_sid)
                if call is not None and self._knows(room_sid, participant):
                    actions.append("join")
                    self._emit(CallListener.reconciled, call, "join", participant, at)
        finally:
            self._counted_from = 0.0
        call = self.calls.get(room_sid)
        if not existed and call is not None and call.started_at is not None:
            actions.append("call_recovered")
            log.info("recovered the call in room %s from a listing", room_name)
        for participant in gone:
            call = self.calls.get(room_sid)
            if call is None or call.state is CallState.ENDED:
                break
            self._emit(CallListener.reconciled, call, "leave", participant, at)
            self._participant_left(Event("participant_left", "", at, room_sid, room_name,
                                         room_created_at, participant, None, None))
            actions.append("leave")
        return actions

    def _knows(self, room_sid: str, participant: Participant) -> bool:
        call = self.calls.get(room_sid)
        if call is None:
            return False
        if call.state is CallState.ENDED:
            joined = participant.joined_at or self._now
            return call.ended_at is None or joined <= call.ended_at + CREATED_AT_PRECISION
        return (participant.sid in call.users or participant.sid == call.avatar_sid
                or (call.others is not None and participant.sid in call.others))

    # -- observer input (local clock) -------------------------------------------------------

    def observing(self, room_sid: str, at: float) -> None:
        """The observer now watches this call's room: silence can be measured."""
        call = self.calls.get(room_sid)
        if call is not None and call.observed_at is None:
            call.observed_at = at
            self._emit(CallListener.observation_started, call, at)

    def room_gone(self, room_sid: str, at: float) -> None:
        """The server no longer has the room (it restarted, or the room closed unseen). The
        call ends after ROOM_GONE_GRACE, so that the webhooks already on their way (a user's
        leave, the avatar's) still tell how it ended."""
        call = self.calls.get(room_sid)
        if call is not None and call.state is not CallState.ENDED:
            self._going.append((at + ROOM_GONE_GRACE, room_sid, at))

    def _end_gone_room(self, room_sid: str, at: float) -> None:
        call = self.calls.get(room_sid)
        if call is None or call.state is CallState.ENDED:
            return
        if call.held is not None:
            self._release(call)
        elif call.state is CallState.ACTIVE and not call.avatar_left:
            call.avatar_left = True
            self._end_poor_quality(call, at)
            session = max(at - (call.avatar_joined_at or at), 0.0)
            self._emit(CallListener.avatar_left, call, Departure.SERVER, session, at)
        self._end(call, at)

    def signal(self, room_sid: str, signal: Signal, at: float) -> None:
        """An event the voice agent or the avatar backend reported (see monitor.reports.bridge)."""
        call = self.calls.get(room_sid)
        if call is None or call.state is CallState.ENDED:
            return
        if isinstance(signal, StartupFailureMessage):
            self._emit(CallListener.backend_message, call, signal.message, at)
            if not call.startup_failure_counted:
                self._fail(call, "message", at)
        elif isinstance(signal, PipelineError):
            if not signal.recoverable:
                call.unrecoverable_error_at = at
            self._emit(CallListener.pipeline_error, call, signal, at)
        elif isinstance(signal, SessionClosed):
            call.session_close_reason = signal.reason
            self._emit(CallListener.session_closed, call, signal.reason, at)
            if signal.reason in AGENT_ENDED_REASONS:
                self._agent_ended(call, at)
            elif call.held is not None:
                self._release(call)  # the session closed for another reason: nothing to wait for
        elif isinstance(signal, AgentLatency):
            self._emit(CallListener.agent_latency, call, signal, at)

    def avatar_speaking(self, room_sid: str, speaking: bool, at: float) -> None:
        """The avatar started or stopped being an active speaker."""
        call = self.calls.get(room_sid)
        if call is None or call.avatar_left:
            return
        if call.avatar_joined_at is None:
            call.speaking = speaking  # the agent speaks before the avatar is in: see _avatar_joined
            return
        if speaking and call.first_speech_at is None:
            call.first_speech_at = at
            delay = max(at - call.avatar_joined_at, 0.0)
            self._emit(CallListener.first_speech, call, delay, at)
        if speaking or call.speaking:
            call.last_speech_at = at
        call.speaking = speaking

    def avatar_quality(self, room_sid: str, quality: str, at: float) -> None:
        """The avatar's connection quality changed (excellent, good, poor, lost)."""
        call = self.calls.get(room_sid)
        if call is None or call.avatar_joined_at is None or call.avatar_left:
            return
        if quality == call.poor_quality:
            return
        self._end_poor_quality(call, at)
        if quality in ("poor", "lost"):
            call.poor_quality, call.poor_quality_since = quality, at

    def _end_poor_quality(self, call: Call, at: float) -> None:
        if call.poor_quality_since is not None:
            seconds = max(at - call.poor_quality_since, 0.0)
            self._emit(CallListener.poor_quality, call, call.poor_quality, seconds)
        call.poor_quality, call.poor_quality_since = "", None

    # -- bookkeeping -----------------------------------------------------------------------

    def _call_for(self, event: Event, replace_ended: bool = False) -> Call:
        call = self.calls.get(event.room_sid)
        if call is not None and not (replace_ended and call.state is CallState.ENDED):
            if call.room_created_at is None:
                call.room_created_at = event.room_created_at
            return call
        if call is not None:
            self._forget(call)
        while len(self.calls) >= self.settings.max_calls:
            oldest = self.calls[next(iter(self.calls))]
            if oldest.state is not CallState.ENDED:
                self._emit(CallListener.call_evicted, oldest)
            self._forget(oldest)
        call = Call(event.room_sid, event.room_name, event.room_created_at, tracked_at=self._now,
                    counted_from=self._counted_from)
        self.calls[call.room_sid] = call
        self.sid_by_name[call.room_name] = call.room_sid
        self.counts[CallState.PENDING] += 1
        return call

    def _facts(self, call: Call, reason: str, session: float | None, at: float
               ) -> DepartureFacts:
        silence = None
        if call.observed_at is not None:
            # Silence since the last speech; a call watched from mid-session and silent since
            # then counts from when the watch began (a lower bound).
            since = call.last_speech_at or max(call.avatar_joined_at or at, call.observed_at)
            silence = 0.0 if call.speaking else max(at - since, 0.0)
        error_age = None
        if call.unrecoverable_error_at is not None:
            error_age = max(at - call.unrecoverable_error_at, 0.0)
        agent_ended_before = None
        if call.agent_ended_at is not None:
            left = call.held.at if call.held is not None else at
            agent_ended_before = left - call.agent_ended_at
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
        )

    def _finish_without_departure(self, call: Call) -> None:
        """The room finished and the avatar's leave never arrived."""
        facts = self._facts(call, "unknown_reason", None, self._now)
        if call.state is CallState.ACTIVE:
            self._emit(CallListener.avatar_left, call, classify(facts), 0.0, self._now)
        self._end(call, self._now)

    def _end(self, call: Call, at: float) -> None:
        if call.state is CallState.ENDED:
            return
        self._set_state(call, CallState.ENDED)
        call.ended_at = at
        self.ended_rooms.add(call.room_sid, at)
        self._emit(CallListener.call_ended, call, at)
        self._lingering.append((self._now + self.settings.linger, call.room_sid))

    def _forget(self, call: Call) -> None:
        if self.calls.get(call.room_sid) is call:
            del self.calls[call.room_sid]
            if self.sid_by_name.get(call.room_name) == call.room_sid:
                del self.sid_by_name[call.room_name]
            self.counts[call.state] -= 1

    def _set_state(self, call: Call, state: CallState) -> None:
        self.counts[call.state] -= 1
        self.counts[state] += 1
        call.state = state

    def add_listener(self, listener: CallListener) -> None:
        """Receive transitions from now on, after the listeners already there."""
        self.listeners.append(listener)
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
        return [getattr(listener, transition) for listener in self.listeners
                if getattr(type(listener), transition, noop) is not noop]
