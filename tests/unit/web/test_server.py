"""Hostile HTTP clients against a real server on loopback: bodies cut short or stalled, idle and
half-sent connections, trailing data, failing handlers. Each is answered or closed in bounded
time, counted, and logged in a few bounded lines without bodies; a good request after still
works."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from typing import Any

import pytest

from monitor.web import server as http_server
from tests.support.agent_reports import GOOD, start_call, token
from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import Room, user

MARK = b"BODY-CONTENT-"


async def open_raw(sidecar: RunningMonitor) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = sidecar.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def head(path: str, length: int, auth: str = "") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: sidecar", f"Content-Length: {length}",
             "Content-Type: application/json"]
    if auth:
        lines.append(f"Authorization: Bearer {auth}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, as a client that crashed mid-body."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


async def good_webhook_still_counts(sidecar: RunningMonitor) -> None:
    status, _ = await sidecar.send(Room().started())
    assert status == 200


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.INFO)
    return caplog


async def test_resets_mid_body_and_trailing_data_log_little_and_no_body(
        sidecar: RunningMonitor, server_log: pytest.LogCaptureFixture) -> None:
    for path in ("/webhook", "/v1/events"):
        for _ in range(100):
            _, writer = await open_raw(sidecar)
            writer.write(head(path, 5000, token()) + b"{" + MARK * 50)
            await writer.drain()
            reset(writer)
        # A complete request followed by 130 KB that is no request at all.
        reader, writer = await open_raw(sidecar)
        writer.write(head(path, 2) + b"{}" + MARK * 10_000 + b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.split(b" ", 2)[1].startswith(b"4")  # answered as a bad request
        writer.close()
    await sidecar.wait_for("avatar_monitor_webhooks_rejected_total", 100, reason="malformed")
    await sidecar.wait_for("avatar_monitor_reported_events_rejected_total", 100,
                           reason="malformed")
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in server_log.records)
    assert MARK.decode() not in text
    assert not any(r.exc_info for r in server_log.records if r.name.startswith("aiohttp"))
    assert len(text) < 4_000, text[:2000]
    assert await sidecar.value("avatar_monitor_http_failures_total", endpoint="webhook") == 0
    await good_webhook_still_counts(sidecar)


async def test_a_stalled_body_is_answered_408_and_its_connection_closed(
        start_monitor: StartMonitor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server, "BODY_READ_SECONDS", 0.5)
    sidecar = await start_monitor()
    for path, metric in (("/webhook", "avatar_monitor_webhooks_rejected_total"),
                         ("/v1/events", "avatar_monitor_reported_events_rejected_total")):
        reader, writer = await open_raw(sidecar)
        writer.write(head(path, 1000, token()) + b"{")
        await writer.drain()
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 5)  # to EOF: the server closed it
        assert time.monotonic() - started < 3
        assert answer.startswith(b"HTTP/1.1 408") and b'"timeout"' in answer
        writer.close()
        assert await sidecar.value(metric, reason="timeout") == 1
    await good_webhook_still_counts(sidecar)


async def test_idle_and_half_sent_connections_are_closed(
        start_monitor: StartMonitor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server, "IDLE_SECONDS", 0.5)
    sidecar = await start_monitor()
    idle = await open_raw(sidecar)
    half = await open_raw(sidecar)
    half[1].write(b"POST /webhook HTTP/1.1\r\nHost: sidecar\r\nContent-Le")
    await half[1].drain()
    started = time.monotonic()
    for reader, writer in (idle, half):
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()
    assert time.monotonic() - started < 3
    await good_webhook_still_counts(sidecar)


async def test_a_failing_handler_is_a_counted_500_and_the_next_request_works(
        sidecar: RunningMonitor, monkeypatch: pytest.MonkeyPatch) -> None:
    await start_call(sidecar)

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sidecar.monitor.bridge, "accept", broken)
    headers = {"Authorization": f"Bearer {token()}"}
    async with sidecar.http.post(sidecar.url + "/v1/events", json=GOOD,
                                 headers=headers) as resp:
        assert resp.status == 500
        assert (await resp.json())["error"] == "internal"
    assert await sidecar.value("avatar_monitor_reported_events_rejected_total",
                               reason="internal") == 1
    assert await sidecar.value("avatar_monitor_http_failures_total", endpoint="events") == 1
    monkeypatch.undo()
    async with sidecar.http.post(sidecar.url + "/v1/events", json=GOOD,
                                 headers=headers) as resp:
        assert (resp.status, await resp.json()) == (202, {"status": "applied"})


async def test_a_huge_created_at_is_malformed_not_a_500(sidecar: RunningMonitor) -> None:
    """A signed body whose createdAt has 4,000 digits: livekit-api refuses it, so do we."""
    from tests.support.webhooks import encode, sign

    body = encode(Room().joined(user(time.time())))
    body = body.replace(b'"createdAt": "', b'"createdAt": "' + b"1" * 4000, 1)
    status, reply = await sidecar.post(body, {"Authorization": sign(body)})
    assert (status, reply["error"]) == (400, "malformed")
    assert await sidecar.value("avatar_monitor_http_failures_total", endpoint="webhook") == 0
    await good_webhook_still_counts(sidecar)


async def test_a_failing_webhook_is_a_counted_500_and_the_others_in_its_batch_count(
        sidecar: RunningMonitor, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug while applying one webhook fails that request alone, not the requests decided in
    the same batch."""
    from tests.support.webhooks import signed

    tracker = sidecar.monitor.tracker
    apply = tracker.apply
    rooms = [Room() for _ in range(5)]

    def broken_for_one(event: Any, now: float) -> None:
        if event.room_name == rooms[2].name:
            raise RuntimeError("a bug")
        apply(event, now)

    monkeypatch.setattr(tracker, "apply", broken_for_one)
    at = time.time()
    answers = await asyncio.gather(*(sidecar.post(*signed(room.joined(user(at))))
                                     for room in rooms))
    assert [status for status, _ in answers] == [200, 200, 500, 200, 200]
    assert answers[2][1]["error"] == "internal"
    assert await sidecar.value("avatar_monitor_http_failures_total", endpoint="webhook") == 1
    assert await sidecar.value("avatar_calls_started_total") == 4
