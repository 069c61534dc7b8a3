"""Fixtures: an avatar-monitor app served over real HTTP on loopback, one per test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from livekit.protocol import webhook
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.trace.export import SpanExporter

from monitor.app import MONITOR, Monitor, create_app
from monitor.config import Config
from monitor.web.server import server_options
from tests import scrape
from tests.webhooks import KEY, SECRET, signed


@dataclass
class RunningMonitor:
    """A sidecar listening on 127.0.0.1 and a client session to talk to it."""

    url: str
    monitor: Monitor
    http: aiohttp.ClientSession
    runner: web.AppRunner | None = None

    async def stop(self) -> None:
        """Stop it as SIGTERM would (the app's cleanup runs); the test's end does it too."""
        if self.runner is not None and self.runner.server is not None:
            await self.runner.cleanup()

    async def send(self, event: webhook.WebhookEvent, key: str = KEY, secret: str = SECRET
                   ) -> tuple[int, dict]:
        body, headers = signed(event, key, secret)
        return await self.post(body, headers)

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        async with self.http.post(self.url + "/webhook", data=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def scrape(self, accept: str = "") -> str:
        headers = {"Accept": accept} if accept else {}
        async with self.http.get(self.url + "/metrics", headers=headers) as resp:
            assert resp.status == 200
            return await resp.text()

    async def value(self, name: str, **labels: str) -> float | None:
        return scrape.value(await self.scrape(), name, **labels)

    async def wait_for(self, name: str, expected: float, timeout: float = 5.0,
                       **labels: str) -> float:
        """Poll /metrics until the sample equals `expected`; fail with the last value."""
        deadline = time.monotonic() + timeout
        while True:
            current = await self.value(name, **labels)
            if current == expected:
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}{labels} = {current}, expected {expected}")
            await asyncio.sleep(0.05)


StartMonitor = Callable[..., Awaitable[RunningMonitor]]


@pytest.fixture
async def start_monitor() -> AsyncIterator[StartMonitor]:
    """Start a sidecar with Config overrides; everything is stopped at the end of the test."""
    runners: list[web.AppRunner] = []
    http = aiohttp.ClientSession()

    async def start(span_exporter: SpanExporter | None = None,
                    log_exporter: LogRecordExporter | None = None, **overrides: object
                    ) -> RunningMonitor:
        config = Config(KEY, SECRET, host="127.0.0.1", port=0, **overrides)  # type: ignore[arg-type]
        # The simulated server clock of tests/webhooks.py is this machine's: webhooks dated in
        # the past are late deliveries, not a server clock behind ours.
        app = create_app(config, clock=time.time, span_exporter=span_exporter,
                         log_exporter=log_exporter)
        runner = web.AppRunner(app, access_log=None, **server_options())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return RunningMonitor(f"http://{host}:{port}", app[MONITOR], http, runner)

    yield start
    await http.close()
    for runner in runners:
        if runner.server is not None:  # not stopped by the test already
            await runner.cleanup()


@pytest.fixture
async def sidecar(start_monitor: StartMonitor) -> RunningMonitor:
    return await start_monitor()
