"""avatar_monitor_agent with a real livekit-agents AgentSession: real error, close and metrics
events reach a real sidecar over HTTP. (The data-channel path runs in tests/e2e/test_bridge.py.)"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from avatar_monitor_agent import Reporter, instrument
from livekit import api
from livekit.agents import AgentSession, llm, stt, tts
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.events import (
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    ErrorEvent,
)

from tests.conftest import RunningMonitor
from tests.webhooks import KEY, SECRET, Room, user

CALL = Room(name="call-agents")
# HTTP only: the room's name and sid, and the agent's identity, are all that is used.
ROOM = SimpleNamespace(name=CALL.name, sid=CALL.sid,
                       local_participant=SimpleNamespace(identity="agent-1"))


async def start_call(sidecar: RunningMonitor) -> None:
    assert (await sidecar.send(CALL.joined(user(time.time() - 1))))[0] == 200


def error_event(kind: type, recoverable: bool) -> ErrorEvent:
    error = kind(timestamp=time.time(), label=f"test.{kind.__name__}",
                 error=RuntimeError("provider down"), recoverable=recoverable)
    return ErrorEvent(error=error, source=None)


async def test_session_events_reach_the_sidecar(sidecar: RunningMonitor) -> None:
    await start_call(sidecar)
    session = AgentSession()
    reporter = instrument(session, ROOM, url=sidecar.url, api_key=KEY, api_secret=SECRET,
                          data_channel=False)
    session.emit("error", error_event(stt.STTError, True))
    session.emit("error", error_event(llm.LLMError, False))
    session.emit("error", error_event(tts.TTSError, False))
    session.emit("error", error_event(llm.RealtimeModelError, True))
    session.emit("error", ErrorEvent(error=ValueError("odd"), source=None))
    reply = ChatMessage(role="assistant", content=["Hello!"],
                        metrics={"llm_node_ttft": 0.35, "tts_node_ttfb": 0.2,
                                 "e2e_latency": 1.25})
    session.emit("conversation_item_added", ConversationItemAddedEvent(item=reply))
    session.emit("close", CloseEvent(reason=CloseReason.ERROR))
    await reporter.aclose()  # the close event already started closing: this waits for it
    assert (reporter.sent, reporter.failed, reporter.dropped) == (7, 0, 0)
    for component, recoverable in (("stt", "true"), ("llm", "false"), ("tts", "false"),
                                   ("realtime", "true"), ("other", "false")):
        assert await sidecar.value("avatar_pipeline_errors_total", component=component,
                                   recoverable=recoverable) == 1, component
    assert await sidecar.value("avatar_pipeline_closed_total", reason="error") == 1
    assert await sidecar.value("avatar_agent_latency_seconds_sum", stage="llm_ttft") == 0.35
    assert await sidecar.value("avatar_agent_latency_seconds_count", stage="e2e") == 1
    assert await sidecar.value("avatar_agent_latency_seconds_count", stage="end_of_turn") == 0
    # After close the session is no longer reported.
    session.emit("error", error_event(stt.STTError, True))
    assert not reporter._in_flight


async def test_an_unreachable_sidecar_never_raises_into_the_agent() -> None:
    session = AgentSession()
    reporter = instrument(session, ROOM, url="http://127.0.0.1:9", api_key=KEY,
                          api_secret=SECRET, data_channel=False)
    session.emit("error", error_event(tts.TTSError, False))
    await asyncio.wait(set(reporter._in_flight))
    assert (reporter.sent, reporter.failed) == (0, 1)
    await reporter.aclose()


def test_the_sidecar_url_and_keys_come_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVATAR_MONITOR_URL", "http://127.0.0.1:9465/")
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    reporter = Reporter(ROOM)
    assert reporter.url == "http://127.0.0.1:9465"
    assert (reporter._api_key, reporter._api_secret) == (KEY, SECRET)
    monkeypatch.delenv("AVATAR_MONITOR_URL")
    assert Reporter(ROOM).url is None  # data channel only


async def test_sends_in_flight_are_bounded(sidecar: RunningMonitor) -> None:
    await start_call(sidecar)
    reporter = Reporter(ROOM, url=sidecar.url, api_key=KEY, api_secret=SECRET,
                        data_channel=False, max_in_flight=2)
    ids = [reporter.report("session_closed", reason="job_shutdown") for _ in range(5)]
    assert ids[2:] == [None, None, None] and all(ids[:2])
    await reporter.aclose()
    assert (reporter.sent, reporter.dropped) == (2, 3)
    assert await sidecar.value("avatar_pipeline_closed_total", reason="job_shutdown") == 2


async def test_a_refused_report_is_counted_as_failed(sidecar: RunningMonitor) -> None:
    reporter = Reporter(ROOM, url=sidecar.url, api_key=KEY, api_secret="wrong-secret-" * 3,
                        data_channel=False)
    reporter.report("session_closed", reason="error")
    await reporter.aclose()
    assert (reporter.sent, reporter.failed) == (0, 1)
    assert await sidecar.value("avatar_monitor_reported_events_rejected_total",
                               reason="unauthorized") == 1


def test_the_reporters_token_is_an_agents_for_its_room_only() -> None:
    claims = api.TokenVerifier(KEY, SECRET).verify(
        Reporter(ROOM, api_key=KEY, api_secret=SECRET).token())
    assert claims.kind == "agent"
    assert claims.identity == "agent-1"
    assert claims.video is not None and claims.video.room == CALL.name
    assert not (claims.video.room_join or claims.video.room_admin or claims.video.room_list)
