"""One call participant in a process of its own, so that a test can kill it with SIGKILL (a
crash, or a network gone): `python -m tests.e2e.lone_participant URL TOKEN [--publish]`.

It joins, publishes the avatar's audio and video with `--publish`, prints READY_LINE and waits
to be killed.
"""

from __future__ import annotations

import argparse
import asyncio

from livekit import rtc

from tests.support.participants import AvatarMedia, Participant

READY_LINE = "lone participant joined"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--publish", action="store_true")
    args = parser.parse_args()
    room = rtc.Room()
    await room.connect(args.url, args.token, rtc.RoomOptions(auto_subscribe=False))
    if args.publish:
        await AvatarMedia().publish(Participant(room.local_participant.identity, room))
    print(READY_LINE, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
