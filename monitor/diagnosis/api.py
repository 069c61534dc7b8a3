"""GET /v1/calls and GET /v1/calls/{room}: live and recent calls with their verdicts, as JSON.

Room names and identities appear here (never in metrics), so the API wants a LiveKit access
token signed with the API key and secret (`Authorization: Bearer`), unless --public-status is
set. A token whose video grant names a room sees only that room.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from monitor.sinks.records import CallRecord, CallRecords, entry_text
from monitor.web.access import ANY_ROOM, Denied, TokenAccess
from monitor.web.replies import error_reply, json_reply

STATES = ("live", "finished", "ringing", "active", "failed", "ended")
# Calls diagnosed between two yields to the event loop while a query scans them.
SCAN_SLICE = 500
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(slots=True)
class CallQuery:
    state: str | None
    verdict: str | None
    limit: int

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
        return cls(state, verdict, limit)

    def state_matches(self, record: CallRecord) -> bool:
        if self.state == "live":
            return record.live
        if self.state == "finished":
            return not record.live
        return self.state is None or record.state == self.state

    def verdict_matches(self, verdict: Verdict) -> bool:
        return self.verdict in (None, verdict.status, verdict.name)


class CallStatus:
    """Reads call records and their verdicts for the API, the page and `diagnose`."""

    def __init__(self, records: CallRecords, thresholds: Thresholds, access: TokenAccess,
                 clock: Callable[[], float] = time.time, shard: Shard = EVERY_ROOM,
                 shard_url: str = "") -> None:
        self.records = records
        self.thresholds = thresholds
        self.access = access
        self.clock = clock
        self.shard = shard
        self.shard_url = shard_url

    def verdict(self, record: CallRecord) -> Verdict:
        return diagnose(record, self.thresholds, self.clock())

    async def find(self, query: CallQuery, scope: str = ANY_ROOM
                   ) -> list[tuple[CallRecord, Verdict]]:
        """Matching calls, newest first. A scan over many calls yields to the event loop every
        SCAN_SLICE calls, so webhooks are not held up behind it."""
        found = []
        now = self.clock()
        # A rule named in the query must at least apply: checking it alone skips most calls
        # without diagnosing them in full.
        rule = RULE_BY_NAME.get(query.verdict or "")
        for seen, record in enumerate(self.records.newest_first(), 1):
            if seen % SCAN_SLICE == 0:
                await asyncio.sleep(0)
            if (scope and record.room != scope) or not query.state_matches(record):
                continue
            if rule is not None and rule.evidence(record, self.thresholds, now) is None:
                continue
            verdict = diagnose(record, self.thresholds, now)
            if query.verdict_matches(verdict):
                found.append((record, verdict))
                if len(found) >= query.limit:
                    break
        return found

    # -- handlers --------------------------------------------------------------------------

    async def list_calls(self, request: web.Request) -> web.Response:
        try:
            scope = self.access.room_scope(request, query_token=True)
            query = CallQuery.parse(request.query)
        except Denied as denied:
            return error_reply(*denied.args)
        calls = [summary(record, verdict) for record, verdict in await self.find(query, scope)]
        return web.json_response({"calls": calls})

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
        record = self.records.latest(room)
        if record is None:
            return error_reply(404, "not_found", "no live or recent call in that room")
        return web.json_response(detail(record, self.verdict(record)))


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
