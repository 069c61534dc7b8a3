"""Scrape the sidecar's /metrics, read samples by name and labels, poll until a condition holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")
Key = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Snapshot:
    """One scrape, parsed."""

    samples: dict[Key, float]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        return cls({(s.name, frozenset(s.labels.items())): s.value
                    for family in text_string_to_metric_families(text)
                    for s in family.samples})

    def get(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None when the series is absent."""
        return self.samples.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels: str) -> float:
        """Like get(), but an absent series is an assertion failure."""
        found = self.get(name, **labels)
        assert found is not None, f"no series {name}{labels} in /metrics"
        return found

    def count(self, histogram: str, **labels: str) -> float:
        return self.value(histogram + "_count", **labels)

    def sum(self, histogram: str, **labels: str) -> float:
        return self.value(histogram + "_sum", **labels)

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every series of a sample name, by label set."""
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


@dataclass(frozen=True)
class Expect:
    """An expected sample value."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()

    def mismatch(self, snapshot: Snapshot) -> str | None:
        got = snapshot.get(self.name, **dict(self.labels))
        if got == self.value:
            return None
        return f"{self.name}{dict(self.labels)} = {got}, expected {self.value}"


def expect(name: str, value: float, **labels: str) -> Expect:
    return Expect(name, value, tuple(sorted(labels.items())))


class MetricsClient:
    """Reads one sidecar's /metrics."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.url = base_url + "/metrics"

    async def scrape(self) -> Snapshot:
        async with self.http.get(self.url) as resp:
            assert resp.status == 200, f"GET {self.url}: HTTP {resp.status}"
            return Snapshot.parse(await resp.text())

    async def wait_for(self, condition: Callable[[Snapshot], bool], what: str,
                       timeout: float = 10.0) -> Snapshot:
        """Scrape until `condition` holds; the first snapshot for which it does."""
        return await poll_until(self.scrape, condition, what, timeout)

    async def wait_value(self, name: str, expected: float, timeout: float = 10.0,
                         **labels: str) -> Snapshot:
        """Scrape until the sample equals `expected`."""
        return await self.wait_for(lambda s: s.get(name, **labels) == expected,
                                   f"{name}{labels} == {expected}", timeout)

    async def wait_all(self, *expected: Expect, timeout: float = 10.0) -> Snapshot:
        """Scrape until every expected sample has its value; the failure names the ones off."""
        last: list[Snapshot] = []

        async def probe() -> Snapshot:
            last[:] = [await self.scrape()]
            return last[0]

        def settled(snapshot: Snapshot) -> bool:
            return all(e.mismatch(snapshot) is None for e in expected)

        try:
            return await poll_until(probe, settled, "expected samples", timeout)
        except AssertionError:
            off = [m for e in expected if (m := e.mismatch(last[0])) is not None]
            raise AssertionError(f"after {timeout:.1f}s: " + "; ".join(off)) from None


async def poll_until(probe: Callable[[], Awaitable[T]], condition: Callable[[T], bool],
                     what: str, timeout: float = 10.0, interval: float = 0.1) -> T:
    """Call `probe` until `condition(result)` holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if condition(result):
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; "
                                 f"last: {_brief(result)}")
        await asyncio.sleep(interval)


def _brief(result: object) -> str:
    if isinstance(result, Snapshot):
        interesting = {f"{n}{dict(labels)}": v for (n, labels), v in result.samples.items()
                       if n.startswith("avatar_") and v}
        return str(interesting)[:4000]
    return repr(result)[:4000]
