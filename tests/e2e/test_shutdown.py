"""A real sidecar process stops within a few seconds of SIGTERM even while a client holds a
request whose body never comes (aiohttp waits 60 s by default)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest

from monitor.web.server import SHUTDOWN_SECONDS
from tests.support.sidecar import Sidecar
from tests.support.webhooks import agent_token

pytestmark = pytest.mark.e2e
# Finishing the stalled request (SHUTDOWN_SECONDS), cancelling it (at most as long again), and
# the application's own cleanup.
STOP_WITHIN = 2 * SHUTDOWN_SECONDS + 3


async def test_sigterm_with_a_stalled_request_stops_in_seconds(
        sidecar: Sidecar, http: aiohttp.ClientSession, api_keys: tuple[str, str]) -> None:
    assert sidecar.process is not None
    token = agent_token("room", *api_keys)  # /v1/events reads the body of an agent only
    stalled = []
    for path in ("/webhook", "/v1/events"):
        reader, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
        writer.write(f"POST {path} HTTP/1.1\r\nHost: sidecar\r\nContent-Length: 1000\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n{{".encode())
        await writer.drain()
        stalled.append((reader, writer))
    # Answered after the stalled requests were sent: the sidecar has read them by now.
    async with http.get(f"{sidecar.url}/healthz") as resp:
        assert resp.status == 200
    started = time.monotonic()
    os.kill(sidecar.process.pid, signal.SIGTERM)
    code = await asyncio.get_running_loop().run_in_executor(
        None, sidecar.process.wait, STOP_WITHIN + 30)
    took = time.monotonic() - started
    print(f"\nSIGTERM to exit with {len(stalled)} stalled requests: {took:.2f} s")
    assert code == 0
    assert took < STOP_WITHIN, f"stopping took {took:.1f} s"
    for reader, writer in stalled:
        answer = await asyncio.wait_for(reader.read(), 5)  # to EOF: the connection is closed
        assert b" 413 " not in answer and b" 401 " not in answer  # it was waiting for the body
        writer.close()
