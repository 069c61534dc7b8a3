"""The aiohttp application: POST /webhook, GET /metrics, GET /healthz, and the deadline clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from monitor.config import Config
from monitor.intake import WebhookIntake
from monitor.metrics import CallStateCollector, Metrics
from monitor.roles import RoleClassifier
from monitor.state import CallTracker, TrackerSettings
from monitor.verify import WebhookVerifier

log = logging.getLogger("monitor.app")

# How often passed join deadlines are checked: the precision of "recorded on time".
DEADLINE_TICK_SECONDS = 0.2


@dataclass(slots=True)
class Monitor:
    """Everything one sidecar instance owns; tests build one per test."""

    config: Config
    registry: CollectorRegistry
    metrics: Metrics
    tracker: CallTracker
    intake: WebhookIntake
    clock: Callable[[], float]


MONITOR = web.AppKey("monitor", Monitor)


def build_monitor(config: Config, clock: Callable[[], float] = time.time) -> Monitor:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    settings = TrackerSettings(
        join_timeout=config.avatar_join_timeout,
        session_timeout=config.session_timeout,
        timeout_tolerance=config.timeout_tolerance,
        max_calls=config.max_calls,
    )
    tracker = CallTracker(RoleClassifier(config.avatar_identities), settings, [metrics])
    registry.register(CallStateCollector(tracker))
    verifier = WebhookVerifier(config.api_key, config.api_secret)
    intake = WebhookIntake(verifier, tracker, metrics, config.max_body_bytes, clock)
    return Monitor(config, registry, metrics, tracker, intake, clock)


def create_app(config: Config, clock: Callable[[], float] = time.time) -> web.Application:
    monitor = build_monitor(config, clock)
    app = web.Application(client_max_size=config.max_body_bytes)
    app[MONITOR] = monitor
    app.router.add_post("/webhook", monitor.intake.handle)
    app.router.add_get("/metrics", _metrics_handler(monitor.registry))
    app.router.add_get("/healthz", _healthz)
    app.cleanup_ctx.append(_deadline_clock)
    return app


def _metrics_handler(registry: CollectorRegistry):
    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encoder(registry))
        response.headers["Content-Type"] = content_type
        return response

    return metrics


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _deadline_clock(app: web.Application) -> AsyncIterator[None]:
    """Fires join timeouts on time even when no further webhook arrives."""
    monitor = app[MONITOR]

    async def tick() -> None:
        while True:
            await asyncio.sleep(DEADLINE_TICK_SECONDS)
            try:
                monitor.tracker.expire(monitor.clock())
            except Exception:  # never let a bug stop the clock
                log.exception("deadline check failed")

    task = asyncio.create_task(tick())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
