"""The backend bridge: events the voice agent reports, by data channel or POST /v1/events.

Each event is applied once: an `id` seen by both paths counts once. Counters move as soon as an
event arrives, whether or not its call is known, so nothing reported is lost. What an event does
to its call (a startup failure, the time of an unrecoverable error, a span event) needs the call:
events for a room whose webhooks have not arrived yet wait in a bounded buffer, are applied when
the call starts, and expire after a while (a startup failure that expires is still counted).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from monitor.dedup import RecentIds
from monitor.metrics import Metrics
from monitor.signals import ReportedEvent, StartupFailureMessage
from monitor.state import Call, CallListener, CallState, CallTracker

log = logging.getLogger("monitor.bridge")

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


class BackendBridge(CallListener):
    """Accepts reported events, deduplicates them, counts them and applies them to calls."""

    def __init__(self, tracker: CallTracker, metrics: Metrics,
                 settings: BridgeSettings = BridgeSettings()) -> None:
        self._tracker = tracker
        self._metrics = metrics
        self.settings = settings
        self._recent = RecentIds(RECENT_IDS)
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()  # room name -> events

    def accept(self, source: str, event: ReportedEvent, now: float, room_name: str,
               room_sid: str | None = None) -> str:
        """Take one event for a room from `source` (data_channel or http); returns its
        outcome: applied, buffered or duplicate."""
        if event.id is not None and self._recent.seen(event.id):
            return self._outcome(source, "duplicate")
        at = now
        if event.at is not None and abs(event.at - now) <= MAX_CLOCK_SKEW_SECONDS:
            at = event.at
        if not isinstance(event.signal, StartupFailureMessage):
            self._metrics.reported(event.signal)
        call = self._call(room_sid, room_name)
        if call is not None:
            self._tracker.signal(call.room_sid, event.signal, at)
            return self._outcome(source, "applied")
        self._wait(room_name, event, at, now)
        return self._outcome(source, "buffered")

    def expire(self, now: float) -> None:
        """Give up on rooms whose call did not appear in time."""
        limit = now - self.settings.pending_seconds
        while self._waiting:
            name, waiting = next(iter(self._waiting.items()))
            if waiting.since > limit:
                break
            self._drop(name)

    @property
    def waiting_events(self) -> int:
        return sum(len(w.events) for w in self._waiting.values())

    # -- call transitions ------------------------------------------------------------------

    def call_started(self, call: Call) -> None:
        waiting = self._waiting.pop(call.room_name, None)
        if waiting is None:
            return
        for event, at in waiting.events:
            self._tracker.signal(call.room_sid, event.signal, at)
            self._metrics.bridge_events.labels("buffer", "applied").inc()

    # -- internals -------------------------------------------------------------------------

    def _call(self, room_sid: str | None, room_name: str) -> Call | None:
        calls = self._tracker.calls
        call = calls.get(room_sid) if room_sid else None
        if call is None:
            sid = self._tracker.sid_by_name.get(room_name)
            call = calls.get(sid) if sid else None
        if call is not None and call.state is CallState.PENDING:
            return None  # the room exists but no user joined yet: wait for the call itself
        return call

    def _wait(self, room_name: str, event: ReportedEvent, at: float, now: float) -> None:
        waiting = self._waiting.get(room_name)
        if waiting is None:
            while len(self._waiting) >= self.settings.pending_rooms:
                self._drop(next(iter(self._waiting)))
            waiting = self._waiting[room_name] = _Waiting(now, [])
        if len(waiting.events) >= self.settings.pending_per_room:
            self._lost(waiting.events.pop(0)[0])
            self._metrics.bridge_events.labels("buffer", "expired").inc()
        waiting.events.append((event, at))

    def _drop(self, room_name: str) -> None:
        waiting = self._waiting.pop(room_name)
        for event, _ in waiting.events:
            self._lost(event)
            self._metrics.bridge_events.labels("buffer", "expired").inc()
        log.info("no call for room %s: %d reported events not applied to a call",
                 room_name, len(waiting.events))

    def _lost(self, event: ReportedEvent) -> None:
        """An event whose call never appeared: its counters moved already, except this one."""
        if isinstance(event.signal, StartupFailureMessage):
            self._metrics.startup_failures.labels("message").inc()

    def _outcome(self, source: str, outcome: str) -> str:
        self._metrics.bridge_events.labels(source, outcome).inc()
        return outcome
