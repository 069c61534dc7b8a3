"""The backend bridge: events the voice agent reports, by data channel or POST /v1/events.

Each event is applied once: an `id` seen by both paths counts once. An event counts when it is
applied to its call, found by room sid (which must belong to the room named) or, without a sid,
by the room's current call. Events for a call whose webhooks have not arrived yet wait in a
bounded buffer under their room name and sid, are applied when a call with that very name and
sid starts, and otherwise expire (or when that call ends without starting): counted as
expired, never as what they report. An event for a call that is over and forgotten is not kept
(outcome `unmatched`): the room's next call would take it. An event with
no sid and no call to go to is not kept (outcome `unmatched`). The avatar's word forwarded by the
voice agent (`avatar_message`) counts only when it names the call's avatar, once the call knows
it (outcome `not_avatar` otherwise), as the observer takes the avatar's own messages.
"""

from __future__ import annotations

import logging

from monitor.calls.model import Call, CallState
from monitor.calls.tracker import CallTracker
from monitor.intake.dedup import RecentIds
from monitor.reports.counts import ReportCounts
from monitor.reports.pending import PendingReports, count_applied
from monitor.reports.signals import ReportedEvent

log = logging.getLogger(__name__)

RECENT_IDS = 100_000
# The sender's clock is trusted when it is this close to ours; otherwise arrival time is used.
MAX_CLOCK_SKEW_SECONDS = 300.0


class BackendBridge:
    """Accepts reported events, deduplicates them, counts them and applies them to calls."""

    def __init__(self, tracker: CallTracker, metrics: ReportCounts,
                 pending: PendingReports) -> None:
        self._tracker = tracker
        self._metrics = metrics
        self.pending = pending  # the tracker takes them when their call starts
        self._recent = RecentIds(RECENT_IDS)

    def accept(self, source: str, event: ReportedEvent, now: float, room_name: str,
               room_sid: str | None = None) -> str:
        """Take one event for a room from `source` (data_channel, agent_session or http);
        returns its outcome: applied, buffered, unmatched, duplicate or not_avatar. The caller
        checks `conflicts` first."""
        if event.id is not None and event.id in self._recent:
            return self._outcome(source, "duplicate")
        at = now
        if event.at is not None and abs(event.at - now) <= MAX_CLOCK_SKEW_SECONDS:
            at = event.at
        call = self._tracker.call_in_room(room_name, room_sid)
        sid = room_sid or (call.room_sid if call is not None else None)
        if not sid or (call is None and self._tracker.has_ended(sid)):
            # No call to go to, or its call is over and forgotten: not kept (the room's next
            # call would take it). Its id is not remembered: the same event by the other path,
            # with a sid, may still find its call.
            return self._outcome(source, "unmatched")
        if event.avatar is not None and call is not None and not _is_calls_avatar(call,
                                                                                  event.avatar):
            return self._outcome(source, "not_avatar")
        if event.id is not None:
            self._recent.seen(event.id)
        if call is not None and call.state is not CallState.PENDING:
            count_applied(self._metrics, event)
            self._tracker.signal(call.room_sid, event.signal, at, now)
            return self._outcome(source, "applied")
        self.pending.wait(room_name, sid, event, at, now)
        return self._outcome(source, "buffered")

    def conflicts(self, room_name: str, room_sid: str | None) -> bool:
        """Whether `room_sid` is the sid of a known call in another room than `room_name`."""
        if not room_sid:
            return False
        call = self._tracker.call(room_sid)
        return call is not None and call.room_name != room_name

    def expire(self, now: float) -> None:
        """Give up on rooms whose call did not appear in time."""
        self.pending.expire(now)

    @property
    def waiting_events(self) -> int:
        return self.pending.waiting_events

    def _outcome(self, source: str, outcome: str) -> str:
        self._metrics.bridge_event(source, outcome)
        return outcome


def _is_calls_avatar(call: Call, identity: str) -> bool:
    """Whether `identity` is the call's avatar (or the one taking over), or the call does not
    know its avatar yet."""
    if call.avatar_identity is None or call.avatar_identity == identity:
        return True
    return call.next_avatar is not None and call.next_avatar.identity == identity
