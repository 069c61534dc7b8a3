"""Who sent a data message or a session stream that the observer's room cannot attribute.

Why livekit-rtc often cannot say (livekit 1.1.21, its livekit-ffi, livekit-server 1.13.5):

- livekit-server forwards a data packet at once, but tells the other participants of a join or a
  leave of a participant that publishes no track in a batch, every 3 s (`room.go`:
  `subscriberUpdateInterval`, `PushAndDequeueUpdates`; only publishers' updates and metadata or
  attribute changes go out at once). A batch keeps one update per identity, so a join followed
  by a leave within 3 s reaches the room as the leave only: livekit-rtc never reports that
  participant at all. A voice agent publishes no track, so for up to 3 s after it joins, the
  observer's room does not hold it.
- The Rust SDK resolves a data packet's sender by identity (then sid) among the participants it
  holds; when that fails its FFI event carries `participant_identity = ""`, so
  `rtc.DataPacket.participant` is None with nothing left to tell it from a server SDK's message
  (livekit-ffi `RoomEvent::DataReceived`). The identity the SFU stamped on the packet is lost.
- A byte stream keeps its sender: `ByteStreamOpened.participant_identity` comes from the stream
  header, whether or not the room holds that participant yet.

So the guide's "publish startup_failure, then return" from an agent that joined less than 3 s
earlier arrives with no sender, and an agent's first `lk.agent.session` stream names a sender the
room does not hold yet. This module remembers the participants of one room (identity -> kind,
from the observer's room, the call's webhooks and RoomService listings, bounded) and resolves:

- a stream's sender by its identity, waiting (bounded) for the participant to become known;
- a packet with no sender by elimination: it came from a server SDK or from a participant the
  room did not hold when the packet arrived (one that joined moments before, or one whose leave
  overtook its last packet). Those candidates are taken from what is known when a RoomService
  listing asked after the packet returns, or, with none yet, from the first that becomes known
  within the wait. The packet is an agent's only when every candidate is an agent; with no
  candidate at all it is a server SDK's.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

MAX_REMEMBERED = 256  # participants remembered per room; the oldest are forgotten
RESOLVE_SECONDS = 2.0  # how long a sender may take to become known
# A participant that left this long before a packet arrived may still have sent it: its leave
# reached us (a webhook, or a publisher's leave, sent at once) before its last packet. The packet
# is forwarded as it comes, so a second would do; webhook times are whole seconds.
LEFT_BEFORE_SECONDS = 3.0
# A participant that joined (server time) this long after the packet arrived is no candidate.
JOINED_AFTER_SECONDS = 1.0

AGENT = "AGENT"


class Resolved(Enum):
    """How a sender the room did not hold was resolved (the `outcome` label)."""

    AGENT = "agent"  # accepted
    NOT_AGENT = "not_agent"  # refused: a user (or a SIP caller, ...) may have sent it
    UNKNOWN = "unknown"  # refused: nobody in the room could have sent it (a server SDK)
    DROPPED = "dropped"  # refused: too many messages of this room waited for their sender


@dataclass(slots=True)
class Seen:
    """One participant of the room as far as we know it. Times are unix seconds."""

    kind: str  # ParticipantInfo.Kind name: AGENT, STANDARD, SIP, ...
    joined_at: float | None = None  # None: unknown
    left_at: float | None = None


class RoomSenders:
    """Participants seen in one room, and the resolution of senders its room did not hold.

    `list_participants` asks RoomService for the room's participants and feeds them to
    `joined()` (it may fail: the wait then relies on what webhooks and the room report)."""

    def __init__(self, clock: Callable[[], float],
                 list_participants: Callable[[], Coroutine[Any, Any, None]],
                 max_remembered: int = MAX_REMEMBERED) -> None:
        self._clock = clock
        self._list = list_participants
        self._max = max_remembered
        self._seen: OrderedDict[str, Seen] = OrderedDict()
        self._changed = asyncio.Event()

    # -- what we learn -----------------------------------------------------------------------

    def joined(self, identity: str, kind: str, joined_at: float | None) -> None:
        """A participant is (or was) in the room; a later join of the same identity replaces
        an earlier one (a rejoin)."""
        if not identity:
            return
        seen = self._seen.get(identity)
        if seen is None or (seen.left_at is not None and joined_at is not None
                            and joined_at > seen.left_at):
            self._seen[identity] = Seen(kind, joined_at)
            self._seen.move_to_end(identity)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
        else:
            seen.kind = kind
            if seen.joined_at is None:
                seen.joined_at = joined_at
        self._notify()

    def left(self, identity: str, kind: str, at: float) -> None:
        """A participant left (it is remembered, with its kind, for late messages)."""
        if identity not in self._seen:
            self.joined(identity, kind, None)
        seen = self._seen[identity]
        if seen.left_at is None:
            seen.left_at = at
        self._notify()

    def kind_of(self, identity: str) -> str | None:
        seen = self._seen.get(identity)
        return seen.kind if seen is not None else None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- resolving ---------------------------------------------------------------------------

    async def kind_by_identity(self, identity: str, held: Callable[[str], str | None],
                               timeout: float = RESOLVE_SECONDS) -> str | None:
        """The kind of the participant `identity` (a stream's sender): from the room
        (`held`), else as remembered, else as a RoomService listing or a webhook or the room
        tells within `timeout`. None: not a participant of this room."""
        kind = held(identity) or self.kind_of(identity)
        if kind is not None:
            return kind
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        listing = loop.create_task(self._list())
        try:
            while kind is None and await self._news(listing, deadline):
                kind = held(identity) or self.kind_of(identity)
        finally:
            listing.cancel()
        return kind

    async def unattributed(self, held: Iterable[str], at: float,
                           timeout: float = RESOLVE_SECONDS) -> tuple[Resolved, list[str]]:
        """Resolve a packet that arrived at `at` (unix seconds) with no sender, while the room
        held the participants `held`: AGENT when every candidate sender is an agent, NOT_AGENT
        when one is not, UNKNOWN when no participant could have sent it. Also returns the
        candidates' identities (for the log)."""
        held_now = set(held)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        listing = loop.create_task(self._list())
        try:
            candidates = self._candidates(held_now, at)
            # Decide once the listing is in (it names whoever is still in the room), or on the
            # first candidate after it.
            while not (candidates and listing.done()) and await self._news(listing, deadline):
                candidates = self._candidates(held_now, at)
        finally:
            listing.cancel()
        if not candidates:
            return Resolved.UNKNOWN, []
        kinds = [kind for _, kind in candidates]
        outcome = Resolved.AGENT if all(k == AGENT for k in kinds) else Resolved.NOT_AGENT
        return outcome, [identity for identity, _ in candidates]

    async def _news(self, listing: asyncio.Task[None], deadline: float) -> bool:
        """Wait until something is learnt (or the listing is in); False at the deadline."""
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        changed = loop.create_task(self._changed.wait())
        waits: set[asyncio.Future[Any]] = {changed}
        if not listing.done():
            waits.add(listing)
        try:
            done, _ = await asyncio.wait(waits, timeout=remaining,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
        return bool(done)

    def _candidates(self, held: set[str], at: float) -> list[tuple[str, str]]:
        """Participants that could have sent a packet arriving at `at` without the room
        holding them: not held then, joined by then (or at an unknown time), and not gone
        long before."""
        return [(identity, seen.kind) for identity, seen in self._seen.items()
                if identity not in held
                and (seen.joined_at is None or seen.joined_at <= at + JOINED_AFTER_SECONDS)
                and (seen.left_at is None or seen.left_at >= at - LEFT_BEFORE_SECONDS)]
