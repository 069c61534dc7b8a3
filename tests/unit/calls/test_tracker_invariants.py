"""The tracker's invariants (docs/tracking.md, "Invariants"), one test each, named after it."""

from __future__ import annotations

from collections import Counter

from avatar_monitor_agent.roles import RoleClassifier
from livekit.protocol import models, webhook
from prometheus_client import CollectorRegistry

from monitor.calls.core import LATE_JOIN_GRACE, ROOM_GONE_GRACE, TrackerSettings
from monitor.calls.departures import AGENT_HANGUP_WINDOW, AVATAR_WORD_WINDOW
from monitor.calls.inputs import AgentState, AvatarIdleTimeout, Participant, StartupFailureMessage
from monitor.calls.listener import CallListener
from monitor.calls.model import Call, CallState
from monitor.calls.tracker import CallTracker
from monitor.intake.events import parse_event
from monitor.sinks.metrics import Metrics
from tests.support.webhooks import Room, agent, avatar, encode, user

R = models.DisconnectReason
T0 = 1_000_000.0


class Told(CallListener):
    """Every transition told, as (name, room sid, detail)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, object]] = []

    def count(self, name: str, detail: object = None) -> int:
        return sum(1 for seen, _, d in self.seen if seen == name and detail in (None, d))

    def departures(self) -> list[object]:
        return [d for seen, _, d in self.seen if seen == "avatar_left"]

    def call_started(self, call: Call) -> None:
        self.seen.append(("call_started", call.room_sid, None))

    def participant_joined(self, call: Call, role: object, participant: Participant,
                           at: float) -> None:
        self.seen.append(("participant_joined", call.room_sid, participant.sid))

    def avatar_joined(self, call: Call, latency: float) -> None:
        self.seen.append(("avatar_joined", call.room_sid, None))

    def startup_failed(self, call: Call, cause: str, at: float) -> None:
        self.seen.append(("startup_failed", call.room_sid, cause))

    def call_abandoned(self, call: Call, at: float) -> None:
        self.seen.append(("call_abandoned", call.room_sid, None))

    def participant_left(self, call: Call | None, role: object, participant: Participant,
                         at: float) -> None:
        self.seen.append(("participant_left", "", participant.sid))

    def avatar_left(self, call: Call, departure: object, session_seconds: float,
                    at: float) -> None:
        self.seen.append(("avatar_left", call.room_sid, str(departure)))

    def call_forgotten(self, call: Call) -> None:
        self.seen.append(("call_forgotten", call.room_sid, None))

    def late_event(self, room_sid: str, event: object) -> None:
        self.seen.append(("late_event", room_sid, None))

    def media_interrupted(self, call: Call, kind: str, how: str, since: float) -> None:
        self.seen.append(("media_interrupted", call.room_sid, kind))

    def media_interruption_ended(self, call: Call, kind: str, how: str, since: float,
                                 seconds: float, restored: bool) -> None:
        self.seen.append(("media_interruption_ended", call.room_sid, kind))


class Calls:
    """A tracker and what it told, driven with webhooks on the test's clock."""

    def __init__(self, started_at: float = 0.0, *listeners: CallListener,
                 **settings: float) -> None:
        self.told = Told()
        self.tracker = CallTracker(RoleClassifier(["lemonslice-avatar-agent"]),
                                   TrackerSettings(**settings),  # type: ignore[arg-type]
                                   [self.told, *listeners], lambda: started_at)

    def at(self, now: float, *events: webhook.WebhookEvent) -> None:
        for event in events:
            self.tracker.apply(parse_event(encode(event)), now)

    def state(self, room: Room) -> CallState | None:
        call = self.tracker.call(room.sid)
        return call.state if call is not None else None


def listed(room: Room, *who: models.ParticipantInfo) -> list[Participant]:
    """Participants as a RoomService listing gives them (read as their webhook would be)."""
    participants = [parse_event(encode(room.joined(p))).participant for p in who]
    return [p for p in participants if p is not None]


def active(calls: Calls, room: Room, face: models.ParticipantInfo | None = None
           ) -> tuple[models.ParticipantInfo, models.ParticipantInfo]:
    caller, face = user(T0), face or avatar(T0 + 1)
    calls.at(T0 + 1, room.joined(caller), room.joined(face))
    assert calls.state(room) is CallState.ACTIVE
    return caller, face


def test_invariant_a_call_is_counted_once_ever() -> None:
    calls, room = Calls(linger=10), Room(created_at=T0)
    caller, face = active(calls, room)
    calls.at(T0 + 2, room.joined(caller))  # a retry
    calls.tracker.reconcile(room.sid, room.name, T0, listed(room, caller, face), [], T0 + 3)
    calls.at(T0 + 20, room.left(caller, T0 + 20), room.left(face, T0 + 20))
    calls.tracker.expire(T0 + 31)
    assert calls.tracker.call(room.sid) is None  # ended and forgotten
    calls.at(T0 + 40, room.joined(caller))  # the join retried once more, long after
    calls.tracker.reconcile(room.sid, room.name, T0, listed(room, caller), [], T0 + 41)
    assert calls.told.count("call_started") == 1
    assert calls.tracker.call(room.sid) is None


def test_invariant_a_join_is_counted_once() -> None:
    calls, room = Calls(), Room(created_at=T0)
    caller, face = active(calls, room)
    voice = agent(T0 + 1)
    calls.at(T0 + 1, room.joined(voice))
    calls.at(T0 + 2, room.joined(face), room.joined(caller), room.joined(voice))  # retries
    calls.tracker.reconcile(room.sid, room.name, T0, listed(room, caller, face, voice), [],
                            T0 + 3)
    assert calls.told.count("avatar_joined") == 1
    assert calls.told.count("participant_joined", voice.sid) == 1
    assert calls.told.count("participant_joined", face.sid) == 1
    assert calls.told.count("participant_joined", caller.sid) == 1


def test_invariant_a_departure_is_counted_once() -> None:
    calls, room = Calls(), Room(created_at=T0)
    caller, face = active(calls, room)
    voice = agent(T0)
    calls.at(T0 + 2, room.joined(voice))
    for _ in range(2):  # each leave retried
        calls.at(T0 + 30, room.left(caller, T0 + 30), room.left(voice, T0 + 30),
                 room.left(face, T0 + 31))
    for _ in range(2):  # and listings that no longer show them
        calls.tracker.reconcile(room.sid, room.name, T0, [], listed(room, caller, face),
                                T0 + 40)
    for who in (caller, voice, face):
        assert calls.told.count("participant_left", who.sid) == 1
    assert calls.told.departures() == ["user_hangup"]


def test_invariant_a_startup_failure_is_counted_once() -> None:
    calls = Calls(join_timeout=5)
    reported_first, timed_out_first = Room(created_at=T0), Room(created_at=T0)
    calls.at(T0, reported_first.joined(user(T0)), timed_out_first.joined(user(T0)))
    calls.tracker.signal(reported_first.sid, StartupFailureMessage("no GPU"), T0 + 1, T0 + 1)
    calls.tracker.expire(T0 + 5)  # the first room's deadline passes after its failure
    calls.tracker.signal(timed_out_first.sid, StartupFailureMessage("late"), T0 + 6, T0 + 6)
    calls.tracker.expire(T0 + 10)
    assert calls.told.seen.count(("startup_failed", reported_first.sid, "message")) == 1
    assert calls.told.seen.count(("startup_failed", timed_out_first.sid, "join_timeout")) == 1
    assert calls.told.count("startup_failed") == 2


def test_invariant_a_restart_counts_from_counted_from() -> None:
    registry = CollectorRegistry()
    calls = Calls(T0 + 100, Metrics(registry))
    room, caller, face = Room(created_at=T0), user(T0), avatar(T0 + 1)
    calls.tracker.reconcile(room.sid, room.name, T0, listed(room, caller, face), [], T0 + 120)
    call = calls.tracker.call(room.sid)
    assert call is not None and call.counted_from == T0 + 100
    assert calls.told.count("call_started") == 1  # told: the record knows the call
    assert registry.get_sample_value("avatar_calls_started_total") == 0  # counted before
    assert registry.get_sample_value("avatar_join_latency_seconds_count") == 0
    calls.at(T0 + 130, room.left(caller, T0 + 130), room.left(face, T0 + 130))
    assert registry.get_sample_value("avatar_departures_total",
                                     {"cause": "user_hangup"}) == 1  # after: counted
    later = Room(created_at=T0 + 200)
    calls.at(T0 + 201, later.joined(user(T0 + 200)))
    later_call = calls.tracker.call(later.sid)
    assert later_call is not None and later_call.counted_from == 0.0
    assert registry.get_sample_value("avatar_calls_started_total") == 1


def test_invariant_the_join_deadline_fails_a_ringing_call_on_time() -> None:
    calls, room = Calls(join_timeout=30), Room(created_at=T0)
    calls.at(T0, room.joined(user(T0)))
    calls.tracker.expire(T0 + 29.9)
    assert calls.state(room) is CallState.RINGING
    calls.tracker.expire(T0 + 30)
    assert calls.state(room) is CallState.FAILED
    assert calls.told.count("startup_failed", "join_timeout") == 1


def test_invariant_a_late_join_waits_the_late_join_grace() -> None:
    calls = Calls(join_timeout=5)
    left_in_time, stayed = Room(created_at=T0), Room(created_at=T0)
    caller = user(T0)
    calls.at(T0 + 10, left_in_time.joined(caller), stayed.joined(user(T0)))  # 5 s late
    calls.tracker.expire(T0 + 10 + LATE_JOIN_GRACE - 0.1)
    assert calls.told.count("startup_failed") == 0
    calls.at(T0 + 10.5, left_in_time.left(caller, T0 + 3))  # its leave, right behind
    calls.tracker.expire(T0 + 10 + LATE_JOIN_GRACE)
    assert calls.told.count("call_abandoned") == 1
    assert calls.told.seen.count(("startup_failed", stayed.sid, "join_timeout")) == 1
    assert calls.told.count("startup_failed") == 1


def test_invariant_silence_of_the_idle_timeout_is_an_idle_timeout() -> None:
    calls = Calls(idle_timeout=60, session_timeout=0)
    idle, short = Room(created_at=T0), Room(created_at=T0)
    for room, left in ((idle, 61.0), (short, 30.0)):
        _, face = active(calls, room)
        calls.tracker.observing(room.sid, T0 + 1)  # silence is known from here
        calls.at(T0 + left, room.left(face, T0 + left))
    assert calls.told.departures() == ["idle_timeout", "unknown"]


def test_invariant_a_session_of_the_session_timeout_is_a_session_timeout() -> None:
    calls = Calls(session_timeout=300)
    limit, short = Room(created_at=T0), Room(created_at=T0)
    for room, left in ((limit, 301.0), (short, 100.0)):
        _, face = active(calls, room)
        calls.at(T0 + left, room.left(face, T0 + left))
    assert calls.told.departures() == ["session_timeout", "unknown"]


def test_invariant_an_ended_call_lingers_then_is_forgotten() -> None:
    calls, room = Calls(linger=10), Room(created_at=T0)
    caller, face = active(calls, room)
    calls.at(T0 + 50, room.left(caller, T0 + 50), room.left(face, T0 + 50))
    assert calls.state(room) is CallState.ENDED
    calls.tracker.expire(T0 + 59.9)
    assert calls.state(room) is CallState.ENDED  # still there for late webhooks
    calls.tracker.expire(T0 + 60)
    assert calls.tracker.call(room.sid) is None
    assert calls.told.count("call_forgotten") == 1
    calls.at(T0 + 70, room.left(face, T0 + 50))  # a retry, after the call was forgotten
    assert calls.told.count("late_event") == 1
    assert calls.tracker.call(room.sid) is None and calls.told.count("call_started") == 1


def test_invariant_the_agent_hangup_window() -> None:
    calls = Calls()
    ended_by_agent, removed = Room(created_at=T0), Room(created_at=T0)
    voices = {}
    for room in (ended_by_agent, removed):
        _, face = active(calls, room)
        voices[room.sid] = voice = agent(T0 + 2)
        calls.at(T0 + 2, room.joined(voice))
        calls.at(T0 + 60, room.left(face, T0 + 60, R.PARTICIPANT_REMOVED))
    calls.tracker.expire(T0 + 60 + AGENT_HANGUP_WINDOW - 0.1)
    assert calls.told.departures() == []  # both held for the agent's end
    calls.at(T0 + 61, ended_by_agent.left(voices[ended_by_agent.sid], T0 + 61))  # in time
    calls.tracker.expire(T0 + 60 + AGENT_HANGUP_WINDOW)
    assert calls.told.departures() == ["agent_hangup", "removed"]


def test_invariant_the_avatar_word_window() -> None:
    calls = Calls(idle_timeout=600, session_timeout=0)
    said, silent = Room(created_at=T0), Room(created_at=T0)
    for room in (said, silent):
        _, face = active(calls, room)
        calls.tracker.signal(room.sid, AgentState("listening"), T0 + 5, T0 + 5)  # it reports
        calls.at(T0 + 60, room.left(face, T0 + 60))
    calls.tracker.expire(T0 + 60 + AVATAR_WORD_WINDOW - 0.1)
    assert calls.told.departures() == []  # both held for the avatar's word
    calls.tracker.signal(said.sid, AvatarIdleTimeout(), T0 + 61, T0 + 61)
    calls.tracker.expire(T0 + 60 + AVATAR_WORD_WINDOW)
    assert calls.told.departures() == ["idle_timeout", "unknown"]


def test_invariant_a_gone_room_ends_its_call_after_the_grace() -> None:
    calls = Calls()
    gone, told_in_time = Room(created_at=T0), Room(created_at=T0)
    active(calls, gone)
    caller, face = active(calls, told_in_time)
    for room in (gone, told_in_time):
        calls.tracker.room_gone(room.sid, T0 + 60)
    calls.at(T0 + 61, told_in_time.left(caller, T0 + 59), told_in_time.left(face, T0 + 59))
    calls.tracker.expire(T0 + 60 + ROOM_GONE_GRACE - 0.1)
    assert calls.state(gone) is CallState.ACTIVE
    calls.tracker.expire(T0 + 60 + ROOM_GONE_GRACE)
    assert calls.state(gone) is CallState.ENDED
    assert calls.told.departures() == ["user_hangup", "server"]


def test_invariant_media_off_shorter_than_the_grace_is_not_an_interruption() -> None:
    calls, room = Calls(interruption_grace=2), Room(created_at=T0)
    active(calls, room)
    call = calls.tracker.call(room.sid)
    assert call is not None and call.avatar_sid is not None
    media = calls.tracker.avatar_media
    media(room.sid, call.avatar_sid, "audio", False, "muted", T0 + 10)
    media(room.sid, call.avatar_sid, "audio", True, "unmuted", T0 + 11)
    calls.tracker.expire(T0 + 13)
    assert calls.told.count("media_interrupted") == 0
    media(room.sid, call.avatar_sid, "audio", False, "muted", T0 + 20)
    calls.tracker.expire(T0 + 22)
    calls.tracker.expire(T0 + 30)
    media(room.sid, call.avatar_sid, "audio", True, "unmuted", T0 + 31)
    assert Counter(name for name, _, _ in calls.told.seen if "media" in name) == {
        "media_interrupted": 1, "media_interruption_ended": 1}
