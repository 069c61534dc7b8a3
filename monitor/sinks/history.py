"""Call history: finished calls kept in SQLite (WAL), so a call's story outlives the process.

Each finished call is one row: indexed columns (room, sid, start, end, state, status, verdict)
and the whole record with its verdict as versioned JSON. The event loop only snapshots a record
and offers it to a bounded queue (a full queue drops it and counts it); one writer thread drains
the queue in batches, one transaction per batch, and prunes by age and by count (oldest first).
Reads run on one reader thread with its own connection. A file that cannot be opened (corrupt,
unwritable) gets one error line and the history is off: the sidecar serves from memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.logs import RateLimitedLog
from monitor.sinks.metric_table import SPECS, instrument
from monitor.sinks.records import LISTED, RECORD_FIELDS, CallRecord, ParticipantRecord, listed
from monitor.verdict import STATUSES, Finding, Verdict

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1  # of the JSON document; a reader ignores fields it does not know
QUEUE_MAX = 10_000  # finished calls waiting for the writer; beyond, dropped and counted
BATCH_MAX = 500  # rows per transaction
# A batch gathers calls this long after its first: fewer, larger transactions under load; a
# call is on disk within about this much of its linger's end.
BATCH_WAIT = 0.2
PRUNE_INTERVAL = 60.0  # seconds between pruning by age

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    sid TEXT NOT NULL,
    room TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    verdict TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (sid, started_at)
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at, sid);
CREATE INDEX IF NOT EXISTS calls_room ON calls (room, started_at, sid);
CREATE INDEX IF NOT EXISTS calls_status ON calls (status, started_at, sid);
CREATE INDEX IF NOT EXISTS calls_verdict ON calls (verdict, started_at, sid);
"""
_COLUMNS = ("sid", "room", "started_at", "ended_at", "state", "status", "verdict", "version",
            "doc")
# A batch is one JSON array of rows (json_extract gives an object back as its JSON text).
_INSERT = (f"INSERT OR REPLACE INTO calls ({', '.join(_COLUMNS)}) SELECT "
           + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_COLUMNS)))
           + " FROM json_each(?)")
# CallRecord fields that JSON turns into lists: made tuples again when read.
_PAIRS = ("unrecoverable", "unattended", "media_longest", "media_lost")


@dataclass(slots=True, frozen=True)
class StoredCall:
    """A finished call as the history keeps it: its record, its verdict when it finished, and
    its trace (32 hex digits) when tracing was on."""

    record: CallRecord
    verdict: Verdict
    trace_id: str | None = None


_FIELDS = RECORD_FIELDS
# A timeline entry that a RoomService listing showed ends with this (entries' details are
# scalars, so an object cannot be one of them).
_LISTED_MARK = {"listed": True}
_PARTICIPANT_FIELDS = tuple(f.name for f in dataclasses.fields(ParticipantRecord))


def encode(record: CallRecord, verdict: Verdict, trace_id: str | None = None
           ) -> dict[str, Any]:
    """A snapshot of the record (copied: later changes do not reach it) and its verdict.
    Participants are lists in ParticipantRecord's field order; timeline entries are tuples
    (immutable), so a shallow copy of each container is a snapshot."""
    values: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(record, name)
        if name == "participants":
            value = [[getattr(p, f) for f in _PARTICIPANT_FIELDS] for p in value]
        elif name == "entries":
            value = [(*entry[:-1], _LISTED_MARK) if listed(entry) else entry for entry in value]
        elif isinstance(value, list):
            value = value.copy()
        elif isinstance(value, Mapping):
            value = dict(value)
        values[name] = value
    return {
        "v": SCHEMA_VERSION,
        "record": values,
        "verdict": {"status": verdict.status, "name": verdict.name,
                    "findings": [[f.rule, f.severity, f.section, f.evidence, f.next_step]
                                 for f in verdict.findings]},
        "trace_id": trace_id,
    }


def decode(doc: dict[str, Any]) -> StoredCall:
    """The call of a document written by encode (this version or an older one)."""
    values = {k: v for k, v in doc["record"].items() if k in _FIELDS}
    for name in _PAIRS:
        if values.get(name) is not None:
            values[name] = tuple(values[name])
    if values.get("media_open"):
        values["media_open"] = {k: tuple(v) for k, v in values["media_open"].items()}
    values["participants"] = [ParticipantRecord(*p) for p in values.get("participants", ())]
    values["entries"] = [
        (*e[:-1], LISTED) if e and e[-1] == _LISTED_MARK else tuple(e)
        for e in values.get("entries", ())]
    v = doc["verdict"]
    verdict = Verdict(v["status"], v["name"], tuple(Finding(*f) for f in v["findings"]))
    return StoredCall(CallRecord(**values), verdict, doc.get("trace_id"))


@dataclass(slots=True, frozen=True)
class HistoryFilter:
    """Which calls a listing wants, newest first: `before` is a (started_at, sid) position
    (a cursor); `state` is failed or ended; `verdict` a status or a rule name."""

    room: str | None = None
    since: float | None = None
    until: float | None = None
    before: tuple[float, str] | None = None
    state: str | None = None
    verdict: str | None = None


class HistoryMetrics:
    """Finished calls written, dropped (queue full, write failed) and kept."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.written = cast(Counter, instrument(SPECS["history_written"], registry))
        self.dropped = cast(Counter, instrument(SPECS["history_dropped"], registry))
        self.kept = cast(Gauge, instrument(SPECS["history_calls"], registry))


class History:
    """The history file: `open` on start, `add` finished calls, `find` and `latest` to read,
    `close` on stop (blocking: it drains the queue)."""

    def __init__(self, path: str, metrics: HistoryMetrics, max_age_days: float = 14.0,
                 max_calls: int = 100_000, queue_max: int = QUEUE_MAX,
                 max_pages: int | None = None) -> None:
        self.path = path
        self.metrics = metrics
        self.max_age = max_age_days * 86400
        self.max_calls = max_calls
        self.max_pages = max_pages  # SQLite's max_page_count: tests simulate a full disk
        self.usable = False
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_max)
        self._writer: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._rows = 0
        self._pruned_at = 0.0
        self._errors = RateLimitedLog(log, interval=60.0)
        self._reads = ThreadPoolExecutor(1, thread_name_prefix="history-read")
        self._local = threading.local()

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> bool:
        """Open (create) the file and start the writer; on failure log one line and stay off."""
        try:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            conn = self._connect()
            with conn:
                conn.executescript(_SCHEMA)
            self._writer = conn
            self._prune()
        except (sqlite3.Error, OSError) as exc:
            log.error("history %s unusable (%s): finished calls are kept in memory only "
                      "(--recent-calls), and counted in avatar_monitor_history_dropped_total",
                      self.path, exc)
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            return False
        self.usable = True
        self._thread = threading.Thread(target=self._run, name="history-write", daemon=True)
        self._thread.start()
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer and the reader (blocks up to `timeout`)."""
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                log.error("history writer stuck: %d finished calls not written",
                          self._queue.qsize())
            self._thread.join(timeout)
        self._reads.submit(self._close_reader).result(timeout)
        self._reads.shutdown(wait=False)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if self.max_pages is not None:
            conn.execute(f"PRAGMA max_page_count={int(self.max_pages)}")
        return conn

    # -- writing -----------------------------------------------------------------------------

    def add(self, record: CallRecord, verdict: Verdict, trace_id: str | None = None) -> None:
        """Queue a finished call (on the event loop: a copy and a queue put, never a wait)."""
        if not self.usable:
            self.metrics.dropped.labels("write_failed").inc()
            return
        doc = encode(record, verdict, trace_id)
        try:
            self._queue.put_nowait(doc)
        except queue.Full:
            self.metrics.dropped.labels("queue_full").inc()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [] if item is None else [item]
            stopping = item is None
            until = time.monotonic() + BATCH_WAIT
            while not stopping and len(batch) < BATCH_MAX:
                try:
                    item = self._queue.get(timeout=max(until - time.monotonic(), 0))
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                self._write(batch)
            if stopping:
                if self._writer is not None:
                    self._writer.close()
                return

    def _write(self, batch: list[dict[str, Any]]) -> None:
        assert self._writer is not None
        rows, batch = self._encode(batch)
        if not batch:
            return
        try:
            with self._writer:  # one statement: the GIL is given up and taken back once
                self._writer.execute(_INSERT, (rows,))
            self.metrics.written.inc(len(batch))
            self._rows += len(batch)
            if self._rows > self.max_calls or time.monotonic() - self._pruned_at > PRUNE_INTERVAL:
                self._prune()
            else:
                self.metrics.kept.set(self._rows)
        except (sqlite3.Error, OSError, ValueError, TypeError) as exc:
            self.metrics.dropped.labels("write_failed").inc(len(batch))
            self._errors.warning("write", "history %s: %d finished call(s) not written: %s",
                                 self.path, len(batch), exc)

    def _encode(self, batch: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        """The batch's rows as one JSON array, and the documents in it: one that cannot be
        encoded is dropped and counted alone, the rest of its batch is still written."""
        try:
            return _dumps([_row(doc) for doc in batch]), batch
        except (TypeError, ValueError):
            pass
        good: list[dict[str, Any]] = []
        for doc in batch:
            try:
                _dumps(_row(doc))
            except (TypeError, ValueError) as exc:
                self.metrics.dropped.labels("write_failed").inc()
                self._errors.warning("encode", "history %s: a finished call not written: %s",
                                     self.path, exc)
            else:
                good.append(doc)
        return (_dumps([_row(doc) for doc in good]) if good else ""), good

    def _prune(self) -> None:
        """Delete calls older than the age bound, then the oldest beyond the count bound (down
        to 99 % of it, so a full history prunes once per 1 % of writes, not at every one)."""
        assert self._writer is not None
        with self._writer:
            self._writer.execute("DELETE FROM calls WHERE started_at < ?",
                                 (time.time() - self.max_age,))
            (rows,) = self._writer.execute("SELECT count(*) FROM calls").fetchone()
            if rows > self.max_calls:
                excess = rows - (self.max_calls - self.max_calls // 100)
                self._writer.execute(
                    "DELETE FROM calls WHERE id IN "
                    "(SELECT id FROM calls ORDER BY started_at, sid LIMIT ?)", (excess,))
                rows -= excess
        self._rows = rows
        self._pruned_at = time.monotonic()
        self.metrics.kept.set(rows)

    # -- reading -----------------------------------------------------------------------------

    async def find(self, where: HistoryFilter, limit: int) -> list[StoredCall]:
        """Up to `limit` calls matching, newest first ([] when the history is off or fails)."""
        return await self._read(self._find, where, limit)

    async def latest(self, room: str, sid: str | None = None) -> StoredCall | None:
        """The room's newest call in the history, or its newest with that sid."""
        found = await self._read(self._latest, room, sid)
        return found[0] if found else None

    async def by_sid(self, sid: str) -> StoredCall | None:
        """The call with this room sid in the history."""
        found = await self._read(self._by_sid, sid)
        return found[0] if found else None

    async def _read(self, query: Callable[..., list[StoredCall]], *args: Any
                    ) -> list[StoredCall]:
        if not self.usable:
            return []
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reads, query, *args)
        except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
            self._errors.warning("read", "history %s unreadable (%s): answering from memory",
                                 self.path, exc)
            return []

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=5.0)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
        return conn

    def _close_reader(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _find(self, where: HistoryFilter, limit: int) -> list[StoredCall]:
        clauses: list[str] = []
        args: list[Any] = []
        if where.room is not None:
            clauses.append("room = ?")
            args.append(where.room)
        if where.since is not None:
            clauses.append("started_at >= ?")
            args.append(where.since)
        if where.until is not None:
            clauses.append("started_at < ?")
            args.append(where.until)
        if where.before is not None:
            clauses.append("(started_at < ? OR (started_at = ? AND sid < ?))")
            args += [where.before[0], where.before[0], where.before[1]]
        if where.state is not None:
            clauses.append("state = ?")
            args.append(where.state)
        if where.verdict is not None:
            clauses.append("status = ?" if where.verdict in STATUSES else "verdict = ?")
            args.append(where.verdict)
        sql = "SELECT doc FROM calls"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY started_at DESC, sid DESC LIMIT ?"
        rows = self._reader().execute(sql, (*args, limit)).fetchall()
        return [decode(json.loads(doc)) for (doc,) in rows]

    def _latest(self, room: str, sid: str | None) -> list[StoredCall]:
        sql, args = "SELECT doc FROM calls WHERE room = ?", [room]
        if sid is not None:
            sql += " AND sid = ?"
            args.append(sid)
        rows = self._reader().execute(
            sql + " ORDER BY started_at DESC, sid DESC LIMIT 1", args).fetchall()
        return [decode(json.loads(doc)) for (doc,) in rows]


    def _by_sid(self, sid: str) -> list[StoredCall]:
        rows = self._reader().execute(
            "SELECT doc FROM calls WHERE sid = ? ORDER BY started_at DESC LIMIT 1",
            [sid]).fetchall()
        return [decode(json.loads(doc)) for (doc,) in rows]


def _dumps(value: Any) -> str:
    """Compact JSON text. orjson is much faster, and the writer holds the GIL while encoding;
    what orjson refuses (an integer beyond 64 bits, a lone surrogate...) gets `json`'s answer."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _row(doc: dict[str, Any]) -> list[Any]:
    """The row of a document: its indexed columns and the document."""
    record, verdict = doc["record"], doc["verdict"]
    started, ended = record["started_at"], record["ended_at"]
    failed = record["avatar_joined_at"] is None and record["startup_failure"] is not None
    return [record["sid"], record["room"], started, ended if ended is not None else started,
            "failed" if failed else "ended", verdict["status"], verdict["name"],
            SCHEMA_VERSION, doc]
