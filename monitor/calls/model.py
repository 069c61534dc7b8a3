"""The call model: what is tracked of one call, and the rooms whose call has ended."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.parts import InPart, Part


class CallState(StrEnum):
    PENDING = "pending"
    RINGING = "ringing"
    ACTIVE = "active"
    FAILED = "failed"
    ENDED = "ended"


@dataclass(slots=True)
class NextAvatar:
    """A second avatar in a call whose first avatar is still there (a hot swap under way)."""

    sid: str
    joined_at: float
    identity: str
    on_behalf_of: str
    tracks: dict[str, float] = field(default_factory=dict)  # kind -> first published (server)


@dataclass(slots=True, frozen=True)
class HeldDeparture:
    """An avatar's leave kept back until the voice agent's end is seen, or the wait is over."""

    reason: str
    session_seconds: float
    at: float  # server time of the leave
    left: float  # the leave on this machine's clock (see WebhookApplier._avatar_left)


@dataclass(slots=True)
class MediaOff:
    """The avatar's audio or video stopped: since when (this machine's clock), how (unpublished,
    muted, dry), and whether it has been counted as an interruption (it outlasted the grace)."""

    since: float
    how: str
    counted: bool = False


@dataclass(slots=True)
class RareCallFacts:
    """What few live calls have (how it is ending, a hot swap, a held leave, errors, media
    interruptions): kept apart from Call, made at the first of them (monitor/parts.py). Each is
    described where Call declares it."""

    next_avatar: NextAvatar | None = None
    user_left_first: bool = False
    users_left_at: float | None = None
    user_connection_lost: bool = False
    room_finished: bool = False
    startup_failure_counted: bool = False
    ended_at: float | None = None
    avatar_unknown: bool = False
    unrecoverable_error_at: float | None = None
    poor_quality_since: float | None = None
    poor_quality: str = ""
    agent_ended_at: float | None = None
    session_close_reason: str | None = None
    agent_lost_at: float | None = None
    agent_lost_reason: str = ""
    room_end_reason: str | None = None
    held: HeldDeparture | None = None
    media_off: dict[str, MediaOff] | None = None
    avatar_said_idle_timeout: bool = False


_RARE = Part("rare", RareCallFacts)


@dataclass(slots=True)
class Call:
    """What is tracked of one call. Times are unix seconds from the server."""

    room_sid: str
    room_name: str
    room_created_at: float | None
    state: CallState = CallState.PENDING
    tracked_at: float = 0.0  # local clock: when this record was made
    started_at: float | None = None
    deadline: float | None = None
    avatar_sid: str | None = None
    avatar_identity: str | None = None
    avatar_joined_at: float | None = None
    avatar_left: bool = False
    # A second avatar in the call while the first is there (a hot swap under way): it takes over
    # when the first leaves.
    next_avatar = InPart[NextAvatar | None](_RARE)
    tracks_seen: int = 0  # bit per track kind: audio 1, video 2
    users: dict[str, bool] = field(default_factory=dict)  # user sid -> still present
    user_left_first = InPart[bool](_RARE)
    # When the last user left before the avatar (server time), and whether that user's
    # connection was lost rather than hung up (a network disconnect reason).
    users_left_at = InPart[float | None](_RARE)
    user_connection_lost = InPart[bool](_RARE)
    room_finished = InPart[bool](_RARE)
    startup_failure_counted = InPart[bool](_RARE)
    ended_at = InPart[float | None](_RARE)  # server time the call ended
    # Agents and other non-user participants: sid -> still present (a retried leave counts once).
    others: dict[str, bool] | None = None
    # Server time from which this call's transitions are counted in metrics: a call rebuilt
    # from a RoomService listing after a restart was counted up to then by the previous process.
    counted_from: float = 0.0
    # First seen through the leave of a user who joined before this process started, with no
    # listing to say whether the avatar had joined: its startup outcome cannot be known.
    avatar_unknown = InPart[bool](_RARE)
    # From the room observer (local clock, unix seconds); unknown until it watches the room.
    observed_at: float | None = None
    # The voice agent's own state reports (agent_state), first received: speech is known from
    # then, as from observed_at (the sender's clock, or the arrival).
    speech_reported_at: float | None = None
    speaking: bool = False
    speech_changed_at: float | None = None  # the latest change of `speaking` applied
    first_speech_at: float | None = None
    last_speech_at: float | None = None
    unrecoverable_error_at = InPart[float | None](_RARE)
    poor_quality_since = InPart[float | None](_RARE)
    poor_quality = InPart[str](_RARE)
    # The voice agent the avatar publishes for (lk.publish_on_behalf), when it said so.
    avatar_agent: str = ""
    agent_seen: bool = False  # a voice agent joined the call or reported on it
    # When the voice agent ended the call (server time of its own leave, or its session closing
    # for a non-error reason), and how its session closed, when it reported that.
    agent_ended_at = InPart[float | None](_RARE)
    session_close_reason = InPart[str | None](_RARE)
    # The voice agent left with a failure reason (its process or network died, AGENT_ERROR):
    # server time of that leave, and the reason.
    agent_lost_at = InPart[float | None](_RARE)
    agent_lost_reason = InPart[str](_RARE)
    room_end_reason = InPart[str | None](_RARE)
    # Since when (server time) the avatar has been in the room with no user: a billed avatar
    # session nobody watches (before the first user came, or after the last one left).
    unattended_since: float | None = None
    held = InPart[HeldDeparture | None](_RARE)  # the avatar's leave, waiting for the agent's end
    # The avatar's audio or video, by kind, while off (unpublished, muted, dry): at most two.
    media_off = InPart[dict[str, MediaOff] | None](_RARE)
    # The avatar's own word (topic lemonslice; local clock): whether it is one that announces
    # readiness (--ready-identity, --ready-provider), when it said bot_ready, and whether it
    # said idle_timeout before the user or the agent ended the call.
    avatar_announces_ready: bool = False
    avatar_ready_at: float | None = None
    avatar_said_idle_timeout = InPart[bool](_RARE)
    rare: RareCallFacts | None = None  # made when one of the attributes InPart[...] above is set


class EndedRooms:
    """Room sids whose call ended, with the server time it ended: a late or retried webhook for
    a finished call is recognised by its room sid long after the call itself was evicted.
    Bounded; the oldest are forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._ended: OrderedDict[str, float] = OrderedDict()

    def add(self, room_sid: str, ended_at: float) -> None:
        self._ended[room_sid] = ended_at
        self._ended.move_to_end(room_sid)
        if len(self._ended) > self._capacity:
            self._ended.popitem(last=False)

    def ended_at(self, room_sid: str) -> float | None:
        return self._ended.get(room_sid)


def silence_seconds(call: Call, at: float) -> float | None:
    """How long the avatar had been silent at `at` (local clock): since its last speech, or, for
    a call watched from mid-session and silent since then, since the watch began (a lower
    bound). None while neither the observer watched the call nor the voice agent reported its
    state."""
    known = [t for t in (call.observed_at, call.speech_reported_at) if t is not None]
    if not known:
        return None
    if call.speaking:
        return 0.0
    since = call.last_speech_at or max(call.avatar_joined_at or at, min(known))
    return max(at - since, 0.0)
