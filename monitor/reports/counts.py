"""What the backend bridge and POST /v1/events count (monitor.sinks.metrics.Metrics implements
it)."""

from __future__ import annotations

from typing import Protocol

from monitor.calls.inputs import Signal


class ReportCounts(Protocol):
    def bridge_event(self, source: str, outcome: str, count: int = 1) -> None:
        """Reported events from `source` (data_channel, agent_session, http, buffer), by
        outcome (applied, buffered, duplicate, ...)."""

    def bridge_rejected(self, reason: str) -> None:
        """A POST /v1/events request rejected, by reason."""

    def reported(self, signal: Signal) -> None:
        """A reported event applied to its call."""
