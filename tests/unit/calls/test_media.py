"""The avatar's media stopping mid-call: unpublished (webhooks, observer) or muted (observer),
counted once past the grace, timed until it comes back or the avatar leaves; no network."""

from __future__ import annotations

import time

import pytest
from livekit.protocol import models

from monitor.app import build_monitor
from monitor.config import Config
from monitor.diagnosis.verdicts import Thresholds, diagnose
from monitor.intake.events import parse_event
from monitor.sinks.records import CallRecord
from tests.support.webhooks import Room, avatar, encode, user

AUDIO, VIDEO = models.TrackType.AUDIO, models.TrackType.VIDEO
R = models.DisconnectReason


class Harness:
    """One call on a server clock `t0` in the past; webhooks arrive at the `now` given (this
    machine's clock), the observer reports on the same clock."""

    def __init__(self, **config: object) -> None:
        self.monitor = build_monitor(Config("k", "s", **config))  # type: ignore[arg-type]
        self.tracker = self.monitor.tracker
        self.t0 = float(int(time.time()) - 1000)
        self.room = Room(created_at=self.t0)
        self.caller, self.face = user(self.t0), avatar(self.t0 + 1)

    def apply(self, *events, now: float) -> None:  # type: ignore[no-untyped-def]
        for event in events:
            self.tracker.apply(parse_event(encode(event)), now)

    def start(self) -> None:
        """User and avatar join, the avatar publishes audio and video."""
        t = self.t0 + 1
        self.apply(self.room.joined(self.caller), self.room.joined(self.face),
                   self.room.track(self.face, AUDIO, t), self.room.track(self.face, VIDEO, t),
                   now=t)

    def unpublish(self, kind: int, at: float) -> None:
        self.apply(self.room.untrack(self.face, kind, at), now=at)

    def publish(self, kind: int, at: float) -> None:
        self.apply(self.room.track(self.face, kind, at), now=at)

    def leave(self, at: float, reason: int = R.CLIENT_INITIATED) -> None:
        """The avatar leaves as livekit-server tells it: its tracks unpublished, then its leave,
        all in the same instant."""
        self.apply(self.room.untrack(self.face, AUDIO, at), self.room.untrack(self.face, VIDEO, at),
                   self.room.left(self.face, at, reason), now=at)

    def observed(self, kind: str, on: bool, how: str, at: float) -> None:
        self.tracker.avatar_media(self.room.sid, self.face.sid, kind, on, how, at)

    def value(self, name: str, **labels: str) -> float | None:
        return self.monitor.registry.get_sample_value(name, labels)

    def interruptions(self, kind: str = "audio") -> tuple[float | None, float | None, float | None]:
        """Counted interruptions of `kind`, and the count and sum of their lengths."""
        return (self.value("avatar_media_interruptions_total", kind=kind),
                self.value("avatar_media_interruption_seconds_count", kind=kind),
                self.value("avatar_media_interruption_seconds_sum", kind=kind))

    def record(self) -> CallRecord:
        record = self.monitor.status.records.latest(self.room.name)
        assert record is not None
        return record

    def verdict(self, now: float) -> tuple[str, str, str]:
        verdict = diagnose(self.record(), Thresholds(), now)
        first = verdict.findings[0].evidence if verdict.findings else ""
        return verdict.status, verdict.name, first


def test_unpublished_audio_that_comes_back_is_one_interruption_with_its_length() -> None:
    h = Harness()
    h.start()
    h.unpublish(AUDIO, h.t0 + 20)
    h.tracker.expire(h.t0 + 24.9)
    assert h.interruptions() == (0, 0, 0)  # within the grace
    h.tracker.expire(h.t0 + 25)
    assert h.interruptions() == (1, 0, 0)  # counted when it passes the grace
    h.tracker.expire(h.t0 + 27)
    h.publish(AUDIO, h.t0 + 28)
    assert h.interruptions() == (1, 1, pytest.approx(8))
    assert h.interruptions("video") == (0, 0, 0)
    h.leave(h.t0 + 60)
    assert h.interruptions() == (1, 1, pytest.approx(8))
    assert h.value("avatar_departures_total", cause="unknown") == 1  # the user stayed
    assert h.verdict(h.t0 + 70)[0] == "failed"  # the avatar left on its own
    findings = {f.rule: f for f in diagnose(h.record(), Thresholds(), h.t0 + 70).findings}
    assert findings["media_interrupted"].severity == "warning"
    assert "the avatar's audio stopped (unpublished) at " in findings["media_interrupted"].evidence
    assert findings["media_interrupted"].evidence.endswith(" for 8 s")
    assert "media_stopped" not in findings


def test_audio_that_never_comes_back_fails_the_call() -> None:
    """The avatar unpublishes its audio and the user waits 60 s before hanging up."""
    h = Harness()
    h.start()
    h.unpublish(AUDIO, h.t0 + 20)
    h.apply(h.room.left(h.caller, h.t0 + 80), now=h.t0 + 80)
    h.leave(h.t0 + 83, R.ROOM_CLOSED)
    assert h.value("avatar_departures_total", cause="user_hangup") == 1
    assert h.interruptions() == (1, 1, pytest.approx(63))
    status, name, evidence = h.verdict(h.t0 + 90)
    assert (status, name) == ("failed", "media_stopped")
    assert evidence.startswith("the avatar's audio stopped (unpublished) at ")
    assert evidence.endswith("and never came back: 63 s until the avatar left or the call ended")


def test_the_unpublishes_of_a_leave_are_no_interruption() -> None:
    h = Harness()
    h.start()
    h.apply(h.room.left(h.caller, h.t0 + 40), now=h.t0 + 40)
    h.leave(h.t0 + 43, R.ROOM_CLOSED)
    h.tracker.expire(h.t0 + 100)
    for kind in ("audio", "video"):
        assert h.interruptions(kind) == (0, 0, 0)
    assert h.verdict(h.t0 + 100)[:2] == ("healthy", "healthy")


def test_unpublishes_after_the_leave_are_ignored() -> None:
    h = Harness()
    h.start()
    h.apply(h.room.left(h.caller, h.t0 + 40), h.room.left(h.face, h.t0 + 40),
            h.room.untrack(h.face, AUDIO, h.t0 + 40), now=h.t0 + 40)
    h.tracker.expire(h.t0 + 100)
    assert h.interruptions() == (0, 0, 0)


def test_a_blip_within_the_grace_is_not_counted() -> None:
    h = Harness(interruption_grace=3)
    h.start()
    h.unpublish(VIDEO, h.t0 + 20)
    h.publish(VIDEO, h.t0 + 22)
    h.unpublish(VIDEO, h.t0 + 30)
    h.tracker.expire(h.t0 + 32.9)
    assert h.interruptions("video") == (0, 0, 0)
    h.tracker.expire(h.t0 + 33)
    assert h.interruptions("video") == (1, 0, 0)
    h.publish(VIDEO, h.t0 + 34)
    assert h.interruptions("video") == (1, 1, pytest.approx(4))


def test_muted_audio_seen_by_the_observer() -> None:
    h = Harness()
    h.start()
    h.observed("audio", False, "muted", h.t0 + 20.3)
    h.tracker.expire(h.t0 + 30)
    h.observed("audio", True, "muted", h.t0 + 32.3)
    assert h.interruptions() == (1, 1, pytest.approx(12))
    h.leave(h.t0 + 60)
    evidence = {f.rule: f.evidence for f in diagnose(h.record(), Thresholds(), h.t0 + 70).findings}
    assert evidence["media_interrupted"].endswith(" for 12 s")
    assert "(muted)" in evidence["media_interrupted"]


def test_one_interruption_told_by_webhooks_and_the_observer_counts_once() -> None:
    h = Harness()
    h.start()
    h.observed("audio", False, "unpublished", h.t0 + 20.2)
    h.unpublish(AUDIO, h.t0 + 20)
    h.observed("audio", False, "muted", h.t0 + 21)
    h.tracker.expire(h.t0 + 26)
    h.observed("audio", True, "muted", h.t0 + 29.1)
    h.publish(AUDIO, h.t0 + 29)
    h.tracker.expire(h.t0 + 40)
    assert h.interruptions() == (1, 1, pytest.approx(8.9))


def test_the_observer_seeing_the_avatar_go_ends_its_unpublishes_uncounted() -> None:
    """The leave's webhook comes late (retried): the observer saw the avatar disconnect."""
    h = Harness()
    h.start()
    h.observed("audio", False, "unpublished", h.t0 + 40)
    h.observed("video", False, "unpublished", h.t0 + 40)
    h.tracker.avatar_disconnected(h.room.sid, h.face.sid, h.t0 + 40)
    h.tracker.expire(h.t0 + 50)
    h.apply(h.room.left(h.face, h.t0 + 40), now=h.t0 + 50)
    for kind in ("audio", "video"):
        assert h.interruptions(kind) == (0, 0, 0)


def test_an_interruption_open_at_the_leave_is_timed_to_the_leave() -> None:
    h = Harness()
    h.start()
    h.observed("video", False, "muted", h.t0 + 20)
    h.tracker.expire(h.t0 + 26)
    h.leave(h.t0 + 50)
    assert h.interruptions("video") == (1, 1, pytest.approx(30))
    record = h.record()
    assert record.media_lost is not None and record.media_lost[:2] == ("video", "muted")
    assert record.media_open is None


def test_a_live_call_shows_the_interruption_under_way() -> None:
    h = Harness()
    h.start()
    h.unpublish(AUDIO, h.t0 + 20)
    h.tracker.expire(h.t0 + 30)
    status, name, evidence = h.verdict(h.t0 + 50)
    assert (status, name) == ("warning", "media_interrupted")
    assert evidence.startswith("the avatar's audio has been off (unpublished) since ")
    assert evidence.endswith(", 30 s")


def test_media_off_before_the_call_is_active_counts_once_it_is() -> None:
    """Only while the call is active: an avatar dispatched before the user, with no audio."""
    h = Harness()
    face = avatar(h.t0 - 5)
    h.apply(h.room.joined(face), h.room.track(face, AUDIO, h.t0 - 5), now=h.t0 - 5)
    h.apply(h.room.untrack(face, AUDIO, h.t0 - 4), now=h.t0 - 4)
    h.tracker.expire(h.t0 - 0.5)
    assert h.interruptions() == (0, 0, 0)
    h.apply(h.room.joined(h.caller), now=h.t0)
    h.apply(h.room.track(face, AUDIO, h.t0 + 5), now=h.t0 + 5)
    assert h.interruptions() == (1, 1, pytest.approx(9))


def test_a_call_ended_without_the_avatars_leave_closes_the_interruption() -> None:
    h = Harness(interruption_grace=5)
    h.start()
    h.unpublish(AUDIO, h.t0 + 20)
    h.apply(h.room.finished(h.t0 + 40), now=h.t0 + 40)
    h.tracker.expire(h.t0 + 60)  # the linger ends: no leave came
    assert h.interruptions() == (1, 1, pytest.approx(40))
    assert h.record().media_lost is not None



def test_a_dry_turn_is_one_interruption_that_ends_with_the_turn() -> None:
    """The observer's probe found the audio dry from t0+22 (reported at t0+25); the agent's
    turn ends at t0+35: the interruption came back with the turn's end."""
    h = Harness()
    h.start()
    h.observed("audio", False, "dry", h.t0 + 22)
    h.tracker.expire(h.t0 + 26.9)
    assert h.interruptions() == (0, 0, 0)
    h.tracker.expire(h.t0 + 27)
    assert h.interruptions() == (1, 0, 0)
    h.observed("audio", True, "dry", h.t0 + 35)
    assert h.interruptions() == (1, 1, pytest.approx(13))
    h.apply(h.room.left(h.caller, h.t0 + 60), now=h.t0 + 60)
    h.leave(h.t0 + 62, R.ROOM_CLOSED)
    status, name, evidence = h.verdict(h.t0 + 70)
    assert (status, name) == ("warning", "media_interrupted")
    assert evidence.startswith("the avatar's audio stopped (dry) at ")
    assert evidence.endswith(" for 13 s")


def test_a_dry_turn_shorter_than_the_grace_is_not_counted() -> None:
    h = Harness()
    h.start()
    h.observed("audio", False, "dry", h.t0 + 22)
    h.observed("audio", True, "dry", h.t0 + 26)
    h.tracker.expire(h.t0 + 40)
    assert h.interruptions() == (0, 0, 0)


def test_audio_heard_again_ends_only_a_dry_interruption() -> None:
    """A probe's word on sound says nothing of a mute: the mute holds until the unmute."""
    h = Harness()
    h.start()
    h.observed("audio", False, "muted", h.t0 + 20)
    h.observed("audio", False, "dry", h.t0 + 21)  # the first holds
    h.observed("audio", True, "dry", h.t0 + 23)
    h.tracker.expire(h.t0 + 26)
    h.observed("audio", True, "muted", h.t0 + 30)
    assert h.interruptions() == (1, 1, pytest.approx(10))
    assert h.record().media_longest == ("audio", "muted", h.t0 + 20, pytest.approx(10))


def test_a_dry_turn_open_when_the_avatar_leaves_fails_the_call() -> None:
    h = Harness()
    h.start()
    h.observed("audio", False, "dry", h.t0 + 22)
    h.tracker.expire(h.t0 + 30)
    h.leave(h.t0 + 40)
    assert h.interruptions() == (1, 1, pytest.approx(18))
    assert h.verdict(h.t0 + 50)[0] == "failed"  # the avatar left on its own, mute
    evidence = {f.rule: f.evidence for f in
                diagnose(h.record(), Thresholds(), h.t0 + 50).findings}["media_stopped"]
    assert evidence.startswith("the avatar's audio stopped (dry) at ")
