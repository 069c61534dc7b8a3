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


async def test_a_server_clock_behind_ours_counts_the_first_calls(
        measuring_sidecar: RunningMonitor) -> None:
    """The counting start is this process's start in the server's time, as measured. On a
    server whose clock is two minutes behind, a user who joined just after the start (their
    join's webhook lost) is not taken for one from before it: their call is counted."""
    # Whole seconds, as LiveKit's webhooks carry them; never before this process's start.
    server_now = float(math.ceil(time.time() - 120))
    room = Room(created_at=server_now)
    for event in (room.started(), room.left(user(server_now), server_now)):
        assert (await measuring_sidecar.send(event))[0] == 200
    offset = await measuring_sidecar.value("avatar_monitor_server_clock_offset_seconds")
    assert offset is not None and -122 < offset < -116
    assert await measuring_sidecar.value("avatar_calls_started_total") == 1
