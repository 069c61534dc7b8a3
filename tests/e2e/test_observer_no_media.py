"""The room observer with `--observe-media none` against a real livekit-server: it takes the
voice agent's state and data messages, and subscribes to no track (no speech from the avatar's
audio, no dry-audio probe)."""

from __future__ import annotations

import asyncio

import pytest
from livekit import api

from monitor.observer.dry_audio import DRY_AFTER, PROBE_WINDOW
from tests.e2e.data_messages import LEMONSLICE, send
from tests.e2e.observed import Voice, observed_active_call
from tests.support.metrics import MetricsClient, expect
from tests.support.participants import join
from tests.support.scenario import CallDriver

pytestmark = pytest.mark.e2e

# The default observer hears a tone through active-speaker updates within about a second.
HEARING = 3.0


@pytest.fixture
def sidecar_base_args(livekit_port: int) -> list[str]:
    return ["--livekit-url", f"ws://127.0.0.1:{livekit_port}", "--observe-interval", "1",
            "--observe-media", "none"]


async def test_no_media_takes_the_agent_state_and_data_but_no_audio(
        call: CallDriver, metrics: MetricsClient) -> None:
    _, agent, avatar = await observed_active_call(call, metrics)
    voice = Voice()  # a tone throughout: the default observer would hear it speak
    await voice.publish(avatar)
    try:
        # Nothing to wait for: the behaviour under test is that no speech is heard.
        await asyncio.sleep(HEARING)
        quiet = await metrics.scrape()
        assert quiet.count("avatar_time_to_first_speech_seconds") == 0
        assert quiet.value("avatar_monitor_observer_speech_source", source="audio") == 0
        await agent.room.local_participant.set_attributes({"lk.agent.state": "speaking"})
        await metrics.wait_all(
            expect("avatar_time_to_first_speech_seconds_count", 1),
            expect("avatar_monitor_observer_speech_source", 1, source="agent_state"))
        # A speaking turn past the dry-audio probe's start and window: no probe is made.
        await asyncio.sleep(DRY_AFTER + PROBE_WINDOW + 1)
        await send(agent, LEMONSLICE, {"type": "startup_failure", "message": "late"})
        snapshot = await metrics.wait_all(
            expect("avatar_data_messages_total", 1, topic="lemonslice", type="startup_failure"))
        for outcome in ("heard", "dry", "undecided"):
            assert snapshot.value("avatar_monitor_audio_probes_total", outcome=outcome) == 0
        assert snapshot.value("avatar_monitor_observer_speech_source", source="audio") == 0
    finally:
        await voice.stop()
    for participant in call.participants:
        await participant.leave()


async def test_the_agent_state_set_when_the_agent_joins_is_taken(
        call: CallDriver, metrics: MetricsClient) -> None:
    """The agent joins with lk.agent.state set already (no attribute change follows): its
    state still tells when the avatar speaks."""
    await call.user()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1),
                           expect("avatar_calls_in_progress", 1, state="ringing"))
    token = (call.server.token().with_kind("agent").with_identity("voice-agent")
             .with_grants(api.VideoGrants(room_join=True, room=call.room, agent=True))
             .with_attributes({"lk.agent.state": "speaking"}).to_jwt())
    call.participants.append(await join(call.server, token, "voice-agent"))
    await call.avatar(publish=False)
    await metrics.wait_all(
        expect("avatar_time_to_first_speech_seconds_count", 1),
        expect("avatar_monitor_observer_speech_source", 1, source="agent_state"))
    for participant in call.participants:
        await participant.leave()
