"""The backend bridge: reported events count once, when applied to their call; events waiting
for a call apply only to the call with their room and sid, and otherwise expire uncounted."""

from __future__ import annotations

import time

from monitor.app import build_monitor
from monitor.calls.inputs import AgentLatency, PipelineError, SessionClosed, StartupFailureMessage
from monitor.config import Config
from monitor.intake.events import parse_event as parse_webhook
from monitor.reports.pending import BridgeSettings
from monitor.reports.signals import ReportedEvent
from tests.support.webhooks import Room, avatar, encode, user


class Bridge:
    """A monitor's bridge, tracker and metrics, driven with webhooks and reported events."""

    def __init__(self) -> None:
        self.monitor = build_monitor(Config("k", "s"))
        self.bridge = self.monitor.bridge
        self.now = float(int(time.time()))
        self.room = Room(created_at=self.now - 10)

    def webhook(self, event) -> None:  # type: ignore[no-untyped-def]
        self.monitor.tracker.apply(parse_webhook(encode(event)), self.now)

    def report(self, signal: object, event_id: str | None = None, source: str = "http",
               at: float | None = None, room: str | None = None, sid: str | None = "") -> str:
        """Report for the test's room and its sid, unless told otherwise (sid None: none)."""
        event = ReportedEvent(signal, event_id, at)  # type: ignore[arg-type]
        return self.bridge.accept(source, event, self.now, room or self.room.name,
                                  self.room.sid if sid == "" else sid)

    def value(self, name: str, **labels: str) -> float | None:
        return self.monitor.registry.get_sample_value(name, labels)

    def outcomes(self, source: str) -> dict[str, float | None]:
        return {outcome: self.value("avatar_monitor_reported_events_total", source=source,
                                    outcome=outcome)
                for outcome in ("applied", "buffered", "unmatched", "duplicate", "expired")}


def test_the_same_id_by_both_paths_counts_once() -> None:
    b = Bridge()
    b.webhook(b.room.joined(user(b.now - 5)))
    error = PipelineError("tts", False)
    assert b.report(error, "e1", source="data_channel") == "applied"
    assert b.report(error, "e1", source="http") == "duplicate"
    assert b.report(error, "e2", source="http") == "applied"
    assert b.value("avatar_pipeline_errors_total", component="tts", recoverable="false") == 2
    assert b.outcomes("http")["duplicate"] == 1


def test_buffered_events_count_once_applied_to_their_call() -> None:
    b = Bridge()
    assert b.report(SessionClosed("error")) == "buffered"
    assert b.report(AgentLatency((("llm_ttft", 0.4), ("e2e", 1.2)))) == "buffered"
    assert b.report(StartupFailureMessage("no avatar")) == "buffered"
    assert b.value("avatar_pipeline_closed_total", reason="error") == 0  # not yet a call's
    assert b.value("avatar_agent_latency_seconds_count", stage="e2e") == 0
    b.webhook(b.room.started())  # a room without users is not a call yet
    assert b.bridge.waiting_events == 3
    b.webhook(b.room.joined(user(b.now - 5)))
    assert b.bridge.waiting_events == 0
    assert b.value("avatar_pipeline_closed_total", reason="error") == 1
    assert b.value("avatar_agent_latency_seconds_sum", stage="llm_ttft") == 0.4
    assert b.value("avatar_agent_latency_seconds_count", stage="e2e") == 1
    assert b.value("avatar_startup_failures_total", cause="message") == 1
    assert b.value("avatar_calls_in_progress", state="ringing") == 0
    assert b.outcomes("buffer")["applied"] == 3
    b.monitor.tracker.expire(b.now + 3600)  # the join deadline must not count it again
    assert b.value("avatar_startup_failures_total", cause="join_timeout") == 0


def test_a_pending_room_lends_its_sid_to_an_event_without_one() -> None:
    b = Bridge()
    b.webhook(b.room.started())
    assert b.report(StartupFailureMessage("no avatar"), sid=None) == "buffered"
    b.webhook(b.room.joined(user(b.now - 5)))
    assert b.value("avatar_startup_failures_total", cause="message") == 1


def test_an_event_without_a_sid_or_a_call_is_not_kept() -> None:
    b = Bridge()
    assert b.report(StartupFailureMessage(), room="invented", sid=None) == "unmatched"
    assert b.bridge.waiting_events == 0
    b.webhook(b.room.joined(user(b.now - 5)))
    assert b.value("avatar_startup_failures_total", cause="message") == 0
    assert b.outcomes("http")["unmatched"] == 1


def test_a_waiting_event_applies_only_to_the_call_with_its_room_and_sid() -> None:
    b = Bridge()
    other = Room(name=b.room.name, created_at=b.now - 5)  # same name, another sid
    assert b.report(StartupFailureMessage("for the old room"), sid="RM_gone") == "buffered"
    assert b.report(PipelineError("llm", False), sid="RM_gone") == "buffered"
    b.webhook(other.joined(user(b.now - 4)))
    assert b.bridge.waiting_events == 2
    assert b.value("avatar_startup_failures_total", cause="message") == 0
    assert b.value("avatar_pipeline_errors_total", component="llm", recoverable="false") == 0
    b.bridge.expire(b.now + b.bridge.pending.settings.pending_seconds + 1)
    assert b.outcomes("buffer")["expired"] == 2
    assert b.value("avatar_startup_failures_total", cause="message") == 0


def test_a_sid_of_another_room_conflicts_and_is_never_applied_there() -> None:
    b = Bridge()
    elsewhere = Room(created_at=b.now - 5)
    b.webhook(b.room.joined(user(b.now - 5)))
    b.webhook(elsewhere.joined(user(b.now - 4)))
    assert b.bridge.conflicts(b.room.name, elsewhere.sid)
    assert not b.bridge.conflicts(b.room.name, b.room.sid)
    assert not b.bridge.conflicts(b.room.name, None)
    # Even without the check, an event is applied only where room and sid agree.
    assert b.report(PipelineError("llm", False), sid=elsewhere.sid) == "buffered"
    assert b.value("avatar_pipeline_errors_total", component="llm", recoverable="false") == 0


def test_a_buffered_unrecoverable_error_names_the_departure() -> None:
    b = Bridge()
    b.report(PipelineError("llm", False), at=b.now - 3)
    face = avatar(b.now - 8)
    b.webhook(b.room.joined(user(b.now - 9)))
    b.webhook(b.room.joined(face))
    b.webhook(b.room.left(face, b.now - 1))
    assert b.value("avatar_departures_total", cause="pipeline_error") == 1


def test_events_for_a_call_that_never_appears_expire_uncounted() -> None:
    b = Bridge()
    b.report(StartupFailureMessage(), room="never-seen", sid="RM_never")
    b.report(PipelineError("stt", True), room="never-seen", sid="RM_never")
    b.bridge.expire(b.now + b.bridge.pending.settings.pending_seconds - 1)
    assert b.bridge.waiting_events == 2
    b.bridge.expire(b.now + b.bridge.pending.settings.pending_seconds + 1)
    assert b.bridge.waiting_events == 0
    assert b.outcomes("buffer")["expired"] == 2
    assert b.value("avatar_startup_failures_total", cause="message") == 0
    assert b.value("avatar_pipeline_errors_total", component="stt", recoverable="true") == 0


def test_the_waiting_room_is_bounded() -> None:
    b = Bridge()
    b.bridge.pending.settings = BridgeSettings(pending_rooms=3, pending_per_room=2)
    for room in range(5):
        for _ in range(4):
            b.report(StartupFailureMessage(), room=f"room-{room}", sid=f"RM_{room}")
    assert b.bridge.waiting_events == 3 * 2
    assert b.outcomes("buffer")["expired"] == 5 * 4 - 3 * 2
    assert b.value("avatar_startup_failures_total", cause="message") == 0


def test_the_senders_clock_is_used_only_when_close_to_ours() -> None:
    b = Bridge()
    face = avatar(b.now - 8)
    b.webhook(b.room.joined(user(b.now - 9)))
    b.webhook(b.room.joined(face))
    b.report(PipelineError("tts", False), at=b.now - 10_000)  # skewed: taken as arrival time
    b.webhook(b.room.left(face, b.now))
    assert b.value("avatar_departures_total", cause="pipeline_error") == 1


def test_reports_for_a_call_that_never_started_do_not_reach_the_next_one() -> None:
    """The avatar came and went before any user; what was reported meanwhile expires with that
    call, and a user who joins the room later starts a clean call."""
    b = Bridge()
    face = avatar(b.now - 9)
    b.webhook(b.room.joined(face))
    assert b.report(StartupFailureMessage("no video")) == "buffered"
    assert b.report(PipelineError("llm", False)) == "buffered"
    b.webhook(b.room.left(face, b.now - 8))
    assert b.bridge.waiting_events == 0
    assert b.outcomes("buffer")["expired"] == 2
    b.monitor.tracker.expire(b.now + 30)  # the ended call is forgotten
    b.now += 31
    b.webhook(b.room.joined(user(b.now)))
    assert b.value("avatar_startup_failures_total", cause="message") == 0
    assert b.value("avatar_pipeline_errors_total", component="llm", recoverable="false") == 0
    assert b.value("avatar_calls_in_progress", state="ringing") == 1


def test_a_report_for_a_forgotten_call_is_not_kept_for_the_next() -> None:
    b = Bridge()
    caller = user(b.now - 9)
    b.webhook(b.room.joined(caller))
    b.webhook(b.room.left(caller, b.now - 8))  # abandoned: the call ends
    b.monitor.tracker.expire(b.now + 30)  # and is forgotten
    assert b.report(SessionClosed("error")) == "unmatched"
    b.now += 31
    b.webhook(b.room.joined(user(b.now)))
    assert b.value("avatar_pipeline_closed_total", reason="error") == 0


def test_an_unmatched_event_may_still_come_by_the_other_path() -> None:
    """Without a sid and before its call exists, the event is not kept; the same event by the
    data channel, with the room's sid, is then applied, not taken for a duplicate."""
    b = Bridge()
    error = PipelineError("tts", False)
    assert b.report(error, "e1", source="http", sid=None) == "unmatched"
    b.webhook(b.room.joined(user(b.now - 5)))
    assert b.report(error, "e1", source="data_channel") == "applied"
    assert b.value("avatar_pipeline_errors_total", component="tts", recoverable="false") == 1
