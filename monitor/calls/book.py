"""The call book: the tracked calls and what every input shares about them.

It holds the calls (one per room sid, the room's latest by name), their counts by state, the
rooms whose call ended (long after eviction) and the timer queues; it answers the queries other
parts read calls through, and makes the transitions every input shares (a call made, failed,
activated, ended, forgotten; the avatar alone or attended; its media off no more), told to the
listeners. The appliers (webhooks, listings, observed, media, endings) change calls through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Concatenate, ParamSpec

from avatar_monitor_agent.roles import Role, RoleClassifier

from monitor.calls.core import (
    CREATED_AT_PRECISION,
    NoWaitingReports,
    ReadyAnnouncers,
    TrackerSettings,
    WaitingReports,
)
from monitor.calls.inputs import Event, Participant
from monitor.calls.listener import CallListener, Listeners
from monitor.calls.model import Call, CallState, EndedRooms, MediaOff
from monitor.calls.timers import Timers

log = logging.getLogger(__name__)
P = ParamSpec("P")


class CallBook:
    """The tracked calls, their queries, the shared transitions and the timer queues."""

    def __init__(self, roles: RoleClassifier, settings: TrackerSettings,
                 listeners: Iterable[CallListener] = (),
                 started_at: Callable[[], float] = lambda: 0.0,
                 reports: WaitingReports | None = None) -> None:
        self._roles = roles
        self.settings = settings
        self.announces_ready = ReadyAnnouncers(settings.ready_identities,
                                               settings.ready_providers)
        self._listeners = Listeners(listeners)
        self._calls: dict[str, Call] = {}
        self._sid_by_name: dict[str, str] = {}  # room name -> sid of its latest tracked call
        self._counts: dict[CallState, int] = dict.fromkeys(CallState, 0)
        # Rooms whose call ended, remembered long after eviction (at least as many as calls
        # are tracked), so late webhooks and listings do not revive them.
        self._ended_rooms = EndedRooms(max(settings.max_calls, 10_000))
        # Server time this process started (a function: the server's clock is measured only
        # once webhooks arrive): calls under way before it count from then on.
        self.started_at = started_at
        # Reports that arrived before their call started: applied once the call has started
        # and every listener has heard so; dropped if it ends unstarted.
        self.reports: WaitingReports = reports if reports is not None else NoWaitingReports()
        # The last RoomService listing: room sids live then, and when it was asked.
        self._listed: set[str] = set()
        self._listed_at: float | None = None
        # Timers (see docs/tracking.md, "Invariants"): (when due, room sid, ...).
        self.deadlines: Timers[tuple[float, str]] = Timers(in_order=False)  # join deadlines
        self.lingering: Timers[tuple[float, str]] = Timers(in_order=True)  # then evicted
        self.holding: Timers[tuple[float, str]] = Timers(in_order=True)  # the agent's end
        self.awaiting_word: Timers[tuple[float, str]] = Timers(in_order=True)  # the avatar's
        # Rooms found gone, ended after ROOM_GONE_GRACE: (local time, room sid, server time).
        self.going: Timers[tuple[float, str, float]] = Timers(in_order=True)
        # The avatar's media off: (local time the grace ends, room sid, kind, since).
        self.media_checks: Timers[tuple[float, str, str, float]] = Timers(in_order=False)

    # -- queries ------------------------------------------------------------------------------

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

    def is_late(self, event: Event) -> bool:
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

    def listed(self, live_sids: set[str], at: float) -> None:
        """A RoomService listing asked at `at` (server time) had these rooms."""
        self._listed, self._listed_at = live_sids, at

    # -- listeners ----------------------------------------------------------------------------

    def add_listener(self, listener: CallListener) -> None:
        """Receive transitions from now on, after the listeners already there."""
        self._listeners.add(listener)

    def emit(self, transition: Callable[Concatenate[CallListener, P], None],
             *args: P.args, **kwargs: P.kwargs) -> None:
        """Tell the listeners what changed (see Listeners.emit)."""
        self._listeners.emit(transition, *args, **kwargs)

    # -- the calls' lives ---------------------------------------------------------------------

    def call_for(self, event: Event, now: float, counted_from: float = 0.0,
                 replace_ended: bool = False) -> Call:
        """The event's call, made if the room has none (or, `replace_ended`, only an ended
        one); the oldest calls are evicted to keep within max_calls."""
        call = self._calls.get(event.room_sid)
        if call is not None and not (replace_ended and call.state is CallState.ENDED):
            if call.room_created_at is None:
                call.room_created_at = event.room_created_at
            return call
        if call is not None:
            self.forget(call)
        while len(self._calls) >= self.settings.max_calls:
            oldest = self._calls[next(iter(self._calls))]
            if oldest.state is not CallState.ENDED:
                self.attended(oldest, now)
                self.emit(CallListener.call_evicted, oldest)
            self.forget(oldest)
        call = Call(event.room_sid, event.room_name, event.room_created_at, tracked_at=now,
                    counted_from=counted_from)
        self._calls[call.room_sid] = call
        self._sid_by_name[call.room_name] = call.room_sid
        self._counts[CallState.PENDING] += 1
        return call

    def set_state(self, call: Call, state: CallState) -> None:
        self._counts[call.state] -= 1
        self._counts[state] += 1
        call.state = state

    def fail(self, call: Call, cause: str, at: float) -> None:
        """The call's startup failed (`cause`), counted once: a ringing call turns failed."""
        call.startup_failure_counted = True
        if call.state is CallState.RINGING:
            call.deadline = None
            self.set_state(call, CallState.FAILED)
        self.emit(CallListener.startup_failed, call, cause, at)

    def activate(self, call: Call, latency: float) -> None:
        call.deadline = None
        self.set_state(call, CallState.ACTIVE)
        self.emit(CallListener.avatar_joined, call, max(latency, 0.0))

    def alone(self, call: Call, since: float) -> None:
        """The avatar is in the room with no user from `since` (server time)."""
        if call.unattended_since is None:
            call.unattended_since = since
            self.emit(CallListener.avatar_alone, call, since)

    def attended(self, call: Call, at: float) -> None:
        """The avatar's time alone in the room ends at `at` (server time): a user came, the
        avatar left, or the call ended."""
        since, call.unattended_since = call.unattended_since, None
        if since is not None:
            self.emit(CallListener.avatar_unattended, call, since, max(at, since))

    def end_poor_quality(self, call: Call, at: float) -> None:
        if call.poor_quality_since is not None:
            seconds = max(at - call.poor_quality_since, 0.0)
            self.emit(CallListener.poor_quality, call, call.poor_quality, seconds)
        call.poor_quality, call.poor_quality_since = "", None

    def end(self, call: Call, at: float, now: float) -> None:
        """The call ended at `at` (server time); it lingers until `now` + linger."""
        if call.state is CallState.ENDED:
            return
        self.attended(call, at)
        self.close_media(call, now)  # the avatar's leave closed it, unless it never came
        self.set_state(call, CallState.ENDED)
        call.ended_at = at
        self._ended_rooms.add(call.room_sid, at)
        self.reports.drop_waiting(call)  # reports for a call that never started: not a later one's
        self.emit(CallListener.call_ended, call, at)
        self.linger(call, now)

    def linger(self, call: Call, now: float) -> None:
        """Look at the call again once the linger from `now` is over (see CallEndings.evict)."""
        self.lingering.add((now + self.settings.linger, call.room_sid))

    def forget(self, call: Call) -> None:
        if self._calls.get(call.room_sid) is call:
            del self._calls[call.room_sid]
            if self._sid_by_name.get(call.room_name) == call.room_sid:
                del self._sid_by_name[call.room_name]
            self._counts[call.state] -= 1
            if call.state is CallState.ENDED:
                self.emit(CallListener.call_forgotten, call)

    # -- the avatar's media -------------------------------------------------------------------

    def close_media(self, call: Call, at: float) -> None:
        """The avatar left or the call ended (`at`, this machine's clock): media still off
        never came back."""
        if call.media_off is not None:
            for kind, off in list(call.media_off.items()):
                self.end_media(call, kind, off, at, restored=False)

    def end_media(self, call: Call, kind: str, off: MediaOff, at: float, restored: bool
                  ) -> None:
        """The avatar's `kind` is off no more: counted if it outlasted the grace, and then its
        length told."""
        if call.media_off is not None:
            call.media_off.pop(kind, None)
            if not call.media_off:
                call.media_off = None
        self.count_media(call, kind, off, at)
        if off.counted:
            self.emit(CallListener.media_interruption_ended, call, kind, off.how, off.since,
                      max(at - off.since, 0.0), restored)

    def count_media(self, call: Call, kind: str, off: MediaOff, at: float) -> None:
        """Count the interruption once, if it has outlasted the grace at `at` in an active
        call (the caller knows the avatar was still there then)."""
        if off.counted or call.state is not CallState.ACTIVE:
            return
        if at - off.since >= self.settings.interruption_grace:
            off.counted = True
            self.emit(CallListener.media_interrupted, call, kind, off.how, off.since)
