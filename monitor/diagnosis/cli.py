"""`avatar-monitor diagnose ROOM`: one call's verdict and timeline in a terminal (rich), or the
API's answer as JSON (`--json`); `--sid` picks an earlier call of the room. The sidecar answers
from memory and its history, so finished calls are found after a restart too.

Exit codes: 0 the call is healthy, in progress or has only warnings; 1 it failed; 2 no such call
in that room; 3 the sidecar could not be asked (unreachable, refused the token, or an answer
that is not a call). What the sidecar sends (rooms, identities, messages) comes from callers, so
it is printed as inert text: never rich markup, and control characters (ANSI and OSC escapes,
bidi overrides) shown escaped; `--json` escapes every character outside ASCII. Into a pipe or a
file (not a terminal) nothing is cut or wrapped: participants and the timeline are one line each.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import sys
from typing import Any
from urllib.parse import quote

import aiohttp
from livekit import api
from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.sinks.records import utc_clock

EXIT_OK, EXIT_FAILED, EXIT_UNKNOWN_ROOM, EXIT_UNREACHABLE = 0, 1, 2, 3
STYLE = {"failed": "bold red", "warning": "yellow", "healthy": "green", "in_progress": "green"}
# C0 and C1 controls, and the format characters that reorder or hide text (bidi, zero width).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                      "\u2060-\u2069\ufeff]")


def inert(value: object, style: str = "") -> Text:
    """Untrusted text as rich Text: no markup, control characters escaped (`\x1b`)."""
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1] if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", str(value))
    return Text(text, style=style)


async def fetch(url: str, room: str, timeout: float = 10.0, sid: str | None = None
                ) -> tuple[int, Any]:
    """GET /v1/calls/{room}[?sid=]; with LIVEKIT_API_KEY/SECRET set, a token scoped to the
    room."""
    headers = {}
    key, secret = os.environ.get("LIVEKIT_API_KEY"), os.environ.get("LIVEKIT_API_SECRET")
    if key and secret:
        jwt = (api.AccessToken(key, secret).with_grants(api.VideoGrants(room=room))
               .with_ttl(datetime.timedelta(minutes=1)).to_jwt())
        headers["Authorization"] = f"Bearer {jwt}"
    target = f"{url.rstrip('/')}/v1/calls/{quote(room, safe='')}"
    if sid is not None:
        target += f"?sid={quote(sid, safe='')}"
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
                http.get(target, headers=headers) as resp):
        return resp.status, await resp.json(content_type=None)


def run(url: str, room: str, console: Console | None = None, sid: str | None = None,
        as_json: bool = False) -> int:
    """Ask the sidecar and print the answer; returns the exit code."""
    console = console or Console(soft_wrap=not sys.stdout.isatty())
    errors = Console(stderr=True, soft_wrap=True) if as_json else console
    try:
        status, body = asyncio.run(fetch(url, room, sid=sid))
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        errors.print(inert(f"cannot ask avatar-monitor at {url}: {exc}", "red"))
        return EXIT_UNREACHABLE
    if as_json and status in (200, 404) and type(body) is dict:
        print(json.dumps(body, indent=2, ensure_ascii=True), file=console.file)
    if status == 404:
        if not as_json:
            console.print(Text.assemble(
                "no live, recent or kept call in room ", inert(room, "bold"),
                *((" with sid ", inert(sid, "bold")) if sid is not None else ()),
                " (the sidecar keeps the last --recent-calls finished calls in memory, and "
                "--history-days of them in its history)"))
        return EXIT_UNKNOWN_ROOM
    if status != 200 or type(body) is not dict:
        detail = body.get("detail", body) if type(body) is dict else body
        errors.print(inert(f"avatar-monitor answered {status}: {detail}", "red"))
        return EXIT_UNREACHABLE
    try:
        if not as_json:
            render(body, console)
        return EXIT_FAILED if body["status"] == "failed" else EXIT_OK
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError) as exc:
        errors.print(inert(f"avatar-monitor's answer is not a call: {type(exc).__name__}",
                           "red"))
        return EXIT_UNREACHABLE


def render(call: dict[str, Any], console: Console) -> None:
    """The verdict with its evidence and next steps, the participants, the timeline."""
    style = STYLE.get(call["status"], "")
    state = "live" if call["live"] else "finished"
    console.print(Text.assemble(inert(call["room"], "bold"),
                                inert(f"  {call['state']} ({state}), started "),
                                utc_clock(call["started_at"], millis=True), " UTC"))
    console.print(Text.assemble("verdict: ", inert(call["verdict"], style)))
    for finding in call["findings"]:
        console.print(Text.assemble(
            "  ", inert(finding["rule"], STYLE.get(finding["severity"], "")), ": ",
            inert(finding["evidence"])))
        console.print(Text.assemble("    ", inert(finding["section"], "italic"), " -> ",
                                    inert(finding["next_step"])))
    if not console.is_terminal:  # a pipe or a file: one line each, nothing cut
        _render_lines(call, console)
        return
    people = Table("identity", "role", "joined", "left", "reason", title="participants",
                   title_justify="left")
    for p in call["participants"]:
        joined, left = (utc_clock(p[k], millis=True) for k in ("joined_at", "left_at"))
        people.add_row(inert(p["identity"]), inert(p["role"]), joined, left,
                       inert(p["disconnect_reason"] or ""))
    console.print(people)
    timeline = Table("time (UTC)", "event", "detail", title="timeline", title_justify="left")
    for entry in call["timeline"]:
        timeline.add_row(utc_clock(entry["at"], millis=True), inert(entry["event"]),
                         inert(entry["detail"]))
    console.print(timeline)


def _render_lines(call: dict[str, Any], console: Console) -> None:
    """Participants and the timeline as whole lines, fields separated by two spaces."""
    console.print("participants (identity, role, joined, left, reason):")
    for p in call["participants"]:
        joined, left = (utc_clock(p[k], millis=True) or "-" for k in ("joined_at", "left_at"))
        console.print(Text.assemble("  ", inert(p["identity"]), "  ", inert(p["role"]), "  ",
                                    joined, "  ", left, "  ",
                                    inert(p["disconnect_reason"] or "-")))
    console.print("timeline (UTC):")
    for entry in call["timeline"]:
        console.print(Text.assemble("  ", utc_clock(entry["at"], millis=True), "  ",
                                    inert(entry["event"]), "  ", inert(entry["detail"])))
