"""Verdicts: the troubleshooting guide walked for one call.

`RULES` is the whole table. Each rule reads a call's record and, when it applies, returns the
evidence in words; the rule names the guide's section and its next step. A call's verdict lists
every finding, worst first; the first one names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.calls.departures import CONNECTION_TIMEOUT_DELAY
from monitor.diagnosis.sections import CONNECT, PIPELINE, ROOM_ERRORS, STARTUP, TIMEOUTS
from monitor.limits import IDLE_TIMEOUT, JOIN_TIMEOUT, SESSION_TIMEOUT, UNATTENDED_AFTER
from monitor.sinks.records import CallRecord, ParticipantRecord, utc_clock

# The verdict's own types, importable from here too.
from monitor.verdict import STATUSES as STATUSES
from monitor.verdict import Finding as Finding
from monitor.verdict import Verdict as Verdict

FAILED, WARNING = "failed", "warning"


@dataclass(slots=True, frozen=True)
class Thresholds:
    join_timeout: float = JOIN_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    session_timeout: float = SESSION_TIMEOUT
    late_join: float = 10.0  # an avatar joining later than this is slow
    media_grace: float = 10.0  # a joined avatar with no video (audio) this long is a black screen
    # An avatar that announces readiness and has not said bot_ready this long after joining
    # shows the user no video: a black screen.
    ready_grace: float = 10.0
    slow_speech: float = 5.0  # first speech later than this after joining is slow
    unattended: float = UNATTENDED_AFTER  # an avatar alone (no user) this long is billed waste
    # Room sid -> (the repeated session length it ended at, calls that share it), from
    # monitor.sinks.session_lengths: other calls are what this call is compared with.
    repeated_length: Callable[[str], tuple[float, int] | None] = field(
        default=lambda sid: None, compare=False)


Evidence = Callable[[CallRecord, Thresholds, float], str | None]


@dataclass(slots=True, frozen=True)
class Rule:
    name: str
    severity: str  # failed or warning
    section: str
    evidence: Evidence
    next_step: str


def _startup_message(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.startup_message is None:
        return None
    return f'the backend reported startup_failure: "{r.startup_message}"'


def _never_joined(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.startup_failure != "join_timeout":
        return None
    text = f"avatar never joined within {t.join_timeout:g} s"
    if r.join_latency is not None:
        text += f" (it joined after {r.join_latency:.1f} s)"
    return text


def _pipeline_error(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.unrecoverable is None:
        if r.departure == "pipeline_error" and r.avatar_reason == "agent_error":
            return "avatar left with AGENT_ERROR: its own job failed"
        return None
    component, at = r.unrecoverable
    text = f"unrecoverable {component.upper()} error"
    if r.unrecoverable_message:
        text += f" ({r.unrecoverable_message})"
    left = _avatar_left_at(r)
    if left is not None:
        return f"{text} {max(left - at, 0):.1f} s before the avatar left"
    return f"{text} {max(now - at, 0):.0f} s ago; the avatar has not left"


def _idle_timeout(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.departure != "idle_timeout":
        return None
    if r.idle_timeout_said_at is not None:  # its own word (topic lemonslice)
        left = _avatar_left_at(r)
        later = "" if left is None else \
            f", then left {max(left - r.idle_timeout_said_at, 0):.1f} s later"
        return f"the avatar said idle_timeout{later}"
    silence = f"{r.silence_seconds:.0f}" if r.silence_seconds is not None else "about"
    return f"avatar left after {silence} s of silence (idle timeout {t.idle_timeout:g} s)"


def _session_timeout(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.departure != "session_timeout":
        return None
    return (f"avatar session ended after {_minutes(r.session_seconds or 0)} "
            f"(session/GPU limit {_minutes(t.session_timeout)})")


def _repeated_length(r: CallRecord, t: Thresholds, now: float) -> str | None:
    repeat = t.repeated_length(r.sid)
    if repeat is None or r.session_seconds is None:
        return None
    length, calls = repeat
    return (f"avatar left after {_clock(r.session_seconds)} of session, like {calls - 1} other "
            f"call(s) in the last hour (at {_clock(length)}): a fixed limit somewhere")


def _network(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.departure != "network":
        return None
    text = f"avatar left with {(r.avatar_reason or 'unknown_reason').upper()}"
    user, left = _last_leave(r, "user"), _avatar_left_at(r)
    if (r.avatar_reason == "connection_timeout" and user is not None
            and user.left_at is not None and left is not None
            and 0 <= left - user.left_at < CONNECTION_TIMEOUT_DELAY):
        text += (f" {left - user.left_at:.0f} s after the user left: it had died before the "
                 "user hung up")
    return text


def _agent_lost(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.departure != "agent_lost":
        return None
    agent = _last_leave(r, "agent")
    if agent is None or agent.left_at is None:
        return "the avatar followed its voice agent, which failed"
    reason = agent.reason or "unknown_reason"
    text = f"the voice agent left with {reason.upper()} at {utc_clock(agent.left_at)}"
    if reason == "connection_timeout":
        text += (f" (its process or network died about {CONNECTION_TIMEOUT_DELAY:g} s "
                 "before)")
    left = _avatar_left_at(r)
    if left is not None:
        text += f"; the avatar left {max(left - agent.left_at, 0):.0f} s later"
    return text


def _user_network(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.departure != "user_network":
        return None
    user = _last_leave(r, "user")
    reason = (user.reason if user is not None and user.reason else "a network reason").upper()
    return f"the user's connection was lost ({reason}): the call ended on the user's side"


def _removed(r: CallRecord, t: Thresholds, now: float) -> str | None:
    return "avatar was removed from the room (PARTICIPANT_REMOVED)" \
        if r.departure == "removed" else None


def _server(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.departure != "server":
        return None
    return f"the server ended the avatar's stay ({(r.avatar_reason or 'room gone').upper()})"


def _no_media(kind: str) -> Evidence:
    def evidence(r: CallRecord, t: Thresholds, now: float) -> str | None:
        if r.avatar_joined_at is None or kind in r.first_tracks:
            return None
        end = _avatar_left_at(r) or now
        waited = end - r.avatar_joined_at
        if waited < t.media_grace:
            return None
        return f"avatar joined but published no {kind} for {waited:.0f} s"

    return evidence


# The observer must have been in the room this soon after the avatar joined to have heard its
# bot_ready (a join time is exact to the millisecond, the observer's clock to NTP's).
READY_HEARD_SLACK = 1.0


def _never_ready(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if not r.expects_ready or r.ready_at is not None or r.avatar_joined_at is None:
        return None
    if r.observed_at is None or r.observed_at > r.avatar_joined_at + READY_HEARD_SLACK:
        return None  # no observer in the room when the avatar joined: it may have been missed
    end = _avatar_left_at(r) or r.ended_at or now
    waited = end - r.avatar_joined_at
    if waited < t.ready_grace:
        return None
    return f"avatar joined but never said bot_ready in {waited:.0f} s"


def _unknown_departure(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.departure != "unknown":
        return None
    return f"avatar left ({(r.avatar_reason or 'unknown_reason').upper()}) while the user stayed"


def _abandoned(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.abandoned_after is None:
        return None
    return f"the user left after {r.abandoned_after:.1f} s of ringing, before the avatar joined"


def _late_join(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.join_latency is None or r.join_latency <= t.late_join or r.startup_failure:
        return None
    return f"avatar joined {r.join_latency:.1f} s after the call started"


def _slow_speech(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.first_speech is not None:
        if r.first_speech > t.slow_speech:
            return f"avatar first spoke {r.first_speech:.1f} s after joining"
        return None
    if not r.observed or r.avatar_joined_at is None:
        return None
    waited = (_avatar_left_at(r) or now) - r.avatar_joined_at
    return f"avatar never spoke in {waited:.0f} s" if waited > t.slow_speech else None


def _unattended(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if r.alone_since is not None and now - r.alone_since >= t.unattended:
        return (f"the avatar has been alone in the room for {_minutes(now - r.alone_since)}, "
                "with no user")
    if r.unattended is None or r.unattended[1] - r.unattended[0] < t.unattended:
        return None
    since, until = r.unattended
    if until <= r.started_at + 1.0:  # webhook times have whole seconds
        return f"the avatar waited {_minutes(until - since)} alone before the first user came"
    return f"the avatar stayed {_minutes(until - since)} after the user left"


def _rejoined(r: CallRecord, t: Thresholds, now: float) -> str | None:
    rejoins = sum(p.role == "avatar" and p.reason == "duplicate_identity"
                  for p in r.participants)
    if not rejoins:
        return None
    return (f"the avatar rejoined the room {rejoins} time(s) (DUPLICATE_IDENTITY: a new "
            "connection with its identity replaced the old one)")


def _media_stopped(r: CallRecord, t: Thresholds, now: float) -> str | None:
    """Media that stopped and never came back while the avatar was there."""
    if r.media_lost is None:
        return None
    kind, how, since, seconds = r.media_lost
    return (f"the avatar's {kind} stopped ({how}) at {utc_clock(since)} and never came back: "
            f"{seconds:.0f} s until the avatar left or the call ended")


def _media_interrupted(r: CallRecord, t: Thresholds, now: float) -> str | None:
    """Media that stopped and came back, or is off now in a live call."""
    if r.media_open:
        kind, (how, since) = next(iter(r.media_open.items()))
        text = (f"the avatar's {kind} has been off ({how}) since {utc_clock(since)}, "
                f"{max(now - since, 0):.0f} s")
    elif r.media_longest is not None and r.media_lost is None:
        kind, how, since, seconds = r.media_longest
        text = f"the avatar's {kind} stopped ({how}) at {utc_clock(since)} for {seconds:.0f} s"
    else:
        return None
    if r.media_interruptions > 1:
        text += f" ({r.media_interruptions} interruptions in this call)"
    return text


def _recoverable_errors(r: CallRecord, t: Thresholds, now: float) -> str | None:
    if not r.recoverable_errors:
        return None
    return f"{r.recoverable_errors} recoverable pipeline error(s)"


RULES: tuple[Rule, ...] = (
    Rule("startup_failure_message", FAILED, STARTUP, _startup_message,
         "The avatar never became active: check the avatar service's API key, agent_id and "
         "image, and its logs for this session. The frontend should leave the call on this "
         "message."),
    Rule("avatar_never_joined", FAILED, STARTUP, _never_joined,
         "Check the avatar service's API key and agent_id, and that the agent starts the "
         "avatar session (AvatarSession.start) for this room."),
    Rule("pipeline_error", FAILED, PIPELINE, _pipeline_error,
         "The agent pipeline is dead after an unrecoverable error: check that provider (keys, "
         "quota, status page) and end the session gracefully when recoverable is false."),
    Rule("idle_timeout", FAILED, TIMEOUTS, _idle_timeout,
         "Raise idle_timeout on the avatar session (-1 disables it; then end sessions yourself) "
         "or keep the conversation going."),
    Rule("session_timeout", FAILED, TIMEOUTS, _session_timeout,
         f"The session/GPU timeout ({SESSION_TIMEOUT / 60:g} min by default) ended the call: "
         "end calls before it, or ask the avatar provider for a longer limit."),
    Rule("repeated_length", FAILED, TIMEOUTS, _repeated_length,
         "A limit nobody configured ends these sessions at the same length: the avatar's "
         "session timeout (if it is not --session-timeout), a TTS or LLM provider's stream or "
         "session limit, a LiveKit token's TTL or a room's maximum duration, a proxy's "
         "connection timeout. Compare the length with each provider's limits."),
    Rule("network", FAILED, ROOM_ERRORS, _network,
         "A network or WebRTC failure between the avatar service and LiveKit: check the avatar "
         "service's connectivity, LiveKit's TURN/ICE set-up and the server's logs."),
    Rule("agent_lost", FAILED, PIPELINE, _agent_lost,
         "The voice agent crashed or lost its network, and the avatar went with it: read the "
         "agent worker's logs and the job's exit for this room (an unhandled exception, an OOM "
         "kill, a deploy that stopped the worker without draining)."),
    Rule("removed", FAILED, ROOM_ERRORS, _removed,
         "Something called RemoveParticipant on the avatar: check the backend's room "
         "management."),
    Rule("server", FAILED, ROOM_ERRORS, _server,
         "The room was deleted or closed, or the server shut down: check DeleteRoom calls, the "
         "room's empty/departure timeouts and the server's restarts."),
    Rule("black_screen", FAILED, CONNECT, _no_media("video"),
         "The avatar joined but its video pipeline did not start (the user sees a black "
         "screen): check the avatar service's logs for this session."),
    Rule("never_ready", FAILED, CONNECT, _never_ready,
         "The avatar joined but never said its video is visible (bot_ready): the user sees a "
         "black screen. Check the avatar service's logs for this session; the frontend should "
         "stay in the ringing state until bot_ready."),
    Rule("no_audio", FAILED, CONNECT, _no_media("audio"),
         "The avatar joined but publishes no audio: check the agent's audio stream to the "
         "avatar (its TTS) and the avatar service's logs."),
    Rule("avatar_left", FAILED, CONNECT, _unknown_departure,
         "The avatar left for a reason no rule recognises: read the avatar service's logs and "
         "the disconnect reason; the frontend should leave the call when the avatar leaves."),
    Rule("abandoned", WARNING, STARTUP, _abandoned,
         "Users gave up while ringing: if this is common, the avatar joins too slowly (see the "
         "join latency)."),
    Rule("user_network", WARNING, ROOM_ERRORS, _user_network,
         "The user's network or device dropped the call (not a hang-up): if this is common, "
         "check the frontend's reconnect handling and the users' networks (TURN over TLS for "
         "restrictive networks)."),
    Rule("late_join", WARNING, CONNECT, _late_join,
         "The avatar joined late: check the avatar service's start-up time; stay in the "
         "ringing state until it joins."),
    Rule("slow_to_speak", WARNING, CONNECT, _slow_speech,
         "Call session.generate_reply() when the avatar joins, so it speaks without idle "
         "time."),
    Rule("avatar_rejoined", WARNING, ROOM_ERRORS, _rejoined,
         "The avatar's connection failed and it reconnected: check the avatar service's "
         "network path to LiveKit (ICE/TURN: a media connection that never completes makes it "
         "rejoin in a loop) and the server's logs for this participant."),
    Rule("unattended", WARNING, TIMEOUTS, _unattended,
         "An avatar session nobody sees is billed all the same: end the avatar session when "
         "the last user leaves (the agent's job should shut down on participant_disconnected), "
         "keep the avatar's idle_timeout on (-1 risks stale calls and runaway billing), and "
         "start the avatar only once a user is in the room."),
    Rule("recoverable_errors", WARNING, PIPELINE, _recoverable_errors,
         "The pipeline recovered, but check the provider named in the timeline."),
    Rule("media_stopped", FAILED, ROOM_ERRORS, _media_stopped,
         "The avatar stopped sending its audio or video mid-call and never resumed (the user "
         "heard or saw nothing from then on): read the avatar service's logs for this session "
         "at that time, and the voice agent's (a dead TTS stream leaves the avatar mute)."),
    Rule("media_interrupted", WARNING, ROOM_ERRORS, _media_interrupted,
         "The avatar's audio or video went away and came back (a republish, a mute, or a dry "
         "turn: audio published but silent while the agent spoke): check the avatar service's "
         "logs at that time and its connection quality."),
)
VERDICT_NAMES = (*(rule.name for rule in RULES), "healthy", "in_progress")
RULE_BY_NAME = {rule.name: rule for rule in RULES}


def diagnose(record: CallRecord, thresholds: Thresholds, now: float,
             rules: tuple[Rule, ...] = RULES) -> Verdict:
    """Every rule that applies to the call, failures first."""
    findings = []
    for rule in rules:
        evidence = rule.evidence(record, thresholds, now)
        if evidence is not None:
            findings.append(Finding(rule.name, rule.severity, rule.section, evidence,
                                    rule.next_step))
    findings.sort(key=lambda f: f.severity != FAILED)
    if findings:
        return Verdict(findings[0].severity, findings[0].rule, tuple(findings))
    name = "in_progress" if record.live else "healthy"
    return Verdict(name, name, ())


def _avatar_left_at(r: CallRecord) -> float | None:
    if r.avatar_joined_at is None or r.session_seconds is None:
        return None
    return r.avatar_joined_at + r.session_seconds


def _last_leave(r: CallRecord, role: str) -> ParticipantRecord | None:
    """The participant of this role that left last."""
    left = [p for p in r.participants if p.role == role and p.left_at is not None]
    return max(left, key=lambda p: p.left_at or 0.0) if left else None


def _clock(seconds: float) -> str:
    """A duration as minutes:seconds, e.g. 20:00."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def verdicts_markdown(thresholds: Thresholds = Thresholds()) -> str:
    """The diagnosis reference (docs/diagnosis.md), generated from RULES."""
    from monitor.sinks.records import MAX_ENTRIES, MAX_PARTICIPANTS

    t = thresholds
    lines = [
        "# Diagnosis",
        "",
        "Generated by `avatar-monitor docs diagnosis` from `monitor/diagnosis/verdicts.py`; "
        "`tests/unit/contract/test_generated_docs.py` fails when this file drifts.",
        "",
        "Every rule reads one call's record; those that apply become findings, failures first, "
        "and the first names the call's verdict (`healthy` for a finished call without "
        "findings, `in_progress` for a live one). Statuses: `failed`, `warning`, `healthy`, "
        "`in_progress`. `GET /v1/calls?verdict=` takes a status or a rule name.",
        "",
        f"Thresholds: the join timeout (`--avatar-join-timeout`, {t.join_timeout:g} s), the "
        f"idle timeout (`--idle-timeout`, {t.idle_timeout:g} s), the session timeout "
        f"(`--session-timeout`, {t.session_timeout:g} s); a join later than {t.late_join:g} s "
        f"is late, a joined avatar without video (audio) for {t.media_grace:g} s is a black "
        f"screen (no audio), a first speech later than {t.slow_speech:g} s after joining is "
        f"slow. An avatar that announces readiness (`--ready-identity`, `--ready-provider`) "
        f"and has not said `bot_ready` {t.ready_grace:g} s after joining never became ready "
        "(judged only when the room observer was in the room when it joined). "
        "`repeated_length` compares the call with the others of the last hour: several "
        "avatars that left (not by a hang-up nor the configured session timeout) within "
        "`--timeout-tolerance` of the same session length, far more than natural lengths would "
        "(`monitor/sinks/session_lengths.py`). `media_stopped` and `media_interrupted` read the "
        "interruptions of the avatar's audio or video (unpublished, or muted as the room "
        "observer sees, or audio dry: published and unmuted but silent for a whole probe while "
        "the voice agent's `lk.agent.state` said speaking, until sound or the turn's end) that "
        "lasted longer than `--interruption-grace` (5 s by default) while the call was active: "
        "one that came back is a warning, one that never came back before "
        "the avatar left or the call ended fails the call (`monitor/calls/media.py`).",
        "",
        "| rule | severity | guide section | next step |",
        "|---|---|---|---|",
    ]
    for rule in RULES:
        lines.append(f"| `{rule.name}` | {rule.severity} | {rule.section} | {rule.next_step} |")
    lines += [
        "",
        "## The record and its memory bound",
        "",
        "Each call's record holds: room name and sid, state, start and end, the avatar's join "
        "latency, its readiness (bot_ready: from the call's start and from its join), first "
        "track per kind and first speech, the startup failure (cause and "
        "message), the departure cause with the avatar's disconnect reason, session length and "
        "silence before leaving, pipeline errors and the agent session's close reason, up to "
        f"{MAX_PARTICIPANTS} participants (identity, role, join, leave, reason) and the last "
        f"{MAX_ENTRIES} timeline entries. Records exist for every live call (bounded by "
        "`--max-calls`) and the last `--recent-calls` finished calls (default 1,000); the oldest "
        "finished record goes first; beyond memory, finished calls are kept on disk in the "
        "history (`--history`, `--history-days`, `--history-max-calls`) with the verdict they "
        "had when they finished, and `/v1/calls` reads both. Free text (identities, "
        "startup-failure messages) is truncated to 128 and 256 characters. Room names and "
        "identities never become metric labels.",
        "",
        "Measured with tracemalloc: a typical call's record takes about 1.8 KiB, a record with "
        "a full timeline about 6 KiB (`tests/unit/diagnosis/test_verdicts.py` fails above "
        "8 KiB). So 1,000 recent calls take 2 to 6 MiB, and each live call costs about 1.8 KiB "
        "on top of its tracking state.",
    ]
    return "\n".join(lines) + "\n"
