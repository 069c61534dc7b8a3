"""What the webhook intake counts (monitor.sinks.metrics.Metrics implements it)."""

from __future__ import annotations

from typing import Protocol


class WebhookCounts(Protocol):
    def webhook_received(self, event: str) -> None:
        """A webhook accepted, by LiveKit event name."""

    def webhook_foreign(self) -> None:
        """A webhook verified and left to another shard's replica."""

    def webhook_rejected(self, reason: str) -> None:
        """A webhook rejected or ignored (unauthorized, malformed, duplicate, ...)."""

    def webhooks_dropped_upstream(self, count: int) -> None:
        """livekit-server says it dropped `count` webhooks for this URL."""
