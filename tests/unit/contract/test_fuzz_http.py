"""Fuzz (hypothesis, bounded by example count): signed webhook bodies and /v1/events bodies with
an agent token, mutated from good ones, against one real sidecar. No answer is a 500, no handler
fails, and the sidecar still counts a good event afterwards. docs/security.md has the figures."""

from __future__ import annotations

import json
import re
import time
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.agent_reports import GOOD, start_call, token
from tests.support.served import RunningMonitor
from tests.support.webhooks import Room, encode, sign, user

EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
WEBHOOK = json.loads(encode(Room().joined(user(time.time()))))
ANSWERS = {200, 202, 400, 401, 403, 413}

LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**400),
                                                          max_value=10**400),
    st.floats(), st.text(max_size=12), st.sampled_from(["\ud800", "\ufeff", "", "1e400"]),
)
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=10)


def paths(doc: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested objects."""
    found = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.append((*prefix, key))
            found.extend(paths(value, (*prefix, key)))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: dict) -> bytes:
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(paths(doc) or [("x",)]))
        target = doc
        for key in where[:-1]:
            target = target[key] if isinstance(target, dict) else {}
        if isinstance(target, dict):
            if draw(st.booleans()):
                target[where[-1]] = draw(VALUES)
            else:
                target.pop(where[-1], None)
    if draw(st.booleans()):
        doc[draw(st.text(max_size=6))] = draw(VALUES)
    text = json.dumps(doc)
    how = draw(st.sampled_from(["none", "none", "bom", "dup", "truncate", "bytes", "raw",
                                "digits"]))
    numbers = list(re.finditer(r"\d+", text))
    if how == "digits" and numbers:  # one number made huge, or its sign flipped
        at = draw(st.sampled_from(numbers))
        text = text[:at.start()] + draw(st.sampled_from(["9" * 4000, "-" + at.group(),
                                                          at.group() + "0" * 20])) \
            + text[at.end():]
    elif how == "bom":
        text = "\ufeff" + text
    elif how == "dup":
        text = text[:-1] + (", " if len(doc) else "") + '"room": "x"}'
    elif how == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    body = text.encode("utf-8", "surrogatepass")
    if how == "bytes":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=8)) + body[at:]
    elif how == "raw":
        body = draw(st.binary(max_size=64))
    return body


async def no_handler_failed(sidecar: RunningMonitor) -> None:
    for endpoint in ("webhook", "events"):
        assert await sidecar.value("avatar_monitor_http_failures_total", endpoint=endpoint) == 0


@FUZZ
@given(body=mutated(WEBHOOK))
async def test_fuzzed_webhooks_never_fail(sidecar: RunningMonitor, body: bytes) -> None:
    status, _ = await sidecar.post(body, {"Authorization": sign(body),
                                          "Content-Type": "application/webhook+json"})
    assert status in ANSWERS, (status, body[:200])
    await no_handler_failed(sidecar)
    status, _ = await sidecar.send(Room().started())  # a good webhook after it still counts
    assert status == 200


@FUZZ
@given(body=mutated(GOOD))
async def test_fuzzed_events_never_fail(sidecar: RunningMonitor, body: bytes) -> None:
    if not sidecar.monitor.tracker.tracked:
        await start_call(sidecar)
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    async with sidecar.http.post(sidecar.url + "/v1/events", data=body,
                                 headers=headers) as resp:
        assert resp.status in ANSWERS, (resp.status, body[:200])
        await resp.read()
    await no_handler_failed(sidecar)
    good = {**GOOD, "id": uuid.uuid4().hex}  # the good report after it still counts
    async with sidecar.http.post(sidecar.url + "/v1/events", json=good,
                                 headers=headers) as resp:
        assert (resp.status, await resp.json()) == (202, {"status": "applied"})
