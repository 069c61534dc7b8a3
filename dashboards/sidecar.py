"""The "avatar-monitor itself" dashboard: can the call panels be trusted right now?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from dashboards import guide as g
from dashboards import promql as p
from dashboards.base import dashboard
from dashboards.config import THRESHOLDS as T
from dashboards.panels import Q, row, series, single, thresholds

UID = "avatar-monitor-self"

# Every call panel is built from webhooks; without them no symptom is visible.
_BLIND = [g.NEVER_CONNECTS, g.FAILS_TO_JOIN, g.DISAPPEARS]


def build() -> db.Dashboard:
    """Webhook intake, rejections and call-table evictions of the sidecar."""
    inc = f"[{p.RATE}]"
    return (
        dashboard(
            "avatar-monitor itself",
            UID,
            "Health of the avatar-monitor sidecar: if webhooks stop or are rejected, the "
            "Avatar calls dashboard and its alerts go blind.",
        )
        .with_row(row("Webhook intake"))
        .with_panel(
            single(
                "Sidecar up",
                _BLIND,
                "1 while Prometheus scrapes the sidecar. At 0 no call panel or page works.",
                "bool_yes_no",
                Q('min(up{job=~"$job", instance=~"$instance"})', "up"),
                colors=thresholds((None, "red"), (1, "green")),
            )
        )
        .with_panel(
            series(
                "Webhooks by event",
                _BLIND,
                "LiveKit webhooks accepted per second by event. participant_joined and "
                "participant_left drive ringing, active and departures; no traffic for long "
                "while calls happen means a webhook URL or key is wrong.",
                "reqps",
                [
                    Q(
                        f"sum by (event) (rate({p.sel('avatar_monitor_webhooks_total')}{inc}))",
                        "{{event}}",
                    )
                ],
                width=18,
            )
        )
        .with_panel(
            series(
                "Rejected webhooks by reason",
                _BLIND,
                f"Webhooks refused per {T.rejections_window}: unauthorized (bad signature: "
                "forged traffic or a wrong API key/secret), malformed, too_large, duplicate "
                "(LiveKit retries; harmless).",
                "short",
                [Q(f"sum by (reason) ({p.sel(p.REJECTIONS.record)})", "{{reason}}")],
                bars=True,
            )
        )
        .with_panel(
            series(
                "Calls evicted",
                [g.STALE_CALLS],
                "Calls dropped from the sidecar's table without a finishing webhook (stale "
                "calls: a room that never finished, or the table limit). Their outcome is "
                "unknown to every other panel.",
                "short",
                [
                    Q(
                        f"sum(increase({p.sel('avatar_monitor_calls_evicted_total')}{inc}))",
                        "evicted",
                    )
                ],
                bars=True,
            )
        )
        .with_row(row("Room observer, voice agent reports and traces"))
        .with_panel(
            series(
                "Observed rooms",
                [g.DELAYED, g.NO_SPEECH, g.SUDDEN_EXIT],
                "Rooms the hidden room observer is connected to. First speech, idle-timeout "
                "departures and pipeline errors come from it: 0 while calls are active means "
                "those panels are blind (LIVEKIT_URL unset, or the observer cannot join). By "
                "speech source: agent_state (the voice agent's lk.agent.state, no media) or "
                "audio (the avatar's audio is received).",
                "short",
                [Q(f"sum({p.sel('avatar_monitor_observer_rooms')})", "rooms"),
                 Q(f"sum by (source) ({p.sel('avatar_monitor_observer_speech_source')})",
                   "speech from {{source}}")],
            )
        )
        .with_panel(
            series(
                "Observer disconnects, reconnects and skipped rooms",
                [g.DELAYED, g.NO_SPEECH, g.SUDDEN_EXIT],
                "The observer lost rooms (by LiveKit reason), retried, or skipped rooms over "
                "--observe-max-rooms: calls it did not watch have no speech or idle data.",
                "short",
                [
                    Q(f"sum by (reason) (increase("
                      f"{p.sel('avatar_monitor_observer_disconnects_total')}{inc}))",
                      "lost: {{reason}}"),
                    Q(f"sum(increase({p.sel('avatar_monitor_observer_reconnects_total')}{inc}))",
                      "reconnects"),
                    Q(f"sum(increase("
                      f"{p.sel('avatar_monitor_observer_rooms_skipped_total')}{inc}))",
                      "skipped"),
                ],
                bars=True,
            )
        )
        .with_panel(
            series(
                "Spans exported and dropped",
                [g.SESSION_DIES, g.NEVER_CONNECTS],
                "Call traces sent to the OTLP collector, and dropped (queue full, collector "
                "down): exemplar links from slow or failed calls lead nowhere for dropped ones.",
                "short",
                [
                    Q(f"sum(increase({p.sel('avatar_monitor_spans_exported_total')}{inc}))",
                      "exported"),
                    Q(f"sum by (reason) (increase("
                      f"{p.sel('avatar_monitor_spans_dropped_total')}{inc}))",
                      "dropped: {{reason}}"),
                ],
                bars=True,
            )
        )
        .with_panel(
            series(
                "Voice agent reports",
                [g.NO_SPEECH, g.SESSION_DIES, g.NEVER_CONNECTS],
                "Events the voice agent reported (avatar_monitor_agent: pipeline errors, "
                "session closes, startup failures, latencies) by path and outcome, and "
                "/v1/events requests refused. Expired: the room's call never appeared. Refusals "
                "with unauthorized mean the agent's key pair differs from the sidecar's.",
                "short",
                [
                    Q(f"sum by (source, outcome) (increase("
                      f"{p.sel('avatar_monitor_reported_events_total')}{inc}))",
                      "{{source}} {{outcome}}"),
                    Q(f"sum by (reason) (increase("
                      f"{p.sel('avatar_monitor_reported_events_rejected_total')}{inc}))",
                      "refused: {{reason}}"),
                ],
                bars=True,
            )
        )
        .with_row(row("Process"))
        .with_panel(
            series(
                "Sidecar CPU and memory",
                [g.STALE_CALLS, *_BLIND],
                "CPU seconds per second and resident memory of each sidecar process "
                "(process_*). Memory that only grows points at calls never finished (stale "
                "calls, see Calls evicted); a CPU near 1 means webhooks queue up.",
                "short",
                [Q(f"rate({p.sel('process_cpu_seconds_total')}{inc})", "CPU {{instance}}"),
                 Q(f"{p.sel('process_resident_memory_bytes')} / 2^20",
                   "MiB resident {{instance}}")],
                width=18,
            )
        )
        .with_panel(
            single(
                "Versions running",
                _BLIND,
                "Sidecar processes by avatar-monitor version (avatar_monitor_build_info): two "
                "versions at once is a rollout under way.",
                "short",
                Q(f"count by (version) ({p.sel('avatar_monitor_build_info')})", "{{version}}"),
            )
        )
    )
