"""Reading the generated dashboards and rules back: panels, expressions, selectors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from dashboards import rules
from dashboards.slo import ALL_RECORDINGS as RECORDINGS

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILES = sorted((ROOT / "dashboards").glob("*.json"))

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_MATCHER = re.compile(r'(\w+)\s*(=~|!=|!~|=)\s*"([^"]*)"')


def dashboards() -> dict[str, dict]:
    """File name -> dashboard JSON, as committed."""
    return {p.name: json.loads(p.read_text()) for p in DASHBOARD_FILES}


def panels() -> Iterator[tuple[str, dict]]:
    """(file name, panel) for every non-row panel."""
    for name, board in dashboards().items():
        for panel in board["panels"]:
            if panel["type"] != "row":
                yield name, panel


def dashboard_exprs() -> list[str]:
    return [t["expr"] for _, panel in panels() for t in panel.get("targets", [])]


def rule_exprs() -> list[str]:
    return [r.expr for r in RECORDINGS] + [a.expr for a in rules.ALERTS]


def selectors(expr: str) -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    """(metric, {label: (op, value)}) for every `metric{...}` in an expression."""
    for metric, body in _SELECTOR.findall(expr):
        yield metric, {label: (op, value) for label, op, value in _MATCHER.findall(body)}


def base_name(metric: str) -> str:
    """The documented name of a series: histograms without _bucket/_count/_sum."""
    return re.sub(r"_(bucket|count|sum)$", "", metric)
