"""How busy the machine is apart from the benchmark: CPU time used by other processes.

Benchmarks on a shared 2-CPU machine are only as good as the CPUs they had. A run's share is
taken from /proc/stat (all CPU time used) less the benchmark's own processes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
NOISY = 0.10  # other processes using more than a tenth of a CPU make figures noisy


@dataclass(frozen=True, slots=True)
class Snapshot:
    wall: float
    busy: float  # CPU seconds used by every process, all CPUs
    own: float  # CPU seconds of this process and its waited-for children


def busy_seconds() -> float:
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS


def snapshot() -> Snapshot:
    times = os.times()
    own = times.user + times.system + times.children_user + times.children_system
    return Snapshot(time.perf_counter(), busy_seconds(), own)


def others(start: Snapshot, end: Snapshot, also_ours: float = 0.0) -> float:
    """CPUs (1.0 = one whole CPU) used by other processes between two snapshots; `also_ours` is
    CPU time of our processes not yet waited for (a running server)."""
    wall = end.wall - start.wall
    used = (end.busy - start.busy) - (end.own - start.own) - also_ours
    return max(used, 0.0) / wall if wall > 0 else 0.0


def others_now(seconds: float = 0.5) -> float:
    start = snapshot()
    time.sleep(seconds)
    return others(start, snapshot())


def describe(cpus: float) -> str:
    note = " (busy machine: figures are noisy)" if cpus > NOISY else ""
    return f"other processes used {cpus:.2f} CPU{note}"
