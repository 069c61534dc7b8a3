"""The call rooms the observer benchmark watches: a user and a publishing avatar per room.

    python -m benchmarks.observer_driver   (run by benchmarks/observer_rooms.py)

Reads commands on stdin, one a line, and answers each with one JSON line on stdout:
`grow N` adds rooms until N are up, `quit` disconnects everyone and exits. The server and key
pair come from LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET. In each room a user joins
(subscribes to nothing) and the avatar joins as livekit-plugins-lemonslice does (kind agent,
`lk.publish_on_behalf`) and publishes a tone; with `--video`, a small video track too. To keep
this process light, every avatar pushes the same pre-built 20 ms frame.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field

from livekit import rtc

from tests.e2e.participants import (
    AVATAR_IDENTITY,
    HEIGHT,
    SAMPLE_RATE,
    TONE_HZ,
    WIDTH,
    Server,
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
    """Opens call rooms on one server, a bounded number at a time."""

    def __init__(self, server: Server, concurrency: int, video: bool, shared: bool) -> None:
        self.server = server
        self.video = video
        self.calls: list[CallRoom] = []
        self._gate = asyncio.Semaphore(concurrency)
        self._tone = tone_frame()
        self._pixels = bytes((90, 160, 128, 255)) * (WIDTH * HEIGHT)
        self._shared: rtc.AudioSource | None = None
        self._shared_task: asyncio.Task[None] | None = None
        if shared:
            self._shared = rtc.AudioSource(SAMPLE_RATE, 1)
            self._shared_task = asyncio.create_task(self._feed_audio(self._shared))

    async def grow(self, target: int) -> dict[str, object]:
        """Open rooms until `target` are up; failed rooms are closed and counted."""
        start = time.monotonic()
        first = len(self.calls)
        names = [f"bench-call-{i:04d}" for i in range(first, max(target, first))]
        results = await asyncio.gather(*(self._open(name) for name in names),
                                       return_exceptions=True)
        errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
        return {"rooms": len(self.calls), "failed": len(errors),
                "errors": errors[:MAX_ERRORS_REPORTED],
                "seconds": round(time.monotonic() - start, 2)}

    async def _open(self, name: str) -> None:
        """User, then avatar, then its tracks. No timeout here: cancelling `Room.connect`
        makes livekit-rtc SIGTERM its own process 15 s later (the handshake after the connect
        callback is never finished); the benchmark bounds the whole `grow` instead."""
        call = CallRoom(name)
        async with self._gate:
            try:
                await self._join(call, user_token(self.server, name, "user"))
                avatar = await self._join(
                    call, avatar_token(self.server, name, "voice-agent", AVATAR_IDENTITY))
                await self._publish(call, avatar)
            except Exception:
                await call.close()
                raise
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
        calls, self.calls = self.calls, []
        for start in range(0, len(calls), 20):  # a few at a time: a burst of leaves is costly
            await asyncio.gather(*(call.close() for call in calls[start:start + 20]))
        if self._shared_task is not None:
            self._shared_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._shared_task


def _reply(doc: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


async def serve(driver: Driver) -> None:
    """Answer commands from stdin until `quit` or end of input."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not line or line[0] == "quit":
                break
            if line[0] == "grow" and len(line) == 2 and line[1].isdigit():
                _reply(await driver.grow(int(line[1])))
            else:
                _reply({"error": f"unknown command {' '.join(line)!r}"})
    finally:
        await driver.close()
        _reply({"closed": True})


async def amain(args: argparse.Namespace) -> None:
    server = Server(os.environ["LIVEKIT_URL"], os.environ["LIVEKIT_API_KEY"],
                    os.environ["LIVEKIT_API_SECRET"])
    await serve(Driver(server, args.concurrency, args.video, args.source == "shared"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8,
                        help="rooms being opened at once (default %(default)s)")
    parser.add_argument("--video", action="store_true", help="avatars publish video too")
    parser.add_argument("--source", choices=("shared", "per-avatar"), default="shared",
                        help="one audio source feeding every avatar's track, or one each "
                             "(default %(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
