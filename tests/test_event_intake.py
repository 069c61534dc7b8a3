"""POST /v1/events over real HTTP: authentication, schema errors, size limit; nothing lost."""

from __future__ import annotations

import datetime
import json

import pytest

from tests.conftest import RunningMonitor
from tests.webhooks import KEY, SECRET, access_token

ROOM = "call-events"
GOOD = {"v": 1, "type": "pipeline_error", "component": "tts", "recoverable": False,
        "room": ROOM}


def token(room: str | None = ROOM, key: str = KEY, secret: str = SECRET,
          ttl: datetime.timedelta = datetime.timedelta(minutes=5)) -> str:
    return access_token(room, key, secret, ttl)


async def post(sidecar: RunningMonitor, body: bytes | dict, auth: str | None = None
               ) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token()}" if auth is None else auth}
    async with sidecar.http.post(sidecar.url + "/v1/events", data=data,
                                 headers=headers) as resp:
        return resp.status, await resp.json()


async def rejected(sidecar: RunningMonitor, reason: str) -> float | None:
    return await sidecar.value("avatar_monitor_reported_events_rejected_total", reason=reason)


async def assert_good_event_still_counts(sidecar: RunningMonitor, before: float) -> None:
    assert await post(sidecar, GOOD) == (202, {"status": "buffered"})
    assert await sidecar.value("avatar_pipeline_errors_total", component="tts",
                               recoverable="false") == before + 1


async def test_a_good_event_is_accepted(sidecar: RunningMonitor) -> None:
    await assert_good_event_still_counts(sidecar, 0)
    status, reply = await post(sidecar, {**GOOD, "id": "once"})
    assert (status, reply) == (202, {"status": "buffered"})
    assert await post(sidecar, {**GOOD, "id": "once"}) == (202, {"status": "duplicate"})
    unscoped = f"Bearer {token(room=None)}"  # a token without a room may report for any room
    assert (await post(sidecar, {**GOOD, "room": "other"}, unscoped))[0] == 202


UNAUTHORIZED = {
    "missing": "",
    "not a jwt": "Bearer not-a-jwt",
    "wrong secret": f"Bearer {token(secret='another-secret-another-secret-123')}",
    "wrong key": f"Bearer {token(key='another-key')}",
    "expired": f"Bearer {token(ttl=datetime.timedelta(minutes=-5))}",
}


@pytest.mark.parametrize("case", list(UNAUTHORIZED))
async def test_unauthenticated(sidecar: RunningMonitor, case: str) -> None:
    status, reply = await post(sidecar, GOOD, UNAUTHORIZED[case])
    assert status == 401
    assert reply["error"] == "unauthorized" and reply["detail"]
    assert await rejected(sidecar, "unauthorized") == 1
    await assert_good_event_still_counts(sidecar, 0)


async def test_a_token_in_the_query_is_not_taken(sidecar: RunningMonitor) -> None:
    """`?token=` is for the status page in a browser only."""
    async with sidecar.http.post(f"{sidecar.url}/v1/events?token={token()}",
                                 data=json.dumps(GOOD).encode()) as resp:
        assert resp.status == 401
    await assert_good_event_still_counts(sidecar, 0)


async def test_a_token_for_another_room_is_forbidden(sidecar: RunningMonitor) -> None:
    status, reply = await post(sidecar, GOOD, f"Bearer {token(room='elsewhere')}")
    assert (status, reply["error"]) == (403, "forbidden")
    assert await rejected(sidecar, "forbidden") == 1
    await assert_good_event_still_counts(sidecar, 0)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b"\xff\xfe", "not JSON"),
        ({**GOOD, "room": ""}, "room must be"),
        ({k: v for k, v in GOOD.items() if k != "room"}, "room must be"),
        ({**GOOD, "room": "r" * 300}, "room must be"),
        ({**GOOD, "room_sid": 5}, "room_sid"),
        ({**GOOD, "v": 2}, "v must be 1"),
        ({**GOOD, "type": "hello"}, "type must be one of"),
        ({**GOOD, "recoverable": "no"}, "recoverable"),
        ({**GOOD, "type": "session_closed"}, "reason"),
        ({**GOOD, "type": "agent_latency", "e2e": float("inf")}, "e2e must be"),
        ({**GOOD, "id": 5}, "id must be"),
    ],
)
async def test_bad_events_are_400_with_a_reason(sidecar: RunningMonitor, body: bytes | dict,
                                                detail: str) -> None:
    status, reply = await post(sidecar, body)
    assert status == 400
    assert reply["error"] == "malformed"
    assert detail in reply["detail"]
    assert await rejected(sidecar, "malformed") == 1
    await assert_good_event_still_counts(sidecar, 0)


async def test_oversized_bodies_are_413(sidecar: RunningMonitor) -> None:
    big = json.dumps({**GOOD, "padding": "x" * 70_000}).encode()
    assert (await post(sidecar, big))[0] == 413

    async def chunked():  # no Content-Length: the limit applies while reading
        for _ in range(10):
            yield b" " * 10_000

    headers = {"Authorization": f"Bearer {token()}"}
    async with sidecar.http.post(sidecar.url + "/v1/events", data=chunked(),
                                 headers=headers) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"] == "too_large"
    assert await rejected(sidecar, "too_large") == 2
    await assert_good_event_still_counts(sidecar, 0)
