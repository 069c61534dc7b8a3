"""The bill: how long avatars (billed GPU sessions) stay in rooms with no user to see them.

A call listener that keeps the avatars alone now, and a collector that exports, at scrape time
and from server timestamps, the seconds avatars have spent alone (a counter that grows while an
avatar waits, not only once it leaves), how many are alone now, and the longest such stay.
Only what happened from a call's `counted_from` on is counted: after a restart, the previous
process counted the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.calls.listener import CallListener
from monitor.calls.model import Call
from monitor.sinks.metric_table import SPECS


class AvatarBill(CallListener, Collector):
    """Seconds avatars spent alone; the avatars alone now, by room sid."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock  # the server's time now
        self._counted = 0.0  # seconds of stays alone that have ended
        self._alone: dict[str, float] = {}  # room sid -> since when counted (server time)

    # -- call transitions ------------------------------------------------------------------

    def avatar_alone(self, call: Call, since: float) -> None:
        self._alone[call.room_sid] = max(since, call.counted_from)

    def avatar_unattended(self, call: Call, since: float, until: float) -> None:
        counted_since = self._alone.pop(call.room_sid, max(since, call.counted_from))
        self._counted += max(until - counted_since, 0.0)

    # -- scrape ----------------------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._clock())

    def _families(self, now: float | None) -> list[Metric]:
        alone = [max(now - since, 0.0) for since in self._alone.values()] if now else []
        seconds = CounterMetricFamily(SPECS["unattended_seconds"].name,
                                      SPECS["unattended_seconds"].help)
        now_alone = GaugeMetricFamily(SPECS["unattended_now"].name, SPECS["unattended_now"].help)
        longest = GaugeMetricFamily(SPECS["unattended_longest"].name,
                                    SPECS["unattended_longest"].help)
        if now is not None:
            seconds.add_metric([], self._counted + sum(alone))
            now_alone.add_metric([], len(alone))
            longest.add_metric([], max(alone, default=0.0))
        return [seconds, now_alone, longest]
