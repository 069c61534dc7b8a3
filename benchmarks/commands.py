"""The command loop of the benchmarks' child processes (observer_driver, rtc_floor): commands on
stdin, one a line, each answered with one JSON line on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping

Answer = dict[str, object]
# A command's arguments -> its own answer, or None for the status.
Command = Callable[[list[str]], Awaitable[Answer | None]]


def reply(doc: Answer) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


async def answer_commands(commands: Mapping[str, Command], status: Callable[[], Answer],
                          close: Callable[[], Awaitable[None]]) -> None:
    """Answer commands until `quit` or the end of input: `status`, and each of `commands` with
    its own answer or the status; an unknown one with an error. Then `close`, and a last
    answer, `{"closed": true}`."""
    loop = asyncio.get_running_loop()
    try:
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
            if not line or line[0] == "quit":
                break
            command = commands.get(line[0])
            if command is None and line[0] != "status":
                reply({"error": f"unknown command {' '.join(line)!r}"})
                continue
            answer = None if command is None else await command(line[1:])
            reply(status() if answer is None else answer)
    finally:
        await close()
        reply({"closed": True})
