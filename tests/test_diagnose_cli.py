"""`avatar-monitor diagnose ROOM` against a running sidecar: output and exit codes."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from tests.conftest import RunningMonitor
from tests.test_diagnosis import Call, healthy, network
from tests.webhooks import KEY, SECRET


async def diagnose(*args: str, secret: str = SECRET) -> tuple[int, str]:
    env = {**os.environ, "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": secret,
           "COLUMNS": "160"}
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
