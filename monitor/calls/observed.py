"""What the tracker learns besides webhooks: the room observer's watch (speech, connection
quality, a room gone), the voice agent's reports (startup failures, pipeline errors, its
session closing, latencies) and the avatar's own word (ready, idle timeout, errors, latencies)."""

from __future__ import annotations

from monitor.calls.book import CallBook
from monitor.calls.core import ROOM_GONE_GRACE
from monitor.calls.departures import AGENT_ENDED_REASONS, Departure
from monitor.calls.endings import CallEndings
from monitor.calls.inputs import (
    AVATAR_SIGNALS,
    AgentLatency,
    AgentState,
    AvatarError,
    AvatarIdleTimeout,
    AvatarLatency,
    AvatarReady,
    AvatarSignal,
    PipelineError,
    SessionClosed,
    Signal,
    StartupFailureMessage,
)
from monitor.calls.listener import CallListener
from monitor.calls.model import Call, CallState


class ObservedApplier:
    """Observer and report input (local clock)."""

    def __init__(self, book: CallBook, endings: CallEndings) -> None:
        self._book = book
        self._endings = endings

    def observing(self, room_sid: str, at: float) -> None:
        """The observer now watches this call's room: silence can be measured."""
        call = self._book.call(room_sid)
        if call is not None and call.observed_at is None:
            call.observed_at = at
            self._book.emit(CallListener.observation_started, call, at)

    def room_gone(self, room_sid: str, at: float) -> None:
        """The server no longer has the room (it restarted, or the room closed unseen). The
        call ends after ROOM_GONE_GRACE, so that the webhooks already on their way (a user's
        leave, the avatar's) still tell how it ended."""
        call = self._book.call(room_sid)
        if call is not None and call.state is not CallState.ENDED:
            self._book.going.add((at + ROOM_GONE_GRACE, room_sid, at))

    def end_gone_rooms(self, now: float) -> None:
        """End the calls of rooms found gone whose grace is over."""
        for _, sid, gone_at in self._book.going.due(now):
            self._end_gone_room(sid, gone_at, now)

    def _end_gone_room(self, room_sid: str, at: float, now: float) -> None:
        call = self._book.call(room_sid)
        if call is None or call.state is CallState.ENDED:
            return
        if call.held is not None:
            self._endings.release(call, now)
        elif call.state is CallState.ACTIVE and not call.avatar_left:
            call.avatar_left = True
            self._book.attended(call, at)
            self._book.end_poor_quality(call, at)
            session = max(at - (call.avatar_joined_at or at), 0.0)
            self._book.emit(CallListener.avatar_left, call, Departure.SERVER, session, at)
        self._book.end(call, at, now)

    def signal(self, room_sid: str, signal: Signal, at: float, now: float) -> None:
        """An event the voice agent or the avatar backend reported (see monitor.reports.bridge)
        at `at`; `now` is this machine's clock."""
        call = self._book.call(room_sid)
        if call is None or call.state is CallState.ENDED:
            return
        if isinstance(signal, StartupFailureMessage):  # the avatar backend's, not the agent's
            self._book.emit(CallListener.backend_message, call, signal.message, at)
            if not call.startup_failure_counted:
                self._book.fail(call, "message", at)
            return
        if isinstance(signal, AVATAR_SIGNALS):
            self._avatar_said(call, signal, at, now)
            return
        call.agent_seen = True  # the voice agent reports
        if isinstance(signal, AgentState):
            # Its lk.agent.state, reported by the agent itself: as the observer reads it.
            if call.speech_reported_at is None:
                call.speech_reported_at = at
            self.avatar_speaking(room_sid, signal.speaking, at)
        elif isinstance(signal, PipelineError):
            if not signal.recoverable:
                call.unrecoverable_error_at = at
            self._book.emit(CallListener.pipeline_error, call, signal, at)
        elif isinstance(signal, SessionClosed):
            call.session_close_reason = signal.reason
            self._book.emit(CallListener.session_closed, call, signal.reason, at, signal.message)
            if signal.reason in AGENT_ENDED_REASONS:
                self._endings.agent_ended(call, at, now)
            elif call.held is not None:
                # the session closed for another reason: nothing to wait for
                self._endings.release(call, now)
        elif isinstance(signal, AgentLatency):
            self._book.emit(CallListener.agent_latency, call, signal, at)

    def _avatar_said(self, call: Call, signal: AvatarSignal, at: float, now: float
                     ) -> None:
        """The call's avatar spoke for itself (the observer checked the sender)."""
        if isinstance(signal, AvatarReady):
            if call.avatar_ready_at is None and call.started_at is not None:
                call.avatar_ready_at = at
                self._book.emit(CallListener.avatar_ready, call, max(at - call.started_at, 0.0), at)
        elif isinstance(signal, AvatarIdleTimeout):
            # Its word decides the departure unless the call was already being ended.
            if not (call.user_left_first or call.agent_ended_at is not None):
                call.avatar_said_idle_timeout = True
            self._book.emit(CallListener.avatar_said, call, "idle_timeout", at)
        elif isinstance(signal, AvatarError):
            if signal.fatal:
                call.unrecoverable_error_at = at
            self._book.emit(CallListener.avatar_said, call, signal.kind, at)
            self._book.emit(CallListener.pipeline_error, call, signal.error, at)
        elif isinstance(signal, AvatarLatency):
            self._book.emit(CallListener.agent_latency, call, signal.latency, at)
        if call.held is not None and (isinstance(signal, AvatarIdleTimeout)
                                      or (isinstance(signal, AvatarError) and signal.fatal)):
            # the leave it was waiting for the avatar's word to explain
            self._endings.release(call, now)

    def avatar_speaking(self, room_sid: str, speaking: bool, at: float) -> None:
        """The avatar started or stopped being an active speaker. The observer and the voice
        agent may both tell the same change: a change older than the last one applied is
        stale and ignored, and a repeated state changes nothing but the last speech's time."""
        call = self._book.call(room_sid)
        if call is None or call.avatar_left:
            return
        if call.speech_changed_at is not None and at < call.speech_changed_at:
            return
        if speaking != call.speaking:
            call.speech_changed_at = at
        if call.avatar_joined_at is None:
            call.speaking = speaking  # the agent speaks before the avatar is in: see _avatar_joined
            return
        if speaking and call.first_speech_at is None:
            call.first_speech_at = at
            delay = max(at - call.avatar_joined_at, 0.0)
            self._book.emit(CallListener.first_speech, call, delay, at)
        if speaking or call.speaking:
            call.last_speech_at = max(at, call.last_speech_at or at)
        call.speaking = speaking

    def avatar_quality(self, room_sid: str, quality: str, at: float) -> None:
        """The avatar's connection quality changed (excellent, good, poor, lost)."""
        call = self._book.call(room_sid)
        if call is None or call.avatar_joined_at is None or call.avatar_left:
            return
        if quality == call.poor_quality:
            return
        self._book.end_poor_quality(call, at)
        if quality in ("poor", "lost"):
            call.poor_quality, call.poor_quality_since = quality, at
