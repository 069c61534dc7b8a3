"""GET /v1/calls and GET /v1/calls/{room}: live, recent and kept calls with their verdicts, as
JSON. Memory is read first (live calls, the last --recent-calls finished ones), then the history
(--history): a call in both is answered from memory.

Room names and identities appear here (never in metrics), so the API wants a LiveKit access
token signed with the API key and secret (`Authorization: Bearer`), unless --public-status is
set. A token whose video grant names a room sees only that room.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from monitor.diagnosis.verdicts import (
    RULE_BY_NAME,
    STATUSES,
    VERDICT_NAMES,
    Thresholds,
    Verdict,
    diagnose,
)
from monitor.shard import EVERY_ROOM, Shard, url_of
from monitor.sinks.history import History, HistoryFilter
from monitor.sinks.records import CallRecord, CallRecords, entry_text
from monitor.web.access import ANY_ROOM, Denied, TokenAccess
from monitor.web.replies import error_reply, json_reply

STATES = ("live", "finished", "ringing", "active", "failed", "ended")
# Calls diagnosed between two yields to the event loop while a query scans them.
SCAN_SLICE = 500
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_CURSOR_CHARS = 4096
# States a finished call can have: the others are only in memory.
FINISHED_STATES = (None, "finished", "failed", "ended")

Key = tuple[float, str]  # (started_at, sid): the listing's order, newest first, and its cursor


@dataclass(slots=True)
class CallQuery:
    state: str | None
    verdict: str | None
    limit: int
    room: str | None = None
    since: float | None = None  # calls that started at or after (unix seconds)
    until: float | None = None  # calls that started before
    before: Key | None = None  # the cursor: calls after this one in the listing

    @classmethod
    def parse(cls, query: Any) -> CallQuery:
        """From query parameters; raises Denied(400) naming a bad one."""
        state, verdict = query.get("state"), query.get("verdict")
        if state is not None and state not in STATES:
            raise Denied(400, "bad_query", f"state must be one of {', '.join(STATES)}")
        if verdict is not None and verdict not in (*VERDICT_NAMES, *STATUSES):
            raise Denied(400, "bad_query",
                         "verdict must be a status (failed, warning, healthy, in_progress) or "
                         "a rule name (see docs/diagnosis.md)")
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise Denied(400, "bad_query", f"limit must be 1 to {MAX_LIMIT}")
        return cls(state, verdict, limit, query.get("room"), _time(query, "since"),
                   _time(query, "until"), _cursor(query.get("cursor")))

    def state_matches(self, record: CallRecord) -> bool:
        if self.state == "live":
            return record.live
        if self.state == "finished":
            return not record.live
        return self.state is None or record.state == self.state

    def verdict_matches(self, verdict: Verdict) -> bool:
        return self.verdict in (None, verdict.status, verdict.name)

    def matches(self, record: CallRecord) -> bool:
        """The cheap tests (no verdict): room, state, start time, cursor position."""
        return ((self.room is None or record.room == self.room) and self.state_matches(record)
                and (self.since is None or record.started_at >= self.since)
                and (self.until is None or record.started_at < self.until)
                and (self.before is None or _key(record) < self.before))

    def history_filter(self, before: Key | None) -> HistoryFilter:
        state = self.state if self.state in ("failed", "ended") else None
        return HistoryFilter(self.room, self.since, self.until, before, state, self.verdict)


def _time(query: Any, name: str) -> float | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise Denied(400, "bad_query", f"{name} must be an RFC 3339 time, e.g. "
                     "2025-06-01T14:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def _key(record: CallRecord) -> Key:
    return record.started_at, record.sid


def encode_cursor(key: Key) -> str:
    """An opaque position in the listing."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _cursor(text: str | None) -> Key | None:
    if text is None:
        return None
    try:
        if len(text) > MAX_CURSOR_CHARS:
            raise ValueError
        started, sid = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if type(started) not in (int, float) or type(sid) is not str:
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise Denied(400, "bad_query", "cursor must be a `next` of an earlier answer") from None
    return float(started), sid


class CallStatus:
    """Reads call records and their verdicts for the API, the page and `diagnose`."""

    def __init__(self, records: CallRecords, thresholds: Thresholds, access: TokenAccess,
                 clock: Callable[[], float] = time.time, shard: Shard = EVERY_ROOM,
                 shard_url: str = "", history: History | None = None) -> None:
        self.records = records
        self.history = history
        self.thresholds = thresholds
        self.access = access
        self.clock = clock
        self.shard = shard
        self.shard_url = shard_url

    def verdict(self, record: CallRecord) -> Verdict:
        return diagnose(record, self.thresholds, self.clock())

    async def find(self, query: CallQuery, scope: str = ANY_ROOM
                   ) -> list[tuple[CallRecord, Verdict]]:
        """Matching calls, newest first (memory, then the history)."""
        calls, _ = await self.page(query, scope)
        return calls

    async def page(self, query: CallQuery, scope: str = ANY_ROOM
                   ) -> tuple[list[tuple[CallRecord, Verdict]], str | None]:
        """Up to `query.limit` matching calls, newest first (by start), and the cursor of the
        next page (None: no more). A scan over many calls yields to the event loop every
        SCAN_SLICE calls, so webhooks are not held up behind it."""
        if scope:
            if query.room not in (None, scope):
                return [], None
            query = replace(query, room=scope)
        want = query.limit + 1  # one more tells whether there is a next page
        found = await self._from_memory(query, want)
        if query.state in FINISHED_STATES and self.history is not None:
            found += await self._from_history(query, want)
            found.sort(key=lambda call: _key(call[0]), reverse=True)
        calls = found[:query.limit]
        more = len(found) > query.limit
        return calls, encode_cursor(_key(calls[-1][0])) if more else None

    async def _from_memory(self, query: CallQuery, want: int
                           ) -> list[tuple[CallRecord, Verdict]]:
        candidates = []
        for seen, record in enumerate(self.records.newest_first(), 1):
            if seen % SCAN_SLICE == 0:
                await asyncio.sleep(0)
            if query.matches(record):
                candidates.append(record)
        candidates.sort(key=_key, reverse=True)
        found = []
        now = self.clock()
        # A rule named in the query must at least apply: checking it alone skips most calls
        # without diagnosing them in full.
        rule = RULE_BY_NAME.get(query.verdict or "")
        for seen, record in enumerate(candidates, 1):
            if seen % SCAN_SLICE == 0:
                await asyncio.sleep(0)
            if rule is not None and rule.evidence(record, self.thresholds, now) is None:
                continue
            verdict = diagnose(record, self.thresholds, now)
            if query.verdict_matches(verdict):
                found.append((record, verdict))
                if len(found) >= want:
                    break
        return found

    async def _from_history(self, query: CallQuery, want: int
                            ) -> list[tuple[CallRecord, Verdict]]:
        """The history's matching calls that memory does not hold (memory answers those)."""
        assert self.history is not None
        found: list[tuple[CallRecord, Verdict]] = []
        before = query.before
        while len(found) < want:
            rows = await self.history.find(query.history_filter(before), want)
            for stored in rows:
                if not self._in_memory(stored.record):
                    found.append((stored.record, stored.verdict))
            if len(rows) < want:
                break
            before = _key(rows[-1].record)
        return found[:want]

    def _in_memory(self, record: CallRecord) -> bool:
        held = self.records.finished.get(record.sid) or self.records.live.get(record.sid)
        return held is not None and held.started_at == record.started_at

    async def lookup(self, room: str, sid: str | None = None
                     ) -> tuple[CallRecord, Verdict] | None:
        """The room's latest call (live first), or its call with that room sid: memory, then
        the history."""
        if sid is None:
            record = self.records.latest(room)
        else:
            record = self.records.live.get(sid) or self.records.finished.get(sid)
            if record is not None and record.room != room:
                record = None
        if record is not None:
            return record, self.verdict(record)
        if self.history is None:
            return None
        stored = await self.history.latest(room, sid)
        return None if stored is None else (stored.record, stored.verdict)

    async def call_by_key(self, key: str) -> tuple[CallRecord, Verdict] | None:
        """A call by its room sid (the status page links calls so), else the newest call of
        the room of that name: memory, then the history."""
        record = self.records.live.get(key) or self.records.finished.get(key)
        if record is not None:
            return record, self.verdict(record)
        if self.history is not None:
            stored = await self.history.by_sid(key)
            if stored is not None:
                return stored.record, stored.verdict
        return await self.lookup(key)

    # -- handlers --------------------------------------------------------------------------

    async def list_calls(self, request: web.Request) -> web.Response:
        try:
            scope = self.access.room_scope(request, query_token=True)
            query = CallQuery.parse(request.query)
        except Denied as denied:
            return error_reply(*denied.args)
        calls, cursor = await self.page(query, scope)
        return web.json_response({"calls": [summary(record, verdict)
                                            for record, verdict in calls], "next": cursor})

    async def get_call(self, request: web.Request) -> web.Response:
        room = request.match_info["room"]
        try:
            scope = self.access.room_scope(request, query_token=True)
        except Denied as denied:
            return error_reply(*denied.args)
        if scope and scope != room:
            return error_reply(403, "forbidden", "the token is for another room")
        if not self.shard.owns(room):
            return self._elsewhere(request, room)
        found = await self.lookup(room, request.query.get("sid"))
        if found is None:
            return error_reply(404, "not_found", "no live, recent or kept call in that room"
                               + (" with that sid" if "sid" in request.query else ""))
        return web.json_response(detail(*found))


    def _elsewhere(self, request: web.Request, room: str) -> web.Response:
        """Another replica owns the room: a redirect to it with --shard-url, else 404 naming
        its shard."""
        owner = self.shard.owner(room)
        url = url_of(self.shard_url, owner)
        if url:
            raise web.HTTPTemporaryRedirect(url + request.rel_url.path_qs)
        return json_reply(404, error="foreign_shard", shard=owner,
                          detail=f"shard {owner}/{self.shard.count} has this room's calls")


def summary(record: CallRecord, verdict: Verdict) -> dict[str, Any]:
    """A call in a list: enough to pick the one to look at."""
    first = verdict.findings[0] if verdict.findings else None
    return {
        "room": record.room,
        "sid": record.sid,
        "state": record.state,
        "live": record.live,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "verdict": verdict.name,
        "status": verdict.status,
        "evidence": first.evidence if first else None,
    }


def detail(record: CallRecord, verdict: Verdict) -> dict[str, Any]:
    """Everything known of one call: its verdict with evidence, participants and timeline."""
    return {
        **summary(record, verdict),
        "findings": [
            {"rule": f.rule, "severity": f.severity, "section": f.section,
             "evidence": f.evidence, "next_step": f.next_step}
            for f in verdict.findings
        ],
        "avatar": {
            "joined_at": record.avatar_joined_at,
            "join_latency_seconds": record.join_latency,
            "expects_ready": record.expects_ready,
            "ready_at": record.ready_at,
            "ready_latency_seconds": record.ready_latency,
            "join_to_ready_seconds": record.join_to_ready,
            "first_track_seconds": dict(record.first_tracks),
            "first_speech_seconds": record.first_speech,
            "departure": record.departure,
            "disconnect_reason": record.avatar_reason,
            "session_seconds": record.session_seconds,
            "silence_seconds": record.silence_seconds,
            "media_interruptions": record.media_interruptions,
        },
        "startup_failure": None if record.startup_failure is None and
        record.startup_message is None else {"cause": record.startup_failure,
                                             "message": record.startup_message},
        "pipeline": {
            "unrecoverable_error": None if record.unrecoverable is None else
            {"component": record.unrecoverable[0], "at": record.unrecoverable[1]},
            "recoverable_errors": record.recoverable_errors,
            "closed_reason": record.closed_reason,
        },
        "observed": record.observed,
        "trace_id": record.trace_id or None,
        "participants": [
            {"identity": p.identity, "role": p.role, "joined_at": p.joined_at,
             "left_at": p.left_at, "disconnect_reason": p.reason}
            for p in record.participants
        ],
        "timeline": [{"at": entry[0], "event": entry[1], "detail": entry_text(entry)}
                     for entry in record.entries],
    }
