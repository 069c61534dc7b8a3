"""Drive one avatar call in one room: user, voice agent and avatar join and leave on cue."""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.participants import (
    AVATAR_IDENTITY,
    AvatarMedia,
    Participant,
    Server,
    agent_token,
    avatar_token,
    join,
    user_token,
)


class CallDriver:
    """Participants of one room; whoever is still connected is disconnected by close()."""

    def __init__(self, server: Server, room: str, subscribe: bool = True) -> None:
        self.server = server
        self.room = room
        self.subscribe = subscribe  # False: nobody receives media (saves CPU in the demo)
        self.participants: list[Participant] = []
        self.media: list[AvatarMedia] = []

    async def user(self, identity: str = "user") -> Participant:
        token = user_token(self.server, self.room, identity)
        return self._track(await join(self.server, token, identity, self.subscribe))

    async def agent(self, identity: str = "voice-agent") -> Participant:
        token = agent_token(self.server, self.room, identity)
        return self._track(await join(self.server, token, identity, self.subscribe))

    async def avatar(self, agent_identity: str = "voice-agent", identity: str = AVATAR_IDENTITY,
                     publish: bool = True) -> tuple[Participant, AvatarMedia | None]:
        """The avatar joins; with `publish` it then publishes its audio and video tracks."""
        token = avatar_token(self.server, self.room, agent_identity, identity)
        avatar = self._track(await join(self.server, token, identity, self.subscribe))
        if not publish:
            return avatar, None
        media = AvatarMedia()
        self.media.append(media)
        await media.publish(avatar)
        return avatar, media

    def _track(self, participant: Participant) -> Participant:
        self.participants.append(participant)
        return participant

    async def close(self) -> None:
        for media in self.media:
            await media.stop()
        for participant in self.participants:
            if participant.disconnected.done():
                continue  # the server already sent it away
            with contextlib.suppress(Exception):
                await asyncio.wait_for(participant.room.disconnect(), 10)
