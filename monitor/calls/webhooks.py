"""Webhook events applied to calls: rooms started and finished, participants joining and
leaving (users, the avatar and its sessions, the voice agent); track events go to the media
applier.

One tracked call per room sid. A call starts when its first user joins (ringing) and becomes
active when the avatar joins. Lifecycle: pending (room known, no user yet) -> ringing -> active
-> ended, with ringing -> failed when no avatar joins within the join timeout (a failed call
still turns active if the avatar joins late) and ringing -> ended when every user leaves first
(abandoned). Ended calls linger briefly to absorb late or reordered webhooks, then are evicted
(docs/tracking.md, "Invariants").
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from avatar_monitor_agent.roles import Role

from monitor.calls.book import CallBook
from monitor.calls.core import (
    CREATED_AT_PRECISION,
    LATE_JOIN_GRACE,
    MAX_USERS_PER_CALL,
    SENT_AWAY,
)
from monitor.calls.departures import AGENT_FAILED_REASONS, NETWORK_REASONS, Departure
from monitor.calls.endings import CallEndings
from monitor.calls.inputs import Event, Participant
from monitor.calls.listener import CallListener
from monitor.calls.media import MediaApplier
from monitor.calls.model import Call, CallState, HeldDeparture, NextAvatar
from monitor.calls.observed import ObservedApplier


class WebhookApplier:
    """Applies webhook events to the book's calls."""

    def __init__(self, book: CallBook, endings: CallEndings, media: MediaApplier,
                 observed: ObservedApplier) -> None:
        self._book = book
        self._endings = endings
        self._media = media
        self._observed = observed
        self._handlers: dict[str, Callable[[Event, float], None]] = {
            "room_started": self._room_started,
            "room_finished": self._room_finished,
            "participant_joined": self.participant_joined,
            "participant_left": self.participant_left,
            "participant_connection_aborted": self.participant_left,
            "track_published": media.track_published,
            "track_unpublished": media.track_unpublished,
        }

    def apply(self, event: Event, now: float) -> None:
        """Apply one event; `now` is the local clock, used only for housekeeping."""
        handler = self._handlers.get(event.name)
        if handler is not None and event.room_sid:
            if self._book.is_late(event):
                self._book.emit(CallListener.late_event, event.room_sid, event)
                return
            handler(event, now)

    def expire_deadlines(self, now: float) -> None:
        """Fail the ringing calls whose join deadline has passed."""
        for _, sid in self._book.deadlines.due(now):
            call = self._book.call(sid)
            if call is not None and call.state is CallState.RINGING and \
                    call.deadline is not None and call.deadline <= now:
                self._book.fail(call, "join_timeout", call.deadline)

    def _room_started(self, event: Event, now: float) -> None:
        self._book.call_for(event, now)

    def _room_finished(self, event: Event, now: float) -> None:
        call = self._book.call(event.room_sid)
        if call is None or call.state is CallState.ENDED:
            return
        call.room_finished = True
        call.room_end_reason = event.room_end_reason
        if call.held is not None:
            if not self._endings.may_wait_for_agent(call):
                self._endings.release(call, now)
        elif call.avatar_joined_at is not None and not call.avatar_left:
            # The avatar's own participant_left may still be on its way: wait for it a little.
            self._book.linger(call, now)
        else:
            self._book.end(call, event.created_at, now)

    def participant_joined(self, event: Event, now: float, counted_from: float = 0.0) -> None:
        """A participant's join (`counted_from`: a call made for it counts from then on)."""
        participant = event.participant
        if participant is None or participant.hidden:
            return  # hidden participants (observers, recorders) are not part of the call
        role = self._book.role_of(participant)
        call = self._book.call(event.room_sid)
        if role is Role.USER:
            if call is not None and participant.sid in call.users:
                return  # a retry or a join reordered after its leave
            self._user_joined(event, participant, now, counted_from)
        elif role is Role.AVATAR:
            if call is not None and participant.sid in (call.avatar_sid, next_avatar_sid(call)):
                return  # a retry
            call = self._book.call_for(event, now, counted_from)
            self._avatar_joined(call, participant, event.created_at, now)
        else:
            if role is Role.AGENT:
                # Dispatched before any user (its room_started lost, or known from a listing
                # after a restart): the room's call is pending, and it has a voice agent.
                call = self._book.call_for(event, now, counted_from)
                call.agent_seen = True
            if call is None:
                return
            if call.others is None:
                call.others = {}
            if participant.sid in call.others:
                return  # a retry
            if len(call.others) < MAX_USERS_PER_CALL:
                call.others[participant.sid] = True
        call = self._book.call(event.room_sid)
        if call is not None and call.started_at is not None:
            self._book.emit(CallListener.participant_joined, call, role, participant,
                       participant.joined_at or event.created_at)

    def _user_joined(self, event: Event, participant: Participant, now: float,
                     counted_from: float, blind: bool = False) -> None:
        """A user's join; `blind` when it is known only from its leave, after a restart."""
        call = self._book.call(event.room_sid)
        if call is not None and participant.sid in call.users:
            return  # a retry or a join reordered after its leave
        if call is not None and call.state is CallState.ENDED:
            joined = participant.joined_at or event.created_at
            if call.ended_at is not None and joined <= call.ended_at + CREATED_AT_PRECISION:
                return  # in the room before the call ended: part of that call, not a new one
        if call is None or call.state is CallState.ENDED:
            call = self._book.call_for(event, now, counted_from, replace_ended=True)
        if len(call.users) < MAX_USERS_PER_CALL:
            call.users[participant.sid] = True
        if call.state is not CallState.PENDING:
            self._book.attended(call, participant.joined_at or event.created_at)
            return
        self._start(call, participant.joined_at or event.created_at, now, blind)

    def _start(self, call: Call, at: float, now: float, blind: bool) -> None:
        """The call's first user joined at `at`: it rings, or is active with its avatar there,
        or failed with its startup failure already reported."""
        call.started_at = at
        if blind:
            # Counted as started by the previous process; whether the avatar joined then is
            # unknown (no listing says), so no join timeout or abandon can be counted.
            call.counted_from = max(call.counted_from, self._book.started_at())
            call.avatar_unknown = call.avatar_joined_at is None
        self._book.emit(CallListener.call_started, call)
        self._book.attended(call, call.started_at)  # an avatar there before the first user
        for signal, signal_at in self._book.reports.take_waiting(call):
            self._observed.signal(call.room_sid, signal, signal_at, now)
        if call.avatar_joined_at is not None:
            origin = call.started_at
            if call.avatar_joined_at < call.started_at:
                # The avatar was there before any user (dispatched at room creation): measure
                # from the room's creation time.
                origin = call.room_created_at or call.avatar_joined_at
            self._book.activate(call, call.avatar_joined_at - origin)
        elif call.startup_failure_counted:
            # A startup failure reported before the call started, applied just above while
            # the call was still pending.
            self._book.set_state(call, CallState.FAILED)
        else:
            self._ring(call, at, now)

    def _ring(self, call: Call, started_at: float, now: float) -> None:
        """The call rings until the avatar joins or its join deadline passes."""
        self._book.set_state(call, CallState.RINGING)
        if call.avatar_unknown:
            return  # no deadline: the avatar may have joined before this process started
        call.deadline = started_at + self._book.settings.join_timeout
        # A join delivered after its deadline (a retried webhook) is followed at once by the
        # room's next events, its leave perhaps: they decide before the deadline fires.
        fire_at = max(call.deadline, now + LATE_JOIN_GRACE)
        self._book.deadlines.add((fire_at, call.room_sid))

    def _avatar_joined(self, call: Call, participant: Participant, at: float, now: float
                       ) -> None:
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
        call.avatar_announces_ready = self._book.announces_ready(participant)
        call.avatar_joined_at = participant.joined_at or at
        call.avatar_left = False
        if not any(call.users.values()):
            self._book.alone(call, call.avatar_joined_at)  # no user to see it yet
        if call.state in (CallState.RINGING, CallState.FAILED) and call.started_at is not None:
            self._book.activate(call, call.avatar_joined_at - call.started_at)
        if rejoined:  # the same identity back after DUPLICATE_IDENTITY sent the old one away
            call.tracks_seen = 0
            self._book.emit(CallListener.avatar_session_started, call, call.avatar_joined_at)
        if call.speaking and call.first_speech_at is None:
            # The voice agent was already speaking (lk.agent.state): the avatar speaks at once.
            call.first_speech_at = call.last_speech_at = max(now, call.avatar_joined_at)
            self._book.emit(CallListener.first_speech, call, 0.0, call.avatar_joined_at)

    def participant_left(self, event: Event, now: float) -> None:
        participant = event.participant
        if participant is None or participant.hidden:
            return
        role = self._book.role_of(participant)
        call = self._book.call(event.room_sid)
        if call is not None and not self._first_leave(call, role, participant):
            return  # a retry, recognised by its content when its id is no longer remembered
        self._book.emit(CallListener.participant_left, call, role, participant, event.created_at)
        if role is Role.USER:
            if call is not None and call.state is CallState.ENDED:
                if participant.sid in call.users:
                    call.users[participant.sid] = False
                return
            if call is None or participant.sid not in call.users:
                # Its join never reached us (lost or reordered, or before this process started):
                # the leave carries the join time.
                joined = participant.joined_at or event.created_at
                self._user_joined(event, participant, now, 0.0,
                                  blind=joined < self._book.started_at())
                call = self._book.call(event.room_sid)
                assert call is not None  # made by the join just above
            self._user_left(call, participant, event.created_at, now)
        elif role is Role.AVATAR and call is not None:
            self._avatar_left(call, participant, event.created_at, now)
        elif role is Role.AGENT and call is not None:
            self._agent_left(call, participant, event.created_at, now)

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

    def _user_left(self, call: Call, participant: Participant, at: float, now: float
                   ) -> None:
        if call.users.get(participant.sid) is False:
            return  # a retry
        call.users[participant.sid] = False
        if any(call.users.values()):
            return
        if call.avatar_sid is not None and not call.avatar_left:
            self._book.alone(call, at)  # the avatar stays with nobody to talk to
        if call.state is CallState.RINGING and call.avatar_unknown:
            # The avatar's leave, if it was there, is the call's departure; else the call ends
            # uncounted when its room finishes or after the linger.
            call.user_left_first = participant.disconnect_reason not in SENT_AWAY
            self._book.set_state(call, CallState.FAILED)
            self._book.linger(call, now)
        elif call.state is CallState.RINGING and call.deadline is not None and \
                at >= call.deadline:
            # the deadline passed before the leave (server time)
            self._book.fail(call, "join_timeout", call.deadline)
            self._book.end(call, at, now)
        elif call.state is CallState.RINGING:
            self._book.emit(CallListener.call_abandoned, call, at)
            self._book.end(call, at, now)
        elif call.state is CallState.FAILED:
            self._book.end(call, at, now)
        elif (call.state is CallState.ACTIVE and not call.avatar_left
              and participant.disconnect_reason not in SENT_AWAY):
            call.user_left_first = True  # not when the server sent everyone away
            call.users_left_at = at
            call.user_connection_lost = participant.disconnect_reason in NETWORK_REASONS

    def _avatar_left(self, call: Call, participant: Participant, at: float, now: float
                     ) -> None:
        if call.state is CallState.ENDED:
            return
        if call.avatar_left and call.avatar_sid == participant.sid:
            return
        if call.next_avatar is not None and call.next_avatar.sid == participant.sid:
            call.next_avatar = None  # the second avatar left before it took over
            return
        if call.avatar_sid != participant.sid:
            # Its join never reached us (lost or reordered): the leave carries the join time.
            self._avatar_joined(call, participant, at, now)
            if call.avatar_sid != participant.sid:
                return  # another avatar is the call's
        if call.state is CallState.ACTIVE and (
                call.next_avatar is not None
                or participant.disconnect_reason == "duplicate_identity"):
            self._replace_avatar(call, participant, at, now)
            return
        call.avatar_left = True
        self._book.attended(call, at)
        session = max(at - (call.avatar_joined_at or at), 0.0)
        # createdAt has whole seconds: the leave happened in [at, at + 1). For what the observer
        # timed on this machine's clock (silence, poor quality), arrival narrows that down.
        left = min(max(now, at), at + 1.0)
        self._book.end_poor_quality(call, left)
        self._book.close_media(call, left)
        if call.state is CallState.PENDING:
            # the avatar came and went before any user: no call happened
            self._book.end(call, at, now)
            return
        if call.state is not CallState.ACTIVE:
            return
        call.held = HeldDeparture(participant.disconnect_reason, session, at, left)
        self._endings.hold(call, now)

    def _replace_avatar(self, call: Call, participant: Participant, at: float, now: float
                        ) -> None:
        """The avatar's session ended and another takes over: the one already in the call (a
        hot swap), or the same identity joining again (DUPLICATE_IDENTITY: livekit-server
        sent the old connection away for the new one). The call goes on."""
        session = max(at - (call.avatar_joined_at or at), 0.0)
        self._book.close_media(call, min(max(now, at), at + 1.0))  # its tracks left with it
        self._book.emit(CallListener.avatar_left, call, Departure.REPLACED, session, at)
        if call.next_avatar is None:
            call.avatar_left = True  # until the same identity's new join arrives
            return
        taking_over, call.next_avatar = call.next_avatar, None
        call.avatar_sid, call.avatar_joined_at = taking_over.sid, taking_over.joined_at
        call.avatar_identity, call.avatar_agent = taking_over.identity, taking_over.on_behalf_of
        call.tracks_seen = 0
        self._book.emit(CallListener.avatar_session_started, call, call.avatar_joined_at)
        for kind, published in sorted(taking_over.tracks.items(), key=lambda kv: kv[1]):
            self._media.first_track(call, kind, published)  # published while it waited

    def _agent_left(self, call: Call, participant: Participant, at: float, now: float
                    ) -> None:
        """The voice agent left by itself: it ended the call (unless a user hung up first).
        Left with a failure reason: it was lost, and the avatar that follows it out failed."""
        if call.avatar_agent and participant.identity != call.avatar_agent:
            return  # another agent in the room, not the one the avatar works for
        reason = participant.disconnect_reason
        if reason == "client_initiated":
            self._endings.agent_ended(call, at, now)
        elif reason in AGENT_FAILED_REASONS and call.agent_lost_at is None:
            call.agent_lost_at, call.agent_lost_reason = at, reason
            if call.held is not None:
                # nothing else to wait for: the agent will not end the call
                self._endings.release(call, now)


def next_avatar_sid(call: Call) -> str | None:
    """The avatar waiting to take over the call's (a hot swap), if any."""
    return call.next_avatar.sid if call.next_avatar is not None else None
