"""Observer signals: message parsing to closed sets, and what they do to call state."""

from __future__ import annotations

import json
import time

import pytest

from monitor.app import build_monitor
from monitor.calls.core import ROOM_GONE_GRACE
from monitor.config import Config
from monitor.intake.events import parse_event
from monitor.reports.signals import (
    AgentLatency,
    PipelineError,
    ReportedEvent,
    SessionClosed,
    StartupFailureMessage,
    parse_message,
)
from tests.webhooks import Room, avatar, encode, user


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        ("lemonslice/message", {"type": "startup_failure", "message": "x"},
         ("lemonslice", "startup_failure", StartupFailureMessage("x"))),
        ("lemonslice/message", {"type": "startup_failure", "message": 7},
         ("lemonslice", "malformed", None)),
        ("lemonslice/message", {"type": "avatar_ready"}, ("lemonslice", "other", None)),
        ("lemonslice/message", [1, 2], ("lemonslice", "malformed", None)),
        ("avatar-monitor/events", {"v": 1, "type": "pipeline_error", "component": "tts",
                                   "recoverable": False},
         ("avatar-monitor", "pipeline_error", PipelineError("tts", False))),
        ("avatar-monitor/events", {"v": 1, "type": "pipeline_error", "component": "gpu-42",
                                   "recoverable": True},
         ("avatar-monitor", "pipeline_error", PipelineError("other", True))),
        ("avatar-monitor/events", {"v": 1, "type": "pipeline_error", "component": "tts",
                                   "recoverable": "no"}, ("avatar-monitor", "malformed", None)),
        ("avatar-monitor/events", {"v": 2, "type": "pipeline_error"},
         ("avatar-monitor", "malformed", None)),
        ("avatar-monitor/events", {"v": 1, "type": "session_closed", "reason": "error"},
         ("avatar-monitor", "session_closed", SessionClosed("error"))),
        ("avatar-monitor/events", {"v": 1, "type": "session_closed", "reason": "why not"},
         ("avatar-monitor", "session_closed", SessionClosed("other"))),
        ("avatar-monitor/events", {"v": 1, "type": "hello"}, ("avatar-monitor", "other", None)),
        ("avatar-monitor/events", {"v": 1, "type": "startup_failure", "message": "m" * 999},
         ("avatar-monitor", "startup_failure", StartupFailureMessage("m" * 256))),
        ("avatar-monitor/events", {"v": 1, "type": "agent_latency", "llm_ttft": 0.4,
                                   "e2e": 1, "bogus": 3},
         ("avatar-monitor", "agent_latency", AgentLatency((("llm_ttft", 0.4), ("e2e", 1.0))))),
        ("avatar-monitor/events", {"v": 1, "type": "agent_latency", "tts_ttfb": -1},
         ("avatar-monitor", "malformed", None)),
        ("avatar-monitor/events", {"v": 1, "type": "agent_latency"},
         ("avatar-monitor", "malformed", None)),
        ("avatar-monitor/events", {"v": 1, "type": "session_closed", "reason": "error",
                                   "id": ""}, ("avatar-monitor", "malformed", None)),
        ("avatar-monitor/events", {"v": 1, "type": "session_closed", "reason": "error",
                                   "at": "now"}, ("avatar-monitor", "malformed", None)),
    ],
)
def test_parse_message(topic: str, payload: object, expected: tuple) -> None:
    message = parse_message(topic, json.dumps(payload).encode())
    assert message is not None
    signal = message.event.signal if message.event else None
    assert (message.topic, message.type, signal) == expected


def test_unread_topics_and_bad_bytes() -> None:
    assert parse_message("chat", b"{}") is None
    assert parse_message("lemonslice/message", b"\xff\xfe").type == "malformed"
    assert parse_message("avatar-monitor/events", b"{" * 100_000).type == "malformed"


class Harness:
    """A tracker with metrics, fed webhook events and observer signals."""

    def __init__(self, **config: object) -> None:
        self.monitor = build_monitor(Config("k", "s", **config))  # type: ignore[arg-type]
        self.tracker = self.monitor.tracker
        self.t0 = float(int(time.time()) - 1000)
        self.room = Room(created_at=self.t0)
        self.caller, self.face = user(self.t0), avatar(self.t0 + 1)

    def apply(self, *events, now: float | None = None) -> None:
        for event in events:
            self.tracker.apply(parse_event(encode(event)), now or time.time())

    def value(self, name: str, **labels: str) -> float | None:
        return self.monitor.registry.get_sample_value(name, labels)

    def report(self, signal: object, at: float, event_id: str | None = None) -> str:
        """The voice agent reports an event on the room's data channel."""
        event = ReportedEvent(signal, event_id)  # type: ignore[arg-type]
        return self.monitor.bridge.accept("data_channel", event, at, self.room.name,
                                          self.room.sid)

    def start_active_call(self) -> None:
        self.apply(self.room.joined(self.caller), self.room.joined(self.face))
        self.tracker.observing(self.room.sid, self.t0)


def test_startup_failure_message_counts_once() -> None:
    h = Harness()
    h.apply(h.room.joined(h.caller))
    h.report(StartupFailureMessage(), h.t0 + 5)
    h.report(StartupFailureMessage(), h.t0 + 6)
    h.tracker.expire(time.time() + 100)  # the join deadline passes too
    assert h.value("avatar_startup_failures_total", cause="message") == 1
    assert h.value("avatar_startup_failures_total", cause="join_timeout") == 0
    assert h.value("avatar_calls_in_progress", state="ringing") == 0


def test_unrecoverable_pipeline_error_names_the_departure() -> None:
    h = Harness()
    h.start_active_call()
    h.report(PipelineError("llm", True), h.t0 + 10)
    h.report(PipelineError("tts", False), h.t0 + 20)
    h.apply(h.room.left(h.face, h.t0 + 25), now=h.t0 + 25.2)
    assert h.value("avatar_pipeline_errors_total", component="tts", recoverable="false") == 1
    assert h.value("avatar_pipeline_errors_total", component="llm", recoverable="true") == 1
    assert h.value("avatar_departures_total", cause="pipeline_error") == 1


def test_idle_timeout_from_silence() -> None:
    h = Harness(idle_timeout=60, timeout_tolerance=5)
    h.start_active_call()
    h.tracker.avatar_speaking(h.room.sid, True, h.t0 + 3)
    h.tracker.avatar_speaking(h.room.sid, False, h.t0 + 40)
    h.apply(h.room.left(h.face, h.t0 + 100), now=h.t0 + 100.4)
    assert h.value("avatar_time_to_first_speech_seconds_sum") == pytest.approx(2, abs=0.01)
    assert h.value("avatar_departures_total", cause="idle_timeout") == 1
    assert h.value("avatar_timeouts_total", timeout="idle") == 1


def test_silence_far_from_the_idle_timeout_is_not_idle() -> None:
    h = Harness(idle_timeout=60, timeout_tolerance=5)
    h.start_active_call()
    h.tracker.avatar_speaking(h.room.sid, True, h.t0 + 3)
    h.tracker.avatar_speaking(h.room.sid, False, h.t0 + 80)
    h.apply(h.room.left(h.face, h.t0 + 100), now=h.t0 + 100.4)
    assert h.value("avatar_departures_total", cause="unknown") == 1


def test_unobserved_calls_are_never_idle() -> None:
    h = Harness(idle_timeout=60, timeout_tolerance=5)
    h.apply(h.room.joined(h.caller), h.room.joined(h.face), h.room.left(h.face, h.t0 + 61))
    assert h.value("avatar_departures_total", cause="idle_timeout") == 0


def test_poor_quality_time_accumulates() -> None:
    h = Harness()
    h.start_active_call()
    h.tracker.avatar_quality(h.room.sid, "poor", h.t0 + 10)
    h.tracker.avatar_quality(h.room.sid, "lost", h.t0 + 13)
    h.tracker.avatar_quality(h.room.sid, "good", h.t0 + 20)
    h.tracker.avatar_quality(h.room.sid, "poor", h.t0 + 30)
    h.apply(h.room.left(h.face, h.t0 + 35), now=h.t0 + 35)
    assert h.value("avatar_poor_connection_seconds_total", quality="poor") == pytest.approx(8)
    assert h.value("avatar_poor_connection_seconds_total", quality="lost") == pytest.approx(7)


def test_room_gone_ends_the_call_as_server_departure() -> None:
    h = Harness()
    h.start_active_call()
    h.tracker.room_gone(h.room.sid, h.t0 + 50)
    assert h.value("avatar_departures_total", cause="server") == 0  # webhooks may be on the way
    h.tracker.expire(h.t0 + 50 + ROOM_GONE_GRACE)
    assert h.value("avatar_departures_total", cause="server") == 1
    assert h.value("avatar_calls_in_progress", state="active") == 0


def test_a_leave_arriving_just_after_the_room_is_found_gone_tells_how_the_call_ended() -> None:
    """A user came and went while nobody listened; the listing that finds the room gone beats
    the user's leave, which livekit-server delivers just after: the call was abandoned."""
    h = Harness()
    caller = user(h.t0)
    h.apply(h.room.joined(caller), now=h.t0 + 1)
    h.tracker.room_gone(h.room.sid, h.t0 + 1)
    h.apply(h.room.left(caller, h.t0 + 1), now=h.t0 + 1.1)
    h.tracker.expire(h.t0 + 1 + ROOM_GONE_GRACE)
    assert h.value("avatar_calls_abandoned_total") == 1
    assert h.value("avatar_startup_failures_total", cause="join_timeout") == 0
    assert h.value("avatar_calls_in_progress", state="ringing") == 0


def test_an_agent_speaking_before_the_avatar_joins_is_its_first_speech() -> None:
    """lk.agent.state can say speaking before the avatar's join is known: the avatar speaks
    from its join on."""
    h = Harness()
    h.apply(h.room.joined(h.caller))
    h.tracker.observing(h.room.sid, h.t0)
    h.tracker.avatar_speaking(h.room.sid, True, h.t0 + 0.5)
    assert h.value("avatar_time_to_first_speech_seconds_count") == 0
    h.apply(h.room.joined(h.face), now=h.t0 + 1.2)
    assert h.value("avatar_time_to_first_speech_seconds_count") == 1
    assert h.value("avatar_time_to_first_speech_seconds_sum") == 0
