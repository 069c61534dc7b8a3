"""Without the observer, nothing lost: the voice agent's forwarded copy of the avatar's word and
its own state apply exactly as the observer's reading of them, and when both arrive, once."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from avatar_monitor_agent.agent_events import avatar_message_id
from avatar_monitor_agent.forward import avatar_message
from livekit import rtc

from monitor.app import build_monitor
from monitor.calls.departures import AVATAR_WORD_WINDOW
from monitor.calls.inputs import AgentState, AvatarError, AvatarReady
from monitor.config import Config
from monitor.intake.events import parse_event
from monitor.observer.room import ObserverSettings, RoomObserver, _Watch
from monitor.reports.signals import MAX_ID_CHARS, BadEvent, ReportedEvent, parse_report
from tests.support.webhooks import Room, avatar, encode, user

AVATAR_SID = "PA_avatar"


def test_the_id_of_an_avatar_message_is_its_topic_sender_and_bytes() -> None:
    words = b'{"type": "bot_ready"}'
    one = avatar_message_id("lemonslice", "avatar-1", AVATAR_SID, words)
    assert one == avatar_message_id("lemonslice", "avatar-1", AVATAR_SID, bytes(words))
    assert one.startswith("avm-") and len(one) <= MAX_ID_CHARS
    others = {avatar_message_id("lemonslice/message", "avatar-1", AVATAR_SID, words),
              avatar_message_id("lemonslice", "avatar-2", AVATAR_SID, words),
              avatar_message_id("lemonslice", "avatar-1", "PA_next", words),  # another stay
              avatar_message_id("lemonslice", "avatar-1", AVATAR_SID, words + b" "),
              # the fields are separated: no two splits of one string collide
              avatar_message_id("lemonslice", "avatar-1P", "A_avatar", words)}
    assert one not in others and len(others) == 5


def forwarded(message: object, topic: str = "lemonslice", **fields: object) -> dict:
    return {"v": 1, "type": "avatar_message", "topic": topic, "avatar": "avatar-1",
            "message": message, "id": "avm-1", **fields}


@pytest.mark.parametrize(
    ("doc", "signal"),
    [
        (forwarded({"type": "bot_ready"}), AvatarReady()),
        (forwarded({"type": "bot_ready"}, "lemonslice/message"), AvatarReady()),
        (forwarded({"type": "video_generation_error"}),
         AvatarError("video_generation_error", fatal=True)),
        ({"v": 1, "type": "agent_state", "state": "speaking"}, AgentState("speaking")),
        ({"v": 1, "type": "agent_state", "state": "listening"}, AgentState("listening")),
        ({"v": 1, "type": "agent_state", "state": "x" * 10_000}, AgentState("other")),
    ],
)
def test_parse_the_new_event_types(doc: dict, signal: object) -> None:
    event = parse_report(doc)
    assert event.signal == signal
    assert event.avatar == ("avatar-1" if doc["type"] == "avatar_message" else None)


@pytest.mark.parametrize(
    "doc",
    [
        forwarded({"type": "bot_ready"}, v=2),
        forwarded({"type": "bot_ready"}, "chat"),
        forwarded(["bot_ready"]),
        forwarded({"type": "idle_timeout"}, "lemonslice/message"),
        forwarded({"type": "metric", "time_to_first_push": 5_000_000}),  # over an hour
        forwarded({"type": "bot_ready"}, avatar=7),
        {"v": 1, "type": "agent_state"},
        {"v": 1, "type": "agent_state", "state": True},
    ],
)
def test_malformed_new_event_types(doc: dict) -> None:
    with pytest.raises(BadEvent):
        parse_report(doc)


class Call:
    """A sidecar's tracker and bridge, an active call with an avatar, and the room observer."""

    def __init__(self) -> None:
        self.monitor = build_monitor(Config("k", "s", idle_timeout=60, timeout_tolerance=5))
        self.t0 = float(int(time.time()) - 1000)
        self.room = Room(created_at=self.t0)
        self.face = avatar(self.t0 + 1, "avatar-1")
        for event in (self.room.joined(user(self.t0)), self.room.joined(self.face)):
            self.monitor.tracker.apply(parse_event(encode(event)), self.t0 + 1)
        self.observer = RoomObserver(ObserverSettings("ws://unused", "k", "s"),
                                     self.monitor.tracker, self.monitor.metrics,
                                     self.monitor.bridge, clock=lambda: self.t0 + 5)
        self.watch = _Watch(self.room.name, self.room.sid)

    def value(self, name: str, **labels: str) -> float | None:
        return self.monitor.registry.get_sample_value(name, labels)

    def outcomes(self, source: str) -> tuple[float | None, float | None]:
        """How many of `source`'s events were applied, and how many were duplicates."""
        name = "avatar_monitor_reported_events_total"
        return (self.value(name, source=source, outcome="applied"),
                self.value(name, source=source, outcome="duplicate"))

    def packet(self, doc: dict, identity: str = "avatar-1", topic: str = "lemonslice"
               ) -> rtc.DataPacket:
        sender = SimpleNamespace(identity=identity, sid=self.face.sid,
                                 kind=rtc.ParticipantKind.PARTICIPANT_KIND_AGENT,
                                 attributes={"lk.publish_on_behalf": "agent-1"})
        return rtc.DataPacket(data=json.dumps(doc).encode(), topic=topic,  # type: ignore[arg-type]
                              kind=rtc.DataPacketKind.KIND_RELIABLE, participant=sender)

    def agent_forwards(self, packet: rtc.DataPacket, at: float) -> str:
        """What the voice agent's instrument() sends for a packet its room received, by HTTP."""
        room = SimpleNamespace(local_participant=SimpleNamespace(identity="agent-1"))
        said = avatar_message(room, packet)  # type: ignore[arg-type]
        assert said is not None
        doc = {"v": 1, "type": "avatar_message", "id": said.id, "at": at, **said.fields()}
        return self.monitor.bridge.accept("http", parse_report(json.loads(json.dumps(doc))),
                                          at, self.room.name, self.room.sid)

    def agent_state(self, state: str, at: float, event_id: str | None = None) -> str:
        event = ReportedEvent(AgentState(state), event_id, at)
        return self.monitor.bridge.accept("http", event, at, self.room.name, self.room.sid)


@pytest.mark.parametrize("observer_first", [True, False])
def test_the_avatars_word_by_the_observer_and_the_agent_counts_once(
        observer_first: bool) -> None:
    c = Call()
    ready, error = (c.packet({"type": "bot_ready"}),
                    c.packet({"type": "error", "error": "gpu", "fatal": False}))
    for packet in (ready, error):
        if observer_first:
            c.observer._on_data(c.watch, packet)
            assert c.agent_forwards(packet, c.t0 + 5) == "duplicate"
        else:
            assert c.agent_forwards(packet, c.t0 + 5) == "applied"
            c.observer._on_data(c.watch, packet)
    assert c.value("avatar_ready_latency_seconds_count") == 1
    assert c.value("avatar_pipeline_errors_total", component="avatar", recoverable="true") == 1
    # the observer read both messages either way; one copy of each applied, one a duplicate
    assert c.value("avatar_data_messages_total", topic="lemonslice-avatar", type="error") == 1
    assert c.outcomes("data_channel") == ((2.0, 0.0) if observer_first else (0.0, 2.0))
    assert c.outcomes("http") == ((0.0, 2.0) if observer_first else (2.0, 0.0))


def test_the_same_words_again_are_the_same_message_but_another_avatars_are_not() -> None:
    c = Call()
    error = {"type": "error", "fatal": False}
    assert c.agent_forwards(c.packet(error), c.t0 + 5) == "applied"
    assert c.agent_forwards(c.packet(error), c.t0 + 6) == "duplicate"  # byte-identical
    assert c.agent_forwards(c.packet({**error, "error": "again"}), c.t0 + 7) == "applied"
    # another agent's avatar in the room: not the call's
    assert c.agent_forwards(c.packet(error, identity="avatar-9"), c.t0 + 8) == "not_avatar"
    assert c.value("avatar_pipeline_errors_total", component="avatar", recoverable="true") == 2
    assert c.value("avatar_monitor_reported_events_total", source="http",
                   outcome="not_avatar") == 1


def test_the_agents_state_measures_first_speech_and_silence_without_the_observer() -> None:
    c = Call()  # never observed
    assert c.agent_state("listening", c.t0 + 2) == "applied"
    assert c.agent_state("speaking", c.t0 + 4) == "applied"
    assert c.agent_state("listening", c.t0 + 9) == "applied"
    c.monitor.tracker.apply(parse_event(encode(c.room.left(c.face, c.t0 + 69))), c.t0 + 69.2)
    assert c.value("avatar_time_to_first_speech_seconds_count") == 1
    assert c.value("avatar_time_to_first_speech_seconds_sum") == pytest.approx(3)
    assert c.value("avatar_departures_total", cause="idle_timeout") == 1  # 60 s of silence


def test_the_same_state_from_the_observer_and_the_agent_counts_once() -> None:
    """lk.agent.state read by the observer, and agent_state reported by the agent (dated by
    its clock, arriving later, in any order): first speech once, silence from the last."""
    c = Call()
    tracker = c.monitor.tracker
    tracker.observing(c.room.sid, c.t0 + 1)
    tracker.avatar_speaking(c.room.sid, True, c.t0 + 4.05)  # the observer
    c.agent_state("speaking", c.t0 + 4)  # the agent's copy: older, stale
    c.agent_state("listening", c.t0 + 9)
    c.agent_state("speaking", c.t0 + 4, "late")  # an HTTP post overtaken: stale
    tracker.avatar_speaking(c.room.sid, False, c.t0 + 9.05)  # the observer, same change
    call = tracker.call(c.room.sid)
    assert call is not None and not call.speaking and call.last_speech_at == c.t0 + 9
    assert c.value("avatar_time_to_first_speech_seconds_count") == 1
    assert c.value("avatar_time_to_first_speech_seconds_sum") == pytest.approx(3.05)
    tracker.apply(parse_event(encode(c.room.left(c.face, c.t0 + 69))), c.t0 + 69.2)
    assert c.value("avatar_departures_total", cause="idle_timeout") == 1


@pytest.mark.parametrize("word", [True, False])
def test_a_leave_waits_briefly_for_the_avatars_word_forwarded_after_it(word: bool) -> None:
    """The agent's HTTP copy of `idle_timeout` can come after the leave's webhook: a leave
    nothing explains waits AVATAR_WORD_WINDOW for it, in a call whose agent reports."""
    c = Call()
    c.agent_state("speaking", c.t0 + 2)
    c.agent_state("listening", c.t0 + 3)
    left = c.t0 + 20  # 17 s of silence: far from the 60 s idle timeout
    c.monitor.tracker.apply(parse_event(encode(c.room.left(c.face, left))), left + 0.1)
    assert c.value("avatar_departures_total", cause="unknown") == 0  # not yet
    if word:
        assert c.agent_forwards(c.packet({"type": "idle_timeout"}), left - 0.1) == "applied"
    c.monitor.tracker.expire(left + 0.1 + AVATAR_WORD_WINDOW)
    assert c.value("avatar_departures_total", cause="idle_timeout") == int(word)
    assert c.value("avatar_departures_total", cause="unknown") == int(not word)
