"""Nothing lost, nothing counted twice, against a real livekit-server: sidecar restarts with and
without LiveKit access, a late leave after the call was forgotten, a ghost room, the sidecar's
clock 60 s off the server's, and /readyz following LiveKit.

Counters restart at zero with the process: after a restart the new process's counts are what it
adds (Prometheus sums across resets), so "counted once" means the old process's count plus the
new one's, each checked here.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from livekit import api

from tests.e2e.harness import Verdict, register_log
from tests.support.livekit_server import LiveKitServer
from tests.support.metrics import Expect, MetricsClient, Snapshot, expect, poll_until
from tests.support.participants import Participant, Server
from tests.support.scenario import CallDriver
from tests.support.sidecar import Sidecar

pytestmark = pytest.mark.e2e

JOIN_TIMEOUT = 5.0  # long enough for a restart on a loaded 2-core machine (3 s was not)
CAUSES = ("user_hangup", "session_timeout", "idle_timeout", "removed", "server", "network",
          "pipeline_error", "unknown")


@pytest.fixture
def sidecar_base_args(request: pytest.FixtureRequest, livekit_port: int, tmp_path: Path
                      ) -> list[str]:
    """A short join timeout; `@pytest.mark.livekit_access` adds the reconciler (and the
    observer unless `observer=False`, a state file with `state_file=True`) pointed at the
    test's livekit-server."""
    args = ["--avatar-join-timeout", str(JOIN_TIMEOUT)]
    marker = request.node.get_closest_marker("livekit_access")
    if marker is not None:
        args += ["--livekit-url", f"ws://127.0.0.1:{livekit_port}", "--observe-interval", "1"]
        if not marker.kwargs.get("observer", True):
            args.append("--no-observer")
        if marker.kwargs.get("state_file", False):
            args += ["--state-file", str(tmp_path / "avatar-monitor.alive")]
    return args


def departures(snapshot: Snapshot) -> dict[str, float]:
    """Departure causes counted, the zeros left out."""
    return {dict(labels)["cause"]: value
            for labels, value in snapshot.series("avatar_departures_total").items() if value}


def nothing_started_or_failed() -> list[Expect]:
    return [expect("avatar_calls_started_total", 0),
            expect("avatar_startup_failures_total", 0, cause="join_timeout"),
            expect("avatar_startup_failures_total", 0, cause="message"),
            expect("avatar_timeouts_total", 0, timeout="join"),
            expect("avatar_calls_abandoned_total", 0)]


def idle() -> list[Expect]:
    return [expect("avatar_calls_in_progress", 0, state="ringing"),
            expect("avatar_calls_in_progress", 0, state="active")]


async def active_call(call: CallDriver, metrics: MetricsClient, active: int = 1
                      ) -> tuple[Participant, Participant, Participant]:
    """User and voice agent join, then the avatar (no media); waits until `active` calls are."""
    user = await call.user()
    agent = await call.agent()
    avatar, _ = await call.avatar(publish=False)
    await metrics.wait_all(expect("avatar_calls_in_progress", active, state="active"))
    return user, agent, avatar


def restart(sidecar: Sidecar) -> None:
    """Stop the sidecar and start it again on the same port (livekit-server's webhooks reach
    the new process); returns once it answers /healthz."""
    sidecar.stop()
    sidecar.start()


async def after_deadline(joined: float) -> None:
    """Let a join deadline pass (the scenario, not synchronisation: nothing can be awaited for
    an avatar that does not come)."""
    await asyncio.sleep(max(joined + JOIN_TIMEOUT + 0.5 - time.time(), 0))


async def test_restart_without_livekit_access(
        server: Server, room_name: str, metrics: MetricsClient, sidecar: Sidecar) -> None:
    """Without --livekit-url the new process knows a call under way only from its next webhook.
    An active call's departure is still counted with its true cause, and nothing is counted
    twice or falsely: not its start (the old process counted it), not a join timeout (its
    deadline passed, but the avatar had joined). What cannot be known: the ringing call's join
    timeout, which fell while the new process did not know the call, is not counted (with
    --livekit-url it is, on time; see the next test)."""
    active, ringing = CallDriver(server, room_name), CallDriver(server, room_name + "-ringing")
    try:
        user, agent, avatar = await active_call(active, metrics)
        joined = time.time()
        waiting = await ringing.user()
        await metrics.wait_all(expect("avatar_calls_started_total", 2),
                               expect("avatar_calls_in_progress", 1, state="ringing"))
        restart(sidecar)
        await after_deadline(joined)  # both calls are now older than their join deadline
        await user.leave()
        await waiting.leave()
        await metrics.wait_all(
            expect("avatar_disconnects_total", 2, role="user", reason="client_initiated"))
        await avatar.leave()
        await agent.leave()
        done = await metrics.wait_all(
            *idle(), *nothing_started_or_failed(),
            expect("avatar_session_duration_seconds_count", 1),
            expect("avatar_monitor_webhooks_total", 2, event="room_finished"), timeout=20)
        assert departures(done) == {"user_hangup": 1}
        assert done.value("avatar_join_latency_seconds_count") == 0
        assert done.value("avatar_disconnects_total", role="avatar",
                          reason="client_initiated") == 1
        # From the avatar's join (ms) to its leave's createdAt (whole seconds).
        assert done.sum("avatar_session_duration_seconds") >= JOIN_TIMEOUT - 1
    finally:
        await active.close()
        await ringing.close()


@pytest.mark.livekit_access
async def test_restart_with_livekit_access_counts_every_call_once(
        server: Server, room_name: str, metrics: MetricsClient, sidecar: Sidecar) -> None:
    """Three calls across a restart: one active, one a second old whose avatar joins after the
    restart, one a second old whose avatar never joins. The new process rebuilds all three from
    ListParticipants (a room's num_participants is still 0 that young), counts none of their
    starts again, counts the young call's join latency and the other's join timeout on time, and
    both departures."""
    old, late, never = (CallDriver(server, f"{room_name}-{n}") for n in ("old", "late", "never"))
    try:
        old_user, old_agent, old_avatar = await active_call(old, metrics)
        late_user = await late.user()
        started = time.time()
        never_user = await never.user()
        await metrics.wait_all(expect("avatar_calls_started_total", 3),
                               expect("avatar_calls_in_progress", 2, state="ringing"))
        restart(sidecar)
        assert time.time() - started < JOIN_TIMEOUT - 0.5, "the restart took too long"
        late_avatar, _ = await late.avatar(publish=False)
        rebuilt = await metrics.wait_all(
            expect("avatar_monitor_reconciled_total", 3, action="call_recovered"),
            expect("avatar_calls_in_progress", 2, state="active"),
            expect("avatar_join_latency_seconds_count", 1), timeout=10)
        latency = rebuilt.sum("avatar_join_latency_seconds")
        assert 0 < latency < JOIN_TIMEOUT, latency
        failed = await metrics.wait_all(
            expect("avatar_startup_failures_total", 1, cause="join_timeout"), timeout=10)
        waited = time.time() - started
        assert JOIN_TIMEOUT - 0.5 <= waited <= JOIN_TIMEOUT + 1.5, waited
        assert failed.value("avatar_calls_in_progress", state="ringing") == 0
        for hung_up, (user, avatar) in enumerate(((old_user, old_avatar),
                                                  (late_user, late_avatar)), start=1):
            await user.leave()
            # Two leaves sent at once may reach livekit-server in either order: the avatar
            # leaves once the user's leave is in.
            await metrics.wait_all(expect("avatar_disconnects_total", hung_up, role="user",
                                          reason="client_initiated"))
            await avatar.leave()
        await never_user.leave()
        await old_agent.leave()
        done = await metrics.wait_all(
            *idle(), expect("avatar_session_duration_seconds_count", 2), timeout=20)
        assert departures(done) == {"user_hangup": 2}
        assert done.value("avatar_calls_started_total") == 0
        assert done.value("avatar_startup_failures_total", cause="join_timeout") == 1
        assert done.value("avatar_timeouts_total", timeout="join") == 1
        assert done.value("avatar_calls_abandoned_total") == 0
        assert done.value("avatar_join_latency_seconds_count") == 1
    finally:
        for driver in (old, late, never):
            await driver.close()


OUTAGE = 45.0
# livekit-server retries a webhook for about 15 s (attempts after 1, 3, 7 and 15 s), one event
# of a room at a time, and drops one queued for more than 30 s. A call whose room opens this
# long before the sidecar is back has its webhooks delivered once it is.
RETRIED_WITHIN = 13.0


@pytest.mark.livekit_access(observer=False, state_file=True)
async def test_an_outage_of_45s_with_whole_failed_calls_inside_it(
        server: Server, room_name: str, metrics: MetricsClient, sidecar: Sidecar,
        room_service: api.LiveKitAPI) -> None:
    """The sidecar is down for 45 s. In that time one user waits for an avatar that never
    comes and is still waiting when the sidecar is back: the startup listing finds the call.
    Another call starts, fails (no avatar) and ends, its room closed, all inside the outage:
    livekit-server's retries deliver its webhooks late. The state file tells the new process
    when its predecessor stopped, so both calls count as started and failed, once."""
    waiting, whole = CallDriver(server, room_name + "-waiting"), CallDriver(server, room_name)
    try:
        sidecar.stop()
        down = time.monotonic()
        waiting_user = await waiting.user()
        # The scenario's timeline, not synchronisation: the whole call comes late in the outage.
        await asyncio.sleep(max(down + OUTAGE - RETRIED_WITHIN - time.monotonic(), 0))
        whole_user = await whole.user()
        await whole.agent()
        # The user waits past the join deadline; by more than a second, as a webhook's
        # createdAt, the leave's only time, has whole seconds.
        await asyncio.sleep(JOIN_TIMEOUT + 1.5)
        await whole_user.leave()

        async def rooms() -> list[str]:
            listed = await room_service.room.list_rooms(api.ListRoomsRequest())
            return [room.name for room in listed.rooms]

        await poll_until(rooms, lambda names: whole.room not in names, "the room closed", 10)
        assert time.monotonic() - down < OUTAGE, "the whole call did not fit in the outage"
        await asyncio.sleep(down + OUTAGE - time.monotonic())
        sidecar.start()
        counted = await metrics.wait_all(
            expect("avatar_monitor_reconciled_total", 1, action="call_recovered"),
            expect("avatar_monitor_webhooks_total", 1, event="room_finished"),
            expect("avatar_calls_started_total", 2),
            expect("avatar_startup_failures_total", 2, cause="join_timeout"), timeout=30)
        assert counted.value("avatar_timeouts_total", timeout="join") == 2
        assert counted.value("avatar_calls_in_progress", state="ringing") == 0
        await waiting_user.leave()
        done = await metrics.wait_all(
            *idle(), expect("avatar_monitor_webhooks_total", 3, event="participant_left"),
            timeout=15)
        assert done.value("avatar_calls_started_total") == 2
        assert done.value("avatar_startup_failures_total", cause="join_timeout") == 2
        assert done.value("avatar_calls_abandoned_total") == 0
        assert departures(done) == {}
    finally:
        await waiting.close()
        await whole.close()


async def test_a_late_user_leave_after_the_call_was_forgotten(
        call: CallDriver, metrics: MetricsClient) -> None:
    """The avatar leaves first; the user stays until the call's record has been evicted (the
    linger), then leaves. The leave belongs to the finished call: no second start, no join
    timeout."""
    user, agent, avatar = await active_call(call, metrics)
    await avatar.leave()
    ended = await metrics.wait_all(*idle(), expect("avatar_session_duration_seconds_count", 1))
    assert sum(departures(ended).values()) == 1
    await metrics.wait_all(expect("avatar_monitor_calls_tracked", 0), timeout=20)
    await user.leave()
    await agent.leave()
    done = await metrics.wait_all(
        expect("avatar_monitor_webhooks_total", 3, event="participant_left"),
        expect("avatar_monitor_webhooks_total", 1, event="room_finished"), timeout=15)
    assert done.value("avatar_calls_started_total") == 1
    assert done.value("avatar_startup_failures_total", cause="join_timeout") == 0
    assert done.value("avatar_timeouts_total", timeout="join") == 0
    assert done.value("avatar_calls_abandoned_total") == 0
    assert departures(done) == departures(ended)
    assert done.value("avatar_monitor_calls_tracked") == 0
    for state in ("ringing", "active"):
        assert done.value("avatar_calls_in_progress", state=state) == 0


@pytest.mark.livekit_access(state_file=True)
async def test_a_late_join_does_not_recreate_a_closed_room(
        server: Server, call: CallDriver, metrics: MetricsClient, sidecar: Sidecar,
        room_service: api.LiveKitAPI) -> None:
    """The sidecar is down while a user comes and goes and the room closes; livekit-server's
    retries deliver the room's webhooks after it is back. The room is gone from the startup
    listing: the observer must not join it by name, which would create it again. The call is
    counted (the state file says it came after the previous process stopped): started and
    abandoned, no join timeout although its join arrived long after its deadline."""
    sidecar.stop()
    user = await call.user()
    await user.leave()

    async def rooms() -> list[api.Room]:
        return list((await room_service.room.list_rooms(
            api.ListRoomsRequest(names=[call.room]))).rooms)

    await poll_until(rooms, lambda found: not found, "the room closed", timeout=15)
    sidecar.start()
    # A join delivered after its deadline waits a moment for the webhooks behind it (here the
    # user's leave): the abandon is counted once that wait is over.
    done = await metrics.wait_all(
        expect("avatar_monitor_webhooks_total", 1, event="participant_joined"),
        expect("avatar_monitor_webhooks_total", 1, event="room_finished"),
        expect("avatar_calls_abandoned_total", 1), timeout=40)
    assert done.value("avatar_monitor_webhooks_total", event="room_started") == 1
    assert await rooms() == []
    assert done.value("avatar_monitor_observer_rooms") == 0
    assert done.value("avatar_calls_started_total") == 1
    assert done.value("avatar_startup_failures_total", cause="join_timeout") == 0
    for state in ("ringing", "active"):
        assert done.value("avatar_calls_in_progress", state=state) == 0


async def skewed_calls(server: Server, room_name: str, metrics: MetricsClient) -> None:
    """Two calls on a sidecar whose clock is off the server's: the avatar joins one 2 s after
    the user (no startup failure, a 2 s join latency), never the other (a join timeout after
    JOIN_TIMEOUT seconds, by the server's clock)."""
    joins, never = CallDriver(server, room_name), CallDriver(server, room_name + "-never")
    try:
        started = time.time()
        await asyncio.gather(joins.user(), never.user())
        await metrics.wait_all(expect("avatar_calls_in_progress", 2, state="ringing"))
        await asyncio.sleep(2.0 - (time.time() - started))  # the avatar takes 2 s to come
        await joins.avatar(publish=False)
        failed = await metrics.wait_all(
            expect("avatar_startup_failures_total", 1, cause="join_timeout"),
            timeout=JOIN_TIMEOUT + 5)
        waited = time.time() - started
        assert JOIN_TIMEOUT - 0.5 <= waited <= JOIN_TIMEOUT + 1.5, waited
        assert failed.value("avatar_calls_in_progress", state="active") == 1
        assert failed.value("avatar_calls_in_progress", state="ringing") == 0
        assert failed.value("avatar_join_latency_seconds_count") == 1
        assert 1.5 <= failed.sum("avatar_join_latency_seconds") <= 2.5
        assert failed.value("avatar_calls_started_total") == 2
    finally:
        await joins.close()
        await never.close()


@pytest.mark.parametrize("skew", [-60, 60])
async def test_join_deadline_on_the_servers_clock_with_the_sidecar_60s_off(
        request: pytest.FixtureRequest, skew: int, tmp_path, api_keys: tuple[str, str],
        livekit_server_bin, http: aiohttp.ClientSession, room_name: str) -> None:
    """The sidecar runs under faketime, its clock `skew` seconds off livekit-server's. Join
    deadlines follow the server's clock: not 0.5 s after the join (clock ahead of the server's
    timestamps), not 60 s late (behind); the offset gauge shows the skew."""
    proc = Sidecar(tmp_path / "sidecar", *api_keys, prefix=["faketime", "-f", f"{skew:+d}s"],
                   extra_args=["--avatar-join-timeout", str(JOIN_TIMEOUT)])
    server = LiveKitServer(livekit_server_bin, tmp_path / "livekit", *api_keys,
                           webhook_urls=[proc.webhook_url])
    register_log(request, "avatar-monitor", proc.log_path)
    register_log(request, "livekit-server", server.log_path)
    proc.start()
    try:
        server.start()
        try:
            metrics = MetricsClient(http, proc.url)
            await skewed_calls(Server(server.url, *api_keys), room_name, metrics)
            offset = (await metrics.scrape()).value("avatar_monitor_server_clock_offset_seconds")
            assert abs(offset + skew) < 1.5, offset
        finally:
            server.stop()
    finally:
        proc.stop()


@pytest.mark.livekit_access(observer=False)
async def test_readyz_follows_livekit(livekit: LiveKitServer, sidecar: Sidecar,
                                      http: aiohttp.ClientSession) -> None:
    """/readyz is 200 once the startup reconciliation is done, 503 naming RoomService while
    livekit-server is down, 200 again when it is back; /healthz stays 200 throughout."""

    async def get(path: str) -> tuple[int, dict]:
        async with http.get(sidecar.url + path) as resp:
            return resp.status, await resp.json()

    await poll_until(lambda: get("/readyz"), lambda r: r[0] == 200, "ready")
    livekit.stop()
    _, body = await poll_until(lambda: get("/readyz"), lambda r: r[0] == 503, "not ready")
    assert any("RoomService unreachable" in p for p in body["problems"]), body
    assert await get("/healthz") == (200, {"status": "ok"})
    livekit.start()
    await poll_until(lambda: get("/readyz"), lambda r: r[0] == 200, "ready again", timeout=15)
    assert await get("/healthz") == (200, {"status": "ok"})


async def test_a_calls_story_is_the_same_after_a_restart(
        call: CallDriver, room_name: str, metrics: MetricsClient, sidecar: Sidecar,
        verdict: Verdict) -> None:
    """A finished call's verdict, participants and timeline, read before a SIGTERM and after the
    sidecar started again with the same --history file (the call was still lingering in memory
    when it stopped: it is written on the way out)."""
    user, agent, avatar = await active_call(call, metrics)
    await user.leave()
    await metrics.wait_all(expect("avatar_disconnects_total", 1, role="user",
                                  reason="client_initiated"))
    await avatar.leave()
    await agent.leave()
    await metrics.wait_all(expect("avatar_monitor_webhooks_total", 1, event="room_finished"),
                           timeout=30)  # nothing late can change the record any more
    before = await verdict(room_name)
    assert (before["verdict"], before["avatar"]["departure"]) == ("healthy", "user_hangup")
    restart(sidecar)
    assert sidecar.history_path.stat().st_size > 0
    after = await verdict(room_name)
    assert after == before
    assert after["timeline"][0]["event"] == "call_started"
    assert {p["role"] for p in after["participants"]} == {"user", "agent", "avatar"}
