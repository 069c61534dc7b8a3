"""PromQL building blocks: selectors, and the recording rules dashboards and alerts share."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from dashboards import config
from dashboards.config import THRESHOLDS as T

# Dashboard variables; the end-to-end test substitutes them before querying Prometheus.
DASHBOARD_MATCHERS = {"job": '=~"$job"', "instance": '=~"$instance"'}
RATE = "$__rate_interval"


def sel(metric: str, dashboard: bool = True, fleet: bool = False, **labels: str) -> str:
    """`metric{...}` with equality matchers; dashboards add the job/instance variables (only
    job for `fleet` series, which are summed over instances)."""
    matchers = {"job": DASHBOARD_MATCHERS["job"]} if fleet else DASHBOARD_MATCHERS
    parts = [f"{k}{v}" for k, v in matchers.items()] if dashboard else []
    parts += [f'{k}="{v}"' for k, v in labels.items()]
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


# Aggregation clauses of rules: over the fleet (calls are split between sidecars), or per sidecar
# (about the sidecar process itself, or for the dashboards' instance variable).
FLEET = ", ".join(config.FLEET_LABELS)
PER_INSTANCE = f"{FLEET}, instance"


def m(metric: str, **labels: str) -> str:
    """`metric{<the mixin's selector>, ...}`: a raw series as every rule reads it."""
    parts = [config.SELECTOR, *(f'{k}="{v}"' for k, v in labels.items())]
    return f"{metric}{{{', '.join(p for p in parts if p)}}}"


@dataclass(frozen=True)
class Recording:
    """A recording rule: a shared expression stored as its own series, in rule group `group`
    (`avatar-monitor.<group>`), with fixed `labels` added to its series."""

    record: str
    expr: str
    labels: tuple[tuple[str, str], ...] = ()
    group: str = "recording"


def _quantile(q: float, level: str = "instance", by: str = PER_INSTANCE) -> Recording:
    w = T.join_latency_window
    return Recording(
        f"{level}:avatar_join_latency_seconds:p{round(q * 100)}_{w}",
        f"histogram_quantile({q}, sum by ({by}, le) "
        f"(rate({m('avatar_join_latency_seconds_bucket')}[{w}])))",
    )


JOIN_P50, JOIN_P95, JOIN_P99 = _quantile(0.5), _quantile(0.95), _quantile(0.99)
# The alert's: every sidecar's joins together.
JOIN_P95_FLEET = _quantile(0.95, "fleet", FLEET)

# The playback alert's: every sidecar's replies together.
PLAYBACK_P95 = Recording(
    f"fleet:avatar_playback_latency_seconds:p95_{T.playback_latency_window}",
    f"histogram_quantile(0.95, sum by ({FLEET}, le) "
    f"(rate({m('avatar_agent_latency_seconds_bucket', stage='avatar_playback')}"
    f"[{T.playback_latency_window}])))",
)

STARTUP_FAILURES = Recording(
    f"instance_cause:avatar_startup_failures:increase{T.startup_failures_window}",
    f"sum by ({PER_INSTANCE}, cause) "
    f"(increase({m('avatar_startup_failures_total')}[{T.startup_failures_window}]))",
)
DEPARTURES = Recording(
    f"instance_cause:avatar_departures:increase{T.departures_window}",
    f"sum by ({PER_INSTANCE}, cause) "
    f"(increase({m('avatar_departures_total')}[{T.departures_window}]))",
)
TIMEOUTS = Recording(
    f"instance_timeout:avatar_timeouts:increase{T.departures_window}",
    f"sum by ({PER_INSTANCE}, timeout) "
    f"(increase({m('avatar_timeouts_total')}[{T.departures_window}]))",
)
REJECTIONS = Recording(
    f"instance_reason:avatar_monitor_webhooks_rejected:increase{T.rejections_window}",
    f"sum by ({PER_INSTANCE}, reason) "
    f"(increase({m('avatar_monitor_webhooks_rejected_total')}[{T.rejections_window}]))",
)
PIPELINE_ERRORS = Recording(
    f"instance_component_recoverable:avatar_pipeline_errors:increase{T.pipeline_errors_window}",
    f"sum by ({PER_INSTANCE}, component, recoverable) "
    f"(increase({m('avatar_pipeline_errors_total')}[{T.pipeline_errors_window}]))",
)

MEDIA_INTERRUPTIONS = Recording(
    f"instance_kind:avatar_media_interruptions:increase{T.media_interruptions_window}",
    f"sum by ({PER_INSTANCE}, kind) "
    f"(increase({m('avatar_media_interruptions_total')}[{T.media_interruptions_window}]))",
)

RECORDINGS: tuple[Recording, ...] = (
    JOIN_P50,
    JOIN_P95,
    JOIN_P99,
    JOIN_P95_FLEET,
    PLAYBACK_P95,
    STARTUP_FAILURES,
    DEPARTURES,
    TIMEOUTS,
    REJECTIONS,
    PIPELINE_ERRORS,
    MEDIA_INTERRUPTIONS,
)

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NOT_METRICS = re.compile(r'"[^"]*"|\[[^\]]*\]|\b(?:by|without|on|ignoring)\s*\([^)]*\)')


def metric_names(expr: str, recordings: Iterable[Recording] | None = None) -> set[str]:
    """Raw metric names an expression reads, with recorded series resolved to their sources."""
    if recordings is None:
        from dashboards.slo import ALL_RECORDINGS as recordings
    recorded: dict[str, list[str]] = {}
    for r in recordings:
        recorded.setdefault(r.record, []).append(r.expr)
    names: set[str] = set()
    for token in _NAME.findall(_NOT_METRICS.sub(" ", expr)):
        if token in recorded:
            for source in recorded[token]:
                names |= metric_names(source, recordings)
        elif token.startswith(("avatar_", "process_")) or token == "up":
            names.add(token)
    return names
