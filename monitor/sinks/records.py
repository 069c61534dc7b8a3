"""Per-call records for diagnosis: what happened in each live call and the last finished ones.

A listener of call transitions. Each record keeps the facts the verdict rules read (monitor/
verdicts.py) and a short timeline for people. Memory is bounded: at most MAX_ENTRIES timeline
entries and MAX_PARTICIPANTS participants per call, every live call (itself bounded by
--max-calls) and the last `recent` finished calls; older finished calls are dropped first.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from avatar_monitor_agent.roles import Role

from monitor.calls.departures import SESSION_ONLY, Departure
from monitor.calls.inputs import AgentLatency, Event, Participant, PipelineError
from monitor.calls.listener import CallListener
from monitor.calls.model import Call, silence_seconds
from monitor.parts import InPart, Part

MAX_ENTRIES = 48
MAX_PARTICIPANTS = 16
MAX_IDENTITY_CHARS = 128
# How each kind of timeline entry reads; its details fill the fields.
ENTRY_TEXT = {
    "call_started": "first user joined",
    "joined": "{0} {1}",
    "avatar_joined": "{0}, {1:.1f} s after the call started",
    "avatar_ready": "bot_ready, {0:.1f} s after the call started{1}",
    "avatar_said": "the avatar said {0}",
    "startup_failure": "{0}",
    "startup_failure_message": "{0}",
    "abandoned": "after {0:.1f} s of ringing",
    "track": "avatar {0}, {1:.1f} s after joining",
    "left": "{0} {1}: {2}",
    "avatar_left": "{0} after {1:.0f} s",
    "call_ended": "",
    "evicted": "dropped from tracking (--max-calls)",
    "observed": "room observer joined",
    "first_speech": "{0:.1f} s after joining",
    "pipeline_error": "{0} {1} error{2}",
    "session_closed": "{0}{1}",
    "agent_latency": "{0}",
    "late": "{0} {1}, after the call ended",
    "reconciled": "{0} {1} (from a RoomService listing)",
    "unattended": "avatar alone for {0:.0f} s, no user in the room",
    "avatar_session": "{0} took over as the call's avatar",
    "media_off": "avatar {0} {1}",
    "media_back": "avatar {0} back after {1:.0f} s",
}


def utc_clock(at: float | None, millis: bool = False) -> str:
    """A time of day in UTC for people ("" for none): HH:MM:SS, with milliseconds if asked."""
    if at is None:
        return ""
    text = datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%H:%M:%S.%f")
    return text[:-3] if millis else text[:-7]


class _Listed:
    """The last detail of an entry that a RoomService listing showed, not a webhook."""

    def __repr__(self) -> str:
        return "LISTED"


LISTED = _Listed()


def listed(entry: tuple[Any, ...]) -> bool:
    """Whether a RoomService listing showed this fact (webhooks did not)."""
    return entry[-1] is LISTED


def entry_text(entry: tuple[Any, ...]) -> str:
    """An entry's details in words."""
    # Details an older entry lacks (one read back from the history) read as "".
    text = ENTRY_TEXT[entry[1]].format(*entry[2:], "", "", "")
    return f"{text} (from a RoomService listing)" if listed(entry) else text


# The entries of a join or a leave: kind -> the index of the identity in the entry.
_JOIN_ENTRIES = {"joined": 3, "avatar_joined": 2}
_LEAVE_ENTRIES = {"left": 3}


# Entries dated by a webhook's createdAt, which has whole seconds: what they say happened
# within the second after their time (a leave, and what a leave ends).
WHOLE_SECOND_KINDS = frozenset(("left", "avatar_left", "call_ended", "abandoned", "late",
                                "unattended"))


def leave_time(at: float) -> float:
    """Where a leave dated `at` goes among exact times: a whole second (a webhook's createdAt)
    stands for the whole of that second, so it goes at the second's end."""
    return at + 0.999 if float(at).is_integer() else at


def entry_time(entry: tuple[Any, ...]) -> float:
    """An entry's place in time order: its time, or the end of its second for a leave dated in
    whole seconds (it comes after what the same second's exact times say)."""
    at = float(entry[0])
    return leave_time(at) if entry[1] in WHOLE_SECOND_KINDS else at


def entry_clock(entry: tuple[Any, ...]) -> str:
    """An entry's time of day in UTC: HH:MM:SS.mmm, or HH:MM:SS when dated in whole seconds."""
    whole = entry[1] in WHOLE_SECOND_KINDS and float(entry[0]).is_integer()
    return utc_clock(entry[0], millis=not whole)


NO_TRACKS: Mapping[str, float] = MappingProxyType({})


@dataclass(slots=True)
class ParticipantRecord:
    identity: str
    role: str
    joined_at: float
    left_at: float | None = None
    reason: str | None = None  # LiveKit disconnect reason, lower case


@dataclass(slots=True)
class RareRecordFacts:
    """What few live calls' records have (a startup failure, how the call ended, errors, media
    interruptions): kept apart from CallRecord, made at the first of them (monitor/parts.py).
    Each is described where CallRecord declares it."""

    idle_timeout_said_at: float | None = None
    startup_failure: str | None = None
    startup_message: str | None = None
    abandoned_after: float | None = None
    departure: str | None = None
    avatar_reason: str | None = None
    session_seconds: float | None = None
    silence_seconds: float | None = None
    unrecoverable: tuple[str, float] | None = None
    unrecoverable_message: str | None = None
    recoverable_errors: int = 0
    closed_reason: str | None = None
    unattended: tuple[float, float] | None = None
    replaced: int = 0
    media_interruptions: int = 0
    media_open: dict[str, tuple[str, float]] | None = None
    media_longest: tuple[str, str, float, float] | None = None
    media_lost: tuple[str, str, float, float] | None = None


_RARE = Part("rare", RareRecordFacts)


@dataclass(slots=True, init=False)
class CallRecord:
    """One call as diagnosis sees it. Times are unix seconds (server time for webhooks, this
    machine's clock for the room observer and reported events)."""

    room: str
    sid: str
    started_at: float
    ended_at: float | None = None
    trace_id: str = ""  # the call's trace (32 hex digits), when traces are sent
    observed: bool = False
    observed_at: float | None = None
    avatar_joined_at: float | None = None
    join_latency: float | None = None
    # The avatar's own word: whether it announces readiness, when it said bot_ready (and how
    # long after the call's start), when it said idle_timeout.
    expects_ready: bool = False
    ready_at: float | None = None
    ready_latency: float | None = None
    idle_timeout_said_at = InPart[float | None](_RARE)
    # Kind -> seconds after join; replaced, never changed in place, so records share the empty one.
    first_tracks: Mapping[str, float] = field(default_factory=lambda: NO_TRACKS)
    first_speech: float | None = None  # seconds after join
    startup_failure = InPart[str | None](_RARE)  # cause: join_timeout, message
    startup_message = InPart[str | None](_RARE)
    abandoned_after = InPart[float | None](_RARE)  # seconds of ringing before every user left
    departure = InPart[str | None](_RARE)
    avatar_reason = InPart[str | None](_RARE)
    session_seconds = InPart[float | None](_RARE)
    silence_seconds = InPart[float | None](_RARE)
    # The last unrecoverable error: component, at.
    unrecoverable = InPart[tuple[str, float] | None](_RARE)
    unrecoverable_message = InPart[str | None](_RARE)  # its own words, when reported
    recoverable_errors = InPart[int](_RARE)
    closed_reason = InPart[str | None](_RARE)
    # The avatar's longest stay in the room with no user (since, until: server time), and since
    # when it is alone now.
    unattended = InPart[tuple[float, float] | None](_RARE)
    replaced = InPart[int](_RARE)  # avatar sessions that ended with another taking over
    alone_since: float | None = None
    # Interruptions of the avatar's media (counted ones, past the grace): how many; those still
    # open, kind -> (how, since); the longest that came back and the first that never did, as
    # (kind, how, since, seconds). Times on this machine's clock.
    media_interruptions = InPart[int](_RARE)
    media_open = InPart[dict[str, tuple[str, float]] | None](_RARE)
    media_longest = InPart[tuple[str, str, float, float] | None](_RARE)
    media_lost = InPart[tuple[str, str, float, float] | None](_RARE)
    participants: list[ParticipantRecord] = field(default_factory=list)
    # (at, kind, *details): details are formatted for people only when read (entry_text).
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    rare: RareRecordFacts | None = None  # made when one of the attributes InPart[...] above is set

    def __init__(self, room: str, sid: str, started_at: float, **facts: Any) -> None:
        """A call's record; `facts` sets any other field (as a record read back does)."""
        self.room, self.sid, self.started_at = room, sid, started_at
        for name, default, make in _DEFAULTS:
            setattr(self, name, default if make is None else make())
        for name, value in facts.items():
            if name not in RECORD_FIELDS:
                raise TypeError(f"CallRecord has no field {name!r}")
            setattr(self, name, value)

    @property
    def live(self) -> bool:
        return self.ended_at is None

    @property
    def join_to_ready(self) -> float | None:
        """Seconds from the avatar's join to its bot_ready (its video visible)."""
        if self.ready_at is None or self.avatar_joined_at is None:
            return None
        return max(self.ready_at - self.avatar_joined_at, 0.0)

    @property
    def state(self) -> str:
        """ringing, active, failed (the avatar never became active) or ended."""
        if self.avatar_joined_at is not None:
            return "active" if self.live else "ended"
        if self.startup_failure is not None:
            return "failed"
        return "ringing" if self.live else "ended"

    def add(self, at: float, kind: str, *details: Any) -> None:
        """Add to the timeline in time order (entry_time; after the entries of the same time);
        beyond MAX_ENTRIES the oldest entry after the first goes."""
        entries = self.entries
        if len(entries) >= MAX_ENTRIES:
            del entries[1]
        entry = (at, kind, *details)
        if not entries or entry_time(entries[-1]) <= entry_time(entry):
            entries.append(entry)  # the usual case: the latest so far
        else:
            bisect.insort_right(entries, entry, key=entry_time)

    def copy(self, **changes: Any) -> CallRecord:
        """A record with the same facts (its rare ones included, which `dataclasses.replace`
        would lose) and its own participants and timeline, with `changes` applied."""
        facts = {name: getattr(self, name) for name in RECORD_FIELDS} | changes
        facts["participants"] = [dataclasses.replace(p) for p in facts["participants"]]
        facts["entries"] = list(facts["entries"])
        if (media_open := facts["media_open"]) is not None:
            facts["media_open"] = dict(media_open)
        return CallRecord(facts.pop("room"), facts.pop("sid"), facts.pop("started_at"), **facts)

    def participant(self, identity: str) -> ParticipantRecord | None:
        """The participant of this identity still present, if any."""
        for person in self.participants:
            if person.identity == identity and person.left_at is None:
                return person
        return None


# Every field of a record, as the history stores them: CallRecord's own and its rare facts.
RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(CallRecord) if f.name != "rare") + tuple(
    f.name for f in dataclasses.fields(RareRecordFacts))
# CallRecord's fields after the first three: name, default, or what makes the default.
_DEFAULTS: tuple[tuple[str, Any, Callable[[], Any] | None], ...] = tuple(
    (f.name, f.default, None if f.default_factory is dataclasses.MISSING else f.default_factory)
    for f in dataclasses.fields(CallRecord)[3:])

class CallRecords(CallListener):
    """Live records by room sid, and the most recent finished ones."""

    def __init__(self, recent: int = 1000,
                 trace_ids: Callable[[str], int] = lambda sid: 0) -> None:
        self.recent = recent
        # Room sid -> the live call's trace id (0: none, as when no traces are sent).
        self.trace_ids = trace_ids
        self.live: dict[str, CallRecord] = {}
        self.finished: OrderedDict[str, CallRecord] = OrderedDict()  # sid -> record, oldest first

    # -- reading ---------------------------------------------------------------------------

    def latest(self, room: str) -> CallRecord | None:
        """The newest call of a room name (a live one first)."""
        for record in self.newest_first():
            if record.room == room:
                return record
        return None

    def newest_first(self) -> Iterator[CallRecord]:
        yield from reversed(list(self.live.values()))
        yield from reversed(list(self.finished.values()))

    # -- call transitions ------------------------------------------------------------------

    def call_started(self, call: Call) -> None:
        at = call.started_at or 0.0
        record = CallRecord(call.room_name, call.room_sid, at)
        trace_id = self.trace_ids(call.room_sid)
        if trace_id:
            record.trace_id = f"{trace_id:032x}"
        record.add(at, "call_started")
        self.live[call.room_sid] = record

    def participant_joined(self, call: Call, role: Role, participant: Participant,
                           at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        identity = sys.intern(participant.identity[:MAX_IDENTITY_CHARS])
        if len(record.participants) < MAX_PARTICIPANTS:
            record.participants.append(ParticipantRecord(identity, role.value, at))
        if role is not Role.AVATAR:  # the avatar's join has an entry of its own
            record.add(at, "joined", role.value, identity)

    def avatar_joined(self, call: Call, latency: float) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        record.avatar_joined_at = call.avatar_joined_at
        record.join_latency = latency
        record.expects_ready = call.avatar_announces_ready
        record.add(call.avatar_joined_at or record.started_at, "avatar_joined",
                   call.avatar_identity or "", latency)

    def startup_failed(self, call: Call, cause: str, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        record.startup_failure = record.startup_failure or cause
        record.add(at, "startup_failure", cause)

    def backend_message(self, call: Call, message: str, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is not None and record.startup_message is None:
            record.startup_message = message
            record.add(at, "startup_failure_message", message)

    def avatar_ready(self, call: Call, latency: float, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        record.ready_at, record.ready_latency = at, latency
        gap = record.join_to_ready
        record.add(at, "avatar_ready", latency,
                   "" if gap is None else f", {gap:.1f} s after the avatar joined")

    def avatar_said(self, call: Call, message: str, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        if message == "idle_timeout" and record.idle_timeout_said_at is None:
            record.idle_timeout_said_at = at
        record.add(at, "avatar_said", message)

    def call_abandoned(self, call: Call, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is not None:
            record.abandoned_after = max(at - record.started_at, 0.0)
            record.add(at, "abandoned", record.abandoned_after)

    def first_track(self, call: Call, kind: str, delay: float, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is not None and kind not in record.first_tracks:
            record.first_tracks = {**record.first_tracks, kind: delay}
            record.add(at, "track", kind, delay)

    def participant_left(self, call: Call | None, role: Role, participant: Participant,
                         at: float) -> None:
        if call is None:
            return
        # A call that has ended lingers a while: a leave after its end still belongs to it.
        record = self.live.get(call.room_sid) or self.finished.get(call.room_sid)
        if record is None:
            return
        reason = participant.disconnect_reason
        identity = participant.identity[:MAX_IDENTITY_CHARS]
        person = record.participant(identity)
        if person is not None:
            person.left_at, person.reason = at, reason
        elif not record.live:
            return  # not one of the finished call's participants
        elif len(record.participants) < MAX_PARTICIPANTS:
            # There before the call started (an agent dispatched first), or its join lost.
            record.participants.append(ParticipantRecord(
                sys.intern(identity), role.value, participant.joined_at or at, at, reason))
        if role is Role.AVATAR and record.live:
            record.avatar_reason = reason
        record.add(at, "left", role.value, identity, reason)

    def avatar_left(self, call: Call, departure: Departure, session_seconds: float,
                    at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        if departure in SESSION_ONLY:  # the call goes on with another avatar session
            record.replaced += 1
            record.add(at, "avatar_left", departure.value, session_seconds)
            return
        record.departure = departure.value
        record.session_seconds = session_seconds
        if not call.speaking:
            record.silence_seconds = silence_seconds(call, at)
        record.add(at, "avatar_left", departure.value, session_seconds)

    def avatar_session_started(self, call: Call, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is not None:
            record.avatar_joined_at = at
            record.first_tracks = NO_TRACKS
            record.add(at, "avatar_session", call.avatar_identity or "")

    def avatar_alone(self, call: Call, since: float) -> None:
        record = self.live.get(call.room_sid)
        if record is not None:
            record.alone_since = since

    def avatar_unattended(self, call: Call, since: float, until: float) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        record.alone_since = None
        longest = record.unattended
        if longest is None or until - since > longest[1] - longest[0]:
            record.unattended = (since, until)
        record.add(until, "unattended", until - since)

    def call_ended(self, call: Call, at: float) -> None:
        record = self.live.pop(call.room_sid, None)
        if record is None:
            return
        record.ended_at = at
        record.add(at, "call_ended")
        self._keep(record)

    def call_evicted(self, call: Call) -> None:
        record = self.live.pop(call.room_sid, None)
        if record is not None:
            record.ended_at = record.entries[-1][0]  # the last thing known of it
            record.add(record.ended_at, "evicted")
            self._keep(record)

    def observation_started(self, call: Call, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is not None and not record.observed:
            record.observed, record.observed_at = True, at
            record.add(at, "observed")

    def first_speech(self, call: Call, delay: float, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is not None:
            record.first_speech = delay
            record.add(at, "first_speech", delay)

    def pipeline_error(self, call: Call, error: PipelineError, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        if error.recoverable:
            record.recoverable_errors += 1
        else:
            record.unrecoverable = (error.component, at)
            record.unrecoverable_message = error.message or None
        kind = "recoverable" if error.recoverable else "unrecoverable"
        record.add(at, "pipeline_error", kind, error.component, _quoted(error.message))

    def session_closed(self, call: Call, reason: str, at: float, message: str = "") -> None:
        record = self.live.get(call.room_sid)
        if record is not None:
            record.closed_reason = reason
            record.add(at, "session_closed", reason, _quoted(message))

    def agent_latency(self, call: Call, latency: AgentLatency, at: float) -> None:
        record = self.live.get(call.room_sid)
        if record is not None:
            record.add(at, "agent_latency", ", ".join(
                f"{stage} {seconds:.2f} s" for stage, seconds in latency.stages))

    def late_event(self, room_sid: str, event: Event) -> None:
        record = self.finished.get(room_sid)
        if record is None:
            return
        who = event.participant.identity[:MAX_IDENTITY_CHARS] if event.participant else ""
        person = record.participant(who)
        if person is not None and event.name in ("participant_left",
                                                 "participant_connection_aborted"):
            person.left_at = event.created_at
            person.reason = event.participant.disconnect_reason if event.participant else None
        record.add(event.created_at, "late", event.name, who)

    def reconciled(self, call: Call, action: str, participant: Participant | None,
                   at: float) -> None:
        """A join or leave that a listing showed: its entry says so, or one is added."""
        record = self.live.get(call.room_sid) or self.finished.get(call.room_sid)
        if record is None:
            return
        who = participant.identity[:MAX_IDENTITY_CHARS] if participant else ""
        kinds = _JOIN_ENTRIES if action == "join" else _LEAVE_ENTRIES
        for index in range(len(record.entries) - 1, -1, -1):  # the newest: the one just added
            entry = record.entries[index]
            if entry[1] in kinds and entry[kinds[entry[1]]] == who and not listed(entry):
                record.entries[index] = (*entry, LISTED)
                return
        record.add(at, "reconciled", action, who)

    def _keep(self, record: CallRecord) -> None:
        if self.recent <= 0:
            return
        self.finished[record.sid] = record
        self.finished.move_to_end(record.sid)
        while len(self.finished) > self.recent:
            self.finished.popitem(last=False)

    def media_interrupted(self, call: Call, kind: str, how: str, since: float) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        record.media_interruptions += 1
        if record.media_open is None:
            record.media_open = {}
        record.media_open[kind] = (how, since)
        record.add(since, "media_off", kind, how)

    def media_interruption_ended(self, call: Call, kind: str, how: str, since: float,
                                 seconds: float, restored: bool) -> None:
        record = self.live.get(call.room_sid)
        if record is None:
            return
        if record.media_open is not None:
            record.media_open.pop(kind, None)
            record.media_open = record.media_open or None
        gap = (kind, how, since, seconds)
        if restored:
            if record.media_longest is None or seconds > record.media_longest[3]:
                record.media_longest = gap
            record.add(since + seconds, "media_back", kind, seconds)
        elif record.media_lost is None:
            record.media_lost = gap


def _quoted(message: str) -> str:
    """An error's own words as a timeline entry's last detail (": ..."), or nothing."""
    return f": {message}" if message else ""
