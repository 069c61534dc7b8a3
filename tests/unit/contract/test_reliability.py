"""The server clock estimate, num_dropped, and /healthz and /readyz."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from monitor.clock import ServerClock
from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import Room, agent, avatar, user


class FakeTime:
    def __init__(self, wall: float) -> None:
        self.wall, self.mono = wall, 0.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def test_the_server_clock_is_the_freshest_sample_never_ahead_of_the_server() -> None:
    t = FakeTime(1_000_000.0)
    clock = ServerClock(window=60, wall=lambda: t.wall, mono=lambda: t.mono)
    assert clock.now() == t.wall and clock.offset() == 0  # no sample yet: the wall clock
    server_behind = 60.0
    # Delivered 0.2 s, then 5 s (a retry) after the server stamped them.
    t.advance(10)
    clock.observe(t.wall - server_behind - 0.2)
    t.advance(1)
    clock.observe(t.wall - server_behind - 5)
    assert abs(clock.offset() + server_behind + 0.2) < 1e-6
    assert abs(clock.now() - (t.wall - server_behind - 0.2)) < 1e-6
    t.advance(1)
    clock.observe(t.wall - server_behind - 0.05)  # a faster delivery refines it
    assert abs(clock.offset() + server_behind + 0.05) < 1e-6
    # The server's clock steps forward (NTP): the larger sample wins at once.
    t.advance(1)
    clock.observe(t.wall + 30)
    assert abs(clock.offset() - 30) < 1e-6
    # Past the window, older maxima are forgotten.
    t.advance(120)
    clock.observe(t.wall - 2)
    assert abs(clock.offset() + 2) < 1e-6


def test_the_counting_start_moves_only_by_what_a_late_delivery_cannot_explain() -> None:
    t = FakeTime(1_000_000.0)
    start = t.wall
    clock = ServerClock(wall=lambda: t.wall, mono=lambda: t.mono)
    assert clock.counting_start() == start  # no sample: this machine's clock
    t.advance(2)
    clock.observe(t.wall - 12)  # a retry stamped 12 s ago: not a clock behind ours
    assert clock.counting_start() == start
    behind = ServerClock(wall=lambda: t.wall, mono=lambda: t.mono)
    behind_start = t.wall
    behind.observe(t.wall - 120)  # 120 s behind: surely behind by at least 90 s
    assert behind.counting_start() == pytest.approx(behind_start - 90)
    ahead = ServerClock(wall=lambda: t.wall, mono=lambda: t.mono)
    ahead_start = t.wall
    t.advance(1)
    ahead.observe(t.wall + 120)  # ahead: a sample is never past the server's time
    assert ahead.counting_start() == pytest.approx(ahead_start + 120)


async def test_num_dropped_is_counted(sidecar: RunningMonitor) -> None:
    room = Room()
    event = room.joined(user(time.time()))
    event.num_dropped = 7
    status, _ = await sidecar.send(event)
    assert status == 200
    assert await sidecar.value("avatar_monitor_webhooks_dropped_upstream_total") == 7
    assert await sidecar.value("avatar_calls_started_total") == 1


async def test_a_leave_from_before_the_start_counts_no_startup_outcome(
        sidecar: RunningMonitor) -> None:
    """Without a listing, a user who joined before the sidecar started is seen first by their
    leave: the previous process counted the call's start, and whether the avatar had joined is
    unknown, so no join timeout or abandon is counted. The avatar's leave, when it comes, is the
    call's departure; without it the call ends uncounted with its room."""
    t0 = time.time() - 100
    active, ringing = Room(created_at=t0), Room(created_at=t0)
    caller, bot, face, waiting = user(t0), agent(t0), avatar(t0 + 1), user(t0)
    for event in (active.left(caller, t0 + 90), ringing.left(waiting, t0 + 90)):
        assert (await sidecar.send(event))[0] == 200
    assert await sidecar.value("avatar_calls_started_total") == 0
    assert await sidecar.value("avatar_calls_in_progress", state="ringing") == 0
    for event in (active.left(face, t0 + 92), active.left(bot, t0 + 92),
                  active.finished(t0 + 95), ringing.finished(t0 + 95)):
        assert (await sidecar.send(event))[0] == 200
    assert await sidecar.value("avatar_departures_total", cause="user_hangup") == 1
    assert await sidecar.value("avatar_session_duration_seconds_sum") == pytest.approx(91, abs=1)
    for cause in ("join_timeout", "message"):
        assert await sidecar.value("avatar_startup_failures_total", cause=cause) == 0
    assert await sidecar.value("avatar_calls_abandoned_total") == 0
    assert await sidecar.value("avatar_join_latency_seconds_count") == 0
    assert await sidecar.value("avatar_calls_started_total") == 0
    for state in ("ringing", "active"):
        assert await sidecar.value("avatar_calls_in_progress", state=state) == 0


async def test_with_a_state_file_what_happened_while_none_ran_is_counted(
        start_monitor: StartMonitor, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The previous process last ran 100 s ago (its state file says so): a call that started
    and failed since, seen first by its user's leave, is counted by the new process; one from
    before then is not (its predecessor counted it). The new process notes its own runs."""
    path = tmp_path / "alive"
    last_ran = time.time() - 100
    path.write_text(f"{last_ran}\n")
    sidecar = await start_monitor(state_file=str(path))
    during, before = Room(created_at=last_ran + 40), Room(created_at=last_ran - 50)
    waited, counted = user(last_ran + 40), user(last_ran - 50)
    for event in (during.left(waited, last_ran + 90), before.left(counted, last_ran + 90)):
        assert (await sidecar.send(event))[0] == 200
    assert await sidecar.value("avatar_calls_started_total") == 1
    assert await sidecar.value("avatar_startup_failures_total", cause="join_timeout") == 1
    assert await sidecar.value("avatar_calls_abandoned_total") == 0
    for _ in range(50):  # the deadline loop writes the file every tick (0.2 s)
        if float(path.read_text()) > last_ran + 99:
            break
        await asyncio.sleep(0.1)
    assert float(path.read_text()) > last_ran + 99


async def test_a_join_delivered_after_its_deadline_waits_for_the_leave_behind_it(
        sidecar: RunningMonitor) -> None:
    """A call whose user left after 1 s, both webhooks delivered 100 s late (retried): a
    deadline check between the two must not count a join timeout; the call was abandoned."""
    t0 = time.time() - 100
    room, caller = Room(created_at=t0), user(t0)
    assert (await sidecar.send(room.joined(caller)))[0] == 200
    sidecar.monitor.tracker.expire(time.time())  # a tick of the deadline loop
    assert (await sidecar.send(room.left(caller, t0 + 1)))[0] == 200
    assert await sidecar.value("avatar_calls_abandoned_total") == 1
    assert await sidecar.value("avatar_startup_failures_total", cause="join_timeout") == 0
    assert await sidecar.value("avatar_calls_started_total") == 1


async def status_of(sidecar: RunningMonitor, path: str) -> tuple[int, dict]:
    async with sidecar.http.get(sidecar.url + path) as resp:
        return resp.status, await resp.json()


async def test_healthz_fails_when_the_deadline_loop_stops_or_stalls(
        sidecar: RunningMonitor, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert await status_of(sidecar, "/healthz") == (200, {"status": "ok"})
    assert await status_of(sidecar, "/readyz") == (200, {"status": "ready"})
    monkeypatch.setattr("monitor.app.STALL_SECONDS", 0.5)

    def broken(now: float) -> None:
        raise RuntimeError("a bug in the deadline check")

    monkeypatch.setattr(sidecar.monitor.tracker, "expire", broken)
    await asyncio.sleep(1.0)  # the behaviour under test: no check completes for this long
    status, body = await status_of(sidecar, "/healthz")
    assert status == 503 and "deadline loop stalled" in body["problems"][0], body
    monkeypatch.undo()
    monkeypatch.setattr("monitor.app.STALL_SECONDS", 0.5)
    health = sidecar.monitor.health
    assert health is not None and health.task is not None
    await asyncio.sleep(0.5)
    assert (await status_of(sidecar, "/healthz"))[0] == 200
    health.task.cancel()
    await asyncio.sleep(0)
    status, body = await status_of(sidecar, "/healthz")
    assert status == 503 and "deadline loop not running" in body["problems"], body


async def test_readyz_waits_for_livekit(start_monitor: StartMonitor) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sidecar = await start_monitor(livekit_url=f"ws://127.0.0.1:{port}", observer=False)
    status, body = await status_of(sidecar, "/readyz")
    assert status == 503, body
    assert "startup reconciliation with LiveKit not done" in body["problems"]
    assert (await status_of(sidecar, "/healthz"))[0] == 200  # alive, only not ready
