"""One record per finished call for the log store people already have (docs/call-record.md):
with --log-json, one JSON log line holding `"call_record": {...}`; with an OTLP endpoint, the same
document as an OTLP log record (body) with the room and verdict as attributes."""

from __future__ import annotations

import datetime
import logging
import time
from typing import TYPE_CHECKING, Any

from monitor.sinks.records import CallRecord
from monitor.verdict import Verdict

if TYPE_CHECKING:
    from opentelemetry._logs import Logger

log = logging.getLogger(__name__)

SCHEMA = 1
EVENT_NAME = "avatar.call_record"


def rfc3339(at: float | None) -> str | None:
    """Unix seconds as RFC 3339 UTC with milliseconds (None stays None)."""
    if at is None:
        return None
    text = datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def call_record(record: CallRecord, verdict: Verdict, trace_id: str | None) -> dict[str, Any]:
    """The documented call record (docs/call-record.md), schema SCHEMA."""
    end = record.ended_at
    return {
        "schema": SCHEMA,
        "room": record.room,
        "sid": record.sid,
        "start": rfc3339(record.started_at),
        "end": rfc3339(end),
        "duration_seconds": None if end is None else round(max(end - record.started_at, 0), 3),
        "state": record.state,
        "verdict": verdict.name,
        "status": verdict.status,
        "findings": [finding.rule for finding in verdict.findings],
        "evidence": verdict.findings[0].evidence if verdict.findings else None,
        "departure": None if record.departure is None else {
            "cause": record.departure, "disconnect_reason": record.avatar_reason},
        "join_latency_seconds": record.join_latency,
        "startup_failure": None if record.startup_failure is None and
        record.startup_message is None else {"cause": record.startup_failure,
                                             "message": record.startup_message},
        "pipeline_errors": {
            "unrecoverable": None if record.unrecoverable is None else
            {"component": record.unrecoverable[0], "at": rfc3339(record.unrecoverable[1]),
             "message": record.unrecoverable_message},
            "recoverable": record.recoverable_errors,
            "closed_reason": record.closed_reason,
        },
        "participants": [
            {"identity": p.identity, "role": p.role, "joined": rfc3339(p.joined_at),
             "left": rfc3339(p.left_at), "reason": p.reason}
            for p in record.participants
        ],
        "trace_id": trace_id,
    }


_SEVERITY = {"failed": ("ERROR", 17), "warning": ("WARN", 13)}  # else INFO (9)


class CallRecordLog:
    """A FinishedCalls consumer: the call record as a JSON log line (with --log-json) and as an
    OTLP log record (with an OTel logger)."""

    def __init__(self, json_lines: bool, otel: Logger | None = None) -> None:
        self.json_lines = json_lines
        self.otel = otel

    def __call__(self, record: CallRecord, verdict: Verdict, trace_id: str | None) -> None:
        doc = call_record(record, verdict, trace_id)
        if self.json_lines:
            log.info("call finished", extra={"call_record": doc})
        if self.otel is not None:
            self._emit(doc, record)

    def _emit(self, doc: dict[str, Any], record: CallRecord) -> None:
        from opentelemetry._logs import SeverityNumber

        text, number = _SEVERITY.get(doc["status"], ("INFO", 9))
        assert self.otel is not None
        self.otel.emit(
            timestamp=int((record.ended_at or record.started_at) * 1e9),
            observed_timestamp=time.time_ns(),
            severity_number=SeverityNumber(number), severity_text=text,
            body=_without_nulls(doc), event_name=EVENT_NAME,
            attributes={"livekit.room.name": record.room, "livekit.room.sid": record.sid,
                        "avatar.call.verdict": doc["verdict"],
                        "avatar.call.status": doc["status"]})


def _without_nulls(value: Any) -> Any:
    """OTLP's AnyValue has no null: absent fields are left out."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
