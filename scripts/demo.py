#!/usr/bin/env python3
"""`make demo`: a local livekit-server (dev keys devkey/secret), avatar-monitor fed by its
webhooks and watching the rooms, and simulated avatar calls until Ctrl-C: healthy ones, avatars
that never join (one with the backend's startup_failure message, from avatar_monitor_agent), removed
avatars, and a voice agent whose TTS dies (reported by avatar_monitor_agent).

livekit-rtc sends media only over non-loopback interfaces, so the server, the sidecar and the
calls run in a private network namespace (tests/support/netns.py; needs root). The sidecar's
/metrics, /healthz, status page and /v1/calls are relayed to 127.0.0.1:--port on the host, from a
socket bound before entering the namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import socket
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402
from avatar_monitor_agent import Reporter, instrument, wait_for_avatar  # noqa: E402
from avatar_monitor_agent.schema import AVATAR_TOPIC  # noqa: E402
from livekit import api  # noqa: E402
from livekit.agents import AgentSession, tts  # noqa: E402
from livekit.agents.voice.events import ErrorEvent  # noqa: E402

from monitor.simulate import Timing, send  # noqa: E402
from tests.support.livekit_server import LiveKitServer, server_binary  # noqa: E402
from tests.support.netns import NetnsError, private_network  # noqa: E402
from tests.support.participants import AVATAR_IDENTITY, Participant, Server  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.scenario import CallDriver  # noqa: E402
from tests.support.sidecar import Sidecar  # noqa: E402

DEV_KEY, DEV_SECRET = "devkey", "secret"
JOIN_TIMEOUT = 15.0
# Simulated calls of every kind (monitor.simulate), timed for this sidecar's thresholds and sent
# once it has run long enough for them to fit after its start.
UNATTENDED_AFTER = 30.0
SIMULATED = Timing(late_join=12.0, unattended=40.0, length=70.0)


@dataclass
class Demo:
    """What the simulated calls use: the server's RoomService and the sidecar's URL (where
    avatar_monitor_agent reports)."""

    lkapi: api.LiveKitAPI
    sidecar_url: str


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9465,
                        help="host port for /metrics on 127.0.0.1 (default %(default)s)")
    parser.add_argument("--calls-at-once", type=int, default=3,
                        help="simulated calls in progress at most (default %(default)s)")
    return parser.parse_args()


async def avatar_joins(call: CallDriver) -> Participant:
    """The avatar joins, publishes its media and, as a LemonSlice avatar does once its video
    is visible, says bot_ready on its topic `lemonslice`."""
    avatar, _ = await call.avatar()
    await avatar.room.local_participant.publish_data(
        json.dumps({"type": "bot_ready"}), reliable=True, topic=AVATAR_TOPIC)
    return avatar


async def healthy_call(call: CallDriver, demo: Demo) -> str:
    user = await call.user()
    await call.agent()
    await asyncio.sleep(random.uniform(0.5, 3.0))  # the avatar takes a moment to start
    avatar = await avatar_joins(call)
    await asyncio.sleep(random.uniform(8, 20))
    await user.leave()
    await asyncio.sleep(random.uniform(0.2, 1.0))
    await avatar.leave()
    return "healthy: user hung up"


async def avatar_never_joins(call: CallDriver, demo: Demo) -> str:
    user = await call.user()
    await call.agent()
    await asyncio.sleep(JOIN_TIMEOUT + random.uniform(1, 4))
    await user.leave()
    return "avatar never joined: startup failure (join_timeout)"


async def avatar_removed(call: CallDriver, demo: Demo) -> str:
    await call.user()
    await call.agent()
    await avatar_joins(call)
    await asyncio.sleep(random.uniform(4, 8))
    await demo.lkapi.room.remove_participant(
        api.RoomParticipantIdentity(room=call.room, identity=AVATAR_IDENTITY))
    await asyncio.sleep(1)
    return "avatar removed with RoomService"




async def backend_startup_failure(call: CallDriver, demo: Demo) -> str:
    await call.user()
    agent = await call.agent()
    reporter = Reporter(agent.room, url=demo.sidecar_url, api_key=DEV_KEY, api_secret=DEV_SECRET)
    await wait_for_avatar(agent.room, timeout=JOIN_TIMEOUT / 2, reporter=reporter)
    await reporter.aclose()
    await asyncio.sleep(1)
    return "the backend gave up on the avatar: startup_failure message"


async def tts_dies(call: CallDriver, demo: Demo) -> str:
    user = await call.user()
    agent = await call.agent()
    await avatar_joins(call)
    session = AgentSession()
    reporter = instrument(session, agent.room, url=demo.sidecar_url, api_key=DEV_KEY,
                          api_secret=DEV_SECRET)
    await asyncio.sleep(random.uniform(4, 8))
    error = tts.TTSError(timestamp=time.time(), label="demo.TTS",
                         error=RuntimeError("TTS provider: 401"), recoverable=False)
    session.emit("error", ErrorEvent(error=error, source=None))
    await reporter.aclose()
    await asyncio.sleep(1)
    await demo.lkapi.room.remove_participant(
        api.RoomParticipantIdentity(room=call.room, identity=AVATAR_IDENTITY))
    await asyncio.sleep(1)
    await user.leave()
    return "TTS died (unrecoverable), then the avatar was ended"


Scenario = Callable[[CallDriver, "Demo"], Awaitable[str]]
FIRST_ROUND: list[Scenario] = [healthy_call, avatar_never_joins, tts_dies, avatar_removed,
                               healthy_call, backend_startup_failure]
MIX: list[tuple[Scenario, float]] = [(healthy_call, 0.6), (avatar_never_joins, 0.1),
                                     (backend_startup_failure, 0.1), (avatar_removed, 0.1),
                                     (tts_dies, 0.1)]


async def run_call(server: Server, demo: Demo, scenario: Scenario) -> None:
    room = f"demo-{uuid.uuid4().hex[:8]}"
    call = CallDriver(server, room, subscribe=False)
    try:
        outcome = await scenario(call, demo)
        print(f"  {room}: {outcome}", flush=True)
    except Exception as exc:  # a failed simulated call must not stop the demo
        print(f"  {room}: simulation error: {exc!r}", flush=True)
    finally:
        await call.close()


async def simulate(server: Server, demo: Demo, at_once: int) -> None:
    """Start calls a few seconds apart, at most `at_once` in progress, forever."""
    slots = asyncio.Semaphore(at_once)
    tasks: set[asyncio.Task[None]] = set()
    round_ = iter(FIRST_ROUND)
    try:
        while True:
            await slots.acquire()
            scenario = next(round_, None) or random.choices(
                [s for s, _ in MIX], [w for _, w in MIX])[0]

            async def one(scenario: Scenario = scenario) -> None:
                try:
                    await run_call(server, demo, scenario)
                finally:
                    slots.release()

            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(random.uniform(2, 5))
    finally:
        # Calls in progress hang up before the server goes away.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def send_every_kind(sidecar_url: str) -> None:
    """Once the sidecar has run SIMULATED.length seconds, one signed call of each kind
    (`avatar-monitor simulate`), so the status page shows every verdict."""
    await asyncio.sleep(SIMULATED.length + 5)
    try:
        made = await send(sidecar_url, DEV_KEY, DEV_SECRET, SIMULATED)
    except (OSError, RuntimeError) as exc:
        print(f"  simulated calls: not sent: {exc}", flush=True)
        return
    for call in made:
        print(f"  {call.name}: simulated, expect {call.expected}", flush=True)


def relay_app(target: str) -> web.Application:
    """GET requests (metrics, health, status page, /v1/calls) answered from the sidecar inside
    the namespace."""
    async def relay(request: web.Request) -> web.Response:
        session: aiohttp.ClientSession = request.app["http"]
        headers = {k: v for k, v in request.headers.items() if k.lower() == "accept"}
        async with session.get(target + request.path_qs, headers=headers) as resp:
            return web.Response(status=resp.status, body=await resp.read(),
                                headers={"Content-Type": resp.headers["Content-Type"]})

    async def session_ctx(app: web.Application):  # type: ignore[no-untyped-def]
        app["http"] = aiohttp.ClientSession()
        yield
        await app["http"].close()

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    for path in ("/", "/metrics", "/healthz", "/calls/{room}", "/v1/calls", "/v1/calls/{room}"):
        app.router.add_get(path, relay)
    return app


async def main(args: argparse.Namespace, host_socket: socket.socket, workdir: Path,
               binary: Path) -> None:
    lk_port = free_port()
    sidecar = Sidecar(workdir / "sidecar", DEV_KEY, DEV_SECRET, avatar_join_timeout=JOIN_TIMEOUT,
                      extra_args=["--public-status", "--livekit-url", f"ws://127.0.0.1:{lk_port}",
                                  "--observe-interval", "5",
                                  "--unattended-after", str(UNATTENDED_AFTER)])
    sidecar.start()
    lk = LiveKitServer(binary, workdir / "livekit", DEV_KEY, DEV_SECRET,
                       webhook_urls=[sidecar.webhook_url], development=True, port=lk_port)
    runner = web.AppRunner(relay_app(sidecar.url), access_log=None)
    try:
        lk.start()
        await runner.setup()
        await web.SockSite(runner, host_socket).start()
        print(f"status:   http://127.0.0.1:{args.port}/  (calls and their verdicts)")
        print(f"metrics:  http://127.0.0.1:{args.port}/metrics  (and /healthz, /v1/calls)")
        print(f"logs:     {sidecar.log_path}\n          {lk.log_path}")
        print(f"livekit-server {lk.url} (keys {DEV_KEY}/{DEV_SECRET}) runs in the demo's own "
              "network namespace. Ctrl-C stops everything.\nSimulated calls:", flush=True)
        server = Server(lk.url, DEV_KEY, DEV_SECRET)
        every_kind = asyncio.create_task(send_every_kind(sidecar.url))
        try:
            async with api.LiveKitAPI(lk.http_url, DEV_KEY, DEV_SECRET) as lkapi:
                await simulate(server, Demo(lkapi, sidecar.url), args.calls_at_once)
        finally:
            every_kind.cancel()
    finally:
        await runner.cleanup()
        lk.stop()
        sidecar.stop()


def run() -> int:
    args = parse_args()
    logging.getLogger("livekit").setLevel(logging.CRITICAL)  # teardown chatter of the FFI
    warnings.filterwarnings("ignore", message="The HMAC key is")  # the dev secret is short
    binary = server_binary()  # build (or find) it before leaving the host's network
    print(f"livekit-server: {binary}", flush=True)
    host_socket = socket.create_server(("127.0.0.1", args.port))
    workdir = Path(tempfile.mkdtemp(prefix="avatar-monitor-demo-"))
    try:
        with private_network():
            loop = asyncio.new_event_loop()
            task = loop.create_task(main(args, host_socket, workdir, binary))
            loop.add_signal_handler(signal.SIGINT, task.cancel)
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)
            loop.close()
    except NetnsError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    print("\nstopped")
    return 0


if __name__ == "__main__":
    sys.exit(run())
