"""What the voice agent, the avatar backend and the avatar report: data-channel messages and
/v1/events.

Three data topics are read. `lemonslice/message` carries the avatar backend's own messages
(`{"type": "startup_failure", ...}`, which the voice agent sends) and the avatar's `bot_ready`.
`lemonslice` carries the LemonSlice avatar's own: `bot_ready`, `idle_timeout`, `error`,
`video_generation_error` and `metric`. `avatar-monitor/events` carries this project's versioned
schema (docs/events.md): `pipeline_error`, `session_closed`, `startup_failure`,
`agent_latency` and `agent_state`, published by the voice agent, and `avatar_message`, what the
voice agent's avatar said there, forwarded by the voice agent and read here by the same parser as
the observer's own copy (`avatar_said`); `POST /v1/events` takes the same documents. Its
names come from avatar_monitor_agent.schema, which the voice agent's client shares. Everything
parsed here is reduced to closed sets, so it can be counted with bounded labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from avatar_monitor_agent.schema import (
    AGENT_STATES,
    AVATAR_MESSAGE_TOPICS,
    AVATAR_STAGES,
    AVATAR_TOPIC,
    AVATAR_TYPES,
    CLOSE_REASONS,
    COMPONENTS,
    EVENT_TYPES,
    EVENTS_SCHEMA_VERSION,
    EVENTS_TOPIC,
    LATENCY_STAGES,
    LEMONSLICE_TOPIC,
    MAX_ERROR_MESSAGE_CHARS,
)

from monitor.calls.inputs import (
    AgentLatency,
    AgentState,
    AvatarError,
    AvatarIdleTimeout,
    AvatarLatency,
    AvatarReady,
    PipelineError,
    SessionClosed,
    Signal,
    StartupFailureMessage,
)
from monitor.intake import strict_json

MAX_MESSAGE_BYTES = 64 * 1024
MAX_ID_CHARS = 64
MAX_TEXT_CHARS = 256  # startup-failure messages kept for a call's timeline, never as labels
MAX_IDENTITY_CHARS = 256  # an avatar_message's `avatar`, the avatar's identity

# Topic -> its label in avatar_data_messages_total. `lemonslice` (topic lemonslice/message) was
# the first, so the avatar's own topic `lemonslice` is labelled `lemonslice-avatar`.
TOPIC_LABELS = {LEMONSLICE_TOPIC: "lemonslice", AVATAR_TOPIC: "lemonslice-avatar",
                EVENTS_TOPIC: "avatar-monitor"}
# livekit-agents' own session broadcast (monitor.reports.session_stream)
SESSION_TOPIC_LABEL = "agent-session"
SESSION_TYPES = ("pipeline_error", "agent_latency", "other", "malformed")
MAX_LATENCY_SECONDS = 3600.0
# The avatar's `metric` values are seconds or milliseconds, told apart as LemonSlice's own
# frontend does (06-form-demo, parseLemonsliceLatencyMs): a number that is not whole and is
# below this is seconds; any other (a whole number, or one of 30 or more) is milliseconds.
SECONDS_BELOW = 30.0



class BadEvent(ValueError):
    """An event document that does not follow the schema; the message is a short reason."""


@dataclass(slots=True, frozen=True)
class ReportedEvent:
    """A valid event: its signal, the sender's id for de-duplication, the sender's time and,
    for the avatar's word forwarded by the voice agent, the avatar's identity."""

    signal: Signal
    id: str | None = None
    at: float | None = None  # unix seconds, the sender's clock
    avatar: str | None = None  # avatar_message: whose word (the bridge checks it is the call's)


@dataclass(slots=True, frozen=True)
class ParsedMessage:
    """A data packet reduced to a counted type and, when it means something, an event."""

    topic: str  # a TOPIC_LABELS value
    type: str  # one of LEMONSLICE_TYPES, AVATAR_TYPES or EVENT_TYPES, "other" or "malformed"
    event: ReportedEvent | None = None
    # Taken only from the call's avatar: everything on the avatar's topic, and `bot_ready`.
    avatar_only: bool = False


def parse_message(topic: str, payload: bytes) -> ParsedMessage | None:
    """Parse a data packet; None when its topic is not one we read."""
    label = TOPIC_LABELS.get(topic)
    if label is None:
        return None
    doc = _json_object(payload)
    if doc is None:
        return ParsedMessage(label, "malformed", avatar_only=topic == AVATAR_TOPIC)
    kind = doc.get("type")
    if topic == AVATAR_TOPIC:
        return _avatar_message(label, doc)
    if topic == LEMONSLICE_TOPIC:
        if kind == "bot_ready":
            return ParsedMessage(label, "bot_ready", ReportedEvent(AvatarReady()),
                                 avatar_only=True)
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


def _avatar_message(label: str, doc: dict[str, Any]) -> ParsedMessage:
    """A message on the avatar's own topic. It carries no time (its time is its arrival) and no
    id: the observer gives it one (avatar_monitor_agent.agent_events.avatar_message_id)."""
    try:
        kind, signal = avatar_said(AVATAR_TOPIC, doc)
    except BadEvent:
        return ParsedMessage(label, "malformed", avatar_only=True)
    event = ReportedEvent(signal) if signal is not None else None
    return ParsedMessage(label, kind, event, avatar_only=True)


def avatar_said(topic: str, doc: dict[str, Any]) -> tuple[str, Signal | None]:
    """One message of the avatar on `topic` (its own `lemonslice`, or `bot_ready` on
    `lemonslice/message`): its counted type (`other` for one not read here) and its signal
    (None: nothing to apply, a `metric` with no timing). Raises BadEvent for a field of the
    wrong kind. The observer's copy and the voice agent's forwarded one are both read here."""
    kind = doc.get("type")
    if topic == LEMONSLICE_TOPIC:
        return ("bot_ready", AvatarReady()) if kind == "bot_ready" else ("other", None)
    if kind not in AVATAR_TYPES:
        return "other", None
    return kind, _avatar_signal(kind, doc)


def _avatar_signal(kind: str, doc: dict[str, Any]) -> Signal | None:
    if kind == "bot_ready":
        return AvatarReady()
    if kind == "idle_timeout":
        return AvatarIdleTimeout()
    if kind in ("error", "video_generation_error"):
        fatal = doc.get("fatal", kind == "video_generation_error")
        if type(fatal) is not bool:
            raise BadEvent("fatal must be true or false")
        text = doc.get("error", doc.get("message"))
        words = text[:MAX_ERROR_MESSAGE_CHARS] if type(text) is str else ""
        return AvatarError(kind, fatal, words)
    stages = []  # metric
    for field, stage in AVATAR_STAGES.items():
        value = doc.get(field, doc.get(_camel(field)))
        if value is not None:
            stages.append((stage, _avatar_seconds(value)))
    return AvatarLatency(tuple(stages)) if stages else None


def _avatar_seconds(value: Any) -> float:
    """A `metric` value in seconds: seconds when not whole and below SECONDS_BELOW, else ms."""
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        raise BadEvent("a metric value must be a number above 0")
    seconds = float(value) if value < SECONDS_BELOW and not float(value).is_integer() \
        else value / 1000.0
    if seconds > MAX_LATENCY_SECONDS:
        raise BadEvent(f"a metric value must be at most {MAX_LATENCY_SECONDS:g} s")
    return float(seconds)


def _camel(field: str) -> str:
    """time_to_first_push -> timeToFirstPush (LemonSlice's examples read both spellings)."""
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


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
        return _reported(doc, PipelineError(component, recoverable, _error_words(doc)))
    if kind == "session_closed":
        reason = doc.get("reason")
        if type(reason) is not str:
            raise BadEvent("reason must be a string")
        return _reported(doc, SessionClosed(reason if reason in CLOSE_REASONS else "other",
                                            _error_words(doc)))
    if kind == "startup_failure":
        return _startup_failure(doc)
    if kind == "agent_latency":
        return _reported(doc, _agent_latency(doc))
    if kind == "agent_state":
        state = doc.get("state")
        if type(state) is not str:
            raise BadEvent("state must be a string")
        return _reported(doc, AgentState(state if state in AGENT_STATES else "other"))
    if kind == "avatar_message":
        return _forwarded(doc)
    raise BadEvent(f"type must be one of {', '.join(EVENT_TYPES)}")


def _forwarded(doc: dict[str, Any]) -> ReportedEvent:
    """`avatar_message`: what the voice agent's avatar said, forwarded by the voice agent."""
    topic, avatar, message = doc.get("topic"), doc.get("avatar"), doc.get("message")
    if topic not in AVATAR_MESSAGE_TOPICS:
        raise BadEvent(f"topic must be one of {', '.join(AVATAR_MESSAGE_TOPICS)}")
    if type(avatar) is not str or not 0 < len(avatar) <= MAX_IDENTITY_CHARS:
        raise BadEvent(f"avatar must be an identity of 1 to {MAX_IDENTITY_CHARS} characters")
    if type(message) is not dict:
        raise BadEvent("message must be the avatar's JSON object")
    try:
        kind, signal = avatar_said(topic, message)
    except BadEvent as exc:
        raise BadEvent(f"message: {exc}") from None
    if kind == "other":
        said = AVATAR_TYPES if topic == AVATAR_TOPIC else ("bot_ready",)
        raise BadEvent(f"message: type must be one of {', '.join(said)} on topic {topic}")
    if signal is None:
        raise BadEvent("message: a metric with no time_to_first_push or time_to_last_push")
    return replace(_reported(doc, signal), avatar=avatar)


def _error_words(doc: dict[str, Any]) -> str:
    """The optional `message` of an error: a string, cut to MAX_ERROR_MESSAGE_CHARS."""
    message = doc.get("message", "")
    if type(message) is not str:
        raise BadEvent("message must be a string")
    return message[:MAX_ERROR_MESSAGE_CHARS]


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
