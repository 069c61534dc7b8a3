"""A queue of timers for tracked calls: entries of (when it is due, room sid, anything else),
taken out once due."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

# (when it is due, room sid, ...): compared whole in a heap
Entry = TypeVar("Entry", bound=tuple[Any, ...])


class Timers(Generic[Entry]):
    """Timers ordered by when they are due (`in_order=False`: a heap), or kept in the order
    they were set (`in_order=True`: a queue whose head must fall due before those behind it,
    for timers set at a constant delay from a clock that goes forward)."""

    def __init__(self, in_order: bool) -> None:
        self._heap: list[Entry] | None = None if in_order else []
        self._queue: deque[Entry] = deque()

    def add(self, entry: Entry) -> None:
        if self._heap is not None:
            heapq.heappush(self._heap, entry)
        else:
            self._queue.append(entry)

    def due(self, now: float) -> Iterator[Entry]:
        """The entries due at `now`, taken out one by one (entries added meanwhile count)."""
        if self._heap is not None:
            heap = self._heap
            while heap and heap[0][0] <= now:
                yield heapq.heappop(heap)
            return
        queue = self._queue
        while queue and queue[0][0] <= now:
            yield queue.popleft()

    def __len__(self) -> int:
        return len(self._heap) if self._heap is not None else len(self._queue)
