"""Every class of bad input gets a clear error, a counter and no crash; good events still count."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.support.served import RunningMonitor, StartMonitor
from tests.support.webhooks import Room, encode, sign, signed, user


def good_event() -> tuple[bytes, dict[str, str]]:
    body = encode(Room().joined(user(time.time())))
    return body, {"Authorization": sign(body), "Content-Type": "application/webhook+json"}


async def assert_still_counts(sidecar: RunningMonitor, started_before: float) -> None:
    status, reply = await sidecar.post(*good_event())
    assert (status, reply) == (200, {"status": "ok"})
    assert await sidecar.value("avatar_calls_started_total") == started_before + 1


WRONG_SECRET = "wrong-secret-wrong-secret-wrong-secret"
UNAUTHORIZED = {
    "missing": (lambda body: {}, "missing Authorization header"),
    "not a jwt": (lambda body: {"Authorization": "not-a-jwt"}, "invalid token"),
    "empty segments": (lambda body: {"Authorization": "a.b.c"}, "invalid token"),
    "other body": (lambda body: {"Authorization": sign(b"another body")}, "body hash mismatch"),
    "wrong secret": (lambda body: {"Authorization": sign(body, secret=WRONG_SECRET)},
                     "bad signature"),
    "wrong key": (lambda body: {"Authorization": sign(body, key="wrong-key")}, "unknown issuer"),
}


@pytest.mark.parametrize("case", list(UNAUTHORIZED))
async def test_unauthorized(sidecar: RunningMonitor, case: str) -> None:
    make_headers, detail = UNAUTHORIZED[case]
    body, _ = good_event()
    status, reply = await sidecar.post(body, make_headers(body))
    assert status == 401
    assert reply["error"] == "unauthorized"
    assert detail in reply["detail"]
    assert await sidecar.value("avatar_monitor_webhooks_rejected_total",
                               reason="unauthorized") == 1
    assert await sidecar.value("avatar_calls_started_total") == 0
    await assert_still_counts(sidecar, 0)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2, 3]",
        b'{"event": 5}',
        b'{"event": "participant_joined", "id": ["a list"]}',
        b'{"event": "participant_joined", "createdAt": "yesterday"}',
        b'{"event": "participant_joined", "participant": {"kind": "NO_SUCH_KIND", "sid": 1}}',
        b"\xff\xfe\x00",
    ],
)
async def test_malformed(sidecar: RunningMonitor, body: bytes) -> None:
    status, reply = await sidecar.post(body, {"Authorization": sign(body)})
    assert status == 400, reply
    assert reply["error"] == "malformed"
    assert await sidecar.value("avatar_monitor_webhooks_rejected_total", reason="malformed") == 1
    await assert_still_counts(sidecar, 0)


def joined_with(old: str, new: str) -> bytes:
    """A good participant_joined body with one edit."""
    body, _ = good_event()
    assert old.encode() in body
    return body.replace(old.encode(), new.encode(), 1)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (lambda: joined_with('"createdAt": "', '"createdAt": "9223372036854775808", "x": "'),
         "not a WebhookEvent: Failed to parse createdAt field"),
        (lambda: joined_with('"createdAt": "', '"createdAt": -9223372036854775809, "x": "'),
         "not a WebhookEvent: Failed to parse createdAt field"),
        (lambda: joined_with('"identity": ', '"tracks": [{"width": -1}], "identity": '),
         "not a WebhookEvent: Failed to parse participant field"),
        (lambda: joined_with('"identity": ', '"attributes": {"a": "\\ud800"}, "identity": '),
         "not a WebhookEvent: Failed to parse participant field"),
        (lambda: joined_with('"room": {', '"room": {"sid": "RM_x", '), "duplicate keys"),
        (lambda: b"\xef\xbb\xbf" + good_event()[0], "a byte order mark"),
        (lambda: good_event()[0] + b"\xff", "not UTF-8"),
    ],
    ids=["int64 too big", "int64 too small", "uint32 negative, deep", "a lone surrogate",
         "duplicate keys", "a byte order mark", "not UTF-8"],
)
async def test_malformed_with_reason(sidecar: RunningMonitor, body: Callable[[], bytes],
                                     detail: str) -> None:
    """Bodies livekit-api refuses, a value out of its field's range or the JSON itself: a 400
    whose detail says why."""
    data = body()
    status, reply = await sidecar.post(data, {"Authorization": sign(data)})
    assert (status, reply["error"]) == (400, "malformed"), reply
    assert reply["detail"].startswith(detail), reply
    assert await sidecar.value("avatar_monitor_webhooks_rejected_total", reason="malformed") == 1
    assert await sidecar.value("avatar_calls_started_total") == 0
    await assert_still_counts(sidecar, 0)


async def test_too_large_by_content_length(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(max_body_bytes=1000)
    body = b"{" + b" " * 2000 + b"}"
    status, reply = await sidecar.post(body, {"Authorization": sign(body)})
    assert status == 413
    assert reply["error"] == "too_large"
    assert await sidecar.value("avatar_monitor_webhooks_rejected_total", reason="too_large") == 1
    await assert_still_counts(sidecar, 0)


async def test_too_large_chunked(start_monitor: StartMonitor) -> None:
    sidecar = await start_monitor(max_body_bytes=1000)

    async def chunks():
        for _ in range(10):
            yield b" " * 500

    async with sidecar.http.post(sidecar.url + "/webhook", data=chunks(),
                                 headers={"Authorization": "x.y.z"}) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"] == "too_large"
    assert await sidecar.value("avatar_monitor_webhooks_rejected_total", reason="too_large") == 1
    await assert_still_counts(sidecar, 0)


async def test_unknown_event_is_counted_and_ignored(sidecar: RunningMonitor) -> None:
    event = Room().event("participant_did_a_dance", time.time())
    status, reply = await sidecar.send(event)
    assert (status, reply) == (200, {"status": "ignored"})
    assert await sidecar.value("avatar_monitor_webhooks_total", event="other") == 1
    await assert_still_counts(sidecar, 0)


async def test_bearer_prefix_is_accepted(sidecar: RunningMonitor) -> None:
    body, headers = good_event()
    status, _ = await sidecar.post(body, {"Authorization": "Bearer " + headers["Authorization"]})
    assert status == 200
    assert await sidecar.value("avatar_calls_started_total") == 1


async def test_health_and_wrong_method(sidecar: RunningMonitor) -> None:
    async with sidecar.http.get(sidecar.url + "/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}
    async with sidecar.http.get(sidecar.url + "/webhook") as resp:
        assert resp.status == 405


async def test_enum_numbers_a_newer_server_may_send_are_kept(sidecar: RunningMonitor) -> None:
    """livekit-api accepts an enum number it has no name for: the event counts, as
    `unknown_reason` (a disconnect reason) or as neither user nor agent (a participant kind),
    never as a label from outside the closed sets."""
    t = time.time()
    room, caller = Room(), user(t)
    for event in (room.joined(caller), room.left(caller, t + 5)):
        event.participant.disconnect_reason = 99  # type: ignore[assignment]
        body = encode(event)
        status, reply = await sidecar.post(body, {"Authorization": sign(body)})
        assert (status, reply) == (200, {"status": "ok"})
    assert await sidecar.value("avatar_disconnects_total", role="user",
                               reason="unknown_reason") == 1
    assert await sidecar.value("avatar_calls_abandoned_total") == 1
    stranger = user(t + 10)  # after the call ended: a user here would start a new one
    stranger.kind = 42  # type: ignore[assignment]
    body = encode(room.joined(stranger))
    status, _ = await sidecar.post(body, {"Authorization": sign(body)})
    assert status == 200
    assert await sidecar.value("avatar_calls_started_total") == 1  # not a user: no new call


async def test_requests_at_once_are_each_decided_as_alone(sidecar: RunningMonitor) -> None:
    """Concurrent requests (decided in batches) get the answers and counts they would one by
    one: a repeat counts once whichever copy comes first, a forgery or a bad body fails alone."""
    at = time.time()
    goods = [signed(Room().joined(user(at))) for _ in range(20)]
    forged = [(body, {"Authorization": sign(body, secret=WRONG_SECRET)}) for body, _ in goods[:3]]
    malformed = [(b'{"event": 5}', {"Authorization": sign(b'{"event": 5}')})] * 2
    requests = goods + goods[:5] + forged + malformed
    answers = await asyncio.gather(*(sidecar.post(body, headers) for body, headers in requests))
    assert sorted(status for status, _ in answers) == [200] * 25 + [400] * 2 + [401] * 3
    assert sorted(reply.get("status", reply.get("error")) for _, reply in answers) == sorted(
        ["ok"] * 20 + ["duplicate"] * 5 + ["unauthorized"] * 3 + ["malformed"] * 2)
    assert await sidecar.value("avatar_calls_started_total") == 20
    assert await sidecar.value("avatar_monitor_webhooks_rejected_total", reason="duplicate") == 5
    assert await sidecar.value("avatar_monitor_webhooks_rejected_total",
                               reason="unauthorized") == 3
    assert await sidecar.value("avatar_monitor_webhooks_rejected_total", reason="malformed") == 2
