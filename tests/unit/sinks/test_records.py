"""The call's record as the status page reads it: entries in time order, one row per fact (a
fact a RoomService listing showed says so in its own row), leaves after the call's end."""

from __future__ import annotations

from avatar_monitor_agent.roles import RoleClassifier
from livekit.protocol import models, webhook

from monitor.calls.core import TrackerSettings
from monitor.calls.tracker import CallTracker
from monitor.intake.events import parse_event
from monitor.sinks.records import (
    CallRecord,
    CallRecords,
    ParticipantRecord,
    entry_text,
    listed,
)
from tests.support.webhooks import Room, agent, avatar, encode, user

R = models.DisconnectReason
T0 = 1_000_000.0


class Recorded:
    """A tracker with only the records listening; the test's events are applied at once."""

    def __init__(self) -> None:
        self.records = CallRecords()
        self.tracker = CallTracker(RoleClassifier(["lemonslice-avatar-agent"]),
                                   TrackerSettings(), [self.records])
        self.room = Room(created_at=T0)

    def apply(self, *events: webhook.WebhookEvent, now: float = T0 + 1) -> None:
        for event in events:
            self.tracker.apply(parse_event(encode(event)), now)

    def record(self) -> CallRecord:
        record = self.records.latest(self.room.name)
        assert record is not None
        return record


def test_entries_are_kept_in_time_order() -> None:
    record = CallRecord("room", "RM_1", T0)
    for at, kind in ((T0, "call_started"), (T0 + 5, "observed"), (T0 + 2, "first_speech"),
                     (T0 + 5, "call_ended"), (T0 + 1, "evicted")):
        record.add(at, kind, *((1.0,) if kind == "first_speech" else ()))
    assert [e[1] for e in record.entries] == [
        "call_started", "evicted", "first_speech", "observed", "call_ended"]


def test_a_leave_after_the_call_ended_is_the_participants_leave() -> None:
    """The user's leave ends the call (the avatar never joined); the agent leaves 3 s later,
    while the ended call lingers: its leave is on the record, not lost."""
    r = Recorded()
    caller, voice = user(T0), agent(T0 + 0.5)
    r.apply(r.room.joined(caller), r.room.joined(voice), r.room.left(caller, T0 + 5))
    r.apply(r.room.left(voice, T0 + 8, R.CLIENT_INITIATED), now=T0 + 8)
    record = r.record()
    assert not record.live and record.ended_at == T0 + 5
    person = next(p for p in record.participants if p.identity == voice.identity)
    assert (person.left_at, person.reason) == (T0 + 8, "client_initiated")
    assert record.entries[-1][1:] == ("left", "agent", voice.identity, "client_initiated")


def test_a_listed_join_and_leave_are_one_row_each() -> None:
    """A join and a leave that a RoomService listing showed mark their own entries."""
    r = Recorded()
    caller, face = user(T0), avatar(T0 + 2)
    r.apply(r.room.joined(caller), r.room.joined(face))
    voice = parse_event(encode(r.room.joined(agent(T0 + 3)))).participant
    assert voice is not None
    r.tracker.reconcile(r.room.sid, r.room.name, T0, [voice], [], T0 + 30)
    gone = parse_event(encode(r.room.left(face, T0 + 60))).participant
    assert gone is not None
    r.tracker.reconcile(r.room.sid, r.room.name, T0, [], [gone], T0 + 60)
    entries = r.record().entries
    assert [e[1] for e in entries].count("reconciled") == 0
    joined = next(e for e in entries if e[1] == "joined" and e[3] == "agent-1")
    left = next(e for e in entries if e[1] == "left" and e[3] == face.identity)
    assert listed(joined) and listed(left)
    assert entry_text(joined) == "agent agent-1 (from a RoomService listing)"
    assert entry_text(left).endswith("(from a RoomService listing)")
    assert not any(listed(e) for e in entries if e not in (joined, left))


def test_a_copy_keeps_every_fact_and_owns_its_lists() -> None:
    record = CallRecord("room-a", "RM_a", 100.0, ended_at=400.0, avatar_joined_at=102.0,
                        departure="user_hangup", session_seconds=298.0,
                        media_open={"audio": ("muted", 150.0)}, recoverable_errors=2)
    record.add(101.0, "joined", "user")
    record.participants.append(ParticipantRecord("user-1", "user", 100.5))

    copy = record.copy(room="room-b", sid="RM_b", started_at=200.0)

    assert (copy.room, copy.sid, copy.started_at) == ("room-b", "RM_b", 200.0)
    assert copy.departure == "user_hangup" and copy.session_seconds == 298.0
    assert copy.recoverable_errors == 2 and copy.media_open == {"audio": ("muted", 150.0)}
    assert copy.entries == record.entries and copy.participants == record.participants
    copy.add(300.0, "left", "user")
    copy.participants[0].left_at = 300.0
    copy.departure = "avatar_idle_timeout"
    assert copy.media_open is not None
    copy.media_open["video"] = ("lost", 160.0)
    assert len(record.entries) == 1 and record.participants[0].left_at is None
    assert record.departure == "user_hangup" and "video" not in (record.media_open or {})
