"""Reported events waiting for their call: held under their room name and sid until a call with
that very name and sid starts (the tracker takes them then, monitor.calls.core.WaitingReports),
and otherwise expired, counted as expired and never as what they report."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from monitor.calls.inputs import Signal, StartupFailureMessage
from monitor.calls.model import Call
from monitor.reports.counts import ReportCounts
from monitor.reports.signals import ReportedEvent

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class BridgeSettings:
    pending_rooms: int = 1_000  # rooms with events waiting for their call
    pending_per_room: int = 32
    pending_seconds: float = 120.0


@dataclass(slots=True)
class _Waiting:
    since: float
    events: list[tuple[ReportedEvent, float]]


class PendingReports:
    """Events waiting for calls not started yet, bounded by `settings`."""

    def __init__(self, metrics: ReportCounts, settings: BridgeSettings = BridgeSettings()) -> None:
        self._metrics = metrics
        self.settings = settings
        # (room name, room sid) -> events waiting for that call
        self._waiting: OrderedDict[tuple[str, str], _Waiting] = OrderedDict()

    @property
    def waiting_events(self) -> int:
        return sum(len(w.events) for w in self._waiting.values())

    def wait(self, room_name: str, room_sid: str, event: ReportedEvent, at: float,
             now: float) -> None:
        """Keep the event for the call with this room name and sid."""
        key = (room_name, room_sid)
        waiting = self._waiting.get(key)
        if waiting is None:
            while len(self._waiting) >= self.settings.pending_rooms:
                self._drop(next(iter(self._waiting)))
            waiting = self._waiting[key] = _Waiting(now, [])
        if len(waiting.events) >= self.settings.pending_per_room:
            waiting.events.pop(0)
            self._metrics.bridge_event("buffer", "expired")
        waiting.events.append((event, at))

    def expire(self, now: float) -> None:
        """Give up on rooms whose call did not appear in time."""
        limit = now - self.settings.pending_seconds
        while self._waiting:
            key, waiting = next(iter(self._waiting.items()))
            if waiting.since > limit:
                break
            self._drop(key)

    def take_waiting(self, call: Call) -> list[tuple[Signal, float]]:
        """The events that waited for this call, now that it starts: counted here, applied by
        the tracker."""
        waiting = self._waiting.pop((call.room_name, call.room_sid), None)
        if waiting is None:
            return []
        for event, _ in waiting.events:
            count_applied(self._metrics, event)
            self._metrics.bridge_event("buffer", "applied")
        return [(event.signal, at) for event, at in waiting.events]

    def drop_waiting(self, call: Call) -> None:
        """The call ended without starting: what waited for it expires, never to be applied to
        a later call in the same room."""
        if (call.room_name, call.room_sid) in self._waiting:
            self._drop((call.room_name, call.room_sid))

    def _drop(self, key: tuple[str, str]) -> None:
        """The call never appeared: its events expire, and count as nothing else."""
        waiting = self._waiting.pop(key)
        self._metrics.bridge_event("buffer", "expired", len(waiting.events))
        log.debug("no call for room %s (sid %s): %d reported events expired",
                  key[0], key[1], len(waiting.events))


def count_applied(metrics: ReportCounts, event: ReportedEvent) -> None:
    """Count an applied event (a startup failure is counted per call, by the tracker)."""
    if not isinstance(event.signal, StartupFailureMessage):
        metrics.reported(event.signal)
