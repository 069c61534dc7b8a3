"""The bill: an avatar's time alone in its room, from the tracker's transitions to the
scrape-time counter and gauges (monitor/sinks/bill.py)."""

from __future__ import annotations

from avatar_monitor_agent.roles import RoleClassifier
from livekit.protocol import models, webhook
from prometheus_client import CollectorRegistry

from monitor.calls.core import TrackerSettings
from monitor.calls.tracker import CallTracker
from monitor.intake.events import parse_event
from monitor.sinks.bill import AvatarBill
from tests.support.webhooks import Room, agent, avatar, encode, user

R = models.DisconnectReason
T0 = 1_000_000.0


class Billed:
    """A tracker with the bill listening, and the server's clock in the test's hands."""

    def __init__(self, started_at: float = 0.0) -> None:
        self.now = T0
        self.bill = AvatarBill(lambda: self.now)
        self.registry = CollectorRegistry()
        self.registry.register(self.bill)
        self.tracker = CallTracker(RoleClassifier(["lemonslice-avatar-agent"]),
                                   TrackerSettings(), [self.bill], lambda: started_at)
        self.room = Room(created_at=T0)

    def at(self, t: float, *events: webhook.WebhookEvent) -> None:
        self.now = T0 + t
        for event in events:
            self.tracker.apply(parse_event(encode(event)), T0 + t)

    def read(self, t: float) -> tuple[float, float, float]:
        """(seconds alone so far, avatars alone now, longest alone now) at T0 + t."""
        self.now = T0 + t
        value = self.registry.get_sample_value
        return (value("avatar_unattended_seconds_total") or 0.0,
                value("avatar_unattended_now") or 0.0,
                value("avatar_unattended_longest_seconds") or 0.0)


def test_the_time_after_the_user_left_is_billed_while_it_lasts() -> None:
    b = Billed()
    caller, face = user(T0), avatar(T0 + 2)
    b.at(2, b.room.joined(caller), b.room.joined(face))
    assert b.read(30) == (0.0, 0.0, 0.0)  # a user is there
    b.at(60, b.room.left(caller, T0 + 60))
    assert b.read(100) == (40.0, 1.0, 40.0)  # grows while the avatar waits
    b.at(400, b.room.left(face, T0 + 400))
    assert b.read(500) == (340.0, 0.0, 0.0)  # the stay ended when the avatar left


def test_an_avatar_before_the_first_user_is_billed_until_the_user_comes() -> None:
    b = Billed()
    voice, face, caller = agent(T0), avatar(T0 + 1), user(T0 + 31)
    b.at(1, b.room.joined(voice), b.room.joined(face))
    assert b.read(11) == (10.0, 1.0, 10.0)
    b.at(31, b.room.joined(caller))
    assert b.read(60) == (30.0, 0.0, 0.0)
    b.at(90, b.room.left(caller, T0 + 90), b.room.left(face, T0 + 91))
    assert b.read(100) == (31.0, 0.0, 0.0)  # and the second after the hang-up


def test_a_returning_user_ends_the_stay_alone() -> None:
    b = Billed()
    first, face, second = user(T0), avatar(T0 + 1), user(T0 + 50)
    b.at(1, b.room.joined(first), b.room.joined(face))
    b.at(20, b.room.left(first, T0 + 20, R.CONNECTION_TIMEOUT))
    b.at(50, b.room.joined(second))
    assert b.read(60) == (30.0, 0.0, 0.0)


def test_a_call_rebuilt_after_a_restart_bills_from_when_this_process_counts() -> None:
    """A listing after a restart shows an avatar alone since before the start: the previous
    process billed the time up to then."""
    b = Billed(started_at=T0 + 100)
    listed = parse_event(encode(b.room.joined(avatar(T0 + 1)))).participant
    assert listed is not None
    b.now = T0 + 120
    b.tracker.reconcile(b.room.sid, b.room.name, T0, [listed], [], T0 + 120)
    assert b.read(130) == (30.0, 1.0, 30.0)
