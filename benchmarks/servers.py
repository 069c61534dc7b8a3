"""Starting and stopping the servers under test, each in a process of its own on one CPU."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load import pin
from tests.support.ports import free_port
from tests.support.webhooks import KEY, SECRET

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# `sidecar` runs as it comes (the call history on, in a temporary file); `no-history` the same
# with `--history ''`: the history's cost, measured in the same run.
SERVERS = ("ceiling", "reference", "sidecar", "no-history")
START_TIMEOUT = 20.0
_TICKS = os.sysconf("SC_CLK_TCK")
# The sidecar's own settings from the environment would change what is measured (tracing...).
_CONFIG_ENV = ("AVATAR_MONITOR_", "OTEL_", "LIVEKIT_")


class ServerFailed(RuntimeError):
    """A server under test did not start or did not answer."""


@dataclass(frozen=True, slots=True)
class Running:
    name: str
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def rss_bytes(self) -> int:
        """The server's resident memory now."""
        with open(f"/proc/{self.process.pid}/status") as status:
            line = next(x for x in status if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read()


def command(name: str, port: int, workdir: Path, profile: Path | None = None) -> list[str]:
    """The command line of one server; the sidecar is the real CLI."""
    python = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
    if name in ("sidecar", "no-history"):
        history = str(workdir / "history.sqlite3") if name == "sidecar" else ""
        return [*python, "-m", "monitor", "serve", "--host", HOST, "--port", str(port),
                "--max-calls", "1000000", "--log-level", "warning", "--history", history]
    return [*python, "-m", "benchmarks.bare_servers", name, "--host", HOST, "--port", str(port)]


def _wait_ready(running: Running, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            break
        try:
            running.get("/healthz")
            return
        except OSError:
            time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    raise ServerFailed(f"{running.name} did not start on port {running.port}:\n{tail}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def serve(name: str, cpu: int | None, profile: Path | None = None) -> Iterator[Running]:
    """Run one server until the block ends; raise ServerFailed if it does not come up."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIG_ENV)}
    env.update(LIVEKIT_API_KEY=KEY, LIVEKIT_API_SECRET=SECRET, PYTHONPATH=str(ROOT))
    with tempfile.NamedTemporaryFile("w+", prefix=f"{name}-", suffix=".log") as log, \
            tempfile.TemporaryDirectory(prefix=f"{name}-") as workdir:
        process = subprocess.Popen(command(name, port, Path(workdir), profile), cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, **pin(cpu))
        running = Running(name, port, process)
        try:
            _wait_ready(running, Path(log.name))
            yield running
        finally:
            _stop(process)
