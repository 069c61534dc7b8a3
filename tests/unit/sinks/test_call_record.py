"""One record per finished call (docs/call-record.md): a single JSON log line with --log-json and
an OTLP log record with an exporter, both when the call's linger is over, with its trace id."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.logs import JsonFormatter
from monitor.sinks.call_record import EVENT_NAME
from tests.support.calls import Call, abandoned, network
from tests.support.served import StartMonitor
from tests.support.webhooks import user

LINGER = 10.0
DOC = Path(__file__).resolve().parents[3] / "docs" / "call-record.md"
KEYS = {"schema", "room", "sid", "start", "end", "duration_seconds", "state", "verdict", "status",
        "findings", "evidence", "departure", "join_latency_seconds", "startup_failure",
        "pipeline_errors", "participants", "trace_id"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HOSTILE = 'user "1"\n<b>[red]\x1b[31m'


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The call-record log lines as --log-json writes them."""
    formatter = JsonFormatter()
    return [formatter.format(r) for r in caplog.records if r.name == "monitor.sinks.call_record"]


async def test_one_json_line_per_call_once_its_linger_is_over(
        start_monitor: StartMonitor, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "monitor.sinks.call_record")
    sidecar = await start_monitor(log_json=True)
    call = Call(sidecar, float(int(time.time()) - 100))
    call.caller = user(call.t, identity=HOSTILE)
    await network(call)
    assert lines(caplog) == []  # still lingering: late webhooks may change it
    sidecar.monitor.tracker.expire(time.time() + LINGER + 1)
    (line,) = lines(caplog)
    assert "\n" not in line  # one line, whatever the identities hold
    doc = json.loads(line)
    assert doc["message"] == "call finished"
    record = doc["call_record"]
    assert set(record) == KEYS
    assert (record["room"], record["sid"]) == (call.room.name, call.room.sid)
    assert (record["verdict"], record["status"], record["state"]) == ("network", "failed", "ended")
    assert record["departure"] == {"cause": "network", "disconnect_reason": "connection_timeout"}
    assert RFC3339.match(record["start"]) and RFC3339.match(record["end"])
    assert record["duration_seconds"] > 0
    assert record["join_latency_seconds"] == pytest.approx(2.0)
    assert record["startup_failure"] is None and record["trace_id"] is None
    assert record["pipeline_errors"] == {"unrecoverable": None, "recoverable": 0,
                                         "closed_reason": None}
    people = {p["role"]: p for p in record["participants"]}
    assert people["user"]["identity"] == HOSTILE  # intact, escaped by JSON
    assert people["avatar"]["reason"] == "connection_timeout"
    assert set(people["user"]) == {"identity", "role", "joined", "left", "reason"}
    assert "avatar left with CONNECTION_TIMEOUT" in record["evidence"]
    sidecar.monitor.tracker.expire(time.time() + 2 * LINGER)
    assert len(lines(caplog)) == 1  # once


async def test_no_line_without_log_json(start_monitor: StartMonitor,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "monitor.sinks.call_record")
    sidecar = await start_monitor()
    await network(Call(sidecar, float(int(time.time()) - 100)))
    sidecar.monitor.tracker.expire(time.time() + LINGER + 1)
    assert lines(caplog) == []


async def test_the_record_names_the_calls_trace(start_monitor: StartMonitor,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "monitor.sinks.call_record")
    spans = InMemorySpanExporter()
    sidecar = await start_monitor(span_exporter=spans, log_json=True)
    await network(Call(sidecar, float(int(time.time()) - 100)))
    sidecar.monitor.tracker.expire(time.time() + LINGER + 1)
    record = json.loads(lines(caplog)[0])["call_record"]
    assert sidecar.monitor.tracer_provider is not None
    sidecar.monitor.tracer_provider.force_flush()
    (root,) = [s for s in spans.get_finished_spans() if s.name == "avatar.call"]
    assert root.context is not None
    assert record["trace_id"] == f"{root.context.trace_id:032x}"


async def test_an_otlp_log_record_per_call(start_monitor: StartMonitor) -> None:
    exporter = InMemoryLogRecordExporter()
    sidecar = await start_monitor(log_exporter=exporter)
    failed, gave_up = (Call(sidecar, float(int(time.time()) - 100 + i)) for i in range(2))
    await network(failed)
    await abandoned(gave_up)
    sidecar.monitor.tracker.expire(time.time() + LINGER + 1)
    assert sidecar.monitor.logger_provider is not None
    sidecar.monitor.logger_provider.force_flush()
    logs = {log.log_record.attributes["livekit.room.name"]: log  # type: ignore[index]
            for log in exporter.get_finished_logs()}
    assert set(logs) == {failed.room.name, gave_up.room.name}
    record = logs[failed.room.name].log_record
    assert record.event_name == EVENT_NAME
    assert (record.severity_text, dict(record.attributes or {})) == ("ERROR", {
        "livekit.room.name": failed.room.name, "livekit.room.sid": failed.room.sid,
        "avatar.call.verdict": "network", "avatar.call.status": "failed"})
    body = record.body
    assert isinstance(body, dict)
    assert body["departure"] == {"cause": "network", "disconnect_reason": "connection_timeout"}
    assert "trace_id" not in body and "startup_failure" not in body  # OTLP has no null
    assert logs[gave_up.room.name].log_record.severity_text == "WARN"
    # The OTLP exporters' encoder takes it (nested maps and lists as AnyValue).
    assert encode_logs(list(exporter.get_finished_logs())).ByteSize() > 0


def test_every_field_is_documented() -> None:
    text = DOC.read_text()
    for key in KEYS:
        assert f"`{key}`" in text, key
