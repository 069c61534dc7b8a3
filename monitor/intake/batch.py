"""Requests that arrive in the same turn of the event loop, decided together.

Under load, one turn of the loop reads many requests. Deciding them stage by stage (every
signature, then every parse, then each event in arrival order into the call state) keeps each
stage's code and data warm in the CPU's caches; one request at a time, every stage starts cold
after the HTTP and socket work of the last one. benchmarks/README.md has the figures.

A request waits at most until the next turn of the loop. Items are decided in arrival order;
an exception deciding one item fails that item alone. A batch holds at most `limit` items: the
one that fills it decides the batch at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")

DEFAULT_LIMIT = 1024


@dataclass(slots=True)
class Pending(Generic[Item, Answer]):
    """One submitted item, and what deciding it came to: an answer, or the exception."""

    item: Item
    future: asyncio.Future[Answer] = field(repr=False)
    answer: Answer | None = None
    failure: Exception | None = None

    def settle(self, answer: Answer) -> bool:
        """Record the answer; False, so that a stage can `return pending.settle(...)` to drop
        the item from the next stages."""
        self.answer = answer
        return False


# A decider walks a whole batch: each item ends with an answer, or with a failure that
# `guarded` recorded.
Decider = Callable[[list[Pending[Item, Answer]]], None]


def guarded(stage: Callable[[Pending[Item, Answer]], bool],
            batch: list[Pending[Item, Answer]]) -> list[Pending[Item, Answer]]:
    """Run one stage over the batch; the items it keeps (True) go on to the next stage. An
    exception fails its item alone."""
    kept = []
    for pending in batch:
        try:
            if stage(pending):
                kept.append(pending)
        except Exception as exc:  # one bad item must not fail the others
            pending.failure = exc
    return kept


class TurnBatch(Generic[Item, Answer]):
    """Collects what is submitted during one turn of the loop, then decides it in one go."""

    def __init__(self, decide: Decider[Item, Answer], limit: int = DEFAULT_LIMIT) -> None:
        self._decide = decide
        self._limit = limit
        self._waiting: list[Pending[Item, Answer]] = []

    async def submit(self, item: Item) -> Answer:
        """The item's answer, once its batch is decided; raises what deciding it raised."""
        loop = asyncio.get_running_loop()
        pending: Pending[Item, Answer] = Pending(item, loop.create_future())
        if not self._waiting:
            loop.call_soon(self._run)
        self._waiting.append(pending)
        if len(self._waiting) >= self._limit:
            self._run()
        return await pending.future

    def _run(self) -> None:
        batch, self._waiting = self._waiting, []
        if not batch:
            return  # decided already, when it filled up
        try:
            self._decide(batch)
        except Exception as exc:  # a fault outside the stages: every item not decided fails
            for pending in batch:
                if pending.answer is None and pending.failure is None:
                    pending.failure = exc
        for pending in batch:
            future = pending.future
            if future.done():  # its request was cancelled; the item was decided all the same
                continue
            if pending.failure is not None:
                future.set_exception(pending.failure)
            elif pending.answer is None:
                future.set_exception(RuntimeError("a batch item was left without an answer"))
            else:
                future.set_result(pending.answer)
