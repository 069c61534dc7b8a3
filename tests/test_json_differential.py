"""JSON is accepted only where livekit-api accepts it: webhook bodies against livekit-api's own
`WebhookReceiver`, /v1/events bodies (and data messages) against protobuf's JSON parser, on the
hostile cases by name and on generated ones (hypothesis)."""

from __future__ import annotations

import json
import time

import pytest
from google.protobuf.json_format import Parse
from google.protobuf.struct_pb2 import Struct
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import api

from monitor.intake import strict_json
from monitor.intake.events import MalformedEvent, parse_event
from tests.webhooks import KEY, SECRET, Room, encode, sign, user

BODY = encode(Room().joined(user(time.time()))).decode()


def edit(old: str, new: str) -> str:
    assert old in BODY
    return BODY.replace(old, new, 1)


WEBHOOK_CASES = {
    "as livekit-server sends it": BODY,
    "compact": json.dumps(json.loads(BODY), separators=(",", ":")),
    "a byte order mark": "\ufeff" + BODY,
    "duplicate keys": BODY[:-1] + ', "event": "room_finished"}',
    "duplicate keys, nested": edit('"room": {', '"room": {"sid": "RM_x", '),
    "a lone surrogate": edit('"id": "', '"id": "\\ud800'),
    "a surrogate pair": edit('"id": "', '"id": "\\ud83d\\ude00'),
    "int64 overflow": edit('"createdAt": "', '"createdAt": "99999999999999999999'),
    "4,000 digits": edit('"createdAt": "', '"createdAt": "' + "1" * 4000),
    "a number as createdAt": edit('"createdAt": "', '"createdAt": 1' + "0" * 3 + ', "x": "'),
    "NaN": BODY[:-1] + ', "numDropped": NaN}',
    "a float for an int": BODY[:-1] + ', "numDropped": 1.5}',
    "an unknown field": BODY[:-1] + ', "futureField": {"a": [1, 2]}}',
    "an unknown field with NaN": BODY[:-1] + ', "futureField": NaN}',
    "a bad enum": edit('"identity": ', '"kind": "NOT_A_KIND", "identity": '),
    "a wrong type in a known field": edit('"room": {', '"room": {"maxParticipants": "abc", '),
    "trailing data": BODY + " x",
    "trailing whitespace": BODY + " \n",
    "deep nesting": BODY[:-1] + ', "futureField": ' + "[" * 5000 + "]" * 5000 + "}",
    "not an object": "[1, 2]",
    "empty": "",
    "a NUL in a string": edit('"id": "', '"id": "\\u0000'),
}


def reference_accepts_webhook(text: str) -> bool:
    receiver = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET))
    body = text.encode("utf-8", "surrogatepass")
    try:
        receiver.receive(text, sign(body))
        return True
    except Exception:
        return False


def ours_accept_webhook(body: bytes) -> bool:
    try:
        strict_json.webhook_json(body)
        parse_event(body)
        return True
    except (strict_json.NotAccepted, MalformedEvent):
        return False


@pytest.mark.parametrize("case", list(WEBHOOK_CASES))
def test_webhook_bodies_are_read_as_livekit_api_reads_them(case: str) -> None:
    text = WEBHOOK_CASES[case]
    assert ours_accept_webhook(text.encode("utf-8", "surrogatepass")) == \
        reference_accepts_webhook(text), case


EVENT_CASES = {
    "plain": '{"v": 1, "type": "session_closed", "reason": "error", "room": "r"}',
    "a byte order mark": '\ufeff{"v": 1}',
    "duplicate keys": '{"v": 1, "v": 2}',
    "duplicate keys, nested": '{"a": {"b": 1, "b": 2}}',
    "a lone surrogate": '{"room": "\\udc00"}',
    "a lone surrogate key": '{"\\ud800": 1}',
    "a surrogate pair": '{"room": "\\ud83d\\ude00"}',
    "NaN": '{"at": NaN}',
    "Infinity": '{"at": -Infinity}',
    "a big integer": '{"at": ' + "9" * 30 + "}",
    "an integer no double holds": '{"at": ' + "9" * 400 + "}",
    "4,300 digits and more": '{"at": ' + "9" * 5000 + "}",
    "1e400": '{"at": 1e400}',
    "trailing data": '{"v": 1} x',
    "deep nesting": '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
    "a NUL": '{"room": "\\u0000"}',
}


def reference_accepts_json(text: str) -> bool:
    try:
        Parse(text, Struct())
        return True
    except Exception:
        return False


def ours_accept_json(body: bytes) -> bool:
    try:
        strict_json.loads(body)
        return True
    except strict_json.NotAccepted:
        return False


@pytest.mark.parametrize("case", list(EVENT_CASES))
def test_event_bodies_are_read_as_protobuf_reads_json(case: str) -> None:
    text = EVENT_CASES[case]
    assert ours_accept_json(text.encode("utf-8", "surrogatepass")) == \
        reference_accepts_json(text), case


def test_invalid_utf8_is_refused() -> None:
    for body in (b'{"room": "\xff"}', b'{"room": "\xed\xa0\x80"}'):  # \xed\xa0\x80: a surrogate
        assert not ours_accept_json(body)
        assert not ours_accept_webhook(body)


# -- generated: JSON objects with hostile leaves, and their textual mutations ----------------

LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["\ud800", "\udfff", "\ufeff", "\x00"]),
)
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)
DOCS = st.dictionaries(st.text(max_size=6), VALUES, max_size=5)
MUTATIONS = st.sampled_from(["none", "bom", "dup", "trailing", "truncate"])


def mutate(text: str, how: str) -> str:
    if how == "bom":
        return "\ufeff" + text
    if how == "dup" and text.startswith('{"'):
        key = text[1:].split('"', 2)[1]
        return '{"' + key + '": 0, ' + text[1:]
    if how == "trailing":
        return text + " 1"
    if how == "truncate":
        return text[: len(text) // 2]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS, MUTATIONS)
def test_generated_json_is_read_as_protobuf_reads_it(doc: dict, how: str) -> None:
    text = mutate(json.dumps(doc), how)
    assert ours_accept_json(text.encode("utf-8", "surrogatepass")) == \
        reference_accepts_json(text)
