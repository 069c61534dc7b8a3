"""Every metric and label value that dashboards and rules use is one the sidecar exports.

Checked twice: against the metrics table (monitor/sinks/metric_table.py, the contract below),
and against docs/metrics.md, which is generated from it.
"""

from __future__ import annotations

import re

from prometheus_client.utils import floatToGoString

from dashboards.promql import metric_names
from dashboards.slo import ALL_RECORDINGS as RECORDINGS
from monitor.sinks.metric_table import JOIN_LATENCY_BUCKETS, METRICS
from tests.dashboards.exprs import ROOT, base_name, dashboard_exprs, rule_exprs, selectors

# name -> {label: allowed values}; None means any value (an open set). From the metrics table,
# and prometheus-client's standard process families.
CONTRACT: dict[str, dict[str, set[str] | None]] = {
    **{spec.exported_name if spec.kind != "histogram" else spec.name: {
        label: None if label in spec.open_labels else set(values)
        for label, values in spec.label_values().items()} for spec in METRICS},
    "process_cpu_seconds_total": {},
    "process_resident_memory_bytes": {},
}
NOT_EXPORTED = {"up"}  # Prometheus' own series


def used(exprs: list[str]) -> set[str]:
    return {base_name(m) for e in exprs for m in metric_names(e)} - NOT_EXPORTED


def documented() -> dict[str, dict[str, set[str]]]:
    """docs/metrics.md: name -> {label: values}."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    out: dict[str, dict[str, set[str]]] = {}
    for row in re.findall(r"^\| `(\w+)` \| \w+ \| ([^|]*) \|", text, re.M):
        name, labels = row
        out[name] = {
            label: {v.strip() for v in values.split(",") if v.strip()}
            for label, values in re.findall(r"`(\w+)` = ([^`]*)", labels)
        }
    return out


def used_label_values() -> set[tuple[str, str, str]]:
    """(metric, label, value) of every equality matcher on an exported series."""
    records = {r.record: r.expr for r in RECORDINGS}
    out = set()
    for expr in dashboard_exprs() + rule_exprs():
        for metric, matchers in selectors(expr):
            if metric in records:  # a recorded series: its labels are the rule's own
                continue
            sources = {metric}
            for label, (op, value) in matchers.items():
                if op == "=" and label not in ("job", "instance", "le"):
                    out |= {(base_name(s), label, value) for s in sources - NOT_EXPORTED}
    return out


def test_le_matchers_name_a_bucket_of_the_histogram() -> None:
    buckets = {"avatar_join_latency_seconds": JOIN_LATENCY_BUCKETS}
    seen = 0
    for expr in dashboard_exprs() + rule_exprs():
        for metric, matchers in selectors(expr):
            if "le" in matchers:
                seen += 1
                op, value = matchers["le"]
                assert op == "=" and value in {floatToGoString(b) for b in buckets[metric[:-7]]}
    assert seen, "the join_latency SLO reads a bucket"


def test_dashboards_and_rules_use_only_contract_metrics() -> None:
    names = used(dashboard_exprs() + rule_exprs())
    assert names <= set(CONTRACT), names - set(CONTRACT)


def test_label_values_are_in_the_contract() -> None:
    for metric, label, value in used_label_values():
        allowed = CONTRACT[metric][label]
        assert allowed is None or value in allowed, (metric, label, value)


def test_every_metric_used_is_in_metrics_doc() -> None:
    missing = used(dashboard_exprs() + rule_exprs()) - set(documented())
    assert not missing, f"missing from docs/metrics.md: {missing}"


def test_every_label_value_used_is_in_metrics_doc() -> None:
    docs = documented()
    for metric, label, value in used_label_values():
        assert value in docs[metric][label], (metric, label, value)
