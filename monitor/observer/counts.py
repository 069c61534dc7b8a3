"""What the room observer and the reconciler count (monitor.sinks.metrics.Metrics implements
it), with the closed values of their labels."""

from __future__ import annotations

from typing import Literal, Protocol

ObserverSkip = Literal["limit", "gone"]  # over --observe-max-rooms; the call ended meanwhile
ReconcileAction = Literal["call_recovered", "join", "leave", "room_gone"]
DataRefusal = Literal["forbidden", "not_avatar"]


class ObserverCounts(Protocol):
    def observer_skipped(self, reason: ObserverSkip) -> None:
        """A room not observed."""

    def observer_reconnected(self) -> None:
        """A reconnection attempt after losing a room."""

    def observer_disconnected(self, reason: str) -> None:
        """The observer lost a room, by LiveKit disconnect reason."""

    def audio_probe(self, outcome: str) -> None:
        """A probe of the avatar's audio ended: heard, dry or undecided."""

    def data_refused(self, topic: str, reason: DataRefusal) -> None:
        """A data message (or session stream) refused, by topic label."""

    def late_sender(self, outcome: str) -> None:
        """A sender the room did not hold, resolved (monitor.observer.senders.Resolved)."""

    def data_message(self, topic: str, kind: str) -> None:
        """A data message read, by topic label and type."""


class ListingCounts(Protocol):
    def reconcile_run(self, ok: bool) -> None:
        """A RoomService listing succeeded or failed."""

    def listing_applied(self, action: ReconcileAction | str) -> None:
        """What a listing showed that webhooks had not."""
