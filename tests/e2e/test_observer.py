"""The room observer against a real livekit-server: speech and idle timeouts, data-channel
messages, a restarted sidecar and a restarted server.

The sidecar here runs with `--livekit-url`, so the server's port is chosen before either starts.
"""

from __future__ import annotations

import asyncio
import uuid
import zlib

import pytest

from tests.e2e.data_messages import EVENTS, LEMONSLICE, send
from tests.e2e.harness import Verdict
from tests.e2e.observed import Voice, observed_active_call
from tests.support.livekit_server import LiveKitServer
from tests.support.metrics import MetricsClient, Snapshot, expect
from tests.support.participants import Server
from tests.support.scenario import CallDriver
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.e2e

IDLE_TIMEOUT = 4.0


@pytest.fixture
def sidecar_base_args(livekit_port: int) -> list[str]:
    """The room observer on, pointed at the test's livekit-server."""
    return ["--livekit-url", f"ws://127.0.0.1:{livekit_port}", "--observe-interval", "1",
            "--idle-timeout", str(IDLE_TIMEOUT), "--timeout-tolerance", "1.5"]


async def test_idle_timeout_after_the_avatar_stops_speaking(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    _, _, avatar = await observed_active_call(call, metrics)
    voice = Voice()
    await voice.publish(avatar)
    try:
        await metrics.wait_all(expect("avatar_time_to_first_speech_seconds_count", 1),
                               expect("avatar_monitor_observer_speech_source", 1,
                                      source="audio"), timeout=15)
        voice.speaking = False
        # The avatar's own idle timer: silence until the timeout, then it leaves. The wait is
        # the behaviour under test, not synchronisation.
        await asyncio.sleep(IDLE_TIMEOUT)
        await avatar.leave()
    finally:
        await voice.stop()
    snapshot = await metrics.wait_all(
        expect("avatar_departures_total", 1, cause="idle_timeout"),
        expect("avatar_timeouts_total", 1, timeout="idle"),
        expect("avatar_calls_in_progress", 0, state="active"), timeout=15)
    assert snapshot.count("avatar_time_to_first_speech_seconds") == 1
    assert 0 <= snapshot.sum("avatar_time_to_first_speech_seconds") < 5
    body = await verdict(call.room)
    assert body["verdict"] == "idle_timeout", body["findings"]
    assert f"(idle timeout {IDLE_TIMEOUT:g} s)" in body["findings"][0]["evidence"]


async def test_speech_from_the_agent_state_without_the_avatar_audio(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    """The voice agent publishes lk.agent.state: the observer takes speech from it and not
    from the avatar's audio. The avatar here sounds a tone throughout, so only the agent's
    state can tell its silence, and the departure is an idle timeout."""
    _, agent, avatar = await observed_active_call(call, metrics)
    await agent.room.local_participant.set_attributes({"lk.agent.state": "listening"})
    voice = Voice()  # always speaking, as far as its audio goes
    await voice.publish(avatar)
    try:
        await metrics.wait_all(
            expect("avatar_monitor_observer_speech_source", 1, source="agent_state"),
            expect("avatar_monitor_observer_speech_source", 0, source="audio"))
        await agent.room.local_participant.set_attributes({"lk.agent.state": "speaking"})
        await metrics.wait_all(expect("avatar_time_to_first_speech_seconds_count", 1))
        await agent.room.local_participant.set_attributes({"lk.agent.state": "listening"})
        # The avatar's idle timer runs from the end of the agent's speech (the behaviour under
        # test, not synchronisation).
        await asyncio.sleep(IDLE_TIMEOUT)
        await avatar.leave()
    finally:
        await voice.stop()
    await metrics.wait_all(expect("avatar_departures_total", 1, cause="idle_timeout"),
                           timeout=15)
    assert (await verdict(call.room))["verdict"] == "idle_timeout"


async def test_startup_failure_message_from_the_backend(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    await call.user()
    agent = await call.agent()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1),
                           expect("avatar_calls_in_progress", 1, state="ringing"))
    await send(agent, LEMONSLICE, {"type": "startup_failure",
                                   "message": "Avatar failed to become active"})
    await metrics.wait_all(
        expect("avatar_startup_failures_total", 1, cause="message"),
        expect("avatar_data_messages_total", 1, topic="lemonslice", type="startup_failure"),
        expect("avatar_calls_in_progress", 0, state="ringing"))
    for participant in call.participants:
        await participant.leave()
    body = await verdict(call.room)
    assert body["verdict"] == "startup_failure_message", body["findings"]
    assert body["startup_failure"]["message"] == "Avatar failed to become active"


async def test_unrecoverable_pipeline_error_then_the_avatar_leaves(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    _, agent, avatar = await observed_active_call(call, metrics)
    await send(agent, EVENTS, {"v": 1, "type": "pipeline_error", "component": "tts",
                               "recoverable": False})
    await metrics.wait_all(
        expect("avatar_pipeline_errors_total", 1, component="tts", recoverable="false"))
    await avatar.leave()
    await metrics.wait_all(expect("avatar_departures_total", 1, cause="pipeline_error"),
                           expect("avatar_calls_in_progress", 0, state="active"))
    body = await verdict(call.room)
    assert body["verdict"] == "pipeline_error", body["findings"]
    assert "unrecoverable TTS error" in body["findings"][0]["evidence"]


async def test_malformed_data_is_counted_and_the_next_good_event_still_counts(
        call: CallDriver, metrics: MetricsClient) -> None:
    _, agent, _ = await observed_active_call(call, metrics)
    await send(agent, LEMONSLICE, b"{not json")
    await send(agent, EVENTS, b"\xff\xfe")
    await send(agent, EVENTS, {"v": 99, "type": "pipeline_error"})
    await send(agent, EVENTS, {"v": 1, "type": "pipeline_error", "component": "llm",
                               "recoverable": True})
    await metrics.wait_all(
        expect("avatar_data_messages_total", 1, topic="lemonslice", type="malformed"),
        expect("avatar_data_messages_total", 2, topic="avatar-monitor", type="malformed"),
        expect("avatar_pipeline_errors_total", 1, component="llm", recoverable="true"),
        expect("avatar_monitor_observer_rooms", 1))


async def test_sidecar_restart_recovers_the_call_in_progress(
        call: CallDriver, metrics: MetricsClient, sidecar: Sidecar) -> None:
    user, _, avatar = await observed_active_call(call, metrics)
    sidecar.stop()
    sidecar.start()  # same port: livekit-server's webhooks reach the new process
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"),
                           expect("avatar_monitor_observer_rooms", 1), timeout=20)
    await user.leave()
    # Two leaves sent at once may reach livekit-server in either order.
    await metrics.wait_all(expect("avatar_disconnects_total", 1, role="user",
                                  reason="client_initiated"))
    await avatar.leave()
    await metrics.wait_all(expect("avatar_departures_total", 1, cause="user_hangup"),
                           expect("avatar_calls_in_progress", 0, state="active"),
                           expect("avatar_session_duration_seconds_count", 1), timeout=20)


async def test_livekit_server_restart_closes_the_call_cleanly(
        call: CallDriver, metrics: MetricsClient, livekit: LiveKitServer,
        sidecar: Sidecar) -> None:
    await observed_active_call(call, metrics)
    livekit.stop()
    livekit.start()  # same ports, no memory of the room: the call's room is gone
    # The room is found gone (by the observer's rejoin check or the next room listing) and its
    # call ends as a server-side departure; nothing is left ringing or active for it.
    snapshot = await metrics.wait_all(
        expect("avatar_departures_total", 1, cause="server"),
        expect("avatar_session_duration_seconds_count", 1), timeout=40)
    assert snapshot.value("avatar_startup_failures_total", cause="join_timeout") == 0
    assert sidecar.process is not None and sidecar.process.poll() is None


async def test_call_ending_while_the_observer_joins_leaves_the_sidecar_running(
        call: CallDriver, metrics: MetricsClient, sidecar: Sidecar) -> None:
    """The user leaves at once, so the call ends while the observer is checking the room or
    connecting. Cancelling livekit-rtc's connect half-way makes its native side end the process;
    the observer instead lets the connect finish, then leaves cleanly (or never joins, when the
    call ended before the room check)."""
    user = await call.user()
    await user.leave()
    await metrics.wait_all(
        expect("avatar_calls_abandoned_total", 1),
        expect("avatar_disconnects_total", 0, role="other", reason="client_initiated"),
        expect("avatar_monitor_observer_rooms", 0), timeout=20)

    # Every join has its leave: the user's, and the observer's own if it got in (hidden
    # participants are not call participants, but their webhooks are counted).
    # A user gone before its connection completed is one participant_connection_aborted.
    def settled(snapshot: Snapshot) -> bool:
        joined = snapshot.value("avatar_monitor_webhooks_total", event="participant_joined")
        left = snapshot.value("avatar_monitor_webhooks_total", event="participant_left")
        aborted = snapshot.value("avatar_monitor_webhooks_total",
                                 event="participant_connection_aborted")
        return joined + aborted in (1, 2) and left == joined

    await metrics.wait_for(settled, "a participant_left for each participant_joined", 20)
    assert sidecar.process is not None and sidecar.process.poll() is None


def names_in_shards(shards: int) -> list[str]:
    """One room name per shard, for a sidecar started with `--shard 0/shards`."""
    names: dict[int, str] = {}
    for n in range(1000):
        name = f"shard-room-{uuid.uuid4().hex[:8]}-{n}"
        names.setdefault(zlib.crc32(name.encode()) % shards, name)
        if len(names) == shards:
            return [names[i] for i in range(shards)]
    raise AssertionError("no room name for every shard")


async def ring(server: Server, names: list[str]) -> list[CallDriver]:
    drivers = [CallDriver(server, name) for name in names]
    for driver in drivers:
        await driver.user()
    return drivers


@pytest.mark.sidecar_args("--shard", "0/2")
async def test_shard_observes_only_its_rooms(server: Server, metrics: MetricsClient) -> None:
    """The other shard's room is neither tracked (its webhooks are foreign) nor observed."""
    mine, theirs = names_in_shards(2)
    drivers = await ring(server, [mine, theirs])
    try:
        await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="ringing"),
                               expect("avatar_monitor_observer_rooms", 1))
        await metrics.wait_for(
            lambda s: s.value("avatar_monitor_webhooks_foreign_total") >= 2,
            "the other room's room_started and participant_joined, foreign", 10)
        # An absence cannot be awaited: give the other room the time a join takes (~0.3 s),
        # several times over, and check that the observer still watches one room only.
        await asyncio.sleep(2)
        snapshot = await metrics.scrape()
        assert snapshot.value("avatar_monitor_observer_rooms") == 1
        assert snapshot.value("avatar_monitor_observer_rooms_skipped_total", reason="limit") == 0
    finally:
        for driver in drivers:
            await driver.close()


@pytest.mark.sidecar_args("--observe-max-rooms", "1")
async def test_rooms_over_the_limit_are_skipped_and_counted(
        server: Server, metrics: MetricsClient) -> None:
    drivers = await ring(server, [f"limit-{uuid.uuid4().hex[:8]}" for _ in range(2)])
    try:
        await metrics.wait_all(
            expect("avatar_calls_in_progress", 2, state="ringing"),
            expect("avatar_monitor_observer_rooms", 1),
            expect("avatar_monitor_observer_rooms_skipped_total", 1, reason="limit"))
    finally:
        for driver in drivers:
            await driver.close()
