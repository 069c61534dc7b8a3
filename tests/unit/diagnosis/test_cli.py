"""`avatar-monitor diagnose ROOM` against a running sidecar: output and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from tests.support.calls import Call, get, healthy, network
from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import KEY, SECRET, Room, avatar, user


async def diagnose(*args: str, secret: str = SECRET, color: bool = False, columns: int = 400
                   ) -> tuple[int, str]:
    """Run the command; with `color`, rich styles its output as for a terminal."""
    env = {**os.environ, "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": secret,
           "COLUMNS": str(columns)}
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
    assert code == 2 and "no live, recent or kept call" in out
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


async def test_json_is_the_apis_answer_with_the_same_exit_codes(sidecar: RunningMonitor
                                                                ) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    call.caller = user(call.t, identity="".join(HOSTILE.values()))
    await network(call)
    code, out = await diagnose(call.room.name, "--url", sidecar.url, "--json")
    assert code == 1, out
    assert out.isascii() and "\x1b" not in out and "\u202e" not in out  # inert: escaped
    _, body = await get(sidecar, f"/v1/calls/{call.room.name}")
    assert json.loads(out) == body
    code, out = await diagnose("no-such-room", "--url", sidecar.url, "--json")
    assert code == 2 and json.loads(out)["error"] == "not_found"
    code, out = await diagnose("any", "--url", "http://127.0.0.1:9", "--json")
    assert code == 3 and "cannot ask" in out


async def test_into_a_pipe_nothing_is_cut(sidecar: RunningMonitor) -> None:
    call = Call(sidecar, float(int(time.time()) - 100))
    identity = "caller-" + "x" * 121  # 128 characters, the most a record keeps
    call.caller = user(call.t, identity=identity)
    await network(call)
    code, out = await diagnose(call.room.name, "--url", sidecar.url, columns=40)
    assert code == 1, out
    lines = out.splitlines()
    user_line = next(line for line in lines if identity in line).split()
    assert (user_line[0], user_line[1], len(user_line)) == (identity, "user", 5)
    avatar_line = next(line for line in lines if line.split()[1:2] == ["avatar"]).split()
    assert avatar_line[-1].lower() == "connection_timeout"
    assert any("avatar_left" in line and "network after" in line for line in lines)
    assert any("avatar left with CONNECTION_TIMEOUT" in line for line in lines)


async def test_an_earlier_call_by_sid_from_the_history(start_monitor: StartMonitor,
                                                       tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite3")
    sidecar = await start_monitor(history=path, recent_calls=1)
    t = float(int(time.time()) - 100)
    first = Call(sidecar, t)
    await network(first)
    second = Call(sidecar, t + 10)
    second.room = Room(first.room.name, t + 9)
    second.caller, second.face = user(t + 10), avatar(t + 12)
    await healthy(second)
    await sidecar.stop()  # both written on the way out
    again = await start_monitor(history=path)
    code, out = await diagnose(first.room.name, "--url", again.url)
    assert code == 0 and "verdict: healthy" in out, out
    code, out = await diagnose(first.room.name, "--url", again.url, "--sid", first.room.sid)
    assert code == 1 and "verdict: network" in out, out
    code, out = await diagnose(first.room.name, "--url", again.url, "--sid", "RM_nope")
    assert code == 2 and "with sid RM_nope" in out, out
