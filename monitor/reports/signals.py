"""What the voice agent and the avatar backend report: data-channel messages and /v1/events.

Two data topics are read. `lemonslice/message` carries the avatar backend's own messages
(`{"type": "startup_failure", ...}`). `avatar-monitor/events` carries this project's versioned
schema (docs/events.md): `pipeline_error`, `session_closed`, `startup_failure` and
`agent_latency`, published by the voice agent; `POST /v1/events` takes the same documents. Its
names come from avatar_monitor_agent.schema, which the voice agent's client shares. Everything
parsed here is reduced to closed sets, so it can be counted with bounded labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from avatar_monitor_agent.schema import (
    CLOSE_REASONS,
    COMPONENTS,
    EVENT_TYPES,
    EVENTS_SCHEMA_VERSION,
    EVENTS_TOPIC,
    LATENCY_STAGES,
    LEMONSLICE_TOPIC,
)

from monitor.intake import strict_json

MAX_MESSAGE_BYTES = 64 * 1024
MAX_ID_CHARS = 64
MAX_TEXT_CHARS = 256  # startup-failure messages kept for a call's timeline, never as labels

TOPIC_LABELS = {LEMONSLICE_TOPIC: "lemonslice", EVENTS_TOPIC: "avatar-monitor"}
# livekit-agents' own session broadcast (monitor.reports.session_stream)
SESSION_TOPIC_LABEL = "agent-session"
SESSION_TYPES = ("pipeline_error", "agent_latency", "other", "malformed")
MAX_LATENCY_SECONDS = 3600.0


@dataclass(slots=True, frozen=True)
class StartupFailureMessage:
    """The backend says the avatar failed to become active."""

    message: str = ""  # free text, truncated: for a call's timeline only


@dataclass(slots=True, frozen=True)
class PipelineError:
    component: str  # one of COMPONENTS
    recoverable: bool


@dataclass(slots=True, frozen=True)
class SessionClosed:
    reason: str  # one of CLOSE_REASONS


@dataclass(slots=True, frozen=True)
class AgentLatency:
    """One turn's latencies in seconds, by stage (a subset of LATENCY_STAGES)."""

    stages: tuple[tuple[str, float], ...]


Signal = StartupFailureMessage | PipelineError | SessionClosed | AgentLatency


class BadEvent(ValueError):
    """An event document that does not follow the schema; the message is a short reason."""


@dataclass(slots=True, frozen=True)
class ReportedEvent:
    """A valid event: its signal, the sender's id for de-duplication, the sender's time."""

    signal: Signal
    id: str | None = None
    at: float | None = None  # unix seconds, the sender's clock


@dataclass(slots=True, frozen=True)
class ParsedMessage:
    """A data packet reduced to a counted type and, when it means something, an event."""

    topic: str  # a TOPIC_LABELS value
    type: str  # one of LEMONSLICE_TYPES or EVENT_TYPES, "other" or "malformed"
    event: ReportedEvent | None = None


def parse_message(topic: str, payload: bytes) -> ParsedMessage | None:
    """Parse a data packet; None when its topic is not one we read."""
    label = TOPIC_LABELS.get(topic)
    if label is None:
        return None
    doc = _json_object(payload)
    if doc is None:
        return ParsedMessage(label, "malformed")
    kind = doc.get("type")
    if topic == LEMONSLICE_TOPIC:
        if kind != "startup_failure":
            return ParsedMessage(label, "other")
        try:
            return ParsedMessage(label, "startup_failure", _startup_failure(doc))
        except BadEvent:
            return ParsedMessage(label, "malformed")
    if kind not in EVENT_TYPES:
        return ParsedMessage(label, "malformed" if doc.get("v") != EVENTS_SCHEMA_VERSION
                             else "other")
    try:
        return ParsedMessage(label, kind, parse_report(doc))
    except BadEvent:
        return ParsedMessage(label, "malformed")


def parse_report(doc: dict[str, Any]) -> ReportedEvent:
    """Validate one `avatar-monitor/events` document (schema version 1)."""
    if doc.get("v") != EVENTS_SCHEMA_VERSION:
        raise BadEvent(f"v must be {EVENTS_SCHEMA_VERSION}")
    kind = doc.get("type")
    if kind == "pipeline_error":
        component, recoverable = doc.get("component"), doc.get("recoverable")
        if type(component) is not str:
            raise BadEvent("component must be a string")
        if type(recoverable) is not bool:
            raise BadEvent("recoverable must be true or false")
        component = component if component in COMPONENTS else "other"
        return _reported(doc, PipelineError(component, recoverable))
    if kind == "session_closed":
        reason = doc.get("reason")
        if type(reason) is not str:
            raise BadEvent("reason must be a string")
        return _reported(doc, SessionClosed(reason if reason in CLOSE_REASONS else "other"))
    if kind == "startup_failure":
        return _startup_failure(doc)
    if kind == "agent_latency":
        return _reported(doc, _agent_latency(doc))
    raise BadEvent(f"type must be one of {', '.join(EVENT_TYPES)}")


def _startup_failure(doc: dict[str, Any]) -> ReportedEvent:
    message = doc.get("message", "")
    if type(message) is not str:
        raise BadEvent("message must be a string")
    return _reported(doc, StartupFailureMessage(message[:MAX_TEXT_CHARS]))


def _agent_latency(doc: dict[str, Any]) -> AgentLatency:
    stages = []
    for stage in LATENCY_STAGES:
        value = doc.get(stage)
        if value is None:
            continue
        if not _is_seconds(value, MAX_LATENCY_SECONDS):
            raise BadEvent(f"{stage} must be seconds between 0 and {MAX_LATENCY_SECONDS:g}")
        stages.append((stage, float(value)))
    if not stages:
        raise BadEvent(f"agent_latency needs one of {', '.join(LATENCY_STAGES)}")
    return AgentLatency(tuple(stages))


def _reported(doc: dict[str, Any], signal: Signal) -> ReportedEvent:
    event_id, at = doc.get("id"), doc.get("at")
    if event_id is not None and (type(event_id) is not str or not 0 < len(event_id)
                                 <= MAX_ID_CHARS):
        raise BadEvent(f"id must be a string of 1 to {MAX_ID_CHARS} characters")
    if at is not None and not _is_seconds(at, math.inf):
        raise BadEvent("at must be unix seconds")
    return ReportedEvent(signal, event_id, None if at is None else float(at))


def _is_seconds(value: Any, limit: float) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and 0 <= value <= limit


def _json_object(payload: bytes) -> dict[str, Any] | None:
    if len(payload) > MAX_MESSAGE_BYTES:
        return None
    try:
        doc = strict_json.loads(payload)
    except strict_json.NotAccepted:
        return None
    return doc if type(doc) is dict else None
