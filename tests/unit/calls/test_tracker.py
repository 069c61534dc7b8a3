"""The call state machine alone: typed events in, transitions out, no network."""

from __future__ import annotations

import time

from avatar_monitor_agent.roles import Role, RoleClassifier
from livekit.protocol import models, webhook

from monitor.calls.core import TrackerSettings
from monitor.calls.departures import AGENT_HANGUP_WINDOW, CONNECTION_TIMEOUT_DELAY
from monitor.calls.inputs import (
    AvatarError,
    AvatarIdleTimeout,
    AvatarLatency,
    AvatarReady,
    PipelineError,
    SessionClosed,
)
from monitor.calls.listener import CallListener
from monitor.calls.model import CallState
from monitor.calls.tracker import CallTracker
from monitor.intake.events import parse_event
from tests.support.webhooks import Room, agent, avatar, encode, participant, user

R = models.DisconnectReason


class Recorder(CallListener):
    """Keeps every transition as (name, details)."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def call_started(self, call):
        self.seen.append(("started", call.room_sid))

    def avatar_joined(self, call, latency):
        self.seen.append(("avatar_joined", round(latency, 3)))

    def startup_failed(self, call, cause, at):
        self.seen.append(("startup_failed", cause))

    def call_abandoned(self, call, at):
        self.seen.append(("abandoned",))

    def avatar_left(self, call, departure, session_seconds, at):
        self.seen.append(("avatar_left", departure.value))

    def call_ended(self, call, at):
        self.seen.append(("ended",))

    def call_evicted(self, call):
        self.seen.append(("evicted", call.room_sid))

    def avatar_ready(self, call, latency, at):
        self.seen.append(("avatar_ready", round(latency, 3)))

    def avatar_said(self, call, message, at):
        self.seen.append(("avatar_said", message))

    def pipeline_error(self, call, error, at):
        self.seen.append(("pipeline_error", error))

    def agent_latency(self, call, latency, at):
        self.seen.append(("agent_latency", latency.stages))


def make(**settings: float) -> tuple[CallTracker, Recorder]:
    recorder = Recorder()
    tracker = CallTracker(RoleClassifier(["lemonslice-avatar-agent", "*-avatar"]),
                          TrackerSettings(**settings), [recorder])
    return tracker, recorder


def apply(tracker: CallTracker, *events, now: float | None = None) -> None:
    for event in events:
        tracker.apply(parse_event(encode(event)), time.time() if now is None else now)


def test_roles() -> None:
    roles = RoleClassifier(["lemonslice-avatar-agent", "*-avatar"])
    ev = lambda p: parse_event(encode(Room().joined(p))).participant  # noqa: E731
    t = time.time()
    assert roles.role_of(ev(avatar(t))) is Role.AVATAR
    assert roles.role_of(ev(participant("acme-avatar", t))) is Role.AVATAR  # glob
    assert roles.role_of(ev(avatar(t, identity="other-provider"))) is Role.AVATAR  # on behalf
    assert roles.role_of(ev(agent(t))) is Role.AGENT
    assert roles.role_of(ev(user(t))) is Role.USER
    assert roles.role_of(ev(participant("phone", t, models.ParticipantInfo.SIP))) is Role.USER
    assert roles.role_of(ev(participant("rec", t, models.ParticipantInfo.EGRESS))) is Role.OTHER


def test_deadline_fires_once_at_its_server_time() -> None:
    tracker, recorder = make(join_timeout=30)
    t0 = 1_000_000.0
    room = Room(created_at=t0)
    apply(tracker, room.joined(user(t0)), now=t0 + 1)
    tracker.expire(t0 + 29.9)
    assert ("startup_failed", "join_timeout") not in recorder.seen
    tracker.expire(t0 + 30)
    tracker.expire(t0 + 60)
    assert recorder.seen.count(("startup_failed", "join_timeout")) == 1
    assert tracker.counts[CallState.FAILED] == 1


def test_room_finished_waits_for_the_avatars_leave() -> None:
    tracker, recorder = make(linger=10)
    t0 = time.time()
    room, caller, face = Room(created_at=t0), user(t0), avatar(t0 + 1)
    apply(tracker, room.joined(caller), room.joined(face), room.finished(t0 + 50), now=t0)
    assert tracker.counts[CallState.ACTIVE] == 1  # still waiting for the avatar's leave
    apply(tracker, room.left(face, t0 + 49, R.ROOM_DELETED), now=t0 + 1)
    assert ("avatar_left", "server") in recorder.seen
    assert tracker.counts[CallState.ACTIVE] == 0


def test_room_finished_without_the_avatars_leave_ends_after_linger() -> None:
    tracker, recorder = make(linger=10)
    t0 = time.time()
    room = Room(created_at=t0)
    apply(tracker, room.joined(user(t0)), room.joined(avatar(t0 + 1)), room.finished(t0 + 50),
          now=t0)
    tracker.expire(t0 + 5)
    assert tracker.counts[CallState.ACTIVE] == 1
    tracker.expire(t0 + 11)
    assert ("avatar_left", "unknown") in recorder.seen
    assert tracker.counts[CallState.ACTIVE] == 0
    tracker.expire(t0 + 30)
    assert tracker.call(room.sid) is None  # evicted after lingering


def test_ended_calls_are_evicted_after_linger_and_ignore_late_events() -> None:
    tracker, recorder = make(linger=10)
    t0 = time.time()
    room, caller, face = Room(created_at=t0), user(t0), avatar(t0 + 1)
    apply(tracker, room.joined(caller), room.joined(face), room.left(caller, t0 + 20),
          room.left(face, t0 + 21), now=t0)
    assert tracker.call(room.sid) is not None
    apply(tracker, room.joined(caller), now=t0 + 1)  # a late retry of the user's join
    assert recorder.seen.count(("started", room.sid)) == 1
    tracker.expire(t0 + 11)
    assert tracker.call(room.sid) is None
    assert sum(tracker.counts.values()) == 0


def test_a_new_user_after_the_call_ended_starts_a_new_call() -> None:
    tracker, recorder = make()
    t0 = time.time()
    room, caller, face = Room(created_at=t0), user(t0), avatar(t0 + 1)
    apply(tracker, room.joined(caller), room.joined(face), room.left(caller, t0 + 20),
          room.left(face, t0 + 21), room.joined(user(t0 + 30)))
    assert recorder.seen.count(("started", room.sid)) == 2
    assert tracker.counts[CallState.RINGING] == 1


def test_leave_after_the_deadline_is_a_startup_failure_not_an_abandon() -> None:
    tracker, recorder = make(join_timeout=30)
    t0 = time.time() - 100
    room, caller = Room(created_at=t0), user(t0)
    # The leave is delivered before the deadline check ran, but happened after the deadline.
    apply(tracker, room.joined(caller), room.left(caller, t0 + 40), now=t0 + 1)
    assert ("startup_failed", "join_timeout") in recorder.seen
    assert ("abandoned",) not in recorder.seen


def test_eviction_counts_only_live_calls() -> None:
    tracker, recorder = make(max_calls=2)
    t0 = time.time()
    first = Room(created_at=t0)
    caller = user(t0)
    apply(tracker, first.joined(caller), first.left(caller, t0 + 1))  # abandoned, lingering
    apply(tracker, Room().joined(user(t0)), Room().joined(user(t0)), Room().joined(user(t0)))
    evicted = [entry for entry in recorder.seen if entry[0] == "evicted"]
    assert len(evicted) == 1 and tracker.tracked == 2


def test_a_second_avatar_does_not_replace_the_first() -> None:
    tracker, recorder = make()
    t0 = time.time()
    room = Room(created_at=t0)
    apply(tracker, room.joined(user(t0)), room.joined(avatar(t0 + 1)),
          room.joined(avatar(t0 + 5, identity="spare-avatar")))
    assert recorder.seen.count(("avatar_joined", 1.0)) == 1
    assert len([s for s in recorder.seen if s[0] == "avatar_joined"]) == 1


def test_a_late_user_leave_after_the_linger_counts_nothing() -> None:
    """The avatar leaves first; the user leaves after the call was evicted. The leave belongs to
    the finished call (the user joined before it ended): no new call, no startup failure."""
    tracker, recorder = make(linger=10, join_timeout=30)
    t0 = 1_000_000.0
    room, caller, face = Room(created_at=t0), user(t0), avatar(t0 + 1)
    apply(tracker, room.joined(caller), room.joined(face), room.left(face, t0 + 60), now=t0 + 60)
    tracker.expire(t0 + 75)
    assert tracker.call(room.sid) is None
    apply(tracker, room.left(caller, t0 + 80), now=t0 + 80)
    tracker.expire(t0 + 200)
    assert recorder.seen.count(("started", room.sid)) == 1
    assert ("startup_failed", "join_timeout") not in recorder.seen
    assert tracker.call(room.sid) is None and sum(tracker.counts.values()) == 0


def test_retried_leaves_count_once_without_their_ids() -> None:
    """Retries with new ids (as if the id memory had moved on) are recognised by content."""
    class Lefts(Recorder):
        def participant_left(self, call, role, participant, at):
            self.seen.append(("left", role.value))

    lefts = Lefts()
    tracker = CallTracker(RoleClassifier(["lemonslice-avatar-agent"]), TrackerSettings(),
                          [lefts])
    t0 = time.time()
    room, caller, voice, face = Room(created_at=t0), user(t0), agent(t0), avatar(t0 + 1)
    apply(tracker, room.joined(caller), room.joined(voice), room.joined(face))
    for _ in range(2):  # each build has a fresh event id
        apply(tracker, room.left(voice, t0 + 30), room.left(caller, t0 + 31),
              room.left(face, t0 + 32))
    assert sorted(s for s in lefts.seen if s[0] == "left") == [
        ("left", "agent"), ("left", "avatar"), ("left", "user")]
    assert lefts.seen.count(("avatar_left", "user_hangup")) == 1


def test_a_user_joining_after_the_end_starts_a_new_call_even_after_eviction() -> None:
    tracker, recorder = make(linger=10)
    t0 = 1_000_000.0
    room, caller = Room(created_at=t0), user(t0)
    apply(tracker, room.joined(caller), room.left(caller, t0 + 5), now=t0 + 5)
    tracker.expire(t0 + 20)
    apply(tracker, room.joined(caller), now=t0 + 21)  # a late retry: the old call's user
    assert recorder.seen.count(("started", room.sid)) == 1
    apply(tracker, room.joined(user(t0 + 30)), now=t0 + 30)
    assert recorder.seen.count(("started", room.sid)) == 2


# -- the voice agent ending the call -------------------------------------------------------------

END_API_DELETE = models.RoomEndReason.ROOM_END_API_DELETE
T0 = 1_000_000.0


class AgentCall:
    """A user, the voice agent `agent-1` and its avatar, in a call since T0."""

    def __init__(self) -> None:
        self.tracker, self.recorder = make()
        self.room = Room(created_at=T0)
        self.caller, self.voice, self.face = user(T0), agent(T0), avatar(T0 + 1)
        self.at(1, self.room.joined(self.caller), self.room.joined(self.voice),
                self.room.joined(self.face))

    def at(self, t: float, *events: webhook.WebhookEvent) -> None:
        """Events that arrive t seconds after T0."""
        apply(self.tracker, *events, now=T0 + t)

    def left(self, who: models.ParticipantInfo, t: float, reason: int = R.CLIENT_INITIATED
             ) -> None:
        self.at(t, self.room.left(who, T0 + t, reason))

    def session_closed(self, reason: str, t: float) -> None:
        self.tracker.signal(self.room.sid, SessionClosed(reason), T0 + t, T0 + t)

    def departures(self) -> list[str]:
        return [seen[1] for seen in self.recorder.seen if seen[0] == "avatar_left"]


def test_agent_leaves_and_the_avatar_follows() -> None:
    """EndCallTool(delete_room=False): the agent's job ends, the avatar follows it out."""
    call = AgentCall()
    call.left(call.voice, 60)
    call.left(call.face, 61)
    assert call.departures() == ["agent_hangup"]
    assert ("ended",) in call.recorder.seen


def test_avatar_removed_then_the_agent_session_closes() -> None:
    """AvatarSession.aclose() removes the avatar, then session.shutdown() closes the session:
    the removal waits for the agent's end, which arrives within the window."""
    call = AgentCall()
    call.left(call.face, 60, R.PARTICIPANT_REMOVED)
    assert call.departures() == []  # held
    call.session_closed("user_initiated", 61)
    assert call.departures() == ["agent_hangup"]
    call.tracker.expire(T0 + 60 + AGENT_HANGUP_WINDOW + 1)
    assert call.departures() == ["agent_hangup"]  # released once


def test_avatar_removed_then_the_agent_leaves() -> None:
    call = AgentCall()
    call.left(call.face, 60, R.PARTICIPANT_REMOVED)
    call.left(call.voice, 62)
    assert call.departures() == ["agent_hangup"]


def test_room_deleted_by_the_agent() -> None:
    """EndCallTool() default: session.shutdown(), then DeleteRoom sends everyone away."""
    call = AgentCall()
    call.session_closed("user_initiated", 60)
    for who in (call.caller, call.face, call.voice):
        call.left(who, 60, R.ROOM_DELETED)
    call.at(60, call.room.finished(T0 + 60, END_API_DELETE))
    assert call.departures() == ["agent_hangup"]


def test_room_deleted_before_the_agents_close_is_seen() -> None:
    """The webhooks may beat the agent's report of its session closing."""
    call = AgentCall()
    call.at(60, call.room.finished(T0 + 60, END_API_DELETE))
    call.left(call.face, 60, R.ROOM_DELETED)
    assert call.departures() == []
    call.session_closed("user_initiated", 60.5)
    assert call.departures() == ["agent_hangup"]


def test_removed_without_the_agent_ending_is_a_removal() -> None:
    call = AgentCall()
    call.left(call.face, 60, R.PARTICIPANT_REMOVED)
    # The user leaves because the avatar vanished: still a removal, not a hang-up.
    call.left(call.caller, 62)
    call.tracker.expire(T0 + 60 + AGENT_HANGUP_WINDOW - 0.1)
    assert call.departures() == []
    call.tracker.expire(T0 + 60 + AGENT_HANGUP_WINDOW)
    assert call.departures() == ["removed"]


def test_removed_from_a_call_with_no_voice_agent_is_a_removal_at_once() -> None:
    """No agent joined, none reported and the avatar names none: nothing can come to make the
    removal an agent hang-up, so it is not held."""
    tracker, recorder = make()
    room, caller, face = Room(created_at=T0), user(T0), avatar(T0 + 1, on_behalf_of="")
    apply(tracker, room.joined(caller), room.joined(face), now=T0 + 1)
    apply(tracker, room.left(face, T0 + 60, R.PARTICIPANT_REMOVED), now=T0 + 60)
    assert [s[1] for s in recorder.seen if s[0] == "avatar_left"] == ["removed"]


def test_removed_avatar_that_names_its_agent_waits_for_it() -> None:
    """The agent's join was not seen, but the avatar publishes on its behalf: held."""
    tracker, recorder = make()
    room, caller, face = Room(created_at=T0), user(T0), avatar(T0 + 1)
    apply(tracker, room.joined(caller), room.joined(face), now=T0 + 1)
    apply(tracker, room.left(face, T0 + 60, R.PARTICIPANT_REMOVED), now=T0 + 60)
    assert [s for s in recorder.seen if s[0] == "avatar_left"] == []
    tracker.signal(room.sid, SessionClosed("task_completed"), T0 + 61, T0 + 61)
    assert [s[1] for s in recorder.seen if s[0] == "avatar_left"] == ["agent_hangup"]


def test_an_agent_there_before_the_call_record_is_waited_for() -> None:
    """The agent joined before any user and its room's room_started never arrived (or a
    listing after a restart showed it first): the call still knows it has a voice agent."""
    tracker, recorder = make()
    room, caller = Room(created_at=T0), user(T0 + 1)
    voice, face = agent(T0), avatar(T0 + 2, on_behalf_of="")
    apply(tracker, room.joined(voice), room.joined(caller), room.joined(face), now=T0 + 2)
    apply(tracker, room.left(face, T0 + 60, R.PARTICIPANT_REMOVED), now=T0 + 60)
    assert [s for s in recorder.seen if s[0] == "avatar_left"] == []  # held
    apply(tracker, room.left(voice, T0 + 61), now=T0 + 61)
    assert [s[1] for s in recorder.seen if s[0] == "avatar_left"] == ["agent_hangup"]


def test_room_deleted_by_a_server_shutdown_is_a_server_departure() -> None:
    call = AgentCall()
    call.left(call.face, 60, R.ROOM_DELETED)
    call.at(60.2, call.room.finished(T0 + 60, models.RoomEndReason.ROOM_END_SERVER_SHUTDOWN))
    assert call.departures() == ["server"]


def test_an_error_close_is_never_an_agent_hangup() -> None:
    call = AgentCall()
    call.session_closed("error", 59)
    call.left(call.voice, 60)
    call.left(call.face, 60)
    assert call.departures() == ["unknown"]


def test_another_agents_leave_is_not_the_avatars_agent() -> None:
    call = AgentCall()
    helper = agent(T0, identity="agent-2")
    call.at(2, call.room.joined(helper))
    call.left(helper, 59)
    call.left(call.face, 60)
    assert call.departures() == ["unknown"]


def test_an_agent_that_left_long_before_did_not_end_the_call() -> None:
    call = AgentCall()
    call.left(call.voice, 30)
    call.left(call.face, 30 + AGENT_HANGUP_WINDOW + 2)
    assert call.departures() == ["unknown"]


def test_the_agent_crashing_is_not_a_hangup() -> None:
    """The agent's process dies: CONNECTION_TIMEOUT, and its avatar follows it out."""
    call = AgentCall()
    call.left(call.voice, 60, R.CONNECTION_TIMEOUT)
    call.left(call.face, 62)
    assert call.departures() == ["agent_lost"]


def test_an_agent_error_is_an_agent_lost() -> None:
    call = AgentCall()
    call.left(call.voice, 60, R.AGENT_ERROR)
    call.left(call.face, 60)
    assert call.departures() == ["agent_lost"]


def test_an_avatar_leaving_with_agent_error_is_a_pipeline_error() -> None:
    call = AgentCall()
    call.left(call.face, 60, R.AGENT_ERROR)
    assert call.departures() == ["pipeline_error"]


def test_a_crashed_agent_is_not_hidden_by_the_users_hang_up() -> None:
    """The agent died at 40 (declared gone at 60); the user gave up at 50."""
    call = AgentCall()
    call.left(call.caller, 50)
    call.left(call.voice, 60, R.CONNECTION_TIMEOUT)
    call.left(call.face, 62)
    assert call.departures() == ["agent_lost"]


def test_a_crashed_avatar_is_not_hidden_by_the_users_hang_up() -> None:
    """The avatar died at 40 (declared gone at 60); the user gave up at 50."""
    call = AgentCall()
    call.left(call.caller, 50)
    call.left(call.face, 60, R.CONNECTION_TIMEOUT)
    assert call.departures() == ["network"]


def test_an_avatar_dropping_its_connection_after_the_hang_up_is_a_hang_up() -> None:
    """An avatar service that drops its connection (no leave) when the user hangs up: its
    CONNECTION_TIMEOUT comes the server's timeout after the hang-up, a normal call."""
    call = AgentCall()
    call.left(call.caller, 50)
    call.left(call.face, 50 + CONNECTION_TIMEOUT_DELAY, R.CONNECTION_TIMEOUT)
    assert call.departures() == ["user_hangup"]


def test_an_agent_dropping_its_connection_after_the_hang_up_is_a_hang_up() -> None:
    call = AgentCall()
    call.left(call.caller, 50)
    call.left(call.voice, 50 + CONNECTION_TIMEOUT_DELAY, R.CONNECTION_TIMEOUT)
    call.left(call.face, 52 + CONNECTION_TIMEOUT_DELAY)
    assert call.departures() == ["user_hangup"]


def test_a_users_lost_connection_is_not_a_hang_up() -> None:
    call = AgentCall()
    call.left(call.caller, 60, R.CONNECTION_TIMEOUT)
    call.left(call.voice, 61)
    call.left(call.face, 61)
    assert call.departures() == ["user_network"]


def test_every_network_reason_of_the_user_is_a_lost_connection() -> None:
    for reason in (R.SIGNAL_CLOSE, R.MEDIA_FAILURE, R.JOIN_FAILURE, R.STATE_MISMATCH):
        call = AgentCall()
        call.left(call.caller, 60, reason)
        call.left(call.face, 61)
        assert call.departures() == ["user_network"], R.Name(reason)


def test_a_user_hangup_stays_a_user_hangup() -> None:
    """The user leaves, the session closes (participant_disconnected), agent and avatar go."""
    call = AgentCall()
    call.left(call.caller, 60)
    call.session_closed("participant_disconnected", 60.2)
    call.left(call.voice, 61)
    call.left(call.face, 61)
    assert call.departures() == ["user_hangup"]


def test_a_hot_swap_is_one_call_with_two_avatar_sessions() -> None:
    """livekit-agents swaps the avatar: a second avatar joins, the first is removed; the call
    goes on with the second, whose own leave is the call's departure."""
    call = AgentCall()
    second = avatar(T0 + 30, identity="tavus-avatar-agent")
    call.at(30, call.room.joined(second))
    call.left(call.face, 31, R.PARTICIPANT_REMOVED)
    assert call.departures() == ["replaced"]
    assert ("ended",) not in call.recorder.seen
    call.left(call.caller, 90)
    call.left(second, 91)
    assert call.departures() == ["replaced", "user_hangup"]
    assert call.recorder.seen.count(("ended",)) == 1
    assert len([s for s in call.recorder.seen if s[0] == "started"]) == 1


def test_an_avatar_rejoining_with_its_identity_is_one_call() -> None:
    """An avatar whose connection fails rejoins with the same identity: livekit-server sends
    the old connection away with DUPLICATE_IDENTITY. Twice, in either webhook order."""
    call = AgentCall()
    second = avatar(T0 + 20)
    call.left(call.face, 20, R.DUPLICATE_IDENTITY)  # the leave first
    call.at(20, call.room.joined(second))
    third = avatar(T0 + 40)
    call.at(40, call.room.joined(third))  # the join first
    call.left(second, 40, R.DUPLICATE_IDENTITY)
    assert call.departures() == ["replaced", "replaced"]
    call.left(third, 60, R.CONNECTION_TIMEOUT)
    assert call.departures() == ["replaced", "replaced", "network"]
    assert len([s for s in call.recorder.seen if s[0] == "started"]) == 1
    assert call.recorder.seen.count(("ended",)) == 1


def test_a_second_avatar_that_leaves_first_changes_nothing() -> None:
    call = AgentCall()
    second = avatar(T0 + 30, identity="tavus-avatar-agent")
    call.at(30, call.room.joined(second))
    call.left(second, 35)
    call.left(call.caller, 60)
    call.left(call.face, 61)
    assert call.departures() == ["user_hangup"]


# -- the avatar's own word (topic lemonslice) ---------------------------------------------------


def test_bot_ready_is_timed_from_the_call_start_once() -> None:
    call = AgentCall()
    call.tracker.signal(call.room.sid, AvatarReady(), T0 + 3.25, T0 + 3.25)
    # said again: the first counts
    call.tracker.signal(call.room.sid, AvatarReady(), T0 + 9, T0 + 9)
    assert [s for s in call.recorder.seen if s[0] == "avatar_ready"] == [("avatar_ready", 3.25)]
    live = call.tracker.call(call.room.sid)
    assert live is not None and live.avatar_ready_at == T0 + 3.25


def test_which_avatars_announce_readiness() -> None:
    tracker, _ = make()
    faces = {"lemonslice-avatar-agent": avatar(T0 + 1),
             "inference": avatar(T0 + 1, "lemonslice-inference-avatar", provider="lemonslice"),
             "simli": avatar(T0 + 1, "simli-avatar-agent"),
             "tavus": avatar(T0 + 1, "x-avatar", provider="tavus")}
    expected = {"lemonslice-avatar-agent": True, "inference": True, "simli": False,
                "tavus": False}
    for name, face in faces.items():
        room = Room(created_at=T0)
        apply(tracker, room.joined(user(T0)), room.joined(face), now=T0 + 1)
        live = tracker.call(room.sid)
        assert live is not None and live.avatar_announces_ready is expected[name], name


def test_the_avatar_saying_idle_timeout_names_the_departure() -> None:
    call = AgentCall()  # not observed: no silence is measured, the avatar's word is enough
    call.tracker.signal(call.room.sid, AvatarIdleTimeout(), T0 + 60, T0 + 60)
    call.left(call.face, 61, R.CONNECTION_TIMEOUT)
    assert call.departures() == ["idle_timeout"]
    assert ("avatar_said", "idle_timeout") in call.recorder.seen


def test_idle_timeout_said_after_the_user_hung_up_is_the_users_hangup() -> None:
    """The user left first; an avatar left alone in the room then times out: a hang-up."""
    call = AgentCall()
    call.left(call.caller, 40)
    call.tracker.signal(call.room.sid, AvatarIdleTimeout(), T0 + 100, T0 + 100)
    call.left(call.face, 101)
    assert call.departures() == ["user_hangup"]


def test_idle_timeout_said_then_the_user_leaves_first_is_still_an_idle_timeout() -> None:
    """The frontend leaves on the avatar's idle_timeout, before the avatar's own leave."""
    call = AgentCall()
    call.tracker.signal(call.room.sid, AvatarIdleTimeout(), T0 + 60, T0 + 60)
    call.left(call.caller, 60.2)
    call.left(call.face, 61)
    assert call.departures() == ["idle_timeout"]


def test_a_fatal_avatar_error_is_an_unrecoverable_pipeline_error() -> None:
    call = AgentCall()
    call.tracker.signal(call.room.sid, AvatarError("error", fatal=False), T0 + 10, T0 + 10)
    call.tracker.signal(call.room.sid, AvatarError("video_generation_error", fatal=True),
                        T0 + 50, T0 + 50)
    call.left(call.face, 52)
    assert [s[1] for s in call.recorder.seen if s[0] == "pipeline_error"] == [
        PipelineError("avatar", True), PipelineError("avatar", False)]
    assert [s[1] for s in call.recorder.seen if s[0] == "avatar_said"] == [
        "error", "video_generation_error"]
    assert call.departures() == ["pipeline_error"]


def test_a_recoverable_avatar_error_does_not_name_the_departure() -> None:
    call = AgentCall()
    call.tracker.signal(call.room.sid, AvatarError("error", fatal=False), T0 + 50, T0 + 50)
    call.left(call.face, 52)
    assert call.departures() == ["unknown"]


def test_a_fatal_error_before_the_idle_timeout_is_the_cause() -> None:
    """A dead pipeline makes the avatar idle: the error is the root cause."""
    call = AgentCall()
    call.tracker.signal(call.room.sid, AvatarError("error", fatal=True), T0 + 50, T0 + 50)
    call.tracker.signal(call.room.sid, AvatarIdleTimeout(), T0 + 60, T0 + 60)
    call.left(call.face, 61)
    assert call.departures() == ["pipeline_error"]


def test_avatar_latencies_are_agent_latency_stages() -> None:
    call = AgentCall()
    call.tracker.signal(call.room.sid, AvatarLatency((("avatar_first_push", 0.8),)), T0 + 9,
                        T0 + 9)
    assert ("agent_latency", (("avatar_first_push", 0.8),)) in call.recorder.seen


def test_the_avatars_word_is_not_a_voice_agent_seen() -> None:
    """What the avatar says does not make a call with no voice agent wait for one."""
    tracker, recorder = make()
    room, caller, face = Room(created_at=T0), user(T0), avatar(T0 + 1, on_behalf_of="")
    apply(tracker, room.joined(caller), room.joined(face), now=T0 + 1)
    tracker.signal(room.sid, AvatarReady(), T0 + 2, T0 + 2)
    tracker.signal(room.sid, AvatarLatency((("avatar_first_push", 0.8),)), T0 + 3, T0 + 3)
    tracker.signal(room.sid, AvatarError("error", fatal=False), T0 + 4, T0 + 4)
    apply(tracker, room.left(face, T0 + 60, R.PARTICIPANT_REMOVED), now=T0 + 60)
    assert [s[1] for s in recorder.seen if s[0] == "avatar_left"] == ["removed"]
