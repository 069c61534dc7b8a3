"""One room's call driven by signed webhooks on the server clock (and observer or voice-agent
signals), its verdict read back through GET /v1/calls/{room}; and the scenarios several test
modules play."""

from __future__ import annotations

import time

from livekit.protocol import models

from monitor.reports.signals import AvatarReady, ReportedEvent
from tests.support.served import RunningMonitor
from tests.support.webhooks import Room, access_token, avatar, user

R = models.DisconnectReason
AUDIO, VIDEO = models.TrackType.AUDIO, models.TrackType.VIDEO


async def get(sidecar: RunningMonitor, path: str, auth: str | None = None
              ) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {access_token()}" if auth is None else auth}
    async with sidecar.http.get(sidecar.url + path, headers=headers) as resp:
        return resp.status, await resp.json()


class Call:
    """One room's call on the server clock: `t` is when the first user joined."""

    def __init__(self, sidecar: RunningMonitor, t: float) -> None:
        self.sidecar, self.t = sidecar, t
        self.room = Room(created_at=t - 1)
        self.caller = user(t)
        self.face = avatar(t + 2)

    async def send(self, *events) -> None:  # type: ignore[no-untyped-def]
        for event in events:
            status, _ = await self.sidecar.send(event)
            assert status == 200

    async def start(self, avatar_after: float | None = 2, tracks: tuple[int, ...] = (AUDIO, VIDEO)
                    ) -> None:
        await self.send(self.room.started(), self.room.joined(self.caller))
        if avatar_after is None:
            return
        self.face = avatar(self.t + avatar_after)
        await self.send(self.room.joined(self.face))
        for kind in tracks:
            await self.send(self.room.track(self.face, kind, self.t + avatar_after + 0.5))

    async def avatar_leaves(self, at: float, reason: int = R.CLIENT_INITIATED) -> None:
        await self.send(self.room.left(self.face, at, reason))

    async def user_hangs_up(self, at: float) -> None:
        await self.send(self.room.left(self.caller, at))
        await self.avatar_leaves(at + 0.5, R.ROOM_CLOSED)

    def report(self, signal: object, at: float) -> None:
        self.sidecar.monitor.bridge.accept("http", ReportedEvent(signal, None, at),  # type: ignore[arg-type]
                                           time.time(), self.room.name)

    def observe(self, speech: tuple[float, float] | None, ready: float | None = 1.0) -> None:
        """The room observer watched from the avatar's join; it spoke in `speech`, and said
        bot_ready `ready` seconds after joining (None: never)."""
        tracker = self.sidecar.monitor.tracker
        joined = self.face.joined_at_ms / 1000
        tracker.observing(self.room.sid, joined)
        if ready is not None:
            self.report(AvatarReady(), joined + ready)
        if speech is not None:
            tracker.avatar_speaking(self.room.sid, True, speech[0])
            tracker.avatar_speaking(self.room.sid, False, speech[1])

    async def verdict(self) -> dict:
        status, body = await get(self.sidecar, f"/v1/calls/{self.room.name}")
        assert status == 200, body
        return body


async def network(c: Call) -> None:
    await c.start()
    await c.avatar_leaves(c.t + 50, R.CONNECTION_TIMEOUT)


async def abandoned(c: Call) -> None:
    await c.start(avatar_after=None)
    await c.send(c.room.left(c.caller, c.t + 3))


async def healthy(c: Call) -> None:
    await c.start()
    c.observe(speech=(c.t + 3, c.t + 30))
    await c.user_hangs_up(c.t + 40)


async def in_progress(c: Call) -> None:
    c.t = time.time() - 4
    c.room, c.caller = Room(created_at=c.t - 1), user(c.t)
    await c.start()
