"""Why an avatar left a call: an ordered list of rules over the facts known at its departure.

The first rule that matches names the departure. Rules for richer signals (idle timeout, pipeline
errors, from the room observer) slot into `RULES` at the place their priority says.

Two departures are normal endings, not failures: the user hung up, or the voice agent ended the
call (it left first, or closed its session for a non-error reason, and the avatar then left, was
removed or the room was deleted within `AGENT_HANGUP_WINDOW`). A user whose connection was lost
(`user_network`) is not a failure of the avatar's side either, but not a hang-up: a warning.

A crash is not hidden by a quick hang-up. livekit-server declares a participant whose process or
network died gone only after its connection timeout (CONNECTION_TIMEOUT, dated at the timeout,
`CONNECTION_TIMEOUT_DELAY` after the death). An avatar, or its voice agent, that leaves so less
than that after the user was already dead when the user hung up: the call failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from monitor.limits import IDLE_TIMEOUT


class Departure(StrEnum):
    USER_HANGUP = "user_hangup"
    AGENT_HANGUP = "agent_hangup"
    PIPELINE_ERROR = "pipeline_error"
    IDLE_TIMEOUT = "idle_timeout"
    SESSION_TIMEOUT = "session_timeout"
    REMOVED = "removed"
    SERVER = "server"
    NETWORK = "network"
    AGENT_LOST = "agent_lost"
    USER_NETWORK = "user_network"
    # One avatar session of the call ended and another took over (livekit-agents' hot swap, or
    # the avatar rejoining with its identity: DUPLICATE_IDENTITY); the call goes on.
    REPLACED = "replaced"
    UNKNOWN = "unknown"


SERVER_REASONS = frozenset({"room_deleted", "room_closed", "server_shutdown"})
NETWORK_REASONS = frozenset(
    {"signal_close", "connection_timeout", "media_failure", "state_mismatch", "join_failure"}
)
# Reasons by which a voice agent's leave says it failed (its process or network died, or its job
# failed: AGENT_ERROR).
AGENT_FAILED_REASONS = NETWORK_REASONS | {"agent_error"}
# Departures that are how calls normally end.
HEALTHY = frozenset({Departure.USER_HANGUP, Departure.AGENT_HANGUP})
# Departures that end one avatar session, not the call.
SESSION_ONLY = frozenset({Departure.REPLACED})
# Departures that end a call on the user's side: not the avatar's failure, not a hang-up.
USER_SIDE = frozenset({Departure.USER_NETWORK})
# livekit-server sends a dead participant's leave (CONNECTION_TIMEOUT) this long after its
# connection died, at the least (v1.13.5: 20 to 22 s, measured with SIGKILL and a cut network).
CONNECTION_TIMEOUT_DELAY = 20.0
# AgentSession close reasons by which the voice agent itself ends a call (`session.shutdown()`,
# livekit-agents' EndCallTool; a task that completes). Not `job_shutdown`: a job is also shut
# down when the room is deleted under it.
AGENT_ENDED_REASONS = frozenset({"user_initiated", "task_completed"})
# room_finished's end reason when the room was deleted through the API (EndCallTool's default).
ROOM_END_API_DELETE = "api_delete"
# The agent ending the call and the avatar's departure are taken as one ending within this time.
AGENT_HANGUP_WINDOW = 10.0
# Webhook times have whole seconds: a later event may carry an earlier second.
CLOCK_GRAIN = 1.0
# An avatar's leave that nothing explains yet waits this long for the avatar's own word
# (idle_timeout, a fatal error), which its voice agent forwards by HTTP and which can therefore
# arrive after the leave's webhook.
AVATAR_WORD_WINDOW = 2.0


@dataclass(slots=True, frozen=True)
class DepartureFacts:
    """What is known when the avatar leaves. Durations come from server timestamps."""

    disconnect_reason: str
    session_seconds: float | None
    user_left_first: bool
    session_timeout: float
    timeout_tolerance: float
    # From the room observer; None when the call was not observed.
    silence_seconds: float | None = None
    idle_timeout: float = IDLE_TIMEOUT
    unrecoverable_error_age: float | None = None  # seconds from the last such error to leaving
    # Seconds from the voice agent ending the call (its own leave, or its session closing for
    # one of AGENT_ENDED_REASONS) to the avatar leaving; negative when the agent ended it after.
    agent_ended_before: float | None = None
    session_close_reason: str | None = None  # the voice agent's session, when it reported one
    room_end_reason: str | None = None  # from room_finished, when it came first
    # Seconds from the last user's leave to the avatar's (when user_left_first), and whether
    # that user's connection was lost (a network reason) rather than hung up.
    user_left_before: float | None = None
    user_connection_lost: bool = False
    # Seconds from the voice agent's failed leave (AGENT_FAILED_REASONS) to the avatar's, and
    # its reason.
    agent_lost_before: float | None = None
    agent_lost_reason: str = ""
    # The avatar said `idle_timeout` (topic lemonslice) before the user or the agent ended it.
    avatar_said_idle_timeout: bool = False


# An unrecoverable pipeline error this long before the avatar left is taken as the reason.
PIPELINE_ERROR_WINDOW = 30.0


Rule = Callable[[DepartureFacts], Departure | None]


def agent_hangup(facts: DepartureFacts) -> Departure | None:
    """The voice agent ended the call, and the avatar went with it: it followed the agent out,
    or the agent removed it or deleted the room (the agent's end may then be seen just after)."""
    gap = facts.agent_ended_before
    if gap is None or facts.session_close_reason == "error":
        return None
    reason = facts.disconnect_reason
    if reason == "client_initiated":
        ended = -CLOCK_GRAIN <= gap <= AGENT_HANGUP_WINDOW
    elif reason == "participant_removed":
        ended = abs(gap) <= AGENT_HANGUP_WINDOW
    elif reason == "room_deleted":
        ended = (abs(gap) <= AGENT_HANGUP_WINDOW
                 and facts.room_end_reason in (None, ROOM_END_API_DELETE))
    else:
        ended = False
    return Departure.AGENT_HANGUP if ended else None


def latest_death(reason: str, left_before: float) -> float:
    """Seconds before the avatar's leave by which a participant that left `left_before` seconds
    before it with `reason` had died, at the latest: a CONNECTION_TIMEOUT leave is dated at the
    timeout, the other reasons when they happened."""
    if reason == "connection_timeout":
        return left_before + CONNECTION_TIMEOUT_DELAY
    return left_before


def dead_before_hangup(facts: DepartureFacts) -> Departure | None:
    """The avatar, or the voice agent it follows, had died when the user hung up (the user gave
    up on a frozen avatar): the call failed, whoever left first."""
    hung_up = facts.user_left_before
    if hung_up is None:
        return None
    if facts.disconnect_reason in NETWORK_REASONS and \
            latest_death(facts.disconnect_reason, 0.0) > hung_up + CLOCK_GRAIN:
        return Departure.NETWORK
    lost = facts.agent_lost_before
    if lost is not None and latest_death(facts.agent_lost_reason, lost) > hung_up + CLOCK_GRAIN:
        return Departure.AGENT_LOST
    return None


def user_network(facts: DepartureFacts) -> Departure | None:
    """The last user's connection was lost (not a hang-up) before the avatar left."""
    return Departure.USER_NETWORK if facts.user_left_first and facts.user_connection_lost \
        else None


def agent_lost(facts: DepartureFacts) -> Departure | None:
    """The voice agent failed (died, lost its network, AGENT_ERROR) and the avatar followed it
    out, or was sent away, within AGENT_HANGUP_WINDOW."""
    lost = facts.agent_lost_before
    if lost is None or not -CLOCK_GRAIN <= lost <= AGENT_HANGUP_WINDOW:
        return None
    return Departure.AGENT_LOST


def avatar_error(facts: DepartureFacts) -> Departure | None:
    """The avatar's own job failed (AGENT_ERROR: the avatar is an agent participant)."""
    return Departure.PIPELINE_ERROR if facts.disconnect_reason == "agent_error" else None


def removed(facts: DepartureFacts) -> Departure | None:
    return Departure.REMOVED if facts.disconnect_reason == "participant_removed" else None


def server(facts: DepartureFacts) -> Departure | None:
    return Departure.SERVER if facts.disconnect_reason in SERVER_REASONS else None


def user_hangup(facts: DepartureFacts) -> Departure | None:
    return Departure.USER_HANGUP if facts.user_left_first else None


def pipeline_error(facts: DepartureFacts) -> Departure | None:
    age = facts.unrecoverable_error_age
    return Departure.PIPELINE_ERROR if age is not None and age <= PIPELINE_ERROR_WINDOW else None


def idle_timeout(facts: DepartureFacts) -> Departure | None:
    if facts.silence_seconds is None or facts.unrecoverable_error_age is not None:
        return None
    near = abs(facts.silence_seconds - facts.idle_timeout) <= facts.timeout_tolerance
    return Departure.IDLE_TIMEOUT if near else None


def avatar_said_idle_timeout(facts: DepartureFacts) -> Departure | None:
    """The avatar's own word: it said `idle_timeout`, then left."""
    return Departure.IDLE_TIMEOUT if facts.avatar_said_idle_timeout else None


def session_timeout(facts: DepartureFacts) -> Departure | None:
    if facts.session_seconds is None or facts.session_timeout <= 0:
        return None
    near = abs(facts.session_seconds - facts.session_timeout) <= facts.timeout_tolerance
    return Departure.SESSION_TIMEOUT if near else None


def network(facts: DepartureFacts) -> Departure | None:
    return Departure.NETWORK if facts.disconnect_reason in NETWORK_REASONS else None


# Root causes first: a dead pipeline (the user may hang up on a mute avatar, the backend may then
# remove it), the avatar's own word that it timed out (a dead pipeline makes it idle, so that
# comes first), an avatar or agent that died before the user hung up, then the user's side ending
# the call (a lost connection, a hang-up; after which livekit-server closes the room on the agents,
# or the backend removes them), then the voice agent failing or ending the call (by leaving,
# removing the avatar or deleting the room). Then explicit server-side ends, then the avatar's own
# timeouts (a process killed at its session limit may still look like a network drop).
RULES: tuple[Rule, ...] = (
    pipeline_error, avatar_error, avatar_said_idle_timeout, dead_before_hangup, user_network,
    user_hangup, agent_lost, agent_hangup, removed, server, idle_timeout, session_timeout,
    network)


def classify(facts: DepartureFacts, rules: tuple[Rule, ...] = RULES) -> Departure:
    """The departure named by the first matching rule, or UNKNOWN."""
    for rule in rules:
        departure = rule(facts)
        if departure is not None:
            return departure
    return Departure.UNKNOWN
