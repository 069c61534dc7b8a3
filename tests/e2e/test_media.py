"""The avatar's media stopping mid-call ("audio cuts out") on a real livekit-server: its audio
unpublished (webhooks), muted or dry while the voice agent says it speaks (only the room
observer sees those), counted once past the grace; the unpublishes that come with a normal leave
and a speaking avatar the observer probes are no interruption."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from livekit import rtc

from monitor.observer.dry_audio import DRY_AFTER, PROBE_WINDOW
from tests.e2e.data_messages import send
from tests.e2e.harness import Verdict
from tests.support.metrics import Expect, MetricsClient, Snapshot, expect
from tests.support.participants import AVATAR_IDENTITY, AvatarMedia, Participant
from tests.support.scenario import CallDriver

pytestmark = pytest.mark.e2e

GRACE = 5.0  # the default --interruption-grace
OFF = 8.0  # how long the avatar's audio stays off in these calls
TURN = 10.0  # how long the voice agent says it speaks in the dry-track calls
AGENT_STATE = "lk.agent.state"
AVATAR_TOPIC = "lemonslice"  # the avatar's own messages


@pytest.fixture
def sidecar_base_args(request: pytest.FixtureRequest, livekit_port: int) -> list[str]:
    """`@pytest.mark.livekit_access` adds the room observer, pointed at the test's server."""
    if request.node.get_closest_marker("livekit_access") is None:
        return []
    return ["--livekit-url", f"ws://127.0.0.1:{livekit_port}", "--observe-interval", "1"]


def interruptions(audio: int, seconds: int) -> list[Expect]:
    """`audio` audio interruptions counted, `seconds` of them timed; none of the video."""
    return [expect("avatar_media_interruptions_total", audio, kind="audio"),
            expect("avatar_media_interruption_seconds_count", seconds, kind="audio"),
            expect("avatar_media_interruptions_total", 0, kind="video"),
            expect("avatar_media_interruption_seconds_count", 0, kind="video")]


def ended() -> list[Expect]:
    return [expect("avatar_calls_in_progress", 0, state="ringing"),
            expect("avatar_calls_in_progress", 0, state="active")]


async def active_call(call: CallDriver, metrics: MetricsClient, observed: bool = False
                      ) -> tuple[Participant, Participant, Participant, AvatarMedia]:
    """User and agent join (and the observer, if on), then the avatar with audio and video."""
    user, agent = await call.user(), await call.agent()
    if observed:
        await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1))
    avatar, media = await call.avatar()
    assert media is not None
    await metrics.wait_all(
        expect("avatar_calls_in_progress", 1, state="active"),
        expect("avatar_time_to_first_track_seconds_count", 1, kind="audio"),
        expect("avatar_time_to_first_track_seconds_count", 1, kind="video"))
    return user, agent, avatar, media


async def audio_off_past_the_grace(metrics: MetricsClient, off_at: float) -> Snapshot:
    """Not counted within the grace; counted once it passes, while the audio is still off."""
    within = await metrics.scrape()
    assert time.monotonic() - off_at < GRACE
    assert within.value("avatar_media_interruptions_total", kind="audio") == 0
    return await metrics.wait_all(*interruptions(1, 0), timeout=GRACE + 5)


async def test_audio_unpublished_for_8_s_is_one_interruption(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    user, agent, avatar, media = await active_call(call, metrics)
    off_at = time.monotonic()
    await media.unpublish_audio(avatar)
    await audio_off_past_the_grace(metrics, off_at)
    # The audio stays off OFF seconds in all: the scenario, not synchronisation.
    await asyncio.sleep(OFF - (time.monotonic() - off_at))
    await media.republish_audio(avatar)
    back = await metrics.wait_all(*interruptions(1, 1))
    assert OFF - 1 <= back.sum("avatar_media_interruption_seconds", kind="audio") <= OFF + 1
    assert back.value("avatar_media_interruption_seconds_bucket", kind="audio", le="5.0") == 0
    assert back.value("avatar_media_interruption_seconds_bucket", kind="audio", le="10.0") == 1

    await user.leave()
    await metrics.wait_all(expect("avatar_disconnects_total", 1, role="user",
                                  reason="client_initiated"))
    await avatar.leave()
    await agent.leave()
    done = await metrics.wait_all(
        *ended(), *interruptions(1, 1), expect("avatar_departures_total", 1, cause="user_hangup"),
        # one unpublished mid-call, two at the avatar's leave
        expect("avatar_monitor_webhooks_total", 3, event="track_unpublished"),
        expect("avatar_monitor_webhooks_total", 3, event="track_published"))
    assert done.value("avatar_media_interruptions_total", kind="audio") == 1
    body = await verdict(call.room)
    assert (body["verdict"], body["status"]) == ("media_interrupted", "warning"), body["findings"]
    evidence = body["findings"][0]["evidence"]
    assert re.fullmatch(r"the avatar's audio stopped \(unpublished\) at \d\d:\d\d:\d\d for "
                        r"[789] s", evidence), evidence
    assert body["avatar"]["media_interruptions"] == 1
    assert body["avatar"]["departure"] == "user_hangup"


async def test_audio_that_never_comes_back_fails_the_call(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    """The avatar unpublishes its audio; the user waits in silence, then hangs up, and the
    server closes the room on the avatar (ROOM_CLOSED). Healthy before: the user hung up."""
    user, _, avatar, media = await active_call(call, metrics)
    off_at = time.monotonic()
    await media.unpublish_audio(avatar)
    await audio_off_past_the_grace(metrics, off_at)
    await asyncio.sleep(OFF - (time.monotonic() - off_at))  # the user waits, hearing nothing
    await user.leave()
    reason = await asyncio.wait_for(avatar.disconnected, 15)
    assert reason == rtc.DisconnectReason.ROOM_CLOSED
    done = await metrics.wait_all(*ended(), *interruptions(1, 1),
                                  expect("avatar_departures_total", 1, cause="user_hangup"))
    assert done.sum("avatar_media_interruption_seconds", kind="audio") >= OFF
    body = await verdict(call.room)
    assert (body["verdict"], body["status"]) == ("media_stopped", "failed"), body["findings"]
    assert re.fullmatch(r"the avatar's audio stopped \(unpublished\) at \d\d:\d\d:\d\d and never "
                        r"came back: \d+ s until the avatar left or the call ended",
                        body["findings"][0]["evidence"]), body["findings"]


@pytest.mark.livekit_access
async def test_muted_audio_is_an_interruption_the_observer_sees(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    """No webhook tells a mute: the room observer's track_muted and track_unmuted do."""
    user, agent, avatar, media = await active_call(call, metrics, observed=True)
    off_at = time.monotonic()
    media.mute_audio(avatar)
    await audio_off_past_the_grace(metrics, off_at)
    await asyncio.sleep(OFF - (time.monotonic() - off_at))
    media.mute_audio(avatar, muted=False)
    back = await metrics.wait_all(*interruptions(1, 1))
    assert OFF - 1 <= back.sum("avatar_media_interruption_seconds", kind="audio") <= OFF + 1

    await user.leave()
    await metrics.wait_all(expect("avatar_disconnects_total", 1, role="user",
                                  reason="client_initiated"))
    await avatar.leave()
    await agent.leave()
    done = await metrics.wait_all(*ended(), *interruptions(1, 1))
    assert done.value("avatar_monitor_webhooks_total", event="track_unpublished") == 2  # leave
    body = await verdict(call.room)
    # A warning; the tone may also make it slow_to_speak, a warning listed before this one.
    assert body["status"] == "warning", body["findings"]
    evidence = {f["rule"]: f["evidence"] for f in body["findings"]}
    assert re.fullmatch(r"the avatar's audio stopped \(muted\) at \d\d:\d\d:\d\d for [789] s",
                        evidence["media_interrupted"]), body["findings"]


@pytest.mark.livekit_access
async def test_the_unpublishes_of_a_normal_leave_are_no_interruption(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    """The voice agent ends the call and its avatar follows it out while the user (and so the
    room observer) is still there: the avatar's tracks are unpublished at its leave, told by
    webhooks and by the observer's room events, before its leave."""
    user, agent, avatar, _ = await active_call(call, metrics, observed=True)
    await agent.leave()
    await avatar.leave()
    done = await metrics.wait_all(
        *ended(), expect("avatar_departures_total", 1, cause="agent_hangup"),
        expect("avatar_monitor_webhooks_total", 2, event="track_unpublished"))
    await user.leave()
    for kind in ("audio", "video"):
        assert done.value("avatar_media_interruptions_total", kind=kind) == 0
        assert done.count("avatar_media_interruption_seconds", kind=kind) == 0
    body = await verdict(call.room)
    assert (body["verdict"], body["findings"]) == ("healthy", [])
    assert body["avatar"]["media_interruptions"] == 0
    assert any(p["identity"] == AVATAR_IDENTITY for p in body["participants"])


def probes(heard: int, dry: int) -> list[Expect]:
    """The observer's probes of the avatar's audio, by outcome (none undecided)."""
    return [expect("avatar_monitor_audio_probes_total", heard, outcome="heard"),
            expect("avatar_monitor_audio_probes_total", dry, outcome="dry"),
            expect("avatar_monitor_audio_probes_total", 0, outcome="undecided")]


async def speaking_call(call: CallDriver, metrics: MetricsClient
                        ) -> tuple[Participant, Participant, Participant, AvatarMedia]:
    """An observed active call whose avatar says bot_ready once its video is in, as a
    LemonSlice avatar does (a call longer than the ready grace needs it to be healthy)."""
    user, agent, avatar, media = await active_call(call, metrics, observed=True)
    await send(avatar, AVATAR_TOPIC, {"type": "bot_ready"})
    return user, agent, avatar, media


async def everyone_leaves(user: Participant, agent: Participant, avatar: Participant,
                          metrics: MetricsClient) -> None:
    """The user hangs up, then the avatar and the agent leave."""
    await user.leave()
    await metrics.wait_all(expect("avatar_disconnects_total", 1, role="user",
                                  reason="client_initiated"))
    await avatar.leave()
    await agent.leave()


@pytest.mark.livekit_access
async def test_dry_audio_while_the_agent_speaks_is_one_interruption(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    """The avatar's pipeline stalls: its audio track stays published and unmuted, carrying
    only livekit-rtc's silent packets, while the voice agent says `speaking` for TURN s. The
    observer probes it DRY_AFTER s into the turn, finds it silent for PROBE_WINDOW s: dry from
    the probe's start, counted past the grace, back when the turn ends."""
    user, agent, avatar, media = await speaking_call(call, metrics)
    media.pause_audio()
    await agent.room.local_participant.set_attributes({AGENT_STATE: "speaking"})
    speaking_at = time.monotonic()
    await metrics.wait_all(*probes(0, 1), timeout=DRY_AFTER + PROBE_WINDOW + 5)
    found = await metrics.scrape()
    assert found.value("avatar_media_interruptions_total", kind="audio") == 0  # in the grace
    await metrics.wait_all(*interruptions(1, 0), timeout=GRACE + 5)
    assert time.monotonic() - speaking_at >= DRY_AFTER + GRACE
    # The turn lasts TURN seconds in all: the scenario, not synchronisation.
    await asyncio.sleep(TURN - (time.monotonic() - speaking_at))
    await agent.room.local_participant.set_attributes({AGENT_STATE: "listening"})
    back = await metrics.wait_all(*interruptions(1, 1))
    dry = TURN - DRY_AFTER
    assert dry - 1 <= back.sum("avatar_media_interruption_seconds", kind="audio") <= dry + 1
    media.pause_audio(False)

    await everyone_leaves(user, agent, avatar, metrics)
    done = await metrics.wait_all(*ended(), *interruptions(1, 1), *probes(0, 1),
                                  expect("avatar_departures_total", 1, cause="user_hangup"))
    assert done.value("avatar_monitor_webhooks_total", event="track_unpublished") == 2  # leave
    body = await verdict(call.room)
    assert (body["verdict"], body["status"]) == ("media_interrupted", "warning"), body["findings"]
    assert [f["rule"] for f in body["findings"]] == ["media_interrupted"]
    evidence = body["findings"][0]["evidence"]
    assert re.fullmatch(r"the avatar's audio stopped \(dry\) at \d\d:\d\d:\d\d for [789] s",
                        evidence), evidence
    assert body["avatar"]["media_interruptions"] == 1


@pytest.mark.livekit_access
async def test_a_speaking_avatar_probed_while_the_agent_speaks_is_healthy(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    """The same turn with the avatar's tone playing: the probe hears it at once and lets go of
    the track; no interruption, a healthy call."""
    user, agent, avatar, _ = await speaking_call(call, metrics)
    await agent.room.local_participant.set_attributes({AGENT_STATE: "speaking"})
    speaking_at = time.monotonic()
    await metrics.wait_all(*probes(1, 0), timeout=DRY_AFTER + PROBE_WINDOW + 5)
    await asyncio.sleep(TURN - (time.monotonic() - speaking_at))
    await agent.room.local_participant.set_attributes({AGENT_STATE: "listening"})

    await everyone_leaves(user, agent, avatar, metrics)
    done = await metrics.wait_all(*ended(), *interruptions(0, 0), *probes(1, 0),
                                  expect("avatar_departures_total", 1, cause="user_hangup"))
    assert done.value("avatar_media_interruption_seconds_sum", kind="audio") == 0
    body = await verdict(call.room)
    assert (body["verdict"], body["findings"]) == ("healthy", []), body["findings"]
    assert body["avatar"]["media_interruptions"] == 0
