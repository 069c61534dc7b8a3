"""A real livekit-server on 127.0.0.1 with free ports, for one test or one demo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import procs
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-livekit-server.sh"


class BinaryUnavailable(RuntimeError):
    """No livekit-server binary: LIVEKIT_SERVER_BIN is wrong and the build script failed."""


def server_binary() -> Path:
    """$LIVEKIT_SERVER_BIN, else the pinned build from scripts/build-livekit-server.sh."""
    configured = os.environ.get("LIVEKIT_SERVER_BIN", "")
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BinaryUnavailable(f"LIVEKIT_SERVER_BIN={configured} is not an executable file")
        return path
    done = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    built = Path(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    if done.returncode != 0 or built is None or not built.is_file():
        raise BinaryUnavailable(f"{BUILD_SCRIPT} failed with exit code {done.returncode}:\n"
                                f"{done.stderr[-5000:]}")
    return built


@dataclass
class LiveKitServer:
    """livekit-server configured for loopback: signal, RTC and webhooks all on 127.0.0.1."""

    binary: Path
    workdir: Path
    api_key: str
    api_secret: str
    webhook_urls: list[str] = field(default_factory=list)
    # Seconds the room stays open once only dependent participants (kind agent) are left; then
    # it closes and disconnects them with ROOM_CLOSED. Checked every second on whole seconds,
    # so the close comes 2 to 4 s after the last user left: longer than a test's next step.
    departure_timeout: int = 3
    empty_timeout: int = 10
    development: bool = False  # livekit-server's dev mode: no warning for short secrets
    port: int = field(default_factory=free_port)
    rtc_tcp_port: int = field(default_factory=free_port)
    rtc_udp_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The URL clients connect to (signal, WebSocket)."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        """The URL of RoomService and the health check."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "livekit-server.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "livekit.yaml"

    def config(self) -> dict[str, object]:
        """The server's configuration; written as JSON, which is YAML too."""
        config: dict[str, object] = {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "rtc": {
                "tcp_port": self.rtc_tcp_port,
                "udp_port": self.rtc_udp_port,
                "use_external_ip": False,
                "node_ip": "127.0.0.1",
                # pion skips loopback unless asked; our participants reach it from the
                # namespace's veth address (see tests/support/netns.py).
                "enable_loopback_candidate": True,
                # Handed to clients as their ICE servers: without it they get public STUN
                # servers. No UDP socket listens there, and none is needed.
                "stun_servers": [f"127.0.0.1:{self.port}"],
            },
            "keys": {self.api_key: self.api_secret},
            "room": {"empty_timeout": self.empty_timeout,
                     "departure_timeout": self.departure_timeout},
            "logging": {"level": "info", "json": False},
        }
        if self.development:
            config["development"] = True
        if self.webhook_urls:
            config["webhook"] = {"api_key": self.api_key, "urls": self.webhook_urls}
        return config

    def start(self, timeout: float = 20.0, attempts: int = 3) -> None:
        """Start the server and wait until it answers on its HTTP port. A free port can be
        taken by another process between choosing it and the server binding it: then the
        media ports are chosen anew and the server started again (the signalling port, which
        others may already know, is kept)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [str(self.binary), "--config", str(self.config_path),
                "--bind", "127.0.0.1", "--node-ip", "127.0.0.1"]
        for attempt in range(1, attempts + 1):
            self.config_path.write_text(json.dumps(self.config(), indent=2))
            self.process = procs.start(argv, self.log_path)
            try:
                procs.wait_http_ok(self.http_url + "/", self.process, self.log_path, timeout)
                return
            except RuntimeError as exc:
                if attempt == attempts or "address already in use" not in str(exc):
                    raise
                self.rtc_tcp_port = free_port()
                self.rtc_udp_port = free_port(socket.SOCK_DGRAM)

    def stop(self) -> None:
        if self.process is not None:
            procs.stop(self.process)
