"""POST /v1/events: the voice agent's reports over HTTP, for the backend bridge.

The body is one event of the `avatar-monitor/events` schema (docs/events.md) plus the `room` it
belongs to and, best, the room's `room_sid`. Only the voice agent may report: the caller's
LiveKit access token (livekit-api `AccessToken`, signed with the API key and secret, in
`Authorization: Bearer`) must be an agent's (kind `agent`) with a video grant for that very room,
and a `room_sid` must be the sid of a call in that room. Every rejection is a short JSON reason,
a log line and a counter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web

from monitor.intake.strict_json import NotAccepted, loads
from monitor.logs import RateLimitedLog
from monitor.reports.bridge import BackendBridge
from monitor.reports.counts import ReportCounts
from monitor.reports.signals import MAX_MESSAGE_BYTES, BadEvent, parse_report
from monitor.shard import EVERY_ROOM, Shard, url_of
from monitor.web.access import Denied, TokenAccess
from monitor.web.replies import error_reply, json_reply
from monitor.web.server import BodyRefused, read_body

log = logging.getLogger(__name__)

MAX_ROOM_NAME_CHARS = 256


class EventIntake:
    """The POST /v1/events handler."""

    def __init__(self, access: TokenAccess, bridge: BackendBridge, metrics: ReportCounts,
                 max_body_bytes: int, clock: Callable[[], float] = time.time,
                 shard: Shard = EVERY_ROOM, shard_url: str = "") -> None:
        self._access = access
        self._bridge = bridge
        self._metrics = metrics
        self._max_body_bytes = min(max_body_bytes, MAX_MESSAGE_BYTES)
        self._clock = clock
        self._warn = RateLimitedLog(log)
        self._shard = shard
        self._shard_url = shard_url

    async def handle(self, request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > self._max_body_bytes:
            return self._closing(self._reject(413, "too_large",
                                              f"body over {self._max_body_bytes} bytes"))
        try:
            granted_room = self._access.agent_room(request)
        except Denied as denied:
            return self._reject(*denied.args)
        try:
            body = await read_body(request, self._max_body_bytes)
        except BodyRefused as refused:
            return self._closing(self._reject(*refused.args))
        try:
            doc = loads(body)  # only what livekit-api's (protobuf's) JSON parser reads
        except NotAccepted as exc:
            return self._reject(400, "malformed", f"body is not JSON as LiveKit reads it: {exc}")
        if type(doc) is not dict:
            return self._reject(400, "malformed", "body must be a JSON object")
        room, room_sid = doc.get("room"), doc.get("room_sid")
        if type(room) is not str or not 0 < len(room) <= MAX_ROOM_NAME_CHARS:
            return self._reject(400, "malformed",
                                f"room must be a room name of 1 to {MAX_ROOM_NAME_CHARS} "
                                "characters")
        if room_sid is not None and (type(room_sid) is not str
                                     or len(room_sid) > MAX_ROOM_NAME_CHARS):
            return self._reject(400, "malformed", "room_sid must be a room sid")
        if granted_room and granted_room != room:
            return self._reject(403, "foreign_room", "the token is for another room")
        if not self._shard.owns(room):
            return self._misdirected(room)
        if self._bridge.conflicts(room, room_sid or None):
            return self._reject(403, "foreign_room", "room_sid is the sid of another room")
        try:
            event = parse_report(doc)
        except BadEvent as exc:
            return self._reject(400, "malformed", str(exc))
        outcome = self._bridge.accept("http", event, self._clock(), room, room_sid or None)
        return json_reply(202, status=outcome)

    def _misdirected(self, room: str) -> web.Response:
        """421: another replica owns the room; its shard, and its URL with --shard-url (the
        agent's Reporter posts there once)."""
        owner = self._shard.owner(room)
        self._metrics.bridge_rejected("foreign_shard")
        self._warn.warning("foreign_shard", "event for room of shard %d refused by shard %s",
                           owner, self._shard)
        fields: dict[str, str | int] = {"shard": owner}
        url = url_of(self._shard_url, owner)
        if url:
            fields["url"] = url
        return json_reply(421, error="foreign_shard",
                          detail=f"the room belongs to shard {owner}/{self._shard.count}",
                          **fields)

    @staticmethod
    def _closing(reply: web.Response) -> web.Response:
        """The body was not read: close the connection after the answer."""
        reply.force_close()
        return reply

    def _reject(self, status: int, reason: str, detail: str) -> web.Response:
        self._metrics.bridge_rejected(reason)
        self._warn.warning(reason, "event rejected: %s (%s)", reason, detail)
        return error_reply(status, reason, detail)
