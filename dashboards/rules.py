"""Prometheus recording and alerting rules for avatar-monitor."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dashboards import config, slo
from dashboards import guide as g
from dashboards import promql as p
from dashboards.config import FOR
from dashboards.config import THRESHOLDS as T
from dashboards.guide import Symptom
from dashboards.yamlout import dump

GROUP_PREFIX = "avatar-monitor."
RECORDING_GROUP = GROUP_PREFIX + "recording"
ALERT_GROUP = GROUP_PREFIX + "alerts"
RULES_FILE = "alerts/avatar-monitor.rules.yml"

_UP = p.m("up")
_COUNT = '{{ $value | printf "%.0f" }}'


def _unrecoverable() -> str:
    """Unrecoverable pipeline errors in the window, by component, over the fleet."""
    return (f"sum by ({p.FLEET}, component) (increase("
            f"{p.m('avatar_pipeline_errors_total', recoverable='false')}"
            f"[{T.unrecoverable_window}]))")


@dataclass(frozen=True)
class Alert:
    """An alerting rule; annotations cite the guide and link the runbook section."""

    name: str
    expr: str
    for_: str
    severity: str
    symptoms: tuple[Symptom, ...]
    summary: str
    details: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        """The runbook heading is the alert name; this is its Markdown anchor."""
        return self.name.lower()

    def annotations(self, runbook_base: str = config.RUNBOOK_BASE_URL) -> dict[str, str]:
        """summary, description and runbook_url, as Prometheus templates."""
        return {
            "summary": self.summary,
            "description": f"{g.answers(*self.symptoms)} {self.details}",
            "runbook_url": f"{runbook_base}#{self.anchor}",
        }

    def rule(self, runbook_base: str, for_override: str | None) -> dict[str, object]:
        """The rule as it appears in the rule file."""
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": for_override or self.for_,
            "labels": {"severity": self.severity, **self.labels},
            "annotations": self.annotations(runbook_base),
        }


def _burn_alert(objective: config.SLO, severity: str) -> Alert:
    """The page (or ticket) of one SLO: its error budget burns too fast over both windows."""
    suffix = "BudgetBurn" if severity == "page" else "BudgetTicket"
    period = slo.seconds(config.SLO_PERIOD)
    gone = " or ".join(
        f"{(period / a.factor) / 86400:.3g} days" for a in config.BURN_ALERTS
        if a.severity == severity)
    return Alert(
        objective.alert + suffix,
        slo.burn_expr(objective, severity),
        FOR.budget_burn if severity == "page" else FOR.budget_ticket,
        severity,
        slo.SYMPTOMS[objective.name],
        f"{objective.title}: error budget burning " '{{ $value | printf "%.1f" }}x',
        f"SLO {objective.name}: {objective.objective:.2%} of events good over "
        f"{config.SLO_PERIOD} (good: {objective.good}). The error budget burns faster than "
        f"{slo.pairs_in_words(severity)}: at that pace the {config.SLO_PERIOD} budget lasts "
        f"{gone}. The value is the burn rate over the longer window.",
    )


def _max_of(*vectors: str) -> str:
    """Largest of counters that count the same events, each summed over the sidecars."""
    summed = [f'label_replace(sum by ({p.FLEET}) ({v}), "counter", "{i}", "", "")'
              for i, v in enumerate(vectors)]
    return f"max by ({p.FLEET}) (\n  " + "\n  or\n  ".join(summed) + "\n)"


ALERTS: tuple[Alert, ...] = (
    *(_burn_alert(objective, severity) for objective in config.SLOS
      for severity in ("page", "ticket")),
    Alert(
        "AvatarJoinLatencyHigh",
        f"{p.JOIN_P95_FLEET.record} > {T.join_latency_p95_seconds:g}",
        FOR.join_latency_high,
        "warning",
        (g.EMPTY_ROOM, g.DELAYED),
        f"Avatars take {_COUNT}s (p95) to join calls on {{{{ $labels.job }}}}",
        f"The 95th percentile of call start to avatar joined over {T.join_latency_window}, "
        "over every sidecar's calls, is "
        f"above {T.join_latency_p95_seconds:g}s: users stay on the ringing screen (or see an "
        "empty room) that long.",
    ),
    Alert(
        "AvatarPlaybackLatencyHigh",
        f"{p.PLAYBACK_P95.record} > {T.playback_latency_p95_seconds:g}",
        FOR.playback_latency_high,
        "warning",
        (g.DELAYED,),
        '{{ $labels.job }}: avatars start speaking {{ $value | printf "%.1f" }}s (p95) after '
        "the agent's audio reaches them",
        f"The 95th percentile of livekit-agents' playback latency (first audio frame sent to the "
        f"avatar to its playback start) over {T.playback_latency_window}, over every sidecar's "
        f"calls, is above {T.playback_latency_p95_seconds:g}s: replies start that late.",
    ),
    Alert(
        "AvatarPipelineErrorsUnrecoverable",
        f"(\n  {_unrecoverable()}\n  / on ({p.FLEET}) group_left\n"
        f"  sum by ({p.FLEET}) (increase({p.m('avatar_calls_started_total')}"
        f"[{T.unrecoverable_window}]))\n) > {T.unrecoverable_ratio:g}\n"
        f"and\n{_unrecoverable()} >= {T.unrecoverable_min}",
        FOR.pipeline_errors,
        "page",
        (g.NO_SPEECH, g.SESSION_DIES),
        "Unrecoverable {{ $labels.component }} pipeline errors on {{ $labels.job }}",
        f"More than {T.unrecoverable_ratio:.0%} of the calls started in the last "
        f"{T.unrecoverable_window} (over every sidecar), and at least {T.unrecoverable_min}, "
        "had an error with recoverable=false from {{ $labels.component }}: the agent pipeline "
        "of those sessions is dead.",
    ),
    Alert(
        "AvatarSessionTimeoutBurst",
        _max_of(
            f'{p.DEPARTURES.record}{{cause="session_timeout"}}',
            f'{p.TIMEOUTS.record}{{timeout="session"}}',
        )
        + f" >= {T.session_timeout_burst}",
        FOR.session_timeout_burst,
        "warning",
        (g.SAME_MINUTES, g.SUDDEN_EXIT),
        f"{_COUNT} avatar sessions hit a session timeout on {{{{ $labels.job }}}}",
        f"At least {T.session_timeout_burst} avatars (over every sidecar) left on a session "
        f"timeout in the last {T.departures_window}: calls end after the same number of "
        "minutes.",
    ),
    Alert(
        "AvatarRepeatedSessionLength",
        f"max by ({p.PER_INSTANCE}) ({p.m('avatar_repeated_session_length_calls')}) "
        f">= {T.repeated_length_calls}",
        FOR.repeated_length,
        "warning",
        (g.SAME_MINUTES, g.SUDDEN_EXIT),
        f"{_COUNT} avatar sessions ended at the same length on {{{{ $labels.instance }}}}",
        f"{_COUNT} avatars left in the last hour within seconds of the same session length "
        "(avatar_repeated_session_length_seconds), not by a hang-up nor on the configured "
        "--session-timeout, far more than natural call lengths would: a limit nobody "
        "configured (the avatar's own session timeout, a TTS or LLM provider's stream limit, "
        "a token's TTL). The calls: /v1/calls?verdict=repeated_length.",
    ),
    Alert(
        "AvatarIdleTimeoutSpike",
        _max_of(
            f'{p.TIMEOUTS.record}{{timeout="idle"}}',
            f'{p.DEPARTURES.record}{{cause="idle_timeout"}}',
        )
        + f" >= {T.idle_timeout_spike}",
        FOR.idle_timeout_spike,
        "warning",
        (g.SUDDEN_EXIT, g.NO_SPEECH),
        f"{_COUNT} avatars left on the idle timeout on {{{{ $labels.job }}}}",
        f"At least {T.idle_timeout_spike} sessions (over every sidecar) ended on the "
        "LemonSlice idle timeout in "
        f"the last {T.departures_window}: the avatar was silent for the whole idle_timeout.",
    ),
    Alert(
        "AvatarUnattended",
        f"max by ({p.PER_INSTANCE}) ({p.m('avatar_unattended_longest_seconds')}) "
        f"> {T.unattended_seconds:g}",
        FOR.unattended,
        "warning",
        (g.STALE_CALLS,),
        f"An avatar has been alone in a room for {_COUNT} s on "
        "{{ $labels.instance }}",
        f"An avatar session has had no user in its room for over {T.unattended_seconds:g} s: "
        "billed GPU time nobody sees (a call whose user left while the avatar stayed, or an "
        "avatar started before any user came).",
    ),
    Alert(
        "AvatarWebhooksUnauthorized",
        f'{p.REJECTIONS.record}{{reason="unauthorized"}} > {T.unauthorized_webhooks}',
        FOR.webhooks_unauthorized,
        "warning",
        (g.NEVER_CONNECTS, g.FAILS_TO_JOIN),
        "avatar-monitor rejects webhooks with a bad signature on {{ $labels.instance }}",
        f"{_COUNT} webhook(s) in the last {T.rejections_window} failed signature checks: "
        "forged or unsigned traffic, or LiveKit signs with a key the sidecar does not have "
        "(then every call goes unseen).",
    ),
    Alert(
        "AvatarAgentReportsRefused",
        f"sum by ({p.PER_INSTANCE}) (increase("
        f"{p.m('avatar_monitor_reported_events_rejected_total')[:-1]}, "
        f'reason=~"unauthorized|forbidden|foreign_room"}}[{T.rejections_window}])) > 0',
        FOR.reports_refused,
        "warning",
        (g.NO_SPEECH, g.SESSION_DIES),
        "avatar-monitor refuses the voice agent's reports on {{ $labels.instance }}",
        f"{_COUNT} POST /v1/events request(s) in the last {T.rejections_window} had no valid "
        "agent token for their room: pipeline errors and startup failures the agent "
        "sends over HTTP go uncounted.",
    ),
    Alert(
        "AvatarForgedDataMessages",
        f"sum by ({p.PER_INSTANCE}) (increase("
        f"{p.m('avatar_monitor_data_messages_refused_total', reason='forbidden')}"
        f"[{T.rejections_window}])) > 0",
        FOR.forged_data_messages,
        "warning",
        (g.NEVER_CONNECTS, g.NO_SPEECH),
        "Participants who are not an agent send call reports on {{ $labels.instance }}",
        f"{_COUNT} data message(s) or session stream(s) in the last {T.rejections_window} "
        "came on a report topic from a participant that is not an agent of the room: refused "
        "and not counted. A user or a server SDK tries to forge startup failures or pipeline "
        "errors.",
    ),
    Alert(
        "AvatarMediaInterruptions",
        f"sum by ({p.FLEET}, kind) ({p.MEDIA_INTERRUPTIONS.record})\n"
        f"  / on ({p.FLEET}) group_left ()\n"
        f"  sum by ({p.FLEET}) (increase({p.m('avatar_join_latency_seconds_count')}"
        f"[{T.media_interruptions_window}]))\n"
        f"  > {T.media_interruptions_ratio:g}\n"
        f"and on ({p.FLEET}, kind)\n"
        f"  sum by ({p.FLEET}, kind) ({p.MEDIA_INTERRUPTIONS.record}) "
        f">= {T.media_interruptions_min}",
        FOR.media_interruptions,
        "warning",
        (g.CRASHED, g.NO_MEDIA),
        "{{ $value | humanizePercentage }} of avatar sessions lose their {{ $labels.kind }} "
        "mid-call on {{ $labels.job }}",
        f"Over every sidecar, the avatar's {{{{ $labels.kind }}}} was unpublished or muted for "
        f"longer than --interruption-grace, in an active call, as many times in the last "
        f"{T.media_interruptions_window} as {{{{ $value | humanizePercentage }}}} of the avatar "
        f"sessions that began in it (at least {T.media_interruptions_min}): users hear or see "
        "the avatar cut out. The calls: /v1/calls?verdict=media_stopped and "
        "?verdict=media_interrupted.",
    ),
    Alert(
        "AvatarMonitorDown",
        f"{_UP} == 0\nor\nabsent({_UP})",
        FOR.sidecar_down,
        "page",
        (g.NEVER_CONNECTS, g.FAILS_TO_JOIN, g.DISAPPEARS),
        "avatar-monitor {{ $labels.instance }} is down or gone",
        "Prometheus cannot scrape the sidecar, or has no target for it at all (the "
        "deployment, its Service or its ServiceMonitor is gone): no call is observed and no "
        "other avatar alert can fire.",
    ),
    Alert(
        "AvatarMonitorNoWebhooks",
        f"{_UP} == 1\nunless on ({p.PER_INSTANCE})\n"
        f"  sum by ({p.PER_INSTANCE}) "
        f"(increase({p.m('avatar_monitor_webhooks_total')}[{T.no_webhooks_window}])) > 0",
        FOR.no_webhooks,
        "warning",
        (g.NEVER_CONNECTS, g.FAILS_TO_JOIN, g.DISAPPEARS),
        "avatar-monitor {{ $labels.instance }} received no webhooks",
        f"The sidecar is up but has accepted no LiveKit webhook in any {T.no_webhooks_window} "
        f"window for {FOR.no_webhooks}: either there are no calls, or LiveKit does not "
        "deliver webhooks to it.",
    ),
)


def groups(
    runbook_base: str = config.RUNBOOK_BASE_URL, for_override: str | None = None
) -> dict[str, object]:
    """The rule file as data; `for_override` replaces every `for:` (test copies)."""
    recording: dict[str, list[dict[str, object]]] = {}
    for r in slo.ALL_RECORDINGS:
        rule: dict[str, object] = {"record": r.record, "expr": r.expr}
        if r.labels:
            rule["labels"] = dict(r.labels)
        recording.setdefault(GROUP_PREFIX + r.group, []).append(rule)
    return {
        "groups": [
            *({"name": name, "rules": rules} for name, rules in recording.items()),
            {
                "name": ALERT_GROUP,
                "rules": [a.rule(runbook_base, for_override) for a in ALERTS],
            },
        ]
    }


def group_names() -> list[str]:
    """Every rule group, in the order the rule file lists them (recordings first)."""
    return [str(group["name"]) for group in groups()["groups"]]  # type: ignore[index]


def render(runbook_base: str = config.RUNBOOK_BASE_URL, for_override: str | None = None) -> str:
    """The rule file's text."""
    head = "# Generated by `make dashboards` from dashboards/rules.py: edit that, not this.\n"
    return head + dump(groups(runbook_base, for_override)) + "\n"


_TEMPLATE = re.compile(r"\{\{ (.+?) \}\}")


def expand(template: str, labels: dict[str, str], value: float) -> str:
    """Expand the template subset the annotations use, as Prometheus does."""

    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        if body.startswith("$labels."):
            return labels.get(body.removeprefix("$labels."), "")
        if body == "$value | humanizePercentage":
            return f"{value * 100:.4g}%"
        fmt = re.fullmatch(r'\$value \| printf "(%\.\df)"', body)
        if fmt:
            return fmt.group(1) % value
        raise ValueError(f"template not supported by expand(): {body}")

    return _TEMPLATE.sub(one, template)
