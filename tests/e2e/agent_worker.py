"""A livekit-agents voice agent with a video avatar, as an app would write one; run as a worker.

    python -m tests.e2e.agent_worker      # LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET,
                                          # AVATAR_MONITOR_URL, AVATAR_PROVIDER_URL, AGENT_NAME

The worker registers with livekit-server under AGENT_NAME and takes explicitly dispatched jobs.
Each job's metadata is a `Plan` (JSON). The job runs an AgentSession with the scripted LLM and
TTS of tests/e2e/agent_fakes.py, instrumented with `avatar_monitor_agent.instrument()`, and an
avatar built the way avatar plugins build theirs (`ProviderAvatarSession`): it mints the avatar's
token (kind agent, `lk.publish_on_behalf` = the agent's identity), sends the agent's speech to
the avatar with `DataStreamAudioOutput`, and asks the avatar provider
(tests/e2e/avatar_provider.py) to join. The frontend user talks to it by text (`lk.chat`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass

import aiohttp
from avatar_monitor_agent import Reporter, instrument, wait_for_avatar
from livekit import api, rtc
from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    APIConnectOptions,
    JobContext,
    JobExecutorType,
    RunContext,
    function_tool,
    get_job_context,
    room_io,
)
from livekit.agents.beta.tools import EndCallTool
from livekit.agents.types import ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.avatar import AvatarSession, DataStreamAudioOutput

from tests.e2e.agent_fakes import SAMPLE_RATE, ScriptedLLM, ScriptedTTS

log = logging.getLogger("tests.e2e.agent_worker")
READY_LINE = "agent worker registered"
# Not avatar-monitor's default identity: the sidecar and wait_for_avatar know the avatar by its
# lk.publish_on_behalf attribute, as they would any avatar plugin's.
AVATAR_IDENTITY = "e2e-avatar-agent"


@dataclass(frozen=True)
class Plan:
    """How one dispatched job behaves."""

    end_call_deletes_room: bool = True  # EndCallTool(delete_room=...)
    max_unrecoverable_errors: int = 3  # livekit-agents' default
    avatar_wait: float = 20.0  # wait_for_avatar's timeout
    avatar_identity: str = AVATAR_IDENTITY
    instrument: bool = True  # False: the sidecar has only livekit-agents' own broadcast
    data_channel: bool = True  # instrument()'s reports on the data channel too, not HTTP only

    @classmethod
    def from_metadata(cls, metadata: str) -> Plan:
        return cls(**json.loads(metadata or "{}"))


class ProviderAvatarSession(AvatarSession):
    """An avatar plugin's session: the avatar runs at the provider and joins the room itself."""

    def __init__(self, provider_url: str, identity: str) -> None:
        super().__init__()
        self._provider_url = provider_url
        self._identity = identity

    @property
    def avatar_identity(self) -> str:
        return self._identity

    @property
    def provider(self) -> str:
        return "e2e"

    async def start(self, agent_session: AgentSession, room: rtc.Room) -> None:
        await super().start(agent_session, room)
        job = get_job_context()
        token = (api.AccessToken(os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
                 .with_kind("agent").with_identity(self._identity).with_name(self._identity)
                 .with_grants(api.VideoGrants(room_join=True, room=room.name))
                 .with_attributes({ATTRIBUTE_PUBLISH_ON_BEHALF: job.local_participant_identity})
                 .to_jwt())
        agent_session.output.audio = DataStreamAudioOutput(
            room, destination_identity=self._identity, sample_rate=SAMPLE_RATE,
            wait_remote_track=rtc.TrackKind.KIND_VIDEO, wait_playback_start=True)
        async with aiohttp.ClientSession() as http, http.post(
                f"{self._provider_url}/v1/sessions",
                json={"livekit_url": os.environ["LIVEKIT_URL"], "livekit_token": token}) as resp:
            resp.raise_for_status()


class Assistant(Agent):
    def __init__(self, avatar: ProviderAvatarSession, plan: Plan) -> None:
        super().__init__(instructions="You are a friendly avatar.",
                         tools=[EndCallTool(delete_room=plan.end_call_deletes_room)])
        self._avatar = avatar
        self._swaps = 0

    @function_tool
    async def swap_avatar(self, context: RunContext) -> None:
        """Hot swap: start another avatar, wait for it, then remove the first."""
        self._swaps += 1
        room = get_job_context().room
        new = ProviderAvatarSession(os.environ["AVATAR_PROVIDER_URL"],
                                    f"{self._avatar.avatar_identity}-{self._swaps}")
        await new.start(context.session, room)
        await new.wait_for_join()
        old, self._avatar = self._avatar, new
        await old.aclose()

    @function_tool
    async def close_avatar_and_end(self, context: RunContext) -> None:
        """End the call: remove the avatar, then shut the session down."""
        await self._avatar.aclose()
        context.session.shutdown()


async def entrypoint(ctx: JobContext) -> None:
    plan = Plan.from_metadata(ctx.job.metadata)
    await ctx.connect()
    session = AgentSession(
        llm=ScriptedLLM(), tts=ScriptedTTS(),
        conn_options=SessionConnectOptions(
            tts_conn_options=APIConnectOptions(max_retry=1, retry_interval=0.1),
            max_unrecoverable_errors=plan.max_unrecoverable_errors))
    reporter = (instrument(session, ctx.room, data_channel=plan.data_channel) if plan.instrument
                else Reporter(ctx.room))
    session.on("close", lambda ev: ctx.shutdown(reason=f"session closed: {ev.reason.value}"))
    avatar = ProviderAvatarSession(os.environ["AVATAR_PROVIDER_URL"], plan.avatar_identity)
    await avatar.start(session, ctx.room)
    await session.start(
        Assistant(avatar, plan), room=ctx.room, record=False,
        room_options=room_io.RoomOptions(audio_input=False, audio_output=False,
                                         text_input=True))
    if not await wait_for_avatar(ctx.room, timeout=plan.avatar_wait, reporter=reporter):
        session.shutdown()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    server = AgentServer(job_executor_type=JobExecutorType.THREAD, num_idle_processes=0,
                         host="127.0.0.1", port=0)
    server.rtc_session(entrypoint, agent_name=os.environ["AGENT_NAME"])
    server.on("worker_registered", lambda worker_id, _info: print(READY_LINE, worker_id,
                                                                  flush=True))
    asyncio.run(server.run(devmode=True))


if __name__ == "__main__":
    main()
