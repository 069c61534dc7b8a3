"""The avatar's own word against a real livekit-server: `bot_ready`, `idle_timeout`, `error`,
`video_generation_error` and `metric` on topic `lemonslice`, published by the avatar participant
(kind agent, `lk.publish_on_behalf`) with livekit-rtc, read by the sidecar's room observer.
"""

from __future__ import annotations

import re

import aiohttp
import pytest

from tests.e2e.data_messages import EVENTS, LEMONSLICE, send
from tests.e2e.harness import Verdict
from tests.support.metrics import Expect, MetricsClient, expect, poll_until
from tests.support.participants import Participant
from tests.support.scenario import CallDriver
from tests.support.sidecar import Sidecar
from tests.support.webhooks import access_token

pytestmark = [pytest.mark.e2e, pytest.mark.livekit_access]

AVATAR_TOPIC = "lemonslice"  # the avatar's own messages (LEMONSLICE: lemonslice/message)
READY = "avatar_ready_latency_seconds_count"


@pytest.fixture
def sidecar_base_args(request: pytest.FixtureRequest, livekit_port: int) -> list[str]:
    """`@pytest.mark.livekit_access`: the reconciler and the room observer, pointed at the
    test's livekit-server."""
    marker = request.node.get_closest_marker("livekit_access")
    if marker is None:
        return []
    args = ["--livekit-url", f"ws://127.0.0.1:{livekit_port}", "--observe-interval", "1"]
    if not marker.kwargs.get("observer", True):
        args.append("--no-observer")
    return args


def messages(topic: str, kind: str, value: float) -> Expect:
    return expect("avatar_data_messages_total", value, topic=topic, type=kind)


def refused(topic: str, reason: str, value: float) -> Expect:
    return expect("avatar_monitor_data_messages_refused_total", value, topic=topic,
                  reason=reason)


async def avatar_first(call: CallDriver, metrics: MetricsClient
                       ) -> tuple[Participant, Participant, Participant]:
    """Agent and avatar (no media) are in the room before the user: the observer, which joins
    with the call, knows the avatar from the start. (livekit-rtc gives a data packet no sender
    while it does not know the participant yet, and one that joined after the observer may
    send before the observer has heard of it.)"""
    agent = await call.agent()
    avatar, _ = await call.avatar(publish=False)
    user = await call.user()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1),
                           expect("avatar_calls_in_progress", 1, state="active"))
    return user, agent, avatar


async def end_call(call: CallDriver) -> None:
    """The user hangs up first, then everyone else leaves."""
    for participant in call.participants:
        await participant.leave()


async def test_bot_ready_from_the_avatar_is_its_readiness(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    _, _, avatar = await avatar_first(call, metrics)
    await send(avatar, AVATAR_TOPIC, {"type": "bot_ready", "session_id": "s-1"})
    await metrics.wait_all(expect(READY, 1),
                           messages("lemonslice-avatar", "bot_ready", 1))
    # Said again, on the backend's topic: read, but a call is ready once.
    await send(avatar, LEMONSLICE, {"type": "bot_ready"})
    snapshot = await metrics.wait_all(messages("lemonslice", "bot_ready", 1))
    assert snapshot.count("avatar_ready_latency_seconds") == 1
    assert 0 <= snapshot.sum("avatar_ready_latency_seconds") < 10
    assert snapshot.value("avatar_monitor_data_messages_refused_total",
                          topic="lemonslice-avatar", reason="not_avatar") == 0
    await end_call(call)
    body = await verdict(call.room)
    ready = body["avatar"]
    assert ready["expects_ready"] is True
    assert ready["ready_latency_seconds"] == pytest.approx(
        snapshot.sum("avatar_ready_latency_seconds"))
    assert 0 <= ready["join_to_ready_seconds"] < 10
    assert [e for e in body["timeline"] if e["event"] == "avatar_ready"], body["timeline"]
    assert "never_ready" not in [f["rule"] for f in body["findings"]]


async def live_findings(http: aiohttp.ClientSession, sidecar: Sidecar, room: str,
                        api_keys: tuple[str, str]) -> list[dict]:
    token = access_token(room, *api_keys)
    async with http.get(f"{sidecar.url}/v1/calls/{room}",
                        headers={"Authorization": f"Bearer {token}"}) as resp:
        return (await resp.json()).get("findings", [])


def never_ready_for(findings: list[dict]) -> int:
    """The seconds a live never_ready finding names; -1 when there is none."""
    for finding in findings:
        found = re.fullmatch(r"avatar joined but never said bot_ready in (\d+) s",
                             finding["evidence"])
        if finding["rule"] == "never_ready" and found:
            return int(found.group(1))
    return -1


async def test_a_lemonslice_avatar_that_never_says_bot_ready_is_a_black_screen(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict,
        http: aiohttp.ClientSession, sidecar: Sidecar, api_keys: tuple[str, str]) -> None:
    """It joins and publishes audio and video, but never says its video is visible."""
    await call.user()
    await call.agent()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1),
                           expect("avatar_calls_in_progress", 1, state="ringing"))
    await call.avatar(publish=True)
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"),
                           expect("avatar_time_to_first_track_seconds_count", 1, kind="video"))
    # The grace (10 s after the join) is the behaviour under test: the finding appears on the
    # live call once it has passed. The call then goes on 2 s more, as a leave's webhook time
    # has whole seconds (it may read up to 1 s early).
    findings = await poll_until(
        lambda: live_findings(http, sidecar, call.room, api_keys),
        lambda found: never_ready_for(found) >= 12, "never_ready for 12 s", timeout=25)
    assert findings[0]["rule"] == "never_ready", findings
    await end_call(call)
    body = await verdict(call.room)
    assert body["verdict"] == "never_ready", body["findings"]
    assert never_ready_for(body["findings"]) >= 11, body["findings"]
    assert body["avatar"]["ready_at"] is None
    snapshot = await metrics.scrape()
    assert snapshot.count("avatar_ready_latency_seconds") == 0


async def test_the_avatar_says_idle_timeout_then_leaves(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    _, _, avatar = await avatar_first(call, metrics)
    await send(avatar, AVATAR_TOPIC, {"type": "idle_timeout"})
    await metrics.wait_all(messages("lemonslice-avatar", "idle_timeout", 1))
    await avatar.leave()
    snapshot = await metrics.wait_all(
        expect("avatar_departures_total", 1, cause="idle_timeout"),
        expect("avatar_timeouts_total", 1, timeout="idle"),
        expect("avatar_calls_in_progress", 0, state="active"))
    assert sum(snapshot.series("avatar_departures_total").values()) == 1
    await end_call(call)
    body = await verdict(call.room)
    assert body["verdict"] == "idle_timeout", body["findings"]
    assert body["findings"][0]["evidence"].startswith("the avatar said idle_timeout, then left")


async def test_a_fatal_avatar_error_then_the_avatar_leaves(
        call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    _, _, avatar = await avatar_first(call, metrics)
    await send(avatar, AVATAR_TOPIC, {"type": "video_generation_error", "fatal": False})
    await send(avatar, AVATAR_TOPIC, {"type": "error", "error": "GPU lost", "fatal": True})
    await metrics.wait_all(
        expect("avatar_pipeline_errors_total", 1, component="avatar", recoverable="true"),
        expect("avatar_pipeline_errors_total", 1, component="avatar", recoverable="false"),
        messages("lemonslice-avatar", "video_generation_error", 1),
        messages("lemonslice-avatar", "error", 1))
    await avatar.leave()
    snapshot = await metrics.wait_all(
        expect("avatar_departures_total", 1, cause="pipeline_error"),
        expect("avatar_calls_in_progress", 0, state="active"))
    assert sum(snapshot.series("avatar_departures_total").values()) == 1
    await end_call(call)
    body = await verdict(call.room)
    assert body["verdict"] == "pipeline_error", body["findings"]
    assert "unrecoverable AVATAR error" in body["findings"][0]["evidence"]
    assert body["pipeline"]["unrecoverable_error"]["component"] == "avatar"
    assert body["pipeline"]["recoverable_errors"] == 1


async def test_avatar_metrics_in_seconds_and_in_milliseconds(
        call: CallDriver, metrics: MetricsClient) -> None:
    _, _, avatar = await avatar_first(call, metrics)
    await send(avatar, AVATAR_TOPIC, {"type": "metric", "time_to_first_push": 0.85,
                                      "time_to_last_push": 2.5})  # seconds
    await send(avatar, AVATAR_TOPIC, {"type": "metric", "time_to_first_push": 1150,
                                      "time_to_last_push": 3500, "video_duration_ms": 2350})
    await send(avatar, AVATAR_TOPIC, {"type": "metric", "time_to_first_push": "soon"})
    await send(avatar, AVATAR_TOPIC, {"type": "image_change_complete"})
    await send(avatar, AVATAR_TOPIC, b"not json")
    snapshot = await metrics.wait_all(
        expect("avatar_agent_latency_seconds_count", 2, stage="avatar_first_push"),
        expect("avatar_agent_latency_seconds_count", 2, stage="avatar_last_push"),
        messages("lemonslice-avatar", "metric", 2),
        messages("lemonslice-avatar", "other", 1),
        messages("lemonslice-avatar", "malformed", 2))
    assert snapshot.sum("avatar_agent_latency_seconds", stage="avatar_first_push") == \
        pytest.approx(2.0)
    assert snapshot.sum("avatar_agent_latency_seconds", stage="avatar_last_push") == \
        pytest.approx(6.0)
    assert snapshot.value("avatar_agent_latency_seconds_bucket", stage="avatar_first_push",
                          le="1.0") == 1


async def test_only_the_calls_avatar_is_taken(call: CallDriver, metrics: MetricsClient) -> None:
    """A user (STANDARD) and the voice agent (an AGENT, not the avatar) say what only the
    avatar may: refused and counted, never taken. The agent's startup_failure on
    lemonslice/message is still its own to send."""
    user, agent, avatar = await avatar_first(call, metrics)
    await send(user, AVATAR_TOPIC, {"type": "bot_ready"})
    await send(user, LEMONSLICE, {"type": "bot_ready"})
    await send(agent, AVATAR_TOPIC, {"type": "bot_ready"})
    await send(agent, AVATAR_TOPIC, {"type": "idle_timeout"})
    await send(agent, LEMONSLICE, {"type": "bot_ready"})
    await metrics.wait_all(
        refused("lemonslice-avatar", "forbidden", 1), refused("lemonslice", "forbidden", 1),
        refused("lemonslice-avatar", "not_avatar", 2), refused("lemonslice", "not_avatar", 1))
    await send(agent, EVENTS, {"v": 1, "type": "agent_latency", "e2e": 1.0})
    await send(avatar, AVATAR_TOPIC, {"type": "bot_ready"})
    snapshot = await metrics.wait_all(
        expect(READY, 1), messages("lemonslice-avatar", "bot_ready", 1),
        expect("avatar_agent_latency_seconds_count", 1, stage="e2e"))
    assert snapshot.value("avatar_data_messages_total", topic="lemonslice",
                          type="bot_ready") == 0
    assert snapshot.value("avatar_data_messages_total", topic="lemonslice-avatar",
                          type="idle_timeout") == 0
    await avatar.leave()
    await metrics.wait_all(expect("avatar_departures_total", 1, cause="unknown"),
                           expect("avatar_timeouts_total", 0, timeout="idle"))


async def test_bot_ready_said_as_the_avatar_joins_a_watched_room_counts(
        call: CallDriver, metrics: MetricsClient) -> None:
    """The observer already watches the call; the avatar joins, publishes and says bot_ready at
    once, before livekit-server has told the observer of it: the packet comes with no sender,
    is resolved to the call's avatar, and counts."""
    await call.user()
    await call.agent()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1))
    avatar, _ = await call.avatar()
    await send(avatar, AVATAR_TOPIC, {"type": "bot_ready"})
    await metrics.wait_all(expect(READY, 1), messages("lemonslice-avatar", "bot_ready", 1),
                           refused("lemonslice-avatar", "forbidden", 0),
                           refused("lemonslice-avatar", "not_avatar", 0), timeout=15)
