"""livekit-agents' lk.agent.session broadcast decoded, and the ids it shares with instrument()."""

from __future__ import annotations

import time
from typing import Any

import pytest
from avatar_monitor_agent import Reporter, instrument
from avatar_monitor_agent.agent_events import error_event_id, turn_event_id
from livekit import rtc
from livekit.agents import AgentSession, APIError, llm, stt, tts
from livekit.agents.voice.events import ConversationItemAddedEvent, ErrorEvent
from livekit.protocol.agent_pb import agent_session as pb

from monitor.calls.inputs import AgentLatency, PipelineError
from monitor.reports.session_stream import Undecodable, decode


def wire(event: pb.AgentSessionEvent) -> bytes:
    event.created_at.FromNanoseconds(int(1796192279.5 * 1e9))
    return pb.AgentSessionMessage(event=event).SerializeToString()


def error_wire(error: Any) -> bytes:
    """As livekit-agents' SessionHost sends an ErrorEvent: only str(error)."""
    return wire(pb.AgentSessionEvent(error=pb.AgentSessionEvent.Error(message=str(error))))


def reply_wire(item_id: str, **metrics: float) -> bytes:
    message = pb.ChatMessage(id=item_id, role=pb.ASSISTANT,
                             content=[pb.ChatMessage.ChatContent(text="Hello")],
                             metrics=pb.MetricsReport(**metrics))
    item = pb.ChatContext.ChatItem(message=message)
    return wire(pb.AgentSessionEvent(
        conversation_item_added=pb.AgentSessionEvent.ConversationItemAdded(item=item)))


@pytest.mark.parametrize(("error", "component"), [
    (tts.TTSError, "tts"), (stt.STTError, "stt"), (llm.LLMError, "llm")])
@pytest.mark.parametrize("recoverable", [True, False])
def test_a_pipeline_error_is_read_from_its_text(error: Any, component: str,
                                               recoverable: bool) -> None:
    at = time.time()
    sent = error(timestamp=at, label="plugin.X", error=APIError("down"), recoverable=recoverable)
    event = decode(error_wire(sent))
    assert event is not None
    # the provider's error in its own words, as instrument() words it (error_message)
    assert event.signal == PipelineError(component, recoverable, "APIError: down")
    assert (event.id, event.at) == (error_event_id(sent.type, at), at)


def test_recoverable_is_read_from_the_end_whatever_the_wrapped_error_says() -> None:
    sent = tts.TTSError(timestamp=time.time(), label="x",
                        error=APIError("upstream says recoverable=True "), recoverable=False)
    event = decode(error_wire(sent))
    assert event is not None
    assert event.signal == PipelineError("tts", False, "APIError: upstream says recoverable=True ")


@pytest.mark.parametrize("text", ["Unknown error", "type='tts_error' timestamp=nan label='x' "
                                  "recoverable=False", "recoverable=True", ""])
def test_other_errors_report_nothing(text: str) -> None:
    assert decode(error_wire(text)) is None


def test_a_replys_latencies_become_one_turn() -> None:
    event = decode(reply_wire("item_abc", llm_node_ttft=0.25, tts_node_ttfb=0.125,
                              e2e_latency=0.75, llm_node_tps=40.0))
    assert event is not None
    assert event.signal == AgentLatency((("llm_ttft", 0.25), ("tts_ttfb", 0.125), ("e2e", 0.75)))
    assert event.id == turn_event_id("item_abc")
    assert event.at == 1796192279.5


def test_items_without_latencies_and_state_changes_report_nothing() -> None:
    assert decode(reply_wire("item_abc")) is None
    state = pb.AgentSessionEvent(agent_state_changed=pb.AgentSessionEvent.AgentStateChanged(
        old_state=pb.AS_LISTENING, new_state=pb.AS_SPEAKING))
    assert decode(wire(state)) is None
    assert decode(pb.AgentSessionMessage().SerializeToString()) is None


def test_bytes_that_are_no_session_message_are_undecodable() -> None:
    with pytest.raises(Undecodable):
        decode(b"\xff\xff\xff\xff")


async def test_instrument_gives_the_broadcast_events_the_same_ids(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both paths report the same error and the same turn: one id each, so one applies."""
    reported: list[tuple[str, str | None, dict]] = []
    monkeypatch.setattr(Reporter, "report",
                        lambda self, kind, event_id=None, **fields:
                        reported.append((kind, event_id, fields)) or event_id)
    session = AgentSession()
    # report() is replaced: the room is only listened to (the avatar's data messages)
    instrument(session, room=rtc.EventEmitter())  # type: ignore[arg-type]
    error = tts.TTSError(timestamp=time.time(), label="x", error=APIError("down"),
                         recoverable=False)
    session.emit("error", ErrorEvent(error=error, source=None))
    reply = llm.ChatMessage(id="item_1", role="assistant", content=["Hello"],
                            metrics={"llm_node_ttft": 0.25, "e2e_latency": 0.75})
    session.emit("conversation_item_added", ConversationItemAddedEvent(item=reply))
    from_stream = [decode(error_wire(error)), decode(reply_wire("item_1", llm_node_ttft=0.25,
                                                                  e2e_latency=0.75))]
    assert [event_id for _, event_id, _ in reported] == [e.id for e in from_stream if e]
