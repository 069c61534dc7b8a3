"""The rule file under promtool: valid, unit-tested, and each alert's test able to fail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboards import config, rule_tests, rules
from dashboards.yamlout import dump
from tests.alerts.promtool import RULES, promtool

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / rule_tests.TESTS_FILE
RUNBOOKS = ROOT / "docs" / "runbooks.md"
REQUIRED = {
    "AvatarStartupBudgetBurn": "page",
    "AvatarStartupBudgetTicket": "ticket",
    "AvatarJoinSpeedBudgetBurn": "page",
    "AvatarJoinSpeedBudgetTicket": "ticket",
    "AvatarCompletionBudgetBurn": "page",
    "AvatarCompletionBudgetTicket": "ticket",
    "AvatarJoinLatencyHigh": "warning",
    "AvatarPlaybackLatencyHigh": "warning",
    "AvatarPipelineErrorsUnrecoverable": "page",
    "AvatarSessionTimeoutBurst": "warning",
    "AvatarIdleTimeoutSpike": "warning",
    "AvatarRepeatedSessionLength": "warning",
    "AvatarWebhooksUnauthorized": "warning",
    "AvatarAgentReportsRefused": "warning",
    "AvatarForgedDataMessages": "warning",
    "AvatarMonitorDown": "page",
    "AvatarMonitorNoWebhooks": "warning",
    "AvatarMediaInterruptions": "warning",
    "AvatarUnattended": "warning",
}


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("alert", [a.name for a in rules.ALERTS])
def test_unit_tests_fail_when_the_alert_cannot_fire(alert: str, tmp_path: Path) -> None:
    """A copy of the rules where `alert` never fires must fail promtool's tests for it."""
    doc = rules.groups()
    for group in doc["groups"]:  # type: ignore[union-attr]
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(1) == 0"
    (tmp_path / "avatar-monitor.rules.yml").write_text(dump(doc) + "\n")
    (tmp_path / "tests").mkdir()
    cases = tuple(c for c in rule_tests.CASES if c.alert == alert)
    (tmp_path / "tests" / TESTS.name).write_text(dump(rule_tests.document(cases)) + "\n")
    result = promtool("test", "rules", tmp_path / "tests" / TESTS.name)
    assert result.returncode != 0
    assert f"alertname: {alert}," in result.stdout + result.stderr


def test_the_required_alerts_with_their_severities() -> None:
    assert {a.name: a.severity for a in rules.ALERTS} == REQUIRED


def test_every_alert_is_shown_firing_and_not_firing() -> None:
    for alert in rules.ALERTS:
        cases = [c for c in rule_tests.CASES if c.alert == alert.name]
        assert cases, alert.name
        checks = [fires for c in cases for fires in c.checks.values()]
        assert any(checks) and not all(checks), alert.name


def _anchors(markdown: str) -> dict[str, str]:
    """Heading anchor (GitHub style) -> the section's text."""
    sections = re.split(r"^## ", markdown, flags=re.M)[1:]
    out = {}
    for section in sections:
        heading = section.splitlines()[0]
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out[anchor] = " ".join(section.split())
    return out


def test_annotations_and_runbook_sections() -> None:
    sections = _anchors(RUNBOOKS.read_text())
    for alert in rules.ALERTS:
        ann = alert.annotations()
        assert ann["summary"] and ann["description"].startswith("Answers "), alert.name
        base, _, anchor = ann["runbook_url"].partition("#")
        assert base == config.RUNBOOK_BASE_URL
        assert anchor in sections, f"docs/runbooks.md has no section #{anchor}"
        for symptom in alert.symptoms:
            assert symptom.section in sections[anchor], (alert.name, symptom.section)


def test_committed_rule_file_uses_the_configured_for_durations() -> None:
    text = RULES.read_text()
    for alert in rules.ALERTS:
        block = text.split(f"- alert: {alert.name}\n", 1)[1].split("- alert:", 1)[0]
        assert re.search(rf"^\s+for: '?{re.escape(alert.for_)}'?$", block, re.M), alert.name
