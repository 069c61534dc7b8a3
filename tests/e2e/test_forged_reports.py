"""Forged failure reports against a real livekit-server and a real sidecar: a user in the call
publishes reports on the data channel and posts them with its join token, a server SDK sends one
into the room; each is refused and counted, and the voice agent's own reports that follow still
count."""

from __future__ import annotations

import json

import aiohttp
import pytest
from avatar_monitor_agent import Reporter
from livekit import api

from tests.support.metrics import MetricsClient, expect
from tests.support.participants import Server, user_token
from tests.support.scenario import CallDriver
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.e2e

STARTUP_FAILURE = {"type": "startup_failure", "message": "forged"}
PIPELINE_ERROR = {"v": 1, "type": "pipeline_error", "component": "tts", "recoverable": False,
                  "id": "forged-or-not"}


@pytest.fixture
def sidecar_base_args(livekit_port: int) -> list[str]:
    """The room observer on, pointed at the test's livekit-server."""
    return ["--livekit-url", f"ws://127.0.0.1:{livekit_port}", "--observe-interval", "1"]


async def test_a_users_reports_are_refused_and_the_agents_still_count(
        call: CallDriver, metrics: MetricsClient, sidecar: Sidecar, server: Server,
        http: aiohttp.ClientSession, api_keys: tuple[str, str],
        room_service: api.LiveKitAPI) -> None:
    user = await call.user()
    agent = await call.agent()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1),
                           expect("avatar_calls_in_progress", 1, state="ringing"))
    room_sid = await user.room.sid

    # The user forges both data topics.
    local = user.room.local_participant
    await local.publish_data(json.dumps(STARTUP_FAILURE), reliable=True,
                             topic="lemonslice/message")
    await local.publish_data(json.dumps(PIPELINE_ERROR), reliable=True,
                             topic="avatar-monitor/events")
    # A server SDK's message has no participant as its sender: not an agent's either.
    await room_service.room.send_data(api.SendDataRequest(
        room=call.room, data=json.dumps(STARTUP_FAILURE).encode(),
        kind=api.DataPacket.Kind.RELIABLE, topic="lemonslice/message"))
    # And the user posts to /v1/events with its own join token, for its very room.
    body = {**PIPELINE_ERROR, "room": call.room, "room_sid": room_sid}
    headers = {"Authorization": f"Bearer {user_token(server, call.room, 'user')}"}
    async with http.post(f"{sidecar.url}/v1/events", json=body, headers=headers) as resp:
        assert (resp.status, (await resp.json())["error"]) == (403, "forbidden")
    snapshot = await metrics.wait_all(
        expect("avatar_monitor_data_messages_refused_total", 2, topic="lemonslice",
               reason="forbidden"),
        expect("avatar_monitor_data_messages_refused_total", 1, topic="avatar-monitor",
               reason="forbidden"),
        expect("avatar_monitor_reported_events_rejected_total", 1, reason="forbidden"))
    assert snapshot.value("avatar_startup_failures_total", cause="message") == 0
    assert snapshot.value("avatar_pipeline_errors_total", component="tts",
                          recoverable="false") == 0
    assert snapshot.value("avatar_calls_in_progress", state="ringing") == 1

    # The voice agent's reports, the same id as the forgery included, count.
    await agent.room.local_participant.publish_data(
        json.dumps(PIPELINE_ERROR), reliable=True, topic="avatar-monitor/events")
    reporter = Reporter(agent.room, url=sidecar.url, api_key=api_keys[0],
                        api_secret=api_keys[1])
    await reporter.startup_failure()
    await reporter.aclose()
    assert (reporter.sent, reporter.failed) == (2, 0)  # data channel and HTTP
    await metrics.wait_all(
        expect("avatar_pipeline_errors_total", 1, component="tts", recoverable="false"),
        expect("avatar_startup_failures_total", 1, cause="message"),
        expect("avatar_calls_in_progress", 0, state="ringing"))
