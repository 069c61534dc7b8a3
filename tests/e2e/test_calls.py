"""Avatar calls against a real livekit-server; the sidecar's /metrics is checked by value.

Each test has its own livekit-server, sidecar and room, so every counter starts at zero.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time

import aiohttp
import pytest
from livekit import api, rtc

from monitor.calls.departures import AGENT_HANGUP_WINDOW
from tests.e2e.harness import Verdict
from tests.support.metrics import Expect, MetricsClient, Snapshot, expect
from tests.support.participants import AVATAR_IDENTITY
from tests.support.scenario import CallDriver
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.e2e

JOIN_TIMEOUT = 2.0
AVATAR_DELAY = 1.0  # how long after the user the avatar joins in a normal call
ROLES = ("avatar", "agent", "user", "other")
CAUSES = ("user_hangup", "session_timeout", "removed", "server", "network", "unknown",
          "user_network", "agent_lost", "replaced")


def idle_gauges() -> list[Expect]:
    return [expect("avatar_calls_in_progress", 0, state="ringing"),
            expect("avatar_calls_in_progress", 0, state="active")]


def only_departure(cause: str) -> list[Expect]:
    """`cause` counted once, every other departure cause zero."""
    return [expect("avatar_departures_total", 1 if c == cause else 0, cause=c) for c in CAUSES]


def assert_disconnects(snapshot: Snapshot, expected: dict[tuple[str, str], int]) -> None:
    """The whole avatar_disconnects_total family: these (role, reason) counts, zero elsewhere."""
    counted = {(dict(labels)["role"], dict(labels)["reason"]): value
               for labels, value in snapshot.series("avatar_disconnects_total").items() if value}
    assert counted == expected


def assert_no_rejections(snapshot: Snapshot) -> None:
    for reason in ("unauthorized", "malformed", "too_large", "duplicate"):
        assert snapshot.value("avatar_monitor_webhooks_rejected_total", reason=reason) == 0


async def start_active_call(call: CallDriver, metrics: MetricsClient) -> None:
    """User and voice agent join, the avatar joins and publishes; waits until the call is
    active and both first tracks are in."""
    await call.user()
    await call.agent()
    await call.avatar()
    await metrics.wait_all(
        expect("avatar_calls_in_progress", 1, state="active"),
        expect("avatar_time_to_first_track_seconds_count", 1, kind="audio"),
        expect("avatar_time_to_first_track_seconds_count", 1, kind="video"))


async def assert_verdict(verdict: Verdict, room: str, name: str, evidence: str = "") -> dict:
    """The call's diagnosis names `name` first, with `evidence` in its words."""
    body = await verdict(room)
    assert body["verdict"] == name, body["findings"]
    if evidence:
        assert evidence in body["findings"][0]["evidence"], body["findings"]
    return body


async def test_normal_call(call: CallDriver, metrics: MetricsClient, verdict: Verdict) -> None:
    user = await call.user()
    agent = await call.agent()
    await metrics.wait_all(expect("avatar_calls_started_total", 1),
                           expect("avatar_calls_in_progress", 1, state="ringing"))
    await asyncio.sleep(AVATAR_DELAY)  # part of the scenario: the avatar takes a second
    avatar, _ = await call.avatar()

    # The user sees and hears the avatar: media flows through the real server.
    await asyncio.wait_for(user.track_from(AVATAR_IDENTITY, "audio"), 15)
    await asyncio.wait_for(user.track_from(AVATAR_IDENTITY, "video"), 15)
    active = await metrics.wait_all(
        expect("avatar_calls_in_progress", 0, state="ringing"),
        expect("avatar_calls_in_progress", 1, state="active"),
        expect("avatar_join_latency_seconds_count", 1),
        expect("avatar_time_to_first_track_seconds_count", 1, kind="audio"),
        expect("avatar_time_to_first_track_seconds_count", 1, kind="video"))
    latency = active.sum("avatar_join_latency_seconds")
    assert AVATAR_DELAY <= latency <= AVATAR_DELAY + 2.0, latency
    assert active.value("avatar_join_latency_seconds_bucket", le="0.5") == 0
    assert active.value("avatar_join_latency_seconds_bucket", le="5.0") == 1
    for kind in ("audio", "video"):
        assert 0 <= active.sum("avatar_time_to_first_track_seconds", kind=kind) <= 3.0

    await user.leave()
    await metrics.wait_all(expect("avatar_disconnects_total", 1, role="user",
                                  reason="client_initiated"))
    await avatar.leave()
    await agent.leave()
    done = await metrics.wait_all(
        *idle_gauges(), *only_departure("user_hangup"),
        expect("avatar_session_duration_seconds_count", 1),
        expect("avatar_monitor_webhooks_total", 1, event="room_finished"))
    assert_disconnects(done, {("user", "client_initiated"): 1, ("avatar", "client_initiated"): 1,
                              ("agent", "client_initiated"): 1})
    assert 0 <= done.sum("avatar_session_duration_seconds") <= 10
    assert done.value("avatar_calls_started_total") == 1
    assert done.value("avatar_join_latency_seconds_count") == 1
    assert done.value("avatar_calls_abandoned_total") == 0
    for cause in ("join_timeout", "message"):
        assert done.value("avatar_startup_failures_total", cause=cause) == 0
    for event, count in (("room_started", 1), ("participant_joined", 3),
                         ("participant_left", 3), ("track_published", 2)):
        assert done.value("avatar_monitor_webhooks_total", event=event) == count, event
    assert_no_rejections(done)
    body = await assert_verdict(verdict, call.room, "healthy")
    assert sorted(p["role"] for p in body["participants"]) == ["agent", "avatar", "user"]
    assert body["avatar"]["departure"] == "user_hangup"


@pytest.mark.sidecar_args("--avatar-join-timeout", str(JOIN_TIMEOUT))
async def test_avatar_never_joins(call: CallDriver, metrics: MetricsClient,
                                  verdict: Verdict) -> None:
    user = await call.user()
    joined = time.monotonic()
    await call.agent()
    ringing = await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="ringing"))
    assert ringing.value("avatar_startup_failures_total", cause="join_timeout") == 0

    failed = await metrics.wait_all(
        expect("avatar_startup_failures_total", 1, cause="join_timeout"),
        timeout=JOIN_TIMEOUT + 5)
    waited = time.monotonic() - joined
    # The deadline runs from the server's join time, a little before connect() returned.
    assert JOIN_TIMEOUT - 0.5 <= waited <= JOIN_TIMEOUT + 1.5, waited
    assert failed.value("avatar_calls_in_progress", state="ringing") == 0
    assert failed.value("avatar_calls_in_progress", state="active") == 0
    assert failed.value("avatar_timeouts_total", timeout="join") == 1
    assert failed.value("avatar_join_latency_seconds_count") == 0

    await user.leave()
    done = await metrics.wait_all(
        expect("avatar_disconnects_total", 1, role="user", reason="client_initiated"),
        *idle_gauges())
    assert done.value("avatar_startup_failures_total", cause="join_timeout") == 1
    assert done.value("avatar_calls_abandoned_total") == 0
    assert done.value("avatar_calls_started_total") == 1
    assert_no_rejections(done)
    await assert_verdict(verdict, call.room, "avatar_never_joined",
                         f"avatar never joined within {JOIN_TIMEOUT:g} s")


async def test_avatar_removed(call: CallDriver, metrics: MetricsClient,
                              room_service: api.LiveKitAPI, verdict: Verdict) -> None:
    await start_active_call(call, metrics)
    avatar = next(p for p in call.participants if p.identity == AVATAR_IDENTITY)
    await room_service.room.remove_participant(
        api.RoomParticipantIdentity(room=call.room, identity=AVATAR_IDENTITY))
    reason = await asyncio.wait_for(avatar.disconnected, 10)
    assert reason == rtc.DisconnectReason.PARTICIPANT_REMOVED

    # A removal waits up to AGENT_HANGUP_WINDOW (10 s) for the voice agent's end, which would
    # make it an agent hang-up; none comes here.
    done = await metrics.wait_all(*idle_gauges(), *only_departure("removed"),
                                  expect("avatar_session_duration_seconds_count", 1),
                                  timeout=AGENT_HANGUP_WINDOW + 10)
    assert_disconnects(done, {("avatar", "participant_removed"): 1})
    assert_no_rejections(done)
    await assert_verdict(verdict, call.room, "removed", "PARTICIPANT_REMOVED")


async def test_room_deleted_during_call(call: CallDriver, metrics: MetricsClient,
                                        room_service: api.LiveKitAPI, verdict: Verdict) -> None:
    await start_active_call(call, metrics)
    await room_service.room.delete_room(api.DeleteRoomRequest(room=call.room))
    reasons = await asyncio.wait_for(
        asyncio.gather(*(p.disconnected for p in call.participants)), 10)
    assert set(reasons) == {rtc.DisconnectReason.ROOM_DELETED}

    # Deleted through the API (room_finished says API_DELETE), as an agent ending the call would:
    # the departure waits up to AGENT_HANGUP_WINDOW for the agent's end; none comes here.
    done = await metrics.wait_all(*idle_gauges(), *only_departure("server"),
                                  expect("avatar_monitor_webhooks_total", 1,
                                         event="room_finished"),
                                  timeout=AGENT_HANGUP_WINDOW + 10)
    assert_disconnects(done, {("avatar", "room_deleted"): 1, ("agent", "room_deleted"): 1,
                              ("user", "room_deleted"): 1})
    assert_no_rejections(done)
    await assert_verdict(verdict, call.room, "server", "ROOM_DELETED")


async def test_user_hangs_up_and_server_closes_room(call: CallDriver, metrics: MetricsClient,
                                                    verdict: Verdict) -> None:
    """The avatar and agent stay after the user left: livekit-server closes the room after its
    departure timeout and disconnects them (agents are dependent participants) with
    ROOM_CLOSED. The user hung up: that is the call's departure, not the server."""
    await start_active_call(call, metrics)
    user = next(p for p in call.participants if p.identity == "user")
    await user.leave()
    reasons = await asyncio.wait_for(
        asyncio.gather(*(p.disconnected for p in call.participants if p is not user)), 15)
    assert set(reasons) == {rtc.DisconnectReason.ROOM_CLOSED}

    done = await metrics.wait_all(*idle_gauges(),
                                  expect("avatar_session_duration_seconds_count", 1))
    assert_disconnects(done, {("user", "client_initiated"): 1, ("avatar", "room_closed"): 1,
                              ("agent", "room_closed"): 1})
    departures = {dict(labels)["cause"]: value
                  for labels, value in done.series("avatar_departures_total").items() if value}
    assert departures == {"user_hangup": 1}
    body = await assert_verdict(verdict, call.room, "healthy")
    assert body["avatar"]["disconnect_reason"] == "room_closed"


async def test_an_avatar_that_rejoins_is_one_call(call: CallDriver, metrics: MetricsClient,
                                                  verdict: Verdict) -> None:
    """The avatar's service reconnects with the same identity: livekit-server sends the old
    connection away with DUPLICATE_IDENTITY. One call, one session replaced, and the call's
    own ending; the verdict warns of the rejoin."""
    await start_active_call(call, metrics)
    first = next(p for p in call.participants if p.identity == AVATAR_IDENTITY)
    await call.avatar()  # the same identity, a new connection
    reason = await asyncio.wait_for(first.disconnected, 10)
    assert reason == rtc.DisconnectReason.DUPLICATE_IDENTITY
    await metrics.wait_all(expect("avatar_departures_total", 1, cause="replaced"),
                           expect("avatar_time_to_first_track_seconds_count", 2, kind="video"))
    user = next(p for p in call.participants if p.identity == "user")
    await user.leave()
    done = await metrics.wait_all(*idle_gauges(), expect("avatar_calls_started_total", 1),
                                  expect("avatar_session_duration_seconds_count", 2),
                                  expect("avatar_join_latency_seconds_count", 1),
                                  timeout=15)
    departures = {dict(labels)["cause"]: value
                  for labels, value in done.series("avatar_departures_total").items() if value}
    assert departures == {"replaced": 1, "user_hangup": 1}
    for kind in ("audio", "video"):
        assert done.value("avatar_media_interruptions_total", kind=kind) == 0
    body = await assert_verdict(verdict, call.room, "avatar_rejoined",
                                "the avatar rejoined the room 1 time(s)")
    assert body["status"] == "warning"


def forged_leave(room: str) -> bytes:
    """A participant_left for the avatar that livekit-server never sent."""
    return json.dumps({"event": "participant_left", "id": "EV_forged", "createdAt": "1",
                       "room": {"sid": "RM_forged", "name": room},
                       "participant": {"sid": "PA_forged", "identity": AVATAR_IDENTITY,
                                       "kind": "AGENT",
                                       "disconnectReason": "CLIENT_INITIATED"}}).encode()


def signature(body: bytes, key: str, secret: str) -> str:
    """The Authorization value livekit-server would send for `body` (a bare JWT)."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return api.AccessToken(key, secret).with_sha256(digest).to_jwt()


async def test_real_webhooks_accepted_and_forged_ones_rejected(
        call: CallDriver, metrics: MetricsClient, sidecar: Sidecar,
        http: aiohttp.ClientSession) -> None:
    await start_active_call(call, metrics)
    accepted = await metrics.wait_all(
        expect("avatar_monitor_webhooks_total", 1, event="room_started"),
        expect("avatar_monitor_webhooks_total", 3, event="participant_joined"),
        expect("avatar_monitor_webhooks_total", 2, event="track_published"))
    assert_no_rejections(accepted)

    body = forged_leave(call.room)
    wrong_secret = signature(body, sidecar.api_key, "not-the-secret-" + "x" * 32)
    tampered = signature(body.replace(b"CLIENT_INITIATED", b"PARTICIPANT_REMOVED"),
                         sidecar.api_key, sidecar.api_secret)
    for token in (wrong_secret, tampered):
        headers = {"Authorization": token, "Content-Type": "application/webhook+json"}
        async with http.post(sidecar.webhook_url, data=body, headers=headers) as resp:
            assert resp.status == 401
    forged = await metrics.wait_all(
        expect("avatar_monitor_webhooks_rejected_total", 2, reason="unauthorized"))
    assert forged.value("avatar_monitor_webhooks_total", event="participant_left") == 0
    assert forged.value("avatar_calls_in_progress", state="active") == 1

    for participant in call.participants:
        await participant.leave()
    done = await metrics.wait_all(
        *idle_gauges(), expect("avatar_monitor_webhooks_total", 3, event="participant_left"),
        expect("avatar_monitor_webhooks_total", 1, event="room_finished"), timeout=15)
    assert done.value("avatar_monitor_webhooks_rejected_total", reason="unauthorized") == 2
    for reason in ("malformed", "too_large", "duplicate"):
        assert done.value("avatar_monitor_webhooks_rejected_total", reason=reason) == 0
