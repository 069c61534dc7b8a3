"""A real Jaeger (v2 all-in-one: OTLP/HTTP receiver, memory storage, query API) on 127.0.0.1
with free ports, for the trace-link test."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import procs
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-jaeger.sh"


class JaegerUnavailable(RuntimeError):
    """No Jaeger binary: JAEGER_BIN is wrong and the build script failed."""


def jaeger_binary() -> Path:
    """$JAEGER_BIN, else the pinned build from scripts/build-jaeger.sh."""
    configured = os.environ.get("JAEGER_BIN", "")
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise JaegerUnavailable(f"JAEGER_BIN={configured} is not an executable file")
        return path
    done = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    built = Path(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    if done.returncode != 0 or built is None or not built.is_file():
        raise JaegerUnavailable(f"{BUILD_SCRIPT} failed with exit code {done.returncode}:\n"
                                f"{done.stderr[-5000:]}")
    return built


@dataclass
class Jaeger:
    """Jaeger with nothing but an OTLP/HTTP receiver and the query service, both on
    127.0.0.1; its own telemetry is off (no :8888)."""

    binary: Path
    workdir: Path
    otlp_port: int = field(default_factory=free_port)
    query_port: int = field(default_factory=free_port)
    query_grpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_url(self) -> str:
        """The OTLP/HTTP base URL (the sidecar's --otlp-endpoint)."""
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        """The query service: its HTTP API (/api/traces/{trace_id}) and the UI's routes."""
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "jaeger.log"

    def config(self) -> dict[str, object]:
        """The collector's configuration; written as JSON, which is YAML too."""
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query"],
                "pipelines": {"traces": {"receivers": ["otlp"], "processors": [],
                                         "exporters": ["jaeger_storage_exporter"]}},
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
            },
            "extensions": {
                "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 10000}}}},
                "jaeger_query": {
                    "storage": {"traces": "memstore"},
                    "http": {"endpoint": f"127.0.0.1:{self.query_port}"},
                    "grpc": {"endpoint": f"127.0.0.1:{self.query_grpc_port}"},
                },
            },
            "receivers": {"otlp": {"protocols": {
                "http": {"endpoint": f"127.0.0.1:{self.otlp_port}"}}}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
        }

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until the query API answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "jaeger.yaml"
        config.write_text(json.dumps(self.config(), indent=2))
        self.process = procs.start([str(self.binary), f"--config=file:{config}"], self.log_path)
        procs.wait_http_ok(self.query_url + "/api/services", self.process, self.log_path,
                           timeout)

    def stop(self) -> None:
        if self.process is not None:
            procs.stop(self.process)
