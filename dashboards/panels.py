"""Panel helpers: every panel gets a unit, a symptom-citing description and the datasource."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, stat, timeseries
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import prometheus as pm

from dashboards import config
from dashboards.guide import Symptom, answers

DATASOURCE = dm.DataSourceRef(type_val=config.DATASOURCE_TYPE, uid=f"${{{config.DATASOURCE_VAR}}}")


@dataclass(frozen=True)
class Q:
    """One query of a panel."""

    expr: str
    legend: str = ""


def _targets(queries: Sequence[Q], heatmap_format: bool = False) -> list[prom.Dataquery]:
    out = []
    for i, q in enumerate(queries):
        t = prom.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
        t = t.legend_format(q.legend or "__auto").range()
        # Exemplars live on histogram buckets; ask for them wherever a query reads buckets.
        t = t.exemplar("_bucket{" in q.expr)
        if heatmap_format:
            t = t.format(pm.PromQueryFormat.HEATMAP)
        out.append(t)
    return out


def _describe(symptoms: Sequence[Symptom], what: str) -> str:
    return f"{answers(*symptoms)} {what}"


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def warn_at(value: float) -> db.ThresholdsConfig:
    """Green below the alert threshold, red at and above it."""
    return thresholds((None, "green"), (value, "red"))


def series(
    title: str,
    symptoms: Sequence[Symptom],
    what: str,
    unit: str,
    queries: Sequence[Q],
    *,
    bars: bool = False,
    threshold: float | None = None,
    width: int = 12,
) -> timeseries.Panel:
    """A time series panel; `threshold` draws the alert threshold as a dashed line."""
    p = (
        timeseries.Panel()
        .title(title)
        .description(_describe(symptoms, what))
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .span(width)
        .height(8)
        .legend(cb.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST))
    )
    if bars:
        p = (
            p.draw_style(cm.GraphDrawStyle.BARS)
            .fill_opacity(80)
            .stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
        )
    if threshold is not None:
        p = p.thresholds(warn_at(threshold)).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    return p


def single(
    title: str,
    symptoms: Sequence[Symptom],
    what: str,
    unit: str,
    query: Q,
    *,
    colors: db.ThresholdsConfig | None = None,
    width: int = 6,
) -> stat.Panel:
    """A stat panel showing the latest value."""
    return (
        stat.Panel()
        .title(title)
        .description(_describe(symptoms, what))
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(_targets([query]))
        .span(width)
        .height(5)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(colors or thresholds((None, "blue")))
    )


def distribution(
    title: str, symptoms: Sequence[Symptom], what: str, bucket_expr: str, *, width: int = 12
) -> heatmap.Panel:
    """A heatmap of histogram buckets (seconds), with exemplars."""
    return (
        heatmap.Panel()
        .title(title)
        .description(_describe(symptoms, what))
        .unit("s")
        .datasource(DATASOURCE)
        .targets(_targets([Q(bucket_expr, "{{le}}")], heatmap_format=True))
        .span(width)
        .height(8)
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s"))
        .cell_values(heatmap.CellValues().unit("short"))
        .color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("Oranges"))
        .exemplars_color("rgba(255,0,255,0.7)")
    )


def row(title: str) -> db.Row:
    """A section header."""
    return db.Row(title)
