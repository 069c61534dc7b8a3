"""What the tracker takes in, as types: a webhook's event and participant (parsed by
monitor.intake.events, built from RoomService listings and livekit-rtc by
monitor.calls.participants) and the signals the voice agent and the avatar report (parsed by
monitor.reports.signals)."""

from __future__ import annotations

from dataclasses import dataclass


# Not frozen: frozen slotted dataclasses are five times slower to build, on the hot path.
@dataclass(slots=True)
class Participant:
    """A participant as a webhook describes it. Times are unix seconds from the server."""

    sid: str
    identity: str
    kind: str  # ParticipantInfo.Kind name: STANDARD, AGENT, SIP, EGRESS, ...
    joined_at: float | None
    disconnect_reason: str  # DisconnectReason in lower case, "unknown_reason" when absent
    publishes_on_behalf: bool
    hidden: bool = False  # a hidden participant (a recorder, an observer): never a caller
    on_behalf_of: str = ""  # for an avatar: the identity of the agent it publishes for
    avatar_provider: str = ""  # lk.avatar_provider, when set (LiveKit's inference avatars)


@dataclass(slots=True)
class Event:
    """One webhook, with server timestamps (unix seconds)."""

    name: str
    id: str
    created_at: float
    room_sid: str
    room_name: str
    room_created_at: float | None
    participant: Participant | None
    track_kind: str | None  # audio, video, data
    track_published_at: float | None
    num_dropped: int = 0  # webhooks livekit-server dropped for this URL before this one
    room_end_reason: str | None = None  # room_finished: api_delete, idle_timeout, ... or None


@dataclass(slots=True, frozen=True)
class StartupFailureMessage:
    """The backend says the avatar failed to become active."""

    message: str = ""  # free text, truncated: for a call's timeline only


@dataclass(slots=True, frozen=True)
class PipelineError:
    component: str  # one of avatar_monitor_agent.schema.COMPONENTS
    recoverable: bool
    message: str = ""  # the error's own words, bounded: for people, never a label


@dataclass(slots=True, frozen=True)
class SessionClosed:
    reason: str  # one of avatar_monitor_agent.schema.CLOSE_REASONS
    message: str = ""  # the error it closed on, if any: for people, never a label


@dataclass(slots=True, frozen=True)
class AgentLatency:
    """One turn's latencies in seconds, by stage (a subset of LATENCY_STAGES)."""

    stages: tuple[tuple[str, float], ...]


@dataclass(slots=True, frozen=True)
class AvatarReady:
    """`bot_ready`: the avatar has joined and its video frames are visible to the user."""


@dataclass(slots=True, frozen=True)
class AvatarIdleTimeout:
    """`idle_timeout`: the avatar says it is leaving after its idle timeout."""


@dataclass(slots=True, frozen=True)
class AvatarError:
    """`error` or `video_generation_error`: a pipeline error of component `avatar`."""

    kind: str  # error, video_generation_error
    fatal: bool
    message: str = ""  # its `error` or `message` text, bounded

    @property
    def error(self) -> PipelineError:
        return PipelineError("avatar", not self.fatal, self.message)


@dataclass(slots=True, frozen=True)
class AvatarLatency:
    """`metric`: the avatar's latencies in seconds, by stage (AVATAR_STAGES values)."""

    stages: tuple[tuple[str, float], ...]

    @property
    def latency(self) -> AgentLatency:
        return AgentLatency(self.stages)


@dataclass(slots=True, frozen=True)
class AgentState:
    """The voice agent's state (livekit-agents' `agent_state_changed`, as its `lk.agent.state`
    attribute): `speaking` while the avatar plays the agent's speech."""

    state: str  # one of AGENT_STATES

    @property
    def speaking(self) -> bool:
        return self.state == "speaking"


# What the avatar itself says (only its own participant's messages are taken).
AvatarSignal = AvatarReady | AvatarIdleTimeout | AvatarError | AvatarLatency
AVATAR_SIGNALS = (AvatarReady, AvatarIdleTimeout, AvatarError, AvatarLatency)
Signal = (StartupFailureMessage | PipelineError | SessionClosed | AgentLatency | AgentState
          | AvatarSignal)

