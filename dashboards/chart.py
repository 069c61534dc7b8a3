"""The Helm chart's copies of the generated files, under deploy/helm/avatar-monitor/files/, which
its templates read with .Files.Get (Helm reads no file outside the chart): the dashboards as they
are, and the rule file with a placeholder where the runbook base URL goes, which the template
replaces with the chart's value `prometheusRule.runbookBaseUrl`."""

from __future__ import annotations

from collections.abc import Callable

from dashboards import rules

CHART_DIR = "deploy/helm/avatar-monitor"
RULES_COPY = f"{CHART_DIR}/files/avatar-monitor.rules.yml"
DASHBOARDS_DIR = f"{CHART_DIR}/files/dashboards"
# The chart's templates/prometheusrule.yaml names the same string.
RUNBOOK_PLACEHOLDER = "__RUNBOOK_BASE_URL__"


def outputs(dashboards: dict[str, Callable[[], str]]) -> dict[str, Callable[[], str]]:
    """The chart's files and how each is made; `dashboards` maps file names to their makers."""
    copies: dict[str, Callable[[], str]] = {
        RULES_COPY: lambda: rules.render(runbook_base=RUNBOOK_PLACEHOLDER),
    }
    for name, make in dashboards.items():
        copies[f"{DASHBOARDS_DIR}/{name}"] = make
    return copies
