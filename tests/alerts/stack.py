"""Real processes for the end-to-end alerting test: sidecar, Prometheus, Alertmanager, and an
in-test webhook receiver. Everything listens on 127.0.0.1 on free ports, state in a temp dir."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from dashboards import config

LOOPBACK = "127.0.0.1"


def binary(*names: str) -> str:
    """The first of `names` on PATH; fails with how to install it."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError(f"{' or '.join(names)} not found: run scripts/install-test-deps.sh")


@dataclass
class Process:
    """A child process with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None
              ) -> Process:
        log = workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                     env={**os.environ, **(env or {})})
        return cls(name, popen, log)

    def stop(self) -> None:
        """Terminate this process (and only it), then kill if it lingers."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def tail(self, lines: int = 30) -> str:
        """The end of its log, for failure messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log ---\n" + "\n".join(text.splitlines()[-lines:])


async def wait_ready(http: aiohttp.ClientSession, url: str, proc: Process,
                     timeout: float = 30.0) -> None:
    """Poll `url` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.popen.poll() is not None:
            raise AssertionError(f"{proc.name} exited with {proc.popen.returncode}\n{proc.tail()}")
        try:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready after {timeout}s\n{proc.tail()}")
        await asyncio.sleep(0.1)


def start_sidecar(workdir: Path, port: int, key: str, secret: str, *flags: str) -> Process:
    """`python -m monitor serve` on loopback with the given key pair."""
    argv = [sys.executable, "-m", "monitor", "serve", "--host", LOOPBACK, "--port", str(port),
            *flags]
    root = Path(__file__).resolve().parents[2]
    env = {"LIVEKIT_API_KEY": key, "LIVEKIT_API_SECRET": secret,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    return Process.start("sidecar", argv, workdir, env)


def start_prometheus(workdir: Path, port: int, sidecar_port: int, alertmanager_port: int,
                     rule_file: Path) -> Process:
    """Prometheus scraping the sidecar every second and evaluating `rule_file` every second."""
    cfg = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "alerting": {"alertmanagers": [
            {"static_configs": [{"targets": [f"{LOOPBACK}:{alertmanager_port}"]}]}]},
        "scrape_configs": [{
            "job_name": config.SIDECAR_JOB,
            "static_configs": [{"targets": [f"{LOOPBACK}:{sidecar_port}"]}],
        }],
    }
    path = workdir / "prometheus.yml"
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
    argv = [binary("prometheus"), f"--config.file={path}",
            f"--storage.tsdb.path={workdir / 'prometheus-data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--enable-feature=exemplar-storage",
            "--rules.alert.resend-delay=1s"]
    return Process.start("prometheus", argv, workdir)


def start_alertmanager(workdir: Path, port: int, receiver_url: str) -> Process:
    """Alertmanager (clustering off) routing every alert to `receiver_url` at once."""
    cfg = {
        "route": {"receiver": "test", "group_by": ["alertname", "instance"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "test",
                       "webhook_configs": [{"url": receiver_url, "send_resolved": False}]}],
    }
    path = workdir / "alertmanager.yml"
    path.write_text(json.dumps(cfg, indent=2))
    argv = [binary("prometheus-alertmanager", "alertmanager"), f"--config.file={path}",
            f"--storage.path={workdir / 'alertmanager-data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--cluster.listen-address="]
    return Process.start("alertmanager", argv, workdir)


@dataclass
class Receiver:
    """The Alertmanager webhook receiver (`url`): collects every alert it is sent. Also a
    stand-in OTLP collector (`base` + /v1/traces) so the sidecar traces calls and exemplars."""

    alerts: list[dict[str, object]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.AppRunner | None = None
    base: str = ""
    spans_posts: int = 0

    @property
    def url(self) -> str:
        return self.base + "/alerts"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/alerts", self._handle)
        app.router.add_post("/v1/traces", self._traces)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, LOOPBACK, 0).start()
        port = self.runner.addresses[0][1]
        self.base = f"http://{LOOPBACK}:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.alerts.extend(payload.get("alerts", []))
        self.arrived.set()
        return web.Response(text="ok")

    async def _traces(self, request: web.Request) -> web.Response:
        await request.read()
        self.spans_posts += 1
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def wait_for(self, alertname: str, timeout: float) -> dict[str, object]:
        """The first received alert named `alertname`."""
        deadline = time.monotonic() + timeout
        while True:
            for alert in self.alerts:
                labels = alert.get("labels", {})
                if isinstance(labels, dict) and labels.get("alertname") == alertname:
                    return alert
            left = deadline - time.monotonic()
            if left <= 0:
                names = [a.get("labels", {}) for a in self.alerts]
                raise AssertionError(f"no {alertname} alert within {timeout}s; got {names}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)
