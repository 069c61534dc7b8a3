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
from collections import OrderedDict
from dataclasses import dataclass

from monitor.calls.model import Call, CallState
from monitor.calls.tracker import CallTracker
from monitor.intake.dedup import RecentIds
from monitor.reports.signals import ReportedEvent, Signal, StartupFailureMessage
from monitor.sinks.metrics import Metrics

log = logging.getLogger(__name__)

RECENT_IDS = 100_000
# The sender's clock is trusted when it is this close to ours; otherwise arrival time is used.
MAX_CLOCK_SKEW_SECONDS = 300.0


@dataclass(slots=True, frozen=True)
class BridgeSettings:
    pending_rooms: int = 1_000  # rooms with events waiting for their call
    pending_per_room: int = 32
    pending_seconds: float = 120.0


@dataclass(slots=True)
class _Waiting:
    since: float
    events: list[tuple[ReportedEvent, float]]


class BackendBridge:
    """Accepts reported events, deduplicates them, counts them and applies them to calls."""

    def __init__(self, tracker: CallTracker, metrics: Metrics,
                 settings: BridgeSettings = BridgeSettings()) -> None:
        self._tracker = tracker
        self._metrics = metrics
        self.settings = settings
        self._recent = RecentIds(RECENT_IDS)
        # (room name, room sid) -> events waiting for that call
        self._waiting: OrderedDict[tuple[str, str], _Waiting] = OrderedDict()

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
            self._count(event)
            self._tracker.signal(call.room_sid, event.signal, at)
            return self._outcome(source, "applied")
        self._wait(room_name, sid, event, at, now)
        return self._outcome(source, "buffered")

    def conflicts(self, room_name: str, room_sid: str | None) -> bool:
        """Whether `room_sid` is the sid of a known call in another room than `room_name`."""
        if not room_sid:
            return False
        call = self._tracker.call(room_sid)
        return call is not None and call.room_name != room_name

    def expire(self, now: float) -> None:
        """Give up on rooms whose call did not appear in time."""
        limit = now - self.settings.pending_seconds
        while self._waiting:
            key, waiting = next(iter(self._waiting.items()))
            if waiting.since > limit:
                break
            self._drop(key)

    @property
    def waiting_events(self) -> int:
        return sum(len(w.events) for w in self._waiting.values())

    def take_waiting(self, call: Call) -> list[tuple[Signal, float]]:
        """The events that waited for this call, now that it starts: counted here, applied by
        the tracker (TrackerCore.reports)."""
        waiting = self._waiting.pop((call.room_name, call.room_sid), None)
        if waiting is None:
            return []
        for event, _ in waiting.events:
            self._count(event)
            self._metrics.bridge_events.labels("buffer", "applied").inc()
        return [(event.signal, at) for event, at in waiting.events]

    def drop_waiting(self, call: Call) -> None:
        """The call ended without starting: what waited for it expires, never to be applied to
        a later call in the same room."""
        if (call.room_name, call.room_sid) in self._waiting:
            self._drop((call.room_name, call.room_sid))

    # -- internals -------------------------------------------------------------------------

    def _count(self, event: ReportedEvent) -> None:
        """Count an applied event (a startup failure is counted per call, by the tracker)."""
        if not isinstance(event.signal, StartupFailureMessage):
            self._metrics.reported(event.signal)

    def _wait(self, room_name: str, room_sid: str, event: ReportedEvent, at: float,
              now: float) -> None:
        key = (room_name, room_sid)
        waiting = self._waiting.get(key)
        if waiting is None:
            while len(self._waiting) >= self.settings.pending_rooms:
                self._drop(next(iter(self._waiting)))
            waiting = self._waiting[key] = _Waiting(now, [])
        if len(waiting.events) >= self.settings.pending_per_room:
            waiting.events.pop(0)
            self._metrics.bridge_events.labels("buffer", "expired").inc()
        waiting.events.append((event, at))

    def _drop(self, key: tuple[str, str]) -> None:
        """The call never appeared: its events expire, and count as nothing else."""
        waiting = self._waiting.pop(key)
        self._metrics.bridge_events.labels("buffer", "expired").inc(len(waiting.events))
        log.debug("no call for room %s (sid %s): %d reported events expired",
                  key[0], key[1], len(waiting.events))

    def _outcome(self, source: str, outcome: str) -> str:
        self._metrics.bridge_events.labels(source, outcome).inc()
        return outcome


def _is_calls_avatar(call: Call, identity: str) -> bool:
    """Whether `identity` is the call's avatar (or the one taking over), or the call does not
    know its avatar yet."""
    if call.avatar_identity is None or call.avatar_identity == identity:
        return True
    return call.next_avatar is not None and call.next_avatar.identity == identity
