"""A sidecar app served over real HTTP on loopback, as the start_monitor fixture hands it to a
test: send signed webhooks, scrape /metrics, wait for a value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from livekit.protocol import webhook

from monitor.app import Monitor
from tests.support import scrape
from tests.support.webhooks import KEY, SECRET, signed


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
