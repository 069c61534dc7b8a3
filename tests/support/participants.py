"""Call participants on livekit-rtc: a user, a voice agent, and an avatar that publishes media.

The avatar's token is minted as livekit-plugins-lemonslice mints it in `AvatarSession.start`:
kind agent, identity `lemonslice-avatar-agent`, attribute `lk.publish_on_behalf` = the voice
agent's identity.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import math
from dataclasses import dataclass, field

from livekit import api, rtc

AVATAR_IDENTITY = "lemonslice-avatar-agent"
ATTRIBUTE_PUBLISH_ON_BEHALF = "lk.publish_on_behalf"
SAMPLE_RATE, TONE_HZ, FRAME_SAMPLES = 48_000, 400, 480
WIDTH, HEIGHT, FPS = 160, 120, 15


@dataclass(frozen=True)
class Server:
    """Where participants connect and the key pair their tokens are signed with."""

    url: str
    api_key: str
    api_secret: str

    def token(self) -> api.AccessToken:
        return api.AccessToken(self.api_key, self.api_secret)


def user_token(server: Server, room: str, identity: str) -> str:
    """A STANDARD participant: the person calling the avatar."""
    return (server.token().with_identity(identity).with_name(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt())


def agent_token(server: Server, room: str, identity: str) -> str:
    """The voice agent (kind agent), as a LiveKit Agents worker joins."""
    return (server.token().with_kind("agent").with_identity(identity).with_name(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room, agent=True,
                                         can_update_own_metadata=True)).to_jwt())


def avatar_token(server: Server, room: str, agent_identity: str,
                 identity: str = AVATAR_IDENTITY) -> str:
    """The avatar, exactly as livekit-plugins-lemonslice mints its token."""
    return (server.token().with_kind("agent").with_identity(identity).with_name(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room))
            .with_attributes({ATTRIBUTE_PUBLISH_ON_BEHALF: agent_identity}).to_jwt())


@dataclass
class Participant:
    """One connected rtc.Room, with futures for the events tests wait on."""

    identity: str
    room: rtc.Room
    disconnected: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())
    subscribed: dict[str, asyncio.Future[rtc.Track]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.room.on("disconnected", self._on_disconnected)
        self.room.on("track_subscribed", self._on_track_subscribed)

    def _on_disconnected(self, reason: int) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(reason)

    def _on_track_subscribed(self, track: rtc.Track, _pub: rtc.RemoteTrackPublication,
                             participant: rtc.RemoteParticipant) -> None:
        future = self.track_from(participant.identity, _kind_name(track.kind))
        if not future.done():
            future.set_result(track)

    def track_from(self, identity: str, kind: str) -> asyncio.Future[rtc.Track]:
        """Resolves with the first `kind` ("audio"/"video") track subscribed from `identity`."""
        key = f"{identity}/{kind}"
        if key not in self.subscribed:
            self.subscribed[key] = asyncio.get_running_loop().create_future()
        return self.subscribed[key]

    async def leave(self) -> None:
        """Disconnect on purpose (reason CLIENT_INITIATED at the server)."""
        await self.room.disconnect()


async def join(server: Server, token: str, identity: str, subscribe: bool = True
               ) -> Participant:
    """Connect a participant; returns once livekit-rtc reports it connected."""
    room = rtc.Room()
    participant = Participant(identity, room)
    await room.connect(server.url, token, rtc.RoomOptions(auto_subscribe=subscribe))
    return participant


def _kind_name(kind: int) -> str:
    return {rtc.TrackKind.KIND_AUDIO: "audio", rtc.TrackKind.KIND_VIDEO: "video"}.get(kind, "?")


def _tone_frame() -> rtc.AudioFrame:
    """10 ms of a 400 Hz sine: a whole number of periods, so it repeats seamlessly."""
    samples = array.array("h", (int(8000 * math.sin(2 * math.pi * TONE_HZ * i / SAMPLE_RATE))
                                for i in range(FRAME_SAMPLES)))
    return rtc.AudioFrame(samples.tobytes(), SAMPLE_RATE, 1, FRAME_SAMPLES)


def _video_frames(count: int = 8) -> list[rtc.VideoFrame]:
    """A few solid RGBA frames of changing colour, cycled as the avatar's video."""
    frames = []
    for i in range(count):
        level = 40 + i * 25
        pixel = bytes((level, 255 - level, 128, 255))
        frames.append(rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA,
                                     pixel * (WIDTH * HEIGHT)))
    return frames


class AvatarMedia:
    """The avatar's published audio (a sine tone) and video (generated frames)."""

    def __init__(self) -> None:
        self.audio_source = rtc.AudioSource(SAMPLE_RATE, 1)
        self.video_source = rtc.VideoSource(WIDTH, HEIGHT)
        self._tasks: list[asyncio.Task[None]] = []
        self._audio_fed = asyncio.Event()  # cleared by pause_audio(): the tone stops
        self._audio_fed.set()

    async def publish(self, participant: Participant) -> tuple[str, str]:
        """Publish audio, then video, and keep feeding both; returns the two track sids."""
        local = participant.room.local_participant
        audio = rtc.LocalAudioTrack.create_audio_track("avatar-audio", self.audio_source)
        video = rtc.LocalVideoTrack.create_video_track("avatar-video", self.video_source)
        self._tasks = [asyncio.create_task(self._feed_audio()),
                       asyncio.create_task(self._feed_video())]
        audio_pub = await local.publish_track(
            audio, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        video_pub = await local.publish_track(
            video, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))
        return audio_pub.sid, video_pub.sid

    async def _feed_audio(self) -> None:
        frame = _tone_frame()
        while True:  # capture_frame waits while the source's queue is full: real-time pacing
            await self._audio_fed.wait()
            await self.audio_source.capture_frame(frame)

    def pause_audio(self, paused: bool = True) -> None:
        """Stop (or resume) feeding the audio: the track stays published and unmuted but
        carries no sound, as when the avatar's pipeline stalls (livekit-rtc then sends a few
        silent packets a second). The tone queued in the source is dropped at once. Pausing
        waits between frames: cancelling a capture_frame half-way breaks the source
        (InvalidState on the next capture)."""
        if paused:
            self._audio_fed.clear()
            self.audio_source.clear_queue()
        else:
            self._audio_fed.set()

    async def _feed_video(self) -> None:
        frames = _video_frames()
        tick = 0
        while True:
            self.video_source.capture_frame(frames[tick % len(frames)])
            tick += 1
            await asyncio.sleep(1 / FPS)

    async def unpublish_audio(self, participant: Participant) -> None:
        """Take the audio track down (livekit-server sends track_unpublished); the tone goes
        on feeding the source for a later republish_audio()."""
        local = participant.room.local_participant
        sid = next(sid for sid, pub in local.track_publications.items()
                   if pub.kind == rtc.TrackKind.KIND_AUDIO)
        await local.unpublish_track(sid)

    async def republish_audio(self, participant: Participant) -> None:
        """Publish a new audio track from the same source."""
        audio = rtc.LocalAudioTrack.create_audio_track("avatar-audio", self.audio_source)
        await participant.room.local_participant.publish_track(
            audio, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))

    def mute_audio(self, participant: Participant, muted: bool = True) -> None:
        """Mute (or unmute) the published audio track: no webhook, only room events."""
        for pub in participant.room.local_participant.track_publications.values():
            if pub.kind == rtc.TrackKind.KIND_AUDIO and pub.track is not None:
                track = pub.track
                assert isinstance(track, rtc.LocalAudioTrack)
                track.mute() if muted else track.unmute()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


async def hear_tone(track: rtc.Track, timeout: float = 10.0, threshold: int = 1000) -> int:
    """Wait for a decoded frame of a subscribed audio track that is not silence; its peak."""
    stream = rtc.AudioStream(track)
    try:
        async with asyncio.timeout(timeout):
            async for event in stream:
                peak = max(abs(s) for s in event.frame.data)
                if peak >= threshold:
                    return peak
    finally:
        await stream.aclose()
    raise AssertionError("audio stream ended before any sound")
