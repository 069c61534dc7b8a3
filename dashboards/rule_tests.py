"""promtool unit tests of the rules: every alert shown firing and not firing.

Series are written per `instance`: in each group one instance should fire and the others show
what must not. Expected annotations are the rule's templates expanded for the expected labels
and `$value` (chosen so that Prometheus' increase()/quantile arithmetic is exact).
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboards import config
from dashboards.promql import JOIN_P95, STARTUP_FAILURE_RATIO
from dashboards.rules import ALERT_GROUP, ALERTS, RECORDING_GROUP, RULES_FILE, Alert, expand
from dashboards.yamlout import dump

TESTS_FILE = "alerts/tests/avatar-monitor.rules.test.yml"
JOB = config.SIDECAR_JOB


def s(metric: str, instance: str, job: str = JOB, **labels: str) -> str:
    """A series selector in promtool's input notation."""
    all_labels = {"job": job, "instance": instance, **labels}
    return metric + "{" + ", ".join(f'{k}="{v}"' for k, v in all_labels.items()) + "}"


@dataclass(frozen=True)
class Fires:
    """One expected firing alert: its series labels and `$value`."""

    instance: str
    value: float = 0.0
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Case:
    """Input series for one alert and what must be firing at each evaluation time."""

    alert: str
    series: dict[str, str]
    checks: dict[str, tuple[Fires, ...]]
    exprs: tuple[tuple[str, str, dict[str, float]], ...] = ()


def _bucket(instance: str, le: str, values: str) -> tuple[str, str]:
    return s("avatar_join_latency_seconds_bucket", instance, le=le), values


CASES: tuple[Case, ...] = (
    Case(
        "AvatarStartupFailures",
        {
            s("avatar_startup_failures_total", "a", cause="join_timeout"): "0x5 1x20",
            s("avatar_startup_failures_total", "a", cause="message"): "0x26",
        },
        {"5m": (), "8m": (Fires("a", 1, (("cause", "join_timeout"),)),), "20m": ()},
    ),
    Case(
        "AvatarStartupFailureRatioHigh",
        {
            # a: half the calls fail; b: one call, one failure (too few calls); c: 1 in 150.
            s("avatar_calls_started_total", "a"): "0+2x40",
            s("avatar_startup_failures_total", "a", cause="join_timeout"): "0+1x40",
            s("avatar_calls_started_total", "b"): "0x5 1x35",
            s("avatar_startup_failures_total", "b", cause="join_timeout"): "0x8 1x32",
            s("avatar_calls_started_total", "c"): "0+10x40",
            s("avatar_startup_failures_total", "c", cause="join_timeout"): "0x10 1x30",
        },
        {"5m": (), "10m": (Fires("a", 0.5),), "20m": (Fires("a", 0.5),)},
        ((STARTUP_FAILURE_RATIO.record, "10m", {"a": 0.5, "b": 1.0, "c": 0.0}),),
    ),
    Case(
        "AvatarJoinLatencyHigh",
        dict(
            [_bucket("slow", le, "0x40") for le in ("1", "5", "15")]
            + [_bucket("slow", le, "0+60x40") for le in ("30", "+Inf")]
            + [_bucket("fast", le, "0+60x40") for le in ("1", "5", "15", "30", "+Inf")]
        ),
        {"5m": (), "15m": (Fires("slow", 29.25),)},
        ((JOIN_P95.record, "15m", {"slow": 29.25, "fast": 0.95}),),
    ),
    Case(
        "AvatarPipelineErrorsUnrecoverable",
        {
            s("avatar_pipeline_errors_total", "a", component="tts", recoverable="false"): (
                "0x5 1x20"
            ),
            s("avatar_pipeline_errors_total", "a", component="llm", recoverable="true"): ("0+5x25"),
        },
        {"5m": (), "8m": (Fires("a", 1, (("component", "tts"),)),), "20m": ()},
    ),
    Case(
        "AvatarSessionTimeoutBurst",
        {
            s("avatar_departures_total", "a", cause="session_timeout"): "0x5 1+1x30",
            s("avatar_timeouts_total", "b", timeout="session"): "0+1x40",
            s("avatar_departures_total", "c", cause="user_hangup"): "0+10x40",
            s("avatar_departures_total", "c", cause="agent_hangup"): "0+10x40",
        },
        {"2m": (), "8m": (Fires("a", 3), Fires("b", 8))},
    ),
    Case(
        "AvatarIdleTimeoutSpike",
        {
            s("avatar_timeouts_total", "a", timeout="idle"): "0+1x40",
            s("avatar_departures_total", "b", cause="idle_timeout"): "0+1x40",
            s("avatar_timeouts_total", "c", timeout="join"): "0+10x40",
        },
        {"7m": (), "12m": (Fires("a", 12), Fires("b", 12))},
    ),
    Case(
        "AvatarWebhooksUnauthorized",
        {
            s("avatar_monitor_webhooks_rejected_total", "a", reason="unauthorized"): ("0x5 1+1x30"),
            s("avatar_monitor_webhooks_rejected_total", "b", reason="duplicate"): "0+10x40",
        },
        {"7m": (), "9m": (Fires("a", 4, (("reason", "unauthorized"),)),)},
    ),
    Case(
        "AvatarAgentReportsRefused",
        {
            s("avatar_monitor_reported_events_rejected_total", "a", reason="unauthorized"): (
                "0x5 1+1x30"
            ),
            s("avatar_monitor_reported_events_rejected_total", "b", reason="malformed"): (
                "0+10x40"
            ),
        },
        {"7m": (), "9m": (Fires("a", 4),)},
    ),
    Case(
        "AvatarMonitorDown",
        {
            s("up", "a"): "1x5 0x20",
            s("up", "b"): "1x25",
            s("up", "node", job="node"): "0x25",
        },
        {"7m": (), "9m": (Fires("a", 0),)},
    ),
    Case(
        "AvatarMonitorNoWebhooks",
        {
            # a: webhooks stop at 10m; b: never any; c: steady traffic; d: sidecar down.
            s("up", "a"): "1x120",
            s("avatar_monitor_webhooks_total", "a", event="participant_joined"): "0+1x10 10x110",
            s("up", "b"): "1x120",
            s("up", "c"): "1x120",
            s("avatar_monitor_webhooks_total", "c", event="participant_joined"): "0+1x120",
            s("up", "d"): "0x120",
        },
        {"20m": (), "60m": (Fires("b", 1),), "75m": (Fires("a", 1), Fires("b", 1))},
    ),
)


def _alert(name: str) -> Alert:
    return next(a for a in ALERTS if a.name == name)


def _expected(alert: Alert, fires: Fires) -> dict[str, object]:
    labels = {"job": JOB, "instance": fires.instance, **dict(fires.labels)}
    return {
        "exp_labels": {**labels, "severity": alert.severity, **alert.labels},
        "exp_annotations": {
            k: expand(v, labels, fires.value) for k, v in alert.annotations().items()
        },
    }


def _group(case: Case) -> dict[str, object]:
    alert = _alert(case.alert)
    return {
        "name": case.alert,
        "interval": "1m",
        "input_series": [{"series": k, "values": v} for k, v in case.series.items()],
        "alert_rule_test": [
            {
                "eval_time": at,
                "alertname": alert.name,
                "exp_alerts": [_expected(alert, f) for f in fires],
            }
            for at, fires in case.checks.items()
        ],
        "promql_expr_test": [
            {
                "expr": record,
                "eval_time": at,
                "exp_samples": [
                    {"labels": s(record, inst), "value": value} for inst, value in samples.items()
                ],
            }
            for record, at, samples in case.exprs
        ],
    }


def document(cases: tuple[Case, ...] = CASES) -> dict[str, object]:
    """The promtool test file as data, for `cases`."""
    return {
        "rule_files": ["../" + RULES_FILE.removeprefix("alerts/")],
        "evaluation_interval": "1m",
        # Recorded series first, as the alerts read them (Prometheus itself lags by <= 1 interval).
        "group_eval_order": [RECORDING_GROUP, ALERT_GROUP],
        "tests": [_group(c) for c in cases],
    }


def render() -> str:
    """The promtool test file's text."""
    head = "# Generated by `make dashboards` from dashboards/rule_tests.py: edit that, not this.\n"
    return head + dump(document()) + "\n"
