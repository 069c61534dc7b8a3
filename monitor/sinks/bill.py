"""The bill: how long avatars (billed GPU sessions) stay in rooms with no user to see them.

A call listener that keeps the avatars alone now, and a collector that exports, at scrape time
and from server timestamps, the seconds avatars have spent alone (a counter that grows while an
avatar waits, not only once it leaves), how many are alone now, and the longest such stay.
Only what happened from a call's `counted_from` on is counted: after a restart, the previous
process counted the rest. A scrape costs the same however many avatars are alone: the sum of
their start times is kept as they come and go (exactly, in integer nanoseconds: no rounding
drift), and the earliest and latest of them in heaps.
"""

from __future__ import annotations

import heapq
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
        self._since_sum = 0  # the sum of _alone's values, in nanoseconds: exact
        # (since, sid) and (-since, sid) of the stays alone; entries no longer in _alone are
        # dropped when they come to the top, or all at once when they outnumber the others.
        self._earliest: list[tuple[float, str]] = []
        self._latest: list[tuple[float, str]] = []

    # -- call transitions ------------------------------------------------------------------

    def avatar_alone(self, call: Call, since: float) -> None:
        self._forget(call.room_sid)
        counted_since = max(since, call.counted_from)
        self._alone[call.room_sid] = counted_since
        self._since_sum += _nanoseconds(counted_since)
        heapq.heappush(self._earliest, (counted_since, call.room_sid))
        heapq.heappush(self._latest, (-counted_since, call.room_sid))
        if len(self._earliest) > 2 * len(self._alone) + 64:
            self._rebuild()

    def avatar_unattended(self, call: Call, since: float, until: float) -> None:
        counted_since = self._forget(call.room_sid)
        if counted_since is None:
            counted_since = max(since, call.counted_from)
        self._counted += max(until - counted_since, 0.0)

    def _forget(self, sid: str) -> float | None:
        since = self._alone.pop(sid, None)
        if since is not None:
            self._since_sum -= _nanoseconds(since)
        return since

    def _rebuild(self) -> None:
        self._earliest = [(since, sid) for sid, since in self._alone.items()]
        self._latest = [(-since, sid) for sid, since in self._alone.items()]
        heapq.heapify(self._earliest)
        heapq.heapify(self._latest)

    def _top(self, heap: list[tuple[float, str]], sign: float) -> float:
        """The earliest (sign 1) or latest (sign -1) start of a stay alone now."""
        while self._alone.get(heap[0][1]) != sign * heap[0][0]:
            heapq.heappop(heap)
        return sign * heap[0][0]

    # -- scrape ----------------------------------------------------------------------------

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._clock())

    def _families(self, now: float | None) -> list[Metric]:
        seconds = CounterMetricFamily(SPECS["unattended_seconds"].name,
                                      SPECS["unattended_seconds"].help)
        now_alone = GaugeMetricFamily(SPECS["unattended_now"].name, SPECS["unattended_now"].help)
        longest = GaugeMetricFamily(SPECS["unattended_longest"].name,
                                    SPECS["unattended_longest"].help)
        if now is not None:
            alone, longest_now = self._alone_now(now)
            seconds.add_metric([], self._counted + alone)
            now_alone.add_metric([], len(self._alone) if now else 0)
            longest.add_metric([], longest_now)
        return [seconds, now_alone, longest]

    def _alone_now(self, now: float) -> tuple[float, float]:
        """The seconds the avatars alone now have been so, in all and the longest."""
        if not now or not self._alone:
            return 0.0, 0.0
        longest = max(now - self._top(self._earliest, 1.0), 0.0)
        if self._top(self._latest, -1.0) <= now:
            return (len(self._alone) * _nanoseconds(now) - self._since_sum) / 1e9, longest
        # A stay dated after now (the server's clock as estimated here went back): counted
        # from now, as zero.
        return sum(max(now - since, 0.0) for since in self._alone.values()), longest


def _nanoseconds(seconds: float) -> int:
    return round(seconds * 1e9)
