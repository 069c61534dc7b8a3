"""PromQL building blocks: selectors, and the recording rules dashboards and alerts share."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dashboards.config import THRESHOLDS as T

# Dashboard variables; the end-to-end test substitutes them before querying Prometheus.
DASHBOARD_MATCHERS = {"job": '=~"$job"', "instance": '=~"$instance"'}
RATE = "$__rate_interval"


def sel(metric: str, dashboard: bool = True, **labels: str) -> str:
    """`metric{...}` with equality matchers; dashboards add the job/instance variables."""
    parts = [f"{k}{v}" for k, v in DASHBOARD_MATCHERS.items()] if dashboard else []
    parts += [f'{k}="{v}"' for k, v in labels.items()]
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


@dataclass(frozen=True)
class Recording:
    """A recording rule: a shared expression stored as its own series."""

    record: str
    expr: str


def _quantile(q: float) -> Recording:
    w = T.join_latency_window
    return Recording(
        f"instance:avatar_join_latency_seconds:p{round(q * 100)}_{w}",
        f"histogram_quantile({q}, sum by (job, instance, le) "
        f"(rate(avatar_join_latency_seconds_bucket[{w}])))",
    )


JOIN_P50, JOIN_P95, JOIN_P99 = _quantile(0.5), _quantile(0.95), _quantile(0.99)

STARTUP_FAILURES = Recording(
    f"instance_cause:avatar_startup_failures:increase{T.startup_failures_window}",
    "sum by (job, instance, cause) "
    f"(increase(avatar_startup_failures_total[{T.startup_failures_window}]))",
)
_rw = T.startup_failure_ratio_window
CALLS_STARTED_RATIO_WINDOW = Recording(
    f"instance:avatar_calls_started:increase{_rw}",
    f"sum by (job, instance) (increase(avatar_calls_started_total[{_rw}]))",
)
STARTUP_FAILURE_RATIO = Recording(
    f"instance:avatar_startup_failures:ratio{_rw}",
    f"sum by (job, instance) (increase(avatar_startup_failures_total[{_rw}]))\n"
    f"/ {CALLS_STARTED_RATIO_WINDOW.record}",
)
DEPARTURES = Recording(
    f"instance_cause:avatar_departures:increase{T.departures_window}",
    f"sum by (job, instance, cause) (increase(avatar_departures_total[{T.departures_window}]))",
)
TIMEOUTS = Recording(
    f"instance_timeout:avatar_timeouts:increase{T.departures_window}",
    f"sum by (job, instance, timeout) (increase(avatar_timeouts_total[{T.departures_window}]))",
)
REJECTIONS = Recording(
    f"instance_reason:avatar_monitor_webhooks_rejected:increase{T.rejections_window}",
    "sum by (job, instance, reason) "
    f"(increase(avatar_monitor_webhooks_rejected_total[{T.rejections_window}]))",
)
PIPELINE_ERRORS = Recording(
    f"instance_component_recoverable:avatar_pipeline_errors:increase{T.pipeline_errors_window}",
    "sum by (job, instance, component, recoverable) "
    f"(increase(avatar_pipeline_errors_total[{T.pipeline_errors_window}]))",
)

RECORDINGS: tuple[Recording, ...] = (
    JOIN_P50,
    JOIN_P95,
    JOIN_P99,
    STARTUP_FAILURES,
    CALLS_STARTED_RATIO_WINDOW,
    STARTUP_FAILURE_RATIO,
    DEPARTURES,
    TIMEOUTS,
    REJECTIONS,
    PIPELINE_ERRORS,
)

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NOT_METRICS = re.compile(r'"[^"]*"|\[[^\]]*\]|\b(?:by|without|on|ignoring)\s*\([^)]*\)')


def metric_names(expr: str) -> set[str]:
    """Raw metric names an expression reads, with recorded series resolved to their sources."""
    recorded = {r.record: r.expr for r in RECORDINGS}
    names: set[str] = set()
    for token in _NAME.findall(_NOT_METRICS.sub(" ", expr)):
        if token in recorded:
            names |= metric_names(recorded[token])
        elif token.startswith("avatar_") or token == "up":
            names.add(token)
    return names
