"""Memory per live call and /metrics render time, in a fresh process of their own.

    python -m benchmarks.live_calls --calls 10000 100000 --metrics-at 10000

Builds the sidecar's tracker (`monitor.app.build_monitor`), then feeds it, through the
project's own parser (`monitor.intake.events.parse_event`),
user-joined and avatar-joined webhooks of
calls that stay live. The bodies are made beforehand in worker processes, so the resident memory
measured around the feeding is what the tracker keeps, not the bodies or their garbage. At each
step it reports resident bytes per call (right after feeding, and after gc.collect()), and at
`--metrics-at` calls the time of /metrics as its handler renders it (`CachedExposition`), and of
`generate_latest(registry)`. Bytes per call are also taken with
tracemalloc on a second tracker (what Python allocates, without allocator slack). Prints one
line, JSON, last, after the summary table (benchmarks/summary.py): /metrics at 10,000 calls and
the bytes per call at 10,000 and 100,000, with the CPU other processes used meanwhile.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence

from prometheus_client.exposition import generate_latest

from benchmarks import machine
from benchmarks.summary import Figure, print_summary
from benchmarks.traffic import live_call_bodies
from monitor.app import Monitor, build_monitor
from monitor.calls.model import CallState
from monitor.config import Config
from monitor.intake.events import parse_event
from monitor.web.exposition import CachedExposition
from tests.support.webhooks import KEY, SECRET

_PAGE = os.sysconf("SC_PAGE_SIZE")
_MAX_CALLS = 10_000_000
_TRACED_CALLS = 10_000


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


def _monitor() -> Monitor:
    return build_monitor(Config(KEY, SECRET, max_calls=_MAX_CALLS))


def feed(monitor: Monitor, bodies: Sequence[bytes], now: float) -> None:
    """What the intake does after verification: parse, then apply."""
    apply = monitor.tracker.apply
    for body in bodies:
        apply(parse_event(body), now)


def _times(render: Callable[[], bytes], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        render()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def metrics_time(monitor: Monitor, runs: int) -> dict[str, float]:
    """Median and p99, in milliseconds, of /metrics as the handler renders it (from the cache
    of unchanged families), the first such render (nothing cached), and the registry rendered
    whole by prometheus_client (`generate_latest_*`, what /metrics cost before the cache)."""
    exposition = CachedExposition(monitor.registry)
    start = time.perf_counter()
    exposition.render(generate_latest)
    first = (time.perf_counter() - start) * 1e3
    times = _times(lambda: exposition.render(generate_latest), runs)
    whole = _times(lambda: generate_latest(monitor.registry), runs)
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    whole_cuts = statistics.quantiles(whole, n=100, method="inclusive")
    return {"median_ms": statistics.median(times), "p99_ms": cuts[98], "runs": runs,
            "bytes": len(exposition.render(generate_latest)), "first_ms": first,
            "generate_latest_median_ms": statistics.median(whole),
            "generate_latest_p99_ms": whole_cuts[98]}


def traced_bytes_per_call(bodies: Sequence[bytes], now: float) -> float:
    """Python allocations kept per call, by tracemalloc, over a fresh tracker."""
    monitor = _monitor()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    feed(monitor, bodies, now)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / (len(bodies) // 2)


def measure(steps: Sequence[int], metrics_at: int, metrics_runs: int) -> dict:
    bodies = live_call_bodies(max(steps))
    now = time.time()
    monitor = _monitor()
    gc.collect()
    base = rss_bytes()
    out: dict = {"baseline_rss": base, "steps": []}
    fed = 0
    for calls in sorted(steps):
        feed(monitor, bodies[2 * fed:2 * calls], now)
        fed = calls
        raw = rss_bytes()
        gc.collect()
        collected = rss_bytes()
        out["steps"].append({
            "calls": calls, "tracked": monitor.tracker.tracked,
            "active": monitor.tracker.counts[CallState.ACTIVE],
            "rss": collected, "per_call": (raw - base) / calls,
            "per_call_after_gc": (collected - base) / calls,
        })
        if calls == metrics_at:
            out["metrics"] = metrics_time(monitor, metrics_runs)
    del monitor
    traced = min(_TRACED_CALLS, max(steps))
    out["traced_per_call"] = traced_bytes_per_call(bodies[:2 * traced], now)
    out["traced_calls"] = traced
    return out


def figures(out: dict) -> list[Figure]:
    """The summary rows: /metrics at 10,000 calls, bytes per call at 10,000 and 100,000 (those
    of the steps measured)."""
    others_cpu = out.get("others_cpu")
    rows = []
    if "metrics" in out:
        rows.append(Figure("metrics_median_10k", out["metrics"]["median_ms"], "ms", 2,
                           "lower", others_cpu))
    targets = {10_000: ("memory_per_call_10k", 1800), 100_000: ("memory_per_call_100k", 2048)}
    for step in out["steps"]:
        if step["calls"] in targets:
            name, target = targets[step["calls"]]
            rows.append(Figure(name, step["per_call"], "B", target, "lower", others_cpu))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--metrics-at", type=int, default=10_000)
    parser.add_argument("--metrics-runs", type=int, default=200)
    args = parser.parse_args()
    start = machine.snapshot()
    out = measure(args.calls, args.metrics_at, args.metrics_runs)
    out["others_cpu"] = machine.others(start, machine.snapshot())
    print_summary("live_calls", figures(out))
    print(json.dumps(out))  # the last line: benchmarks/webhook_intake.py reads it


if __name__ == "__main__":
    main()
