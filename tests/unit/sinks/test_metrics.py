"""Calls driven by signed webhooks over HTTP; values read back from a /metrics scrape."""

from __future__ import annotations

import time

import pytest
from livekit.protocol import models

from monitor.calls.departures import AGENT_HANGUP_WINDOW
from tests.support.scrape import value
from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import Room, agent, avatar, user

R = models.DisconnectReason
AUDIO, VIDEO = models.TrackType.AUDIO, models.TrackType.VIDEO


async def send_all(sidecar: RunningMonitor, *events) -> None:
    for event in events:
        status, reply = await sidecar.send(event)
        assert status == 200, reply


async def test_normal_call(sidecar: RunningMonitor) -> None:
    t0 = time.time() - 120
    room = Room(created_at=t0 - 1)
    caller, bot, face = user(t0), agent(t0 + 0.2), avatar(t0 + 1.5)
    await send_all(sidecar, room.started(), room.joined(caller), room.joined(bot))
    assert await sidecar.value("avatar_calls_in_progress", state="ringing") == 1
    await send_all(sidecar, room.joined(face))
    assert await sidecar.value("avatar_calls_in_progress", state="ringing") == 0
    assert await sidecar.value("avatar_calls_in_progress", state="active") == 1
    await send_all(
        sidecar,
        room.track(face, AUDIO, t0 + 1.8),
        room.track(face, VIDEO, t0 + 2.0),
        room.track(face, AUDIO, t0 + 9.0),  # a second audio track is not a first track
        room.left(caller, t0 + 60),
        room.left(bot, t0 + 61),
        room.left(face, t0 + 61),
        room.finished(t0 + 70),
    )
    text = await sidecar.scrape()

    assert value(text, "avatar_calls_started_total") == 1
    assert value(text, "avatar_join_latency_seconds_count") == 1
    assert value(text, "avatar_join_latency_seconds_sum") == pytest.approx(1.5, abs=0.01)
    assert value(text, "avatar_join_latency_seconds_bucket", le="1.0") == 0
    assert value(text, "avatar_join_latency_seconds_bucket", le="2.0") == 1
    assert value(text, "avatar_time_to_first_track_seconds_count", kind="audio") == 1
    assert value(text, "avatar_time_to_first_track_seconds_sum", kind="audio") == pytest.approx(
        0.3, abs=0.01)
    assert value(text, "avatar_time_to_first_track_seconds_sum", kind="video") == pytest.approx(
        0.5, abs=0.01)
    assert value(text, "avatar_disconnects_total", role="user", reason="client_initiated") == 1
    assert value(text, "avatar_disconnects_total", role="agent", reason="client_initiated") == 1
    assert value(text, "avatar_disconnects_total", role="avatar", reason="client_initiated") == 1
    assert value(text, "avatar_departures_total", cause="user_hangup") == 1
    assert value(text, "avatar_session_duration_seconds_count") == 1
    assert value(text, "avatar_session_duration_seconds_sum") == pytest.approx(59.5, abs=1)
    assert value(text, "avatar_calls_in_progress", state="active") == 0
    assert value(text, "avatar_calls_in_progress", state="ringing") == 0
    assert value(text, "avatar_startup_failures_total", cause="join_timeout") == 0
    assert value(text, "avatar_monitor_webhooks_total", event="participant_joined") == 3
    assert value(text, "avatar_monitor_webhooks_total", event="track_published") == 3


async def test_join_timeout_fires_with_no_further_webhook(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(avatar_join_timeout=0.5)
    room = Room()
    await send_all(sidecar, room.joined(user(time.time())))
    assert await sidecar.value("avatar_calls_in_progress", state="ringing") == 1
    started = time.monotonic()
    await sidecar.wait_for("avatar_startup_failures_total", 1, timeout=3, cause="join_timeout")
    assert time.monotonic() - started < 1.5
    assert await sidecar.value("avatar_timeouts_total", timeout="join") == 1
    assert await sidecar.value("avatar_calls_in_progress", state="ringing") == 0
    assert await sidecar.value("avatar_calls_abandoned_total") == 0


async def test_late_avatar_after_timeout_is_observed_and_activates(
        start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(avatar_join_timeout=0.3)
    t0 = time.time()
    room = Room(created_at=t0)
    await send_all(sidecar, room.joined(user(t0)))
    await sidecar.wait_for("avatar_startup_failures_total", 1, cause="join_timeout")
    await send_all(sidecar, room.joined(avatar(t0 + 45)))
    assert await sidecar.value("avatar_calls_in_progress", state="active") == 1
    assert await sidecar.value("avatar_join_latency_seconds_sum") == pytest.approx(45, abs=0.01)


async def test_abandoned_call(sidecar: RunningMonitor) -> None:
    t0 = time.time()
    room, caller = Room(created_at=t0), user(t0)
    await send_all(sidecar, room.joined(caller), room.left(caller, t0 + 3))
    assert await sidecar.value("avatar_calls_abandoned_total") == 1
    assert await sidecar.value("avatar_calls_in_progress", state="ringing") == 0
    sidecar.monitor.tracker.expire(time.time() + 3600)  # long after the join deadline
    assert await sidecar.value("avatar_startup_failures_total", cause="join_timeout") == 0


async def test_hidden_participants_are_not_part_of_the_call(sidecar: RunningMonitor) -> None:
    t0 = time.time()
    room, caller = Room(created_at=t0), user(t0)
    observer = user(t0 + 1, identity="avatar-monitor-0a1b2c3d")
    observer.permission.hidden = True
    await send_all(sidecar, room.joined(caller), room.joined(observer),
                   room.left(observer, t0 + 2))
    assert await sidecar.value("avatar_monitor_webhooks_total", event="participant_left") == 1
    assert await sidecar.value("avatar_disconnects_total", role="other",
                               reason="client_initiated") == 0
    assert await sidecar.value("avatar_disconnects_total", role="user",
                               reason="client_initiated") == 0
    assert await sidecar.value("avatar_calls_in_progress", state="ringing") == 1  # caller waits
    record = sidecar.monitor.status.records.latest(room.name)
    assert record is not None and [p.identity for p in record.participants] == [caller.identity]


async def test_avatar_before_user_measures_from_room_creation(sidecar: RunningMonitor) -> None:
    t0 = time.time() - 30
    room = Room(created_at=t0)
    await send_all(sidecar, room.joined(avatar(t0 + 2)), room.joined(user(t0 + 10)))
    assert await sidecar.value("avatar_calls_started_total") == 1
    assert await sidecar.value("avatar_join_latency_seconds_sum") == pytest.approx(2, abs=0.01)
    assert await sidecar.value("avatar_calls_in_progress", state="active") == 1


@pytest.mark.parametrize(
    ("reason", "session_seconds", "user_first", "cause"),
    [
        (R.PARTICIPANT_REMOVED, 60, False, "removed"),
        (R.ROOM_DELETED, 60, False, "server"),
        (R.ROOM_CLOSED, 60, False, "server"),
        (R.ROOM_CLOSED, 60, True, "user_hangup"),  # the server closes the room after the user
        (R.PARTICIPANT_REMOVED, 60, True, "user_hangup"),  # the backend cleans up after the user
        (R.SERVER_SHUTDOWN, 60, False, "server"),
        (R.SIGNAL_CLOSE, 60, False, "network"),
        (R.CONNECTION_TIMEOUT, 60, False, "network"),
        (R.MEDIA_FAILURE, 60, False, "network"),
        (R.CLIENT_INITIATED, 1800, False, "session_timeout"),
        (R.CLIENT_INITIATED, 1803, False, "session_timeout"),
        (R.CLIENT_INITIATED, 1700, False, "unknown"),
        (R.CLIENT_INITIATED, 60, True, "user_hangup"),
    ],
)
async def test_departure_causes(sidecar: RunningMonitor, reason: int, session_seconds: float,
                                user_first: bool, cause: str) -> None:
    t0 = time.time() - 4000
    room, caller, face = Room(created_at=t0), user(t0), avatar(t0 + 1)
    await send_all(sidecar, room.joined(caller), room.joined(face))
    if user_first:
        await send_all(sidecar, room.left(caller, t0 + 2))
    await send_all(sidecar, room.left(face, t0 + 1 + session_seconds, reason))
    # An avatar sent away waits a while for the voice agent's end (an agent hang-up); none comes.
    sidecar.monitor.tracker.expire(time.time() + AGENT_HANGUP_WINDOW)
    assert await sidecar.value("avatar_departures_total", cause=cause) == 1
    reason_label = models.DisconnectReason.Name(reason).lower()
    assert await sidecar.value("avatar_disconnects_total", role="avatar",
                               reason=reason_label) == 1
    expected_session_timeouts = 1 if cause == "session_timeout" else 0
    assert await sidecar.value("avatar_timeouts_total", timeout="session") == (
        expected_session_timeouts)
    assert await sidecar.value("avatar_calls_in_progress", state="active") == 0


async def test_room_deleted_is_server_whoever_leaves_first(sidecar: RunningMonitor) -> None:
    t0 = time.time() - 100
    room, caller, face = Room(created_at=t0), user(t0), avatar(t0 + 1)
    await send_all(sidecar, room.joined(caller), room.joined(face),
                   room.left(caller, t0 + 30, R.ROOM_DELETED),
                   room.left(face, t0 + 30, R.ROOM_DELETED),
                   room.finished(t0 + 30, models.RoomEndReason.ROOM_END_SERVER_SHUTDOWN))
    assert await sidecar.value("avatar_departures_total", cause="server") == 1
    assert await sidecar.value("avatar_departures_total", cause="user_hangup") == 0


async def test_duplicates_count_once(sidecar: RunningMonitor) -> None:
    t0 = time.time()
    room = Room(created_at=t0)
    joined_user, joined_avatar = room.joined(user(t0)), room.joined(avatar(t0 + 1))
    await send_all(sidecar, joined_user, joined_user, joined_avatar, joined_avatar, joined_avatar)
    assert await sidecar.value("avatar_calls_started_total") == 1
    assert await sidecar.value("avatar_join_latency_seconds_count") == 1
    assert await sidecar.value("avatar_monitor_webhooks_rejected_total", reason="duplicate") == 3
    assert await sidecar.value("avatar_monitor_webhooks_total", event="participant_joined") == 2


async def test_out_of_order_delivery_uses_server_timestamps(sidecar: RunningMonitor) -> None:
    t0 = time.time() - 100
    room = Room(created_at=t0 - 5)
    caller, face = user(t0), avatar(t0 + 4)
    # The avatar's join arrives before the user's, and its leave before its join.
    await send_all(sidecar, room.joined(face), room.joined(caller))
    assert await sidecar.value("avatar_join_latency_seconds_sum") == pytest.approx(4, abs=0.01)
    other_room = Room(created_at=t0)
    caller2, face2 = user(t0), avatar(t0 + 2)
    await send_all(sidecar, other_room.joined(caller2),
                   other_room.left(face2, t0 + 30, R.SIGNAL_CLOSE), other_room.joined(face2))
    assert await sidecar.value("avatar_join_latency_seconds_count") == 2
    assert await sidecar.value("avatar_join_latency_seconds_sum") == pytest.approx(6, abs=0.01)
    assert await sidecar.value("avatar_departures_total", cause="network") == 1
    assert await sidecar.value("avatar_session_duration_seconds_sum") == pytest.approx(28, abs=1)
    # A user's leave that arrives before its join: the call is not left ringing. (This user
    # joined after the sidecar started: one who joined before is under way since before it,
    # see test_a_leave_from_before_the_start_counts_no_startup_outcome.)
    t1 = time.time()
    third = Room(created_at=t1)
    caller3 = user(t1)
    await send_all(sidecar, third.left(caller3, t1 + 2), third.joined(caller3))
    assert await sidecar.value("avatar_calls_abandoned_total") == 1
    assert await sidecar.value("avatar_calls_in_progress", state="ringing") == 0
    assert await sidecar.value("avatar_calls_in_progress", state="active") == 1  # the first room


async def test_eviction_bound(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(max_calls=3)
    t0 = time.time()
    for _ in range(5):
        room = Room(created_at=t0)
        await send_all(sidecar, room.joined(user(t0)))
    assert await sidecar.value("avatar_monitor_calls_evicted_total") == 2
    assert await sidecar.value("avatar_monitor_calls_tracked") == 3
    assert await sidecar.value("avatar_calls_in_progress", state="ringing") == 3
    assert await sidecar.value("avatar_calls_started_total") == 5
