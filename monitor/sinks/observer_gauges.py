"""The room observer's gauges, read from it at scrape time (zero with no observer)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.sinks.metric_table import SPECS, SPEECH_SOURCES


class WatchedRooms(Protocol):
    """What the gauges read from the room observer."""

    def connected_rooms(self) -> int:
        """Rooms the observer is connected to now."""
        ...

    def rooms_with_speech_from(self, source: str) -> int:
        """Connected rooms whose avatar speech comes from `source` (agent_state, audio)."""
        ...


class ObserverGauges(Collector):
    """avatar_monitor_observer_rooms and avatar_monitor_observer_speech_source."""

    def __init__(self, rooms: WatchedRooms | None) -> None:
        self._rooms = rooms

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._rooms)

    @staticmethod
    def _families(rooms: WatchedRooms | None) -> list[Metric]:
        connected, speech = SPECS["observer_rooms"], SPECS["observer_speech_source"]
        connected_family = GaugeMetricFamily(connected.name, connected.help,
                                             value=rooms.connected_rooms() if rooms else 0)
        speech_family = GaugeMetricFamily(speech.name, speech.help, labels=speech.labels)
        for source in SPEECH_SOURCES:
            speech_family.add_metric([source], rooms.rooms_with_speech_from(source) if rooms
                                     else 0)
        return [connected_family, speech_family]
