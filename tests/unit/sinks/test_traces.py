"""One trace per call: span tree, server times, attributes, exemplars, and export that never
gets in the way of intake. Spans go to an in-memory exporter, a real OTLP/HTTP and OTLP/gRPC
endpoint (decoded with opentelemetry-proto), or nowhere (collector down)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent import futures

import grpc
import pytest
from aiohttp import web
from livekit.protocol import models
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from monitor.calls.departures import AGENT_HANGUP_WINDOW
from monitor.calls.inputs import AvatarIdleTimeout, AvatarReady
from monitor.reports.signals import ReportedEvent
from monitor.sinks.span_export import BoundedSpanProcessor
from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import Room, avatar, user

R = models.DisconnectReason
AUDIO, VIDEO = models.TrackType.AUDIO, models.TrackType.VIDEO
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


async def send_all(sidecar: RunningMonitor, *events) -> None:
    for event in events:
        status, reply = await sidecar.send(event)
        assert status == 200, reply


def flush(sidecar: RunningMonitor) -> None:
    provider = sidecar.monitor.tracer_provider
    assert provider is not None
    assert provider.force_flush(5000)


def by_name(exporter: InMemorySpanExporter) -> dict[str, object]:
    return {span.name: span for span in exporter.get_finished_spans()}


async def normal_call(sidecar: RunningMonitor, t0: float) -> Room:
    room = Room(name="support-call-42", created_at=t0 - 1)
    caller, face = user(t0, identity="alice"), avatar(t0 + 1.5)
    await send_all(sidecar, room.joined(caller), room.joined(face),
                   room.track(face, AUDIO, t0 + 1.75), room.track(face, VIDEO, t0 + 2.0),
                   room.left(caller, t0 + 60), room.left(face, t0 + 61))
    return room


async def test_span_tree_times_and_attributes(start_monitor: StartMonitor) -> None:
    exporter = InMemorySpanExporter()
    sidecar = await start_monitor(span_exporter=exporter)
    t0 = float(int(time.time()) - 120)
    room = await normal_call(sidecar, t0)
    flush(sidecar)
    spans = by_name(exporter)
    assert set(spans) == {"avatar.call", "avatar.ringing", "avatar.session"}
    root, ringing, session = spans["avatar.call"], spans["avatar.ringing"], spans["avatar.session"]
    assert root.parent is None
    assert ringing.parent.span_id == root.context.span_id
    assert session.parent.span_id == root.context.span_id
    assert len({s.context.trace_id for s in spans.values()}) == 1
    assert (root.start_time, root.end_time) == (ns(t0), ns(t0 + 61))
    assert (ringing.start_time, ringing.end_time) == (ns(t0), ns(t0 + 1.5))
    assert (session.start_time, session.end_time) == (ns(t0 + 1.5), ns(t0 + 61))
    assert root.attributes["livekit.room.name"] == "support-call-42"
    assert root.attributes["livekit.room.sid"] == room.sid
    assert root.attributes["avatar.departure"] == "user_hangup"
    assert root.attributes["avatar.identity"] == "lemonslice-avatar-agent"
    assert root.attributes["avatar.join_latency_seconds"] == pytest.approx(1.5)
    assert root.status.status_code is StatusCode.UNSET
    joined = [e for e in root.events if e.name == "participant_joined"]
    assert [(e.attributes["role"], e.attributes["identity"]) for e in joined] == [
        ("user", "alice"), ("avatar", "lemonslice-avatar-agent")]
    left = [e for e in root.events if e.name == "participant_left"]
    assert [(e.attributes["role"], e.attributes["disconnect_reason"]) for e in left] == [
        ("user", "client_initiated"), ("avatar", "client_initiated")]
    tracks = {e.attributes["kind"]: e for e in session.events if e.name == "first_track"}
    assert tracks["audio"].timestamp == ns(t0 + 1.75)
    assert tracks["video"].attributes["delay_seconds"] == pytest.approx(0.5)


async def test_startup_failure_marks_the_trace_as_error(start_monitor: StartMonitor) -> None:
    exporter = InMemorySpanExporter()
    sidecar = await start_monitor(span_exporter=exporter, avatar_join_timeout=0.3)
    t0 = time.time()
    room, caller = Room(created_at=t0), user(t0)
    await send_all(sidecar, room.joined(caller))
    await sidecar.wait_for("avatar_startup_failures_total", 1, cause="join_timeout")
    await send_all(sidecar, room.left(caller, t0 + 5))
    flush(sidecar)
    spans = by_name(exporter)
    assert set(spans) == {"avatar.call", "avatar.ringing"}
    for span in spans.values():
        assert span.status.status_code is StatusCode.ERROR
    assert abs(spans["avatar.ringing"].end_time - ns(t0 + 0.3)) < 1e6  # joinedAtMs: 1 ms
    failure = [e for e in spans["avatar.call"].events if e.name == "startup_failure"]
    assert failure[0].attributes["cause"] == "join_timeout"


async def test_removed_avatar_departure_attribute(start_monitor: StartMonitor) -> None:
    exporter = InMemorySpanExporter()
    sidecar = await start_monitor(span_exporter=exporter)
    t0 = time.time() - 100
    room, face = Room(created_at=t0), avatar(t0 + 1)
    await send_all(sidecar, room.joined(user(t0)), room.joined(face),
                   room.left(face, t0 + 30, R.PARTICIPANT_REMOVED))
    sidecar.monitor.tracker.expire(time.time() + AGENT_HANGUP_WINDOW)  # no agent hang-up came
    flush(sidecar)
    assert by_name(exporter)["avatar.session"].attributes["avatar.departure"] == "removed"


async def test_openmetrics_exemplars_name_the_exported_trace(start_monitor: StartMonitor) -> None:
    exporter = InMemorySpanExporter()
    sidecar = await start_monitor(span_exporter=exporter)
    await normal_call(sidecar, float(int(time.time()) - 120))
    text = await sidecar.scrape(accept=OPENMETRICS)
    flush(sidecar)
    trace_id = f"{by_name(exporter)['avatar.call'].context.trace_id:032x}"
    for metric in ("avatar_join_latency_seconds_bucket", "avatar_session_duration_seconds_bucket",
                   "avatar_time_to_first_track_seconds_bucket"):
        exemplars = re.findall(rf'^{metric}{{.*}} 1.0 # {{trace_id="([0-9a-f]{{32}})"}}', text,
                               re.MULTILINE)
        assert exemplars and set(exemplars) == {trace_id}, metric
    assert text.rstrip().endswith("# EOF")
    plain = await sidecar.scrape()
    assert "trace_id" not in plain  # the Prometheus text format has no exemplars


async def test_tracing_off_by_default(sidecar: RunningMonitor) -> None:
    assert sidecar.monitor.tracer_provider is None
    await normal_call(sidecar, time.time() - 120)
    assert "trace_id" not in await sidecar.scrape(accept=OPENMETRICS)


class OtlpHttpReceiver:
    """An OTLP/HTTP endpoint that decodes requests with opentelemetry-proto."""

    def __init__(self) -> None:
        self.spans: list = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        message = trace_service_pb2.ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource_spans in message.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend((resource_spans.resource, s) for s in scope_spans.spans)
        self.arrived.set()
        body = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")


async def wait_for_spans(spans: list, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while len(spans) < count:
        assert time.monotonic() < deadline, f"{len(spans)} spans arrived, expected {count}"
        await asyncio.sleep(0.05)


async def test_export_to_a_real_otlp_http_endpoint(start_monitor: StartMonitor) -> None:
    receiver = OtlpHttpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        sidecar = await start_monitor(otlp_endpoint=f"http://{host}:{port}",
                                      otlp_protocol="http/protobuf")
        await normal_call(sidecar, float(int(time.time()) - 120))
        text = await sidecar.scrape(accept=OPENMETRICS)
        # The export thread posts to the receiver, which this event loop serves: flush from
        # another thread, so the loop keeps answering while the flush waits for the export.
        provider = sidecar.monitor.tracer_provider
        assert await asyncio.to_thread(provider.force_flush, 5000)
        await wait_for_spans(receiver.spans, 3)
    finally:
        await runner.cleanup()
    names = {span.name for _, span in receiver.spans}
    assert names == {"avatar.call", "avatar.ringing", "avatar.session"}
    resource = receiver.spans[0][0]
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == (
        "avatar-monitor")
    trace_ids = {span.trace_id.hex() for _, span in receiver.spans}
    assert re.findall(r'# {trace_id="([0-9a-f]{32})"}', text)[0] in trace_ids
    assert await sidecar.value("avatar_monitor_spans_exported_total") == 3


class GrpcTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list = []

    def Export(self, request, context):  # the gRPC method name
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_export_to_a_real_otlp_grpc_endpoint(start_monitor: StartMonitor) -> None:
    service = GrpcTraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        sidecar = await start_monitor(otlp_endpoint=f"http://127.0.0.1:{port}",
                                      otlp_protocol="grpc")
        await normal_call(sidecar, float(int(time.time()) - 120))
        assert await asyncio.to_thread(sidecar.monitor.tracer_provider.force_flush, 5000)
        await wait_for_spans(service.spans, 3)
    finally:
        server.stop(grace=None)
    assert {span.name for span in service.spans} == {
        "avatar.call", "avatar.ringing", "avatar.session"}


async def test_collector_down_leaves_intake_alone_and_counts_dropped_spans(
        start_monitor: StartMonitor) -> None:
    # Nothing listens on this port: bind it, then close it.
    probe = web.AppRunner(web.Application())
    await probe.setup()
    site = web.TCPSite(probe, "127.0.0.1", 0)
    await site.start()
    port = probe.addresses[0][1]
    await probe.cleanup()
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=1)
    sidecar = await start_monitor(span_exporter=exporter)
    started = time.monotonic()
    for _ in range(5):
        await normal_call(sidecar, float(int(time.time()) - 120))
    assert time.monotonic() - started < 2, "intake slowed down by a dead collector"
    assert await sidecar.value("avatar_calls_started_total") == 5
    assert await sidecar.value("avatar_join_latency_seconds_count") == 5
    assert sidecar.monitor.tracker.tracked  # still tracking
    await sidecar.wait_for("avatar_monitor_spans_dropped_total", 15, timeout=30,
                           reason="export_failed")
    assert await sidecar.value("avatar_monitor_spans_exported_total") == 0


def test_a_full_export_queue_drops_and_counts() -> None:
    class Stuck(InMemorySpanExporter):
        """An exporter that hangs until released, as a collector that stopped answering."""

        def __init__(self) -> None:
            super().__init__()
            self.release = threading.Event()

        def export(self, spans):
            self.release.wait(10)
            return super().export(spans)

    dropped: list[tuple[str, int]] = []
    stuck = Stuck()
    processor = BoundedSpanProcessor(stuck, lambda reason, n: dropped.append((reason, n)),
                                     max_queue=4, batch_size=1, interval=0.01)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for _ in range(20):
        tracer.start_span("x").end()
    assert sum(n for reason, n in dropped if reason == "queue_full") >= 20 - 4 - 1
    stuck.release.set()
    processor.shutdown()
    assert len(stuck.get_finished_spans()) <= 5


async def test_the_avatars_word_is_on_its_session_span(start_monitor: StartMonitor) -> None:
    exporter = InMemorySpanExporter()
    sidecar = await start_monitor(span_exporter=exporter)
    t0 = float(int(time.time()) - 120)
    room = Room(created_at=t0 - 1)
    caller, face = user(t0), avatar(t0 + 1.5)
    await send_all(sidecar, room.joined(caller), room.joined(face))
    for signal, at in ((AvatarReady(), t0 + 3), (AvatarIdleTimeout(), t0 + 60)):
        sidecar.monitor.bridge.accept("http", ReportedEvent(signal, None, at), time.time(),
                                      room.name, room.sid)
    await send_all(sidecar, room.left(face, t0 + 61))
    flush(sidecar)
    spans = by_name(exporter)
    assert spans["avatar.call"].attributes["avatar.ready_latency_seconds"] == 3
    assert spans["avatar.call"].attributes["avatar.departure"] == "idle_timeout"
    events = [(e.name, e.timestamp, dict(e.attributes)) for e in spans["avatar.session"].events]
    assert events == [("avatar_ready", ns(t0 + 3), {"latency_seconds": 3.0}),
                      ("avatar_said", ns(t0 + 60), {"message": "idle_timeout"})]
