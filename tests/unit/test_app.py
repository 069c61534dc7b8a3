"""build_monitor's wiring where it decides what is counted."""

from __future__ import annotations

import math
import time

import pytest

from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import Room, user


@pytest.fixture
async def measuring_sidecar(start_monitor: StartMonitor) -> RunningMonitor:
    """A sidecar with its default clock: the server's time measured from webhooks."""
    return await start_monitor(clock=None)


async def test_a_server_clock_ahead_of_ours_counts_nothing_twice(
        measuring_sidecar: RunningMonitor) -> None:
    """The counting start is this process's start in the server's time, as measured. On a
    server whose clock is two minutes ahead, a user who joined a minute before the start in
    its time (counted by the previous process) and is first seen by their leave is not
    counted again, nor is their call taken for one abandoned."""
    server_now = float(math.floor(time.time() + 120))  # whole seconds, as webhooks carry them
    room = Room(created_at=server_now - 61)
    for event in (room.started(), room.left(user(server_now - 60), server_now)):
        assert (await measuring_sidecar.send(event))[0] == 200
    offset = await measuring_sidecar.value("avatar_monitor_server_clock_offset_seconds")
    assert offset is not None and 118 < offset < 122
    assert await measuring_sidecar.value("avatar_calls_started_total") == 0
    assert await measuring_sidecar.value("avatar_calls_abandoned_total") == 0
