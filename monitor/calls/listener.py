"""What the tracker tells its listeners (metrics, traces, records, the observer), and the
listeners of one tracker."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Concatenate, ParamSpec

from avatar_monitor_agent.roles import Role

from monitor.calls.departures import Departure
from monitor.calls.inputs import AgentLatency, Event, Participant, PipelineError
from monitor.calls.model import Call

log = logging.getLogger(__name__)
P = ParamSpec("P")


class CallListener:
    """Receives call transitions. Subclasses override what they need; every method is a no-op.
    Times (`at`, `call.started_at`, `call.avatar_joined_at`) are server unix seconds."""

    def call_started(self, call: Call) -> None: ...
    def participant_joined(self, call: Call, role: Role, participant: Participant,
                           at: float) -> None: ...
    def avatar_joined(self, call: Call, latency: float) -> None: ...
    def startup_failed(self, call: Call, cause: str, at: float) -> None: ...
    def call_abandoned(self, call: Call, at: float) -> None: ...
    def first_track(self, call: Call, kind: str, delay: float, at: float) -> None: ...
    def participant_left(self, call: Call | None, role: Role, participant: Participant,
                         at: float) -> None: ...
    def avatar_left(self, call: Call, departure: Departure, session_seconds: float,
                    at: float) -> None: ...
    # Another avatar session took over the active call (hot swap, or a rejoin): its join time.
    def avatar_session_started(self, call: Call, at: float) -> None: ...
    def avatar_alone(self, call: Call, since: float) -> None: ...  # no user in its room
    def avatar_unattended(self, call: Call, since: float, until: float) -> None: ...  # ended
    def call_ended(self, call: Call, at: float) -> None: ...  # also calls that never started
    def call_evicted(self, call: Call) -> None: ...
    # An ended call's linger is over (or it made room for another): its record is final.
    def call_forgotten(self, call: Call) -> None: ...
    def first_speech(self, call: Call, delay: float, at: float) -> None: ...
    def pipeline_error(self, call: Call, error: PipelineError, at: float) -> None: ...
    def session_closed(self, call: Call, reason: str, at: float,
                       message: str = "") -> None: ...
    def agent_latency(self, call: Call, latency: AgentLatency, at: float) -> None: ...
    def backend_message(self, call: Call, message: str, at: float) -> None: ...
    # The avatar said bot_ready (first time in the call); latency from the call's start.
    def avatar_ready(self, call: Call, latency: float, at: float) -> None: ...
    # idle_timeout, error, video_generation_error (the message's type, a closed set)
    def avatar_said(self, call: Call, message: str, at: float) -> None: ...
    def observation_started(self, call: Call, at: float) -> None: ...
    def poor_quality(self, call: Call, quality: str, seconds: float) -> None: ...
    def late_event(self, room_sid: str, event: Event) -> None: ...  # for a finished call
    def reconciled(self, call: Call, action: str, participant: Participant | None,
                   at: float) -> None: ...  # a join or leave taken from a RoomService listing
    # The avatar's audio or video has been off (how: unpublished, muted) since `since` for longer
    # than the grace; then it came back, or the avatar left or the call ended (`restored` False).
    # Times on this machine's clock.
    def media_interrupted(self, call: Call, kind: str, how: str, since: float) -> None: ...
    def media_interruption_ended(self, call: Call, kind: str, how: str, since: float,
                                 seconds: float, restored: bool) -> None: ...


class Listeners:
    """The listeners of one tracker, in order: tells those that override a transition what
    changed; one that raises does not stop the others."""

    def __init__(self, listeners: Iterable[CallListener]) -> None:
        self._listeners = list(listeners)
        # transition -> the listeners' methods that do something for it (built on first use)
        self._sinks: dict[str, list[Callable[..., None]]] = {}

    def add(self, listener: CallListener) -> None:
        """Receive transitions from now on, after the listeners already there."""
        self._listeners.append(listener)
        self._sinks.clear()

    def emit(self, transition: Callable[Concatenate[CallListener, P], None],
             *args: P.args, **kwargs: P.kwargs) -> None:
        """Tell the listeners that override `transition` (a CallListener method) what changed."""
        name = transition.__name__
        sinks = self._sinks.get(name)
        if sinks is None:
            sinks = self._sinks[name] = self._overriding(name)
        for sink in sinks:
            try:
                sink(*args, **kwargs)
            except Exception:  # one broken sink must not stop the others or the intake
                log.exception("%s failed in %s", name,
                              type(getattr(sink, "__self__", sink)).__name__)

    def _overriding(self, transition: str) -> list[Callable[..., None]]:
        """The bound methods of listeners that override the no-op for `transition`: calls to
        the rest are skipped on the hot path."""
        noop = getattr(CallListener, transition)
        return [getattr(listener, transition) for listener in self._listeners
                if getattr(type(listener), transition, noop) is not noop]
