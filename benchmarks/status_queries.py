"""Diagnosis queries: /v1/calls and /v1/calls/{room} work against a /metrics scrape, in one run.

    .venv/bin/python -m benchmarks.status_queries [--live 10000] [--finished 1000]

Builds the sidecar (`monitor.app.build_monitor`) with `--live` live calls (user and avatar
joined, through the project's parser) and `--finished` finished ones (network departures), then
times, in this process, what each request does besides HTTP (a scan's yields to the event loop
included, in a loop of its own): rendering /metrics (the baseline,
the operation Prometheus triggers every scrape), the default call list (newest 100), a verdict
filter that must diagnose every call (`verdict=network`), a room looked up by name and its
detail rendered to JSON, and one event taken by the backend bridge. Prints medians and p99s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable

from prometheus_client.exposition import generate_latest

from benchmarks.traffic import live_call_bodies
from monitor.app import build_monitor
from monitor.calls.inputs import PipelineError
from monitor.config import Config
from monitor.diagnosis.api import CallQuery, detail
from monitor.intake.events import parse_event
from monitor.reports.signals import ReportedEvent
from tests.support.webhooks import KEY, SECRET, Room, avatar, encode, user


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and p99 in milliseconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), statistics.quantiles(times, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=10_000)
    parser.add_argument("--finished", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    monitor = build_monitor(Config(KEY, SECRET, max_calls=10 * args.live,
                                   recent_calls=args.finished))
    now = time.time()
    t = now - 600
    for _ in range(args.finished):
        room, caller, face = Room(created_at=t), user(t), avatar(t + 1)
        for event in (room.joined(caller), room.joined(face), room.left(face, t + 60, 14)):
            monitor.tracker.apply(parse_event(encode(event)), now)
    oldest = next(iter(monitor.status.records.finished.values())).room
    for body in live_call_bodies(args.live):
        monitor.tracker.apply(parse_event(body), now)
    status, bridge = monitor.status, monitor.bridge
    first = next(iter(monitor.status.records.live.values())).room
    rows = {
        "/metrics render (baseline)": timed(lambda: generate_latest(monitor.registry), args.runs),
        "/v1/calls (newest 100)": timed(
            lambda: asyncio.run(status.find(CallQuery(None, None, 100))), args.runs),
        "/v1/calls?verdict=network (all calls)": timed(
            lambda: asyncio.run(status.find(CallQuery(None, "network", 1000))), args.runs),
        "/v1/calls?verdict=failed (all calls)": timed(
            lambda: asyncio.run(status.find(CallQuery(None, "failed", 1000))), args.runs),
        "status page: recent failures (finished calls)": timed(
            lambda: asyncio.run(status.find(CallQuery("finished", "failed", 50))), args.runs),
        "/v1/calls/{room}, a finished call": timed(
            lambda: json.dumps(detail(r := status.records.latest(oldest), status.verdict(r))),
            args.runs),
        "/v1/calls/{room}, the oldest live call": timed(
            lambda: json.dumps(detail(r := status.records.latest(first), status.verdict(r))),
            args.runs),
        "one /v1/events event through the bridge": timed(
            lambda: bridge.accept("http", ReportedEvent(PipelineError("llm", True)), now, first),
            args.runs * 20),
    }
    print(f"{args.live:,} live and {args.finished:,} finished calls; ms over {args.runs} runs")
    print(f"{'work':<44} {'median ms':>10} {'p99 ms':>8} {'x /metrics':>10}")
    base = rows["/metrics render (baseline)"][0]
    for name, (median, p99) in rows.items():
        print(f"{name:<44} {median:>10.3f} {p99:>8.3f} {median / base:>10.2f}")


if __name__ == "__main__":
    main()
