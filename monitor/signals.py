"""What the room observer sees that webhooks cannot: data-channel messages and speech.

Two data topics are read. `lemonslice/message` carries the avatar backend's own messages
(`{"type": "startup_failure", ...}`). `avatar-monitor/events` carries this project's versioned
schema (docs/events.md): `pipeline_error` and `session_closed`, published by the voice agent.
Everything parsed here is reduced to closed sets, so it can be counted with bounded labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

LEMONSLICE_TOPIC = "lemonslice/message"
EVENTS_TOPIC = "avatar-monitor/events"
EVENTS_SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024

TOPIC_LABELS = {LEMONSLICE_TOPIC: "lemonslice", EVENTS_TOPIC: "avatar-monitor"}
LEMONSLICE_TYPES = ("startup_failure",)
EVENT_TYPES = ("pipeline_error", "session_closed")
MESSAGE_TYPES = (*LEMONSLICE_TYPES, *EVENT_TYPES, "other", "malformed")
COMPONENTS = ("stt", "llm", "tts", "realtime", "other")
CLOSE_REASONS = ("error", "job_shutdown", "participant_disconnected", "user_initiated",
                 "task_completed", "other")


@dataclass(slots=True, frozen=True)
class StartupFailureMessage:
    """The backend says the avatar failed to become active."""


@dataclass(slots=True, frozen=True)
class PipelineError:
    component: str  # one of COMPONENTS
    recoverable: bool


@dataclass(slots=True, frozen=True)
class SessionClosed:
    reason: str  # one of CLOSE_REASONS


Signal = StartupFailureMessage | PipelineError | SessionClosed


@dataclass(slots=True, frozen=True)
class ParsedMessage:
    """A data packet reduced to a counted type and, when it means something, a signal."""

    topic: str  # a TOPIC_LABELS value
    type: str  # one of MESSAGE_TYPES
    signal: Signal | None = None


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
        if kind == "startup_failure":
            return ParsedMessage(label, "startup_failure", StartupFailureMessage())
        return ParsedMessage(label, "other")
    if doc.get("v") != EVENTS_SCHEMA_VERSION:
        return ParsedMessage(label, "malformed")
    if kind == "pipeline_error":
        component, recoverable = doc.get("component"), doc.get("recoverable")
        if type(recoverable) is not bool or type(component) is not str:
            return ParsedMessage(label, "malformed")
        component = component if component in COMPONENTS else "other"
        return ParsedMessage(label, "pipeline_error", PipelineError(component, recoverable))
    if kind == "session_closed":
        reason = doc.get("reason")
        if type(reason) is not str:
            return ParsedMessage(label, "malformed")
        reason = reason if reason in CLOSE_REASONS else "other"
        return ParsedMessage(label, "session_closed", SessionClosed(reason))
    return ParsedMessage(label, "other")


def _json_object(payload: bytes) -> dict[str, Any] | None:
    if len(payload) > MAX_MESSAGE_BYTES:
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return doc if type(doc) is dict else None
