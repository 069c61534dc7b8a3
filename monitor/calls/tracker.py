"""Call state: a synchronous state machine over typed webhook events, with server timestamps.

One tracked call per room sid. A call starts when its first user joins (ringing) and becomes
active when the avatar joins. Listeners (metrics, traces) receive the transitions; the tracker
itself knows nothing of Prometheus or HTTP.

Lifecycle: pending (room known, no user yet) -> ringing -> active -> ended, with ringing -> failed
when no avatar joins within the join timeout (a failed call still turns active if the avatar joins
late) and ringing -> ended when every user leaves first (abandoned). Ended calls linger briefly to
absorb late or reordered webhooks, then are evicted.

This module applies webhooks and RoomService listings; monitor.calls.observed applies what the
observer and the voice agent report; monitor.calls.core holds what both share.
"""

from __future__ import annotations

import heapq
import logging
import sys
from collections.abc import Callable, Iterable

from avatar_monitor_agent.roles import Role, RoleClassifier

from monitor.calls.core import (
    CREATED_AT_PRECISION,
    LATE_JOIN_GRACE,
    MAX_USERS_PER_CALL,
    SENT_AWAY,
    TrackerSettings,
)
from monitor.calls.departures import (
    AGENT_FAILED_REASONS,
    NETWORK_REASONS,
    Departure,
)
from monitor.calls.listener import CallListener
from monitor.calls.media import MediaCalls
from monitor.calls.model import Call, CallState, HeldDeparture, NextAvatar
from monitor.calls.observed import ObservedCalls
from monitor.intake.events import Event, Participant

log = logging.getLogger(__name__)

_TRACK_BIT = {"audio": 1, "video": 2}


class CallTracker(MediaCalls, ObservedCalls):
    """Applies webhook events and RoomService listings to calls, and tells listeners what
    changed."""

    def __init__(self, roles: RoleClassifier, settings: TrackerSettings,
                 listeners: Iterable[CallListener] = ()) -> None:
        super().__init__(roles, settings, listeners)
        self._handlers: dict[str, Callable[[Event], None]] = {
            "room_started": self._room_started,
            "room_finished": self._room_finished,
            "participant_joined": self._participant_joined,
            "participant_left": self._participant_left,
            "participant_connection_aborted": self._participant_left,
            "track_published": self._track_published,
            "track_unpublished": self._track_unpublished,
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
        if event.room_sid in self._calls:
            return False
        participant = event.participant
        ended_at = self._ended_rooms.ended_at(event.room_sid)
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
            call = self._calls.get(sid)
            if call is not None and call.state is CallState.RINGING and \
                    call.deadline is not None and call.deadline <= now:
                self._fail(call, "join_timeout")
        self._release_due(now)
        while self._going and self._going[0][0] <= now:
            _, sid, gone_at = self._going.popleft()
            self._end_gone_room(sid, gone_at)
        self._check_media(now)
        while self._lingering and self._lingering[0][0] <= now:
            _, sid = self._lingering.popleft()
            call = self._calls.get(sid)
            if call is None:
                continue
            unknown_ended = call.avatar_unknown and call.state is CallState.FAILED
            if call.held is not None:
                self._release(call)
            elif call.state is not CallState.ENDED and (call.room_finished or unknown_ended):
                self._finish_without_departure(call)
            if call.state is CallState.ENDED:
                self._forget(call)

    def _room_started(self, event: Event) -> None:
        self._call_for(event)

    def _room_finished(self, event: Event) -> None:
        call = self._calls.get(event.room_sid)
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
        role = self._roles.role_of(participant)
        call = self._calls.get(event.room_sid)
        if role is Role.USER:
            if call is not None and participant.sid in call.users:
                return  # a retry or a join reordered after its leave
            self._user_joined(event, participant)
        elif role is Role.AVATAR:
            if call is not None and participant.sid in (call.avatar_sid, _next_sid(call)):
                return  # a retry
            call = self._call_for(event)
            self._avatar_joined(call, participant, event.created_at)
        else:
            if role is Role.AGENT:
                # Dispatched before any user (its room_started lost, or known from a listing
                # after a restart): the room's call is pending, and it has a voice agent.
                call = self._call_for(event)
                call.agent_seen = True
            if call is None:
                return
            if call.others is None:
                call.others = {}
            if participant.sid in call.others:
                return  # a retry
            if len(call.others) < MAX_USERS_PER_CALL:
                call.others[participant.sid] = True
        call = self._calls.get(event.room_sid)
        if call is not None and call.started_at is not None:
            self._emit(CallListener.participant_joined, call, role, participant,
                       participant.joined_at or event.created_at)

    def _user_joined(self, event: Event, participant: Participant,
                     blind: bool = False) -> None:
        """A user's join; `blind` when it is known only from its leave, after a restart."""
        call = self._calls.get(event.room_sid)
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
            self._attended(call, participant.joined_at or event.created_at)
            return
        call.started_at = participant.joined_at or event.created_at
        if blind:
            # Counted as started by the previous process; whether the avatar joined then is
            # unknown (no listing says), so no join timeout or abandon can be counted.
            call.counted_from = max(call.counted_from, self.started_at())
            call.avatar_unknown = call.avatar_joined_at is None
        self._emit(CallListener.call_started, call)
        self._attended(call, call.started_at)  # an avatar there before the first user
        for signal, signal_at in self.reports.take_waiting(call):
            self.signal(call.room_sid, signal, signal_at)
        if call.avatar_joined_at is not None:
            origin = call.started_at
            if call.avatar_joined_at < call.started_at:
                # The avatar was there before any user (dispatched at room creation): measure
                # from the room's creation time.
                origin = call.room_created_at or call.avatar_joined_at
            self._activate(call, call.avatar_joined_at - origin)
            return
        if call.startup_failure_counted:
            # A startup failure reported before the call started, applied just above while
            # the call was still pending.
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
            # A second avatar: the first one defines the call until it leaves; then this one
            # takes over (a hot swap).
            if call.next_avatar is None:
                call.next_avatar = NextAvatar(participant.sid, participant.joined_at or at,
                                              sys.intern(participant.identity),
                                              participant.on_behalf_of)
            return
        rejoined = call.avatar_sid is not None and call.state is CallState.ACTIVE
        call.avatar_sid = participant.sid
        call.avatar_identity = sys.intern(participant.identity)
        call.avatar_agent = participant.on_behalf_of
        call.avatar_announces_ready = self._announces_ready(participant)
        call.avatar_joined_at = participant.joined_at or at
        call.avatar_left = False
        if not any(call.users.values()):
            self._alone(call, call.avatar_joined_at)  # no user to see it yet
        if call.state in (CallState.RINGING, CallState.FAILED) and call.started_at is not None:
            self._activate(call, call.avatar_joined_at - call.started_at)
        if rejoined:  # the same identity back after DUPLICATE_IDENTITY sent the old one away
            call.tracks_seen = 0
            self._emit(CallListener.avatar_session_started, call, call.avatar_joined_at)
        if call.speaking and call.first_speech_at is None:
            # The voice agent was already speaking (lk.agent.state): the avatar speaks at once.
            call.first_speech_at = call.last_speech_at = max(self._now, call.avatar_joined_at)
            self._emit(CallListener.first_speech, call, 0.0, call.avatar_joined_at)

    def _participant_left(self, event: Event) -> None:
        participant = event.participant
        if participant is None or participant.hidden:
            return
        role = self._roles.role_of(participant)
        call = self._calls.get(event.room_sid)
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
                call = self._calls[event.room_sid]
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
        if call.avatar_sid is not None and not call.avatar_left:
            self._alone(call, at)  # the avatar stays with nobody to talk to
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
            call.users_left_at = at
            call.user_connection_lost = participant.disconnect_reason in NETWORK_REASONS

    def _avatar_left(self, call: Call, participant: Participant, at: float) -> None:
        if call.state is CallState.ENDED:
            return
        if call.avatar_left and call.avatar_sid == participant.sid:
            return
        if call.next_avatar is not None and call.next_avatar.sid == participant.sid:
            call.next_avatar = None  # the second avatar left before it took over
            return
        if call.avatar_sid != participant.sid:
            # Its join never reached us (lost or reordered): the leave carries the join time.
            self._avatar_joined(call, participant, at)
            if call.avatar_sid != participant.sid:
                return  # another avatar is the call's
        if call.state is CallState.ACTIVE and (
                call.next_avatar is not None
                or participant.disconnect_reason == "duplicate_identity"):
            self._replace_avatar(call, participant, at)
            return
        call.avatar_left = True
        self._attended(call, at)
        session = max(at - (call.avatar_joined_at or at), 0.0)
        # createdAt has whole seconds: the leave happened in [at, at + 1). For what the observer
        # timed on this machine's clock (silence, poor quality), arrival narrows that down.
        left = min(max(self._now, at), at + 1.0)
        self._end_poor_quality(call, left)
        self._close_media(call, left)
        if call.state is CallState.PENDING:
            self._end(call, at)  # the avatar came and went before any user: no call happened
            return
        if call.state is not CallState.ACTIVE:
            return
        call.held = HeldDeparture(participant.disconnect_reason, session, at, left)
        self._hold(call)

    def _replace_avatar(self, call: Call, participant: Participant, at: float) -> None:
        """The avatar's session ended and another takes over: the one already in the call (a
        hot swap), or the same identity joining again (DUPLICATE_IDENTITY: livekit-server
        sent the old connection away for the new one). The call goes on."""
        session = max(at - (call.avatar_joined_at or at), 0.0)
        self._close_media(call, min(max(self._now, at), at + 1.0))  # its tracks left with it
        self._emit(CallListener.avatar_left, call, Departure.REPLACED, session, at)
        if call.next_avatar is None:
            call.avatar_left = True  # until the same identity's new join arrives
            return
        taking_over, call.next_avatar = call.next_avatar, None
        call.avatar_sid, call.avatar_joined_at = taking_over.sid, taking_over.joined_at
        call.avatar_identity, call.avatar_agent = taking_over.identity, taking_over.on_behalf_of
        call.tracks_seen = 0
        self._emit(CallListener.avatar_session_started, call, call.avatar_joined_at)
        for kind, published in sorted(taking_over.tracks.items(), key=lambda kv: kv[1]):
            self._first_track(call, kind, published)  # published while it waited

    def _agent_left(self, call: Call, participant: Participant, at: float) -> None:
        """The voice agent left by itself: it ended the call (unless a user hung up first).
        Left with a failure reason: it was lost, and the avatar that follows it out failed."""
        if call.avatar_agent and participant.identity != call.avatar_agent:
            return  # another agent in the room, not the one the avatar works for
        reason = participant.disconnect_reason
        if reason == "client_initiated":
            self._agent_ended(call, at)
        elif reason in AGENT_FAILED_REASONS and call.agent_lost_at is None:
            call.agent_lost_at, call.agent_lost_reason = at, reason
            if call.held is not None:
                self._release(call)  # nothing else to wait for: the agent will not end the call

    def _track_published(self, event: Event) -> None:
        participant, kind = event.participant, event.track_kind or ""
        if participant is None or kind not in _TRACK_BIT:
            return
        call = self._calls.get(event.room_sid)
        if call is None:
            return
        published = event.track_published_at or event.created_at
        waiting = call.next_avatar
        if waiting is not None and waiting.sid == participant.sid:
            waiting.tracks.setdefault(kind, published)  # counted if it takes over
        elif call.avatar_sid == participant.sid:
            self._webhook_media(call, event, kind, on=True)  # back after an interruption?
            self._first_track(call, kind, published)

    def _first_track(self, call: Call, kind: str, published: float) -> None:
        bit = _TRACK_BIT[kind]
        if call.tracks_seen & bit:
            return
        call.tracks_seen |= bit
        joined = call.avatar_joined_at or published
        delay = max(published - joined, 0.0)
        self._emit(CallListener.first_track, call, kind, delay, joined + delay)

    def listed(self, live_sids: set[str], at: float) -> None:
        """A RoomService listing asked at `at` (server time) had these rooms."""
        self._listed, self._listed_at = live_sids, at

    def present(self, room_sid: str) -> list[Participant]:
        """The participants this room's live call holds present (users and the avatar)."""
        call = self._calls.get(room_sid)
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
        existed = room_sid in self._calls
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
                call = self._calls.get(room_sid)
                if call is not None and self._knows(room_sid, participant):
                    actions.append("join")
                    self._emit(CallListener.reconciled, call, "join", participant, at)
        finally:
            self._counted_from = 0.0
        call = self._calls.get(room_sid)
        if not existed and call is not None and call.started_at is not None:
            actions.append("call_recovered")
            log.info("recovered the call in room %s from a listing", room_name)
        for participant in gone:
            call = self._calls.get(room_sid)
            if call is None or call.state is CallState.ENDED:
                break
            self._participant_left(Event("participant_left", "", at, room_sid, room_name,
                                         room_created_at, participant, None, None))
            self._emit(CallListener.reconciled, call, "leave", participant, at)
            actions.append("leave")
        return actions

    def _knows(self, room_sid: str, participant: Participant) -> bool:
        call = self._calls.get(room_sid)
        if call is None:
            return False
        if call.state is CallState.ENDED:
            joined = participant.joined_at or self._now
            return call.ended_at is None or joined <= call.ended_at + CREATED_AT_PRECISION
        return (participant.sid in call.users
                or participant.sid in (call.avatar_sid, _next_sid(call))
                or (call.others is not None and participant.sid in call.others))


def _next_sid(call: Call) -> str | None:
    """The avatar waiting to take over the call's (a hot swap), if any."""
    return call.next_avatar.sid if call.next_avatar is not None else None
