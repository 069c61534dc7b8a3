"""The call rooms the observer benchmark watches: a user and a publishing avatar per room.

    python -m benchmarks.observer_driver   (run by benchmarks/observer_rooms.py)

Reads commands on stdin, one a line, and answers each at once with one JSON line on stdout:
`grow N` starts opening rooms until N are up, `hold` starts no more, `status` tells how many are
open (`names`, which), `quit` disconnects everyone and exits. The server and key pair come from
LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET. In each room a user joins (subscribes to
nothing) and the avatar joins as livekit-plugins-lemonslice does (kind agent,
`lk.publish_on_behalf`) and publishes a tone; with `--video`, a small video track too; with
`--agent-state`, a voice agent joins too and sets its `lk.agent.state` attribute to `speaking`,
as livekit-agents does while the avatar speaks (the observer then takes speech from it and does
not receive the avatar's audio). To keep this process light, one pre-built 20 ms frame is pushed
into one audio source that feeds every avatar's track (each track still has its own Opus
encoder); `--source per-avatar` gives each avatar its own source.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import logging
import math
import os
import sys
from dataclasses import dataclass, field

from livekit import rtc

from benchmarks.commands import Answer, answer_commands
from tests.support.participants import (
    AVATAR_IDENTITY,
    HEIGHT,
    SAMPLE_RATE,
    TONE_HZ,
    WIDTH,
    Server,
    agent_token,
    avatar_token,
    user_token,
)

log = logging.getLogger("benchmarks.observer_driver")

FRAME_MS = 20
VIDEO_FPS = 5
MAX_ERRORS_REPORTED = 5


def tone_frame(frame_ms: int = FRAME_MS) -> rtc.AudioFrame:
    """`frame_ms` of a 400 Hz sine (a whole number of periods, so it repeats seamlessly)."""
    samples = SAMPLE_RATE * frame_ms // 1000
    data = array.array("h", (int(8000 * math.sin(2 * math.pi * TONE_HZ * i / SAMPLE_RATE))
                             for i in range(samples)))
    return rtc.AudioFrame(data.tobytes(), SAMPLE_RATE, 1, samples)


@dataclass
class CallRoom:
    """One room's user and avatar, and the tasks feeding the avatar's media."""

    name: str
    rooms: list[rtc.Room] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for room in self.rooms:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(room.disconnect(), 10)


class Driver:
    """Opens call rooms on one server in the background, a bounded number at a time."""

    def __init__(self, server: Server, concurrency: int, video: bool, shared: bool,
                 agent_state: bool = False) -> None:
        self.server = server
        self.video = video
        self.agent_state = agent_state
        self.calls: list[CallRoom] = []
        self.target = 0  # rooms wanted; lowered by hold() to what is open or opening
        self.opening = 0
        self.errors: list[str] = []
        self._named = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._gate = asyncio.Semaphore(concurrency)
        self._tone = tone_frame()
        self._pixels = bytes((90, 160, 128, 255)) * (WIDTH * HEIGHT)
        self._shared: rtc.AudioSource | None = None
        self._shared_task: asyncio.Task[None] | None = None
        if shared:
            self._shared = rtc.AudioSource(SAMPLE_RATE, 1)
            self._shared_task = asyncio.create_task(self._feed_audio(self._shared))

    def grow(self, target: int) -> None:
        """Start opening rooms until `target` are up (failed ones are counted, not retried)."""
        self.target = max(self.target, target)
        for _ in range(self.target - len(self.calls) - len(self._tasks)):
            name = f"bench-call-{self._named:04d}"
            self._named += 1
            task = asyncio.create_task(self._open(name))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def hold(self) -> None:
        """Start no more rooms; the ones being opened finish."""
        self.target = len(self.calls) + self.opening

    def status(self) -> dict[str, object]:
        return {"rooms": len(self.calls), "opening": self.opening, "pending": len(self._tasks),
                "target": self.target,
                "failed": len(self.errors), "errors": self.errors[:MAX_ERRORS_REPORTED]}

    async def _open(self, name: str) -> None:
        """User, then avatar, then its tracks. No timeout here: cancelling `Room.connect`
        makes livekit-rtc SIGTERM its own process 15 s later (the handshake after the connect
        callback is never finished); the benchmark bounds the whole ramp instead."""
        async with self._gate:
            if len(self.calls) + self.opening >= self.target:
                return  # held
            self.opening += 1
            call = CallRoom(name)
            try:
                await self._join(call, user_token(self.server, name, "user"))
                if self.agent_state:
                    agent = await self._join(call, agent_token(self.server, name, "voice-agent"))
                avatar = await self._join(
                    call, avatar_token(self.server, name, "voice-agent", AVATAR_IDENTITY))
                await self._publish(call, avatar)
                if self.agent_state:  # the agent greets once the avatar is in
                    await agent.local_participant.set_attributes(
                        {"lk.agent.state": "speaking"})
            except Exception as exc:
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                await call.close()
                return
            finally:
                self.opening -= 1
            self.calls.append(call)

    async def _join(self, call: CallRoom, token: str) -> rtc.Room:
        room = rtc.Room()
        call.rooms.append(room)
        await room.connect(self.server.url, token, rtc.RoomOptions(auto_subscribe=False))
        return room

    async def _publish(self, call: CallRoom, avatar: rtc.Room) -> None:
        local = avatar.local_participant
        audio_source = self._shared
        if audio_source is None:
            audio_source = rtc.AudioSource(SAMPLE_RATE, 1)
            call.tasks.append(asyncio.create_task(self._feed_audio(audio_source)))
        await local.publish_track(
            rtc.LocalAudioTrack.create_audio_track("avatar-audio", audio_source),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        if self.video:
            video_source = rtc.VideoSource(WIDTH, HEIGHT)
            call.tasks.append(asyncio.create_task(self._feed_video(video_source)))
            await local.publish_track(
                rtc.LocalVideoTrack.create_video_track("avatar-video", video_source),
                rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))

    async def _feed_audio(self, source: rtc.AudioSource) -> None:
        frame = self._tone
        while True:  # capture_frame waits while the source's queue is full: real-time pacing
            await source.capture_frame(frame)

    async def _feed_video(self, source: rtc.VideoSource) -> None:
        frame = rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, self._pixels)
        while True:
            source.capture_frame(frame)
            await asyncio.sleep(1 / VIDEO_FPS)

    async def close(self) -> None:
        self.target = 0
        while self._tasks:  # rooms being opened: let them finish (no cancelled connect)
            await asyncio.wait(set(self._tasks))
        calls, self.calls = self.calls, []
        for start in range(0, len(calls), 20):  # a few at a time: a burst of leaves is costly
            await asyncio.gather(*(call.close() for call in calls[start:start + 20]))
        if self._shared_task is not None:
            self._shared_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._shared_task


async def serve(driver: Driver) -> None:
    """Answer commands until `quit` or the end of input: `grow N`, `hold`, `status` (each
    answered at once with the status), `names` (the open rooms' names, in one answer)."""
    async def grow(args: list[str]) -> Answer | None:
        if len(args) != 1 or not args[0].isdigit():
            return {"error": f"grow takes a number of rooms, not {' '.join(args)!r}"}
        driver.grow(int(args[0]))
        return None

    async def hold(_: list[str]) -> None:
        driver.hold()

    async def names(_: list[str]) -> Answer:
        return {"names": [call.name for call in driver.calls]}

    await answer_commands({"grow": grow, "hold": hold, "names": names}, driver.status,
                          driver.close)


async def amain(args: argparse.Namespace) -> None:
    server = Server(os.environ["LIVEKIT_URL"], os.environ["LIVEKIT_API_KEY"],
                    os.environ["LIVEKIT_API_SECRET"])
    await serve(Driver(server, args.concurrency, args.video, args.source == "shared",
                       args.agent_state))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4,
                        help="rooms being opened at once (default %(default)s)")
    parser.add_argument("--video", action="store_true", help="avatars publish video too")
    parser.add_argument("--agent-state", action="store_true",
                        help="a voice agent per room publishes lk.agent.state=speaking")
    parser.add_argument("--source", choices=("shared", "per-avatar"), default="shared",
                        help="one audio source feeding every avatar's track, or one each "
                             "(default %(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
