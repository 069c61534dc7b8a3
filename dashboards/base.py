"""Dashboard scaffold (variables, time, links) and deterministic JSON rendering."""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import config
from dashboards.panels import DATASOURCE


def _query_variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def dashboard(title: str, uid: str, description: str) -> db.Dashboard:
    """A dashboard with the datasource, job and instance variables every panel filters on."""
    m = config.VARIABLE_METRIC
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(config.DASHBOARD_TAGS)
        .editable()
        .refresh(config.REFRESH)
        .time(config.TIME_FROM, "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(
            db.DatasourceVariable(config.DATASOURCE_VAR).label("Data source").type("prometheus")
        )
        .with_variable(_query_variable("job", "Job", f"label_values({m}, job)"))
        .with_variable(
            _query_variable("instance", "Instance", f'label_values({m}{{job=~"$job"}}, instance)')
        )
        .link(
            db.DashboardLink("avatar-monitor")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(config.DASHBOARD_TAGS[:1])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


def render(board: db.Dashboard) -> str:
    """Stable JSON: sorted keys, panel ids numbered in layout order."""
    model = board.build()
    for i, panel in enumerate(model.panels or [], start=1):
        panel.id_val = i
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
