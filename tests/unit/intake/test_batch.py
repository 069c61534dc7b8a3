"""Requests of one loop turn are decided together, in order, each failing alone."""

from __future__ import annotations

import asyncio

import pytest

from monitor.intake.batch import Pending, TurnBatch, guarded


class Recorder:
    """A two-stage decider: doubles each number, refuses negatives, fails on 13."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.applied: list[int] = []

    def decide(self, batch: list[Pending[int, str]]) -> None:
        self.batches.append([p.item for p in batch])
        batch = guarded(self.checked, batch)
        guarded(self.apply, batch)

    def checked(self, pending: Pending[int, str]) -> bool:
        if pending.item < 0:
            return pending.settle("refused")
        if pending.item == 13:
            raise ValueError("unlucky")
        return True

    def apply(self, pending: Pending[int, str]) -> bool:
        self.applied.append(pending.item)
        return pending.settle(str(pending.item * 2))


async def test_one_turn_is_one_batch_in_arrival_order() -> None:
    recorder = Recorder()
    batch = TurnBatch(recorder.decide)
    answers = await asyncio.gather(*(batch.submit(n) for n in (3, 1, 2)))
    assert answers == ["6", "2", "4"]
    assert recorder.batches == [[3, 1, 2]]
    assert recorder.applied == [3, 1, 2]
    # The next turn's items make a new batch.
    assert await batch.submit(5) == "10"
    assert recorder.batches == [[3, 1, 2], [5]]


async def test_a_failing_item_fails_alone() -> None:
    recorder = Recorder()
    batch = TurnBatch(recorder.decide)
    results = await asyncio.gather(batch.submit(1), batch.submit(13), batch.submit(-1),
                                   batch.submit(2), return_exceptions=True)
    assert results[0] == "2" and results[2] == "refused" and results[3] == "4"
    assert isinstance(results[1], ValueError)
    assert recorder.applied == [1, 2]


async def test_a_cancelled_request_is_still_decided() -> None:
    recorder = Recorder()
    batch = TurnBatch(recorder.decide)
    gone = asyncio.ensure_future(batch.submit(7))
    kept = asyncio.ensure_future(batch.submit(8))
    await asyncio.sleep(0)  # both submitted: the batch runs on the next turn
    gone.cancel()
    assert await kept == "16"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert recorder.applied == [7, 8]


async def test_a_full_batch_is_decided_at_once() -> None:
    recorder = Recorder()
    batch = TurnBatch(recorder.decide, limit=4)
    answers = await asyncio.gather(*(batch.submit(n) for n in range(10)))
    assert answers == [str(2 * n) for n in range(10)]
    assert [len(b) for b in recorder.batches] == [4, 4, 2]
    assert recorder.applied == list(range(10))


async def test_a_fault_outside_the_stages_fails_the_undecided() -> None:
    def broken(batch: list[Pending[int, str]]) -> None:
        batch[0].settle("first")
        raise RuntimeError("decider bug")

    batch = TurnBatch(broken)
    results = await asyncio.gather(batch.submit(1), batch.submit(2), return_exceptions=True)
    assert results[0] == "first"
    assert isinstance(results[1], RuntimeError)


async def test_an_item_left_without_an_answer_fails() -> None:
    batch: TurnBatch[int, str] = TurnBatch(lambda items: None)
    with pytest.raises(RuntimeError, match="without an answer"):
        await batch.submit(1)
