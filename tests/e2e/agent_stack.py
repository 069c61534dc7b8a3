"""The real livekit-agents stack around one call: a worker that livekit-server dispatches a job
to (tests/e2e/agent_worker.py), the avatar provider (tests/e2e/avatar_provider.py), and the
frontend user, who talks to the agent by text."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from livekit import api

from tests.e2e.agent_worker import READY_LINE, Plan
from tests.e2e.avatar_provider import AvatarProvider
from tests.support import procs
from tests.support.livekit_server import LiveKitServer
from tests.support.metrics import poll_until
from tests.support.participants import Participant, Server, join, user_token
from tests.support.sidecar import REPO, Sidecar

CHAT_TOPIC = "lk.chat"  # livekit-agents' text input
AGENT_STATE = "lk.agent.state"


class AgentWorker:
    """`python -m tests.e2e.agent_worker`, registered with the test's livekit-server."""

    def __init__(self, workdir: Path, livekit: LiveKitServer, sidecar: Sidecar,
                 provider: AvatarProvider) -> None:
        self.name = f"avatar-agent-{uuid.uuid4().hex[:8]}"
        self.log_path = workdir / "agent-worker.log"
        self._env = {"LIVEKIT_URL": livekit.url, "LIVEKIT_API_KEY": livekit.api_key,
                     "LIVEKIT_API_SECRET": livekit.api_secret,
                     "AVATAR_MONITOR_URL": sidecar.url, "AVATAR_PROVIDER_URL": provider.url,
                     "AGENT_NAME": self.name, "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until livekit-server has registered it."""
        self.process = procs.start([sys.executable, "-m", "tests.e2e.agent_worker"],
                                   self.log_path, env=self._env, cwd=REPO)

        async def registered() -> bool:
            assert self.process is not None and self.process.poll() is None, \
                f"agent worker exited:\n{procs.tail(self.log_path)}"
            return READY_LINE in procs.tail(self.log_path, 200_000)

        await poll_until(registered, bool, "the agent worker registered", timeout)

    def stop(self) -> int | None:
        return procs.stop(self.process) if self.process is not None else None

    def kill(self) -> None:
        """SIGKILL the worker and its job processes: the agent leaves no goodbye."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(5)


async def dispatch(room_service: api.LiveKitAPI, worker: AgentWorker, room: str,
                   plan: Plan) -> None:
    """Explicit dispatch: livekit-server sends the worker a job for `room`."""
    await room_service.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(
        agent_name=worker.name, room=room, metadata=json.dumps(dataclasses.asdict(plan))))


class Frontend:
    """The user's app: joins the room, types to the agent, hangs up."""

    def __init__(self, participant: Participant) -> None:
        self.participant = participant

    @classmethod
    async def join(cls, server: Server, room: str, identity: str = "user") -> Frontend:
        return cls(await join(server, user_token(server, room, identity), identity))

    async def say(self, text: str) -> None:
        await self.participant.room.local_participant.send_text(text, topic=CHAT_TOPIC)

    async def hang_up(self) -> None:
        await self.participant.leave()

    async def agent_state(self, state: str, timeout: float = 20.0) -> None:
        """Wait until the voice agent's `lk.agent.state` attribute is `state`."""

        async def states() -> set[str]:
            return {p.attributes.get(AGENT_STATE, "")
                    for p in self.participant.room.remote_participants.values()}

        await poll_until(states, lambda seen: state in seen, f"agent state {state}", timeout)
