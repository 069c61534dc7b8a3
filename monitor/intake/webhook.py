"""Webhook intake: size and time limits, signature, parse (only what livekit-api would read),
the shard's rooms only, de-duplication, then the call tracker, in the order the requests came.

Every rejection is a short JSON reason, a log line and a counter; a good event after a bad one
is processed as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from monitor.calls.inputs import Event
from monitor.calls.tracker import CallTracker
from monitor.clock import ServerClock
from monitor.intake.batch import Pending, TurnBatch, guarded
from monitor.intake.counts import WebhookCounts
from monitor.intake.dedup import RecentIds
from monitor.intake.events import KNOWN_EVENTS, MalformedEvent, parse_event
from monitor.intake.verify import Unauthorized, WebhookVerifier
from monitor.logs import RateLimitedLog
from monitor.shard import EVERY_ROOM, Shard
from monitor.web.access import bearer_token
from monitor.web.replies import error_reply, json_reply
from monitor.web.server import BodyRefused, read_body

log = logging.getLogger(__name__)

DEDUP_CAPACITY = 100_000
# After a restart, webhooks wait this long at most for the first RoomService listing, so a leave
# is not applied to a call the listing has yet to rebuild.
STARTUP_WAIT_SECONDS = 10.0
_OK_BODY = b'{"status":"ok"}'
_FOREIGN_BODY = b'{"status":"foreign_shard"}'


@dataclass(slots=True)
class Delivery:
    """One POST /webhook: its body and token, then the event read from it."""

    body: bytes
    token: str
    event: Event | None = None


class WebhookIntake:
    """The POST /webhook handler. Requests read in the same turn of the event loop are decided
    together (monitor.intake.batch), in arrival order."""

    def __init__(self, verifier: WebhookVerifier, tracker: CallTracker, metrics: WebhookCounts,
                 max_body_bytes: int, clock: Callable[[], float] = time.time,
                 server_clock: ServerClock | None = None, shard: Shard = EVERY_ROOM,
                 ready: asyncio.Event | None = None,
                 on_dropped_upstream: Callable[[], None] | None = None) -> None:
        self._verifier = verifier
        self._tracker = tracker
        self._metrics = metrics
        self._max_body_bytes = max_body_bytes
        self._clock = clock
        self._recent = RecentIds(DEDUP_CAPACITY)
        self._warn = RateLimitedLog(log)
        self._server_clock = server_clock
        self._shard = shard
        self.ready = ready  # the startup reconciliation, when configured
        self.on_dropped_upstream = on_dropped_upstream  # asks for a RoomService listing
        self._batch: TurnBatch[Delivery, web.Response] = TurnBatch(self._decide)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await read_body(request, self._max_body_bytes)
        except BodyRefused as refused:
            reply = self._reject(*refused.args)
            reply.force_close()  # the rest of the body is not waited for
            return reply
        if self.ready is not None and not self.ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), STARTUP_WAIT_SECONDS)
        return await self._batch.submit(Delivery(body, bearer_token(request, bare=True)))

    def _decide(self, batch: list[Pending[Delivery, web.Response]]) -> None:
        """Every signature, then every parse, then each event in arrival order."""
        for stage in (self._verified, self._parsed, self._applied):
            batch = guarded(stage, batch)

    def _verified(self, pending: Pending[Delivery, web.Response]) -> bool:
        delivery = pending.item
        if not delivery.token:
            return pending.settle(self._reject(401, "unauthorized",
                                               "missing Authorization header"))
        try:
            self._verifier.verify(delivery.body, delivery.token)
        except Unauthorized as exc:
            return pending.settle(self._reject(401, "unauthorized", str(exc)))
        return True

    def _parsed(self, pending: Pending[Delivery, web.Response]) -> bool:
        try:
            # only what livekit-api's WebhookReceiver would read
            pending.item.event = parse_event(pending.item.body)
        except MalformedEvent as exc:
            return pending.settle(self._reject(400, "malformed", str(exc)))
        return True

    def _applied(self, pending: Pending[Delivery, web.Response]) -> bool:
        event = pending.item.event
        assert event is not None
        if not self._shard.owns(event.room_name):  # another replica counts it
            self._observe_clock(event)
            self._metrics.webhook_foreign()
            return pending.settle(web.Response(body=_FOREIGN_BODY,
                                               content_type="application/json"))
        if event.id and self._recent.seen(event.id):
            self._metrics.webhook_rejected("duplicate")
            return pending.settle(json_reply(200, status="duplicate"))
        self._metrics.webhook_received(event.name)
        self._observe_clock(event)
        if event.num_dropped > 0:
            self._metrics.webhooks_dropped_upstream(event.num_dropped)
            if self.on_dropped_upstream is not None:
                self.on_dropped_upstream()
        if event.name not in KNOWN_EVENTS:
            return pending.settle(json_reply(200, status="ignored"))
        self._tracker.apply(event, self._clock())
        return pending.settle(web.Response(body=_OK_BODY, content_type="application/json"))

    def _observe_clock(self, event: Event) -> None:
        """The event's server timestamps sample the server's clock (see monitor.clock)."""
        if self._server_clock is None:
            return
        self._server_clock.observe(event.created_at)
        participant = event.participant
        if event.name == "participant_joined" and participant and participant.joined_at:
            self._server_clock.observe(participant.joined_at)

    def _reject(self, status: int, reason: str, detail: str) -> web.Response:
        self._metrics.webhook_rejected(reason)
        self._warn.warning(reason, "webhook rejected: %s (%s)", reason, detail)
        return error_reply(status, reason, detail)
