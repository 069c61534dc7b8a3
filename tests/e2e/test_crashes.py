"""Participants whose process dies (SIGKILL) mid-call, on the real livekit-server: a crash is a
failure, a user's lost connection is not a hang-up, and a quick hang-up does not hide a crash.

livekit-server declares a killed participant gone with CONNECTION_TIMEOUT some 20 s after the
kill (dated at the timeout): each test measures that delay against the sidecar's
CONNECTION_TIMEOUT_DELAY, which the crash-before-hang-up rule rests on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.calls.departures import CONNECTION_TIMEOUT_DELAY
from tests.e2e.harness import LOGS, Verdict
from tests.e2e.lone_participant import READY_LINE
from tests.support import procs
from tests.support.metrics import Expect, MetricsClient, expect, poll_until
from tests.support.participants import AVATAR_IDENTITY, Server, avatar_token, user_token
from tests.support.scenario import CallDriver
from tests.support.sidecar import REPO

pytestmark = pytest.mark.e2e

# How long after the kill the user gives up on a frozen avatar: well inside the server's timeout.
PATIENCE = 10.0
# livekit-server's CONNECTION_TIMEOUT comes this long after a kill (v1.13.5: 20 to 22 s).
DEATH_NOTICE = (CONNECTION_TIMEOUT_DELAY, CONNECTION_TIMEOUT_DELAY + 5.0)
WAIT = CONNECTION_TIMEOUT_DELAY + 20.0
CAUSES = ("user_hangup", "agent_hangup", "user_network", "agent_lost", "network", "server",
          "removed", "unknown")


def only_departure(cause: str) -> list[Expect]:
    """`cause` counted once, every other departure cause zero."""
    return [expect("avatar_departures_total", 1 if c == cause else 0, cause=c) for c in CAUSES]


@pytest.fixture
def departure_timeout() -> int:
    """A room left to agents alone is not closed on the dead participant before its
    CONNECTION_TIMEOUT."""
    return 60


class Doomed:
    """A participant in a process of its own (tests/e2e/lone_participant.py), to be killed."""

    def __init__(self, log_path: Path, server: Server, token: str, publish: bool) -> None:
        self.log_path = log_path
        argv = [sys.executable, "-m", "tests.e2e.lone_participant", server.url, token]
        self.process: subprocess.Popen[bytes] = procs.start(
            [*argv, "--publish"] if publish else argv, log_path, cwd=REPO)
        self.killed_at: float | None = None

    async def joined(self) -> None:
        async def ready() -> bool:
            assert self.process.poll() is None, procs.tail(self.log_path)
            return READY_LINE in procs.tail(self.log_path)

        await poll_until(ready, bool, "the participant process joined", 20)

    def kill(self) -> None:
        """SIGKILL: no leave is sent; the server finds out by its timeout."""
        self.killed_at = time.time()
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)


@pytest.fixture
def doomed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Doomed]]:
    started: list[Doomed] = []
    yield started
    for process in started:
        request.node.stash.setdefault(LOGS, []).append(("killed participant", process.log_path))
        if process.process.poll() is None:
            procs.stop(process.process)


def left_at(body: dict, identity: str) -> float:
    """When the call's record says this participant left (server time)."""
    times = [p["left_at"] for p in body["participants"] if p["identity"] == identity]
    assert times and times[-1] is not None, body["participants"]
    return float(times[-1])


def assert_death_notice(doomed: Doomed, left: float) -> None:
    """The server's CONNECTION_TIMEOUT came as long after the kill as the sidecar assumes."""
    assert doomed.killed_at is not None
    delay = left - doomed.killed_at
    # webhook times have whole seconds: the leave may read up to 1 s early
    assert DEATH_NOTICE[0] - 1.0 <= delay <= DEATH_NOTICE[1], delay


async def test_a_killed_avatar_is_not_hidden_by_the_users_hang_up(
        call: CallDriver, server: Server, metrics: MetricsClient, verdict: Verdict,
        tmp_path: Path, doomed: list[Doomed]) -> None:
    """The avatar's process dies; the user sees it frozen and hangs up 10 s later, before the
    server declares the avatar gone: a network failure, not a user hang-up."""
    user = await call.user()
    await call.agent()
    avatar = Doomed(tmp_path / "avatar.log", server,
                    avatar_token(server, call.room, "voice-agent"), publish=True)
    doomed.append(avatar)
    await avatar.joined()
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"),
                           expect("avatar_time_to_first_track_seconds_count", 1, kind="video"))
    avatar.kill()
    await asyncio.sleep(PATIENCE)  # the user's patience with a frozen face: the scenario itself
    await user.leave()
    await metrics.wait_all(*only_departure("network"), timeout=WAIT)
    body = await verdict(call.room)
    assert (body["status"], body["verdict"]) == ("failed", "network"), body["findings"]
    assert "it had died before the user hung up" in body["findings"][0]["evidence"]
    assert_death_notice(avatar, left_at(body, AVATAR_IDENTITY))
    snapshot = await metrics.scrape()
    assert snapshot.value("avatar_disconnects_total", role="avatar",
                          reason="connection_timeout") == 1
    assert snapshot.value("avatar_departures_total", cause="user_hangup") == 0


async def test_a_users_lost_connection_is_not_a_hang_up(
        call: CallDriver, server: Server, metrics: MetricsClient, verdict: Verdict,
        tmp_path: Path, doomed: list[Doomed]) -> None:
    """The user's process dies (their network is gone): CONNECTION_TIMEOUT, then the agent and
    the avatar end the call: `user_network`, a warning on the user's side."""
    user = Doomed(tmp_path / "user.log", server, user_token(server, call.room, "user"),
                  publish=False)
    doomed.append(user)
    await user.joined()
    agent = await call.agent()
    avatar, _ = await call.avatar()
    await metrics.wait_all(expect("avatar_calls_in_progress", 1, state="active"),
                           expect("avatar_time_to_first_track_seconds_count", 1, kind="video"))
    user.kill()
    await metrics.wait_all(expect("avatar_disconnects_total", 1, role="user",
                                  reason="connection_timeout"), timeout=WAIT)
    await agent.leave()
    await avatar.leave()
    await metrics.wait_all(*only_departure("user_network"), timeout=WAIT)
    body = await verdict(call.room)
    assert (body["status"], body["verdict"]) == ("warning", "user_network"), body["findings"]
    assert_death_notice(user, left_at(body, "user"))
