"""The rules as a mixin: the linter (Grafana Cloud's limits, names, annotations, the selector),
promtool's own lint, and a copy built from a user's config block."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from dashboards import config, lint, rules
from tests.alerts.promtool import RULES, promtool

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_rule_file_passes_the_linter() -> None:
    assert lint.problems(yaml.safe_load(RULES.read_text())) == []


def test_promtool_lints_every_check_fatally() -> None:
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_names_and_group_sizes_fit_grafana_cloud() -> None:
    doc = rules.groups()
    for group in doc["groups"]:  # type: ignore[union-attr]
        assert len(group["name"]) <= 40 and len(group["rules"]) <= 20, group["name"]
    assert all(len(a.name) <= 40 for a in rules.ALERTS)
    assert all(a.annotations()["runbook_url"].startswith("https://") for a in rules.ALERTS)


def test_the_linter_finds_each_problem() -> None:
    ok_alert = {"alert": "AvatarFine", "expr": f"up{{{config.SELECTOR}}} == 0",
                "labels": {"severity": "page"},
                "annotations": {"summary": "s", "description": "d",
                                "runbook_url": "https://x.example/r.md#avatarfine"}}
    doc = {"groups": [
        {"name": "g" * 41, "rules": [ok_alert] * 21},
        {"name": "ok", "rules": [
            {**ok_alert, "alert": "avatar_bad_name"},
            {**ok_alert, "labels": {"severity": "critical"}},
            {**ok_alert, "annotations": {"summary": "s", "description": "d",
                                         "runbook_url": "docs/runbooks.md#x"}},
            {**ok_alert, "expr": "sum(rate(avatar_calls_started_total[5m])) > 0"},
            {"record": "no_colons", "expr": f"sum(avatar_x_total{{{config.SELECTOR}}})"},
        ]},
    ]}
    found = "\n".join(lint.problems(doc))
    for expected in ("name longer than 40", "21 rules, more than 20", "avatar_bad_name: not "
                     "CamelCase", "severity not one of", "is not an absolute link",
                     "avatar_calls_started_total lacks the selector",
                     "no_colons: not level:metric:operations"):
        assert expected in found, (expected, found)
    assert found.count("\n") + 1 == 7, found


def test_a_copy_built_from_a_users_config_block(tmp_path: Path) -> None:
    overrides = {
        "sidecar_job": "avatars-prod",
        "fleet_labels": ["cluster", "job"],
        "runbook_base_url": "https://wiki.example.org/avatar-runbooks",
        "objectives": {"call_startup": 0.999},
        "thresholds": {"join_latency_p95_seconds": 20},
    }
    cfg = tmp_path / "mixin.json"
    cfg.write_text(json.dumps(overrides))
    env = {**os.environ, config.ENV: str(cfg)}
    out = tmp_path / "out"
    made = subprocess.run([sys.executable, "-m", "dashboards", "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    text = (out / rules.RULES_FILE).read_text()
    assert 'job="avatars-prod"' in text and 'job="avatar-monitor"' not in text
    assert "sum by (cluster, job)" in text
    assert "runbook_url: 'https://wiki.example.org/avatar-runbooks#avatarstartupbudgetburn'" in text
    assert 'ratio_rate1h{slo="call_startup"} / 0.001 > 14.4' in text
    assert "fleet:avatar_join_latency_seconds:p95_5m > 20" in text
    checked = promtool("check", "rules", "--lint=all", "--lint-fatal", out / rules.RULES_FILE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    linted = subprocess.run([sys.executable, "-m", "dashboards.lint", str(out / rules.RULES_FILE)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stderr
    # The repository's own files are untouched.
    assert 'job="avatar-monitor"' in RULES.read_text()


def test_unknown_config_keys_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "mixin.json"
    cfg.write_text(json.dumps({"thresholds": {"no_such_threshold": 1}}))
    made = subprocess.run([sys.executable, "-m", "dashboards", "--out", str(tmp_path)],
                          cwd=ROOT, env={**os.environ, config.ENV: str(cfg)},
                          capture_output=True, text=True, timeout=120)
    assert made.returncode != 0 and "no_such_threshold" in made.stderr
