"""N replicas, `--shard 0/N` to `--shard N-1/N` (two, then three), all sent every webhook by the
real livekit-server (its `webhook.urls` lists each): every call is counted exactly once over the
fleet, by the replica that owns its room."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from monitor.shard import Shard
from tests.e2e.harness import LOGS
from tests.support.livekit_server import LiveKitServer
from tests.support.metrics import MetricsClient, Snapshot, poll_until
from tests.support.participants import Server
from tests.support.scenario import CallDriver
from tests.support.sidecar import Sidecar
from tests.support.webhooks import access_token

pytestmark = pytest.mark.e2e

CALLS = 20
AT_ONCE = 4  # calls in flight together


@pytest.fixture(params=[2, 3], ids=["two-shards", "three-shards"])
def shards(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def replicas(request: pytest.FixtureRequest, tmp_path: Path, api_keys: tuple[str, str],
             shards: int) -> Iterator[list[Sidecar]]:
    started = []
    for index in range(shards):
        replica = Sidecar(tmp_path / f"replica-{index}", *api_keys,
                          extra_args=["--shard", f"{index}/{shards}"])
        request.node.stash.setdefault(LOGS, []).append((f"replica {index}", replica.log_path))
        replica.start()
        started.append(replica)
    yield started
    for replica in started:
        replica.stop()


@pytest.fixture
def fleet_server(request: pytest.FixtureRequest, tmp_path: Path, livekit_server_bin: Path,
                 api_keys: tuple[str, str], replicas: list[Sidecar]) -> Iterator[Server]:
    server = LiveKitServer(livekit_server_bin, tmp_path / "livekit", *api_keys,
                           webhook_urls=[r.webhook_url for r in replicas])
    request.node.stash.setdefault(LOGS, []).append(("livekit-server", server.log_path))
    server.start()
    yield Server(server.url, server.api_key, server.api_secret)
    server.stop()


async def one_call(server: Server, room: str, active: Callable[[], Awaitable[bool]]) -> None:
    """User, agent and avatar join; once the call is active, the user hangs up; agent and
    avatar leave."""
    call = CallDriver(server, room, subscribe=False)
    try:
        user = await call.user()
        agent = await call.agent()
        avatar, _ = await call.avatar(publish=False)
        await poll_until(active, bool, f"the call in {room} active on its replica", 10)
        await user.leave()
        await agent.leave()
        await avatar.leave()
    finally:
        await call.close()


async def test_every_call_is_counted_once_over_the_fleet(
        fleet_server: Server, replicas: list[Sidecar], http: aiohttp.ClientSession,
        api_keys: tuple[str, str], shards: int) -> None:
    rooms = [f"shard-call-{i}" for i in range(CALLS)]
    owned = [sum(Shard(i, shards).owns(room) for room in rooms) for i in range(shards)]
    assert all(owned), owned  # rooms of every shard
    gate = asyncio.Semaphore(AT_ONCE)
    headers = {"Authorization": f"Bearer {access_token(None, *api_keys)}"}

    def active_on_owner(room: str) -> Callable[[], Awaitable[bool]]:
        url = f"{replicas[Shard(0, shards).owner(room)].url}/v1/calls/{room}"

        async def probe() -> bool:
            async with http.get(url, headers=headers) as resp:
                return resp.status == 200 and (await resp.json())["state"] == "active"

        return probe

    async def limited(room: str) -> None:
        async with gate:
            await one_call(fleet_server, room, active_on_owner(room))

    await asyncio.gather(*(limited(room) for room in rooms))
    clients = [MetricsClient(http, r.url) for r in replicas]

    async def snapshots() -> list[Snapshot]:
        return [await c.scrape() for c in clients]

    def settled(seen: list[Snapshot]) -> bool:
        return sum(s.value("avatar_departures_total", cause="user_hangup") for s in seen) \
            == CALLS and all(s.value("avatar_calls_in_progress", state="active") == 0
                             for s in seen)

    seen = await poll_until(snapshots, settled, "every call ended on the fleet", 30)
    for index, snapshot in enumerate(seen):
        assert snapshot.value("avatar_calls_started_total") == owned[index]
        assert snapshot.count("avatar_join_latency_seconds") == owned[index]
        assert snapshot.value("avatar_departures_total", cause="user_hangup") == owned[index]
        assert snapshot.value("avatar_disconnects_total", role="user",
                              reason="client_initiated") == owned[index]
        # the other shard's webhooks: verified, dropped, never a rejection
        assert snapshot.value("avatar_monitor_webhooks_foreign_total") > 0
        for reason in ("unauthorized", "malformed", "duplicate"):
            assert snapshot.value("avatar_monitor_webhooks_rejected_total", reason=reason) == 0
    assert sum(s.value("avatar_calls_started_total") for s in seen) == CALLS
    # Each room's calls are on its owner's list; the other replica names the owner.
    room = rooms[0]
    owner = Shard(0, shards).owner(room)
    async with http.get(f"{replicas[owner].url}/v1/calls/{room}", headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["verdict"] == "healthy"
    other = (owner + 1) % shards
    async with http.get(f"{replicas[other].url}/v1/calls/{room}", headers=headers) as resp:
        assert resp.status == 404
        assert (await resp.json())["shard"] == owner
