"""The sidecar under test, `python -m monitor serve`, as a subprocess on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import procs
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Sidecar:
    """avatar-monitor with the test's key pair; `extra_args` are appended to `serve`."""

    workdir: Path
    api_key: str
    api_secret: str
    extra_args: list[str] = field(default_factory=list)
    avatar_join_timeout: float = 30.0
    python: str = sys.executable
    prefix: list[str] = field(default_factory=list)  # e.g. faketime, to skew its clock
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.url + "/webhook"

    @property
    def history_path(self) -> Path:
        """Its history (--history): kept across a restart, never in the repository."""
        return self.workdir / "history.sqlite3"

    @property
    def log_path(self) -> Path:
        return self.workdir / "avatar-monitor.log"

    def argv(self) -> list[str]:
        return [*self.prefix, self.python, "-m", "monitor", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--avatar-join-timeout", str(self.avatar_join_timeout),
                *self.extra_args]

    def start(self, timeout: float = 20.0) -> None:
        """Start it and wait for GET /healthz to answer 200."""
        env = {"LIVEKIT_API_KEY": self.api_key, "LIVEKIT_API_SECRET": self.api_secret,
               "PYTHONUNBUFFERED": "1", "AVATAR_MONITOR_HISTORY": str(self.history_path),
               **self.env}
        self.process = procs.start(self.argv(), self.log_path, env=env, cwd=REPO)
        procs.wait_http_ok(self.url + "/healthz", self.process, self.log_path, timeout)

    def stop(self) -> int | None:
        """Stop it; returns its exit code."""
        return procs.stop(self.process) if self.process is not None else None
