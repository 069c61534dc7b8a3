"""The one place for thresholds, windows, severities and names shared by dashboards and alerts."""

from __future__ import annotations

from dataclasses import dataclass

# Scrape job of the sidecar: alerts about the sidecar itself (`up`) select on it.
SIDECAR_JOB = "avatar-monitor"

# Where `runbook_url` annotations point; each alert appends `#<anchor>` of docs/runbooks.md.
RUNBOOK_BASE_URL = "docs/runbooks.md"

# Grafana
DATASOURCE_TYPE = "prometheus"
DATASOURCE_VAR = "datasource"
# Present from the first scrape (a counter without labels), so variables fill before any call.
VARIABLE_METRIC = "avatar_calls_started_total"
DASHBOARD_TAGS = ["avatar-monitor", "livekit"]
REFRESH = "30s"
TIME_FROM = "now-6h"


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds; dashboards draw the same values as threshold lines and colours."""

    # A startup failure pages at once: the join timeout has already elapsed when it is counted.
    startup_failures_window: str = "5m"
    startup_failure_ratio: float = 0.05
    startup_failure_ratio_window: str = "15m"
    startup_failure_ratio_min_calls: int = 5
    join_latency_p95_seconds: float = 15.0
    join_latency_window: str = "5m"
    pipeline_errors_window: str = "5m"
    session_timeout_burst: int = 3
    idle_timeout_spike: int = 5
    departures_window: str = "15m"
    unauthorized_webhooks: int = 0
    rejections_window: str = "5m"
    no_webhooks_window: str = "30m"


@dataclass(frozen=True)
class ForDurations:
    """How long each alert's condition must hold before it fires (`for:`)."""

    startup_failures: str = "0s"
    startup_failure_ratio: str = "5m"
    join_latency_high: str = "10m"
    pipeline_errors: str = "0s"
    session_timeout_burst: str = "0s"
    idle_timeout_spike: str = "5m"
    webhooks_unauthorized: str = "2m"
    reports_refused: str = "2m"
    sidecar_down: str = "2m"
    no_webhooks: str = "30m"


THRESHOLDS = Thresholds()
FOR = ForDurations()
