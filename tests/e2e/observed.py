"""What e2e tests of the room observer share: an avatar's voice and a call the observer sees
become active."""

from __future__ import annotations

import asyncio
import contextlib

from livekit import rtc

from tests.support.metrics import MetricsClient, expect
from tests.support.participants import SAMPLE_RATE, Participant, _tone_frame
from tests.support.scenario import CallDriver


class Voice:
    """The avatar's audio: a tone while speaking, digital silence otherwise."""

    def __init__(self) -> None:
        # A short queue, so that silence starts within 50 ms of `speaking = False`.
        self.source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=50)
        self.speaking = True
        self._tone = _tone_frame()
        self._silence = rtc.AudioFrame(bytes(len(self._tone.data) * 2), SAMPLE_RATE, 1,
                                       self._tone.samples_per_channel)
        self._task: asyncio.Task[None] | None = None

    async def publish(self, avatar: Participant) -> None:
        track = rtc.LocalAudioTrack.create_audio_track("avatar-voice", self.source)
        self._task = asyncio.create_task(self._feed())
        await avatar.room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))

    async def _feed(self) -> None:
        while True:
            await self.source.capture_frame(self._tone if self.speaking else self._silence)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def observed_active_call(call: CallDriver, metrics: MetricsClient
                               ) -> tuple[Participant, Participant, Participant]:
    """User and agent join, the observer is in the room, then the avatar joins (no media)."""
    user = await call.user()
    agent = await call.agent()
    await metrics.wait_all(expect("avatar_monitor_observer_rooms", 1),
                           expect("avatar_calls_in_progress", 1, state="ringing"))
    avatar, _ = await call.avatar(publish=False)
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"))
    return user, agent, avatar
