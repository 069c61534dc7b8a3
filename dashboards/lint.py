"""`python -m dashboards.lint [RULE_FILE]`: the rule file's checks beyond `promtool check rules`.

promtool checks syntax, PromQL and duplicate rules (`--lint=all`); this checks what a mixin owes
its users: Grafana Cloud's limits (rule group and alert names of at most 40 characters, at most
20 rules a group), names in the conventions (CamelCase alerts, `level:metric:operations`
records), a known severity, summary, description and an absolute `runbook_url` on every alert,
and the mixin's selector on every raw series a rule reads. cloudflare's pint is not used: the Go
module proxy does not serve it (403 for github.com/cloudflare/pint).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

from dashboards import config

MAX_NAME = 40
MAX_RULES_PER_GROUP = 20
SEVERITIES = {"page", "ticket", "warning"}
_ALERT_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
_RECORD_NAME = re.compile(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+")
_SERIES = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_:]*)(\{[^}]*\})?\s*(?=\[|\)|$| [-+*/<>=!]|\n)")
_NOT_SERIES = re.compile(r'\b(?:by|without|on|ignoring)\s*\([^)]*\)')
_FUNCTIONS = {"sum", "max", "min", "count", "rate", "increase", "histogram_quantile",
              "label_replace", "and", "or", "unless", "by", "on", "vector", "avg", "group_left",
              "group_right", "absent"}


def problems(doc: dict[str, Any]) -> list[str]:
    """Everything wrong with a rule file (parsed YAML), one line each."""
    out: list[str] = []
    groups = doc.get("groups") or []
    names = [g.get("name", "") for g in groups]
    if len(set(names)) != len(names):
        out.append("rule group names repeat")
    records = {r["record"] for g in groups for r in g.get("rules", []) if "record" in r}
    for group in groups:
        name, rules = group.get("name", ""), group.get("rules", [])
        if len(name) > MAX_NAME:
            out.append(f"group {name}: name longer than {MAX_NAME} characters")
        if len(rules) > MAX_RULES_PER_GROUP:
            out.append(f"group {name}: {len(rules)} rules, more than {MAX_RULES_PER_GROUP}")
        for rule in rules:
            out += [f"{name}: {p}" for p in _rule_problems(rule, records)]
    return out


def _rule_problems(rule: dict[str, Any], records: set[str]) -> list[str]:
    out = []
    if "record" in rule:
        if not _RECORD_NAME.fullmatch(rule["record"]):
            out.append(f"record {rule['record']}: not level:metric:operations")
    else:
        name = rule.get("alert", "")
        if len(name) > MAX_NAME or not _ALERT_NAME.fullmatch(name):
            out.append(f"alert {name}: not CamelCase of at most {MAX_NAME} characters")
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            out.append(f"alert {name}: severity not one of {sorted(SEVERITIES)}")
        annotations = rule.get("annotations", {})
        for key in ("summary", "description"):
            if not annotations.get(key):
                out.append(f"alert {name}: no {key}")
        url = annotations.get("runbook_url", "")
        if not re.fullmatch(r"https?://[^\s#]+#[a-z0-9-]+", url):
            out.append(f"alert {name}: runbook_url {url!r} is not an absolute link to a section")
    what = rule.get("record") or rule.get("alert")
    for series in unselected(rule.get("expr", ""), records):
        out.append(f"{what}: {series} lacks the selector {config.SELECTOR}")
    return out


def unselected(expr: str, records: set[str]) -> list[str]:
    """Raw series in `expr` (not recorded ones) without the mixin's selector."""
    out = []
    for metric, matchers in _SERIES.findall(_NOT_SERIES.sub(" ", expr)):
        if metric in _FUNCTIONS or metric in records or re.fullmatch(r"[0-9.e]+", metric):
            continue
        if config.SELECTOR not in matchers:
            out.append(metric + matchers)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else Path(__file__).resolve().parent.parent /
                "alerts" / "avatar-monitor.rules.yml")
    found = problems(yaml.safe_load(path.read_text()))
    for line in found:
        print(f"{path}: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
