"""POST /v1/events over real HTTP: only the voice agent's token for the call's room reports; each
forgery is refused and counted by reason, and the good report after it still counts."""

from __future__ import annotations

import datetime
import json
import time

import pytest

from tests.support.agent_reports import CALL, GOOD, ROOM, start_call, token
from tests.support.served import RunningMonitor
from tests.support.webhooks import Room, access_token, join_token

# The avatar's word forwarded by the voice agent, and the agent's state
SAID = {"v": 1, "type": "avatar_message", "topic": "lemonslice", "avatar": "avatar-1",
        "message": {"type": "error", "fatal": True}, "room": ROOM, "room_sid": CALL.sid}
STATE = {"v": 1, "type": "agent_state", "state": "speaking", "room": ROOM, "room_sid": CALL.sid}


async def post(sidecar: RunningMonitor, body: bytes | dict, auth: str | None = None
               ) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token()}" if auth is None else auth}
    async with sidecar.http.post(sidecar.url + "/v1/events", data=data,
                                 headers=headers) as resp:
        return resp.status, await resp.json()


async def rejected(sidecar: RunningMonitor, reason: str) -> float | None:
    return await sidecar.value("avatar_monitor_reported_events_rejected_total", reason=reason)


async def errors(sidecar: RunningMonitor) -> float | None:
    return await sidecar.value("avatar_pipeline_errors_total", component="tts",
                               recoverable="false")


async def assert_good_event_still_counts(sidecar: RunningMonitor, before: float) -> None:
    await start_call(sidecar)
    assert await post(sidecar, GOOD) == (202, {"status": "applied"})
    assert await errors(sidecar) == before + 1


async def test_a_good_event_is_accepted(sidecar: RunningMonitor) -> None:
    await assert_good_event_still_counts(sidecar, 0)
    status, reply = await post(sidecar, {**GOOD, "id": "once"})
    assert (status, reply) == (202, {"status": "applied"})
    assert await post(sidecar, {**GOOD, "id": "once"}) == (202, {"status": "duplicate"})
    without_sid = {k: v for k, v in GOOD.items() if k != "room_sid"}
    assert await post(sidecar, without_sid) == (202, {"status": "applied"})  # the room's call
    assert await errors(sidecar) == 3


async def test_the_avatars_word_and_the_agents_state_are_accepted(
        sidecar: RunningMonitor) -> None:
    await start_call(sidecar)
    assert await post(sidecar, {**SAID, "id": "avm-1"}) == (202, {"status": "applied"})
    assert await post(sidecar, {**SAID, "id": "avm-1"}) == (202, {"status": "duplicate"})
    assert await sidecar.value("avatar_pipeline_errors_total", component="avatar",
                               recoverable="false") == 1
    assert await post(sidecar, {**STATE, "state": "dreaming"}) == (202, {"status": "applied"})


async def test_a_report_before_its_call_waits_for_that_call(sidecar: RunningMonitor) -> None:
    assert await post(sidecar, GOOD) == (202, {"status": "buffered"})
    assert await errors(sidecar) == 0  # counted once applied to its call
    await start_call(sidecar)
    assert await errors(sidecar) == 1


async def test_invented_rooms_expire_and_count_as_nothing(sidecar: RunningMonitor) -> None:
    """An agent token for rooms with no call: buffered, then expired, never a failure."""
    for n in range(20):
        room = f"invented-{n}"
        startup = {"v": 1, "type": "startup_failure", "room": room, "room_sid": f"RM_x{n}"}
        assert await post(sidecar, startup, f"Bearer {token(room)}") == (
            202, {"status": "buffered"})
    no_sid = {"v": 1, "type": "startup_failure", "room": "invented-x"}
    assert await post(sidecar, no_sid, f"Bearer {token('invented-x')}") == (
        202, {"status": "unmatched"})
    pending = sidecar.monitor.bridge.pending
    sidecar.monitor.bridge.expire(time.time() + pending.settings.pending_seconds)
    assert await sidecar.value("avatar_monitor_reported_events_total", source="buffer",
                               outcome="expired") == 20
    assert await sidecar.value("avatar_startup_failures_total", cause="message") == 0
    await assert_good_event_still_counts(sidecar, 0)


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


FORGED = {
    # A frontend user's join token, for the very room: not the agent.
    "join token": ("forbidden", lambda: join_token(ROOM)),
    "no kind": ("forbidden", lambda: access_token(ROOM)),
    "kind standard": ("forbidden", lambda: access_token(ROOM, kind="standard")),
    "kind egress": ("forbidden", lambda: access_token(ROOM, kind="egress")),
    "agent, no room": ("foreign_room", lambda: token(room=None)),
    "agent, another room": ("foreign_room", lambda: token(room="elsewhere")),
}


@pytest.mark.parametrize("case", list(FORGED))
async def test_forged_reports_are_refused(sidecar: RunningMonitor, case: str) -> None:
    await start_call(sidecar)
    reason, make = FORGED[case]
    startup = {"v": 1, "type": "startup_failure", "room": ROOM, "room_sid": CALL.sid}
    for doc in (GOOD, startup):
        status, reply = await post(sidecar, doc, f"Bearer {make()}")
        assert (status, reply["error"]) == (403, reason)
    assert await rejected(sidecar, reason) == 2
    assert await errors(sidecar) == 0
    assert await sidecar.value("avatar_startup_failures_total", cause="message") == 0
    await assert_good_event_still_counts(sidecar, 0)


async def test_a_sid_of_another_room_is_refused(sidecar: RunningMonitor) -> None:
    """Room A's agent token, naming room A with room B's sid: B's call is not touched."""
    other = Room()
    await start_call(sidecar, other)
    status, reply = await post(sidecar, {**GOOD, "room_sid": other.sid})
    assert (status, reply["error"]) == (403, "foreign_room")
    assert await rejected(sidecar, "foreign_room") == 1
    assert await errors(sidecar) == 0
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
        ({**GOOD, "room_sid": "R" * 300}, "room_sid"),
        ({**GOOD, "v": 2}, "v must be 1"),
        ({**GOOD, "type": "hello"}, "type must be one of"),
        ({**GOOD, "recoverable": "no"}, "recoverable"),
        ({**GOOD, "type": "session_closed"}, "reason"),
        ({**GOOD, "type": "agent_latency", "e2e": float("inf")}, "e2e must be"),
        ({**GOOD, "id": 5}, "id must be"),
        ({**SAID, "v": 2}, "v must be 1"),
        ({**SAID, "topic": "avatar-monitor/events"}, "topic must be one of"),
        ({k: v for k, v in SAID.items() if k != "avatar"}, "avatar must be an identity"),
        ({**SAID, "avatar": ""}, "avatar must be an identity"),
        ({**SAID, "avatar": "a" * 257}, "avatar must be an identity"),
        ({**SAID, "message": '{"type": "bot_ready"}'}, "message must be the avatar's JSON"),
        ({**SAID, "message": {"type": "image_change_complete"}}, "message: type must be"),
        ({**SAID, "topic": "lemonslice/message", "message": {"type": "startup_failure"}},
         "message: type must be one of bot_ready"),
        ({**SAID, "message": {"type": "error", "fatal": "yes"}}, "message: fatal must be"),
        ({**SAID, "message": {"type": "metric", "time_to_first_push": -1}},
         "message: a metric value"),
        ({**SAID, "message": {"type": "metric", "video_duration_ms": 1650}},
         "message: a metric with no"),
        ({**STATE, "state": None}, "state must be a string"),
        ({**STATE, "at": -5}, "at must be"),
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
