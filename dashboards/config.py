"""The one place for thresholds, windows, severities and names shared by dashboards and alerts.

The mixin's config block is the first section: the selector, the labels calls are summed by,
the runbook base URL, and (below) thresholds, `for:` durations and SLO objectives. Change them
here, or without editing the repository: write the keys to change into a JSON file and run

    AVATAR_MONITOR_MIXIN_CONFIG=mine.json python -m dashboards --out DIR

(`apply_overrides` lists the keys). Every generated file follows.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields, replace
from typing import Any

# -- The mixin's config block -------------------------------------------------------------

# Scrape job of the sidecar, as the README's scrape config and the tests name it.
SIDECAR_JOB = "avatar-monitor"
# Label matchers every rule puts on the sidecar's series (PromQL, without braces).
SELECTOR = f'job="{SIDECAR_JOB}"'
# Labels kept when call counts are summed over sidecars: calls are split between instances, so
# ratios and counts about calls are taken over the sum, never per instance. Add e.g. "cluster".
FLEET_LABELS: tuple[str, ...] = ("job",)
# Where docs/runbooks.md is served: `runbook_url` is this plus `#<alert name in lower case>`, an
# absolute link in every notification. Set it to your copy (a repository's file view works).
RUNBOOK_BASE_URL = "https://runbooks.example.com/avatar-monitor/runbooks.md"

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

    # Startup failures page through the call_startup SLO's burn rate (dashboards/slo.py).
    startup_failures_window: str = "5m"
    join_latency_p95_seconds: float = 15.0
    join_latency_window: str = "5m"
    # "Avatar is delayed in speaking": the agent's audio reached the avatar, which took this long
    # (p95) to start playing it (livekit-agents' playback_latency).
    playback_latency_p95_seconds: float = 1.0
    playback_latency_window: str = "5m"
    pipeline_errors_window: str = "5m"
    # The unrecoverable-error page: over the fleet, one component's unrecoverable errors in the
    # window, as a share of the calls started in it, and at least this many (one error in
    # 10,000 calls pages no one).
    unrecoverable_window: str = "15m"
    unrecoverable_ratio: float = 0.02
    unrecoverable_min: int = 3
    session_timeout_burst: int = 3
    idle_timeout_spike: int = 5
    # The sidecar exports a repeated length only once it stands out
    # (monitor/sinks/session_lengths.py).
    repeated_length_calls: int = 1
    departures_window: str = "15m"
    unauthorized_webhooks: int = 0
    rejections_window: str = "5m"
    no_webhooks_window: str = "30m"
    # An avatar (a billed session) alone in a room with no user this long (the sidecar's
    # --unattended-after gives its calls the same warning).
    unattended_seconds: float = 300.0
    # "Audio cuts out": interruptions of the avatar's audio or video (of one kind, over every
    # sidecar) in the window, as a share of the avatar sessions that began in it, and at least
    # this many (so two calls with one interruption are no alert).
    media_interruptions_window: str = "15m"
    media_interruptions_ratio: float = 0.05
    media_interruptions_min: int = 3


@dataclass(frozen=True)
class ForDurations:
    """How long each alert's condition must hold before it fires (`for:`)."""

    # Burn-rate alerts need no `for:`: the short window of each pair is the debounce, and it
    # resets them within minutes once the burn stops (the SRE workbook's choice).
    budget_burn: str = "0s"
    budget_ticket: str = "0s"
    join_latency_high: str = "10m"
    playback_latency_high: str = "10m"
    pipeline_errors: str = "0s"
    session_timeout_burst: str = "0s"
    idle_timeout_spike: str = "5m"
    repeated_length: str = "0s"
    webhooks_unauthorized: str = "2m"
    reports_refused: str = "2m"
    forged_data_messages: str = "0s"
    sidecar_down: str = "2m"
    no_webhooks: str = "30m"
    unattended: str = "0s"
    media_interruptions: str = "5m"


@dataclass(frozen=True)
class SLO:
    """A service-level objective over calls: the share of good events it promises."""

    name: str  # the `slo` label of its recorded series
    title: str
    objective: float  # e.g. 0.995: 99.5 % of events good over the period
    alert: str  # alert name prefix: <alert>BudgetBurn (page), <alert>BudgetTicket (ticket)
    good: str  # what a good event is, in words

    @property
    def budget(self) -> float:
        """The share of events allowed to be bad."""
        return round(1 - self.objective, 10)


@dataclass(frozen=True)
class BurnAlert:
    """Multi-window burn-rate alert: both windows burn faster than `factor` times the budget."""

    long: str
    short: str
    factor: float
    severity: str


# Join latency SLO: a join within this many seconds is good; it must be a bucket edge of
# avatar_join_latency_seconds.
JOIN_WITHIN_SECONDS = 10.0
SLO_PERIOD = "30d"
STARTUP_SLO = SLO(
    "call_startup", "Calls whose avatar becomes active", 0.995, "AvatarStartup",
    "a started call whose avatar joined (abandoned calls are neither good nor bad)")
JOIN_SLO = SLO(
    "join_latency", f"Avatar joins within {JOIN_WITHIN_SECONDS:g} s", 0.99, "AvatarJoinSpeed",
    f"an avatar join within {JOIN_WITHIN_SECONDS:g} s of the call's start")
COMPLETION_SLO = SLO(
    "call_completion", "Calls that end normally", 0.99, "AvatarCompletion",
    "an avatar that left as calls normally end: the user or the voice agent hung up, or the "
    "user's own connection dropped; a crashed voice agent, a dead pipeline, the avatar's "
    "network, a removal, a server end, a timeout or an unexplained leave is bad (a session "
    "replaced by another counts neither way)")
SLOS: tuple[SLO, ...] = (STARTUP_SLO, JOIN_SLO, COMPLETION_SLO)
# The SRE workbook's pairs: 2 % of a 30-day budget in an hour or 5 % in six hours pages; 10 % in
# three days opens a ticket.
BURN_ALERTS: tuple[BurnAlert, ...] = (
    BurnAlert("1h", "5m", 14.4, "page"),
    BurnAlert("6h", "30m", 6.0, "page"),
    BurnAlert("3d", "6h", 1.0, "ticket"),
)


THRESHOLDS = Thresholds()
FOR = ForDurations()

ENV = "AVATAR_MONITOR_MIXIN_CONFIG"


def apply_overrides(values: dict[str, Any]) -> None:
    """Replace config values: `selector`, `fleet_labels`, `runbook_base_url`, `sidecar_job`,
    `slo_period`, `objectives` ({slo name: objective}), `thresholds` and `for` ({field:
    value}). Must run before the generator modules are imported."""
    g = globals()
    unknown = set(values) - {"selector", "fleet_labels", "runbook_base_url", "sidecar_job",
                             "slo_period", "objectives", "thresholds", "for"}
    if unknown:
        raise ValueError(f"unknown mixin config keys: {sorted(unknown)}")
    if "sidecar_job" in values:
        g["SIDECAR_JOB"] = values["sidecar_job"]
        g["SELECTOR"] = f'job="{values["sidecar_job"]}"'
    for key, name in (("selector", "SELECTOR"), ("runbook_base_url", "RUNBOOK_BASE_URL"),
                      ("slo_period", "SLO_PERIOD")):
        if key in values:
            g[name] = str(values[key])
    if "fleet_labels" in values:
        g["FLEET_LABELS"] = tuple(values["fleet_labels"])
    for key, name in (("thresholds", "THRESHOLDS"), ("for", "FOR")):
        known = {f.name for f in fields(g[name])}
        bad = set(values.get(key, {})) - known
        if bad:
            raise ValueError(f"unknown {key} fields: {sorted(bad)}")
        g[name] = replace(g[name], **values.get(key, {}))
    objectives = values.get("objectives", {})
    if set(objectives) - {s.name for s in SLOS}:
        raise ValueError(f"unknown SLOs: {sorted(set(objectives) - {s.name for s in SLOS})}")
    g["SLOS"] = tuple(replace(s, objective=float(objectives.get(s.name, s.objective)))
                      for s in SLOS)
    g["STARTUP_SLO"], g["JOIN_SLO"], g["COMPLETION_SLO"] = g["SLOS"]


if os.environ.get(ENV):
    with open(os.environ[ENV]) as _file:
        apply_overrides(json.load(_file))
