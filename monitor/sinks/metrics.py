"""Prometheus metrics: one consumer of call transitions, in a registry of its own.

The instruments are made from the table (monitor/sinks/metric_table.py); callers count through
the intent methods below, never through the instruments' labels.
"""

from __future__ import annotations

from collections.abc import Callable

from avatar_monitor_agent.roles import Role
from prometheus_client import (
    GC_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from monitor.calls.departures import Departure
from monitor.calls.inputs import (
    AgentLatency,
    AvatarError,
    AvatarLatency,
    Participant,
    PipelineError,
    SessionClosed,
    Signal,
)
from monitor.calls.listener import CallListener
from monitor.calls.model import Call
from monitor.intake.events import DISCONNECT_REASONS
from monitor.observer.counts import DataRefusal, ObserverSkip, ReconcileAction
from monitor.sinks.metric_table import METRICS, WEBHOOK_EVENTS, instrument, version

# `_created` series double the output for no use in dashboards or alerts.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

_TIMEOUT_OF_DEPARTURE = {Departure.SESSION_TIMEOUT: "session", Departure.IDLE_TIMEOUT: "idle"}


class Metrics(CallListener):
    """The exporter's instruments, counted through intent methods; also receives call
    transitions from the tracker. `trace_ids`: the trace of a live call by room sid, when
    tracing is on (exemplars name it); `clock_offset`: livekit-server's clock minus this
    machine's, read at scrape time."""

    def __init__(self, registry: CollectorRegistry,
                 trace_ids: Callable[[str], int] | None = None,
                 clock_offset: Callable[[], float] | None = None) -> None:
        self.registry = registry
        self._trace_ids = trace_ids
        # The standard process_* (CPU, memory, file descriptors) and python_gc_* families, on
        # this registry as on the default one.
        registry.register(PROCESS_COLLECTOR)
        registry.register(GC_COLLECTOR)
        self._counters: dict[str, Counter] = {}
        self._gauges: dict[str, Gauge] = {}
        self._histograms: dict[str, Histogram] = {}
        for spec in METRICS:
            if spec.owner != "metrics":
                continue
            made = instrument(spec, registry)
            if isinstance(made, Counter):
                self._counters[spec.attr] = made
            elif isinstance(made, Gauge):
                self._gauges[spec.attr] = made
            else:
                self._histograms[spec.attr] = made
        # Labelled children by (instrument, label values): resolved once, then a dict lookup.
        self._counter_children: dict[tuple[str, ...], Counter] = {}
        self._histogram_children: dict[tuple[str, ...], Histogram] = {}
        self._gauges["build_info"].labels(version()).set(1)
        if clock_offset is not None:
            self._gauges["server_clock_offset"].set_function(clock_offset)
        # The two hot paths (every webhook, every leave): children resolved up front.
        webhooks = self._counters["webhooks"]
        self._webhook_counter = {event: webhooks.labels(event) for event in WEBHOOK_EVENTS}
        disconnects = self._counters["disconnects"]
        self._disconnect_counter = {
            (role, reason): disconnects.labels(role.value, reason)
            for role in Role for reason in DISCONNECT_REASONS}

    def _count(self, name: str, *labels: str) -> Counter:
        """The counter `name` (its child for `labels`), cached after the first use."""
        if not labels:
            return self._counters[name]
        key = (name, *labels)
        child = self._counter_children.get(key)
        if child is None:
            child = self._counter_children[key] = self._counters[name].labels(*labels)
        return child

    def _histogram(self, name: str, *labels: str) -> Histogram:
        """The histogram `name` (its child for `labels`), cached after the first use."""
        if not labels:
            return self._histograms[name]
        key = (name, *labels)
        child = self._histogram_children.get(key)
        if child is None:
            child = self._histogram_children[key] = self._histograms[name].labels(*labels)
        return child

    # -- intake ----------------------------------------------------------------------------

    def webhook_received(self, event: str) -> None:
        (self._webhook_counter.get(event) or self._webhook_counter["other"]).inc()

    def webhook_foreign(self) -> None:
        self._count("webhooks_foreign").inc()

    def webhook_rejected(self, reason: str) -> None:
        self._count("rejections", reason).inc()

    def webhooks_dropped_upstream(self, count: int) -> None:
        """livekit-server says it dropped `count` webhooks for this URL."""
        self._count("webhooks_dropped_upstream").inc(count)

    def handler_failed(self, endpoint: str) -> None:
        """A handler raised: counted by endpoint, and as a rejection of its intake."""
        self._count("handler_failures", endpoint).inc()
        if endpoint == "webhook":
            self._count("rejections", "internal").inc()
        elif endpoint == "events":
            self._count("bridge_rejections", "internal").inc()

    # -- reported events (monitor/reports) -------------------------------------------------

    def bridge_event(self, source: str, outcome: str, count: int = 1) -> None:
        """Reported events from `source` (data_channel, agent_session, http, buffer), by
        outcome (applied, buffered, duplicate, ...)."""
        self._count("bridge_events", source, outcome).inc(count)

    def bridge_rejected(self, reason: str) -> None:
        self._count("bridge_rejections", reason).inc()

    # -- the room observer and the reconciler (monitor/observer) ---------------------------

    def observer_skipped(self, reason: ObserverSkip) -> None:
        self._count("observer_skipped", reason).inc()

    def observer_reconnected(self) -> None:
        self._count("observer_reconnects").inc()

    def observer_disconnected(self, reason: str) -> None:
        self._count("observer_disconnects", reason).inc()

    def audio_probe(self, outcome: str) -> None:
        """A probe of the avatar's audio ended: heard, dry or undecided."""
        self._count("audio_probes", outcome).inc()

    def data_refused(self, topic: str, reason: DataRefusal) -> None:
        self._count("data_refusals", topic, reason).inc()

    def late_sender(self, outcome: str) -> None:
        """A sender the room did not hold, resolved (monitor.observer.senders.Resolved)."""
        self._count("late_senders", outcome).inc()

    def data_message(self, topic: str, kind: str) -> None:
        self._count("data_messages", topic, kind).inc()

    def reconcile_run(self, ok: bool) -> None:
        """A RoomService listing succeeded or failed."""
        self._count("reconcile_runs", "ok" if ok else "failed").inc()

    def listing_applied(self, action: ReconcileAction | str) -> None:
        """What a listing showed that webhooks had not (call_recovered, join, leave,
        room_gone)."""
        self._count("reconciliations", action).inc()

    # -- spans -----------------------------------------------------------------------------

    def span_dropped(self, reason: str, count: int) -> None:
        self._count("spans_dropped", reason).inc(count)

    def span_exported(self, count: int) -> None:
        self._count("spans_exported").inc(count)

    # -- call transitions ------------------------------------------------------------------

    # A call rebuilt from a listing after a restart (counted_from > 0) was counted by the
    # previous process up to then: what happened before is not counted again.

    def call_started(self, call: Call) -> None:
        if (call.started_at or 0.0) >= call.counted_from:
            self._count("calls_started").inc()

    def avatar_joined(self, call: Call, latency: float) -> None:
        if (call.avatar_joined_at or 0.0) >= call.counted_from:
            self._histogram("join_latency").observe(latency, self._exemplar(call))

    def avatar_ready(self, call: Call, latency: float, at: float) -> None:
        if at >= call.counted_from:
            self._histogram("ready_latency").observe(latency, self._exemplar(call))

    def startup_failed(self, call: Call, cause: str, at: float) -> None:
        if at < call.counted_from:
            return
        self._count("startup_failures", cause).inc()
        if cause == "join_timeout":
            self._count("timeouts", "join").inc()

    def call_abandoned(self, call: Call, at: float) -> None:
        self._count("abandoned").inc()

    def first_track(self, call: Call, kind: str, delay: float, at: float) -> None:
        self._histogram("first_track_delay", kind).observe(delay, self._exemplar(call))

    def participant_left(self, call: Call | None, role: Role, participant: Participant,
                         at: float) -> None:
        counter = self._disconnect_counter.get((role, participant.disconnect_reason))
        (counter or self._count("disconnects", role.value, "unknown_reason")).inc()

    def avatar_left(self, call: Call, departure: Departure, session_seconds: float,
                    at: float) -> None:
        self._count("departures", departure.value).inc()
        self._histogram("session_duration").observe(session_seconds, self._exemplar(call))
        timeout = _TIMEOUT_OF_DEPARTURE.get(departure)
        if timeout is not None:
            self._count("timeouts", timeout).inc()

    def call_evicted(self, call: Call) -> None:
        self._count("evictions").inc()

    def first_speech(self, call: Call, delay: float, at: float) -> None:
        self._histogram("first_speech_delay").observe(delay, self._exemplar(call))

    def _exemplar(self, call: Call) -> dict[str, str] | None:
        """Links a histogram observation to the call's trace, when tracing is on."""
        trace_id = self._trace_ids(call.room_sid) if self._trace_ids is not None else 0
        return {"trace_id": f"{trace_id:032x}"} if trace_id else None

    def reported(self, signal: Signal) -> None:
        """Count a reported event (a startup failure is counted per call, by the tracker)."""
        if isinstance(signal, PipelineError):
            recoverable = "true" if signal.recoverable else "false"
            self._count("pipeline_errors", signal.component, recoverable).inc()
        elif isinstance(signal, SessionClosed):
            self._count("pipelines_closed", signal.reason).inc()
        elif isinstance(signal, AvatarError):
            self.reported(signal.error)
        elif isinstance(signal, AgentLatency | AvatarLatency):
            for stage, seconds in signal.stages:
                self._histogram("agent_latencies", stage).observe(seconds)

    def poor_quality(self, call: Call, quality: str, seconds: float) -> None:
        self._count("poor_quality_time", quality).inc(seconds)

    def media_interrupted(self, call: Call, kind: str, how: str, since: float) -> None:
        self._count("media_interruptions", kind).inc()

    def media_interruption_ended(self, call: Call, kind: str, how: str, since: float,
                                 seconds: float, restored: bool) -> None:
        self._histogram("media_interruption_time", kind).observe(seconds, self._exemplar(call))
