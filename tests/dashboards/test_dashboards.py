"""The generated dashboards: up to date, and every panel fit to answer a symptom of the guide."""

from __future__ import annotations

import re

from dashboards import config, guide
from dashboards.__main__ import OUTPUTS, stale
from dashboards.slo import ALL_RECORDINGS as RECORDINGS
from dashboards.slo import SLO_RECORDINGS
from tests.dashboards.exprs import (
    dashboard_exprs,
    dashboards,
    panels,
    rule_exprs,
    selectors,
)

REQUIRED_PANELS = {
    "avatar-calls.json": {
        "Calls started",
        "Ringing now",
        "Active now",
        "Join latency p50 / p95 / p99",
        "Join latency distribution",
        "Startup failures by cause",
        "Calls whose avatar becomes active: budget left",
        "Calls whose avatar becomes active: burn rate",
        "Avatar joins within 10 s: budget left",
        "Avatar joins within 10 s: burn rate",
        "Abandoned calls",
        "Departures by cause",
        "Disconnect reasons by role",
        "Timeouts by kind",
        "Time to first track",
        "Repeated session length",
        "Calls at the repeated length",
    },
    "avatar-monitor.json": {"Webhooks by event", "Rejected webhooks by reason", "Calls evicted"},
}
HISTOGRAMS = (
    "avatar_join_latency_seconds",
    "avatar_time_to_first_track_seconds",
    "avatar_session_duration_seconds",
    "avatar_time_to_first_speech_seconds",
)


def test_committed_files_match_the_generator() -> None:
    assert set(OUTPUTS) >= {"dashboards/avatar-calls.json", "dashboards/avatar-monitor.json"}
    assert stale() == [], "generated files are stale: run `make dashboards`"


def test_required_panels_exist() -> None:
    titles = {name: {p["title"] for p in board["panels"]} for name, board in dashboards().items()}
    assert set(titles) == set(REQUIRED_PANELS)
    for name, required in REQUIRED_PANELS.items():
        assert required <= titles[name], required - titles[name]


def test_every_panel_has_a_unit_datasource_and_queries() -> None:
    for name, panel in panels():
        where = f"{name} / {panel['title']}"
        assert panel["fieldConfig"]["defaults"].get("unit"), where
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        targets = panel["targets"]
        assert targets, where
        assert len({t["refId"] for t in targets}) == len(targets), where
        for t in targets:
            assert t["expr"].strip() and t["datasource"] == panel["datasource"], where


def test_every_description_cites_a_symptom_of_the_guide() -> None:
    cites = [s.cite() for s in guide.ALL]
    for name, panel in panels():
        description = panel.get("description", "")
        assert description.startswith("Answers "), f"{name} / {panel['title']}"
        assert any(c in description for c in cites), f"{name} / {panel['title']}"


def test_histogram_queries_ask_for_exemplars() -> None:
    targets = [t for _, panel in panels() for t in panel["targets"]]
    for t in targets:
        assert t["exemplar"] == ("_bucket{" in t["expr"]), t["expr"]
    for metric in HISTOGRAMS:
        assert any(t["exemplar"] and f"{metric}_bucket" in t["expr"] for t in targets), metric


def test_variables_and_every_selector_filters_on_them() -> None:
    for name, board in dashboards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert set(variables) == {"datasource", "job", "instance"}, name
        assert variables["datasource"]["query"] == "prometheus"
    fleet = {r.record for r in SLO_RECORDINGS}  # summed over instances: no instance label
    for expr in dashboard_exprs():
        for metric, matchers in selectors(expr):
            assert matchers.get("job") == ("=~", "$job"), (metric, expr)
            if metric in fleet:
                assert "instance" not in matchers, (metric, expr)
            else:
                assert matchers.get("instance") == ("=~", "$instance"), (metric, expr)


def test_thresholds_come_from_config() -> None:
    by_title = {p["title"]: p for _, p in panels()}
    steps = by_title["Join latency p50 / p95 / p99"]["fieldConfig"]["defaults"]["thresholds"]
    assert steps["steps"][-1]["value"] == config.THRESHOLDS.join_latency_p95_seconds
    for objective in config.SLOS:
        burn = by_title[f"{objective.title}: burn rate"]
        steps = burn["fieldConfig"]["defaults"]["thresholds"]
        assert steps["steps"][-1]["value"] == max(a.factor for a in config.BURN_ALERTS)


def test_shared_expressions_are_recorded_not_repeated() -> None:
    exprs = dashboard_exprs()
    users = exprs + rule_exprs()
    for rec in RECORDINGS:
        assert sum(rec.record in e for e in users) >= 1, f"{rec.record} is used nowhere"
        inner = re.search(r"(?:rate|increase)\([^)]*\)", rec.expr)
        if inner is None:  # built on other recorded series only
            assert any(other.record in rec.expr for other in RECORDINGS), rec.expr
            continue
        assert not [e for e in exprs if inner.group(0) in e], inner.group(0)
