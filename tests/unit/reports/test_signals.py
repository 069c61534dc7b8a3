"""Observer signals: message parsing to closed sets, and what they do to call state."""

from __future__ import annotations

import json
import time

import pytest

from monitor.app import build_monitor
from monitor.calls.core import ROOM_GONE_GRACE
from monitor.calls.inputs import (
    AgentLatency,
    AvatarError,
    AvatarIdleTimeout,
    AvatarLatency,
    AvatarReady,
    PipelineError,
    SessionClosed,
    StartupFailureMessage,
)
from monitor.config import Config
from monitor.intake.events import parse_event
from monitor.reports.signals import ReportedEvent, parse_message
from tests.support.webhooks import Room, avatar, encode, user


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


AVATAR_CASES = [
    ({"type": "bot_ready"}, "bot_ready", AvatarReady()),
    ({"type": "bot_ready", "extra": [1]}, "bot_ready", AvatarReady()),
    ({"type": "idle_timeout"}, "idle_timeout", AvatarIdleTimeout()),
    ({"type": "error", "error": "x", "fatal": True}, "error", AvatarError("error", True, "x")),
    ({"type": "error", "fatal": False}, "error", AvatarError("error", False)),
    ({"type": "error"}, "error", AvatarError("error", False)),  # not said fatal: recoverable
    ({"type": "error", "fatal": "yes"}, "malformed", None),
    ({"type": "video_generation_error"}, "video_generation_error",
     AvatarError("video_generation_error", True)),  # fatal unless it says otherwise
    ({"type": "video_generation_error", "fatal": False}, "video_generation_error",
     AvatarError("video_generation_error", False)),
    # metric: a number that is not whole and below 30 is seconds; any other is milliseconds.
    ({"type": "metric", "time_to_first_push": 0.85, "time_to_last_push": 2.5}, "metric",
     AvatarLatency((("avatar_first_push", 0.85), ("avatar_last_push", 2.5)))),
    ({"type": "metric", "time_to_first_push": 850, "time_to_last_push": 2500.0}, "metric",
     AvatarLatency((("avatar_first_push", 0.85), ("avatar_last_push", 2.5)))),
    ({"type": "metric", "time_to_first_push": 2}, "metric",
     AvatarLatency((("avatar_first_push", 0.002),))),  # whole: milliseconds, as the frontend
    ({"type": "metric", "time_to_first_push": 30.5}, "metric",
     AvatarLatency((("avatar_first_push", 0.0305),))),
    ({"type": "metric", "timeToFirstPush": 0.5}, "metric",
     AvatarLatency((("avatar_first_push", 0.5),))),
    ({"type": "metric", "video_duration_ms": 4000}, "metric", None),  # nothing it reads
    ({"type": "metric", "time_to_first_push": 0}, "malformed", None),
    ({"type": "metric", "time_to_first_push": -0.5}, "malformed", None),
    ({"type": "metric", "time_to_first_push": "0.5"}, "malformed", None),
    ({"type": "metric", "time_to_last_push": 3_600_001}, "malformed", None),
    ({"type": "image_change_complete"}, "other", None),
    ({"type": "startup_failure", "message": "x"}, "other", None),  # not on this topic
    ({"no": "type"}, "other", None),
    ([1, 2], "malformed", None),
]


@pytest.mark.parametrize(("payload", "kind", "signal"), AVATAR_CASES)
def test_parse_the_avatars_own_messages(payload: object, kind: str, signal: object) -> None:
    message = parse_message("lemonslice", json.dumps(payload).encode())
    assert message is not None
    assert (message.topic, message.type, message.avatar_only) == ("lemonslice-avatar", kind, True)
    assert (message.event.signal if message.event else None) == signal
    assert message.event is None or (message.event.id, message.event.at) == (None, None)


def test_bot_ready_on_the_backend_topic_is_the_avatars_only() -> None:
    ready = parse_message("lemonslice/message", b'{"type": "bot_ready"}')
    assert ready is not None and ready.event is not None
    assert (ready.topic, ready.type, ready.event.signal, ready.avatar_only) == (
        "lemonslice", "bot_ready", AvatarReady(), True)
    failure = parse_message("lemonslice/message", b'{"type": "startup_failure"}')
    assert failure is not None and not failure.avatar_only  # the voice agent sends it
    assert parse_message("lemonslice", b"\xff").avatar_only  # malformed, still the avatar's


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


def test_bot_ready_observes_the_ready_latency_once() -> None:
    h = Harness()
    h.start_active_call()  # the call starts at t0, the avatar joins at t0 + 1
    h.report(AvatarReady(), h.t0 + 3.5)
    h.report(AvatarReady(), h.t0 + 8)
    assert h.value("avatar_ready_latency_seconds_count") == 1
    assert h.value("avatar_ready_latency_seconds_sum") == pytest.approx(3.5)
    assert h.value("avatar_ready_latency_seconds_bucket", le="5.0") == 1


def test_avatar_errors_are_pipeline_errors_of_the_avatar() -> None:
    h = Harness()
    h.start_active_call()
    h.report(AvatarError("error", fatal=False), h.t0 + 10)
    h.report(AvatarError("video_generation_error", fatal=True), h.t0 + 20)
    h.apply(h.room.left(h.face, h.t0 + 22), now=h.t0 + 22.2)
    assert h.value("avatar_pipeline_errors_total", component="avatar", recoverable="true") == 1
    assert h.value("avatar_pipeline_errors_total", component="avatar", recoverable="false") == 1
    assert h.value("avatar_departures_total", cause="pipeline_error") == 1


def test_avatar_metrics_are_latency_stages() -> None:
    h = Harness()
    h.start_active_call()
    h.report(AvatarLatency((("avatar_first_push", 0.85), ("avatar_last_push", 2.5))), h.t0 + 9)
    h.report(AvatarLatency((("avatar_first_push", 0.4),)), h.t0 + 19)
    stage = "avatar_agent_latency_seconds"
    assert h.value(f"{stage}_count", stage="avatar_first_push") == 2
    assert h.value(f"{stage}_sum", stage="avatar_first_push") == pytest.approx(1.25)
    assert h.value(f"{stage}_count", stage="avatar_last_push") == 1


def test_the_avatar_saying_idle_timeout_counts_the_idle_timeout() -> None:
    h = Harness()
    h.start_active_call()
    h.report(AvatarIdleTimeout(), h.t0 + 60)
    h.apply(h.room.left(h.face, h.t0 + 61), now=h.t0 + 61.2)
    assert h.value("avatar_departures_total", cause="idle_timeout") == 1
    assert h.value("avatar_timeouts_total", timeout="idle") == 1


def test_the_new_series_are_exported_at_zero() -> None:
    h = Harness()
    assert h.value("avatar_ready_latency_seconds_count") == 0
    assert h.value("avatar_data_messages_total", topic="lemonslice-avatar", type="bot_ready") == 0
    assert h.value("avatar_data_messages_total", topic="lemonslice", type="bot_ready") == 0
    assert h.value("avatar_monitor_data_messages_refused_total", topic="lemonslice-avatar",
                   reason="not_avatar") == 0
    assert h.value("avatar_agent_latency_seconds_count", stage="avatar_last_push") == 0
