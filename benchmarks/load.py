"""Load generators: wrk for closed-loop throughput, an asyncio client for fixed-rate latency.

The asyncio client speaks raw HTTP/1.1 over keep-alive connections (no client library in the
way). In open loop it sends request i at start + i/rate whatever the server does, opening a
new connection when none is idle, and measures each latency from the request's scheduled time,
so a stalled server is not hidden by a waiting client (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPLAY_LUA = Path(__file__).with_name("replay.lua")
MAX_IN_FLIGHT = 1_000  # open loop: beyond this, requests are dropped and counted as errors
LATE_LIMIT = 2.0  # open loop: a client this many seconds behind its schedule stops sending
DRAIN_SECONDS = 3.0  # open loop: responses not in by then count as errors
REQUEST_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one load run measured. Latencies in milliseconds."""

    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_path() -> str | None:
    return shutil.which("wrk")


def pin(cpu: int | None) -> dict:
    """Popen arguments that run the child on one CPU (none on a single-CPU machine)."""
    if cpu is None:
        return {}
    return {"preexec_fn": lambda: os.sched_setaffinity(0, {cpu})}


def run_wrk(url: str, requests_file: Path, seconds: float, connections: int,
            cpu: int | None) -> LoadResult:
    """Closed loop: `connections` keep-alive connections on one wrk thread, for `seconds`."""
    command = [wrk_path() or "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "--timeout", "5s", "-s", str(REPLAY_LUA), url, "--", str(requests_file), "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                          check=False, **pin(cpu))
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    stats = json.loads(line[6:])
    errors = sum(int(stats[k]) for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult("wrk", int(stats["requests"]), stats["duration_us"] / 1e6,
                      stats["p50_us"] / 1e3, stats["p99_us"] / 1e3, errors)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    raw: bytes) -> int:
    """Send one request, read its response; return the status."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    at = head.lower().find(b"content-length:")
    length = int(head[at + 15:head.index(b"\r\n", at)]) if at >= 0 else 0
    if length:
        await reader.readexactly(length)
    return int(head[9:12])


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    if len(latencies) < 2:
        return (latencies[0] * 1e3,) * 2 if latencies else (0.0, 0.0)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49] * 1e3, cuts[98] * 1e3


class _Client:
    """Keep-alive connections to one server and the tallies of one run."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.latencies: list[float] = []
        self.errors = 0
        self.in_flight = 0

    async def send(self, raw: bytes, since: float, record: bool = True) -> None:
        self.in_flight += 1
        conn = None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                conn = self.idle.pop() if self.idle else await asyncio.open_connection(
                    self.host, self.port)
                status = await _exchange(*conn, raw)
        except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.CancelledError):
            self.errors += 1
            if conn is not None:
                conn[1].close()
            return
        finally:
            self.in_flight -= 1
        if record:
            self.latencies.append(time.perf_counter() - since)
        self.errors += status != 200
        self.idle.append(conn)

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def _open_loop(host: str, port: int, raws: Sequence[bytes], rate: float, seconds: float,
                     warmup: int) -> LoadResult:
    client = _Client(host, port)
    warm_until = time.perf_counter() + REQUEST_TIMEOUT
    for raw in raws[:warmup]:  # first requests of a fresh process: imports, caches
        if time.perf_counter() > warm_until:
            break
        await client.send(raw, time.perf_counter(), record=False)
    client.errors = 0
    count = min(len(raws) - warmup, int(rate * seconds))
    tasks: set[asyncio.Task] = set()
    start = time.perf_counter() + 0.01
    for i in range(count):
        due = start + i / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        elif -delay > LATE_LIMIT:
            client.errors += count - i
            break
        if client.in_flight >= MAX_IN_FLIGHT:
            client.errors += 1
            continue
        task = asyncio.create_task(client.send(raws[warmup + i], due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        _, late = await asyncio.wait(set(tasks), timeout=DRAIN_SECONDS)
        for task in late:
            task.cancel()  # counted as an error by send()
        if late:
            await asyncio.wait(late, timeout=1.0)
    elapsed = time.perf_counter() - start
    client.close()
    p50, p99 = _percentiles(client.latencies)
    return LoadResult("asyncio open loop", len(client.latencies), elapsed, p50, p99,
                      client.errors)


async def _closed_loop(host: str, port: int, raws: Sequence[bytes], seconds: float,
                       connections: int) -> LoadResult:
    client = _Client(host, port)
    cursor = iter(range(len(raws)))
    end = time.perf_counter() + seconds

    async def worker() -> None:
        for i in cursor:
            if time.perf_counter() >= end:
                return
            await client.send(raws[i], time.perf_counter())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    client.close()
    p50, p99 = _percentiles(client.latencies)
    return LoadResult("asyncio closed loop", len(client.latencies), elapsed, p50, p99,
                      client.errors)


def open_loop(host: str, port: int, raws: Sequence[bytes], rate: float, seconds: float,
              warmup: int = 200) -> LoadResult:
    """Fixed rate, latency from each request's scheduled send time; warm-up not recorded."""
    return asyncio.run(_open_loop(host, port, raws, rate, seconds, warmup))


def closed_loop(host: str, port: int, raws: Sequence[bytes], seconds: float,
                connections: int) -> LoadResult:
    """The Python stand-in for wrk: `connections` workers, each one request at a time."""
    return asyncio.run(_closed_loop(host, port, raws, seconds, connections))
