"""Backend side of the bridge: report a livekit-agents AgentSession to avatar-monitor.

    from monitor.agents import instrument, wait_for_avatar

    reporter = instrument(session, ctx.room)          # errors, close, per-turn latency
    if not await wait_for_avatar(ctx.room, reporter=reporter):
        return                                        # startup_failure already published

Events go out on the room's data topic `avatar-monitor/events` (read by the sidecar's room
observer, which takes them from agent participants only) and, when a sidecar URL is given, to its
`POST /v1/events` with an agent token (kind `agent`, a grant for this room only, minted with the
API key pair) and the room's sid; each carries an id, so the sidecar counts it once whichever way
it arrives. Nothing here raises into the agent: a failed
send is logged and counted in `Reporter.failed`, and at most `max_in_flight` sends are pending
(more are dropped and counted in `Reporter.dropped`).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeGuard

import aiohttp
from livekit import api, rtc

from monitor.calls.roles import Role, RoleClassifier
from monitor.config import DEFAULT_AVATAR_IDENTITY
from monitor.observer.rtc_roles import participant_of
from monitor.reports.agent_events import (
    COMPONENT_OF_ERROR,
    LATENCY_OF_METRIC,
    PLAYBACK_METRIC,
    avatar_join_event_id,
    error_event_id,
    playback_event_id,
    turn_event_id,
)
from monitor.reports.signals import EVENTS_SCHEMA_VERSION, EVENTS_TOPIC, LEMONSLICE_TOPIC

if TYPE_CHECKING:
    from livekit.agents import AgentSession
    from livekit.agents.voice.events import (
        CloseEvent,
        ConversationItemAddedEvent,
        ErrorEvent,
        EventTypes,
        MetricsCollectedEvent,
    )

log = logging.getLogger("monitor.agents")

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
            async with self._http.post(f"{self.url}/v1/events", json=body,
                                       headers=headers) as resp:
                if resp.status < 300:
                    return True
                log.warning("avatar-monitor: POST /v1/events answered %d: %s",
                            resp.status, (await resp.text())[:200])
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


def instrument(session: AgentSession, room: rtc.Room, **reporter_options: Any) -> Reporter:
    """Report the session's pipeline errors, its close, its per-turn latencies, and the
    avatar's playback latency per reply and join time (livekit-agents' AvatarMetrics).

    Errors and turns get the ids the sidecar derives from livekit-agents' own `lk.agent.session`
    broadcast of them (monitor.reports.agent_events), so they count once whichever path comes first.

    `reporter_options` go to `Reporter` (url, api_key, api_secret, data_channel, ...); the URL
    defaults to $AVATAR_MONITOR_URL and the keys to $LIVEKIT_API_KEY / $LIVEKIT_API_SECRET.
    """
    reporter = Reporter(room, **reporter_options)

    def on_error(ev: ErrorEvent) -> None:
        error_type = getattr(ev.error, "type", "")
        timestamp = getattr(ev.error, "timestamp", None)
        recoverable = getattr(ev.error, "recoverable", False) is True
        event_id = (error_event_id(error_type, timestamp)
                    if error_type and _is_seconds(timestamp) else None)
        reporter.report("pipeline_error", event_id, recoverable=recoverable,
                        component=COMPONENT_OF_ERROR.get(error_type, "other"))

    def on_close(ev: CloseEvent) -> None:
        reason = getattr(ev.reason, "value", str(ev.reason))
        reporter.report("session_closed", reason=reason)
        for event, handler in handlers.items():
            session.off(event, handler)
        reporter.close_soon()

    def on_item(ev: ConversationItemAddedEvent) -> None:
        item_id = getattr(ev.item, "id", "") or ""
        metrics = getattr(ev.item, "metrics", None) or {}
        stages = {stage: metrics[key] for key, stage in LATENCY_OF_METRIC.items()
                  if _is_seconds(metrics.get(key))}
        if stages:
            reporter.report("agent_latency", turn_event_id(item_id) if item_id else None,
                            **stages)
        playback = metrics.get(PLAYBACK_METRIC)
        if getattr(ev.item, "role", "") == "assistant" and _is_seconds(playback):
            reporter.report("agent_latency", playback_event_id(item_id) if item_id else None,
                            avatar_playback=playback)

    def on_metrics(ev: MetricsCollectedEvent) -> None:
        avatar = ev.metrics
        if getattr(avatar, "type", "") != "avatar_metrics":
            return
        started, joined = (getattr(avatar, "session_started_time", None),
                           getattr(avatar, "avatar_joined_time", None))
        if _is_seconds(started) and _is_seconds(joined) and joined >= started:
            reporter.report("agent_latency", avatar_join_event_id(avatar.timestamp),
                            avatar_join=joined - started)

    handlers: dict[EventTypes, Callable[..., None]] = {
        "error": _never_raises(on_error), "close": _never_raises(on_close),
        "conversation_item_added": _never_raises(on_item),
        "metrics_collected": _never_raises(on_metrics)}
    for event, handler in handlers.items():
        session.on(event, handler)
    return reporter


def _is_seconds(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def _never_raises(handler: Any) -> Any:
    def safe(ev: Any) -> None:
        try:
            handler(ev)
        except Exception:
            log.exception("avatar-monitor: reporting %s failed", type(ev).__name__)

    return safe


async def wait_for_avatar(room: rtc.Room,
                          identity: str | Iterable[str] = DEFAULT_AVATAR_IDENTITY,
                          timeout: float = 30.0, *, reporter: Reporter | None = None,
                          message: str = STARTUP_FAILURE_MESSAGE) -> bool:
    """Wait until the avatar is in the room, recognised as avatar-monitor recognises it: an
    identity matching `identity` (a glob, or several), or an AGENT participant publishing on
    behalf of another (`lk.publish_on_behalf`, as every livekit-agents avatar plugin's is). On
    timeout, publish `{"type": "startup_failure", "message": ...}` on `lemonslice/message`,
    report it to avatar-monitor, and return False."""
    roles = RoleClassifier([identity] if isinstance(identity, str) else identity)
    joined = asyncio.get_running_loop().create_future()

    def is_avatar(participant: rtc.Participant) -> bool:
        return roles.role_of(participant_of(participant)) is Role.AVATAR

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
