"""The harness itself: media really flows through the real server inside the namespace."""

from __future__ import annotations

import asyncio
import socket

import pytest
from livekit import rtc

from tests.support.netns import VETH, VETH_PEER, current_namespace
from tests.support.participants import AVATAR_IDENTITY, hear_tone
from tests.support.scenario import CallDriver

pytestmark = pytest.mark.e2e


def test_runs_in_private_namespace(private_network_namespace: str) -> None:
    """Only loopback and the namespace's own veth pair: no route to any other address."""
    assert current_namespace() == private_network_namespace
    assert sorted(name for _, name in socket.if_nameindex()) == sorted(["lo", VETH, VETH_PEER])


async def test_avatar_media_reaches_user_and_avatar_is_active_speaker(call: CallDriver) -> None:
    user = await call.user()
    speaking: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_speakers(speakers: list[rtc.Participant]) -> None:
        if any(p.identity == AVATAR_IDENTITY for p in speakers) and not speaking.done():
            speaking.set_result(None)

    user.room.on("active_speakers_changed", on_speakers)
    await call.agent()
    await call.avatar()

    audio = await asyncio.wait_for(user.track_from(AVATAR_IDENTITY, "audio"), 15)
    video = await asyncio.wait_for(user.track_from(AVATAR_IDENTITY, "video"), 15)
    assert video.kind == rtc.TrackKind.KIND_VIDEO
    assert await hear_tone(audio) >= 1000
    await asyncio.wait_for(speaking, 15)
