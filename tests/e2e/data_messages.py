"""Data messages a participant publishes on the topics the room observer reads."""

from __future__ import annotations

import json

from tests.support.participants import Participant

LEMONSLICE, EVENTS = "lemonslice/message", "avatar-monitor/events"


async def send(participant: Participant, topic: str, payload: bytes | dict) -> None:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    await participant.room.local_participant.publish_data(data, reliable=True, topic=topic)
