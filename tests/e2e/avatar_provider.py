"""A video-avatar provider on 127.0.0.1: the service an avatar plugin's `AvatarSession` calls.

`POST /v1/sessions {"livekit_url", "livekit_token"}` starts an avatar that joins the room with
the plugin's token and runs livekit-agents' `AvatarRunner`: `DataStreamAudioReceiver` takes the
agent's speech, `ToneVideoGenerator` turns it into video and audio, and both are published. Like
a hosted avatar, it leaves when the agent it speaks for leaves, and after `idle_timeout` seconds
without speech. Like LemonSlice's, it says `{"type": "bot_ready"}` on data topic `lemonslice`
once its video runs, and `{"type": "idle_timeout"}` before it leaves on idle. With `joins=False`
it accepts sessions and never joins (an outage).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import jwt
from aiohttp import web
from livekit import rtc
from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    DataStreamAudioReceiver,
    VideoGenerator,
)

from tests.support.ports import free_port

log = logging.getLogger("tests.e2e.avatar_provider")
WIDTH, HEIGHT, FPS = 160, 120, 10
SAMPLE_RATE = 24_000
AVATAR_TOPIC = "lemonslice"  # what the avatar itself says, as LemonSlice's avatar does


class ToneVideoGenerator(VideoGenerator):
    """Video frames at FPS while idle; while speech is queued, each audio frame with a frame
    of video whose colour follows the sound."""

    def __init__(self) -> None:
        self._audio: asyncio.Queue[rtc.AudioFrame | AudioSegmentEnd] = asyncio.Queue()
        self.spoke = asyncio.Event()  # set as each audio frame plays: the idle timer's reset
        self.running = asyncio.Event()  # set once the first frame of video is out

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        await self._audio.put(frame)

    def clear_buffer(self) -> None:
        while not self._audio.empty():
            self._audio.get_nowait()

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        while True:
            try:  # idle: a frame per 1/FPS; speech: as fast as the synchronizer takes it
                item = await asyncio.wait_for(self._audio.get(), 1 / FPS)
            except TimeoutError:
                yield _frame(0)
                self.running.set()
                continue
            self.spoke.set()
            if isinstance(item, AudioSegmentEnd):
                yield item
                continue
            yield _frame(max(item.data, default=0) // 128)
            yield item


def _frame(level: int) -> rtc.VideoFrame:
    pixel = bytes((min(255, 40 + level), 90, 160, 255))
    return rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, pixel * (WIDTH * HEIGHT))


def speaks_for(token: str) -> str | None:
    """The agent identity that the plugin's token names in `lk.publish_on_behalf`."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return (claims.get("attributes") or {}).get(ATTRIBUTE_PUBLISH_ON_BEHALF)


class HostedAvatar:
    """One avatar in one room, until its agent leaves, it idles out, or it is sent away."""

    def __init__(self, url: str, token: str, idle_timeout: float) -> None:
        self.url, self.token, self.idle_timeout = url, token, idle_timeout
        self.room = rtc.Room()
        self.left: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.agent_left: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run(self) -> None:
        self.room.on("disconnected", self._on_disconnected)
        agent = speaks_for(self.token)
        await self.room.connect(self.url, self.token)
        self.room.on("participant_disconnected", lambda p: self._agent_left(p, agent))
        video = ToneVideoGenerator()
        runner = AvatarRunner(
            self.room, audio_recv=DataStreamAudioReceiver(self.room, sender_identity=agent),
            video_gen=video, options=AvatarOptions(
                video_width=WIDTH, video_height=HEIGHT, video_fps=FPS,
                audio_sample_rate=SAMPLE_RATE, audio_channels=1))
        try:
            await runner.start()
            if await self._until(video.running):
                await self._say({"type": "bot_ready"})
            if await self._until_idle_or_gone(video):
                await self._say({"type": "idle_timeout"})
        finally:  # leave first: closing the runner takes a while
            if self.room.isconnected():
                await self.room.disconnect()
            await runner.aclose()

    async def _until(self, event: asyncio.Event) -> bool:
        """Wait for `event`; False if the avatar or its agent is gone first."""
        waiting = asyncio.ensure_future(event.wait())
        await asyncio.wait({waiting, self.left, self.agent_left},
                           return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        return event.is_set() and not (self.left.done() or self.agent_left.done())

    async def _say(self, message: dict[str, str]) -> None:
        await self.room.local_participant.publish_data(json.dumps(message), reliable=True,
                                                       topic=AVATAR_TOPIC)

    async def _until_idle_or_gone(self, video: ToneVideoGenerator) -> bool:
        """True when the avatar idled out, False when it or its agent left."""
        while not (self.left.done() or self.agent_left.done()):
            video.spoke.clear()
            spoke = asyncio.ensure_future(video.spoke.wait())
            done, _ = await asyncio.wait({spoke, self.left, self.agent_left},
                                         timeout=self.idle_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            spoke.cancel()
            if not done:
                log.info("avatar idle for %.1f s: leaving", self.idle_timeout)
                return True
        return False

    def _agent_left(self, participant: rtc.RemoteParticipant, agent: str | None) -> None:
        if participant.identity == agent and not self.agent_left.done():
            self.agent_left.set_result(None)

    def _on_disconnected(self, reason: int) -> None:
        if not self.left.done():
            self.left.set_result(reason)


class AvatarProvider:
    """The provider's HTTP API and the avatars it runs."""

    def __init__(self, *, joins: bool = True, idle_timeout: float = 60.0) -> None:
        self.joins = joins
        self.idle_timeout = idle_timeout
        self.port = free_port()
        self.sessions = 0
        self.avatars: list[HostedAvatar] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.post("/v1/sessions", self._start_session)])
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _start_session(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.sessions += 1
        if self.joins:
            avatar = HostedAvatar(body["livekit_url"], body["livekit_token"], self.idle_timeout)
            self.avatars.append(avatar)
            task = asyncio.create_task(avatar.run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"session_id": f"session-{self.sessions}"})

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
