"""The aiohttp application: POST /webhook and /v1/events, GET /metrics, /healthz, /v1/calls and
the status page, and the deadline clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from aiohttp import web
from avatar_monitor_agent.roles import RoleClassifier
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from monitor.alive import AliveFile
from monitor.calls.listener import CallListener
from monitor.calls.tracker import CallTracker
from monitor.clock import ServerClock
from monitor.config import Config
from monitor.diagnosis.api import CallStatus
from monitor.diagnosis.page import PAGE_POLICY, StatusPage
from monitor.intake.verify import WebhookVerifier
from monitor.intake.webhook import WebhookIntake
from monitor.logs import quiet_aiohttp_logs
from monitor.reports.bridge import BackendBridge
from monitor.reports.http import EventIntake
from monitor.reports.pending import PendingReports
from monitor.shard import Shard
from monitor.sinks.bill import AvatarBill
from monitor.sinks.call_gauges import CallStateCollector
from monitor.sinks.call_record import CallRecordLog
from monitor.sinks.finished import Consumer, FinishedCalls
from monitor.sinks.history import History, HistoryMetrics
from monitor.sinks.metrics import Metrics
from monitor.sinks.observer_gauges import ObserverGauges
from monitor.sinks.records import CallRecords
from monitor.sinks.session_lengths import RepeatedLengthCollector, RepeatedLengths
from monitor.web.access import TokenAccess
from monitor.web.exposition import CachedExposition
from monitor.web.server import Handler, answers_middleware

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from monitor.observer.reconcile import Reconciler
    from monitor.observer.room import RoomObserver
    from monitor.sinks.traces import CallTracer

log = logging.getLogger(__name__)

# How often passed join deadlines are checked: the precision of "recorded on time".
DEADLINE_TICK_SECONDS = 0.2
# /healthz fails when the deadline loop has not completed a check for this long: the loop died,
# its check keeps failing, or the event loop is blocked.
STALL_SECONDS = 5.0


class Health:
    """What /healthz reads: when the deadline loop last completed a check."""

    def __init__(self) -> None:
        self.last_tick = time.monotonic()
        self.task: asyncio.Task[None] | None = None

    def problems(self) -> list[str]:
        found = []
        if self.task is None or self.task.done():
            found.append("deadline loop not running")
        stalled = time.monotonic() - self.last_tick
        if stalled > STALL_SECONDS:
            found.append(f"deadline loop stalled for {stalled:.1f} s")
        return found


@dataclass(slots=True)
class Monitor:
    """Everything one sidecar instance owns; tests build one per test."""

    config: Config
    registry: CollectorRegistry
    metrics: Metrics
    tracker: CallTracker
    intake: WebhookIntake
    bridge: BackendBridge
    event_intake: EventIntake
    status: CallStatus
    clock: Callable[[], float]
    server_clock: ServerClock
    tracer_provider: TracerProvider | None = None
    observer: RoomObserver | None = None
    reconciler: Reconciler | None = None
    health: Health | None = None
    alive: AliveFile | None = None
    history: History | None = None
    finished: FinishedCalls | None = None
    logger_provider: LoggerProvider | None = None


MONITOR = web.AppKey("monitor", Monitor)


def build_monitor(config: Config, clock: Callable[[], float] | None = None,
                  span_exporter: SpanExporter | None = None,
                  log_exporter: LogRecordExporter | None = None) -> Monitor:
    """Wire intake -> call state -> metrics (and spans and call-record logs, when an OTLP
    endpoint or an exporter is given), records and the history. `clock` is the server's time;
    by default measured from webhooks (ServerClock)."""
    settings = config.settings()
    registry = CollectorRegistry()
    server_clock = ServerClock()
    # This process counts from its start in the server's time: measured from webhooks (so a
    # server clock behind ours does not leave its first calls uncounted), or the given clock's.
    this_start: Callable[[], float]
    if clock is None:
        clock, this_start = server_clock.now, server_clock.counting_start
    else:
        started = clock()
        this_start = lambda: started  # noqa: E731
    provider = call_tracer = None
    if span_exporter is None and config.otlp_endpoint:
        from monitor.sinks.span_export import otlp_exporter

        span_exporter = otlp_exporter(config.otlp_endpoint, config.otlp_protocol)
    if span_exporter is not None:
        provider, call_tracer = _tracing(config)
    # Exemplars name the call's trace.
    metrics = Metrics(registry, call_tracer.trace_id if call_tracer is not None else None,
                      server_clock.offset)
    if provider is not None and span_exporter is not None:
        _export_spans(provider, span_exporter, metrics)
    listeners: list[CallListener] = [metrics]
    if call_tracer is not None:
        listeners.append(call_tracer)  # before records: a record notes its call's trace id
    records = CallRecords(config.recent_calls,
                          call_tracer.trace_id if call_tracer is not None else lambda sid: 0)
    lengths = RepeatedLengths(clock, spread=settings.length_spread)
    bill = AvatarBill(clock)
    registry.register(bill)
    thresholds = replace(settings.thresholds, repeated_length=lengths.of)
    access = TokenAccess.create(config.api_key, config.api_secret, config.public_status,
                                hint=", or run with --public-status")
    history_metrics = HistoryMetrics(registry)  # exported (at zero) with the history off too
    history = None
    if config.history:
        history = History(config.history, history_metrics, config.history_days,
                          config.history_max_calls)
    shard = Shard(*config.shard)
    status = CallStatus(records, thresholds, access, clock, shard, config.shard_url, history)
    logger_provider, otel_logger = None, None
    if log_exporter is None and config.otlp_endpoint:
        from monitor.sinks.span_export import otlp_log_exporter

        log_exporter = otlp_log_exporter(config.otlp_endpoint, config.otlp_protocol)
    if log_exporter is not None:
        logger_provider = _log_provider(config, log_exporter)
        otel_logger = logger_provider.get_logger("avatar-monitor")
    consumers: list[Consumer] = [] if history is None else [history.add]
    if config.log_json or otel_logger is not None:
        consumers.append(CallRecordLog(config.log_json, otel_logger))
    finished = FinishedCalls(records, status.verdict, consumers,
                             call_tracer.trace_id if call_tracer is not None else None)
    listeners += [records, finished, lengths, bill]
    alive = AliveFile(config.state_file) if config.state_file else None
    pending = PendingReports(metrics)
    tracker = CallTracker(RoleClassifier(config.avatar_identities), settings.tracker, listeners,
                          _counting_from(this_start, alive), pending)
    bridge = BackendBridge(tracker, metrics, pending)
    observer = None
    if settings.observer is not None:
        from monitor.observer.room import RoomObserver

        observer = RoomObserver(settings.observer, tracker, metrics, bridge, clock)
        tracker.add_listener(observer)
    registry.register(ObserverGauges(observer))
    registry.register(CallStateCollector(tracker))
    registry.register(RepeatedLengthCollector(lengths))
    reconciler = None
    if settings.reconciler is not None:
        from monitor.observer.reconcile import Reconciler

        r = settings.reconciler
        reconciler = Reconciler(r.url, r.api_key, r.api_secret, tracker, metrics, clock,
                                server_clock, r.interval, r.shard)
    verifier = WebhookVerifier(config.api_key, config.api_secret)
    intake = WebhookIntake(
        verifier, tracker, metrics, config.max_body_bytes, clock, server_clock, shard,
        ready=reconciler.startup_done if reconciler is not None else None,
        on_dropped_upstream=reconciler.request if reconciler is not None else None)
    event_intake = EventIntake(TokenAccess.create(config.api_key, config.api_secret), bridge,
                               metrics, config.max_body_bytes, clock, shard, config.shard_url)
    return Monitor(config, registry, metrics, tracker, intake, bridge, event_intake, status,
                   clock, server_clock, provider, observer, reconciler, Health(), alive,
                   history, finished, logger_provider)


def _counting_from(this_start: Callable[[], float],
                   alive: AliveFile | None) -> Callable[[], float]:
    """The server time from which this process counts calls: its start, or, with a state file,
    when the previous process last ran if earlier (what happened after was counted by none)."""
    last_ran = alive.read() if alive is not None else None
    if last_ran is None:
        return this_start
    log.info("the previous process last ran %.1f s before this start", this_start() - last_ran)
    return lambda: min(last_ran, this_start())


def _log_provider(config: Config, exporter: LogRecordExporter) -> LoggerProvider:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    provider = LoggerProvider(resource=Resource.create({SERVICE_NAME: config.service_name}))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    return provider


def _tracing(config: Config) -> tuple[TracerProvider, CallTracer]:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    from monitor.sinks.traces import CallTracer

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: config.service_name}))
    return provider, CallTracer(provider.get_tracer("avatar-monitor"))


def _export_spans(provider: TracerProvider, exporter: SpanExporter, metrics: Metrics) -> None:
    """The provider's spans go to the exporter, counted (exported, dropped) by the metrics."""
    from monitor.sinks.span_export import BoundedSpanProcessor

    provider.add_span_processor(
        BoundedSpanProcessor(exporter, metrics.span_dropped, metrics.span_exported))


def create_app(config: Config, clock: Callable[[], float] | None = None,
               span_exporter: SpanExporter | None = None,
               log_exporter: LogRecordExporter | None = None) -> web.Application:
    monitor = build_monitor(config, clock, span_exporter, log_exporter)
    quiet_aiohttp_logs()
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[
        answers_middleware(monitor.metrics.handler_failed, PAGE_POLICY)])
    app[MONITOR] = monitor
    app.router.add_post("/webhook", monitor.intake.handle)
    app.router.add_post("/v1/events", monitor.event_intake.handle)
    app.router.add_get("/v1/calls", monitor.status.list_calls)
    app.router.add_get("/v1/calls/{room}", monitor.status.get_call)
    page = StatusPage(monitor.status, config.trace_url, config.dashboard_url)
    app.router.add_get("/", page.index)
    app.router.add_get("/calls/{room}", page.call)
    app.router.add_get("/metrics", _metrics_handler(monitor.registry))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.cleanup_ctx.append(_history)  # first in, last out: after the tracker's last change
    app.cleanup_ctx.append(_deadline_clock)
    app.cleanup_ctx.append(_reconciler)
    app.cleanup_ctx.append(_room_observer)
    app.on_cleanup.append(_stop_tracing)
    return app


async def _history(app: web.Application) -> AsyncIterator[None]:
    """Open the history on start; on stop, finish the calls still lingering, write what is
    queued and close it (in a thread: the event loop never waits on the disk)."""
    monitor = app[MONITOR]
    if monitor.history is not None:
        monitor.history.open()
    yield
    if monitor.finished is not None:
        monitor.finished.flush()
    loop = asyncio.get_running_loop()
    if monitor.history is not None:
        await loop.run_in_executor(None, monitor.history.close)
    if monitor.logger_provider is not None:
        await loop.run_in_executor(None, monitor.logger_provider.shutdown)


async def _room_observer(app: web.Application) -> AsyncIterator[None]:
    observer = app[MONITOR].observer
    if observer is not None:
        await observer.start()
    yield
    if observer is not None:
        await observer.stop()


async def _reconciler(app: web.Application) -> AsyncIterator[None]:
    reconciler = app[MONITOR].reconciler
    if reconciler is not None:
        await reconciler.start()
    yield
    if reconciler is not None:
        await reconciler.stop()


async def _stop_tracing(app: web.Application) -> None:
    provider = app[MONITOR].tracer_provider
    if provider is not None:
        await asyncio.get_running_loop().run_in_executor(None, provider.shutdown)


def _metrics_handler(registry: CollectorRegistry) -> Handler:
    exposition = CachedExposition(registry)

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=exposition.render(encoder))
        response.headers["Content-Type"] = content_type
        return response

    return metrics


async def _healthz(request: web.Request) -> web.Response:
    """Liveness: the deadline loop runs (an event loop blocked for long does not answer)."""
    health = request.app[MONITOR].health
    problems = health.problems() if health is not None else []
    if problems:
        return web.json_response({"status": "failing", "problems": problems}, status=503)
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    """Readiness: a key pair, and with --livekit-url, LiveKit answering RoomService and the
    startup reconciliation done."""
    monitor = request.app[MONITOR]
    problems = []
    if not (monitor.config.api_key and monitor.config.api_secret):
        problems.append("no LIVEKIT_API_KEY / LIVEKIT_API_SECRET")
    reconciler = monitor.reconciler
    if reconciler is not None:
        if not reconciler.startup_done.is_set():
            problems.append("startup reconciliation with LiveKit not done")
        if not reconciler.reachable():
            problems.append("LiveKit RoomService unreachable: "
                            + (reconciler.last_error or "no answer yet"))
    if problems:
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


async def _deadline_clock(app: web.Application) -> AsyncIterator[None]:
    """Fires join timeouts on time even when no further webhook arrives."""
    monitor = app[MONITOR]
    health = monitor.health or Health()

    async def tick() -> None:
        while True:
            await asyncio.sleep(DEADLINE_TICK_SECONDS)
            try:
                now = monitor.clock()
                monitor.tracker.expire(now)
                monitor.bridge.expire(now)
                if monitor.alive is not None:
                    monitor.alive.write(now)
                health.last_tick = time.monotonic()
            except Exception:  # never let a bug stop the clock (a failing check stalls health)
                log.exception("deadline check failed")

    task = asyncio.create_task(tick())
    health.task = task
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if monitor.alive is not None:
        monitor.alive.write(monitor.clock())
