"""promtool unit tests of the rules: every alert shown firing and not firing.

Series are written per `instance`: in each group one instance should fire and the others show
what must not. Expected annotations are the rule's templates expanded for the expected labels
and `$value` (chosen so that Prometheus' increase()/quantile arithmetic is exact).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from dashboards import config
from dashboards.promql import JOIN_P95, JOIN_P95_FLEET, PLAYBACK_P95
from dashboards.rules import ALERTS, RULES_FILE, Alert, expand, group_names
from dashboards.slo import ERROR_RATIO
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
    title: str = ""


_CALL_STARTUP = (("slo", "call_startup"),)
_JOIN_LATENCY = (("slo", "join_latency"),)
_CALL_COMPLETION = (("slo", "call_completion"),)


def _startup(failures: str) -> dict[str, str]:
    """One sidecar with 10 valid calls a minute and `failures` (a promtool series) failing."""
    return {
        s("avatar_calls_started_total", "a"): "0+11x120",
        s("avatar_calls_abandoned_total", "a"): "0+1x120",  # not valid: 10 valid calls a minute
        s("avatar_startup_failures_total", "a", cause="join_timeout"): failures,
        s("avatar_startup_failures_total", "a", cause="message"): "0x120",
    }


def _joins(within: str) -> dict[str, str]:
    """One sidecar with 10 avatar joins a minute, `within` of them within the SLO's bound."""
    le = floatToGoString(config.JOIN_WITHIN_SECONDS)
    return {
        s("avatar_join_latency_seconds_count", "a"): "0+10x120",
        s("avatar_join_latency_seconds_bucket", "a", le=le): within,
        s("avatar_join_latency_seconds_bucket", "a", le="+Inf"): "0+10x120",
    }


def _endings(bad: str, cause: str = "agent_lost") -> dict[str, str]:
    """One sidecar with 10 avatar departures a minute, `bad` of them for `cause`, the rest
    hang-ups, and as many sessions replaced (which count neither way)."""
    return {
        s("avatar_departures_total", "a", cause="user_hangup"): "0+10x120",
        s("avatar_departures_total", "a", cause=cause): bad,
        s("avatar_departures_total", "a", cause="replaced"): "0+10x120",
    }


def _ratio(name: str, window: str) -> str:
    return f'{ERROR_RATIO}{window}{{slo="{name}"}}'


def _bucket(instance: str, le: str, values: str) -> tuple[str, str]:
    return s("avatar_join_latency_seconds_bucket", instance, le=le), values


def _sessions(instance: str, values: str) -> dict[str, str]:
    """Avatar sessions begun (joins) on one sidecar."""
    return {s("avatar_join_latency_seconds_count", instance): values}


def _playback(instance: str, le: str, values: str) -> tuple[str, str]:
    return s("avatar_agent_latency_seconds_bucket", instance, le=le,
             stage="avatar_playback"), values


CASES: tuple[Case, ...] = (
    # SLO call_startup (objective 99.5 %, budget 0.5 %): 10 calls a minute.
    Case(
        "AvatarStartupBudgetBurn",
        _startup("0+1x120"),  # 10 % of calls fail: a 20x burn on every window
        {"10m": (Fires("", 20, _CALL_STARTUP),), "60m": (Fires("", 20, _CALL_STARTUP),)},
        ((_ratio("call_startup", "5m"), "10m", {"": 0.1}),),
        title="fast burn pages",
    ),
    Case(
        "AvatarStartupBudgetBurn",
        _startup("0+0.2x120"),  # 2 % of calls fail: 4x, under both page factors
        {"10m": (), "60m": (), "120m": ()},
        title="slow burn stays quiet",
    ),
    Case(
        "AvatarStartupBudgetBurn",
        _startup("0x100 5x20"),  # 5 failures in one minute: the 1h and 30m windows dilute it
        {"103m": ()},
        ((_ratio("call_startup", "5m"), "103m", {"": 0.1}),),
        title="a short spike stays quiet",
    ),
    Case(
        "AvatarStartupBudgetBurn",
        {  # a: 20 calls a minute, none fail; b: 2 a minute, 1 in 10 fails. Summed: 0.9 %.
            s("avatar_calls_started_total", "a"): "0+20x60",
            s("avatar_calls_abandoned_total", "a"): "0x60",
            s("avatar_startup_failures_total", "a", cause="join_timeout"): "0x60",
            s("avatar_calls_started_total", "b"): "0+2x60",
            s("avatar_calls_abandoned_total", "b"): "0x60",
            s("avatar_startup_failures_total", "b", cause="join_timeout"): "0+0.2x60",
        },
        {"30m": (), "60m": ()},
        title="calls split over two sidecars are summed, not paged per instance",
    ),
    Case(
        "AvatarStartupBudgetBurn",
        {  # 12 calls an hour; one fails at 101m: 1 in 12 over the hour is a 16.7x burn.
            s("avatar_calls_started_total", "a"): "0+0.2x120",
            s("avatar_calls_abandoned_total", "a"): "0x120",
            s("avatar_startup_failures_total", "a", cause="join_timeout"): "0x100 1x20",
        },
        {"100m": (), "103m": (Fires("", 1 / 12 / config.STARTUP_SLO.budget, _CALL_STARTUP),)},
        title="at low traffic one failure pages",
    ),
    Case(
        "AvatarStartupBudgetTicket",
        _startup("0+0.2x120"),
        {"10m": (Fires("", 4, _CALL_STARTUP),), "120m": (Fires("", 4, _CALL_STARTUP),)},
        title="slow burn opens a ticket",
    ),
    Case(
        "AvatarStartupBudgetTicket",
        _startup("0+0.03x120"),  # 0.3 %: within the budget
        {"10m": (), "120m": ()},
        title="a burn within the budget opens none",
    ),
    # SLO call_completion (objective 99 %, budget 1 %): 10 normal endings a minute, and
    # crashed voice agents on top; replaced sessions count neither way.
    Case(
        "AvatarCompletionBudgetBurn",
        _endings("0+2x120"),  # 2 crashes to 10 hang-ups: 1 in 6, a 16.7x burn
        {"10m": (Fires("", 1 / 6 / config.COMPLETION_SLO.budget, _CALL_COMPLETION),)},
        ((_ratio("call_completion", "1h"), "10m", {"": 1 / 6}),),
        title="crashing voice agents page",
    ),
    Case(
        "AvatarCompletionBudgetBurn",
        _endings("0+0.3x120", cause="user_network"),  # the users' own connections: good
        {"10m": (), "120m": ()},
        title="users' lost connections page no one",
    ),
    Case(
        "AvatarCompletionBudgetTicket",
        _endings("0+0.2x120", cause="network"),  # 2 %: a 2x burn, under every page factor
        {"10m": (Fires("", 0.2 / 10.2 / config.COMPLETION_SLO.budget, _CALL_COMPLETION),)},
        title="a slow burn opens a ticket",
    ),
    Case(
        "AvatarCompletionBudgetTicket",
        _endings("0+0.05x120", cause="network"),  # 0.5 %: within the budget
        {"10m": (), "120m": ()},
        title="a burn within the budget opens none",
    ),
    # SLO join_latency (objective 99 % within 10 s, budget 1 %): 10 joins a minute.
    Case(
        "AvatarJoinSpeedBudgetBurn",
        _joins("0+8x120"),  # 20 % slower than 10 s: 20x
        {"10m": (Fires("", 20, _JOIN_LATENCY),)},
        ((_ratio("join_latency", "1h"), "10m", {"": 0.2}),),
        title="fast burn pages",
    ),
    Case(
        "AvatarJoinSpeedBudgetBurn",
        _joins("0+9.7x120"),  # 3 %: 3x
        {"10m": (), "120m": ()},
        title="slow burn stays quiet",
    ),
    Case(
        "AvatarJoinSpeedBudgetTicket",
        _joins("0+9.7x120"),
        {"10m": (Fires("", 3, _JOIN_LATENCY),), "120m": (Fires("", 3, _JOIN_LATENCY),)},
        title="slow burn opens a ticket",
    ),
    Case(
        "AvatarJoinSpeedBudgetTicket",
        _joins("0+9.95x120"),  # 0.5 %: within the budget
        {"10m": (), "120m": ()},
        title="a burn within the budget opens none",
    ),
    Case(
        "AvatarJoinLatencyHigh",
        # Two sidecars, 60 joins a minute each: all of slow's in (15, 30] s, all of fast's
        # within 1 s. Together: p95 at 28.5 s.
        dict(
            [_bucket("slow", le, "0x40") for le in ("1", "5", "15")]
            + [_bucket("slow", le, "0+60x40") for le in ("30", "+Inf")]
            + [_bucket("fast", le, "0+60x40") for le in ("1", "5", "15", "30", "+Inf")]
        ),
        {"5m": (), "15m": (Fires("", 28.5),)},
        ((JOIN_P95.record, "15m", {"slow": 29.25, "fast": 0.95}),
         (JOIN_P95_FLEET.record, "15m", {"": 28.5})),
        title="the fleet's p95 is slow",
    ),
    Case(
        "AvatarJoinLatencyHigh",
        # One sidecar slow for 2 joins a minute, the other fast for 60: the fleet's p95 is fast.
        dict(
            [_bucket("slow", le, "0x40") for le in ("1", "5", "15")]
            + [_bucket("slow", le, "0+2x40") for le in ("30", "+Inf")]
            + [_bucket("fast", le, "0+60x40") for le in ("1", "5", "15", "30", "+Inf")]
        ),
        {"15m": (), "30m": ()},
        ((JOIN_P95.record, "15m", {"slow": 29.25, "fast": 0.95}),),
        title="one slow sidecar among fast ones is no page",
    ),
    Case(
        "AvatarPlaybackLatencyHigh",
        dict(
            [_playback("slow", le, "0x40") for le in ("0.5", "1", "1.5")]
            + [_playback("slow", le, "0+60x40") for le in ("2", "+Inf")]
            + [_playback("fast", le, "0+60x40") for le in ("0.5", "1", "1.5", "2", "+Inf")]
            # other stages, however slow, are not the avatar's playback
            + [(s("avatar_agent_latency_seconds_bucket", "llm", le=le, stage="e2e"), "0+60x40")
               for le in ("5", "+Inf")]
        ),
        # Together 120 replies a minute, 60 of them in (1.5, 2] s: p95 at 1.95 s.
        {"5m": (), "15m": (Fires("", 1.95),)},
        ((PLAYBACK_P95.record, "15m", {"": 1.95}),),
    ),
    Case(
        "AvatarPipelineErrorsUnrecoverable",
        {
            # 10 calls a minute over two sidecars; a: 4 TTS errors at once (4 % of 100 calls);
            # recoverable errors page no one.
            s("avatar_calls_started_total", "a"): "0+5x40",
            s("avatar_calls_started_total", "b"): "0+5x40",
            s("avatar_pipeline_errors_total", "a", component="tts", recoverable="false"): (
                "0x5 4x35"
            ),
            s("avatar_pipeline_errors_total", "a", component="llm", recoverable="true"): ("0+5x40"),
            s("avatar_pipeline_errors_total", "b", component="llm", recoverable="true"): ("0+5x40"),
        },
        {"5m": (), "8m": (Fires("", 0.04, (("component", "tts"),)),), "25m": ()},
        title="a burst of errors",
    ),
    Case(
        "AvatarPipelineErrorsUnrecoverable",
        {
            # one error among many calls: 1 in 1,500 calls in the window
            s("avatar_calls_started_total", "a"): "0+100x40",
            s("avatar_pipeline_errors_total", "a", component="tts", recoverable="false"): (
                "0x5 1x35"
            ),
        },
        {"8m": (), "12m": ()},
        title="one error among many calls pages no one",
    ),
    Case(
        "AvatarSessionTimeoutBurst",
        {
            # Calls split over two sidecars: 1 and 2 session timeouts, 3 together.
            s("avatar_departures_total", "a", cause="session_timeout"): "0x5 1x30",
            s("avatar_timeouts_total", "a", timeout="session"): "0x5 1x30",
            s("avatar_departures_total", "b", cause="session_timeout"): "0x5 2x30",
            s("avatar_timeouts_total", "b", timeout="session"): "0x5 2x30",
            s("avatar_departures_total", "c", cause="user_hangup"): "0+10x40",
        },
        {"2m": (), "8m": (Fires("", 3),)},
        title="summed over the sidecars",
    ),
    Case(
        "AvatarSessionTimeoutBurst",
        {
            s("avatar_departures_total", "a", cause="session_timeout"): "0x5 2x30",
            s("avatar_timeouts_total", "a", timeout="session"): "0x5 2x30",
            s("avatar_departures_total", "b", cause="user_hangup"): "0+10x40",
        },
        {"8m": ()},
        title="two are no burst",
    ),
    Case(
        "AvatarRepeatedSessionLength",
        {
            # a: 4 calls cut at one length from 6m on; b: no length repeats. Per sidecar: each
            # finds the lengths among the calls it sees.
            s("avatar_repeated_session_length_calls", "a"): "0x5 4x20",
            s("avatar_repeated_session_length_seconds", "a"): "0x5 1200x20",
            s("avatar_repeated_session_length_calls", "b"): "0x25",
        },
        {"5m": (), "7m": (Fires("a", 4),)},
    ),
    Case(
        "AvatarIdleTimeoutSpike",
        {
            # 0.3 idle timeouts a minute on each of two sidecars: 4.5 each in 15 minutes,
            # under 5; 9 together.
            s("avatar_timeouts_total", "a", timeout="idle"): "0+0.3x40",
            s("avatar_departures_total", "a", cause="idle_timeout"): "0+0.3x40",
            s("avatar_timeouts_total", "b", timeout="idle"): "0+0.3x40",
            s("avatar_departures_total", "b", cause="idle_timeout"): "0+0.3x40",
            s("avatar_timeouts_total", "c", timeout="join"): "0+10x40",
        },
        {"12m": (), "16m": (Fires("", 9),)},
        title="summed over the sidecars",
    ),
    Case(
        "AvatarIdleTimeoutSpike",
        {
            s("avatar_timeouts_total", "a", timeout="idle"): "0+0.3x40",
            s("avatar_departures_total", "a", cause="idle_timeout"): "0+0.3x40",
            s("avatar_timeouts_total", "b", timeout="join"): "0+10x40",
        },
        {"16m": (), "30m": ()},
        title="one sidecar's few are no spike",
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
        "AvatarForgedDataMessages",
        {
            s("avatar_monitor_data_messages_refused_total", "a", topic="lemonslice",
              reason="forbidden"): "0x5 1x30",
            s("avatar_monitor_data_messages_refused_total", "b", topic="lemonslice",
              reason="forbidden"): "0x40",
            # Another agent saying what only the avatar may: refused, but no forgery.
            s("avatar_monitor_data_messages_refused_total", "b", topic="lemonslice-avatar",
              reason="not_avatar"): "0x5 1x30",
        },
        {"5m": (), "7m": (Fires("a", 1),), "12m": ()},
    ),
    Case(
        "AvatarUnattended",
        {
            # a: an avatar alone from the 2nd minute on, for 6 minutes; b: short stays only
            s("avatar_unattended_longest_seconds", "a"): "0 0 60+60x6 0x10",
            s("avatar_unattended_longest_seconds", "b"): "0 30 0 45 0x15",
        },
        {"6m": (), "7m": (Fires("a", 360),), "9m": ()},
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
        "AvatarMonitorDown",
        {
            # every target vanishes at 5m: no `up` series at all
            s("up", "a"): "1x5",
            s("up", "node", job="node"): "1x25",
        },
        {"9m": (), "13m": (Fires("", 1),)},
        title="the target vanishes",
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
    Case(
        "AvatarMediaInterruptions",
        {
            # Two sidecars, 10 avatar sessions a minute each; 0.6 audio interruptions a minute
            # on each: 6 % of the fleet's sessions. Video: 0.1 a minute, under both bounds.
            **_sessions("a", "0+10x40"),
            **_sessions("b", "0+10x40"),
            s("avatar_media_interruptions_total", "a", kind="audio"): "0+0.6x40",
            s("avatar_media_interruptions_total", "b", kind="audio"): "0+0.6x40",
            s("avatar_media_interruptions_total", "a", kind="video"): "0+0.1x40",
            s("avatar_media_interruptions_total", "b", kind="video"): "0x40",
        },
        {"2m": (), "25m": (Fires("", 0.06, (("kind", "audio"),)),)},
        title="6 % of the fleet's sessions",
    ),
    Case(
        "AvatarMediaInterruptions",
        {
            # a: 100 sessions a minute, 1 interruption a minute (1 %); b: 2 interruptions in
            # 2 sessions, once (the ratio is high, but 2 are fewer than the minimum).
            **_sessions("a", "0+100x40"),
            s("avatar_media_interruptions_total", "a", kind="audio"): "0+1x40",
            **_sessions("b", "0x10 2x30"),
            s("avatar_media_interruptions_total", "b", kind="video"): "0x10 2x30",
        },
        {"15m": (), "30m": ()},
        title="a few among many sessions, or a couple in all, stay quiet",
    ),
)


def _alert(name: str) -> Alert:
    return next(a for a in ALERTS if a.name == name)


def _expected(alert: Alert, fires: Fires) -> dict[str, object]:
    # Fleet-level series (summed over instances) have no instance label: Fires("").
    labels = {"job": JOB, **({"instance": fires.instance} if fires.instance else {}),
              **dict(fires.labels)}
    return {
        "exp_labels": {**labels, "severity": alert.severity, **alert.labels},
        "exp_annotations": {
            k: expand(v, labels, fires.value) for k, v in alert.annotations().items()
        },
    }


def _group(case: Case) -> dict[str, object]:
    alert = _alert(case.alert)
    return {
        "name": f"{case.alert}: {case.title}" if case.title else case.alert,
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
                    {"labels": _sample(record, inst), "value": value}
                    for inst, value in samples.items()
                ],
            }
            for record, at, samples in case.exprs
        ],
    }


def _sample(record: str, instance: str) -> str:
    """A recorded series' labels as promtool prints them; "" for a fleet-level SLO series."""
    if not instance:
        name, _, rest = record.partition("{")
        return f'{name}{{job="{JOB}", {rest}' if rest else f'{name}{{job="{JOB}"}}'
    return s(record, instance)


def document(cases: tuple[Case, ...] = CASES) -> dict[str, object]:
    """The promtool test file as data, for `cases`."""
    return {
        "rule_files": ["../" + RULES_FILE.removeprefix("alerts/")],
        "evaluation_interval": "1m",
        # Recorded series first, as the alerts read them (Prometheus itself lags by <= 1 interval).
        "group_eval_order": group_names(),
        "tests": [_group(c) for c in cases],
    }


def render() -> str:
    """The promtool test file's text."""
    head = "# Generated by `make dashboards` from dashboards/rule_tests.py: edit that, not this.\n"
    return head + dump(document()) + "\n"
