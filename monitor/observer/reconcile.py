"""LiveKit is the source of truth for what is live: a reconciler over RoomService.

At start, every `--observe-interval`, and at once when a webhook says LiveKit dropped events
(`num_dropped`), it lists the rooms (ListRooms) and each room's participants (ListParticipants;
a room's `num_participants` lags for the first seconds after a join). What webhooks did not say is
applied to the call tracker with the server's timestamps: calls under way are rebuilt after a
restart (their joins, the avatar's presence, their join deadline), missed joins and leaves are
applied (a leave only once the participant is absent from two listings in a row, so a leave
webhook on its way wins), and calls whose room is gone are ended. Each is counted by action in
`avatar_monitor_reconciled_total` and marked in the call's record.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
from collections.abc import Callable

import aiohttp
from livekit import api

from monitor.calls.inputs import Participant
from monitor.calls.participants import from_info
from monitor.calls.tracker import CallTracker
from monitor.clock import ServerClock
from monitor.observer.counts import ListingCounts
from monitor.shard import in_shard

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
CONCURRENT_LISTINGS = 8


class Reconciler:
    """Lists LiveKit's rooms and participants and reconciles the tracker with them."""

    def __init__(self, url: str, api_key: str, api_secret: str, tracker: CallTracker,
                 metrics: ListingCounts, clock: Callable[[], float], server_clock: ServerClock,
                 interval: float, shard: tuple[int, int] = (0, 1)) -> None:
        self._url, self._key, self._secret = url, api_key, api_secret
        self._http_url = url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
        self._tracker = tracker
        self._metrics = metrics
        self._clock = clock
        self._server_clock = server_clock
        self._interval = interval
        self._shard = shard
        self._api: api.LiveKitAPI | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.startup_done = asyncio.Event()
        self.last_success: float | None = None  # server time of the last complete listing
        self.last_error = ""
        # (room sid, participant sid) -> listings in a row it was absent from, while tracked
        self._absent: dict[tuple[str, str], int] = {}
        self._seen: dict[tuple[str, str], Participant] = {}  # last listing's participants

    async def start(self) -> None:
        self._api = api.LiveKitAPI(self._url, self._key, self._secret)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._api is not None:
            await self._api.aclose()

    def request(self) -> None:
        """Reconcile now (LiveKit dropped webhooks)."""
        self._wake.set()

    def reachable(self) -> bool:
        """The last listing succeeded and is recent (three intervals)."""
        return (self.last_success is not None and not self.last_error
                and self._clock() - self.last_success < 3 * self._interval + REQUEST_TIMEOUT)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            self._wake.clear()
            try:
                await self.reconcile()
                self._metrics.reconcile_run(ok=True)
                self.startup_done.set()
                delay = self._interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server may be down: try again
                self.last_error = str(exc)[:200] or type(exc).__name__
                self._metrics.reconcile_run(ok=False)
                log.warning("reconciling with LiveKit failed: %s", self.last_error)
                delay = min(self._interval, delay * 2) if not self.startup_done.is_set() \
                    else self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def reconcile(self) -> None:
        """One listing of every room and its participants, applied to the tracker."""
        assert self._api is not None
        await self._probe_clock()
        asked_at = self._clock()
        listed = await asyncio.wait_for(self._api.room.list_rooms(api.ListRoomsRequest()),
                                        REQUEST_TIMEOUT)
        rooms = [room for room in listed.rooms if in_shard(room.name, *self._shard)]
        limit = asyncio.Semaphore(CONCURRENT_LISTINGS)

        async def participants(room: api.Room) -> list[Participant]:
            async with limit:
                answer = await asyncio.wait_for(self._api.room.list_participants(  # type: ignore[union-attr]
                    api.ListParticipantsRequest(room=room.name)), REQUEST_TIMEOUT)
            return [from_info(info) for info in answer.participants]

        listings = await asyncio.gather(*(participants(room) for room in rooms))
        now = self._clock()
        live = {room.sid for room in listed.rooms}
        tracker = self._tracker
        tracker.listed(live, asked_at)
        for call in tracker.open_calls():
            if call.room_sid not in live and call.tracked_at < asked_at and \
                    in_shard(call.room_name, *self._shard):
                tracker.room_gone(call.room_sid, now)
                self._metrics.listing_applied("room_gone")
        seen: dict[tuple[str, str], Participant] = {}
        for room, present in zip(rooms, listings, strict=True):
            created = (room.creation_time_ms / 1000) or float(room.creation_time) or None
            gone = self._gone(room.sid, present)
            for action in tracker.reconcile(room.sid, room.name, created, present, gone, now):
                self._metrics.listing_applied(action)
            seen.update(((room.sid, p.sid), p) for p in present)
        self._seen = seen
        self.last_success, self.last_error = asked_at, ""

    def _gone(self, room_sid: str, present: list[Participant]) -> list[Participant]:
        """Participants the tracker holds present but absent from this listing and the one
        before (a leave webhook on its way has had an interval to arrive)."""
        here = {p.sid for p in present}
        gone = []
        for participant in self._tracker.present(room_sid):
            key = (room_sid, participant.sid)
            if participant.sid in here:
                self._absent.pop(key, None)
                continue
            misses = self._absent.get(key, 0) + 1
            self._absent[key] = misses
            if misses >= 2:
                gone.append(self._seen.get(key, participant))
                del self._absent[key]
        for key in [k for k in self._absent if k[0] == room_sid and k[1] in here]:
            del self._absent[key]
        return gone

    async def _probe_clock(self) -> None:
        """LiveKit's HTTP Date header: a sample of the server's clock before any webhook."""
        try:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as http, \
                    http.get(self._http_url + "/") as resp:
                date = resp.headers.get("Date")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionError(f"LiveKit unreachable at {self._http_url}: {exc}") from exc
        if date:
            parsed = email.utils.parsedate_to_datetime(date)
            self._server_clock.observe(parsed.timestamp())
