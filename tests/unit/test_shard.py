"""`--shard I/N`: a replica counts only its own rooms' calls; another shard's webhook is verified,
counted as foreign and dropped; lookups and reports for another shard's room name the owner."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from avatar_monitor_agent import Reporter

from monitor.shard import Shard, in_shard
from tests.support.served import StartMonitor
from tests.support.webhooks import KEY, SECRET, Room, access_token, agent_token, avatar, user

SHARD_URL = "http://avatar-monitor-{shard}.avatar-monitor:9465"


def rooms_of(shard: Shard, count: int) -> list[str]:
    """Room names that `shard` owns."""
    names = (f"room-{i}" for i in range(10_000))
    return [name for name in names if shard.owns(name)][:count]


def test_every_room_has_exactly_one_owner() -> None:
    names = [f"call-{i}" for i in range(3000)]
    for count in (1, 2, 3):
        owners = [[s for s in range(count) if in_shard(name, s, count)] for name in names]
        assert all(len(found) == 1 for found in owners)
        if count > 1:  # and the rooms are split about evenly
            shares = [sum(found == [s] for found in owners) for s in range(count)]
            assert min(shares) > 0.8 * len(names) / count, shares
    assert Shard(1, 3).owner("call-7") == next(s for s in range(3) if in_shard("call-7", s, 3))


async def test_another_shards_webhooks_are_verified_and_dropped(
        start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(shard=(0, 2))
    mine, theirs = rooms_of(Shard(0, 2), 1)[0], rooms_of(Shard(1, 2), 1)[0]
    t = time.time() - 5
    for name in (mine, theirs):
        room = Room(name, created_at=t)
        for event in (room.started(), room.joined(user(t)), room.joined(avatar(t + 1))):
            status, body = await sidecar.send(event)
            assert status == 200, body
            if name == theirs:
                assert body == {"status": "foreign_shard"}
    assert await sidecar.value("avatar_calls_started_total") == 1
    assert await sidecar.value("avatar_monitor_webhooks_foreign_total") == 3
    assert await sidecar.value("avatar_monitor_webhooks_total", event="participant_joined") == 2
    for reason in ("unauthorized", "malformed", "duplicate"):
        assert await sidecar.value("avatar_monitor_webhooks_rejected_total",
                                   reason=reason) == 0
    # A forged webhook for another shard's room is still refused: verification comes first.
    status, _ = await sidecar.send(Room(theirs).started(), secret="x" * 40)
    assert status == 401


async def test_a_lookup_of_another_shards_room_names_its_owner(
        start_monitor: StartMonitor) -> None:
    theirs = rooms_of(Shard(2, 3), 1)[0]
    plain = await start_monitor(shard=(0, 3))
    headers = {"Authorization": f"Bearer {access_token()}"}
    async with plain.http.get(f"{plain.url}/v1/calls/{theirs}", headers=headers) as resp:
        assert resp.status == 404
        assert (await resp.json())["shard"] == 2
    linked = await start_monitor(shard=(0, 3), shard_url=SHARD_URL)
    async with linked.http.get(f"{linked.url}/v1/calls/{theirs}?sid=RM_x", headers=headers,
                               allow_redirects=False) as resp:
        assert resp.status == 307
        assert resp.headers["Location"] == \
            f"http://avatar-monitor-2.avatar-monitor:9465/v1/calls/{theirs}?sid=RM_x"


async def test_a_report_for_another_shards_room_is_sent_to_its_owner(
        start_monitor: StartMonitor) -> None:
    theirs = rooms_of(Shard(1, 2), 1)[0]
    sidecar = await start_monitor(shard=(0, 2), shard_url=SHARD_URL)
    doc = {"v": 1, "type": "pipeline_error", "component": "tts", "recoverable": False,
           "room": theirs}
    async with sidecar.http.post(
            f"{sidecar.url}/v1/events", data=json.dumps(doc).encode(),
            headers={"Authorization": f"Bearer {agent_token(theirs)}"}) as resp:
        assert resp.status == 421
        answer = await resp.json()
    assert answer["error"] == "foreign_shard"
    assert (answer["shard"], answer["url"]) == (1, "http://avatar-monitor-1.avatar-monitor:9465")
    assert await sidecar.value("avatar_monitor_reported_events_rejected_total",
                               reason="foreign_shard") == 1


async def test_the_agents_reporter_follows_the_owner_once(start_monitor: StartMonitor) -> None:
    """Two replicas on loopback: the agent's Reporter posts to the wrong one, is sent to the
    owner, and the report is applied there, once."""
    call = Room(rooms_of(Shard(1, 2), 1)[0])
    owner = await start_monitor(shard=(1, 2))
    wrong = await start_monitor(shard=(0, 2), shard_url=owner.url)  # one owner: no {shard}
    assert (await owner.send(call.joined(user(time.time() - 1))))[0] == 200
    room = SimpleNamespace(name=call.name, sid=call.sid,
                           local_participant=SimpleNamespace(identity="agent-1"))
    reporter = Reporter(room, url=wrong.url, api_key=KEY, api_secret=SECRET,  # type: ignore[arg-type]
                        data_channel=False)
    reporter.report("pipeline_error", component="tts", recoverable=True)
    await reporter.aclose()
    assert (reporter.sent, reporter.failed) == (1, 0)
    assert await owner.value("avatar_pipeline_errors_total", component="tts",
                             recoverable="true") == 1
    assert await wrong.value("avatar_pipeline_errors_total", component="tts",
                             recoverable="true") == 0
    assert await wrong.value("avatar_monitor_reported_events_rejected_total",
                             reason="foreign_shard") == 1
