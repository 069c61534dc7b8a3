"""Bare livekit-rtc connections: the floor under the room observer's memory per room.

    python -m benchmarks.rtc_floor   (run by benchmarks/observer_rooms.py)

Reads commands on stdin, one a line, and answers each with one JSON line on stdout, as
benchmarks.observer_driver does: `join NAME...` connects one livekit-rtc Room to each named room
as the observer joins (its token, `observer_token`, and its `ROOM_OPTIONS`) and answers once
every connect has ended; `leave` disconnects them all; `status` tells how many are connected;
`quit` (or the end of input) leaves and exits. Nothing else: no handler, no subscription, so
what the process grows by is what the connections themselves hold. It connects one room at a
time: connects run at once leave more sockets open (30 rooms joined 8 at a time kept about 14
sockets a room and 0.27 MiB more memory a room than joined one by one, about 2 sockets a room),
and the floor is the least a connection costs; `--concurrency N` runs N at once. The server and
key pair come from LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

from livekit import rtc

from benchmarks.commands import answer_commands
from monitor.observer.room import OBSERVER_IDENTITY_PREFIX, ROOM_OPTIONS, observer_token

MAX_ERRORS_REPORTED = 5
IDENTITY = f"{OBSERVER_IDENTITY_PREFIX}-floor"


class Floor:
    """One hidden connection per room, nothing more."""

    def __init__(self, url: str, api_key: str, api_secret: str, concurrency: int = 1) -> None:
        self.url, self.api_key, self.api_secret = url, api_key, api_secret
        self.rooms: dict[str, rtc.Room] = {}
        self.errors: list[str] = []
        self._gate = asyncio.Semaphore(concurrency)

    async def join(self, names: list[str]) -> None:
        """Connect to each room not joined yet. No timeout: a cancelled `Room.connect` makes
        livekit-rtc end its own process; the parent bounds the wait instead."""
        await asyncio.gather(*(self._join(name) for name in names if name not in self.rooms))

    async def _join(self, name: str) -> None:
        async with self._gate:
            room = rtc.Room()
            token = observer_token(self.api_key, self.api_secret, IDENTITY, name)
            try:
                await room.connect(self.url, token, ROOM_OPTIONS)
            except Exception as exc:
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                with contextlib.suppress(Exception):
                    await room.disconnect()
                return
            self.rooms[name] = room

    async def leave(self) -> None:
        rooms, self.rooms = list(self.rooms.values()), {}
        for start in range(0, len(rooms), 20):  # a few at a time, as the driver leaves
            await asyncio.gather(*(_disconnect(room) for room in rooms[start:start + 20]))

    def status(self) -> dict[str, object]:
        return {"rooms": len(self.rooms), "failed": len(self.errors),
                "errors": self.errors[:MAX_ERRORS_REPORTED]}


async def _disconnect(room: rtc.Room) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(room.disconnect(), 10)


async def serve(floor: Floor) -> None:
    """Answer `join NAME...`, `leave`, `status` and `quit` (see the module's docstring)."""
    async def join(names: list[str]) -> None:
        await floor.join(names)

    async def leave(_: list[str]) -> None:
        await floor.leave()

    await answer_commands({"join": join, "leave": leave}, floor.status, floor.leave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=1,
                        help="connects at once (default %(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Floor(os.environ["LIVEKIT_URL"], os.environ["LIVEKIT_API_KEY"],
                            os.environ["LIVEKIT_API_SECRET"], args.concurrency)))


if __name__ == "__main__":
    main()
