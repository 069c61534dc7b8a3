"""CPU and memory of the room observer per observed room, on a real livekit-server.

    .venv/bin/python benchmarks/observer_rooms.py [--quick] [--max-rooms N] [--video]
                                                  [--agent-state] [--observe-media none]
                                                  [--runs N]

Inside a private network namespace (tests/support/netns.py) it starts livekit-server, the sidecar
(`avatar-monitor serve --livekit-url ...`, webhooks from the server) and a driver process
(benchmarks/observer_driver.py) that opens call rooms: a user and an avatar publishing a tone
(with --agent-state, also a voice agent whose lk.agent.state says when the avatar speaks: the
observer then receives no audio).
It ramps 10 -> 50 -> 100 -> 200 rooms; at each step it waits until the sidecar's
`avatar_monitor_observer_rooms` equals the rooms open, then measures over a window: CPU of the
sidecar, livekit-server and driver from /proc/<pid>/stat (100% = one core), the sidecar's RSS,
threads and file descriptors, and the time of a /metrics scrape. `--observe-media none` runs
the sidecar so (it subscribes to no track). `--runs N` does all that N times, each with fresh
processes, and ends with the median of the runs' per-room figures (CPU, memory, threads, file
descriptors over the no-room baseline, at the largest step the observer was in every room; and
the CPU and memory each room adds from the first step on, without what the first room sets up
once) in a benchmarks.summary table, the other processes' CPU beside each.

The floor under the memory per room, measured in the same invocation: after the ramp of the last
run (only that one, which keeps `make bench` about a minute longer per invocation), with the
driver's rooms still open, it stops the sidecar (its observer leaves them) and starts
benchmarks/rtc_floor.py, which connects one hidden livekit-rtc Room per room as the observer
does (its token and ROOM_OPTIONS) and does nothing else. Its CPU, RSS, threads and file
descriptors with no room, then in as many of the driver's rooms as the largest step the observer
was in every room (after SETTLE_SECONDS, over the same window) give what a bare connection costs
per room: printed per run, and in the summary `<prefix>_rtc_floor_memory_per_room` and the
observer's `<prefix>_memory_over_floor_per_room` (no targets). It has a time allowance of its own
(floor_seconds), beyond the run's budget; when it cannot be measured, the output says so loudly.
It reports; it does not gate: exit 0 whatever the figures, 2 when a component fails to start,
130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script (make bench), not only with -m
    sys.path.insert(0, str(REPO))

from benchmarks.machine import busy_seconds  # noqa: E402
from benchmarks.summary import Figure, print_summary  # noqa: E402
from tests.support import procs  # noqa: E402
from tests.support.livekit_server import (  # noqa: E402
    BinaryUnavailable,
    LiveKitServer,
    server_binary,
)
from tests.support.metrics import Snapshot  # noqa: E402
from tests.support.netns import NetnsError, private_network  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.sidecar import Sidecar  # noqa: E402

STEPS = (10, 50, 100, 200)
QUICK_STEPS = (10, 50)
TARGET_ROOMS = 200
BUDGET_SECONDS = 330.0  # the whole run, start-up and shut-down included, stays under ~6 min
SHUTDOWN_RESERVE = 45.0  # of the budget, kept for stopping everything
OPEN_DEADLINE = 30.0  # seconds to open a step's rooms, plus one second per new room
OBSERVE_DEADLINE = 60.0  # once the rooms are open, for the observer to be in all of them
HOLD_GRACE = 40.0  # after holding the driver: its joins in flight finish, the observer follows
ASK_TIMEOUT = 15.0  # the driver answers each command at once (unless it is starved of CPU)
SETTLE_SECONDS = 8.0  # after the observer count is reached: joins' one-off work dies down
SATURATED = 180.0  # % of one core: the two cores are (nearly) all in use
SCRAPES = 5  # timed /metrics scrapes per step (20 at the last)
CPU_PER_ROOM_TARGET = 0.25  # % of one core per observed room
MEMORY_PER_ROOM_TARGET = 1.0  # MiB resident per observed room
_TICKS = os.sysconf("SC_CLK_TCK")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_CONFIG_ENV = ("AVATAR_MONITOR_", "OTEL_", "LIVEKIT_")
_PY_PROBLEM = re.compile(r" (WARNING|ERROR|CRITICAL) ")
_GO_PROBLEM = re.compile(r"\t(WARN|ERROR|DPANIC|PANIC|FATAL)\t")


class StartFailed(RuntimeError):
    """A component did not come up: the run cannot measure anything."""


# -- processes ---------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def status_fields(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return dict(line.rstrip("\n").split(":\t", 1) for line in status if ":\t" in line)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass(frozen=True)
class CpuWindow:
    """CPU over one window: each named process's and the machine's other processes' (% of one
    core), and the window's length in seconds."""

    by_process: dict[str, float]
    others: float
    wall: float


def cpu_window(pids: Mapping[str, int], seconds: float) -> CpuWindow:
    """Sleep `seconds`, measuring the CPU of the processes `pids` (by name) meanwhile; the
    machine's other processes' is what the named ones leave out."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    busy0, wall0 = busy_seconds(), time.monotonic()
    time.sleep(seconds)
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    busy1, wall = busy_seconds(), time.monotonic() - wall0
    pct = {name: 100 * (after[name] - before[name]) / wall for name in pids}
    return CpuWindow(pct, max(100 * (busy1 - busy0) / wall - sum(pct.values()), 0.0), wall)


def thread_seconds(pid: int) -> dict[str, float]:
    """CPU seconds by thread name (threads of one name summed): where a process spends it."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as comm:
                name = comm.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return out


class ChildProcess:
    """A module of benchmarks as a child (observer_driver, rtc_floor): one JSON answer per
    command line."""

    def __init__(self, module: str, server: LiveKitServer, log_path: Path,
                 flags: Sequence[str] = ()) -> None:
        env = {**os.environ, "LIVEKIT_URL": server.url, "LIVEKIT_API_KEY": server.api_key,
               "LIVEKIT_API_SECRET": server.api_secret, "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", f"benchmarks.{module}", *flags]
        self.name = module
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=log,
                                            start_new_session=True)
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def ask(self, command: str, timeout: float) -> dict[str, Any]:
        """Send one command; its answer, or TimeoutError / RuntimeError (the child gone)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command.encode() + b"\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name} gave no answer to {command[:40]!r} in "
                                   f"{timeout:.0f}s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited ({self.process.poll()}); log "
                                       f"{self.log_path}:\n{procs.tail(self.log_path, 3000)}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def stop(self, timeout: float = 20.0) -> None:
        """Ask it to disconnect everyone and exit; kill its process group if it does not."""
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                self.ask("quit", timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


# -- measuring ---------------------------------------------------------------------------------

@dataclass
class Step:
    """What one step measured."""

    rooms: int  # rooms the driver had open
    observed: int  # avatar_monitor_observer_rooms at the end of the window
    sidecar_cpu: float  # % of one core
    rss_kib: int
    server_cpu: float
    driver_cpu: float
    others_cpu: float  # everything else on the machine (this script included)
    threads: int
    fds: int
    speech_seen: int  # calls whose avatar the observer has heard speak
    speech_from_audio: int = 0  # rooms whose speech comes from the avatar's audio (subscribed)
    scrape_ms: list[float] = field(default_factory=list)
    scrape_bytes: int = 0
    open_seconds: float = 0.0  # the driver opening this step's new rooms
    observe_seconds: float = 0.0  # then until the observer was in all of them
    problems: dict[str, int] = field(default_factory=dict)  # new log warnings and errors
    sidecar_threads: dict[str, float] = field(default_factory=dict)  # CPU % by thread name
    note: str = ""

    def top_threads(self, count: int = 4) -> str:
        top = sorted(self.sidecar_threads.items(), key=lambda x: -x[1])[:count]
        return ", ".join(f"{name} {pct:.1f}%" for name, pct in top)


@dataclass(frozen=True)
class Grown:
    """How one step's rooms were opened and observed."""

    rooms: int  # open at the driver
    observed: int
    failed: int  # rooms the driver failed to open so far (all steps)
    errors: list[str]
    held: bool  # the driver was stopped before it had opened them all (none failed)
    open_seconds: float
    observe_seconds: float  # from all rooms open until the observer was in all of them


class Bench:
    """The three processes and how to read them."""

    def __init__(self, sidecar: Sidecar, server: LiveKitServer, driver: ChildProcess) -> None:
        assert sidecar.process is not None and server.process is not None
        self.sidecar, self.server, self.driver = sidecar, server, driver
        self.pids = {"sidecar": sidecar.process.pid, "server": server.process.pid,
                     "driver": driver.pid}
        self.logs = {"sidecar": (sidecar.log_path, _PY_PROBLEM),
                     "server": (server.log_path, _GO_PROBLEM),
                     "driver": (driver.log_path, _PY_PROBLEM)}
        self._log_offsets = dict.fromkeys(self.logs, 0)
        self.exited_in_run = ""  # which process had exited when the steps ended
        self.problem_samples: dict[str, list[str]] = {name: [] for name in self.logs}

    def alive(self, sidecar: bool = True) -> str | None:
        """The name of a process that has exited, if any (the sidecar not asked about when
        `sidecar` is False: it was stopped on purpose)."""
        for name, process in (("sidecar", self.sidecar.process if sidecar else None),
                              ("livekit-server", self.server.process),
                              ("driver", self.driver.process)):
            if process is not None and process.poll() is not None:
                return f"{name} exited with {process.returncode}"
        return None

    def scrape(self) -> tuple[Snapshot, float, int]:
        """/metrics parsed, the milliseconds it took, and its size."""
        start = time.perf_counter()
        with _OPENER.open(self.sidecar.url + "/metrics", timeout=10) as response:
            body = response.read()
        elapsed = (time.perf_counter() - start) * 1e3
        return Snapshot.parse(body.decode()), elapsed, len(body)

    def observed(self) -> int:
        """avatar_monitor_observer_rooms now (-1 when /metrics does not answer)."""
        try:
            return int(self.scrape()[0].get("avatar_monitor_observer_rooms") or 0)
        except OSError:
            return -1

    def grow(self, rooms: int, open_by: float, give_up: float) -> Grown:
        """Have the driver open rooms up to `rooms`, then wait for the observer to be in all
        of them. At `open_by` (monotonic) the driver is held: the rooms being opened finish,
        no more start. Waiting ends at `give_up` whatever the state."""
        start = time.monotonic()
        status = self.driver.ask(f"grow {rooms}", ASK_TIMEOUT)
        opened_at: float | None = None
        held = False
        while True:
            observed = self.observed()
            status = self.driver.ask("status", ASK_TIMEOUT)
            now = time.monotonic()
            if opened_at is None and status["pending"] == 0:
                opened_at = now
            if opened_at is not None and observed == status["rooms"]:
                break
            if (now >= give_up or self.alive() or (held and now >= open_by + HOLD_GRACE)
                    or (opened_at is not None and now - opened_at >= OBSERVE_DEADLINE)):
                break
            if not held and now >= open_by:
                self.driver.ask("hold", ASK_TIMEOUT)
                held = True
            time.sleep(1.0)
        opened_at = opened_at or now
        short = held and int(status["rooms"]) < rooms
        return Grown(rooms=int(status["rooms"]), observed=observed,
                     failed=int(status["failed"]), errors=list(status["errors"]), held=short,
                     open_seconds=opened_at - start, observe_seconds=now - opened_at)

    def measure(self, rooms: int, seconds: float, scrapes: int) -> Step:
        """CPU over `seconds`, then memory, /metrics timings and the logs' new problems."""
        sidecar = self.pids["sidecar"]
        threads0 = thread_seconds(sidecar)
        window = cpu_window(self.pids, seconds)
        threads1 = thread_seconds(sidecar)
        gone = self.alive()
        if gone:
            raise OSError(gone)
        pct = window.by_process
        by_thread = {name: 100 * (used - threads0.get(name, 0.0)) / window.wall
                     for name, used in threads1.items()}
        status = status_fields(sidecar)
        if "VmRSS" not in status:  # exited meanwhile: a zombie has no memory
            raise OSError(self.alive() or "the sidecar exited")
        timings, size, snapshot = [], 0, Snapshot({})
        for _ in range(scrapes):
            with contextlib.suppress(OSError):
                snapshot, elapsed, size = self.scrape()
                timings.append(elapsed)
        speech = snapshot.get("avatar_time_to_first_speech_seconds_count") or 0
        from_audio = snapshot.get("avatar_monitor_observer_speech_source", source="audio") or 0
        return Step(
            rooms=rooms, observed=int(snapshot.get("avatar_monitor_observer_rooms") or 0),
            sidecar_cpu=pct["sidecar"], rss_kib=int(status["VmRSS"].split()[0]),
            server_cpu=pct["server"], driver_cpu=pct["driver"], others_cpu=window.others,
            threads=int(status["Threads"]), fds=fd_count(sidecar),
            speech_seen=int(speech), speech_from_audio=int(from_audio), scrape_ms=timings,
            scrape_bytes=size,
            problems=self.new_problems(), sidecar_threads=by_thread)

    def skip_logs(self) -> None:
        """Start counting problems from here (start-up warnings are not the steps')."""
        for name, (path, _) in self.logs.items():
            with contextlib.suppress(OSError):
                self._log_offsets[name] = path.stat().st_size

    def new_problems(self) -> dict[str, int]:
        """Warning and error lines each log gained since the last call; keeps a few samples."""
        counts = {}
        for name, (path, pattern) in self.logs.items():
            try:
                with path.open("rb") as log:
                    log.seek(self._log_offsets[name])
                    text = log.read().decode(errors="replace")
                    self._log_offsets[name] = log.tell()
            except OSError:
                continue
            lines = [line for line in text.splitlines() if pattern.search(line)]
            counts[name] = len(lines)
            samples = self.problem_samples[name]
            for line in lines:
                if len(samples) >= 6:
                    break
                samples.append(line[:300])
        return counts


# -- the run -----------------------------------------------------------------------------------

@dataclass
class Options:
    steps: list[int]
    seconds: float
    video: bool
    concurrency: int
    source: str
    keep_logs: bool
    agent_state: bool = False
    observe_media: str = "audio"
    runs: int = 1

    def driver_flags(self) -> list[str]:
        return ["--concurrency", str(self.concurrency), "--source", self.source,
                *(["--video"] if self.video else []),
                *(["--agent-state"] if self.agent_state else [])]


def steps_for(max_rooms: int, quick: bool) -> list[int]:
    """10/50/100/200 below `max_rooms`, then `max_rooms`; --quick stops at 50."""
    base = QUICK_STEPS if quick else STEPS
    top = min(max_rooms, base[-1]) if quick else max_rooms
    return [s for s in base if s < top] + [top]


@contextlib.contextmanager
def started(workdir: Path, binary: Path, options: Options) -> Iterator[Bench]:
    """livekit-server, the sidecar and the driver in the calling thread's namespace; stopped
    whatever happens: the driver, then the sidecar (so that it does not see the server go away
    and start rejoining rooms), then the server."""
    stops: list[tuple[str, Callable[[], object]]] = []
    try:
        try:
            livekit_port = free_port()
            sidecar = Sidecar(workdir / "sidecar", "APIbench", secrets.token_urlsafe(32),
                              extra_args=["--livekit-url", f"ws://127.0.0.1:{livekit_port}",
                                          "--observe-max-rooms", str(max(options.steps) + 50),
                                          "--observe-media", options.observe_media,
                                          "--log-level", "info"],
                              avatar_join_timeout=900.0)
            stops.append(("sidecar", sidecar.stop))
            sidecar.start()
            server = LiveKitServer(binary, workdir / "livekit", sidecar.api_key,
                                   sidecar.api_secret, webhook_urls=[sidecar.webhook_url],
                                   port=livekit_port)
            stops.append(("livekit-server", server.stop))
            server.start()
            driver = ChildProcess("observer_driver", server, workdir / "driver.log",
                                  options.driver_flags())
            stops.append(("driver", driver.stop))
        except (RuntimeError, OSError) as exc:
            raise StartFailed(str(exc)) from exc
        yield Bench(sidecar, server, driver)
    finally:
        order = ("driver", "sidecar", "livekit-server")
        for name, stop in sorted(stops, key=lambda item: order.index(item[0])):
            try:
                stop()
            except Exception as exc:  # stop the others all the same
                print(f"stopping {name} failed: {exc}", file=sys.stderr)


def ramp(bench: Bench, options: Options, deadline: float, out: list[Step]) -> str:
    """Baseline, then each step; appends to `out`. Returns why it stopped early, or ''."""
    why = _ramp(bench, options, deadline, out)
    gone = bench.alive()
    bench.exited_in_run = gone or ""
    return f"{why}; {gone}" if why and gone and gone not in why else why


def _ramp(bench: Bench, options: Options, deadline: float, out: list[Step]) -> str:
    time.sleep(SETTLE_SECONDS)
    bench.skip_logs()
    out.append(bench.measure(0, options.seconds, SCRAPES))
    _progress(out[-1])
    failed_before = 0
    for index, rooms in enumerate(options.steps):
        last = index == len(options.steps) - 1
        measuring = SETTLE_SECONDS + options.seconds + 5
        if time.monotonic() + measuring + 20 > deadline:
            return f"time budget spent before the {rooms}-room step"
        new = rooms - out[-1].rooms
        open_by = min(time.monotonic() + OPEN_DEADLINE + new,
                      deadline - measuring - HOLD_GRACE)
        try:
            grown = bench.grow(rooms, open_by, deadline - measuring)
        except (TimeoutError, RuntimeError) as exc:  # the driver is stuck or gone
            if index == 0 and isinstance(exc, RuntimeError):
                raise StartFailed(str(exc)) from exc
            return str(exc)
        gone = bench.alive()
        if gone:
            return f"{gone} while {grown.rooms} of {rooms} rooms were open"
        time.sleep(SETTLE_SECONDS)
        try:
            step = bench.measure(grown.rooms, options.seconds, 4 * SCRAPES if last else SCRAPES)
        except OSError as exc:  # a process is gone
            return f"measuring {rooms} rooms failed: {bench.alive() or exc}"
        step.open_seconds, step.observe_seconds = grown.open_seconds, grown.observe_seconds
        notes = []
        if grown.failed > failed_before:
            notes.append(f"{grown.failed - failed_before} rooms failed to open: "
                         f"{grown.errors[:2]}")
            failed_before = grown.failed
        if grown.held:
            notes.append(f"the driver opened {grown.rooms} of {rooms} rooms in "
                         f"{grown.open_seconds:.0f} s and was stopped there")
        if grown.observed != grown.rooms:
            notes.append(f"observer reached {grown.observed}/{grown.rooms} rooms "
                         f"{grown.observe_seconds:.0f} s after they were open")
        step.note = "; ".join(notes)
        out.append(step)
        _progress(step)
        gone = bench.alive()
        if gone:
            return gone
        if grown.held:
            return f"rooms could not be opened fast enough at the {rooms}-room step"
        if grown.rooms == 0:
            return "the driver could not open any room"
    return ""


def _progress(step: Step) -> None:
    print(f"  {step.rooms:>3} rooms: observer in {step.observed}, sidecar "
          f"{step.sidecar_cpu:.1f}% CPU {step.rss_kib / 1024:.0f} MiB, livekit-server "
          f"{step.server_cpu:.1f}%, driver {step.driver_cpu:.1f}%, others "
          f"{step.others_cpu:.1f}%, speech from audio in {step.speech_from_audio}"
          + (f"  [{step.note}]" if step.note else ""), flush=True)
    if step.rooms:
        print(f"       sidecar threads: {step.top_threads()}", flush=True)


# -- the floor ---------------------------------------------------------------------------------

FLOOR_START_STOP = 15.0  # seconds: the sidecar stopped, the floor process started and stopped
FLOOR_JOINS = 10.0  # seconds for the floor's connects (one by one, about 0.1 s each), plus
FLOOR_JOIN_PER_ROOM = 0.5  # seconds a room (about 0.3 measured at 98 rooms on 2 cores)


@dataclass(frozen=True)
class Usage:
    """One process over a window: its CPU (% of one core) and, at the end, its RSS, threads and
    file descriptors; and the CPU of the machine's other processes meanwhile."""

    cpu: float
    rss_kib: int
    threads: int
    fds: int
    others_cpu: float


def usage(pid: int, seconds: float, beside: Mapping[str, int]) -> Usage:
    """What process `pid` uses over `seconds` (OSError: it exited); the other processes' CPU
    leaves out the processes `beside` it (the server and the driver, as Step's does)."""
    window = cpu_window({"measured": pid, **beside}, seconds)
    status = status_fields(pid)
    if "VmRSS" not in status:  # a zombie has no memory
        raise OSError(f"process {pid} exited")
    return Usage(cpu=window.by_process["measured"], rss_kib=int(status["VmRSS"].split()[0]),
                 threads=int(status["Threads"]), fds=fd_count(pid), others_cpu=window.others)


@dataclass(frozen=True)
class Floor:
    """Bare livekit-rtc connections (benchmarks/rtc_floor.py), per room over that process's own
    no-room baseline: what a connection costs with nothing else in the process."""

    rooms: int
    cpu: float  # % of one core
    memory_mib: float
    threads: float
    fds: float
    others_cpu: float  # % of one core: the other processes' during the window with rooms


def floor_per_room(base: Usage, top: Usage, rooms: int) -> Floor:
    """The floor's per-room figures from its window with no room and with `rooms` rooms."""
    return Floor(rooms=rooms, cpu=(top.cpu - base.cpu) / rooms,
                 memory_mib=(top.rss_kib - base.rss_kib) / 1024 / rooms,
                 threads=(top.threads - base.threads) / rooms,
                 fds=(top.fds - base.fds) / rooms, others_cpu=top.others_cpu)


def floor_seconds(rooms: int, seconds: float) -> float:
    """About how long measuring the floor at `rooms` rooms takes, at most."""
    return (FLOOR_START_STOP + 2 * seconds + SETTLE_SECONDS + FLOOR_JOINS
            + FLOOR_JOIN_PER_ROOM * rooms)


def measure_floor(bench: Bench, workdir: Path, steps: Sequence[Step], seconds: float
                  ) -> tuple[Floor | None, str]:
    """With the driver's rooms open, stop the sidecar (its observer leaves them), start
    benchmarks.rtc_floor, measure it with no room, have it join as many of the driver's rooms
    as the largest step the observer was in every room, wait SETTLE_SECONDS and measure it
    again over the same window, within floor_seconds of its own (not the run's budget: the
    ramp may have used that up). The floor and a note, or None and why not."""
    observed = per_room(steps)
    if observed is None:
        return None, "no step had the observer in every room"
    rooms = observed.rooms
    deadline = time.monotonic() + floor_seconds(rooms, seconds)
    gone = bench.alive()
    if gone:
        return None, gone
    try:
        names = list(bench.driver.ask("names", ASK_TIMEOUT)["names"])[:rooms]
    except (TimeoutError, RuntimeError) as exc:
        return None, str(exc)
    if len(names) < rooms:
        return None, f"the driver has {len(names)} rooms open, not {rooms}"
    bench.sidecar.stop()
    floor = ChildProcess("rtc_floor", bench.server, workdir / "floor.log")
    beside = {name: bench.pids[name] for name in ("server", "driver")}
    try:
        floor.ask("status", ASK_TIMEOUT)  # it has started
        base = usage(floor.pid, seconds, beside)
        print(f"  floor, no room: {base.cpu:.1f}% CPU {base.rss_kib / 1024:.0f} MiB, "
              f"{base.threads} threads, {base.fds} fds", flush=True)
        join_by = deadline - SETTLE_SECONDS - seconds - 5
        joining = time.monotonic()
        joined = floor.ask("join " + " ".join(names), max(join_by - joining, 1.0))
        joining = time.monotonic() - joining
        if not joined["rooms"]:
            return None, f"the floor joined no room: {joined['errors']}"
        time.sleep(SETTLE_SECONDS)
        top = usage(floor.pid, seconds, beside)
        gone = bench.alive(sidecar=False)
        if gone:
            return None, f"{gone} while the floor was measured"
        print(f"  floor, {joined['rooms']} rooms (joined one by one in {joining:.0f} s): "
              f"{top.cpu:.1f}% CPU {top.rss_kib / 1024:.0f} MiB, {top.threads} threads, "
              f"{top.fds} fds, others {top.others_cpu:.1f}%", flush=True)
    except (TimeoutError, RuntimeError, OSError) as exc:
        return None, f"{exc} (log {floor.log_path})"
    finally:
        floor.stop()
    note = ("" if joined["rooms"] == rooms else
            f"the floor joined {joined['rooms']} of {rooms} rooms: {joined['errors'][:2]}")
    return floor_per_room(base, top, int(joined["rooms"])), note


def floor_line(floor: Floor, observer: PerRoom | None) -> str:
    """The floor per room, beside the observer's memory per room when there is one."""
    line = (f"bare livekit-rtc connection: {floor.memory_mib:.2f} MiB, {floor.cpu:.3f}% of a "
            f"core, {floor.fds:.1f} fds, {floor.threads:.2f} threads per room at {floor.rooms} "
            "rooms")
    if observer is not None:
        line += (f" (the observer: {observer.memory_mib:.2f} MiB per room at {observer.rooms} "
                 f"rooms, {observer.memory_mib - floor.memory_mib:.2f} MiB over the floor)")
    return line


# -- report ------------------------------------------------------------------------------------

def table(steps: Sequence[Step]) -> str:
    """The compact per-step table; per-room figures are over the 0-room baseline. `open` is
    the driver opening the step's new rooms, `join` the observer joining them after that."""
    head = (f"{'rooms':>5} {'observed':>8} {'sidecar':>7} {'RSS':>5} {'dRSS/room':>9} "
            f"{'CPU/room':>8} {'server':>6} {'driver':>6} {'others':>6} {'fds':>5} "
            f"{'speech':>6} {'scrape':>6} {'open':>5} {'join':>5}")
    units = (f"{'':>5} {'':>8} {'CPU %':>7} {'MiB':>5} {'KiB':>9} {'CPU %':>8} {'CPU %':>6} "
             f"{'CPU %':>6} {'CPU %':>6} {'':>5} {'seen':>6} {'ms p50':>6} {'s':>5} {'s':>5}")
    lines = [head, units]
    base = steps[0] if steps and steps[0].rooms == 0 else None
    for s in steps:
        per_rss = per_cpu = "-"
        if base is not None and s.rooms:
            per_rss = f"{(s.rss_kib - base.rss_kib) / s.rooms:.0f}"
            per_cpu = f"{(s.sidecar_cpu - base.sidecar_cpu) / s.rooms:.3f}"
        scrape = f"{statistics.median(s.scrape_ms):.1f}" if s.scrape_ms else "-"
        opened = f"{s.open_seconds:.0f}" if s.rooms else "-"
        joined = f"{s.observe_seconds:.0f}" if s.rooms else "-"
        lines.append(
            f"{s.rooms:>5} {s.observed:>8} {s.sidecar_cpu:>7.1f} {s.rss_kib / 1024:>5.0f} "
            f"{per_rss:>9} {per_cpu:>8} {s.server_cpu:>6.1f} {s.driver_cpu:>6.1f} "
            f"{s.others_cpu:>6.1f} {s.fds:>5} {s.speech_seen:>6} {scrape:>6} {opened:>5} "
            f"{joined:>5}")
    return "\n".join(lines)


def _machine_cpu(step: Step) -> float:
    return step.sidecar_cpu + step.server_cpu + step.driver_cpu + step.others_cpu


def observations(steps: Sequence[Step], bench: Bench | None, options: Options,
                 stopped: str) -> list[str]:
    """Plain-language findings: the target, saturation, errors in the logs."""
    found: list[str] = []
    if stopped:
        found.append(f"stopped early: {stopped}")
    measured = [s for s in steps if s.rooms]
    for s in measured:
        if s.note:
            found.append(f"{s.rooms} rooms: {s.note}")
        total = _machine_cpu(s)
        if total >= SATURATED:
            who = max((("sidecar", s.sidecar_cpu), ("livekit-server", s.server_cpu),
                       ("driver", s.driver_cpu), ("other processes", s.others_cpu)),
                      key=lambda x: x[1])
            found.append(f"{s.rooms} rooms: the machine is saturated ({total:.0f}% of 200%); "
                         f"the biggest user is {who[0]} ({who[1]:.0f}%)")
        if s.speech_seen < s.observed:
            found.append(f"{s.rooms} rooms: the observer heard {s.speech_seen} of "
                         f"{s.observed} avatars speak")
    calm = [s for s in measured if _machine_cpu(s) < SATURATED and s.observed == s.rooms]
    basis = calm[-1] if calm else (measured[-1] if measured else None)
    if basis is not None and steps[0].rooms == 0:
        per_room = (basis.sidecar_cpu - steps[0].sidecar_cpu) / basis.rooms
        fds_per_room = (basis.fds - steps[0].fds) / basis.rooms
        found.append(f"projection from the {basis.rooms}-room step"
                     f"{'' if calm else ' (machine saturated there)'}: {per_room:.2f}% of a "
                     f"core per room, so {TARGET_ROOMS} rooms would need about "
                     f"{per_room * TARGET_ROOMS:.0f}% for the sidecar alone, and "
                     f"{steps[0].fds + fds_per_room * TARGET_ROOMS:.0f} file descriptors "
                     f"({fds_per_room:.1f} a room)")
    top = max((s.rooms for s in measured if s.observed == s.rooms), default=0)
    target = TARGET_ROOMS if TARGET_ROOMS in options.steps else max(options.steps)
    verdict = "met" if top >= target else "NOT met"
    found.append(f"target {target} rooms observed in one sidecar process: {verdict} "
                 f"(largest step fully observed: {top})")
    last = measured[-1] if measured else None
    if last and last.scrape_ms:
        found.append(f"/metrics at {last.rooms} rooms: median "
                     f"{statistics.median(last.scrape_ms):.1f} ms, max {max(last.scrape_ms):.1f} "
                     f"ms over {len(last.scrape_ms)} scrapes, {last.scrape_bytes} bytes")
    if not options.video:
        found.append("avatars publish audio only (run with --video to add a 160x120 video "
                     "track each; the observer never subscribes to video)")
    if last and last.sidecar_threads:
        found.append(f"sidecar CPU by thread at {last.rooms} rooms: {last.top_threads(6)} "
                     f"({last.threads} threads; {steps[0].threads} with no room)")
    if bench is not None:
        for name, (path, _) in bench.logs.items():
            panics = [line for line in procs.tail(path, 10**7).splitlines()
                      if line.startswith("FFI Panic")]
            if panics:
                when = ("during the steps" if bench.exited_in_run.startswith(name)
                        else "while everything was being stopped")
                found.append(f"{name}: livekit-rtc FFI panic {when}, upon which livekit-rtc "
                             f"SIGTERMs its own process: {panics[0][:200]}")
        totals = {name: sum(s.problems.get(name, 0) for s in steps) for name in bench.logs}
        for name, count in totals.items():
            if count:
                found.append(f"{name} log: {count} warning/error lines during the steps, e.g.:")
                found.extend(f"    {line}" for line in bench.problem_samples[name][:3])
    return found


@dataclass(frozen=True)
class PerRoom:
    """One run's cost of an observed room at its largest fully observed step: over the no-room
    baseline (the target's measure: it includes what the first room sets up once), and added
    per room from the first step on (what each more room costs)."""

    rooms: int
    cpu: float  # % of one core
    memory_mib: float
    threads: float
    fds: float
    others_cpu: float  # % of one core: the other processes' during that step
    added_cpu: float | None = None  # None: a single step fully observed
    added_memory_mib: float | None = None
    floor: Floor | None = None  # bare connections in as many rooms, if measured in this run

    @property
    def memory_over_floor_mib(self) -> float | None:
        return None if self.floor is None else self.memory_mib - self.floor.memory_mib


def per_room(steps: Sequence[Step], floor: Floor | None = None) -> PerRoom | None:
    """At the largest step the observer was in every room (None: no such step), with the floor
    measured there if any."""
    full = [s for s in steps if s.rooms and s.observed >= s.rooms]
    if not full or steps[0].rooms != 0:
        return None
    base, first, top = steps[0], full[0], full[-1]
    added = top.rooms - first.rooms
    return PerRoom(rooms=top.rooms, cpu=(top.sidecar_cpu - base.sidecar_cpu) / top.rooms,
                   memory_mib=(top.rss_kib - base.rss_kib) / 1024 / top.rooms,
                   threads=(top.threads - base.threads) / top.rooms,
                   fds=(top.fds - base.fds) / top.rooms, others_cpu=top.others_cpu,
                   added_cpu=(top.sidecar_cpu - first.sidecar_cpu) / added if added else None,
                   added_memory_mib=((top.rss_kib - first.rss_kib) / 1024 / added
                                     if added else None), floor=floor)


def summary(runs: Sequence[PerRoom], options: Options) -> list[Figure]:
    """The runs' medians, named by the observer's mode; the floor's from the runs that measured
    it, its other CPU that of its own window."""
    prefix = "observer_no_media" if options.observe_media == "none" else "observer"
    others = statistics.median(r.others_cpu for r in runs) / 100
    floors = [r.floor for r in runs if r.floor is not None]
    floor_others = statistics.median(f.others_cpu for f in floors) / 100 if floors else None

    def median(values: Iterable[float | None]) -> float | None:
        present = [float(v) for v in values if v is not None]
        return float(statistics.median(present)) if present else None

    def of_runs(field: str) -> float | None:
        return median(getattr(r, field) for r in runs)

    figures = [
        (f"{prefix}_cpu_per_room", of_runs("cpu"), "% of a core", CPU_PER_ROOM_TARGET, others),
        (f"{prefix}_memory_per_room", of_runs("memory_mib"), "MiB", MEMORY_PER_ROOM_TARGET,
         others),
        (f"{prefix}_threads_per_room", of_runs("threads"), "threads", None, others),
        (f"{prefix}_fds_per_room", of_runs("fds"), "fds", None, others),
        (f"{prefix}_cpu_per_added_room", of_runs("added_cpu"), "% of a core", None, others),
        (f"{prefix}_memory_per_added_room", of_runs("added_memory_mib"), "MiB", None, others),
        (f"{prefix}_rtc_floor_memory_per_room", median(f.memory_mib for f in floors), "MiB",
         None, floor_others),
        (f"{prefix}_memory_over_floor_per_room", of_runs("memory_over_floor_mib"), "MiB", None,
         others),
    ]
    return [Figure(name, value, unit, target, "lower", cpu)
            for name, value, unit, target, cpu in figures if value is not None]


def run(options: Options) -> int:
    """`options.runs` whole benchmarks, then the summary of their per-room figures."""
    results: list[PerRoom] = []
    code = 0
    for number in range(1, options.runs + 1):
        if options.runs > 1:
            print(f"\n== run {number} of {options.runs}", flush=True)
        code, steps, floor = run_once(options, with_floor=number == options.runs)
        found = per_room(steps, floor)
        if found is not None:
            results.append(found)
            added = ("" if found.added_cpu is None or found.added_memory_mib is None else
                     f" (each room added from the first step on: {found.added_cpu:.3f}%, "
                     f"{found.added_memory_mib:.2f} MiB)")
            print(f"run {number}: {found.cpu:.3f}% of a core, {found.memory_mib:.2f} MiB, "
                  f"{found.threads:.2f} threads, {found.fds:.1f} fds per room at "
                  f"{found.rooms} rooms{added}; other processes {found.others_cpu:.0f}% of a "
                  "core", flush=True)
        if code:
            break
    # Per-room figures at different steps do not compare (the first room's set-up weighs more
    # at 10 rooms): the median is of the runs that reached the largest step.
    top = max((r.rooms for r in results), default=0)
    if any(r.rooms < top for r in results):
        print(f"runs that fully observed fewer than {top} rooms are left out of the summary"
              + ("" if all(r.floor is None for r in results if r.rooms < top) else
                 ", the floor's with them"))
    summarized = [r for r in results if r.rooms == top]
    if summarized and all(r.floor is None for r in summarized):
        print("!!! no bare livekit-rtc floor in the summary (the last run says why)")
    if summarized:
        print_summary("observer_rooms", summary(summarized, options))
    return code


def run_once(options: Options, with_floor: bool = True
             ) -> tuple[int, list[Step], Floor | None]:
    """The whole benchmark once, with the floor after the ramp if `with_floor`; the exit code,
    the steps measured and the floor."""
    started_at = time.monotonic()
    deadline = started_at + BUDGET_SECONDS - SHUTDOWN_RESERVE
    for key in [k for k in os.environ if k.startswith(_CONFIG_ENV)]:
        del os.environ[key]  # the sidecar's own settings from the environment would skew it
    try:
        binary = server_binary()
    except BinaryUnavailable as exc:
        print(f"no livekit-server: {exc}", file=sys.stderr)
        return 2, [], None
    workdir = Path(tempfile.mkdtemp(prefix="observer-rooms-"))
    steps: list[Step] = []
    bench: Bench | None = None
    stopped, code = "", 0
    floor: Floor | None = None
    floor_note = "the run ended before it"
    print(f"observer benchmark: steps {options.steps}, {options.seconds:.0f} s windows, "
          f"logs in {workdir}", flush=True)
    try:
        with private_network(), started(workdir, binary, options) as bench:
            stopped = ramp(bench, options, deadline, steps)
            if with_floor:
                floor_start = time.monotonic()
                floor, floor_note = measure_floor(bench, workdir, steps, options.seconds)
                print(f"  floor: {time.monotonic() - floor_start:.0f} s", flush=True)
    except (StartFailed, NetnsError) as exc:
        print(f"a component failed to start: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        stopped, code = "interrupted", 130
    print(f"\n{table(steps)}\n")
    for line in observations(steps, bench, options, stopped):
        print(line)
    if floor is not None:
        print(floor_line(floor, per_room(steps)) + (f"; {floor_note}" if floor_note else ""))
    elif with_floor:
        print(f"!!! bare livekit-rtc connection NOT measured, no floor in this run: {floor_note}")
    print(f"total {time.monotonic() - started_at:.0f} s")
    if code == 0 and not options.keep_logs and not stopped:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"logs kept in {workdir}")
    return code, steps, floor


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same clean-up as Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rooms", type=int, default=TARGET_ROOMS,
                        help="the largest step (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="10 and 50 rooms only")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="measurement window per step (default %(default)s)")
    parser.add_argument("--video", action="store_true",
                        help="avatars publish a small video track too (costs driver CPU)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="rooms the driver opens at once (default %(default)s; more make "
                             "joins time out and retry on a saturated machine)")
    parser.add_argument("--source", choices=("shared", "per-avatar"), default="shared",
                        help="the driver feeds every avatar's audio track from one source, or "
                             "each from its own (default %(default)s)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the processes' logs (they are kept anyway on failure)")
    parser.add_argument("--agent-state", action="store_true",
                        help="each room's voice agent publishes lk.agent.state, so the observer "
                             "takes speech from it and receives no audio")
    parser.add_argument("--observe-media", choices=("audio", "none"), default="audio",
                        help="the sidecar's --observe-media (default %(default)s)")
    parser.add_argument("--runs", type=int, default=1,
                        help="whole runs, each with fresh processes; the summary gives their "
                             "median (default %(default)s)")
    args = parser.parse_args(argv)
    if args.max_rooms < 1 or args.seconds <= 0 or args.concurrency < 1 or args.runs < 1:
        parser.error("--max-rooms, --seconds, --concurrency and --runs must be positive")
    signal.signal(signal.SIGTERM, _terminate)
    return run(Options(steps_for(args.max_rooms, args.quick), args.seconds, args.video,
                       args.concurrency, args.source, args.keep_logs, args.agent_state,
                       args.observe_media, args.runs))


if __name__ == "__main__":
    sys.exit(main())
