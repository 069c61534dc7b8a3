"""avatar_monitor_agent with a real livekit-agents AgentSession: real error, close, metrics and
state events, and the avatar's data messages as the agent's room receives them, reach a real
sidecar over HTTP. (The data-channel path runs in tests/e2e/test_bridge.py.)"""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import pytest
from avatar_monitor_agent import Reporter, instrument
from avatar_monitor_agent.agent_events import avatar_message_id
from livekit import api, rtc
from livekit.agents import AgentSession, llm, stt, tts
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    ErrorEvent,
)

from monitor.calls.inputs import AvatarReady
from monitor.reports.signals import ReportedEvent
from tests.support.served import RunningMonitor
from tests.support.webhooks import KEY, SECRET, Room, access_token, avatar, user

CALL = Room(name="call-agents")


class FakeRoom(rtc.EventEmitter[str]):
    """HTTP only: the room's name and sid, the agent's identity, and its events (the avatar's
    data messages) are all that is used."""

    def __init__(self) -> None:
        super().__init__()
        self.name, self.sid = CALL.name, CALL.sid
        self.local_participant = SimpleNamespace(identity="agent-1")


ROOM = FakeRoom()
AGENT_KIND = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
STANDARD_KIND = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD


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
    # The error's own words reach the call's record and verdict (never a label).
    async with sidecar.http.get(f"{sidecar.url}/v1/calls/{CALL.name}",
                                headers={"Authorization": f"Bearer {access_token()}"}) as resp:
        body = await resp.json()
    # the last unrecoverable error names the verdict: ErrorEvent(error=ValueError("odd"))
    assert "(ValueError: odd)" in body["findings"][0]["evidence"], body["findings"]
    words = [entry["detail"] for entry in body["timeline"] if entry["event"] == "pipeline_error"]
    assert "unrecoverable tts error: RuntimeError: provider down" in words, words
    assert "provider down" not in await sidecar.scrape()


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


def sender(identity: str, on_behalf_of: str | None = "agent-1", kind: int = AGENT_KIND,
           sid: str = "PA_avatar") -> SimpleNamespace:
    """A remote participant as livekit-rtc hands it with a data packet."""
    attributes = {} if on_behalf_of is None else {"lk.publish_on_behalf": on_behalf_of}
    return SimpleNamespace(identity=identity, sid=sid, kind=kind, attributes=attributes)


def packet(doc: object, topic: str = "lemonslice", who: SimpleNamespace | None = None
           ) -> rtc.DataPacket:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return rtc.DataPacket(data=data, kind=rtc.DataPacketKind.KIND_RELIABLE,
                          participant=who or sender("avatar-1"), topic=topic)  # type: ignore[arg-type]


async def test_the_avatars_word_is_forwarded_once_and_only_its_own(
        sidecar: RunningMonitor) -> None:
    """What the agent's own avatar says on its topics reaches the sidecar with the observer's id
    for it; another agent's avatar, the voice agent itself, a user, other topics, types the
    sidecar does not read and oversized payloads are not forwarded."""
    now = time.time()
    await start_call(sidecar)
    assert (await sidecar.send(CALL.joined(avatar(now - 0.5, "avatar-1"))))[0] == 200
    room = FakeRoom()
    session = AgentSession()
    reporter = instrument(session, room, url=sidecar.url, api_key=KEY, api_secret=SECRET,
                          data_channel=False)
    ready = packet({"type": "bot_ready"})
    for forwarded in (ready, packet({"type": "error", "fatal": False}),
                      packet({"type": "metric", "time_to_first_push": 850}),
                      packet({"type": "bot_ready"}, topic="lemonslice/message")):
        room.emit("data_received", forwarded)
    for ignored in (packet({"type": "bot_ready"}, who=sender("avatar-2", "agent-2")),
                    packet({"type": "bot_ready"}, who=sender("agent-1", None)),
                    packet({"type": "bot_ready"}, who=sender("user-1", None, STANDARD_KIND)),
                    packet({"type": "bot_ready"}, topic="avatar-monitor/events"),
                    packet({"type": "startup_failure"}, topic="lemonslice/message"),
                    packet({"type": "image_change_complete"}),
                    packet(b"not json"), packet([1, 2]),
                    packet({"type": "error", "padding": "x" * 9000})):
        room.emit("data_received", ignored)
    await asyncio.wait(set(reporter._in_flight))
    assert (reporter.sent, reporter.failed, reporter.dropped) == (4, 0, 0)
    assert await sidecar.value("avatar_ready_latency_seconds_count") == 1
    assert await sidecar.value("avatar_pipeline_errors_total", component="avatar",
                               recoverable="true") == 1
    assert await sidecar.value("avatar_agent_latency_seconds_sum",
                               stage="avatar_first_push") == 0.85
    # The observer's copy (its id from the same bytes) now counts as a duplicate.
    observed = ReportedEvent(AvatarReady(), avatar_message_id("lemonslice", "avatar-1",
                                                              "PA_avatar", ready.data))
    assert sidecar.monitor.bridge.accept("data_channel", observed, time.time(), CALL.name,
                                         CALL.sid) == "duplicate"
    session.emit("close", CloseEvent(reason=CloseReason.USER_INITIATED))
    await reporter.aclose()
    room.emit("data_received", packet({"type": "idle_timeout"}))  # closed: no longer forwarded
    assert not reporter._in_flight


async def test_the_agents_state_gives_the_avatars_first_speech(sidecar: RunningMonitor) -> None:
    now = time.time()
    await start_call(sidecar)
    assert (await sidecar.send(CALL.joined(avatar(now - 0.5, "avatar-1"))))[0] == 200
    session = AgentSession()
    reporter = instrument(session, FakeRoom(), url=sidecar.url, api_key=KEY,
                          api_secret=SECRET, data_channel=False)
    for old, new in (("initializing", "listening"), ("listening", "thinking"),
                     ("thinking", "speaking"), ("speaking", "listening"),
                     ("listening", "speaking")):
        session.emit("agent_state_changed", AgentStateChangedEvent(
            old_state=old, new_state=new, created_at=now + 1))  # type: ignore[arg-type]
    await asyncio.wait(set(reporter._in_flight))
    assert (reporter.sent, reporter.failed) == (5, 0)
    assert await sidecar.value("avatar_time_to_first_speech_seconds_count") == 1
    assert await sidecar.value("avatar_monitor_reported_events_total", source="http",
                               outcome="applied") == 5
    await reporter.aclose()
