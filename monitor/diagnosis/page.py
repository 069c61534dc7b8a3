"""The built-in status page: every live and recent call with its verdict (filtered by state,
status and verdict), and one call's page: its verdict, its timeline as a picture (see
monitor/diagnosis/timeline.py) and as a table, and links to its trace and dashboard.
Server-rendered HTML with no script and no build step; it reloads itself every 5 s.

A token given as `?token=` is moved into a session cookie (HttpOnly, SameSite=Strict) by a
redirect to the same address without it, so neither the address bar, the reload, the links nor a
Referer carry it. The Content-Security-Policy allows the page's own style sheet and nothing else.
"""

from __future__ import annotations

import datetime
from html import escape
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from aiohttp import web

from monitor.diagnosis import timeline
from monitor.diagnosis.api import STATES, CallQuery, CallStatus
from monitor.diagnosis.verdicts import STATUSES, VERDICT_NAMES, Verdict
from monitor.sinks.records import (
    CallRecord,
    entry_clock,
    entry_text,
    entry_time,
    listed,
    utc_clock,
)
from monitor.web.access import SESSION_COOKIE, Denied
from monitor.web.server import style_hash

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#fafbfc}
h1{font-size:1.4em;overflow-wrap:anywhere}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e6ea;vertical-align:top}
td.wrap{overflow-wrap:anywhere}td.room{overflow-wrap:anywhere;max-width:24em}td.nw{white-space:nowrap}
th{background:#f0f2f5}.failed{color:#b3261e;font-weight:600}.warning{color:#8a5a00}
.healthy,.in_progress{color:#1e7b34}.muted{color:#6b7280}a{color:#1a56db}
.finding{background:#fff;border-left:4px solid #b3261e;padding:.5em .8em;margin:.6em 0}
.finding.w{border-color:#d29922}
.facts{display:flex;flex-wrap:wrap;gap:.3em 1.6em;margin:.4em 0}.facts b{font-weight:600}
.filters{margin:.3em 0}.filters a,.filters b{margin-right:.7em}
details code{overflow-wrap:anywhere;font-size:12px}
td.at{white-space:nowrap;font-variant-numeric:tabular-nums}
""" + timeline.STYLE
LIMIT = 200  # calls listed on `/`
ROOM_CHARS = 80  # longer room names are cut in lists and headings (in full on the call's page)
PAGE_POLICY = (f"default-src 'none'; style-src {style_hash(STYLE)}; img-src 'none'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# The dashboard link's time range: this much before the call's start and after its end.
DASHBOARD_MARGIN = 60.0


def _page(title: str, body: str, refresh: bool = True) -> web.Response:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    html = (f"<!doctype html><html><head><meta charset=utf-8>{meta}<title>{escape(title)}"
            f"</title><style>{STYLE}</style></head><body>{body}</body></html>")
    return web.Response(text=html, content_type="text/html")


def _short(text: str, chars: int = ROOM_CHARS) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "\u2026"


def _link(record: CallRecord) -> str:
    """The call's page, by its room sid (a room's name may be long, and names repeat)."""
    target = quote(record.sid or record.room, safe="")
    return (f'<a href="/calls/{target}" title="{escape(_short(record.room, 4 * ROOM_CHARS))}">'
            f"{escape(_short(record.room))}</a>")


def utc_time(at: float | None) -> str:
    """A date and time in UTC for people: YYYY-MM-DD HH:MM:SS ("" for none)."""
    if at is None:
        return ""
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """A duration as h:mm:ss or m:ss."""
    whole = max(round(seconds), 0)
    if whole >= 3600:
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


def _duration(record: CallRecord, now: float) -> str:
    if record.ended_at is None:
        return f"{duration(now - record.started_at)} so far"
    return duration(record.ended_at - record.started_at)


def _rows(calls: list[tuple[CallRecord, Verdict]], now: float) -> str:
    if not calls:
        return '<tr><td colspan=6 class=muted>none</td></tr>'
    rows = []
    for record, verdict in calls:
        evidence = verdict.findings[0].evidence if verdict.findings else ""
        rows.append(
            f'<tr data-sid="{escape(record.sid)}" data-status="{verdict.status}">'
            f"<td class=room>{_link(record)}</td><td class=nw>{escape(record.state)}</td>"
            f'<td class=at>{utc_time(record.started_at)}</td>'
            f'<td class=at>{_duration(record, now)}</td>'
            f'<td class="{verdict.status} nw">{escape(verdict.name)}</td>'
            f"<td>{escape(evidence)}</td></tr>")
    return "".join(rows)


def _filters(chosen: dict[str, str], name: str, values: list[str]) -> str:
    """Links that set one filter (`name`) and keep the others."""
    links = []
    for value in ["", *values]:
        query = {**chosen, name: value}
        href = "/?" + urlencode({k: v for k, v in query.items() if v}) \
            if any(query.values()) else "/"
        text = escape(value or "any")
        links.append(f"<b>{text}</b>" if chosen.get(name, "") == value
                     else f'<a href="{escape(href)}">{text}</a>')
    return f'<div class="filters" data-filter="{name}">{name}: {"".join(links)}</div>'


def dashboard_link(url: str, record: CallRecord, now: float) -> str:
    """The dashboard's URL with from= and to= (epoch ms) around the call (to=now if live)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("from", "to")]
    query.append(("from", str(int((record.started_at - DASHBOARD_MARGIN) * 1000))))
    end = record.ended_at
    query.append(("to", "now" if end is None else str(int((end + DASHBOARD_MARGIN) * 1000))))
    return urlunsplit(parts._replace(query=urlencode(query)))


def trace_link(template: str, trace_id: str) -> str:
    return template.replace("{trace_id}", trace_id)


class StatusPage:
    """GET / and GET /calls/{room}: `trace_url` (with {trace_id}) and `dashboard_url` make
    the call page's links."""

    def __init__(self, status: CallStatus, trace_url: str = "", dashboard_url: str = "") -> None:
        self._status = status
        self._trace_url = trace_url
        self._dashboard_url = dashboard_url

    def _scope(self, request: web.Request) -> str | web.Response:
        """The caller's room scope, or the answer to send instead: a 401 page, or the redirect
        that moves a good `?token=` into the session cookie."""
        try:
            scope = self._status.access.room_scope(request, query_token=True)
        except Denied as denied:
            status, _, text = denied.args
            body = (f"<h1>avatar-monitor</h1><p>{escape(text)}. Add <code>?token=</code> with a "
                    "LiveKit access token to the address.</p>")
            response = _page("avatar-monitor: unauthorized", body, refresh=False)
            response.set_status(status)
            return response
        token = request.query.get("token")
        if token is None:
            return scope
        rest = {k: v for k, v in request.query.items() if k != "token"}
        response = web.Response(status=303,
                                headers={"Location": str(request.rel_url.with_query(rest))})
        if self._status.access.verifier is not None:
            response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="Strict",
                                secure=request.secure, path="/")
        return response

    async def index(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        if isinstance(scope, web.Response):
            return scope
        chosen = {name: request.query.get(name, "") for name in ("state", "status", "verdict")}
        state = chosen["state"] if chosen["state"] in STATES else ""
        status = chosen["status"] if chosen["status"] in STATUSES else ""
        verdict = chosen["verdict"] if chosen["verdict"] in VERDICT_NAMES else ""
        chosen = {"state": state, "status": status, "verdict": verdict}
        found = await self._status.find(
            CallQuery(state or None, verdict or status or None, LIMIT), scope)
        calls = [(r, v) for r, v in found if not status or v.status == status]
        now = self._status.clock()
        names = sorted({v.name for _, v in calls} | ({verdict} if verdict else set()))
        records = self._status.records
        shown = (f"the newest {LIMIT} shown" if len(found) >= LIMIT
                 else f"{len(calls)} shown")
        body = (
            "<h1>avatar-monitor</h1>"
            f'<p class=muted>{len(records.live)} live call(s) and the last {records.recent} '
            f"finished calls are kept ({len(records.finished)} now); {shown}. "
            'Metrics: <a href="/metrics">/metrics</a>; JSON: /v1/calls.</p>'
            f"{_filters(chosen, 'state', ['live', 'finished', 'ringing', 'active', 'failed'])}"
            f"{_filters(chosen, 'status', list(STATUSES))}"
            f"{_filters(chosen, 'verdict', names)}"
            "<h2>Calls</h2><table><tr><th>room</th><th>state</th><th>started (UTC)</th>"
            "<th>duration</th><th>verdict</th><th>evidence</th></tr>"
            f"{_rows(calls, now)}</table>")
        return _page("avatar-monitor", body)

    async def call(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        if isinstance(scope, web.Response):
            return scope
        room = request.match_info["room"]
        found = await self._status.call_by_key(room)
        if found is None or scope not in ("", found[0].room):
            body = f"<h1>{escape(_short(room))}</h1><p>No live or recent call in that room.</p>"
            response = _page("avatar-monitor: unknown room", body, refresh=False)
            response.set_status(404)
            return response
        record, verdict = found
        now = self._status.clock()
        findings = "".join(
            f'<div class="finding{" w" if f.severity == "warning" else ""}">'
            f'<b class="{f.severity}">{escape(f.rule)}</b>: '
            f"{escape(f.evidence)}<br><span class=muted>{escape(f.section)}</span> &rarr; "
            f"{escape(f.next_step)}</div>" for f in verdict.findings
        ) or f'<p class="{verdict.status}">{escape(verdict.name)}: nothing went wrong.</p>'
        body = (
            '<p><a href="/">&larr; all calls</a></p>'
            f"<h1>{escape(_short(record.room))} <span class=muted>({escape(record.state)})"
            f"</span></h1>{self._facts(record, now)}"
            f'<h2>Verdict: <span class="{verdict.status}">{escape(verdict.name)}</span></h2>'
            f"{findings}"
            "<h2>Timeline</h2>"
            f"{timeline.svg(record, verdict, self._status.thresholds, now)}"
            f"{_entries(record)}"
            "<h2>Participants</h2><table><tr><th>identity</th><th>role</th>"
            "<th>joined (UTC)</th><th>left (UTC)</th><th>reason</th></tr>"
            f"{_participants(record)}</table>")
        return _page(f"avatar-monitor: {record.room}", body, refresh=record.live)

    def _facts(self, record: CallRecord, now: float) -> str:
        """The room's full name (when cut), sid, times, duration and the call's links."""
        facts = [f"<span>room sid <b>{escape(record.sid)}</b></span>",
                 f"<span>started <b>{utc_time(record.started_at)}</b> UTC</span>"]
        if record.ended_at is not None:
            facts.append(f"<span>ended <b>{utc_time(record.ended_at)}</b> UTC</span>")
        facts.append(f"<span>duration <b>{_duration(record, now)}</b></span>")
        if record.trace_id:
            trace = escape(record.trace_id)
            if self._trace_url:
                href = escape(trace_link(self._trace_url, record.trace_id))
                trace = f'<a class="trace" rel="noreferrer" href="{href}">{trace}</a>'
            facts.append(f'<span>trace <b class="trace-id">{trace}</b></span>')
        if self._dashboard_url:
            href = escape(dashboard_link(self._dashboard_url, record, now))
            facts.append(f'<span><a class="dashboard" rel="noreferrer" href="{href}">'
                         "dashboard</a></span>")
        facts.append(f'<span><a href="/v1/calls/{quote(record.room, safe="")}">JSON</a></span>')
        full = "" if len(record.room) <= ROOM_CHARS else (
            f"<details><summary>the room's full name ({len(record.room)} characters)"
            f"</summary><code>{escape(record.room)}</code></details>")
        return f'{full}<div class="facts">{"".join(facts)}</div>'


def _entries(record: CallRecord) -> str:
    """The timeline as a table, in time order, one row per fact."""
    rows = "".join(
        f'<tr data-at="{entry[0]:.3f}" data-event="{escape(entry[1])}"'
        f'{" data-listed" if listed(entry) else ""}>'
        f"<td class=at>{entry_clock(entry)}</td>"
        f"<td class=at>{timeline.offset(entry[0] - record.started_at)}</td>"
        f"<td class=nw>{escape(entry[1])}</td><td class=wrap>{escape(entry_text(entry))}</td>"
        "</tr>"
        for entry in sorted(record.entries, key=entry_time))
    return ('<table class="entries"><tr><th>time (UTC)</th><th>since start</th><th>event</th>'
            f"<th>detail</th></tr>{rows}</table>")


def _participants(record: CallRecord) -> str:
    rows = []
    for p in record.participants:
        if p.left_at is not None:
            left = utc_clock(p.left_at)
            if record.ended_at is not None and p.left_at > record.ended_at:
                left += " <span class=muted>(after the call ended)</span>"
        else:
            left = "<span class=muted>" + ("still in the room" if record.live else
                                           "no leave seen before the call ended") + "</span>"
        rows.append(f"<tr><td class=wrap>{escape(p.identity)}</td><td>{p.role}</td>"
                    f"<td class=at>{utc_clock(p.joined_at)}</td><td>{left}</td>"
                    f"<td>{escape(p.reason or '')}</td></tr>")
    return "".join(rows)
