"""Gauges of the calls in progress, read from the tracker at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.calls.model import CallState
from monitor.calls.tracker import CallTracker
from monitor.sinks.metric_table import SPECS


class CallStateCollector(Collector):
    """Gauges read from the tracker at scrape time: nothing to keep in step by hand."""

    def __init__(self, tracker: CallTracker) -> None:
        self._tracker = tracker

    def describe(self) -> Iterable[Metric]:
        """The families without reading the tracker (registration checks names with this)."""
        return self._families()

    def collect(self) -> Iterable[Metric]:
        return self._families(self._tracker)

    @staticmethod
    def _families(tracker: CallTracker | None = None) -> list[Metric]:
        in_progress_spec, tracked_spec = SPECS["calls_in_progress"], SPECS["calls_tracked"]
        in_progress = GaugeMetricFamily(in_progress_spec.name, in_progress_spec.help,
                                        labels=in_progress_spec.labels)
        tracked = GaugeMetricFamily(tracked_spec.name, tracked_spec.help)
        if tracker is not None:
            counts = tracker.counts
            in_progress.add_metric(["ringing"], counts[CallState.RINGING])
            in_progress.add_metric(["active"], counts[CallState.ACTIVE])
            tracked.add_metric([], tracker.tracked)
        return [in_progress, tracked]
