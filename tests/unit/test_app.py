"""build_monitor's wiring where it decides what is counted."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from monitor.app import MONITOR, create_app
from monitor.config import Config
from monitor.web.server import server_options
from tests.support.served import RunningMonitor
from tests.support.webhooks import KEY, SECRET, Room, user


@pytest.fixture
async def measuring_sidecar() -> AsyncIterator[RunningMonitor]:
    """A sidecar with its default clock: the server's time measured from webhooks."""
    app = create_app(Config(KEY, SECRET, host="127.0.0.1", port=0))
    runner = web.AppRunner(app, access_log=None, **server_options())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as http:
        yield RunningMonitor(f"http://{host}:{port}", app[MONITOR], http, runner)
    await runner.cleanup()


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
