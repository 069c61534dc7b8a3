"""Subprocess plumbing shared by the livekit-server and sidecar helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

# Never through a proxy from the environment: everything here is on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tail(path: Path, max_chars: int = 20_000) -> str:
    """The end of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log: {exc}>"
    return text if len(text) <= max_chars else "...\n" + text[-max_chars:]


def start(argv: list[str], log_path: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a process in its own process group, stdout and stderr appended to `log_path` (a
    restarted process adds to its predecessor's log)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
                                cwd=cwd, start_new_session=True)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM the process group, SIGKILL it after `timeout`; returns the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    return process.wait(timeout)


def wait_http_ok(url: str, process: subprocess.Popen[bytes], log_path: Path,
                 timeout: float = 20.0) -> None:
    """Poll `url` until it answers 200; fail early with the log if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before "
                               f"{url} answered; log {log_path}:\n{tail(log_path)}")
        try:
            with _OPENER.open(url, timeout=1) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s ({last}); "
                       f"log {log_path}:\n{tail(log_path)}")
