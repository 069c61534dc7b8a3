"""Every metric and label value that dashboards and rules use is one the sidecar exports.

Checked twice: against the metric contract of the issue (below), and against docs/metrics.md,
which the sidecar generates from its registry.
"""

from __future__ import annotations

import re

from prometheus_client.utils import floatToGoString

from dashboards.promql import metric_names
from dashboards.slo import ALL_RECORDINGS as RECORDINGS
from monitor.sinks.metrics import JOIN_LATENCY_BUCKETS
from tests.dashboards.exprs import ROOT, base_name, dashboard_exprs, rule_exprs, selectors

# name -> {label: allowed values}; None means any value (an open set).
CONTRACT: dict[str, dict[str, set[str] | None]] = {
    "avatar_calls_started_total": {},
    "avatar_calls_in_progress": {"state": {"ringing", "active"}},
    "avatar_join_latency_seconds": {},
    "avatar_startup_failures_total": {"cause": {"join_timeout", "message"}},
    "avatar_calls_abandoned_total": {},
    "avatar_time_to_first_track_seconds": {"kind": {"audio", "video"}},
    "avatar_session_duration_seconds": {},
    "avatar_disconnects_total": {"role": {"avatar", "agent", "user", "other"}, "reason": None},
    "avatar_departures_total": {
        "cause": {
            "user_hangup",
            "session_timeout",
            "removed",
            "server",
            "network",
            "unknown",
            "idle_timeout",
            "pipeline_error",
            "agent_lost",
            "user_network",
            "replaced",
        }
    },
    "avatar_timeouts_total": {"timeout": {"join", "idle", "session"}},
    "avatar_unattended_seconds_total": {},
    "avatar_unattended_now": {},
    "avatar_unattended_longest_seconds": {},
    "avatar_monitor_webhooks_total": {"event": None},
    "avatar_monitor_webhooks_rejected_total": {
        "reason": {"unauthorized", "malformed", "too_large", "duplicate"}
    },
    "avatar_monitor_calls_evicted_total": {},
    # Added by the room observer, after the first contract.
    "avatar_pipeline_errors_total": {
        "component": {"stt", "llm", "tts", "realtime", "avatar", "other"},
        "recoverable": {"true", "false"},
    },
    "avatar_time_to_first_speech_seconds": {},
    "avatar_monitor_observer_rooms": {},
    "avatar_monitor_observer_disconnects_total": {"reason": None},
    "avatar_monitor_observer_reconnects_total": {},
    "avatar_monitor_observer_rooms_skipped_total": {"reason": {"limit"}},
    "avatar_monitor_observer_speech_source": {"source": {"agent_state", "audio"}},
    # Reports refused because their sender is not an agent of the room.
    "avatar_monitor_data_messages_refused_total": {
        "topic": {"lemonslice", "lemonslice-avatar", "avatar-monitor", "agent-session"},
        "reason": {"forbidden", "not_avatar"}},
    # Exporter hygiene: the build and the standard process families.
    "avatar_monitor_build_info": {"version": None},
    "process_cpu_seconds_total": {},
    "process_resident_memory_bytes": {},
    # Limits nobody configured (monitor/sinks/session_lengths.py).
    "avatar_repeated_session_length_seconds": {},
    "avatar_repeated_session_length_calls": {},
    # Added by tracing.
    "avatar_monitor_spans_exported_total": {},
    "avatar_monitor_spans_dropped_total": {"reason": {"queue_full", "export_failed"}},
    # Added by the backend bridge (issue 7 names them).
    "avatar_pipeline_closed_total": {
        "reason": {"error", "job_shutdown", "participant_disconnected", "user_initiated",
                   "task_completed", "other"},
    },
    "avatar_agent_latency_seconds": {"stage": {"llm_ttft", "tts_ttfb", "end_of_turn", "e2e",
                                               "avatar_playback", "avatar_join",
                                               "avatar_first_push", "avatar_last_push"}},
    # Added with the avatar's own messages (topic lemonslice): bot_ready.
    "avatar_ready_latency_seconds": {},
    "avatar_monitor_reported_events_total": {
        "source": {"data_channel", "agent_session", "http", "buffer"},
        "outcome": {"applied", "buffered", "duplicate", "expired"},
    },
    "avatar_monitor_reported_events_rejected_total": {
        "reason": {"unauthorized", "forbidden", "malformed", "too_large"},
    },
    # The avatar's media stopping mid-call ("audio cuts out").
    "avatar_media_interruptions_total": {"kind": {"audio", "video"}},
    "avatar_media_interruption_seconds": {"kind": {"audio", "video"}},
}
NOT_EXPORTED = {"up"}  # Prometheus' own series


def used(exprs: list[str]) -> set[str]:
    return {base_name(m) for e in exprs for m in metric_names(e)} - NOT_EXPORTED


def documented() -> dict[str, dict[str, set[str]]]:
    """docs/metrics.md: name -> {label: values}."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    out: dict[str, dict[str, set[str]]] = {}
    for row in re.findall(r"^\| `(\w+)` \| \w+ \| ([^|]*) \|", text, re.M):
        name, labels = row
        out[name] = {
            label: {v.strip() for v in values.split(",") if v.strip()}
            for label, values in re.findall(r"`(\w+)` = ([^`]*)", labels)
        }
    return out


def used_label_values() -> set[tuple[str, str, str]]:
    """(metric, label, value) of every equality matcher on an exported series."""
    records = {r.record: r.expr for r in RECORDINGS}
    out = set()
    for expr in dashboard_exprs() + rule_exprs():
        for metric, matchers in selectors(expr):
            if metric in records:  # a recorded series: its labels are the rule's own
                continue
            sources = {metric}
            for label, (op, value) in matchers.items():
                if op == "=" and label not in ("job", "instance", "le"):
                    out |= {(base_name(s), label, value) for s in sources - NOT_EXPORTED}
    return out


def test_le_matchers_name_a_bucket_of_the_histogram() -> None:
    buckets = {"avatar_join_latency_seconds": JOIN_LATENCY_BUCKETS}
    seen = 0
    for expr in dashboard_exprs() + rule_exprs():
        for metric, matchers in selectors(expr):
            if "le" in matchers:
                seen += 1
                op, value = matchers["le"]
                assert op == "=" and value in {floatToGoString(b) for b in buckets[metric[:-7]]}
    assert seen, "the join_latency SLO reads a bucket"


def test_dashboards_and_rules_use_only_contract_metrics() -> None:
    names = used(dashboard_exprs() + rule_exprs())
    assert names <= set(CONTRACT), names - set(CONTRACT)


def test_label_values_are_in_the_contract() -> None:
    for metric, label, value in used_label_values():
        allowed = CONTRACT[metric][label]
        assert allowed is None or value in allowed, (metric, label, value)


def test_every_metric_used_is_in_metrics_doc() -> None:
    missing = used(dashboard_exprs() + rule_exprs()) - set(documented())
    assert not missing, f"missing from docs/metrics.md: {missing}"


def test_every_label_value_used_is_in_metrics_doc() -> None:
    docs = documented()
    for metric, label, value in used_label_values():
        assert value in docs[metric][label], (metric, label, value)
