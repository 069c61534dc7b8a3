"""Every metric the sidecar exports, declared once: name, type, help, labels with their closed
value sets, buckets. Metrics builds its instruments from this table, the collectors take their
families' names and help from it, and docs/metrics.md, the README's list and the dashboards'
contract test are checked against it.

Label values come from closed sets only (roles, disconnect reasons, departure causes, event
names); room names and identities never become labels.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Literal, get_args

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
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.calls.departures import Departure
from monitor.intake.events import DISCONNECT_REASONS, KNOWN_EVENTS
from monitor.observer.counts import ObserverSkip, ReconcileAction
from monitor.reports.signals import SESSION_TOPIC_LABEL, SESSION_TYPES, TOPIC_LABELS
from monitor.web.server import ENDPOINT_NAMES

Kind = Literal["counter", "gauge", "histogram"]
Owner = Literal["metrics", "collector", "history"]
Series = tuple[tuple[str, ...], ...]

# Avatars normally join within a few seconds; a join timeout is tens of seconds.
JOIN_LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)
# Readiness (bot_ready) follows the join by a second or two: the same edges, so the two compare.
READY_LATENCY_BUCKETS = JOIN_LATENCY_BUCKETS
# Tracks follow the avatar's join within a second when healthy; 30 s is a broken avatar.
FIRST_TRACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
# Calls last minutes; edges around 30 min show the session (GPU) timeout; up to 2 h.
SESSION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1200, 1500, 1740, 1800, 1860, 2400,
                   3600, 5400, 7200)
# Avatars greet within seconds once generate_reply() runs on join; 60 s is the idle timeout.
FIRST_SPEECH_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60)
# Per-turn agent latencies: LLM first token and TTS first byte in hundreds of milliseconds,
# end of turn and end to end up to seconds.
AGENT_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
# Interruptions of the avatar's media last at least the grace (5 s by default): a reconnect or a
# republish takes seconds, a dead pipeline until the call ends (minutes).
MEDIA_INTERRUPTION_BUCKETS = (5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 600, 1800)

STARTUP_FAILURE_CAUSES = ("join_timeout", "message")
TIMEOUTS = ("join", "idle", "session")
REJECTION_REASONS = ("unauthorized", "malformed", "too_large", "timeout", "internal",
                     "duplicate")
TRACK_KINDS = ("audio", "video")
SPAN_DROP_REASONS = ("queue_full", "export_failed")
WEBHOOK_EVENTS = (*sorted(KNOWN_EVENTS), "other")
POOR_QUALITIES = ("poor", "lost")
OBSERVER_SKIP_REASONS = get_args(ObserverSkip)
RECONCILE_ACTIONS = get_args(ReconcileAction)
RECONCILE_OUTCOMES = ("ok", "failed")
SPEECH_SOURCES = ("agent_state", "audio")  # where the room observer takes avatar speech from
# The room observer's probes of the avatar's audio while the agent speaks
# (monitor/observer/dry_audio.py): sound heard, found dry, or no answer.
AUDIO_PROBE_OUTCOMES = ("heard", "dry", "undecided")
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
AVATAR_TOPIC_LABELS = ("lemonslice", "lemonslice-avatar")  # where not_avatar can happen
# Stages of avatar_agent_latency_seconds: the voice agent's, then the avatar's own `metric`.
ALL_LATENCY_STAGES = (*LATENCY_STAGES, *AVATAR_STAGES.values())
# Data messages and session streams whose sender the observer's room did not hold on arrival,
# by how it was resolved (monitor.observer.senders.Resolved): agent (taken), not_agent, unknown
# (a server SDK's) and dropped (too many waiting) are also counted as refused.
LATE_SENDER_OUTCOMES = ("agent", "not_agent", "unknown", "dropped")
DATA_MESSAGE_TYPES = {
    "lemonslice": (*LEMONSLICE_TYPES, "other", "malformed"),
    "lemonslice-avatar": (*AVATAR_TYPES, "other", "malformed"),
    "avatar-monitor": (*EVENT_TYPES, "other", "malformed"),
    SESSION_TOPIC_LABEL: SESSION_TYPES,
}
CALL_STATES = ("ringing", "active")
# Repeated session lengths: departures considered, the last hour, by server time.
REPEAT_WINDOW_SECONDS = 3600.0
HISTORY_DROP_REASONS = ("queue_full", "write_failed")


def version() -> str:
    """This package's version, from its installed metadata."""
    try:
        return metadata.version("avatar-monitor")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported family. `series`: the label values exported (at zero) from the start;
    `open_labels`: labels that may take values beyond them (e.g. a reason LiveKit adds);
    `owner`: what exports it: Metrics' instruments, a collector's families read at scrape
    time, or the history's instruments (HistoryMetrics)."""

    attr: str
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    series: Series = ()
    buckets: tuple[float, ...] = ()
    open_labels: tuple[str, ...] = ()
    owner: Owner = "metrics"

    @property
    def exported_name(self) -> str:
        """The name in the exposition: counters end in _total."""
        return self.name + ("_total" if self.kind == "counter" else "")

    def label_values(self) -> dict[str, tuple[str, ...]]:
        """Each label's values in the closed set, in the order of the series."""
        return {label: tuple(dict.fromkeys(values[i] for values in self.series))
                for i, label in enumerate(self.labels)}


def _each(*values: Iterable[str]) -> Series:
    """Every combination of the values of each label."""
    return tuple(itertools.product(*values))


def _one(values: Iterable[str]) -> Series:
    return tuple((value,) for value in values)


def _spec(attr: str, name: str, kind: Kind, help: str, labels: tuple[str, ...] = (),
          series: Series = (), buckets: tuple[float, ...] = (),
          open_labels: tuple[str, ...] = (), owner: Owner = "metrics") -> MetricSpec:
    return MetricSpec(attr, name, kind, help, labels, series, buckets, open_labels, owner)


METRICS: tuple[MetricSpec, ...] = (
    _spec("build_info", "avatar_monitor_build_info", "gauge",
          "Always 1; the version of avatar-monitor running.", ("version",), _one([version()]),
          open_labels=("version",)),
    _spec("calls_started", "avatar_calls_started", "counter",
          "Calls started (a first user joined a room)."),
    _spec("join_latency", "avatar_join_latency_seconds", "histogram",
          "Call start (first user joined, or room created) to avatar joined, server time.",
          buckets=JOIN_LATENCY_BUCKETS),
    _spec("ready_latency", "avatar_ready_latency_seconds", "histogram",
          "Call start (first user joined) to the avatar saying bot_ready (joined, and its video "
          "visible to the user), by the room observer.", buckets=READY_LATENCY_BUCKETS),
    _spec("startup_failures", "avatar_startup_failures", "counter",
          "Calls whose avatar never became active, by cause.", ("cause",),
          _one(STARTUP_FAILURE_CAUSES)),
    _spec("abandoned", "avatar_calls_abandoned", "counter",
          "Calls whose users all left while ringing, before the join timeout."),
    _spec("first_track_delay", "avatar_time_to_first_track_seconds", "histogram",
          "Avatar joined to its first published track of each kind, server time.", ("kind",),
          _one(TRACK_KINDS), FIRST_TRACK_BUCKETS),
    _spec("session_duration", "avatar_session_duration_seconds", "histogram",
          "Avatar joined to avatar left, server time.", buckets=SESSION_BUCKETS),
    _spec("disconnects", "avatar_disconnects", "counter",
          "Participants that left a room, by role and LiveKit reason.", ("role", "reason"),
          _each([role.value for role in Role], DISCONNECT_REASONS), open_labels=("reason",)),
    _spec("departures", "avatar_departures", "counter",
          "Avatar departures from active calls, by classified cause.", ("cause",),
          _one(departure.value for departure in Departure)),
    _spec("timeouts", "avatar_timeouts", "counter",
          "Timeouts hit: avatar join, idle, session (GPU).", ("timeout",), _one(TIMEOUTS)),
    _spec("webhooks", "avatar_monitor_webhooks", "counter",
          "Webhooks accepted, by LiveKit event name.", ("event",), _one(WEBHOOK_EVENTS)),
    _spec("rejections", "avatar_monitor_webhooks_rejected", "counter",
          "Webhooks rejected or ignored, by reason.", ("reason",), _one(REJECTION_REASONS)),
    _spec("evictions", "avatar_monitor_calls_evicted", "counter",
          "Live calls dropped from tracking because --max-calls was reached."),
    _spec("first_speech_delay", "avatar_time_to_first_speech_seconds", "histogram",
          "Avatar joined to the first time it is an active speaker (room observer).",
          buckets=FIRST_SPEECH_BUCKETS),
    _spec("pipeline_errors", "avatar_pipeline_errors", "counter",
          "Voice pipeline errors, as the voice agent reported, by component; component "
          "avatar: the avatar's own error and video_generation_error (room observer).",
          ("component", "recoverable"), _each(COMPONENTS, ("true", "false"))),
    _spec("pipelines_closed", "avatar_pipeline_closed", "counter",
          "Agent sessions (voice pipelines) closed, as the voice agent reported, by reason.",
          ("reason",), _one(CLOSE_REASONS)),
    _spec("agent_latencies", "avatar_agent_latency_seconds", "histogram",
          "Voice agent per-turn latency, as the voice agent reported, by stage: LLM time to "
          "first token, TTS time to first byte, end-of-utterance (end of turn) delay, end to "
          "end; and the avatar's: playback latency per reply (first audio frame sent to the "
          "avatar to its playback start) and join time (AvatarSession start to the avatar's "
          "video); and as the avatar itself reported (metric, room observer): time to first "
          "and last video push of a reply (avatar_first_push, avatar_last_push).",
          ("stage",), _one(ALL_LATENCY_STAGES), AGENT_LATENCY_BUCKETS),
    _spec("poor_quality_time", "avatar_poor_connection_seconds", "counter",
          "Time the avatar's connection quality was poor or lost (room observer).",
          ("quality",), _one(POOR_QUALITIES)),
    _spec("data_messages", "avatar_data_messages", "counter",
          "Data-channel messages read by the room observer, by topic and type; topic "
          "lemonslice: lemonslice/message, lemonslice-avatar: the avatar's own topic "
          "lemonslice, agent-session: livekit-agents' own lk.agent.session broadcast.",
          ("topic", "type"),
          tuple((topic, kind) for topic, kinds in DATA_MESSAGE_TYPES.items() for kind in kinds)),
    _spec("observer_disconnects", "avatar_monitor_observer_disconnects", "counter",
          "Room observer disconnections, by LiveKit disconnect reason.", ("reason",),
          _one(DISCONNECT_REASONS), open_labels=("reason",)),
    _spec("observer_rooms", "avatar_monitor_observer_rooms", "gauge",
          "Rooms the room observer is connected to now.", owner="collector"),
    _spec("observer_speech_source", "avatar_monitor_observer_speech_source", "gauge",
          "Observed rooms by where avatar speech comes from: the voice agent's lk.agent.state "
          "attribute (no media), or the avatar's audio (received and decoded).",
          ("source",), _one(SPEECH_SOURCES), owner="collector"),
    _spec("audio_probes", "avatar_monitor_audio_probes", "counter",
          "The room observer's probes of the avatar's audio while the voice agent says it "
          "speaks (a few seconds subscribed to it), by outcome: heard, dry (silent for the "
          "whole window), undecided (the turn ended or the track went away first).",
          ("outcome",), _one(AUDIO_PROBE_OUTCOMES)),
    _spec("observer_reconnects", "avatar_monitor_observer_reconnects", "counter",
          "Room observer reconnection attempts after losing a room."),
    _spec("observer_skipped", "avatar_monitor_observer_rooms_skipped", "counter",
          "Rooms not observed because --observe-max-rooms was reached.", ("reason",),
          _one(OBSERVER_SKIP_REASONS)),
    _spec("spans_exported", "avatar_monitor_spans_exported", "counter",
          "Spans sent to the OTLP collector."),
    _spec("bridge_events", "avatar_monitor_reported_events", "counter",
          "Events the voice agent reported (data channel, HTTP, livekit-agents' "
          "lk.agent.session broadcast), by source and outcome; source buffer: events that "
          "waited for their call.", ("source", "outcome"),
          tuple((source, outcome) for source, outcomes in BRIDGE_OUTCOMES.items()
                for outcome in outcomes)),
    _spec("bridge_rejections", "avatar_monitor_reported_events_rejected", "counter",
          "POST /v1/events requests rejected, by reason.", ("reason",),
          _one(BRIDGE_REJECTIONS)),
    _spec("handler_failures", "avatar_monitor_http_failures", "counter",
          "HTTP requests whose handler failed (answered 500 internal), by endpoint.",
          ("endpoint",), _one(ENDPOINT_NAMES)),
    _spec("data_refusals", "avatar_monitor_data_messages_refused", "counter",
          "Data messages on the topics read that were refused, by topic and reason: forbidden "
          "(the sender is not an agent participant of the room), not_avatar (an agent that is "
          "not the call's avatar sent what only the avatar may).", ("topic", "reason"),
          (*_each((*TOPIC_LABELS.values(), SESSION_TOPIC_LABEL), ("forbidden",)),
           *_each(AVATAR_TOPIC_LABELS, ("not_avatar",)))),
    _spec("late_senders", "avatar_monitor_late_senders", "counter",
          "Data messages and session streams whose sender the observer's room did not hold "
          "when they arrived (a voice agent that joined moments before, or left), by how the "
          "sender was resolved: agent (taken); not_agent, unknown (no participant: a server "
          "SDK) and dropped (too many waiting) are refused as well.", ("outcome",),
          _one(LATE_SENDER_OUTCOMES)),
    _spec("spans_dropped", "avatar_monitor_spans_dropped", "counter",
          "Spans dropped: export queue full, or the collector failed or was unreachable.",
          ("reason",), _one(SPAN_DROP_REASONS)),
    _spec("webhooks_foreign", "avatar_monitor_webhooks_foreign", "counter",
          "Webhooks verified and left to another replica: their room belongs to another "
          "shard (--shard)."),
    _spec("webhooks_dropped_upstream", "avatar_monitor_webhooks_dropped_upstream", "counter",
          "Webhooks livekit-server says it dropped for this URL (WebhookEvent.num_dropped)."),
    _spec("reconcile_runs", "avatar_monitor_reconcile_runs", "counter",
          "RoomService listings (ListRooms, ListParticipants) by outcome.", ("outcome",),
          _one(RECONCILE_OUTCOMES)),
    _spec("reconciliations", "avatar_monitor_reconciled", "counter",
          "What RoomService listings showed that webhooks had not: calls rebuilt, joins and "
          "leaves applied, calls whose room was gone ended.", ("action",),
          _one(RECONCILE_ACTIONS)),
    _spec("server_clock_offset", "avatar_monitor_server_clock_offset_seconds", "gauge",
          "livekit-server's clock minus this machine's, measured from webhook timestamps."),
    _spec("media_interruptions", "avatar_media_interruptions", "counter",
          "The avatar's audio or video unpublished, muted or (audio) dry mid-call for longer "
          "than --interruption-grace, by kind; counted once per interruption.", ("kind",),
          _one(TRACK_KINDS)),
    _spec("media_interruption_time", "avatar_media_interruption_seconds", "histogram",
          "How long each counted interruption of the avatar's audio or video lasted: until "
          "it came back, or the avatar left or the call ended.", ("kind",), _one(TRACK_KINDS),
          MEDIA_INTERRUPTION_BUCKETS),
    # Read at scrape time by collectors (monitor/sinks/call_gauges.py, bill.py,
    # session_lengths.py) or kept by the history (monitor/sinks/history.py).
    _spec("calls_in_progress", "avatar_calls_in_progress", "gauge",
          "Calls now ringing (waiting for the avatar) or active.", ("state",),
          _one(CALL_STATES), owner="collector"),
    _spec("calls_tracked", "avatar_monitor_calls_tracked", "gauge",
          "Calls held in memory, including pending, failed and lingering ended ones.",
          owner="collector"),
    _spec("unattended_seconds", "avatar_unattended_seconds", "counter",
          "Seconds avatars spent in a room with no user (before the first came, after the "
          "last left), server time; grows while an avatar waits.",
          owner="collector"),
    _spec("unattended_now", "avatar_unattended_now", "gauge",
          "Avatars in a room with no user right now.", owner="collector"),
    _spec("unattended_longest", "avatar_unattended_longest_seconds", "gauge",
          "How long the avatar alone the longest right now has been alone (0: none).",
          owner="collector"),
    _spec("repeated_length", "avatar_repeated_session_length_seconds", "gauge",
          f"Session length at which most avatars left in the last "
          f"{REPEAT_WINDOW_SECONDS / 3600:g} h, other than by a hang-up or the configured "
          "session timeout, when several did within seconds of it (a limit nobody "
          "configured); 0 when none repeats.", owner="collector"),
    _spec("repeated_length_calls", "avatar_repeated_session_length_calls", "gauge",
          "Calls that ended at avatar_repeated_session_length_seconds; 0 when none repeats.",
          owner="collector"),
    _spec("history_written", "avatar_monitor_history_written", "counter",
          "Finished calls written to the history (--history).", owner="history"),
    _spec("history_dropped", "avatar_monitor_history_dropped", "counter",
          "Finished calls the history did not keep: its queue was full, or the write failed "
          "(disk full, file unwritable or corrupt, history unusable).", ("reason",),
          _one(HISTORY_DROP_REASONS), owner="history"),
    _spec("history_calls", "avatar_monitor_history_calls", "gauge",
          "Finished calls in the history file (as of the last write or pruning).",
          owner="history"),
)
SPECS = {spec.attr: spec for spec in METRICS}
Instrument = Counter | Gauge | Histogram


def instrument(spec: MetricSpec, registry: CollectorRegistry) -> Instrument:
    """The spec's instrument in the registry, with every series of its closed label sets
    exported from the start, at zero."""
    made: Instrument
    if spec.kind == "counter":
        made = Counter(spec.name, spec.help, spec.labels, registry=registry)
    elif spec.kind == "gauge":
        made = Gauge(spec.name, spec.help, spec.labels, registry=registry)
    else:
        made = Histogram(spec.name, spec.help, spec.labels, registry=registry,
                         buckets=spec.buckets or Histogram.DEFAULT_BUCKETS)
    for values in spec.series:
        made.labels(*values)
    return made
