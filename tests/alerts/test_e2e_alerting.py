"""End to end on real components: sidecar -> Prometheus (committed rule file) -> Alertmanager ->
a webhook receiver in this test; then every dashboard query through Prometheus' HTTP API.

The committed rules are loaded unchanged. First one rare startup failure among many good calls:
the call_startup SLO's burn-rate page stays quiet. Then a burst of startup failures: the page
(`for: 0s`, both windows of its pair above 14.4x) reaches the receiver. Alerts with a `for:` do
not fire here; their firing is proven by the promtool unit tests.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from dashboards import config, slo
from dashboards.rules import ALERT_GROUP, ALERTS, RULES_FILE
from dashboards.slo import ALL_RECORDINGS
from tests.alerts import scenario
from tests.alerts.stack import (
    LOOPBACK,
    Process,
    Receiver,
    start_alertmanager,
    start_prometheus,
    start_sidecar,
    wait_ready,
)
from tests.support.ports import free_port
from tests.support.webhooks import KEY, SECRET

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.asyncio(loop_scope="module")

# Grafana's variables as the dashboards would resolve them for this one sidecar.
RATE_INTERVAL = "1m"


@dataclass
class Stack:
    http: aiohttp.ClientSession
    prometheus: str
    receiver: Receiver
    sidecar_instance: str
    processes: list[Process]
    # After the rare startup failure: the 1h burn rate, and burn-rate alerts pending or firing.
    rare_burn: float = 0.0
    rare_alerts: list[dict[str, object]] | None = None

    async def query(self, expr: str) -> list[dict[str, object]]:
        """An instant query; fails on any API error."""
        async with self.http.get(self.prometheus + "/api/v1/query", params={"query": expr}) as r:
            body = await r.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    async def api(self, path: str, **params: str) -> dict[str, object]:
        async with self.http.get(self.prometheus + path, params=params) as r:
            body = await r.json()
        assert body.get("status") == "success", f"{path}: {body}"
        return dict(body["data"])

    async def api_list(self, path: str, **params: str) -> list[dict]:
        async with self.http.get(self.prometheus + path, params=params) as r:
            body = await r.json()
        assert body.get("status") == "success", f"{path}: {body}"
        return list(body["data"] or [])

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """All components up, the scenario driven through the sidecar, and one scrape after it."""
    work = tmp_path_factory.mktemp("e2e")
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    receiver = Receiver()
    await receiver.start()
    processes: list[Process] = []
    try:
        sidecar_port, prom_port, am_port = free_port(), free_port(), free_port()
        sidecar = start_sidecar(work, sidecar_port, KEY, SECRET, *scenario.SIDECAR_FLAGS,
                                "--otlp-endpoint", receiver.base)
        processes.append(sidecar)
        am = start_alertmanager(work, am_port, receiver.url)
        processes.append(am)
        prom = start_prometheus(work, prom_port, sidecar_port, am_port, ROOT / RULES_FILE)
        processes.append(prom)
        sidecar_url = f"http://{LOOPBACK}:{sidecar_port}"
        await wait_ready(http, sidecar_url + "/healthz", sidecar)
        await wait_ready(http, f"http://{LOOPBACK}:{am_port}/-/ready", am)
        await wait_ready(http, f"http://{LOOPBACK}:{prom_port}/-/ready", prom)
        s = Stack(http, f"http://{LOOPBACK}:{prom_port}", receiver,
                  f"{LOOPBACK}:{sidecar_port}", processes)
        await _wait_for_scrape(s)
        driver = scenario.Driver(http, sidecar_url)
        # A rare failure, well within the budget: 1 in 61 calls. It comes after the good calls
        # are scraped, so that no evaluation sees it against only some of them.
        await scenario.good_calls(driver)
        await _scraped(s, "avatar_calls_started_total", scenario.RARE_CALLS)
        await scenario.startup_failure(driver)
        await _evaluated_after_rare_failure(s)
        await scenario.run(driver)
        yield s
    finally:
        for proc in reversed(processes):
            proc.stop()
        await receiver.stop()
        await http.close()


async def _wait_for_scrape(s: Stack, timeout: float = 20) -> None:
    """Until Prometheus has scraped the sidecar successfully."""
    deadline = time.monotonic() + timeout
    while not await s.query(f'up{{job="{config.SIDECAR_JOB}"}} == 1'):
        assert time.monotonic() < deadline, f"sidecar never scraped\n{s.logs()}"
        await asyncio.sleep(0.2)


async def _scraped(s: Stack, metric: str, value: float, timeout: float = 20) -> None:
    """Until Prometheus has scraped `metric` at `value`."""
    deadline = time.monotonic() + timeout
    while not await s.query(f"{metric} == {value}"):
        assert time.monotonic() < deadline, f"{metric} never scraped at {value}\n{s.logs()}"
        await asyncio.sleep(0.2)


BURN_PAGE = "AvatarStartupBudgetBurn"
_SLO = f'{{slo="{config.STARTUP_SLO.name}"}}'


async def _evaluated_after_rare_failure(s: Stack, timeout: float = 30) -> None:
    """Once Prometheus has recorded the rare failure and evaluated the alerts after that, keep
    the 1h burn rate and the burn-rate alerts pending or firing (Stack.rare_*)."""
    deadline = time.monotonic() + timeout
    expr = f"{slo.ERROR_RATIO}5m{_SLO} > 0"
    while not await s.query(expr):
        assert time.monotonic() < deadline, f"the failure never reached {expr}\n{s.logs()}"
        await asyncio.sleep(0.2)
    seen = time.time()
    while _alerts_evaluated_at(await s.api("/api/v1/rules")) <= seen:
        assert time.monotonic() < deadline, "alerts not evaluated after the failure"
        await asyncio.sleep(0.2)
    burn = await s.query(slo.burn_rate(config.STARTUP_SLO, "1h"))
    s.rare_burn = float(burn[0]["value"][1])  # type: ignore[index]
    s.rare_alerts = [a for a in (await s.api("/api/v1/alerts"))["alerts"]  # type: ignore[union-attr]
                     if a["labels"]["alertname"] == BURN_PAGE]


def _alerts_evaluated_at(rules: dict[str, object]) -> float:
    """When Prometheus last evaluated the alerting rule group (unix seconds)."""
    group = next(g for g in rules["groups"] if g["name"] == ALERT_GROUP)  # type: ignore[union-attr]
    stamp = re.sub(r"(\.\d{6})\d*", r"\1", group["lastEvaluation"]).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(stamp).timestamp()


async def test_a_rare_startup_failure_does_not_page(stack: Stack) -> None:
    """1 failure in 61 calls: seen (the burn rate is above 0) but far below 14.4x, no page."""
    page = max(a.factor for a in config.BURN_ALERTS)
    assert 0 < stack.rare_burn < page / 2, stack.rare_burn
    assert stack.rare_alerts == [], stack.rare_alerts


async def test_a_burst_of_startup_failures_pages_through_alertmanager(stack: Stack) -> None:
    alert = await stack.receiver.wait_for(BURN_PAGE, timeout=30)
    labels, annotations = alert["labels"], alert["annotations"]
    assert isinstance(labels, dict) and isinstance(annotations, dict)
    assert labels["severity"] == "page"
    assert labels["slo"] == config.STARTUP_SLO.name
    assert labels["job"] == config.SIDECAR_JOB
    assert "instance" not in labels  # summed over the sidecars
    assert annotations["runbook_url"] == f"{config.RUNBOOK_BASE_URL}#avatarstartupbudgetburn"
    assert "The call never connects" in annotations["description"]
    # The first pair to agree pages: 6h/30m (above 6x) while the burst is under way.
    pages = [a.factor for a in config.BURN_ALERTS if a.severity == "page"]
    burn = re.search(r"burning ([0-9.]+)x", annotations["summary"])
    assert burn and float(burn.group(1)) > min(pages), annotations["summary"]
    # After the whole burst, the fastest pair (1h/5m above 14.4x) agrees too.
    fast = next(a for a in config.BURN_ALERTS if a.factor == max(pages))
    expr = " and ".join(f"{slo.burn_rate(config.STARTUP_SLO, w)} > {fast.factor}"
                        for w in (fast.long, fast.short))
    deadline = time.monotonic() + 15
    while not await stack.query(expr):
        assert time.monotonic() < deadline, f"never true: {expr}"
        await asyncio.sleep(0.5)


async def test_calls_cut_at_an_unconfigured_length_alert(stack: Stack) -> None:
    alert = await stack.receiver.wait_for("AvatarRepeatedSessionLength", timeout=30)
    labels, annotations = alert["labels"], alert["annotations"]
    assert isinstance(labels, dict) and isinstance(annotations, dict)
    assert labels["severity"] == "warning"
    assert labels["instance"] == stack.sidecar_instance
    assert annotations["summary"].startswith(f"{scenario.CUT_CALLS} avatar sessions ended at")
    assert "Calls suddenly end after the same number of minutes" in annotations["description"]
    length = await stack.query("max(avatar_repeated_session_length_seconds)")
    assert abs(float(length[0]["value"][1]) - scenario.CUT_AT) <= 2  # type: ignore[index]


async def test_rules_load_and_evaluate_cleanly(stack: Stack) -> None:
    data = await stack.api("/api/v1/rules")
    rules = [r for g in data["groups"] for r in g["rules"]]  # type: ignore[index, union-attr]
    names = {r.get("name") for r in rules}
    assert names == {a.name for a in ALERTS} | {r.record for r in ALL_RECORDINGS}
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not broken, broken


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) of every panel target in the committed dashboards."""
    out = []
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def resolve(expr: str, instance: str) -> str:
    """Substitute the Grafana variables the panels use."""
    return (expr.replace("$__rate_interval", RATE_INTERVAL)
            .replace("$job", config.SIDECAR_JOB)
            # A regex inside a PromQL string literal: the backslashes are escaped, as Grafana does.
            .replace("$instance", re.escape(instance).replace("\\", "\\\\")))


async def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    assert not [q for q in queries if "$" in resolve(q[2], stack.sidecar_instance)]
    # Recorded series need a rule evaluation after the scrape that saw the scenario's end.
    deadline = time.monotonic() + 15
    while True:
        empty = [(f, title, expr) for f, title, expr in queries
                 if not await stack.query(resolve(expr, stack.sidecar_instance))]
        if not empty or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert not empty, "\n".join(f"{f} / {t}: {e}" for f, t, e in empty)


async def test_dashboard_queries_show_the_scenario(stack: Stack) -> None:
    """Beyond non-empty: what the scenario did shows as positive values (one sidecar only)."""
    positive = {
        'sum by (cause) (instance_cause:avatar_startup_failures:increase5m{cause="join_timeout"})',
        'sum by (cause) (instance_cause:avatar_departures:increase15m{cause="user_hangup"})',
        'sum by (cause) (instance_cause:avatar_departures:increase15m{cause="network"})',
        'sum by (timeout) (instance_timeout:avatar_timeouts:increase15m{timeout="join"})',
        f"max({slo.ERROR_RATIO}1h{_SLO})",
        f"1 - min({slo.BUDGET_LEFT}{_SLO})",  # the share of the budget spent
        'sum(avatar_calls_in_progress{state="active"})',
        f"sum(increase(avatar_calls_abandoned_total[{RATE_INTERVAL}]))",
        f"sum(increase(avatar_monitor_calls_evicted_total[{RATE_INTERVAL}]))",
        f"sum(increase(avatar_disconnects_total{{role=\"avatar\", reason=\"signal_close\"}}"
        f"[{RATE_INTERVAL}]))",
        f"sum(increase(avatar_session_duration_seconds_count[{RATE_INTERVAL}]))",
        f"sum(increase(avatar_time_to_first_track_seconds_count{{kind=\"video\"}}"
        f"[{RATE_INTERVAL}]))",
        "min(instance:avatar_join_latency_seconds:p50_5m)",
        "max by (instance) (avatar_repeated_session_length_seconds)",
        f'sum by (reason) (increase(avatar_pipeline_closed_total{{reason="error"}}'
        f'[{RATE_INTERVAL}]))',
        f'sum(increase(avatar_agent_latency_seconds_count{{stage="e2e"}}[{RATE_INTERVAL}]))',
    } | {
        f'sum by (reason) (instance_reason:avatar_monitor_webhooks_rejected:increase5m'
        f'{{reason="{reason}"}})'
        for reason in ("unauthorized", "malformed", "too_large", "duplicate")
    }
    deadline = time.monotonic() + 15
    while True:
        zero = []
        for expr in sorted(positive):
            result = await stack.query(expr)
            if not result or not float(result[0]["value"][1]) > 0:  # type: ignore[index]
                zero.append(expr)
        if not zero or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert not zero, zero


async def test_dashboard_variables_resolve(stack: Stack) -> None:
    jobs = await stack.http.get(stack.prometheus + "/api/v1/label/job/values",
                                params={"match[]": config.VARIABLE_METRIC})
    assert config.SIDECAR_JOB in (await jobs.json())["data"]


async def test_histogram_panels_show_exemplars(stack: Stack) -> None:
    """The exemplars the dashboards ask for exist: each links an observation to a call trace."""
    bucket_exprs = {expr for _, _, expr in dashboard_queries() if "_bucket{" in expr}
    observed = ("avatar_join_latency_seconds", "avatar_time_to_first_track_seconds",
                "avatar_session_duration_seconds")  # the room observer's are not driven here
    now = time.time()
    for metric in observed:
        expr = next(e for e in bucket_exprs if f"{metric}_bucket" in e)
        deadline = time.monotonic() + 15
        while not (found := await stack.api_list(
                "/api/v1/query_exemplars", query=resolve(expr, stack.sidecar_instance),
                start=str(now - 600), end=str(time.time() + 60))):
            assert time.monotonic() < deadline, f"no exemplars for {metric}"
            await asyncio.sleep(0.5)
        labels = [e["labels"] for series in found for e in series["exemplars"]]
        assert all(re.fullmatch(r"[0-9a-f]{32}", lab["trace_id"]) for lab in labels), labels
