"""/metrics from the cache is byte for byte what prometheus_client renders from the registry."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    openmetrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from monitor.web.exposition import CachedExposition

ACCEPTS = ["", "text/plain; version=0.0.4",
           "application/openmetrics-text; version=1.0.0; charset=utf-8",
           "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8"]


class _Live(Collector):
    """A scrape-time collector whose values, documentation and series the test changes."""

    def __init__(self) -> None:
        self.value: float = 0.0
        self.stamp: float | int | None = None
        self.series = ["a"]
        self.help = "Live value."

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("live_value", self.help, labels=["which"])
        for which in self.series:
            family.add_metric([which], self.value, timestamp=self.stamp)
        return [family]


def _registry() -> tuple[CollectorRegistry, list, _Live]:
    registry = CollectorRegistry()
    counter = Counter("things", "Things.", ["kind"], registry=registry)
    gauge = Gauge("level", "A level.", registry=registry)
    histogram = Histogram("wait_seconds", "Waits.", ["stage"], buckets=(0.1, 1, 10),
                          registry=registry)
    summary = Summary("size_bytes", "Sizes.", registry=registry)
    info = Info("build", "Build.", registry=registry)
    enum = Enum("mode", "Mode.", states=["on", "off"], registry=registry)
    live = _Live()
    registry.register(live)
    info.info({"version": "1"})

    def step(rng: random.Random) -> None:
        match rng.randrange(8):
            case 0:
                counter.labels(rng.choice("abc")).inc(rng.choice([1, 0.5, 0]))
            case 1:
                gauge.set(rng.choice([0.0, -0.0, 1, 1.0, 1e20, float("inf"), float("nan")]))
            case 2:
                histogram.labels(rng.choice("xy")).observe(
                    rng.choice([0, 0.05, 3, 100]), {"trace_id": rng.choice("01")})
            case 3:
                summary.observe(rng.random())
            case 4:
                enum.state(rng.choice(["on", "off"]))
            case 5:
                live.value = rng.choice([0.0, -0.0, 2, 2.0])
                live.stamp = rng.choice([None, 5, 5.0])
            case 6:
                live.series = rng.choice([["a"], ["b"], ["a", "b"], []])
                live.help = rng.choice(["Live value.", "Live value, again."])
            case _:
                pass  # a scrape with nothing changed

    return registry, [step], live


@pytest.mark.parametrize("accept", ACCEPTS)
def test_cached_output_equals_prometheus_client_after_random_changes(accept: str) -> None:
    registry, (step,), _ = _registry()
    exposition = CachedExposition(registry)
    encoder, _ = choose_encoder(accept)
    rng = random.Random(accept)
    for _ in range(400):
        for _ in range(rng.randrange(3)):
            step(rng)
        assert exposition.render(encoder) == encoder(registry)


def test_both_formats_from_one_cache_stay_exact() -> None:
    """Scrapes alternating between formats, with increments between them."""
    registry, _, _ = _registry()
    counter = Counter("alternating", "Alternating.", registry=registry)
    exposition = CachedExposition(registry)
    for n in range(5):
        assert exposition.render(generate_latest) == generate_latest(registry)
        assert exposition.render(openmetrics_latest) == openmetrics_latest(registry)
        counter.inc()
        assert f"alternating_total {n + 1}.0\n".encode() in exposition.render(generate_latest)


def test_an_increment_shows_in_the_next_scrape() -> None:
    registry = CollectorRegistry()
    counter = Counter("hits", "Hits.", registry=registry)
    exposition = CachedExposition(registry)
    assert b"hits_total 0.0\n" in exposition.render(generate_latest)
    counter.inc()
    assert b"hits_total 1.0\n" in exposition.render(generate_latest)
    assert b"hits_total 1.0\n" in exposition.render(generate_latest)


def test_a_collector_unregistered_leaves_the_output() -> None:
    registry, _, live = _registry()
    exposition = CachedExposition(registry)
    assert b"live_value" in exposition.render(generate_latest)
    registry.unregister(live)
    assert exposition.render(generate_latest) == generate_latest(registry)
    assert b"live_value" not in exposition.render(generate_latest)


def test_openmetrics_ends_with_eof_once() -> None:
    registry, _, _ = _registry()
    text = CachedExposition(registry).render(
        choose_encoder("application/openmetrics-text; version=1.0.0")[0])
    assert text.endswith(b"# EOF\n") and text.count(b"# EOF") == 1
    assert openmetrics.exposition.CONTENT_TYPE_LATEST.startswith("application/openmetrics-text")
