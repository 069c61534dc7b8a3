"""`wait_for_avatar()`: the voice agent waits for its avatar, and says so when it never comes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from livekit import rtc

from avatar_monitor_agent.participants import room_participant
from avatar_monitor_agent.reporter import STARTUP_FAILURE_MESSAGE, Reporter
from avatar_monitor_agent.roles import DEFAULT_AVATAR_IDENTITY, Role, RoleClassifier
from avatar_monitor_agent.schema import AVATAR_JOIN_TIMEOUT

log = logging.getLogger(__name__)


async def wait_for_avatar(room: rtc.Room,
                          identity: str | Iterable[str] = DEFAULT_AVATAR_IDENTITY,
                          timeout: float = AVATAR_JOIN_TIMEOUT, *, reporter: Reporter | None = None,
                          message: str = STARTUP_FAILURE_MESSAGE) -> bool:
    """Wait until the avatar is in the room, recognised as avatar-monitor recognises it: an
    identity matching `identity` (a glob, or several), or an AGENT participant publishing on
    behalf of another (`lk.publish_on_behalf`, as every livekit-agents avatar plugin's is). On
    timeout, publish `{"type": "startup_failure", "message": ...}` on `lemonslice/message`,
    report it to avatar-monitor, and return False."""
    roles = RoleClassifier([identity] if isinstance(identity, str) else identity)
    joined = asyncio.get_running_loop().create_future()

    def is_avatar(participant: rtc.Participant) -> bool:
        return roles.role_of(room_participant(participant)) is Role.AVATAR

    def on_participant(participant: rtc.RemoteParticipant) -> None:
        if is_avatar(participant) and not joined.done():
            joined.set_result(None)

    def on_attributes(_changed: dict[str, str], participant: rtc.Participant) -> None:
        if isinstance(participant, rtc.RemoteParticipant):
            on_participant(participant)

    room.on("participant_connected", on_participant)
    room.on("participant_attributes_changed", on_attributes)
    try:
        if any(is_avatar(p) for p in room.remote_participants.values()):
            return True
        await asyncio.wait_for(joined, timeout)
        return True
    except TimeoutError:
        log.warning("no avatar joined within %.0f s", timeout)
        own = reporter or Reporter(room)
        await own.startup_failure(message)
        if reporter is None:
            await own.aclose()
        return False
    finally:
        room.off("participant_connected", on_participant)
        room.off("participant_attributes_changed", on_attributes)
