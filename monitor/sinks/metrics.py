"""Prometheus metrics: one consumer of call transitions, in a registry of its own.

Label values come from closed sets only (roles, disconnect reasons, departure causes, event
names); room names and identities never become labels.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

from avatar_monitor_agent.roles import Role
from avatar_monitor_agent.schema import (
    AVATAR_STAGES,
    AVATAR_TYPES,
    CLOSE_REASONS,
    COMPONENTS,
    EVENT_TYPES,
    LATENCY_STAGES,
    LEMONSLICE_TYPES,
)
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
from monitor.intake.events import DISCONNECT_REASONS, KNOWN_EVENTS
from monitor.reports.signals import SESSION_TOPIC_LABEL, SESSION_TYPES, TOPIC_LABELS
from monitor.web.server import ENDPOINT_NAMES

# `_created` series double the output for no use in dashboards or alerts.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client

# Avatars normally join within a few seconds; a join timeout is tens of seconds.
JOIN_LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)
# Readiness (bot_ready) follows the join by a second or two: the same edges, so the two compare.
READY_LATENCY_BUCKETS = JOIN_LATENCY_BUCKETS
# Tracks follow the avatar's join within a second when healthy; 30 s is a broken avatar.
FIRST_TRACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
# Calls last minutes; edges around 30 min show the session (GPU) timeout; up to 2 h.
SESSION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1200, 1500, 1740, 1800, 1860, 2400,
                   3600, 5400, 7200)

STARTUP_FAILURE_CAUSES = ("join_timeout", "message")
TIMEOUTS = ("join", "idle", "session")
REJECTION_REASONS = ("unauthorized", "malformed", "too_large", "timeout", "internal",
                     "duplicate")
TRACK_KINDS = ("audio", "video")
SPAN_DROP_REASONS = ("queue_full", "export_failed")
WEBHOOK_EVENTS = (*sorted(KNOWN_EVENTS), "other")
_TIMEOUT_OF_DEPARTURE = {Departure.SESSION_TIMEOUT: "session", Departure.IDLE_TIMEOUT: "idle"}
# Avatars greet within seconds once generate_reply() runs on join; 60 s is the idle timeout.
FIRST_SPEECH_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60)
POOR_QUALITIES = ("poor", "lost")
OBSERVER_SKIP_REASONS = ("limit", "gone")
RECONCILE_ACTIONS = ("call_recovered", "join", "leave", "room_gone")
RECONCILE_OUTCOMES = ("ok", "failed")
SPEECH_SOURCES = ("agent_state", "audio")  # where the room observer takes avatar speech from
# The room observer's probes of the avatar's audio while the agent speaks
# (monitor/observer/dry_audio.py): sound heard, found dry, or no answer.
AUDIO_PROBE_OUTCOMES = ("heard", "dry", "undecided")
# Per-turn agent latencies: LLM first token and TTS first byte in hundreds of milliseconds,
# end of turn and end to end up to seconds.
AGENT_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
BRIDGE_OUTCOMES = {
    "data_channel": ("applied", "buffered", "duplicate", "not_avatar"),
    "agent_session": ("applied", "buffered", "duplicate"),  # livekit-agents' lk.agent.session
    # not_avatar: an avatar_message naming an avatar that is not the call's
    "http": ("applied", "buffered", "unmatched", "duplicate", "not_avatar"),
    "buffer": ("applied", "expired"),
}
# forbidden: not an agent's token; foreign_room: no grant for the room, or a sid of another room
BRIDGE_REJECTIONS = ("unauthorized", "forbidden", "foreign_room", "foreign_shard", "malformed",
                     "too_large", "timeout", "internal")
# Data messages on the topics read that are refused: forbidden, the sender is not an agent
# participant of the room; not_avatar, an agent that is not the call's avatar sent what only the
# avatar may (anything on its topic `lemonslice`, bot_ready).
DATA_REFUSALS = ("forbidden", "not_avatar")
AVATAR_TOPIC_LABELS = ("lemonslice", "lemonslice-avatar")  # where not_avatar can happen
# Stages of avatar_agent_latency_seconds: the voice agent's, then the avatar's own `metric`.
ALL_LATENCY_STAGES = (*LATENCY_STAGES, *AVATAR_STAGES.values())
# Data messages and session streams whose sender the observer's room did not hold on arrival,
# by how it was resolved (monitor.observer.senders.Resolved): agent (taken), not_agent, unknown
# (a server SDK's) and dropped (too many waiting) are also counted as refused.
LATE_SENDER_OUTCOMES = ("agent", "not_agent", "unknown", "dropped")
# Interruptions of the avatar's media last at least the grace (5 s by default): a reconnect or a
# republish takes seconds, a dead pipeline until the call ends (minutes).
MEDIA_INTERRUPTION_BUCKETS = (5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 600, 1800)


def version() -> str:
    """This package's version, from its installed metadata."""
    try:
        return metadata.version("avatar-monitor")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics(CallListener):
    """The exporter's instruments; also receives call transitions from the tracker."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # The trace of a live call, by room sid, when tracing is on (CallTracer.trace_id).
        self.trace_ids: Callable[[str], int] | None = None
        # The standard process_* (CPU, memory, file descriptors) and python_gc_* families, on
        # this registry as on the default one.
        registry.register(PROCESS_COLLECTOR)
        registry.register(GC_COLLECTOR)
        self.build_info = Gauge(
            "avatar_monitor_build_info", "Always 1; the version of avatar-monitor running.",
            ["version"], registry=registry)
        self.build_info.labels(version()).set(1)
        self.calls_started = Counter(
            "avatar_calls_started", "Calls started (a first user joined a room).",
            registry=registry)
        self.join_latency = Histogram(
            "avatar_join_latency_seconds",
            "Call start (first user joined, or room created) to avatar joined, server time.",
            buckets=JOIN_LATENCY_BUCKETS, registry=registry)
        self.ready_latency = Histogram(
            "avatar_ready_latency_seconds",
            "Call start (first user joined) to the avatar saying bot_ready (joined, and its video "
            "visible to the user), by the room observer.",
            buckets=READY_LATENCY_BUCKETS, registry=registry)
        self.startup_failures = Counter(
            "avatar_startup_failures", "Calls whose avatar never became active, by cause.",
            ["cause"], registry=registry)
        self.abandoned = Counter(
            "avatar_calls_abandoned",
            "Calls whose users all left while ringing, before the join timeout.",
            registry=registry)
        self.first_track_delay = Histogram(
            "avatar_time_to_first_track_seconds",
            "Avatar joined to its first published track of each kind, server time.",
            ["kind"], buckets=FIRST_TRACK_BUCKETS, registry=registry)
        self.session_duration = Histogram(
            "avatar_session_duration_seconds", "Avatar joined to avatar left, server time.",
            buckets=SESSION_BUCKETS, registry=registry)
        self.disconnects = Counter(
            "avatar_disconnects", "Participants that left a room, by role and LiveKit reason.",
            ["role", "reason"], registry=registry)
        self.departures = Counter(
            "avatar_departures", "Avatar departures from active calls, by classified cause.",
            ["cause"], registry=registry)
        self.timeouts = Counter(
            "avatar_timeouts", "Timeouts hit: avatar join, idle, session (GPU).",
            ["timeout"], registry=registry)
        self.webhooks = Counter(
            "avatar_monitor_webhooks", "Webhooks accepted, by LiveKit event name.",
            ["event"], registry=registry)
        self.rejections = Counter(
            "avatar_monitor_webhooks_rejected", "Webhooks rejected or ignored, by reason.",
            ["reason"], registry=registry)
        self.evictions = Counter(
            "avatar_monitor_calls_evicted",
            "Live calls dropped from tracking because --max-calls was reached.",
            registry=registry)
        self.first_speech_delay = Histogram(
            "avatar_time_to_first_speech_seconds",
            "Avatar joined to the first time it is an active speaker (room observer).",
            buckets=FIRST_SPEECH_BUCKETS, registry=registry)
        self.pipeline_errors = Counter(
            "avatar_pipeline_errors",
            "Voice pipeline errors, as the voice agent reported, by component; component "
            "avatar: the avatar's own error and video_generation_error (room observer).",
            ["component", "recoverable"], registry=registry)
        self.pipelines_closed = Counter(
            "avatar_pipeline_closed",
            "Agent sessions (voice pipelines) closed, as the voice agent reported, by reason.",
            ["reason"], registry=registry)
        self.agent_latencies = Histogram(
            "avatar_agent_latency_seconds",
            "Voice agent per-turn latency, as the voice agent reported, by stage: LLM time to "
            "first token, TTS time to first byte, end-of-utterance (end of turn) delay, end to "
            "end; and the avatar's: playback latency per reply (first audio frame sent to the "
            "avatar to its playback start) and join time (AvatarSession start to the avatar's "
            "video); and as the avatar itself reported (metric, room observer): time to first "
            "and last video push of a reply (avatar_first_push, avatar_last_push).",
            ["stage"], buckets=AGENT_LATENCY_BUCKETS, registry=registry)
        self.poor_quality_time = Counter(
            "avatar_poor_connection_seconds",
            "Time the avatar's connection quality was poor or lost (room observer).",
            ["quality"], registry=registry)
        self.data_messages = Counter(
            "avatar_data_messages",
            "Data-channel messages read by the room observer, by topic and type; topic "
            "lemonslice: lemonslice/message, lemonslice-avatar: the avatar's own topic "
            "lemonslice, agent-session: livekit-agents' own lk.agent.session broadcast.",
            ["topic", "type"], registry=registry)
        self.observer_disconnects = Counter(
            "avatar_monitor_observer_disconnects",
            "Room observer disconnections, by LiveKit disconnect reason.",
            ["reason"], registry=registry)
        self.observer_rooms = Gauge(
            "avatar_monitor_observer_rooms", "Rooms the room observer is connected to now.",
            registry=registry)
        self.observer_speech_source = Gauge(
            "avatar_monitor_observer_speech_source",
            "Observed rooms by where avatar speech comes from: the voice agent's lk.agent.state "
            "attribute (no media), or the avatar's audio (received and decoded).",
            ["source"], registry=registry)
        self.audio_probes = Counter(
            "avatar_monitor_audio_probes",
            "The room observer's probes of the avatar's audio while the voice agent says it "
            "speaks (a few seconds subscribed to it), by outcome: heard, dry (silent for the "
            "whole window), undecided (the turn ended or the track went away first).",
            ["outcome"], registry=registry)
        self.observer_reconnects = Counter(
            "avatar_monitor_observer_reconnects",
            "Room observer reconnection attempts after losing a room.", registry=registry)
        self.observer_skipped = Counter(
            "avatar_monitor_observer_rooms_skipped",
            "Rooms not observed because --observe-max-rooms was reached.",
            ["reason"], registry=registry)
        self.spans_exported = Counter(
            "avatar_monitor_spans_exported", "Spans sent to the OTLP collector.",
            registry=registry)
        self.bridge_events = Counter(
            "avatar_monitor_reported_events",
            "Events the voice agent reported (data channel, HTTP, livekit-agents' "
            "lk.agent.session broadcast), by source and outcome; source buffer: events that "
            "waited for their call.",
            ["source", "outcome"], registry=registry)
        self.bridge_rejected = Counter(
            "avatar_monitor_reported_events_rejected",
            "POST /v1/events requests rejected, by reason.", ["reason"], registry=registry)
        self.handler_failures = Counter(
            "avatar_monitor_http_failures",
            "HTTP requests whose handler failed (answered 500 internal), by endpoint.",
            ["endpoint"], registry=registry)
        self.data_refused = Counter(
            "avatar_monitor_data_messages_refused",
            "Data messages on the topics read that were refused, by topic and reason: forbidden "
            "(the sender is not an agent participant of the room), not_avatar (an agent that is "
            "not the call's avatar sent what only the avatar may).",
            ["topic", "reason"], registry=registry)
        self.late_senders = Counter(
            "avatar_monitor_late_senders",
            "Data messages and session streams whose sender the observer's room did not hold "
            "when they arrived (a voice agent that joined moments before, or left), by how the "
            "sender was resolved: agent (taken); not_agent, unknown (no participant: a server "
            "SDK) and dropped (too many waiting) are refused as well.",
            ["outcome"], registry=registry)
        self.spans_dropped = Counter(
            "avatar_monitor_spans_dropped",
            "Spans dropped: export queue full, or the collector failed or was unreachable.",
            ["reason"], registry=registry)
        self.webhooks_foreign = Counter(
            "avatar_monitor_webhooks_foreign",
            "Webhooks verified and left to another replica: their room belongs to another "
            "shard (--shard).", registry=registry)
        self.webhooks_dropped_upstream = Counter(
            "avatar_monitor_webhooks_dropped_upstream",
            "Webhooks livekit-server says it dropped for this URL (WebhookEvent.num_dropped).",
            registry=registry)
        self.reconcile_runs = Counter(
            "avatar_monitor_reconcile_runs",
            "RoomService listings (ListRooms, ListParticipants) by outcome.", ["outcome"],
            registry=registry)
        self.reconciliations = Counter(
            "avatar_monitor_reconciled",
            "What RoomService listings showed that webhooks had not: calls rebuilt, joins and "
            "leaves applied, calls whose room was gone ended.", ["action"], registry=registry)
        self.server_clock_offset = Gauge(
            "avatar_monitor_server_clock_offset_seconds",
            "livekit-server's clock minus this machine's, measured from webhook timestamps.",
            registry=registry)
        self.media_interruptions = Counter(
            "avatar_media_interruptions",
            "The avatar's audio or video unpublished, muted or (audio) dry mid-call for longer "
            "than --interruption-grace, by kind; counted once per interruption.",
            ["kind"], registry=registry)
        self.media_interruption_time = Histogram(
            "avatar_media_interruption_seconds",
            "How long each counted interruption of the avatar's audio or video lasted: until "
            "it came back, or the avatar left or the call ended.",
            ["kind"], buckets=MEDIA_INTERRUPTION_BUCKETS, registry=registry)
        self._webhook_counter = {event: self.webhooks.labels(event) for event in WEBHOOK_EVENTS}
        self._disconnect_counter = {
            (role, reason): self.disconnects.labels(role.value, reason)
            for role in Role for reason in DISCONNECT_REASONS}
        self._initialise_label_sets()

    def _initialise_label_sets(self) -> None:
        """Export every series of the closed label sets from the start, at zero."""
        for cause in STARTUP_FAILURE_CAUSES:
            self.startup_failures.labels(cause)
        for kind in TRACK_KINDS:
            self.first_track_delay.labels(kind)
        for departure in Departure:
            self.departures.labels(departure.value)
        for timeout in TIMEOUTS:
            self.timeouts.labels(timeout)
        for reason in REJECTION_REASONS:
            self.rejections.labels(reason)
        for reason in SPAN_DROP_REASONS:
            self.spans_dropped.labels(reason)
        for component in COMPONENTS:
            for recoverable in ("true", "false"):
                self.pipeline_errors.labels(component, recoverable)
        for reason in CLOSE_REASONS:
            self.pipelines_closed.labels(reason)
        for stage in ALL_LATENCY_STAGES:
            self.agent_latencies.labels(stage)
        for source, outcomes in BRIDGE_OUTCOMES.items():
            for outcome in outcomes:
                self.bridge_events.labels(source, outcome)
        for reason in BRIDGE_REJECTIONS:
            self.bridge_rejected.labels(reason)
        for endpoint in ENDPOINT_NAMES:
            self.handler_failures.labels(endpoint)
        for topic in (*TOPIC_LABELS.values(), SESSION_TOPIC_LABEL):
            self.data_refused.labels(topic, "forbidden")
        for topic in AVATAR_TOPIC_LABELS:
            self.data_refused.labels(topic, "not_avatar")
        for outcome in LATE_SENDER_OUTCOMES:
            self.late_senders.labels(outcome)
        for quality in POOR_QUALITIES:
            self.poor_quality_time.labels(quality)
        for topic, types in (("lemonslice", (*LEMONSLICE_TYPES, "other", "malformed")),
                             ("lemonslice-avatar", (*AVATAR_TYPES, "other", "malformed")),
                             ("avatar-monitor", (*EVENT_TYPES, "other", "malformed")),
                             (SESSION_TOPIC_LABEL, SESSION_TYPES)):
            for kind in types:
                self.data_messages.labels(topic, kind)
        for reason in DISCONNECT_REASONS:
            self.observer_disconnects.labels(reason)
        for reason in OBSERVER_SKIP_REASONS:
            self.observer_skipped.labels(reason)
        for source in SPEECH_SOURCES:
            self.observer_speech_source.labels(source)
        for outcome in AUDIO_PROBE_OUTCOMES:
            self.audio_probes.labels(outcome)
        for action in RECONCILE_ACTIONS:
            self.reconciliations.labels(action)
        for outcome in RECONCILE_OUTCOMES:
            self.reconcile_runs.labels(outcome)
        for kind in TRACK_KINDS:
            self.media_interruptions.labels(kind)
            self.media_interruption_time.labels(kind)

    def webhook_received(self, event: str) -> None:
        (self._webhook_counter.get(event) or self._webhook_counter["other"]).inc()

    def webhook_foreign(self) -> None:
        self.webhooks_foreign.inc()

    def webhook_rejected(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def handler_failed(self, endpoint: str) -> None:
        """A handler raised: counted by endpoint, and as a rejection of its intake."""
        self.handler_failures.labels(endpoint).inc()
        if endpoint == "webhook":
            self.rejections.labels("internal").inc()
        elif endpoint == "events":
            self.bridge_rejected.labels("internal").inc()

    # -- call transitions ------------------------------------------------------------------

    # A call rebuilt from a listing after a restart (counted_from > 0) was counted by the
    # previous process up to then: what happened before is not counted again.

    def call_started(self, call: Call) -> None:
        if (call.started_at or 0.0) >= call.counted_from:
            self.calls_started.inc()

    def avatar_joined(self, call: Call, latency: float) -> None:
        if (call.avatar_joined_at or 0.0) >= call.counted_from:
            self.join_latency.observe(latency, self._exemplar(call))

    def avatar_ready(self, call: Call, latency: float, at: float) -> None:
        if at >= call.counted_from:
            self.ready_latency.observe(latency, self._exemplar(call))

    def startup_failed(self, call: Call, cause: str, at: float) -> None:
        if at < call.counted_from:
            return
        self.startup_failures.labels(cause).inc()
        if cause == "join_timeout":
            self.timeouts.labels("join").inc()

    def call_abandoned(self, call: Call, at: float) -> None:
        self.abandoned.inc()

    def first_track(self, call: Call, kind: str, delay: float, at: float) -> None:
        self.first_track_delay.labels(kind).observe(delay, self._exemplar(call))

    def participant_left(self, call: Call | None, role: Role, participant: Participant,
                         at: float) -> None:
        counter = self._disconnect_counter.get((role, participant.disconnect_reason))
        (counter or self.disconnects.labels(role.value, "unknown_reason")).inc()

    def avatar_left(self, call: Call, departure: Departure, session_seconds: float,
                    at: float) -> None:
        self.departures.labels(departure.value).inc()
        self.session_duration.observe(session_seconds, self._exemplar(call))
        timeout = _TIMEOUT_OF_DEPARTURE.get(departure)
        if timeout is not None:
            self.timeouts.labels(timeout).inc()

    def call_evicted(self, call: Call) -> None:
        self.evictions.inc()

    def first_speech(self, call: Call, delay: float, at: float) -> None:
        self.first_speech_delay.observe(delay, self._exemplar(call))

    def _exemplar(self, call: Call) -> dict[str, str] | None:
        """Links a histogram observation to the call's trace, when tracing is on."""
        trace_id = self.trace_ids(call.room_sid) if self.trace_ids is not None else 0
        return {"trace_id": f"{trace_id:032x}"} if trace_id else None

    def reported(self, signal: Signal) -> None:
        """Count a reported event (a startup failure is counted per call, by the tracker)."""
        if isinstance(signal, PipelineError):
            recoverable = "true" if signal.recoverable else "false"
            self.pipeline_errors.labels(signal.component, recoverable).inc()
        elif isinstance(signal, SessionClosed):
            self.pipelines_closed.labels(signal.reason).inc()
        elif isinstance(signal, AvatarError):
            self.reported(signal.error)
        elif isinstance(signal, AgentLatency | AvatarLatency):
            for stage, seconds in signal.stages:
                self.agent_latencies.labels(stage).observe(seconds)

    def poor_quality(self, call: Call, quality: str, seconds: float) -> None:
        self.poor_quality_time.labels(quality).inc(seconds)

    def data_message(self, topic: str, kind: str) -> None:
        self.data_messages.labels(topic, kind).inc()

    def span_dropped(self, reason: str, count: int) -> None:
        self.spans_dropped.labels(reason).inc(count)

    def span_exported(self, count: int) -> None:
        self.spans_exported.inc(count)

    def media_interrupted(self, call: Call, kind: str, how: str, since: float) -> None:
        self.media_interruptions.labels(kind).inc()

    def media_interruption_ended(self, call: Call, kind: str, how: str, since: float,
                                 seconds: float, restored: bool) -> None:
        self.media_interruption_time.labels(kind).observe(seconds, self._exemplar(call))
