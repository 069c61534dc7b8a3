"""The "Avatar calls" dashboard: is the avatar joining, staying and speaking in calls?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder

from dashboards import config, slo
from dashboards import guide as g
from dashboards import promql as p
from dashboards.base import dashboard
from dashboards.config import THRESHOLDS as T
from dashboards.panels import Q, distribution, row, series, single, thresholds, warn_at
from monitor.limits import IDLE_TIMEOUT, SESSION_TIMEOUT

UID = "avatar-calls"


def _rec(r: p.Recording, by: str) -> str:
    return f"sum by ({by}) ({p.sel(r.record)})"


def _quantiles(metric: str, by: str = "") -> list[Q]:
    """p50 and p95 of a histogram, per `by` label if given."""
    b = f"rate({p.sel(metric + '_bucket')}[{p.RATE}])"
    group = f"le, {by}" if by else "le"
    legend = f" {{{{{by}}}}}" if by else ""
    return [
        Q(f"histogram_quantile({q}, sum by ({group}) ({b}))", f"p{round(q * 100)}{legend}")
        for q in (0.5, 0.95)
    ]


def _slo_panels() -> list[builder.Builder]:
    """Per SLO: the error budget left over the period, and its burn rate over each window."""
    out: list[builder.Builder] = []
    page = max(a.factor for a in config.BURN_ALERTS)
    for objective in config.SLOS:
        symptoms = list(slo.SYMPTOMS[objective.name])
        left = p.sel(slo.BUDGET_LEFT, fleet=True, slo=objective.name)
        out.append(single(
            f"{objective.title}: budget left",
            symptoms,
            f"Share of the {config.SLO_PERIOD} error budget of SLO {objective.name} not yet "
            f"spent (objective {objective.objective:.2%}; good: {objective.good}). Summed over "
            "the sidecars of a job; below 0 the objective is missed.",
            "percentunit",
            Q(f"min({left})", "{{job}}"),
            colors=thresholds((None, "red"), (0, "orange"), (0.25, "green")),
        ))
        windows = [a.long for a in config.BURN_ALERTS] + [config.BURN_ALERTS[0].short]
        out.append(series(
            f"{objective.title}: burn rate",
            symptoms,
            "How many times faster than the objective allows the error budget burns, per "
            f"window. Pages: {slo.pairs_in_words('page')}; ticket: "
            f"{slo.pairs_in_words('ticket')}. The dashed line is the fastest page factor.",
            "x",
            [Q(f"max({p.sel(slo.ERROR_RATIO + w, fleet=True, slo=objective.name)}) / "
               f"{objective.budget:.6g}", w) for w in sorted(windows, key=slo.seconds)],
            threshold=page,
            width=18,
        ))
    return out


def build() -> db.Dashboard:
    """Calls from start to departure, in the order the guide's sections follow a call."""
    inc = f"[{p.RATE}]"
    board = (
        dashboard(
            "Avatar calls",
            UID,
            "Video-avatar calls in LiveKit rooms, as avatar-monitor sees them from webhooks: "
            "ringing until the avatar joins, active until it leaves, and why it left.",
        )
        .with_row(row("Calls now"))
        .with_panel(
            series(
                "Calls started",
                [g.NEVER_CONNECTS, g.EMPTY_ROOM],
                "Calls per minute that a user started (first user in a room). The baseline "
                "the failure and abandon panels below are read against.",
                "cpm",
                [Q(f"sum(rate({p.sel('avatar_calls_started_total')}{inc})) * 60", "started")],
            )
        )
        .with_panel(
            single(
                "Ringing now",
                [g.EMPTY_ROOM, g.NEVER_CONNECTS],
                "Calls waiting for the avatar to join: the user sees the ringing state "
                "(or a black screen if the UI does not wait for ParticipantConnected).",
                "short",
                Q(f"sum({p.sel('avatar_calls_in_progress', state='ringing')})", "ringing"),
            )
        )
        .with_panel(
            single(
                "Active now",
                [g.DISAPPEARS],
                "Calls in which the avatar is in the room. A sudden drop with no matching "
                "drop in users means avatars are leaving.",
                "short",
                Q(f"sum({p.sel('avatar_calls_in_progress', state='active')})", "active"),
            )
        )
        .with_panel(
            series(
                "Calls in progress by state",
                [g.EMPTY_ROOM, g.DISAPPEARS],
                "Ringing and active calls over time. Ringing that grows while active does "
                "not means avatars are not joining.",
                "short",
                [Q(f"sum by (state) ({p.sel('avatar_calls_in_progress')})", "{{state}}")],
                width=24,
            )
        )
    )
    board = board.with_row(row(f"Service-level objectives ({config.SLO_PERIOD})"))
    for panel in _slo_panels():
        board = board.with_panel(panel)
    return (
        board
        .with_row(row("Avatar joining"))
        .with_panel(
            series(
                "Join latency p50 / p95 / p99",
                [g.EMPTY_ROOM, g.DELAYED],
                "Time from call start to the avatar joining the room (ParticipantConnected), "
                f"over {T.join_latency_window}. The dashed line is the p95 alert threshold; "
                "exemplars are on the heatmap beside it.",
                "s",
                [
                    Q(_rec(p.JOIN_P50, "job, instance"), "p50 {{instance}}"),
                    Q(_rec(p.JOIN_P95, "job, instance"), "p95 {{instance}}"),
                    Q(_rec(p.JOIN_P99, "job, instance"), "p99 {{instance}}"),
                ],
                threshold=T.join_latency_p95_seconds,
            )
        )
        .with_panel(
            distribution(
                "Join latency distribution",
                [g.EMPTY_ROOM, g.DELAYED],
                "Every avatar join by latency bucket; exemplars link a slow join to its room.",
                f"sum by (le) (increase({p.sel('avatar_join_latency_seconds_bucket')}{inc}))",
            )
        )
        .with_panel(
            series(
                "Ready latency p50 / p95 (bot_ready)",
                [g.EMPTY_ROOM, g.DELAYED],
                "Time from call start to the avatar saying bot_ready: it joined and its video is "
                "visible to the user (LemonSlice's avatars say so; the room observer reads it). "
                "Beside the join p95: the gap is how long the user sees the avatar joined but "
                "no video.",
                "s",
                [
                    *_quantiles("avatar_ready_latency_seconds"),
                    Q("histogram_quantile(0.95, sum by (le) "
                      f"(rate({p.sel('avatar_join_latency_seconds_bucket')}[{p.RATE}])))",
                      "join p95"),
                ],
            )
        )
        .with_panel(
            series(
                "Startup failures by cause",
                [g.NEVER_CONNECTS, g.FAILS_TO_JOIN],
                f"Calls whose avatar never joined, per {T.startup_failures_window}: "
                "join_timeout (no avatar within the join timeout) or message (the agent "
                "published a startup_failure room message). They page through the "
                "call_startup SLO's burn rate (row above), not one by one.",
                "short",
                [Q(_rec(p.STARTUP_FAILURES, "cause"), "{{cause}}")],
                bars=True,
                width=12,
            )
        )
        .with_panel(
            series(
                "Abandoned calls",
                [g.NEVER_CONNECTS, g.EMPTY_ROOM],
                "Calls the user left while still ringing, before the avatar joined.",
                "short",
                [
                    Q(
                        f"sum(increase({p.sel('avatar_calls_abandoned_total')}{inc}))",
                        "abandoned",
                    )
                ],
                bars=True,
                width=12,
            )
        )
        .with_row(row("During the call"))
        .with_panel(
            series(
                "Time to first track",
                [g.NO_MEDIA, g.DELAYED],
                "Time from the avatar joining to its first published audio and video track "
                "(p50, p95). Slow or missing video with audio flowing is the guide's "
                "no-video symptom.",
                "s",
                _quantiles("avatar_time_to_first_track_seconds", "kind"),
            )
        )
        .with_panel(
            distribution(
                "Session duration",
                [g.SAME_MINUTES, g.SUDDEN_EXIT],
                "Avatar time in the room (joined to left). A bright band at one duration "
                "means calls end after the same number of minutes: a timeout.",
                f"sum by (le) (increase({p.sel('avatar_session_duration_seconds_bucket')}{inc}))",
            )
        )
        .with_panel(
            series(
                "Departures by cause",
                [g.DISAPPEARS, g.SUDDEN_EXIT, g.SAME_MINUTES],
                f"Why avatars left calls, per {T.departures_window}: user_hangup and "
                "agent_hangup (the voice agent ended the call) are normal; user_network (the "
                "user's connection dropped) is the user's side; replaced ends one avatar session, "
                "not the call (a hot swap, or the avatar rejoining); pipeline_error, agent_lost "
                "(the voice agent crashed), idle_timeout, session_timeout, removed, server and "
                "network are not.",
                "short",
                [Q(_rec(p.DEPARTURES, "cause"), "{{cause}}")],
                bars=True,
                width=8,
            )
        )
        .with_panel(
            series(
                "Avatars alone (billed, no user)",
                [g.STALE_CALLS],
                "Avatars in a room with no user right now, and the longest such stay in "
                "seconds (the AvatarUnattended alert's threshold is the dashed line). An avatar "
                "session is billed GPU time whether or not anyone watches.",
                "short",
                [
                    Q(f"sum({p.sel('avatar_unattended_now')})", "avatars alone"),
                    Q(f"max({p.sel('avatar_unattended_longest_seconds')})", "longest (s)"),
                ],
                threshold=T.unattended_seconds,
                width=8,
            )
        )
        .with_panel(
            series(
                "Disconnect reasons by role",
                [g.CRASHED, g.FAILS_TO_JOIN],
                "LiveKit DisconnectReason of each participant that left, by role. "
                "client_initiated is a clean leave; anything else is a room error.",
                "short",
                [
                    Q(
                        f"sum by (role, reason) (increase({p.sel('avatar_disconnects_total')}"
                        f"{inc}))",
                        "{{role}}: {{reason}}",
                    )
                ],
                bars=True,
                width=8,
            )
        )
        .with_panel(
            series(
                "Timeouts by kind",
                [g.SUDDEN_EXIT, g.SAME_MINUTES, g.NEVER_CONNECTS],
                f"Timeouts per {T.departures_window}: join (avatar never joined), idle "
                f"(LemonSlice idle_timeout, default {IDLE_TIMEOUT:g} s), session (session/GPU "
                f"limit, default {SESSION_TIMEOUT / 60:g} min).",
                "short",
                [Q(_rec(p.TIMEOUTS, "timeout"), "{{timeout}}")],
                bars=True,
                width=8,
            )
        )
        .with_panel(
            series(
                "Repeated session length",
                [g.SAME_MINUTES, g.SUDDEN_EXIT],
                "Session length at which several avatars left in the last hour (not by a "
                "hang-up nor the configured session timeout), per sidecar, and how many calls "
                "ended there; 0 when no length repeats. A line above 0 is a limit nobody "
                "configured: compare it with the avatar's, the TTS and LLM providers' and the "
                "tokens' limits; /v1/calls?verdict=repeated_length lists the calls.",
                "s",
                [Q(f"max by (instance) ({p.sel('avatar_repeated_session_length_seconds')})",
                   "length {{instance}}")],
                width=12,
            )
        )
        .with_panel(
            single(
                "Calls at the repeated length",
                [g.SAME_MINUTES],
                "Calls of the last hour that ended at the repeated session length (most of any "
                "sidecar); the alert fires above 0.",
                "short",
                Q(f"max({p.sel('avatar_repeated_session_length_calls')})", "calls"),
                colors=warn_at(T.repeated_length_calls),
                width=12,
            )
        )
        .with_panel(
            series(
                "Media interruptions",
                [g.CRASHED, g.NO_MEDIA],
                f"Times per {T.media_interruptions_window} the avatar's audio or video was "
                "unpublished or muted mid-call for longer than --interruption-grace (mutes only "
                "with the room observer): the user hears or sees the avatar cut out.",
                "short",
                [Q(_rec(p.MEDIA_INTERRUPTIONS, "kind"), "{{kind}}")],
                bars=True,
                width=12,
            )
        )
        .with_panel(
            series(
                "Media interruption length",
                [g.CRASHED, g.NO_MEDIA],
                "How long the avatar's audio or video stayed off (p50, p95): until it came "
                "back, or the avatar left or the call ended.",
                "s",
                _quantiles("avatar_media_interruption_seconds", "kind"),
                width=12,
            )
        )
        .with_row(row("Agent pipeline (room observer, voice agent reports)"))
        .with_panel(
            series(
                "Time to first speech",
                [g.DELAYED, g.NO_SPEECH],
                "Time from the avatar joining to it first being an active speaker (p50, p95), "
                "seen by the room observer. High when the agent does not call "
                "generate_reply() as the avatar joins.",
                "s",
                _quantiles("avatar_time_to_first_speech_seconds"),
            )
        )
        .with_panel(
            series(
                "Pipeline errors by component",
                [g.NO_SPEECH, g.SESSION_DIES],
                f"STT, LLM, TTS and realtime errors the agent reported, and the avatar's own "
                f"(component avatar: error, video_generation_error), per "
                f"{T.pipeline_errors_window}. recoverable=false means the pipeline is dead "
                "and pages.",
                "short",
                [
                    Q(
                        _rec(p.PIPELINE_ERRORS, "component, recoverable"),
                        "{{component}} recoverable={{recoverable}}",
                    )
                ],
                bars=True,
            )
        )
        .with_panel(
            series(
                "Agent latency by stage (p95)",
                [g.DELAYED],
                "Per-turn latency the voice agent reported (avatar_monitor_agent): LLM time to "
                "first token, TTS time to first byte, end-of-turn delay and end to end (user "
                "stopped speaking to agent speaking). A slow stage makes the avatar slow to "
                "speak.",
                "s",
                [
                    Q(
                        "histogram_quantile(0.95, sum by (le, stage) "
                        f"(rate({p.sel('avatar_agent_latency_seconds_bucket')}[{p.RATE}])))",
                        "p95 {{stage}}",
                    )
                ],
            )
        )
        .with_panel(
            series(
                "Avatar playback latency and join time (p95)",
                [g.DELAYED],
                "livekit-agents' playback latency per reply (first audio frame sent to the "
                "avatar to its playback start) and the avatar's join time (AvatarSession start "
                "to its video), as the voice agent reported them (avatar_monitor_agent). The "
                "dashed line is the playback alert threshold.",
                "s",
                [
                    Q(
                        "histogram_quantile(0.95, sum by (le, instance) (rate("
                        f"{p.sel('avatar_agent_latency_seconds_bucket', stage=stage)}"
                        f"[{p.RATE}])))",
                        f"{name} p95 {{{{instance}}}}",
                    )
                    for stage, name in (("avatar_playback", "playback"), ("avatar_join", "join"))
                ],
                threshold=T.playback_latency_p95_seconds,
            )
        )
        .with_panel(
            series(
                "Agent sessions closed by reason",
                [g.SESSION_DIES],
                f"AgentSession closes the voice agent reported, per {p.RATE}, by livekit-agents "
                "CloseReason. reason=error is a pipeline that died.",
                "short",
                [
                    Q(
                        f"sum by (reason) (increase({p.sel('avatar_pipeline_closed_total')}"
                        f"[{p.RATE}]))",
                        "{{reason}}",
                    )
                ],
                bars=True,
            )
        )
    )
