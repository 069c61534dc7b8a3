"""Sends event documents to avatar-monitor for one room: on the room's data topic
`avatar-monitor/events` (read by the sidecar's room observer, which takes them from agent
participants only) and, when a sidecar URL is given, to its `POST /v1/events` with an agent token
(kind `agent`, a grant for this room only, minted with the API key pair) and the room's sid. Each
event carries an id, so the sidecar counts it once whichever way it arrives. Nothing here raises
into the agent: a failed send is logged and counted in `Reporter.failed`, and at most
`max_in_flight` sends are pending (more are dropped and counted in `Reporter.dropped`).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import time
import uuid
from typing import Any

import aiohttp
from livekit import api, rtc

from avatar_monitor_agent.schema import EVENTS_SCHEMA_VERSION, EVENTS_TOPIC, LEMONSLICE_TOPIC

log = logging.getLogger(__name__)

STARTUP_FAILURE_MESSAGE = "Avatar failed to become active"
HTTP_TIMEOUT_SECONDS = 5.0
TOKEN_TTL = datetime.timedelta(minutes=10)
ROOM_SID_WAIT_SECONDS = 5.0


class Reporter:
    """Sends event documents to avatar-monitor for one room, without ever raising."""

    def __init__(self, room: rtc.Room, *, url: str | None = None, api_key: str | None = None,
                 api_secret: str | None = None, data_channel: bool = True,
                 max_in_flight: int = 64) -> None:
        self.room = room
        self.url = (url or os.environ.get("AVATAR_MONITOR_URL") or "").rstrip("/") or None
        self._api_key = api_key or os.environ.get("LIVEKIT_API_KEY", "")
        self._api_secret = api_secret or os.environ.get("LIVEKIT_API_SECRET", "")
        self.data_channel = data_channel
        self.max_in_flight = max_in_flight
        self.sent = self.failed = self.dropped = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._closing: asyncio.Task[None] | None = None
        self._room_sid: str | None = None

    def report(self, kind: str, event_id: str | None = None, **fields: Any) -> str | None:
        """Queue one event of the avatar-monitor/events schema; returns its id (`event_id`, or
        a random one), or None when dropped."""
        doc = {"v": EVENTS_SCHEMA_VERSION, "type": kind, "id": event_id or uuid.uuid4().hex,
               "at": time.time(), **fields}
        topic = EVENTS_TOPIC if self.data_channel else None
        return doc["id"] if self._spawn(self._deliver(doc, topic)) else None

    async def startup_failure(self, message: str = STARTUP_FAILURE_MESSAGE) -> None:
        """Tell the frontend (topic lemonslice/message, as the troubleshooting guide's frontend
        expects) and avatar-monitor that the avatar never became active."""
        doc = {"type": "startup_failure", "message": message, "id": uuid.uuid4().hex}
        await self._deliver({**doc, "v": EVENTS_SCHEMA_VERSION, "at": time.time()},
                            LEMONSLICE_TOPIC, data=doc)

    def close_soon(self) -> None:
        """Close once the pending sends are done, without waiting here (from an event
        handler); `aclose()` may still be awaited."""
        self._closing = asyncio.get_running_loop().create_task(self.aclose())

    async def aclose(self, timeout: float = HTTP_TIMEOUT_SECONDS) -> None:
        """Wait (bounded) for pending sends, then release the HTTP client; idempotent."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=timeout)
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- delivery --------------------------------------------------------------------------

    def _spawn(self, work: Any) -> bool:
        if len(self._in_flight) >= self.max_in_flight:
            work.close()
            self.dropped += 1
            log.warning("avatar-monitor reporter: %d sends pending, event dropped",
                        len(self._in_flight))
            return False
        task = asyncio.get_running_loop().create_task(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return True

    async def _deliver(self, doc: dict[str, Any], topic: str | None,
                       data: dict[str, Any] | None = None) -> None:
        """Publish `data` (default: the document) on `topic` and POST the document."""
        sends = []
        if topic is not None:
            sends.append(self._publish(topic, data or doc))
        if self.url is not None:
            sends.append(self._post(doc))
        for ok in await asyncio.gather(*sends):
            if ok:
                self.sent += 1
            else:
                self.failed += 1

    async def _publish(self, topic: str, doc: dict[str, Any]) -> bool:
        try:
            await self.room.local_participant.publish_data(
                json.dumps(doc), reliable=True, topic=topic)
            return True
        except Exception as exc:
            log.warning("avatar-monitor: publishing on %s failed: %s", topic, exc)
            return False

    async def _post(self, doc: dict[str, Any]) -> bool:
        try:
            if self._http is None:
                self._http = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS))
            body = {**doc, "room": self.room.name}
            room_sid = await self._sid()
            if room_sid:
                body["room_sid"] = room_sid
            headers = {"Authorization": f"Bearer {self.token()}"}
            url = self.url
            for _ in range(2):  # a sharded sidecar may send us to the room's replica, once
                async with self._http.post(f"{url}/v1/events", json=body,
                                           headers=headers) as resp:
                    if resp.status < 300:
                        return True
                    text = (await resp.text())[:500]
                    owner = _owner_url(resp.status, text)
                    if owner is None or owner == url:
                        log.warning("avatar-monitor: POST /v1/events answered %d: %s",
                                    resp.status, text[:200])
                        return False
                    url = owner
        except Exception as exc:
            log.warning("avatar-monitor: POST /v1/events failed: %s", exc)
        return False


    def token(self) -> str:
        """What /v1/events takes: an agent's token (kind agent) for this room only."""
        local = getattr(self.room, "local_participant", None)
        identity = getattr(local, "identity", "") or "avatar-monitor-reporter"
        return (api.AccessToken(self._api_key, self._api_secret).with_kind("agent")
                .with_identity(identity).with_grants(api.VideoGrants(room=self.room.name))
                .with_ttl(TOKEN_TTL).to_jwt())

    async def _sid(self) -> str | None:
        """The room's sid (livekit-rtc learns it shortly after connecting), or None."""
        if self._room_sid is None:
            sid = getattr(self.room, "sid", None)
            if isinstance(sid, str):
                self._room_sid = sid
            elif sid is not None:
                try:
                    self._room_sid = await asyncio.wait_for(sid, ROOM_SID_WAIT_SECONDS)
                except Exception as exc:
                    log.warning("avatar-monitor: the room's sid is unknown: %s", exc)
        return self._room_sid or None


def _owner_url(status: int, text: str) -> str | None:
    """The replica that owns the room, from a sharded sidecar's 421 answer."""
    if status != 421:
        return None
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    url = answer.get("url") if isinstance(answer, dict) else None
    return url.rstrip("/") if isinstance(url, str) and url.startswith(("http://", "https://")) \
        else None
