"""RoomService listings applied to calls (monitor.observer.reconcile asks for them): joins of
participants present but unknown, leaves of participants gone, and which rooms were live."""

from __future__ import annotations

import logging

from monitor.calls.book import CallBook
from monitor.calls.core import CREATED_AT_PRECISION
from monitor.calls.inputs import Event, Participant
from monitor.calls.listener import CallListener
from monitor.calls.model import CallState
from monitor.calls.webhooks import WebhookApplier, next_avatar_sid

log = logging.getLogger(__name__)


class ListingApplier:
    """Reconciles the book's calls with what RoomService lists."""

    def __init__(self, book: CallBook, webhooks: WebhookApplier) -> None:
        self._book = book
        self._webhooks = webhooks

    def listed(self, live_sids: set[str], at: float) -> None:
        """A RoomService listing asked at `at` (server time) had these rooms."""
        self._book.listed(live_sids, at)

    def present(self, room_sid: str) -> list[Participant]:
        """The participants this room's live call holds present (users and the avatar)."""
        call = self._book.call(room_sid)
        if call is None or call.state is CallState.ENDED:
            return []
        here = [Participant(sid, "", "STANDARD", None, "unknown_reason", False)
                for sid, present in call.users.items() if present]
        if call.avatar_sid is not None and not call.avatar_left:
            here.append(Participant(call.avatar_sid, call.avatar_identity or "", "AGENT",
                                    call.avatar_joined_at, "unknown_reason", True))
        return here

    def reconcile(self, room_sid: str, room_name: str, room_created_at: float | None,
                  present: list[Participant], gone: list[Participant], at: float) -> list[str]:
        """Apply what a listing shows and webhooks did not: joins of participants present but
        unknown (a call rebuilt after a restart counts from `started_at`), leaves of participants
        gone. `at` is the listing's time, taken for this machine's too. Returns the actions
        taken: call_recovered, join, leave."""
        existed = self._book.call(room_sid) is not None
        actions = self._joins(room_sid, room_name, room_created_at, present, at)
        call = self._book.call(room_sid)
        if not existed and call is not None and call.started_at is not None:
            actions.append("call_recovered")
            log.info("recovered the call in room %s from a listing", room_name)
        for participant in gone:
            call = self._book.call(room_sid)
            if call is None or call.state is CallState.ENDED:
                break
            self._webhooks.participant_left(Event("participant_left", "", at, room_sid,
                                                  room_name, room_created_at, participant,
                                                  None, None), at)
            self._book.emit(CallListener.reconciled, call, "leave", participant, at)
            actions.append("leave")
        return actions

    def _joins(self, room_sid: str, room_name: str, room_created_at: float | None,
               present: list[Participant], at: float) -> list[str]:
        """Apply the joins of participants present but unknown; a call made for them counts
        from when this process started counting."""
        actions: list[str] = []
        counted_from = self._book.started_at()
        for participant in sorted(present, key=lambda p: p.joined_at or at):
            if participant.hidden or self._knows(room_sid, participant, at):
                continue
            event = Event("participant_joined", "", at, room_sid, room_name,
                          room_created_at, participant, None, None)
            if self._book.is_late(event):
                continue
            self._webhooks.participant_joined(event, at, counted_from)
            call = self._book.call(room_sid)
            if call is not None and self._knows(room_sid, participant, at):
                actions.append("join")
                self._book.emit(CallListener.reconciled, call, "join", participant, at)
        return actions

    def _knows(self, room_sid: str, participant: Participant, now: float) -> bool:
        call = self._book.call(room_sid)
        if call is None:
            return False
        if call.state is CallState.ENDED:
            joined = participant.joined_at or now
            return call.ended_at is None or joined <= call.ended_at + CREATED_AT_PRECISION
        return (participant.sid in call.users
                or participant.sid in (call.avatar_sid, next_avatar_sid(call))
                or (call.others is not None and participant.sid in call.others))
