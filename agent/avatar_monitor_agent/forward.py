"""The avatar's own word, as its voice agent receives it, forwarded to avatar-monitor.

The avatar (LemonSlice's, say) tells the room on data topic `lemonslice` that it is ready, that
its idle timeout ended the session, its errors and its video latencies, and says `bot_ready` on
`lemonslice/message` too. The sidecar's room observer reads them; without it (no observer, to
save a participant per call) the voice agent, which receives them anyway, forwards each as an
`avatar_message` event with the id the observer gives its own copy, so either counts once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from livekit import rtc

from avatar_monitor_agent.agent_events import avatar_message_id
from avatar_monitor_agent.participants import room_participant
from avatar_monitor_agent.schema import (
    AVATAR_MESSAGE_TOPICS,
    AVATAR_TOPIC,
    AVATAR_TYPES,
    MAX_AVATAR_MESSAGE_BYTES,
)


@dataclass(slots=True, frozen=True)
class AvatarMessage:
    """One message of this agent's avatar, as the `avatar_message` event reports it."""

    id: str
    topic: str
    avatar: str  # its identity
    message: dict[str, Any]  # its JSON object, as it came

    def fields(self) -> dict[str, Any]:
        return {"topic": self.topic, "avatar": self.avatar, "message": self.message}


def avatar_message(room: rtc.Room, packet: rtc.DataPacket) -> AvatarMessage | None:
    """The avatar's word in `packet`, or None when it is not: a topic of the avatar's, a sender
    of kind AGENT that publishes on behalf of this agent (`lk.publish_on_behalf` = the room's
    local identity), at most MAX_AVATAR_MESSAGE_BYTES of a JSON object of a type avatar-monitor
    reads there (any of AVATAR_TYPES on `lemonslice`, `bot_ready` on `lemonslice/message`)."""
    topic, sender = packet.topic or "", packet.participant
    if topic not in AVATAR_MESSAGE_TOPICS or sender is None \
            or len(packet.data) > MAX_AVATAR_MESSAGE_BYTES:
        return None
    me = getattr(room.local_participant, "identity", "")
    speaker = room_participant(sender)
    if speaker.kind != "AGENT" or not me or speaker.on_behalf_of != me:
        return None
    try:
        doc = json.loads(packet.data)
    except ValueError:
        return None
    said = AVATAR_TYPES if topic == AVATAR_TOPIC else ("bot_ready",)
    if not isinstance(doc, dict) or doc.get("type") not in said:
        return None
    return AvatarMessage(avatar_message_id(topic, sender.identity, sender.sid, packet.data),
                         topic, sender.identity, doc)
