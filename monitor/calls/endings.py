"""How an active call ends: the avatar's leave, held for a while when what comes next may explain
it (the voice agent's end, within AGENT_HANGUP_WINDOW; the avatar's own word, within
AVATAR_WORD_WINDOW: see monitor.calls.core), then classified (monitor.calls.departures) with what
is known then; and the calls whose linger is over, ended if their leave never came, then
evicted."""

from __future__ import annotations

import logging

from monitor.calls.book import CallBook
from monitor.calls.core import AGENT_MAY_HAVE_ENDED
from monitor.calls.departures import (
    AGENT_HANGUP_WINDOW,
    AVATAR_WORD_WINDOW,
    ROOM_END_API_DELETE,
    Departure,
    DepartureFacts,
    classify,
)
from monitor.calls.listener import CallListener
from monitor.calls.model import Call, CallState, silence_seconds

log = logging.getLogger(__name__)


class CallEndings:
    """Holds, releases and classifies the avatar's leave; ends and evicts lingering calls."""

    def __init__(self, book: CallBook) -> None:
        self._book = book

    def hold(self, call: Call, now: float) -> None:
        """Release the avatar's held leave now, or hold it for the agent's end or the avatar's
        word (see the module's docstring)."""
        if self.may_wait_for_agent(call):
            self._book.holding.add((now + AGENT_HANGUP_WINDOW, call.room_sid))
        elif self._may_wait_for_word(call):
            self._book.awaiting_word.add((now + AVATAR_WORD_WINDOW, call.room_sid))
        else:
            self.release(call, now)

    def may_wait_for_agent(self, call: Call) -> bool:
        """Whether the held leave, not yet an agent hang-up, could become one when the agent's end
        arrives (it often comes just after the avatar is removed or the room deleted)."""
        held = call.held
        if held is None or call.agent_ended_at is not None:
            return False
        if not (call.avatar_agent or call.agent_seen):
            return False  # no voice agent in this call: nothing will come to wait for
        if call.room_finished and call.room_end_reason != ROOM_END_API_DELETE:
            return False
        if held.reason not in AGENT_MAY_HAVE_ENDED or call.session_close_reason == "error":
            return False
        departure = classify(self._facts(call, held.reason, held.session_seconds, held.left))
        return departure in (Departure.REMOVED, Departure.SERVER)

    def _may_wait_for_word(self, call: Call) -> bool:
        """Whether the held leave is unexplained so far, in a call whose voice agent may still
        forward its avatar's word: one that reports its state runs instrument(), which does."""
        held = call.held
        if held is None or call.speech_reported_at is None:
            return False
        facts = self._facts(call, held.reason, held.session_seconds, held.left)
        return classify(facts) is Departure.UNKNOWN

    def release_due(self, now: float) -> None:
        """Release the held leaves whose wait is over."""
        for holding in (self._book.holding, self._book.awaiting_word):
            for _, sid in holding.due(now):
                call = self._book.call(sid)
                if call is not None and call.held is not None:
                    self.release(call, now)

    def release(self, call: Call, now: float) -> None:
        """Classify the held leave with what is known now, and end the call."""
        held = call.held
        if held is None:
            return
        facts = self._facts(call, held.reason, held.session_seconds, held.left)
        call.held = None
        if call.state is CallState.ACTIVE:
            log.debug("avatar left %s: %s", call.room_name, facts)
            self._book.emit(CallListener.avatar_left, call, classify(facts),
                            held.session_seconds, held.at)
        self._book.end(call, held.at, now)

    def agent_ended(self, call: Call, at: float, now: float) -> None:
        """The voice agent ended the call at `at`: a held leave is an agent hang-up now."""
        if call.agent_ended_at is None:
            call.agent_ended_at = at
        if call.held is not None:
            self.release(call, now)

    def evict(self, now: float) -> None:
        """Calls whose linger is over: a held leave is released, a call whose room finished (or
        whose avatar is unknown) with no leave ends, and ended calls are forgotten."""
        for _, sid in self._book.lingering.due(now):
            call = self._book.call(sid)
            if call is None:
                continue
            unknown_ended = call.avatar_unknown and call.state is CallState.FAILED
            if call.held is not None:
                self.release(call, now)
            elif call.state is not CallState.ENDED and (call.room_finished or unknown_ended):
                self._finish_without_departure(call, now)
            if call.state is CallState.ENDED:
                self._book.forget(call)

    def _finish_without_departure(self, call: Call, now: float) -> None:
        """The room finished and the avatar's leave never arrived."""
        facts = self._facts(call, "unknown_reason", None, now)
        if call.state is CallState.ACTIVE:
            self._book.emit(CallListener.avatar_left, call, classify(facts), 0.0, now)
        self._book.end(call, now, now)

    def _facts(self, call: Call, reason: str, session: float | None, at: float
               ) -> DepartureFacts:
        settings = self._book.settings
        error_age = None
        if call.unrecoverable_error_at is not None:
            error_age = max(at - call.unrecoverable_error_at, 0.0)
        left = call.held.at if call.held is not None else at  # server time, when known
        agent_ended_before = None
        if call.agent_ended_at is not None:
            agent_ended_before = left - call.agent_ended_at
        user_left_before = None
        if call.held is not None and call.user_left_first and call.users_left_at is not None:
            user_left_before = max(left - call.users_left_at, 0.0)
        agent_lost_before = None
        if call.agent_lost_at is not None and call.held is not None:
            agent_lost_before = left - call.agent_lost_at
        return DepartureFacts(
            disconnect_reason=reason,
            session_seconds=session,
            user_left_first=call.user_left_first,
            session_timeout=settings.session_timeout,
            timeout_tolerance=settings.timeout_tolerance,
            silence_seconds=silence_seconds(call, at),
            idle_timeout=settings.idle_timeout,
            unrecoverable_error_age=error_age,
            agent_ended_before=agent_ended_before,
            session_close_reason=call.session_close_reason,
            room_end_reason=call.room_end_reason,
            user_left_before=user_left_before,
            user_connection_lost=call.user_connection_lost,
            agent_lost_before=agent_lost_before,
            agent_lost_reason=call.agent_lost_reason,
            avatar_said_idle_timeout=call.avatar_said_idle_timeout,
        )
