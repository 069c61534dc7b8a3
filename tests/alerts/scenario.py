"""A day in the life of the sidecar, as signed LiveKit webhooks: every dashboard panel gets data.

The sidecar runs with `--avatar-join-timeout 1` and `--max-calls 2`: each new room evicts the
oldest tracked one, so evictions happen too, and each call finishes before the next begins.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from livekit.protocol import models, webhook

from tests.support.scrape import value
from tests.support.webhooks import KEY, Room, agent, agent_token, avatar, sign, signed, user

R = models.DisconnectReason
AUDIO, VIDEO = models.TrackType.AUDIO, models.TrackType.VIDEO
SIDECAR_FLAGS = ("--avatar-join-timeout", "1", "--max-calls", "2", "--max-body-bytes", "4096")


class Driver:
    """Posts webhooks to a sidecar and reads its /metrics."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        async with self.http.post(self.base + "/webhook", data=body, headers=headers) as resp:
            return resp.status

    async def send(self, *events: webhook.WebhookEvent) -> None:
        for event in events:
            status = await self.post(*signed(event))
            assert status == 200, f"{event.event} got HTTP {status}"

    async def metric(self, name: str, **labels: str) -> float | None:
        async with self.http.get(self.base + "/metrics") as resp:
            return value(await resp.text(), name, **labels)

    async def wait_metric(self, name: str, expected: float, timeout: float = 10, **labels: str
                          ) -> None:
        deadline = time.monotonic() + timeout
        while (current := await self.metric(name, **labels)) != expected:
            assert time.monotonic() < deadline, f"{name}{labels} = {current}, not {expected}"
            await asyncio.sleep(0.1)


async def startup_failure(d: Driver) -> None:
    """A user calls, no avatar ever joins: a join_timeout startup failure after 1 s; then the
    user gives up and the room closes."""
    before = await d.metric("avatar_startup_failures_total", cause="join_timeout") or 0.0
    room = Room()
    caller = user(time.time())
    await d.send(room.started(), room.joined(caller))
    await d.wait_metric("avatar_startup_failures_total", before + 1, cause="join_timeout")
    await d.send(room.left(caller, time.time()), room.finished(time.time()))


async def good_call(d: Driver, ago: float = 60.0) -> None:
    """A call that went well, `ago` seconds ago by server time: the avatar (dispatched with the
    room) joined before the user, the user hung up after 40 s."""
    t = time.time() - ago
    room = Room(created_at=t)
    face, bot, caller = avatar(t + 0.5), agent(t + 0.6), user(t + 1)
    await d.send(room.started(), room.joined(face), room.joined(bot), room.joined(caller),
                 room.track(face, AUDIO, t + 1.2), room.track(face, VIDEO, t + 1.4),
                 room.left(caller, t + 41), room.left(bot, t + 42), room.left(face, t + 42),
                 room.finished(t + 43))


CUT_AT = 900.0  # a limit nobody configured: 15 min (--session-timeout stays 30 min)
CUT_CALLS = 4


async def cut_calls(d: Driver) -> None:
    """Four calls of the last half hour whose avatar dropped (SIGNAL_CLOSE) 15 min into the
    session while the user stayed, within 2 s of each other."""
    for i in range(CUT_CALLS):
        t = time.time() - CUT_AT - 60
        room = Room(created_at=t)
        face, caller = avatar(t + 0.5), user(t + 1)
        gone = t + 0.5 + CUT_AT + i * 0.5
        await d.send(room.started(), room.joined(face), room.joined(caller),
                     room.track(face, AUDIO, t + 1.2), room.track(face, VIDEO, t + 1.4),
                     room.left(face, gone, R.SIGNAL_CLOSE), room.left(caller, gone + 5),
                     room.finished(gone + 6))
    await d.wait_metric("avatar_repeated_session_length_calls", CUT_CALLS)


RARE_CALLS = 60  # good calls around one startup failure: 1 in 61 is a 3.3x burn of 0.5 %
BURST = 6  # startup failures in a row: with the rare one, 7 in about 70 calls, a 20x burn


async def good_calls(d: Driver, count: int = RARE_CALLS) -> None:
    """Calls that go well, before a rare failure."""
    for _ in range(count):
        await good_call(d)
    await d.wait_metric("avatar_calls_started_total", count)


async def padding_rooms(d: Driver) -> None:
    """Rooms nobody joins; with --max-calls 2 the third evicts the first."""
    rooms = [Room() for _ in range(3)]
    await d.send(*(r.started() for r in rooms))
    await d.wait_metric("avatar_monitor_calls_evicted_total", 1)


async def answered_call(d: Driver, end: bool, avatar_reason: int = R.CLIENT_INITIATED) -> Room:
    """User, agent and avatar join, the avatar publishes audio and video; then (if `end`) the
    user hangs up, or the avatar drops with `avatar_reason` while the user stays."""
    t = time.time()
    room = Room(created_at=t - 0.5)
    caller, bot, face = user(t), agent(t + 0.2), avatar(t + 0.8)
    await d.send(room.started(), room.joined(caller), room.joined(bot), room.joined(face),
                 room.track(face, AUDIO, t + 1.0), room.track(face, VIDEO, t + 1.3))
    if not end:
        return room
    if avatar_reason == R.CLIENT_INITIATED:
        await d.send(room.left(caller, t + 40), room.left(bot, t + 41), room.left(face, t + 41))
    else:
        await d.send(room.left(face, t + 25, avatar_reason), room.left(bot, t + 26),
                     room.left(caller, t + 27))
    await d.send(room.finished(t + 50))
    return room


async def abandoned_call(d: Driver) -> None:
    """The user hangs up while still ringing."""
    t = time.time()
    room = Room()
    caller = user(t)
    await d.send(room.started(), room.joined(caller), room.left(caller, t + 0.3))


async def bad_webhooks(d: Driver) -> None:
    """One of each rejection: forged signature, garbage body, oversized body, a retry."""
    room = Room()
    event = room.started()
    body, headers = signed(event)
    assert await d.post(body, {**headers, "Authorization": sign(body, KEY, "x" * 40)}) == 401
    junk = b"{not json"
    assert await d.post(junk, {**headers, "Authorization": sign(junk)}) == 400
    big = b"{" + b" " * 5000 + b"}"
    assert await d.post(big, {**headers, "Authorization": sign(big)}) == 413
    await d.send(event)
    assert await d.post(body, headers) == 200  # the retry is counted as a duplicate


async def agent_reports(d: Driver, room: Room) -> None:
    """The voice agent of a live call reports a close and a turn's latencies over
    POST /v1/events, with its agent token."""
    token = agent_token(room.name)
    for doc in ({"type": "session_closed", "reason": "error"},
                {"type": "agent_latency", "llm_ttft": 0.4, "tts_ttfb": 0.2, "end_of_turn": 0.5,
                 "e2e": 1.4}):
        body = {"v": 1, "room": room.name, "room_sid": room.sid, **doc}
        async with d.http.post(d.base + "/v1/events", json=body,
                               headers={"Authorization": f"Bearer {token}"}) as resp:
            assert (resp.status, await resp.json()) == (202, {"status": "applied"})


async def run(d: Driver) -> None:
    """Everything, in an order where no live call is evicted before its outcome is counted; a
    burst of startup failures among few calls."""
    await padding_rooms(d)
    for _ in range(BURST):
        await startup_failure(d)
    await answered_call(d, end=True)
    await answered_call(d, end=True, avatar_reason=R.SIGNAL_CLOSE)
    await abandoned_call(d)
    await cut_calls(d)
    await bad_webhooks(d)
    live = await answered_call(d, end=False)  # still active while Prometheus is queried
    await agent_reports(d, live)
