"""OpenTelemetry traces: one trace per call, its spans timed by the server's timestamps.

`avatar.call` spans the call (start -> end); its children are `avatar.ringing` (start -> avatar
joined, or the startup failure) and `avatar.session` (avatar joined -> left). Joins, leaves,
first tracks, failures and what the avatar says (ready, idle timeout) are span events. Names
and identities are attributes, never labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from avatar_monitor_agent.roles import Role
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from monitor.calls.departures import Departure
from monitor.calls.inputs import Participant, PipelineError
from monitor.calls.listener import CallListener
from monitor.calls.model import Call

CALL_SPAN, RINGING_SPAN, SESSION_SPAN = "avatar.call", "avatar.ringing", "avatar.session"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass(slots=True)
class _OpenSpans:
    root: Span
    start: float
    ringing: Span | None = None
    session: Span | None = None


class CallTracer(CallListener):
    """Turns call transitions into spans; `trace_id` names a live call's trace (for exemplars)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self._open: dict[str, _OpenSpans] = {}

    def _child(self, spans: _OpenSpans, name: str, at: float, **attributes: str) -> Span:
        return self._tracer.start_span(name, context=trace.set_span_in_context(spans.root),
                                       start_time=_ns(at), attributes=attributes)

    def call_started(self, call: Call) -> None:
        at = call.started_at or time.time()
        root = self._tracer.start_span(
            CALL_SPAN, context=Context(), start_time=_ns(at),
            attributes={"livekit.room.name": call.room_name, "livekit.room.sid": call.room_sid})
        spans = _OpenSpans(root, at)
        spans.ringing = self._child(spans, RINGING_SPAN, at)
        self._open[call.room_sid] = spans

    def trace_id(self, room_sid: str) -> int:
        """The trace of the call in this room, while it is open; 0 when there is none."""
        spans = self._open.get(room_sid)
        return spans.root.get_span_context().trace_id if spans is not None else 0

    def participant_joined(self, call: Call, role: Role, participant: Participant,
                           at: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is not None:
            spans.root.add_event("participant_joined", _who(role, participant), _ns(at))

    def avatar_joined(self, call: Call, latency: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is None:
            return
        at = call.avatar_joined_at or time.time()
        spans.root.set_attribute("avatar.join_latency_seconds", latency)
        spans.root.set_attribute("avatar.identity", call.avatar_identity or "")
        if spans.ringing is not None:
            spans.ringing.end(_ns(max(at, spans.start)))
            spans.ringing = None
        spans.session = self._child(spans, SESSION_SPAN, at,
                                    **{"avatar.identity": call.avatar_identity or ""})

    def avatar_ready(self, call: Call, latency: float, at: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is not None:
            spans.root.set_attribute("avatar.ready_latency_seconds", latency)
            (spans.session or spans.root).add_event("avatar_ready", {"latency_seconds": latency},
                                                    _ns(at))

    def avatar_said(self, call: Call, message: str, at: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is not None:
            (spans.session or spans.root).add_event("avatar_said", {"message": message},
                                                    _ns(at))

    def startup_failed(self, call: Call, cause: str, at: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is None:
            return
        status = Status(StatusCode.ERROR, f"startup_failure: {cause}")
        spans.root.add_event("startup_failure", {"cause": cause}, _ns(at))
        spans.root.set_status(status)
        if spans.ringing is not None:
            spans.ringing.set_status(status)
            spans.ringing.end(_ns(max(at, spans.start)))
            spans.ringing = None

    def call_abandoned(self, call: Call, at: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is not None:
            spans.root.set_attribute("avatar.call.outcome", "abandoned")
            spans.root.add_event("abandoned", {}, _ns(at))

    def first_track(self, call: Call, kind: str, delay: float, at: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is not None:
            target = spans.session or spans.root
            target.add_event("first_track", {"kind": kind, "delay_seconds": delay}, _ns(at))

    def participant_left(self, call: Call | None, role: Role, participant: Participant,
                         at: float) -> None:
        spans = self._open.get(call.room_sid) if call is not None else None
        if spans is not None:
            attributes = _who(role, participant)
            attributes["disconnect_reason"] = participant.disconnect_reason
            spans.root.add_event("participant_left", attributes, _ns(at))

    def avatar_left(self, call: Call, departure: Departure, session_seconds: float,
                    at: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is None:
            return
        spans.root.set_attribute("avatar.departure", departure.value)
        if spans.session is not None:
            spans.session.set_attribute("avatar.departure", departure.value)
            spans.session.end(_ns(max(at, spans.start)))
            spans.session = None

    def first_speech(self, call: Call, delay: float, at: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is not None:
            target = spans.session or spans.root
            target.add_event("first_speech", {"delay_seconds": delay}, _ns(at))

    def pipeline_error(self, call: Call, error: PipelineError, at: float) -> None:
        spans = self._open.get(call.room_sid)
        if spans is None:
            return
        attributes: dict[str, AttributeValue] = {
            "component": error.component, "recoverable": error.recoverable}
        spans.root.add_event("pipeline_error", attributes, _ns(at))
        if not error.recoverable:
            status = Status(StatusCode.ERROR, f"pipeline_error: {error.component}")
            spans.root.set_status(status)
            if spans.session is not None:
                spans.session.set_status(status)

    def session_closed(self, call: Call, reason: str, at: float, message: str = "") -> None:
        spans = self._open.get(call.room_sid)
        if spans is not None:
            spans.root.add_event("session_closed", {"reason": reason}, _ns(at))

    def media_interruption_ended(self, call: Call, kind: str, how: str, since: float,
                                 seconds: float, restored: bool) -> None:
        spans = self._open.get(call.room_sid)
        if spans is not None:
            attributes: dict[str, AttributeValue] = {
                "kind": kind, "how": how, "seconds": seconds, "restored": restored}
            (spans.session or spans.root).add_event("media_interruption", attributes, _ns(since))

    def call_ended(self, call: Call, at: float) -> None:
        spans = self._open.pop(call.room_sid, None)
        if spans is not None:
            _end_all(spans, at)

    def call_evicted(self, call: Call) -> None:
        spans = self._open.pop(call.room_sid, None)
        if spans is not None:
            spans.root.set_attribute("avatar.call.evicted", True)
            _end_all(spans, time.time())


def _who(role: Role, participant: Participant) -> dict[str, str]:
    return {"role": role.value, "identity": participant.identity, "sid": participant.sid}


def _end_all(spans: _OpenSpans, at: float) -> None:
    end = _ns(max(at, spans.start))
    for child in (spans.ringing, spans.session):
        if child is not None:
            child.end(end)
    spans.root.end(end)
