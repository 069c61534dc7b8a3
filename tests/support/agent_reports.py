"""The voice agent's reports to POST /v1/events for one call's room: the call, a good report
and the agent's token for it."""

from __future__ import annotations

import datetime
import time

from tests.support.served import RunningMonitor
from tests.support.webhooks import KEY, SECRET, Room, agent_token, user

ROOM = "call-events"
CALL = Room(name=ROOM)
GOOD = {"v": 1, "type": "pipeline_error", "component": "tts", "recoverable": False,
        "room": ROOM, "room_sid": CALL.sid}


def token(room: str | None = ROOM, key: str = KEY, secret: str = SECRET,
          ttl: datetime.timedelta = datetime.timedelta(minutes=5)) -> str:
    return agent_token(room, key, secret, ttl)


async def start_call(sidecar: RunningMonitor, room: Room = CALL) -> None:
    assert (await sidecar.send(room.joined(user(time.time() - 1))))[0] == 200
