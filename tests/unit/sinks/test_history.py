"""The call history (--history): finished calls written to SQLite after their linger, read back
by /v1/calls (filters, cursor) and /v1/calls/{room} after a restart; retention by age and count;
a full queue, a full disk, a corrupt or unwritable file counted and logged, memory still served."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.diagnosis.api import encode_cursor
from monitor.diagnosis.verdicts import Finding, Verdict
from monitor.sinks.history import History, HistoryFilter, HistoryMetrics, decode, encode
from monitor.sinks.records import LISTED, CallRecord, ParticipantRecord, listed
from tests.support.calls import Call, abandoned, get, healthy, in_progress, network
from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import Room, avatar, user

LINGER = 10.0


async def written(sidecar: RunningMonitor, calls: int) -> None:
    """End every ended call's linger now, and wait until the history has written `calls`."""
    sidecar.monitor.tracker.expire(time.time() + LINGER + 1)
    await sidecar.wait_for("avatar_monitor_history_written_total", calls)


def full_record(room: str = "room-a", sid: str = "RM_1", started: float = 1_700_000_000.0
                ) -> CallRecord:
    """A record with every kind of field set."""
    record = CallRecord(room, sid, started, ended_at=started + 60, observed=True,
                        observed_at=started + 1, avatar_joined_at=started + 2, join_latency=2.0,
                        expects_ready=True, ready_at=started + 3, ready_latency=3.0,
                        first_tracks={"audio": 0.5, "video": 0.6}, first_speech=1.5,
                        startup_message="x", departure="network",
                        avatar_reason="connection_timeout", session_seconds=58.0,
                        unrecoverable=("tts", started + 50), recoverable_errors=2,
                        unattended=(started + 40, started + 45), media_interruptions=1,
                        media_open={"audio": ("muted", started + 30)},
                        media_longest=("video", "unpublished", started + 20, 8.0),
                        media_lost=("audio", "muted", started + 30, 30.0))
    record.participants.append(ParticipantRecord("user-1", "user", started, started + 59,
                                                 "client_initiated"))
    record.add(started, "call_started")
    record.add(started + 2, "avatar_joined", "lemonslice-avatar-agent", 2.0)
    record.add(started + 59, "participant_left", "user-1", "client_initiated")
    record.entries[-1] = (*record.entries[-1], LISTED)  # shown by a RoomService listing
    return record


VERDICT = Verdict("failed", "network", (Finding("network", "failed", "s", "evidence", "next"),))


def test_a_record_and_its_verdict_survive_encoding() -> None:
    record = full_record()
    stored = decode(json.loads(json.dumps(encode(record, VERDICT, "ab" * 16))))
    assert stored.record == record
    assert stored.verdict == VERDICT
    assert stored.trace_id == "ab" * 16
    assert [listed(entry) for entry in stored.record.entries] == [False, False, True]


def test_an_encoding_is_a_snapshot_and_unknown_fields_are_ignored() -> None:
    record = full_record()
    doc = encode(record, VERDICT)
    record.add(record.started_at + 70, "late", "participant_left", "x")
    doc["record"]["from_a_later_version"] = 1
    assert len(decode(doc).record.entries) == 3


def history(path: Path, **kwargs: Any) -> tuple[History, HistoryMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = HistoryMetrics(registry)
    return History(str(path), metrics, **kwargs), metrics, registry


async def test_filters_cursor_order_and_a_reopened_file(tmp_path: Path) -> None:
    store, _, registry = history(tmp_path / "h.sqlite3")
    assert store.open()
    t = time.time() - 3600
    for i in range(10):
        verdict = VERDICT if i % 2 else Verdict("healthy", "healthy", ())
        store.add(full_record(f"room-{i % 3}", f"RM_{i:02d}", t + i), verdict)
    await asyncio.get_running_loop().run_in_executor(None, store.close)
    assert registry.get_sample_value("avatar_monitor_history_written_total") == 10

    store, _, _ = history(tmp_path / "h.sqlite3")
    assert store.open()
    try:
        everything = [s.record.sid for s in await store.find(HistoryFilter(), 100)]
        assert everything == [f"RM_{i:02d}" for i in reversed(range(10))]
        rooms = await store.find(HistoryFilter(room="room-1"), 100)
        assert [s.record.sid for s in rooms] == ["RM_07", "RM_04", "RM_01"]
        window = await store.find(HistoryFilter(since=t + 2, until=t + 5), 100)
        assert [s.record.sid for s in window] == ["RM_04", "RM_03", "RM_02"]
        failed = await store.find(HistoryFilter(verdict="network"), 2)
        assert [s.record.sid for s in failed] == ["RM_09", "RM_07"]
        assert len(await store.find(HistoryFilter(verdict="healthy"), 100)) == 5
        after = await store.find(HistoryFilter(before=(t + 5, "RM_05")), 2)
        assert [s.record.sid for s in after] == ["RM_04", "RM_03"]
        latest = await store.latest("room-0")
        assert latest is not None and latest.record.sid == "RM_09"
        earlier = await store.latest("room-0", "RM_03")
        assert earlier is not None and earlier.verdict == VERDICT
        assert await store.latest("room-0", "RM_04") is None  # that sid is another room's
    finally:
        store.close()


async def test_retention_by_age_and_by_count(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store, _, registry = history(path, max_age_days=1, max_calls=100)
    assert store.open()
    now = time.time()
    store.add(full_record("old", "RM_old", now - 2 * 86400), VERDICT)
    for i in range(150):
        store.add(full_record("new", f"RM_{i:03d}", now - 150 + i), VERDICT)
    await asyncio.get_running_loop().run_in_executor(None, store.close)
    rows = sqlite3.connect(path).execute("SELECT sid FROM calls ORDER BY started_at").fetchall()
    assert len(rows) <= 100
    assert rows[-1] == ("RM_149",)  # the oldest went first
    assert ("RM_old",) not in rows
    store, _, registry = history(path, max_age_days=1, max_calls=100)
    assert store.open()  # pruning by age on open, too
    store.close()
    assert registry.get_sample_value("avatar_monitor_history_calls") == len(rows)


async def test_a_full_queue_drops_and_counts_never_waits(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, registry = history(tmp_path / "h.sqlite3", queue_max=2)
    writing, release = threading.Event(), threading.Event()
    write = History._write

    def slow_write(self: History, batch: list[dict[str, Any]]) -> None:
        writing.set()
        release.wait(10)
        write(self, batch)

    monkeypatch.setattr(History, "_write", slow_write)
    assert store.open()
    store.add(full_record(sid="RM_0"), VERDICT)
    await asyncio.get_running_loop().run_in_executor(None, writing.wait, 10)
    started = time.monotonic()
    for i in range(1, 6):  # two fit in the queue, three do not
        store.add(full_record(sid=f"RM_{i}"), VERDICT)
    assert time.monotonic() - started < 0.5  # never waited for the writer
    assert registry.get_sample_value("avatar_monitor_history_dropped_total",
                                     {"reason": "queue_full"}) == 3
    release.set()
    await asyncio.get_running_loop().run_in_executor(None, store.close)
    assert registry.get_sample_value("avatar_monitor_history_written_total") == 3


async def test_a_call_that_cannot_be_encoded_loses_only_itself(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Queued together, one call whose record holds what JSON cannot carry is dropped and
    counted; the others of its batch are written."""
    store, _, registry = history(tmp_path / "h.sqlite3")
    assert store.open()
    now = time.time()
    bad = full_record(sid="RM_bad", started=now - 100)
    bad.add(bad.started_at + 1, "late", object())
    for record in (full_record(sid="RM_0", started=now - 101), bad,
                   full_record(sid="RM_1", started=now - 99)):
        store.add(record, VERDICT)
    await asyncio.get_running_loop().run_in_executor(None, store.close)
    assert registry.get_sample_value("avatar_monitor_history_written_total") == 2
    assert registry.get_sample_value("avatar_monitor_history_dropped_total",
                                     {"reason": "write_failed"}) == 1
    assert any("not written" in r.getMessage() for r in caplog.records)
    store, _, _ = history(tmp_path / "h.sqlite3")
    assert store.open()
    assert sorted(s.record.sid for s in await store.find(HistoryFilter(), 10)) == ["RM_0", "RM_1"]
    store.close()


async def test_a_full_disk_counts_failed_writes_and_reads_go_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # max_page_count: SQLite answers "database or disk is full" as on a full disk.
    store, _, registry = history(tmp_path / "h.sqlite3", max_pages=12)
    assert store.open()
    for i in range(200):
        record = full_record(sid=f"RM_{i:03d}", started=time.time() - 1000 + i)
        record.startup_message = "m" * 1000
        store.add(record, VERDICT)
    await asyncio.get_running_loop().run_in_executor(None, store.close)
    written_ = registry.get_sample_value("avatar_monitor_history_written_total") or 0
    failed = registry.get_sample_value("avatar_monitor_history_dropped_total",
                                       {"reason": "write_failed"}) or 0
    assert failed > 0 and written_ + failed == 200
    errors = [r for r in caplog.records if r.name == "monitor.sinks.history"]
    assert errors and "full" in errors[0].getMessage()
    assert len(errors) <= 2  # rate-limited: not one line per batch
    store, _, _ = history(tmp_path / "h.sqlite3")
    assert store.open()
    assert len(await store.find(HistoryFilter(), 1000)) == written_
    store.close()


@pytest.mark.parametrize("kind", ["corrupt", "unwritable"])
async def test_a_bad_file_is_one_error_line_and_memory_is_served(
        start_monitor: StartMonitor, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        kind: str) -> None:
    if kind == "corrupt":
        path = tmp_path / "h.sqlite3"
        path.write_bytes(b"not a database, " * 512)
    else:  # its directory is a file (as root, a read-only directory would still be written)
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "h.sqlite3"
    caplog.set_level(logging.INFO)
    sidecar = await start_monitor(history=str(path))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "finished calls are kept in memory only" in errors[0].message
    call = Call(sidecar, float(int(time.time()) - 100))
    await network(call)
    sidecar.monitor.tracker.expire(time.time() + LINGER + 1)
    assert (await call.verdict())["verdict"] == "network"  # from memory
    status, body = await get(sidecar, "/v1/calls")
    assert status == 200 and [c["room"] for c in body["calls"]] == [call.room.name]
    assert await sidecar.value("avatar_monitor_history_dropped_total",
                               reason="write_failed") == 1
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def test_a_call_is_the_same_after_a_restart(start_monitor: StartMonitor,
                                                  tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite3")
    sidecar = await start_monitor(history=path)
    t = float(int(time.time()) - 100)
    calls = [Call(sidecar, t), Call(sidecar, t + 1), Call(sidecar, t + 2)]
    await network(calls[0])
    await healthy(calls[1])
    await abandoned(calls[2])
    before = [await c.verdict() for c in calls]
    _, listed = await get(sidecar, "/v1/calls")
    await written(sidecar, 3)
    await sidecar.stop()

    again = await start_monitor(history=path)
    after = [(await get(again, f"/v1/calls/{c.room.name}"))[1] for c in calls]
    assert after == before
    assert [a["verdict"] for a in after] == ["network", "healthy", "abandoned"]
    _, relisted = await get(again, "/v1/calls")
    assert relisted == listed
    status, body = await get(again, f"/v1/calls/{calls[0].room.name}?sid={calls[0].room.sid}")
    assert status == 200 and body["sid"] == calls[0].room.sid
    status, _ = await get(again, f"/v1/calls/{calls[0].room.name}?sid=RM_nope")
    assert status == 404


async def test_calls_written_at_stop_even_while_lingering(start_monitor: StartMonitor,
                                                          tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite3")
    sidecar = await start_monitor(history=path)
    call = Call(sidecar, float(int(time.time()) - 100))
    await network(call)
    before = await call.verdict()
    await sidecar.stop()  # within the linger: written on the way out
    again = await start_monitor(history=path)
    assert (await get(again, f"/v1/calls/{call.room.name}"))[1] == before


async def test_an_earlier_call_of_a_room_by_its_sid(start_monitor: StartMonitor,
                                                    tmp_path: Path) -> None:
    sidecar = await start_monitor(history=str(tmp_path / "h.sqlite3"), recent_calls=1)
    t = float(int(time.time()) - 100)
    first = Call(sidecar, t)
    await network(first)
    second = Call(sidecar, t + 10)
    second.room = Room(first.room.name, t + 9)  # the same room name, a new room sid
    second.caller, second.face = user(t + 10), avatar(t + 12)
    await healthy(second)
    await written(sidecar, 2)
    status, body = await get(sidecar, f"/v1/calls/{first.room.name}")
    assert (status, body["sid"], body["verdict"]) == (200, second.room.sid, "healthy")
    status, body = await get(sidecar, f"/v1/calls/{first.room.name}?sid={first.room.sid}")
    assert (status, body["sid"], body["verdict"]) == (200, first.room.sid, "network")


async def test_pages_through_memory_and_history_once_each(start_monitor: StartMonitor,
                                                          tmp_path: Path) -> None:
    sidecar = await start_monitor(history=str(tmp_path / "h.sqlite3"), recent_calls=2)
    t = float(int(time.time()) - 200)
    calls = [Call(sidecar, t + i) for i in range(7)]
    for call in calls:
        await (network if calls.index(call) % 2 else healthy)(call)
    await written(sidecar, 7)
    live = Call(sidecar, 0)
    await in_progress(live)
    expected = [live.room.name, *(c.room.name for c in reversed(calls))]
    seen, cursor, pages = [], None, 0
    while True:
        query = "/v1/calls?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, body = await get(sidecar, query)
        assert status == 200, body
        seen += [c["room"] for c in body["calls"]]
        cursor, pages = body["next"], pages + 1
        if cursor is None:
            break
    assert seen == expected and pages == 3
    _, body = await get(sidecar, "/v1/calls?verdict=failed")  # repeated_length, 3 alike
    assert [c["room"] for c in body["calls"]] == [c.room.name for c in reversed(calls[1::2])]
    _, body = await get(sidecar, "/v1/calls?verdict=healthy&state=finished")
    assert [c["room"] for c in body["calls"]] == [c.room.name for c in reversed(calls[0::2])]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t + 2))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t + 4))
    _, body = await get(sidecar, f"/v1/calls?since={since}&until={until}")
    assert [c["room"] for c in body["calls"]] == [calls[3].room.name, calls[2].room.name]
    _, body = await get(sidecar, f"/v1/calls?room={calls[0].room.name}")
    assert [c["sid"] for c in body["calls"]] == [calls[0].room.sid]
    _, body = await get(sidecar, "/v1/calls?state=live")
    assert [c["room"] for c in body["calls"]] == [live.room.name]


@pytest.mark.parametrize("query", ["since=yesterday", "until=2025-13-01T00:00:00Z",
                                   "cursor=%%%", "cursor=" + encode_cursor((1.0, "x"))[:-2],
                                   "cursor=" + "A" * 5000])
async def test_bad_filters_are_400(sidecar: RunningMonitor, query: str) -> None:
    status, body = await get(sidecar, f"/v1/calls?{query}")
    assert (status, body["error"]) == (400, "bad_query"), query


HOSTILE_IDENTITY = '<script>alert(1)</script>[bold]\x1b]8;;x\x07'


async def test_hostile_input_is_kept_intact_and_served_inert(start_monitor: StartMonitor,
                                                             tmp_path: Path) -> None:
    path = str(tmp_path / "h.sqlite3")
    sidecar = await start_monitor(history=path, public_status=True)
    t = float(int(time.time()) - 100)
    long_room = Call(sidecar, t)
    long_room.room = Room("r" * 10_000, t - 1)
    marked = Call(sidecar, t + 1)
    marked.caller = user(t + 1, identity=HOSTILE_IDENTITY)
    await network(long_room)
    await network(marked)
    await written(sidecar, 2)
    await sidecar.stop()
    again = await start_monitor(history=path, public_status=True)
    _, body = await get(again, "/v1/calls")
    assert [c["room"] for c in body["calls"]] == [marked.room.name, "r" * 10_000]
    found = await again.monitor.status.lookup("r" * 10_000)
    assert found is not None and found[0].room == "r" * 10_000
    _, detail = await get(again, f"/v1/calls/{marked.room.name}")
    assert detail["participants"][0]["identity"] == HOSTILE_IDENTITY
    async with again.http.get(f"{again.url}/calls/{marked.room.name}") as resp:
        html = await resp.text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_history_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import build_parser
    from monitor.config import DEFAULT_HISTORY, config_from_args

    monkeypatch.setenv("LIVEKIT_API_KEY", "k")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "s")
    monkeypatch.delenv("AVATAR_MONITOR_HISTORY", raising=False)
    config = config_from_args(build_parser().parse_args(["serve"]))
    assert (config.history, config.history_days, config.history_max_calls) == (
        DEFAULT_HISTORY, 14.0, 100_000)
    config = config_from_args(build_parser().parse_args(
        ["serve", "--history", "", "--history-days", "2", "--history-max-calls", "10"]))
    assert (config.history, config.history_days, config.history_max_calls) == ("", 2.0, 10)
    monkeypatch.setenv("AVATAR_MONITOR_HISTORY", "/tmp/x.sqlite3")
    assert config_from_args(build_parser().parse_args(["serve"])).history == "/tmp/x.sqlite3"


def test_the_fast_encoding_writes_what_json_would() -> None:
    """orjson's text reads back as json's does, and what orjson refuses gets json's text."""
    from monitor.sinks.history import _dumps

    doc = encode(full_record(), Verdict("failed", "network", (Finding(
        "network", "error", "avatar", "avatar left with CONNECTION_TIMEOUT \u2013 \U0001f600",
        "check the network"),)), "0af7651916cd43dd8448eb211c80319c")
    assert json.loads(_dumps(doc)) == json.loads(json.dumps(doc))
    assert _dumps({"n": 2**70}) == '{"n":1180591620717411303424}'
    with pytest.raises(TypeError):
        _dumps({"marker": object()})
