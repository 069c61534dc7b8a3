"""docs/metrics.md and docs/diagnosis.md are generated from the code and must not drift."""

from __future__ import annotations

from pathlib import Path

from monitor.diagnosis.verdicts import RULES, verdicts_markdown
from monitor.sinks.metrics_doc import metrics_markdown

ROOT = Path(__file__).resolve().parents[3]


def test_metrics_doc_matches_the_table() -> None:
    """Generated from the metrics table (tests/test_metric_table.py: the registry exports
    exactly the table)."""
    generated = metrics_markdown()
    committed = (ROOT / "docs" / "metrics.md").read_text()
    assert committed == generated, "docs/metrics.md drifted: run `make docs` and commit it"


def test_diagnosis_doc_matches_the_rules() -> None:
    committed = (ROOT / "docs" / "diagnosis.md").read_text()
    assert committed == verdicts_markdown(), "docs/diagnosis.md drifted: run `make docs`"
    for rule in RULES:
        assert f"`{rule.name}`" in committed


def test_metrics_doc_lists_the_public_contract() -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for name in (
        "avatar_calls_started_total", "avatar_calls_in_progress", "avatar_join_latency_seconds",
        "avatar_startup_failures_total", "avatar_calls_abandoned_total",
        "avatar_time_to_first_track_seconds", "avatar_session_duration_seconds",
        "avatar_disconnects_total", "avatar_departures_total", "avatar_timeouts_total",
        "avatar_monitor_webhooks_total", "avatar_monitor_webhooks_rejected_total",
        "avatar_monitor_calls_evicted_total",
    ):
        assert f"`{name}`" in doc
