"""A bounded memory of recently seen webhook ids, so LiveKit's retries count once."""

from __future__ import annotations

from collections import deque


class RecentIds:
    """Remembers the last `capacity` ids; older ones are forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._order: deque[str] = deque()
        self._ids: set[str] = set()

    def seen(self, event_id: str) -> bool:
        """True if the id was seen recently; otherwise remember it and return False."""
        if event_id in self._ids:
            return True
        self._ids.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self._capacity:
            self._ids.discard(self._order.popleft())
        return False

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids
