"""`avatar-monitor diagnose ROOM` against a running sidecar: output and exit codes."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from tests.conftest import RunningMonitor
from tests.test_diagnosis import Call, healthy, network
from tests.webhooks import KEY, SECRET, Room, user


async def diagnose(*args: str, secret: str = SECRET, color: bool = False) -> tuple[int, str]:
    """Run the command; with `color`, rich styles its output as for a terminal."""
    env = {**os.environ, "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": secret,
           "COLUMNS": "400"}
    if color:
        env.update(FORCE_COLOR="1", TERM="xterm-256color")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "diagnose", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_a_failed_call_exits_1_with_evidence_and_next_step(sidecar: RunningMonitor
                                                                 ) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    await network(call)
    code, out = await diagnose(call.room.name, "--url", sidecar.url)
    assert code == 1, out
    assert "verdict: network" in out
    assert "avatar left with CONNECTION_TIMEOUT" in out
    assert "Handle room errors" in out
    assert call.caller.identity in out  # the participants table
    assert "avatar_left" in out  # the timeline


async def test_a_healthy_call_exits_0(sidecar: RunningMonitor) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    await healthy(call)
    code, out = await diagnose(call.room.name, "--url", sidecar.url)
    assert code == 0, out
    assert "verdict: healthy" in out


async def test_unknown_room_exits_2_and_unreachable_3(sidecar: RunningMonitor) -> None:
    code, out = await diagnose("no-such-room", "--url", sidecar.url)
    assert code == 2 and "no live or recent call" in out
    code, out = await diagnose("any", "--url", "http://127.0.0.1:9")
    assert code == 3 and "cannot ask avatar-monitor" in out
    code, out = await diagnose("any", "--url", sidecar.url, secret="another-secret-" * 3)
    assert code == 3 and "401" in out


HOSTILE = {
    "markup": "[/bold]",
    "link": "[link=https://example.invalid]click[/link]",
    "ansi": "\x1b[31mred\x1b[0m",
    "osc hyperlink": "\x1b]8;;https://example.invalid\x1b\\x\x1b]8;;\x1b\\",
    "bidi": "abc\u202edef",
}


async def test_hostile_names_are_printed_as_text_and_exit_codes_keep_meaning(
        sidecar: RunningMonitor) -> None:
    """Identities and room names come from callers: no markup, no escapes reach the terminal,
    and a failed call still exits 1 (a crash must not pass for one)."""
    call = Call(sidecar, float(int(time.time()) - 100))
    call.room = Room(name="[bold]room[/bold]\x1b[2J", created_at=call.t - 1)
    call.caller = user(call.t, identity="".join(HOSTILE.values()))
    await network(call)
    code, out = await diagnose(call.room.name, "--url", sidecar.url, color=True)
    assert code == 1, out
    assert "verdict: \x1b[1;31mnetwork" in out  # rich's own styles still apply
    assert "\x1b]" not in out  # no OSC sequence (hyperlinks, titles) at all
    for escape in ("\x1b[31m", "\x1b[2J", "\u202e"):
        assert escape not in out
    for text in ("[/bold]", "[link=https://example.invalid]click[/link]", "\\x1b[31mred",
                 "[bold]room[/bold]\\x1b[2J", "abc\\u202edef"):
        assert text in out, text
    code, out = await diagnose("[/bold]\x1b[2J", "--url", sidecar.url, color=True)
    assert code == 2 and "[/bold]\\x1b[2J" in out, out
