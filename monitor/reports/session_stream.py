"""livekit-agents' session broadcast (byte-stream topic `lk.agent.session`) as reported events.

An AgentSession that hosts its room's I/O sends every participant its session messages, each a
protobuf `AgentSessionMessage` (livekit-protocol `agent_pb.agent_session`): agent state,
conversation items with their metrics, errors. Two mean something to the sidecar:

- an error. livekit-agents sends only `str(error)`, e.g. `type='tts_error'
  timestamp=1796192279.73 label='...' error=APIError(...) recoverable=False`: the type, the
  timestamp and `recoverable` are read from it (`recoverable` from the end, as the wrapped error's
  text may contain anything) -> a `PipelineError`;
- a message with latency metrics -> an `AgentLatency`.

Each gets the id avatar_monitor_agent's `instrument()` gives the same event
(avatar_monitor_agent.agent_events), so an agent that also reports counts once. The agent's state
comes from its `lk.agent.state` attribute instead, and livekit-agents broadcasts no session
close and no playback latency.
"""

from __future__ import annotations

import math
import re

from avatar_monitor_agent.agent_events import (
    COMPONENT_OF_ERROR,
    LATENCY_OF_METRIC,
    error_event_id,
    turn_event_id,
)
from avatar_monitor_agent.schema import MAX_ERROR_MESSAGE_CHARS, SESSION_TOPIC
from google.protobuf.message import DecodeError
from livekit import rtc
from livekit.protocol.agent_pb import agent_session as pb

from monitor.calls.inputs import AgentLatency, PipelineError, Signal
from monitor.reports.signals import MAX_LATENCY_SECONDS, SESSION_TOPIC_LABEL, ReportedEvent

TOPIC, LABEL = SESSION_TOPIC, SESSION_TOPIC_LABEL
MAX_STREAM_BYTES = 256 * 1024  # a chat item with a long reply fits; more is not read
_ERROR_HEAD = re.compile(r"type='(?P<type>[a-z_]{1,40})' timestamp=(?P<at>[0-9][0-9.e+-]{0,30}) ")
_ERROR_TAIL = re.compile(r" recoverable=(?P<recoverable>True|False)\s*$")
# The wrapped provider error: `error=APIError('TTS provider: 401')` before `recoverable=`.
_ERROR_CAUSE = re.compile(r" error=(?P<cause>.*) recoverable=(?:True|False)\s*$", re.S)


class Undecodable(ValueError):
    """Bytes that are not an AgentSessionMessage."""


def decode(payload: bytes) -> ReportedEvent | None:
    """One stream's bytes -> the event it reports, or None when it reports nothing counted here.
    Raises Undecodable for bytes that are not a session message."""
    message = pb.AgentSessionMessage()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise Undecodable(str(exc)) from None
    if not message.HasField("event"):
        return None
    event = message.event
    kind = event.WhichOneof("event")
    if kind == "error":
        return error_event(event.error.message)
    if kind == "conversation_item_added":
        return latency_event(event.conversation_item_added.item, event.created_at.ToMicroseconds()
                             / 1e6 if event.HasField("created_at") else None)
    return None


def error_event(text: str) -> ReportedEvent | None:
    """livekit-agents' `str(error)` of an LLMError, STTError, TTSError or RealtimeModelError."""
    head, tail = _ERROR_HEAD.match(text), _ERROR_TAIL.search(text)
    if head is None or tail is None:
        return None  # another error (InterruptionDetectionError, "Unknown error")
    try:
        at = float(head["at"])
    except ValueError:
        return None
    if not math.isfinite(at) or at < 0:
        return None
    cause = _ERROR_CAUSE.search(text)
    signal = PipelineError(COMPONENT_OF_ERROR.get(head["type"], "other"),
                           tail["recoverable"] == "True",
                           _cause_words(cause["cause"]) if cause else "")
    return ReportedEvent(signal, error_event_id(head["type"], at), at)


def _cause_words(cause: str) -> str:
    """`APIError('TTS provider: 401')` -> `APIError: TTS provider: 401`, bounded."""
    match = re.fullmatch(r"(?P<cls>[A-Za-z_][\w.]*)\((?P<quote>['\"])(?P<text>.*)(?P=quote)"
                         r"(?:, .*)?\)", cause, re.S)
    words = f"{match['cls']}: {match['text']}" if match else cause
    return words[:MAX_ERROR_MESSAGE_CHARS]


def latency_event(item: pb.ChatContext.ChatItem, at: float | None) -> ReportedEvent | None:
    """A conversation message's latency metrics, as instrument() reports the same item."""
    if item.WhichOneof("item") != "message" or not item.message.id:
        return None
    metrics = item.message.metrics
    stages = tuple((stage, float(getattr(metrics, key))) for key, stage in LATENCY_OF_METRIC.items()
                   if metrics.HasField(key)
                   and 0 <= getattr(metrics, key) <= MAX_LATENCY_SECONDS)
    if not stages:
        return None
    return ReportedEvent(AgentLatency(stages), turn_event_id(item.message.id), at)


async def read_bounded(reader: rtc.ByteStreamReader, limit: int = MAX_STREAM_BYTES
                       ) -> bytes | None:
    """The stream's bytes, read to its end; None when it is larger than `limit`."""
    chunks, size = [], 0
    async for chunk in reader:
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    return b"".join(chunks) if size <= limit else None


def event_type(signal: Signal) -> str:
    """The avatar_data_messages_total type of what a session stream reported."""
    return "pipeline_error" if isinstance(signal, PipelineError) else "agent_latency"
