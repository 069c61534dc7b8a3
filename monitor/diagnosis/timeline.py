"""One call's timeline as a picture: inline SVG, server-rendered, no script.

One lane per participant identity (user, voice agent, avatar; others and the room observer in
grey) with a presence bar from each join to its leave (or to "now", or the call's end) and the
disconnect reason at its end; marks for the avatar's first tracks, readiness, first speech, what
it said, agent turn latencies, pipeline errors, data messages and media interruptions; lines
across all lanes for the call's start and end, the join deadline and each finding of the verdict
at its moment. Every label is escaped; a label that would overlap another is left out (its mark
keeps a tooltip). Colours come from the page's style sheet (classes), never style attributes,
so the page's Content-Security-Policy needs no more than its hashed <style>.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape

from monitor.diagnosis.verdicts import Thresholds, Verdict
from monitor.sinks.records import (
    CallRecord,
    ParticipantRecord,
    entry_clock,
    entry_text,
    leave_time,
    utc_clock,
)

# The picture's geometry, in viewBox units (the SVG scales to the page's width).
WIDTH = 1200
NAMES = 200  # the lane names' column
LEFT, RIGHT = NAMES + 12, WIDTH - 150  # the time axis; the right margin holds the end labels
HEADER = 48  # three rows of labels for the lines across all lanes
LANE = 50
AXIS = 34
CHAR = 6.3  # a generous width of one character at the labels' size (11 px)
NAME_CHARS = 28
ROLE_ORDER = {"user": 0, "agent": 1, "avatar": 2, "other": 3}
PRIORITY = {"error": 0, "ready": 1, "speech": 2, "message": 3, "latency": 4, "join": 5,
            "track": 6}

STYLE = """
svg.timeline{width:100%;height:auto;background:#fff;border:1px solid #e3e6ea;font:11px
system-ui,sans-serif}
.timeline text{fill:#1d2330}.timeline .name{font-weight:600;font-size:12px}
.timeline .role,.timeline .tick text,.timeline .reason{fill:#6b7280}
.timeline .grid{stroke:#eef0f3}.timeline .axis{stroke:#9aa1ab}
.timeline .bar{fill:#9aa1ab}.timeline .user .bar{fill:#3b82f6}
.timeline .agent .bar{fill:#8b5cf6}.timeline .avatar .bar{fill:#0d9488}
.timeline .other .bar,.timeline .observer .bar{fill:#d1d5db}
.timeline .other text,.timeline .observer text{fill:#9aa1ab}
.timeline .open{fill-opacity:.55}
.timeline .mark line{stroke:#1d2330;stroke-width:1.5}.timeline .mark circle{fill:#1d2330}
.timeline .track circle,.timeline .track line,.timeline .join circle,.timeline .join line{
fill:#0d9488;stroke:#0d9488}
.timeline .ready circle,.timeline .ready line{fill:#1e7b34;stroke:#1e7b34}
.timeline .speech circle,.timeline .speech line{fill:#2563eb;stroke:#2563eb}
.timeline .latency circle,.timeline .latency line{fill:#7c3aed;stroke:#7c3aed}
.timeline .message circle,.timeline .message line{fill:#b45309;stroke:#b45309}
.timeline .error circle,.timeline .error line{fill:#b3261e;stroke:#b3261e}
.timeline .error text{fill:#b3261e;font-weight:600}
.timeline .gap{fill:#f59e0b;fill-opacity:.75}.timeline .gap.lost{fill:#b3261e}
.timeline .alone{fill:#9aa1ab;fill-opacity:.35}
.timeline .line line{stroke:#6b7280;stroke-dasharray:3 3}
.timeline .deadline line{stroke:#9aa1ab;stroke-dasharray:6 3}
.timeline .deadline text{fill:#6b7280}
.timeline .deadline.missed line{stroke:#b45309}.timeline .deadline.missed text{fill:#b45309}
.timeline .flag line{stroke:#b3261e;stroke-width:2}
.timeline .flag text{fill:#b3261e;font-weight:600}
.timeline .flag.warning line{stroke:#d29922}.timeline .flag.warning text{fill:#8a5a00}
.timeline .now line{stroke:#1e7b34;stroke-dasharray:2 2}.timeline .now text{fill:#1e7b34}
"""


@dataclass(slots=True)
class Mark:
    """A moment on a lane: `kind` is its class (join, track, ready, speech, latency, message,
    error)."""

    at: float
    kind: str
    label: str
    title: str


@dataclass(slots=True)
class Span:
    """A stretch on a lane: the avatar's media off (gap, lost) or the avatar alone (alone)."""

    since: float
    until: float
    kind: str
    title: str


@dataclass(slots=True)
class Lane:
    identity: str
    role: str  # user, agent, avatar, other, observer
    stays: list[ParticipantRecord] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)


@dataclass(slots=True)
class Line:
    """A moment of the whole call, drawn across every lane: kind is start, end, deadline,
    finding (with the finding's severity) or now."""

    at: float
    kind: str
    label: str
    title: str


# -- where things happened ---------------------------------------------------------------------


def _avatar_left_at(r: CallRecord) -> float | None:
    if r.avatar_joined_at is None or r.session_seconds is None:
        return None
    return leave_time(round(r.avatar_joined_at + r.session_seconds, 3))


def _end(r: CallRecord, now: float) -> float:
    return now if r.ended_at is None else leave_time(r.ended_at)


def _first_entry(r: CallRecord, kind: str, *details: str) -> float | None:
    for entry in r.entries:
        if entry[1] == kind and all(d in entry[2:] for d in details):
            return float(entry[0])
    return None


def _after_join(seconds: Callable[[CallRecord, Thresholds], float | None]
                ) -> Callable[[CallRecord, Thresholds], float | None]:
    def moment(r: CallRecord, t: Thresholds) -> float | None:
        delay = seconds(r, t)
        return None if r.avatar_joined_at is None or delay is None else \
            r.avatar_joined_at + delay

    return moment


def _last_leave(role: str, reason: str | None = None
                ) -> Callable[[CallRecord, Thresholds], float | None]:
    def moment(r: CallRecord, t: Thresholds) -> float | None:
        times = [leave_time(p.left_at) for p in r.participants if p.role == role
                 and p.left_at is not None and (reason is None or p.reason == reason)]
        return max(times) if times else None

    return moment


def _departure(r: CallRecord, t: Thresholds) -> float | None:
    return _avatar_left_at(r)


# Each verdict rule's moment in the call: where its finding is drawn (none: not drawn).
MOMENTS: dict[str, Callable[[CallRecord, Thresholds], float | None]] = {
    "startup_failure_message": lambda r, t: _first_entry(r, "startup_failure_message"),
    "avatar_never_joined": lambda r, t: r.started_at + t.join_timeout,
    "pipeline_error": lambda r, t: r.unrecoverable[1] if r.unrecoverable else _departure(r, t),
    "idle_timeout": lambda r, t: r.idle_timeout_said_at or _departure(r, t),
    "session_timeout": _departure,
    "repeated_length": _departure,
    "network": _departure,
    "agent_lost": _departure,
    "removed": _departure,
    "server": _departure,
    "avatar_left": _departure,
    "black_screen": _after_join(lambda r, t: t.media_grace),
    "never_ready": _after_join(lambda r, t: t.ready_grace),
    "no_audio": _after_join(lambda r, t: t.media_grace),
    "abandoned": lambda r, t: None if r.abandoned_after is None else
    r.started_at + r.abandoned_after,
    "user_network": _last_leave("user"),
    "late_join": lambda r, t: r.avatar_joined_at,
    "slow_to_speak": _after_join(lambda r, t: r.first_speech if r.first_speech is not None
                                 else t.slow_speech),
    "avatar_rejoined": _last_leave("avatar", "duplicate_identity"),
    "unattended": lambda r, t: r.alone_since if r.alone_since is not None else
    (r.unattended[0] if r.unattended else None),
    "recoverable_errors": lambda r, t: _first_entry(r, "pipeline_error", "recoverable"),
    "media_stopped": lambda r, t: r.media_lost[2] if r.media_lost else None,
    "media_interrupted": lambda r, t: next(iter(r.media_open.values()))[1] if r.media_open
    else (r.media_longest[2] if r.media_longest else None),
}


# -- from the record to lanes, marks and lines -------------------------------------------------


def lanes_of(record: CallRecord, end: float) -> list[Lane]:
    """The record's participants as lanes (users, agents, the avatar, others; each by first
    join), with their marks and spans; the room observer last."""
    lanes: dict[str, Lane] = {}
    for person in sorted(record.participants, key=lambda p: p.joined_at):
        lane = lanes.setdefault(person.identity, Lane(person.identity, person.role))
        lane.stays.append(person)
    ordered = sorted(lanes.values(), key=lambda lane: (ROLE_ORDER.get(lane.role, 9),
                                                       lane.stays[0].joined_at))
    avatar = next((lane for lane in ordered if lane.role == "avatar"), None)
    agent = next((lane for lane in ordered if lane.role == "agent"), None)
    _place_marks(record, lanes, avatar, agent, end)
    if record.observed_at is not None:
        observer = Lane("room observer", "observer")
        observer.stays.append(ParticipantRecord("room observer", "observer", record.observed_at,
                                                record.ended_at))
        ordered.append(observer)
    return ordered


def _place_marks(record: CallRecord, lanes: dict[str, Lane], avatar: Lane | None,
                 agent: Lane | None, end: float) -> None:
    """Put each timeline entry that is a moment of one participant on its lane."""
    off: dict[str, float] = {}
    for entry in record.entries:
        at, kind, details = float(entry[0]), entry[1], entry[2:]
        title = f"{entry_clock(entry)} {kind}: {entry_text(entry)}"
        lane, mark = avatar, None
        if kind == "avatar_joined":
            lane = lanes.get(details[0], avatar)
            mark = Mark(at, "join", f"joined +{details[1]:.1f} s", title)
        elif kind == "track":
            mark = Mark(at, "track", details[0], title)
        elif kind == "avatar_ready":
            mark = Mark(at, "ready", "bot_ready", title)
        elif kind == "first_speech":
            mark = Mark(at, "speech", "first speech", title)
        elif kind == "avatar_said":
            said = "error" if details[0] in ("error", "video_generation_error") else "message"
            mark = Mark(at, said, f"said {details[0]}", title)
        elif kind == "avatar_session":
            lane = lanes.get(details[0], avatar)
            mark = Mark(at, "message", "took over", title)
        elif kind == "pipeline_error":
            lane = avatar if details[1] == "avatar" else agent or avatar
            mark = Mark(at, "error", f"{details[1]} error", title)
        elif kind == "agent_latency":
            lane = agent or avatar
            stages = str(details[0]).split(", ")
            shown = next((stage for stage in stages if stage.startswith("e2e ")), stages[0])
            mark = Mark(at, "latency", shown, title)
        elif kind == "session_closed":
            lane = agent or avatar
            mark = Mark(at, "message", f"closed: {details[0]}", title)
        elif kind == "startup_failure_message":
            lane = agent or avatar
            mark = Mark(at, "error", "startup_failure message", title)
        elif kind == "media_off":
            off[details[0]] = at
        elif kind == "media_back" and avatar is not None:
            since = off.pop(details[0], at - float(details[1]))
            avatar.spans.append(Span(since, at, "gap", title))
        elif kind == "unattended" and avatar is not None and details[0] >= 1.0:
            # (shorter: two leaves dated in the same whole second, order unknown)
            avatar.spans.append(Span(at - float(details[0]), leave_time(at), "alone", title))
        if mark is not None and lane is not None:
            lane.marks.append(mark)
    if avatar is None:
        return
    for kind, since in off.items():  # never came back, or still off
        lost = record.media_lost is not None and record.media_lost[0] == kind
        until = since + record.media_lost[3] if lost and record.media_lost else end
        avatar.spans.append(Span(since, until, "gap lost" if lost else "gap",
                                 f"the avatar's {kind} off since {utc_clock(since)}"))
    if record.alone_since is not None:
        avatar.spans.append(Span(record.alone_since, end, "alone", "the avatar alone now"))


def lines_of(record: CallRecord, verdict: Verdict, thresholds: Thresholds,
             now: float) -> list[Line]:
    """The call's start and end, the join deadline, each finding at its moment, and now."""
    start = record.started_at
    lines = [Line(start, "line", "call started", f"call started {utc_clock(start)}")]
    deadline = start + thresholds.join_timeout
    joined = record.avatar_joined_at
    end = _end(record, now)
    if deadline <= end or joined is None:
        missed = joined is None or joined > deadline
        lines.append(Line(deadline, "deadline missed" if missed else "deadline",
                          f"join deadline {thresholds.join_timeout:g} s",
                          "the avatar's join deadline (--avatar-join-timeout)"
                          + (": missed" if missed else "")))
    for finding in verdict.findings:
        moment = MOMENTS.get(finding.rule)
        at = moment(record, thresholds) if moment is not None else None
        if at is not None:
            lines.append(Line(at, f"flag {finding.severity}", finding.rule,
                              f"{finding.rule}: {finding.evidence}"))
    if record.ended_at is not None:
        lines.append(Line(end, "line", "call ended",
                          f"call ended {utc_clock(record.ended_at)}"))
    else:
        lines.append(Line(now, "now", "now", f"now, {utc_clock(now)}"))
    return lines


# -- drawing -------------------------------------------------------------------------------------


class _Rows:
    """Rows of labels; a label goes in the first row where it overlaps nothing."""

    def __init__(self, count: int) -> None:
        self._ends: list[list[tuple[float, float]]] = [[] for _ in range(count)]

    def place(self, left: float, right: float) -> int | None:
        for row, taken in enumerate(self._ends):
            if all(right + 4 < a or left > b + 4 for a, b in taken):
                taken.append((left, right))
                return row
        return None


def _label_box(x: float, text: str) -> tuple[float, float, str]:
    """Where a label starting at a mark goes: right of it, or left of it near the edge."""
    width = len(text) * CHAR
    if x + 3 + width <= WIDTH - 4:
        return x + 3, x + 3 + width, "start"
    return x - 3 - width, x - 3, "end"


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{klass}>'
            f"{escape(text)}</text>")


def _short(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "\u2026"


def _step(seconds: float) -> float:
    """A tick interval that puts 4 to 10 ticks on the axis."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if seconds / step <= 10:
            return step
    return 14400


def offset(seconds: float) -> str:
    """Time since the call's start: +m:ss, +h:mm:ss, or -m:ss before it."""
    whole = round(abs(seconds))
    sign = "-" if seconds < 0 and whole else "+"
    if whole >= 3600:
        return f"{sign}{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{sign}{whole // 60}:{whole % 60:02d}"


def svg(record: CallRecord, verdict: Verdict, thresholds: Thresholds, now: float) -> str:
    """The call's timeline picture."""
    end = _end(record, now)
    lanes = lanes_of(record, end)
    lines = lines_of(record, verdict, thresholds, now)
    moments = [record.started_at, end, *(line.at for line in lines)]
    for lane in lanes:
        moments += [stay.joined_at for stay in lane.stays]
        moments += [leave_time(stay.left_at) for stay in lane.stays if stay.left_at is not None]
    t0, t1 = min(moments), max(moments)
    t1 = max(t1, t0 + 1.0)

    def x(at: float) -> float:
        return LEFT + (min(max(at, t0), t1) - t0) / (t1 - t0) * (RIGHT - LEFT)

    height = HEADER + LANE * max(len(lanes), 1) + AXIS
    bottom = HEADER + LANE * max(len(lanes), 1)
    out = [f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" role="img" '
           f'xmlns="http://www.w3.org/2000/svg" data-start="{t0:.3f}" data-end="{t1:.3f}">'
           "<title>The call's timeline: one lane per participant</title>"]
    step = _step(t1 - t0)
    tick = (int((t0 - record.started_at) // step) + 1) * step
    out.append('<g class="ticks">')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{RIGHT}" y2="{bottom}"/>')
    offsets = [0.0] if t0 <= record.started_at else []
    while record.started_at + tick <= t1 and len(offsets) < 40:
        offsets.append(tick)
        tick += step
    for seconds in offsets:
        tx = x(record.started_at + seconds)
        out.append(f'<g class="tick"><line class="grid" x1="{tx:.1f}" y1="{HEADER}" '
                   f'x2="{tx:.1f}" y2="{bottom}"/>'
                   f'{_text(tx, bottom + 14, offset(seconds), "middle")}</g>')
    out.append(_text(LEFT, bottom + 29, f"{utc_clock(t0)} UTC", "start", "role"))
    out.append(_text(RIGHT, bottom + 29, f"{utc_clock(t1)} UTC", "end", "role"))
    out.append("</g>")
    for index, lane in enumerate(lanes):
        out.append(_lane(lane, HEADER + index * LANE, x, end, record.live))
    header = _Rows(3)
    for line in sorted(lines, key=lambda line: line.kind.startswith("flag")):
        lx = x(line.at)
        left, right, anchor = _label_box(lx, line.label)
        row = header.place(left, right)
        label = "" if row is None else _text(left if anchor == "start" else right,
                                             12 + 14 * row, line.label, anchor)
        out.append(f'<g class="{escape(line.kind)}" data-kind="{line.kind.split()[0]}" '
                   f'data-at="{line.at:.3f}"><title>{escape(line.title)}</title>'
                   f'<line x1="{lx:.1f}" y1="{4 if row is None else 14 * row + 2}" '
                   f'x2="{lx:.1f}" y2="{bottom}"/>{label}</g>')
    out.append("</svg>")
    return "".join(out)


def _lane(lane: Lane, top: float, x: Callable[[float], float], end: float, live: bool) -> str:
    bar_y, bar_h = top + 18, 12
    out = [f'<g class="lane {lane.role}" data-identity="{escape(lane.identity)}" '
           f'data-role="{lane.role}"><title>{escape(lane.identity)} ({lane.role})</title>',
           f'<line class="grid" x1="0" y1="{top + LANE:.1f}" x2="{WIDTH}" y2="{top + LANE:.1f}"/>',
           _text(6, top + 22, _short(lane.identity, NAME_CHARS), "start", "name"),
           _text(6, top + 37, lane.role, "start", "role")]
    bars = _Rows(1)  # the bars and the reasons beside them
    bounds = [(x(s.joined_at), x(end if s.left_at is None else leave_time(s.left_at)))
              for s in lane.stays]
    for x0, x1 in bounds:
        bars.place(x0, x1)
    labels = _Rows(2)  # above the bars, below them
    for stay, (x0, x1) in zip(lane.stays, bounds, strict=True):
        still = stay.left_at is None
        reason = ("still here" if live else "no leave seen") if still \
            else (stay.reason or "unknown_reason").upper()
        out.append(f'<g class="stay" data-joined="{stay.joined_at:.3f}" '
                   f'data-left="{"" if still else f"{stay.left_at:.3f}"}" '
                   f'data-reason="{escape(reason)}"><title>{escape(lane.identity)}: '
                   f"{utc_clock(stay.joined_at)} to {utc_clock(stay.left_at)} "
                   f"{escape(reason)}</title>"
                   f'<rect class="bar{" open" if still else ""}" x="{x0:.1f}" y="{bar_y}" '
                   f'width="{max(x1 - x0, 2):.1f}" height="{bar_h}" rx="2"/></g>')
        if lane.role == "observer":
            continue
        left, right, anchor = _label_box(x1 + 2, reason)
        if anchor == "start" and bars.place(left, right) is not None:
            out.append(_text(left, bar_y + 10, reason, anchor, "reason"))
        elif (row := labels.place(left, right)) is not None:
            out.append(_text(left if anchor == "start" else right,
                             top + (12 if row == 0 else 45), reason, anchor, "reason"))
    for span in lane.spans:
        x0, x1 = x(span.since), x(span.until)
        out.append(f'<rect class="{span.kind}" x="{x0:.1f}" y="{bar_y - 3}" '
                   f'width="{max(x1 - x0, 2):.1f}" height="{bar_h + 6}" '
                   f'data-kind="{span.kind}"><title>{escape(span.title)}</title></rect>')
    # Labels go to the most telling marks first: errors, readiness, speech, ...
    for mark in sorted(lane.marks, key=lambda m: (PRIORITY.get(m.kind, 9), m.at)):
        mx = x(mark.at)
        left, right, anchor = _label_box(mx, mark.label)
        row = labels.place(left, right)
        label = "" if row is None else _text(left if anchor == "start" else right,
                                             top + (12 if row == 0 else 45), mark.label, anchor)
        out.append(f'<g class="mark {mark.kind}" data-kind="{mark.kind}" '
                   f'data-at="{mark.at:.3f}"><title>{escape(mark.title)}</title>'
                   f'<line x1="{mx:.1f}" y1="{bar_y - 4}" x2="{mx:.1f}" y2="{bar_y + bar_h + 4}"/>'
                   f'<circle cx="{mx:.1f}" cy="{bar_y + bar_h / 2}" r="3.5"/>{label}</g>')
    out.append("</g>")
    return "".join(out)
