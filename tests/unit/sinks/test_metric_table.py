"""The metrics table (monitor/sinks/metric_table.py) is the one declaration of every metric:
the registry exports exactly it, callers count through Metrics' intent methods, and the README
names only metrics of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import build_monitor
from monitor.config import Config
from monitor.sinks.metric_table import METRICS, SPECS
from monitor.sinks.metrics import Metrics

# The repository: the first parent with pyproject.toml (wherever this file moves in tests/).
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())
STANDARD = ("process_", "python_gc_")  # prometheus-client's own families


def exported() -> dict[str, tuple[str, str, dict[str, list[str]]]]:
    """name -> (type, help, {label: values in the order exported}) of a fresh sidecar."""
    out = {}
    for family in build_monitor(Config("k", "s")).registry.collect():
        if family.name.startswith(STANDARD):
            continue
        values: dict[str, list[str]] = {}
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label != "le" and value not in values.setdefault(label, []):
                    values[label].append(value)
        out[family.name] = (family.type, family.documentation, values)
    return out


def test_the_registry_exports_exactly_the_table() -> None:
    families = exported()
    assert set(families) == {spec.name for spec in METRICS}
    for spec in METRICS:
        kind, help_text, values = families[spec.name]
        assert (kind, help_text) == (spec.kind, spec.help), spec.name
        expected = {label: list(v) for label, v in spec.label_values().items()}
        assert values == expected, spec.name


def test_names_and_attributes_are_unique() -> None:
    assert len({spec.name for spec in METRICS}) == len(METRICS)
    assert len(SPECS) == len(METRICS)


def test_labels_are_counted_only_in_the_sinks() -> None:
    """Callers use Metrics' intent methods; no `.labels(` outside monitor/sinks/."""
    found = [f"{path.relative_to(ROOT)}:{number}"
             for path in sorted((ROOT / "monitor").rglob("*.py"))
             if "sinks" not in path.relative_to(ROOT / "monitor").parts
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if ".labels(" in line]
    assert not found, found


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_intent_methods_count_their_series(metrics: Metrics) -> None:
    metrics.reconcile_run(ok=False)
    metrics.listing_applied("room_gone")
    metrics.observer_skipped("gone")
    metrics.data_refused("lemonslice", "not_avatar")
    metrics.late_sender("dropped")
    metrics.bridge_event("buffer", "expired", 3)
    metrics.bridge_rejected("foreign_shard")
    metrics.audio_probe("dry")
    metrics.observer_disconnected("room_deleted")
    metrics.observer_reconnected()
    metrics.webhooks_dropped_upstream(4)
    assert value(metrics, "avatar_monitor_reconcile_runs_total", outcome="failed") == 1
    assert value(metrics, "avatar_monitor_reconcile_runs_total", outcome="ok") == 0
    assert value(metrics, "avatar_monitor_reconciled_total", action="room_gone") == 1
    assert value(metrics, "avatar_monitor_observer_rooms_skipped_total", reason="gone") == 1
    assert value(metrics, "avatar_monitor_data_messages_refused_total", topic="lemonslice",
                 reason="not_avatar") == 1
    assert value(metrics, "avatar_monitor_late_senders_total", outcome="dropped") == 1
    assert value(metrics, "avatar_monitor_reported_events_total", source="buffer",
                 outcome="expired") == 3
    assert value(metrics, "avatar_monitor_reported_events_rejected_total",
                 reason="foreign_shard") == 1
    assert value(metrics, "avatar_monitor_audio_probes_total", outcome="dry") == 1
    assert value(metrics, "avatar_monitor_observer_disconnects_total",
                 reason="room_deleted") == 1
    assert value(metrics, "avatar_monitor_observer_reconnects_total") == 1
    assert value(metrics, "avatar_monitor_webhooks_dropped_upstream_total") == 4


def test_a_cached_child_keeps_counting(metrics: Metrics) -> None:
    for _ in range(3):
        metrics.data_message("lemonslice", "bot_ready")
    metrics.data_message("lemonslice", "other")
    assert value(metrics, "avatar_data_messages_total", topic="lemonslice",
                 type="bot_ready") == 3
    assert value(metrics, "avatar_data_messages_total", topic="lemonslice", type="other") == 1


def test_the_clock_offset_is_read_at_scrape_time() -> None:
    offsets = iter([1.5, -2.0])
    metrics = Metrics(CollectorRegistry(), clock_offset=lambda: next(offsets))
    assert value(metrics, "avatar_monitor_server_clock_offset_seconds") == 1.5
    assert value(metrics, "avatar_monitor_server_clock_offset_seconds") == -2.0


def test_the_readme_names_only_metrics_of_the_table() -> None:
    """The README's short list: each metric and label it names is the table's, and it links
    the full reference."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Metrics at a glance", 1)[1].split("\n## ", 1)[0]
    assert "(docs/metrics.md)" in section
    by_name = {spec.exported_name: spec for spec in METRICS}
    histograms = {spec.name: spec for spec in METRICS if spec.kind == "histogram"}
    by_name.update(histograms)
    named = re.findall(r"`((?:avatar|process)_\w+)(?:\{([\w,]+)\})?`", section)
    assert len(named) >= 10
    for name, labels in named:
        assert name in by_name, name
        assert tuple(filter(None, labels.split(","))) == by_name[name].labels, name
    causes = SPECS["departures"].label_values()["cause"]
    departures_row = next(line for line in section.splitlines()
                          if "avatar_departures_total" in line)
    listed = re.findall(r"`(\w+)`", departures_row.split("|")[2])
    assert set(listed) == set(causes)
    for prefix in re.findall(r"`(avatar_monitor)_\*`", section):
        assert any(spec.name.startswith(prefix) for spec in METRICS)


def test_every_instrument_an_intent_method_names_is_in_the_table() -> None:
    """Metrics' intent methods name instruments by their table key: each key is the table's,
    of the right kind, and each of Metrics' instruments is counted somewhere."""
    source = (ROOT / "monitor" / "sinks" / "metrics.py").read_text()
    named = set(re.findall(r'self\._(count|histogram)\("(\w+)"', source))
    named |= {("count", key) for key in re.findall(r'self\._counters\["(\w+)"\]', source)}
    named |= {("gauge", key) for key in re.findall(r'self\._gauges\["(\w+)"\]', source)}
    kinds = {"count": "counter", "histogram": "histogram", "gauge": "gauge"}
    for method, key in named:
        assert key in SPECS and SPECS[key].kind == kinds[method], key
        assert SPECS[key].owner == "metrics", key
    assert {key for _, key in named} == {spec.attr for spec in METRICS if spec.owner == "metrics"}
