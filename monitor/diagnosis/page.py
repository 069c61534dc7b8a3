"""The built-in status page: live calls, recent failures with their verdicts, and one call's
timeline. Server-rendered HTML with no script and no build step; it reloads itself every 5 s.

A token given as `?token=` is moved into a session cookie (HttpOnly, SameSite=Strict) by a
redirect to the same address without it, so neither the address bar, the reload, the links nor a
Referer carry it. The Content-Security-Policy allows the page's own style sheet and nothing else.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from aiohttp import web

from monitor.diagnosis.api import CallQuery, CallStatus
from monitor.diagnosis.verdicts import Verdict
from monitor.sinks.records import CallRecord, entry_text, utc_clock
from monitor.web.access import SESSION_COOKIE, Denied
from monitor.web.server import style_hash

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#fafbfc}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#f0f2f5}.failed{color:#b3261e;font-weight:600}.warning{color:#8a5a00}
.healthy,.in_progress{color:#1e7b34}.muted{color:#6b7280}a{color:#1a56db}
.finding{background:#fff;border-left:4px solid #b3261e;padding:.5em .8em;margin:.6em 0}
.finding.w{border-color:#d29922}
"""
LIMIT = 50
PAGE_POLICY = (f"default-src 'none'; style-src {style_hash(STYLE)}; img-src 'none'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _page(title: str, body: str, refresh: bool = True) -> web.Response:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    html = (f"<!doctype html><html><head><meta charset=utf-8>{meta}<title>{escape(title)}"
            f"</title><style>{STYLE}</style></head><body>{body}</body></html>")
    return web.Response(text=html, content_type="text/html")


def _link(record: CallRecord) -> str:
    return f'<a href="/calls/{quote(record.room, safe="")}">{escape(record.room)}</a>'


def _rows(calls: list[tuple[CallRecord, Verdict]]) -> str:
    if not calls:
        return '<tr><td colspan=5 class=muted>none</td></tr>'
    rows = []
    for record, verdict in calls:
        evidence = verdict.findings[0].evidence if verdict.findings else ""
        rows.append(
            f"<tr><td>{_link(record)}</td><td>{escape(record.state)}</td>"
            f"<td>{utc_clock(record.started_at)}</td>"
            f'<td class="{verdict.status}">{escape(verdict.name)}</td>'
            f"<td>{escape(evidence)}</td></tr>")
    return "".join(rows)


def _table(calls: list[tuple[CallRecord, Verdict]]) -> str:
    return ("<table><tr><th>room</th><th>state</th><th>started (UTC)</th><th>verdict</th>"
            f"<th>evidence</th></tr>{_rows(calls)}</table>")


class StatusPage:
    """GET / and GET /calls/{room}."""

    def __init__(self, status: CallStatus) -> None:
        self._status = status

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
        live = await self._status.find(CallQuery("live", None, LIMIT), scope)
        failed = await self._status.find(CallQuery("finished", "failed", LIMIT), scope)
        body = (
            "<h1>avatar-monitor</h1>"
            f'<p class=muted>{len(self._status.records.live)} live call(s); the last '
            f"{self._status.records.recent} finished calls are kept. "
            'Metrics: <a href="/metrics">/metrics</a>; JSON: /v1/calls.</p>'
            f"<h2>Live calls</h2>{_table(live)}"
            f"<h2>Recent failures</h2>{_table(failed)}")
        return _page("avatar-monitor", body)

    async def call(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        if isinstance(scope, web.Response):
            return scope
        room = request.match_info["room"]
        found = await self._status.lookup(room) if scope in ("", room) else None
        if found is None:
            body = f"<h1>{escape(room)}</h1><p>No live or recent call in that room.</p>"
            response = _page("avatar-monitor: unknown room", body, refresh=False)
            response.set_status(404)
            return response
        record, verdict = found
        findings = "".join(
            f'<div class="finding{" w" if f.severity == "warning" else ""}">'
            f'<b class="{f.severity}">{escape(f.rule)}</b>: '
            f"{escape(f.evidence)}<br><span class=muted>{escape(f.section)}</span> &rarr; "
            f"{escape(f.next_step)}</div>" for f in verdict.findings
        ) or f'<p class="{verdict.status}">{escape(verdict.name)}: nothing went wrong.</p>'
        people = "".join(
            f"<tr><td>{escape(p.identity)}</td><td>{p.role}</td><td>{utc_clock(p.joined_at)}</td>"
            f"<td>{utc_clock(p.left_at)}</td><td>{escape(p.reason or '')}</td></tr>"
            for p in record.participants)
        timeline = "".join(
            f"<tr><td>{utc_clock(entry[0])}</td><td>{escape(entry[1])}</td>"
            f"<td>{escape(entry_text(entry))}</td></tr>" for entry in record.entries)
        body = (
            '<p><a href="/">&larr; all calls</a></p>'
            f"<h1>{escape(record.room)} <span class=muted>({escape(record.state)})</span></h1>"
            f'<h2>Verdict: <span class="{verdict.status}">{escape(verdict.name)}</span></h2>'
            f"{findings}"
            "<h2>Participants</h2><table><tr><th>identity</th><th>role</th><th>joined</th>"
            f"<th>left</th><th>reason</th></tr>{people}</table>"
            "<h2>Timeline (UTC)</h2><table><tr><th>time</th><th>event</th><th>detail</th></tr>"
            f"{timeline}</table>")
        return _page(f"avatar-monitor: {record.room}", body, refresh=record.live)
