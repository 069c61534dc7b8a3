"""Fixtures: an avatar-monitor app served over real HTTP on loopback, one per test; and the
suites' markers, given by directory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.trace.export import SpanExporter

from monitor.app import MONITOR, create_app
from monitor.config import Config
from monitor.web.server import server_options
from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import KEY, SECRET

TESTS = Path(__file__).resolve().parent
# The directories under tests/ whose tests are marked with the directory's name (the markers are
# registered in pyproject.toml)
SUITES = frozenset({"e2e", "alerts", "deploy"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test of a suite that needs more than Python by the directory it is in."""
    for item in items:
        path = item.path.resolve()
        if path.is_relative_to(TESTS):
            suite = path.relative_to(TESTS).parts[0]
            if suite in SUITES:
                item.add_marker(suite)


@pytest.fixture
async def start_monitor() -> AsyncIterator[StartMonitor]:
    """Start a sidecar with Config overrides; everything is stopped at the end of the test."""
    runners: list[web.AppRunner] = []
    http = aiohttp.ClientSession()

    async def start(span_exporter: SpanExporter | None = None,
                    log_exporter: LogRecordExporter | None = None,
                    clock: Callable[[], float] | None = time.time, **overrides: object
                    ) -> RunningMonitor:
        config = Config(KEY, SECRET, host="127.0.0.1", port=0, **overrides)  # type: ignore[arg-type]
        # The simulated server clock of tests/support/webhooks.py is this machine's: webhooks
        # dated in the past are late deliveries, not a server clock behind ours. clock=None:
        # the sidecar's own, the server's time measured from webhooks.
        app = create_app(config, clock=clock, span_exporter=span_exporter,
                         log_exporter=log_exporter)
        runner = web.AppRunner(app, access_log=None, **server_options())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return RunningMonitor(f"http://{host}:{port}", app[MONITOR], http, runner)

    yield start
    await http.close()
    for runner in runners:
        if runner.server is not None:  # not stopped by the test already
            await runner.cleanup()


@pytest.fixture
async def sidecar(start_monitor: StartMonitor) -> RunningMonitor:
    return await start_monitor()
