"""The backend bridge against a real livekit-server: avatar_monitor_agent in the voice agent's room,
with the sidecar's room observer reading the data channel and /v1/events taking the same events.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TypeVar

import pytest
from avatar_monitor_agent import Reporter, instrument, wait_for_avatar
from livekit import rtc
from livekit.agents import AgentSession, APIError, stt, tts
from livekit.agents.voice.events import ErrorEvent
from livekit.protocol.agent_pb import agent_session as agent_pb

from tests.support.metrics import MetricsClient, expect, poll_until
from tests.support.scenario import CallDriver
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.e2e
T = TypeVar("T")


@pytest.fixture
def sidecar_base_args(livekit_port: int) -> list[str]:
    """The room observer on, pointed at the test's livekit-server."""
    return ["--livekit-url", f"ws://127.0.0.1:{livekit_port}", "--observe-interval", "1"]


def messages_on(room: rtc.Room, topic: str) -> asyncio.Queue[dict]:
    """Decoded JSON messages the participant receives on `topic`."""
    queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=16)

    def on_data(packet: rtc.DataPacket) -> None:
        if packet.topic == topic:
            queue.put_nowait(json.loads(packet.data))

    room.on("data_received", on_data)
    return queue


async def test_wait_for_avatar_timing_out_is_one_startup_failure(
        call: CallDriver, metrics: MetricsClient, sidecar: Sidecar,
        api_keys: tuple[str, str]) -> None:
    user = await call.user()
    frontend = messages_on(user.room, "lemonslice/message")
    agent = await call.agent()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1),
                           expect("avatar_calls_in_progress", 1, state="ringing"))
    reporter = Reporter(agent.room, url=sidecar.url, api_key=api_keys[0],
                        api_secret=api_keys[1])
    joined = await wait_for_avatar(agent.room, timeout=1.0, reporter=reporter)
    await reporter.aclose()
    assert joined is False
    assert (reporter.sent, reporter.failed) == (2, 0)  # data channel and HTTP
    message = await asyncio.wait_for(frontend.get(), 10)
    assert message["type"] == "startup_failure"
    assert message["message"] == "Avatar failed to become active"
    # Both paths arrive: one applies, the other is the duplicate, and the call fails once.
    snapshot = await metrics.wait_for(
        lambda s: sum(s.value("avatar_monitor_reported_events_total", source=source,
                              outcome=outcome)
                      for source in ("data_channel", "http")
                      for outcome in ("applied", "duplicate")) == 2,
        "both paths delivered the startup failure")
    assert snapshot.value("avatar_startup_failures_total", cause="message") == 1
    assert snapshot.value("avatar_startup_failures_total", cause="join_timeout") == 0
    assert snapshot.value("avatar_calls_in_progress", state="ringing") == 0
    assert sum(snapshot.value("avatar_monitor_reported_events_total", source=source,
                              outcome="duplicate")
               for source in ("data_channel", "http")) == 1


async def test_wait_for_avatar_sees_an_avatar_that_joins(call: CallDriver,
                                                         metrics: MetricsClient) -> None:
    await call.user()
    agent = await call.agent()
    waiting = asyncio.create_task(wait_for_avatar(agent.room, timeout=20))
    await call.avatar(publish=False)
    assert await waiting is True
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"))
    assert (await metrics.scrape()).value("avatar_startup_failures_total",
                                          cause="message") == 0


async def test_wait_for_avatar_knows_any_plugins_avatar(call: CallDriver) -> None:
    """Not only the default identity: an AGENT publishing on behalf of the voice agent is the
    avatar, whatever its identity; another agent is not."""
    await call.user()
    agent = await call.agent()
    waiting = asyncio.create_task(wait_for_avatar(agent.room, timeout=20))
    await call.agent("second-agent")
    await poll_until(lambda: _async(agent.room.remote_participants),
                     lambda present: "second-agent" in present, "the second agent seen")
    assert not waiting.done()
    await call.avatar(identity="bey-avatar-agent", publish=False)
    assert await asyncio.wait_for(waiting, 10) is True


async def _async(value: T) -> T:
    return value


async def test_agent_session_errors_by_both_paths_count_once(
        call: CallDriver, metrics: MetricsClient, sidecar: Sidecar,
        api_keys: tuple[str, str]) -> None:
    await call.user()
    agent = await call.agent()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1))
    avatar, _ = await call.avatar(publish=False)
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"))
    session = AgentSession()
    reporter = instrument(session, agent.room, url=sidecar.url, api_key=api_keys[0],
                          api_secret=api_keys[1])
    for kind, recoverable in ((stt.STTError, True), (tts.TTSError, False)):
        error = kind(timestamp=time.time(), label="e2e", error=RuntimeError("provider down"),
                     recoverable=recoverable)
        session.emit("error", ErrorEvent(error=error, source=None))
    await reporter.aclose()
    assert (reporter.sent, reporter.failed) == (4, 0)
    snapshot = await metrics.wait_for(
        lambda s: s.value("avatar_monitor_reported_events_total", source="data_channel",
                          outcome="applied")
        + s.value("avatar_monitor_reported_events_total", source="data_channel",
                  outcome="duplicate") == 2,
        "the observer read both errors")
    assert snapshot.value("avatar_pipeline_errors_total", component="stt",
                          recoverable="true") == 1
    assert snapshot.value("avatar_pipeline_errors_total", component="tts",
                          recoverable="false") == 1
    await avatar.leave()
    await metrics.wait_all(expect("avatar_departures_total", 1, cause="pipeline_error"))


def session_error(recoverable: bool) -> bytes:
    """An error as livekit-agents broadcasts it on lk.agent.session: str(error) in an
    AgentSessionMessage."""
    error = tts.TTSError(timestamp=time.time(), label="e2e", error=APIError("provider down"),
                         recoverable=recoverable)
    event = agent_pb.AgentSessionEvent(error=agent_pb.AgentSessionEvent.Error(message=str(error)))
    return agent_pb.AgentSessionMessage(event=event).SerializeToString()


async def test_the_session_broadcast_counts_from_agents_only_and_once(
        call: CallDriver, metrics: MetricsClient) -> None:
    user = await call.user()
    agent = await call.agent()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1))
    await call.avatar(publish=False)
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"))
    await user.room.local_participant.send_bytes(session_error(False), topic="lk.agent.session")
    await metrics.wait_all(
        expect("avatar_monitor_data_messages_refused_total", 1, topic="agent-session",
               reason="forbidden"),
        expect("avatar_pipeline_errors_total", 0, component="tts", recoverable="false"))
    error = session_error(False)
    for _ in range(2):  # the same error twice (one id): counted once
        await agent.room.local_participant.send_bytes(error, topic="lk.agent.session")
    await metrics.wait_all(
        expect("avatar_data_messages_total", 2, topic="agent-session", type="pipeline_error"),
        expect("avatar_monitor_reported_events_total", 1, source="agent_session",
               outcome="applied"),
        expect("avatar_monitor_reported_events_total", 1, source="agent_session",
               outcome="duplicate"),
        expect("avatar_pipeline_errors_total", 1, component="tts", recoverable="false"),
        expect("avatar_monitor_data_messages_refused_total", 1, topic="agent-session",
               reason="forbidden"))
