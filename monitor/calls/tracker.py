"""The call tracker: a synchronous state machine over typed inputs, with server timestamps.

A facade over the call book (monitor.calls.book) and its appliers, one per input: webhooks
(monitor.calls.webhooks), RoomService listings (listings), the observer's watch and the voice
agent's reports (observed), the avatar's media (media); how calls end is monitor.calls.endings.
Listeners (metrics, traces) receive the transitions; the tracker itself knows nothing of
Prometheus or HTTP. Every input takes `now`, this machine's clock. Its invariants:
docs/tracking.md, "Invariants".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from avatar_monitor_agent.roles import Role, RoleClassifier

from monitor.calls.book import CallBook
from monitor.calls.core import TrackerSettings, WaitingReports
from monitor.calls.endings import CallEndings
from monitor.calls.inputs import Event, Participant, Signal
from monitor.calls.listener import CallListener
from monitor.calls.listings import ListingApplier
from monitor.calls.media import MediaApplier
from monitor.calls.model import Call, CallState
from monitor.calls.observed import ObservedApplier
from monitor.calls.webhooks import WebhookApplier


class CallTracker:
    """Applies webhook events, RoomService listings, the observer's watch and reported signals to
    calls, and tells listeners what changed. `started_at` is the server time from which this
    process counts (calls under way before it were counted by its predecessor); `reports` holds
    the reports that arrived before their call started."""

    def __init__(self, roles: RoleClassifier, settings: TrackerSettings,
                 listeners: Iterable[CallListener] = (),
                 started_at: Callable[[], float] = lambda: 0.0,
                 reports: WaitingReports | None = None) -> None:
        self._book = CallBook(roles, settings, listeners, started_at, reports)
        self._endings = CallEndings(self._book)
        self._media = MediaApplier(self._book)
        self._observed = ObservedApplier(self._book, self._endings)
        self._webhooks = WebhookApplier(self._book, self._endings, self._media, self._observed)
        self._listings = ListingApplier(self._book, self._webhooks)

    # -- queries ------------------------------------------------------------------------------

    @property
    def settings(self) -> TrackerSettings:
        return self._book.settings

    def call(self, room_sid: str) -> Call | None:
        return self._book.call(room_sid)

    def call_in_room(self, room_name: str, room_sid: str | None = None) -> Call | None:
        return self._book.call_in_room(room_name, room_sid)

    def has_ended(self, room_sid: str) -> bool:
        return self._book.has_ended(room_sid)

    def open_calls(self) -> list[Call]:
        return self._book.open_calls()

    def role_of(self, participant: Participant) -> Role:
        return self._book.role_of(participant)

    def started_at(self) -> float:
        return self._book.started_at()

    @property
    def tracked(self) -> int:
        return self._book.tracked

    @property
    def counts(self) -> Mapping[CallState, int]:
        return self._book.counts

    def add_listener(self, listener: CallListener) -> None:
        self._book.add_listener(listener)

    # -- inputs -------------------------------------------------------------------------------

    def apply(self, event: Event, now: float) -> None:
        self._webhooks.apply(event, now)

    def expire(self, now: float) -> None:
        """Fire the timers due at `now`, in this order: join deadlines, held leaves, rooms gone,
        media interruptions, then lingering calls."""
        self._webhooks.expire_deadlines(now)
        self._endings.release_due(now)
        self._observed.end_gone_rooms(now)
        self._media.check(now)
        self._endings.evict(now)

    def listed(self, live_sids: set[str], at: float) -> None:
        self._listings.listed(live_sids, at)

    def present(self, room_sid: str) -> list[Participant]:
        return self._listings.present(room_sid)

    def reconcile(self, room_sid: str, room_name: str, room_created_at: float | None,
                  present: list[Participant], gone: list[Participant], at: float) -> list[str]:
        return self._listings.reconcile(room_sid, room_name, room_created_at, present, gone, at)

    def signal(self, room_sid: str, signal: Signal, at: float, now: float) -> None:
        self._observed.signal(room_sid, signal, at, now)

    def observing(self, room_sid: str, at: float) -> None:
        self._observed.observing(room_sid, at)

    def room_gone(self, room_sid: str, at: float) -> None:
        self._observed.room_gone(room_sid, at)

    def avatar_speaking(self, room_sid: str, speaking: bool, at: float) -> None:
        self._observed.avatar_speaking(room_sid, speaking, at)

    def avatar_quality(self, room_sid: str, quality: str, at: float) -> None:
        self._observed.avatar_quality(room_sid, quality, at)

    def avatar_media(self, room_sid: str, avatar_sid: str, kind: str, on: bool, how: str,
                     at: float) -> None:
        self._media.avatar_media(room_sid, avatar_sid, kind, on, how, at)

    def avatar_disconnected(self, room_sid: str, avatar_sid: str, at: float) -> None:
        self._media.avatar_disconnected(room_sid, avatar_sid, at)
