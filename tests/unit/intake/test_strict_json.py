"""JSON is accepted only where livekit-api accepts it: webhook bodies against livekit-api's own
`WebhookReceiver`, /v1/events bodies (and data messages) against protobuf's JSON parser, on the
hostile cases by name and on generated ones (hypothesis)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from google.protobuf.json_format import Parse
from google.protobuf.struct_pb2 import Struct
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from livekit import api
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

from monitor.calls import inputs
from monitor.intake import events, strict_json
from monitor.intake.events import MalformedEvent, parse_event
from tests.support.webhooks import KEY, SECRET, Room, avatar, encode, sign, user

BODY = encode(Room().joined(user(time.time()))).decode()


def edit(old: str, new: str) -> str:
    assert old in BODY
    return BODY.replace(old, new, 1)


def created_at(value: str) -> str:
    """BODY with createdAt set to a JSON value."""
    return edit('"createdAt": "', f'"createdAt": {value}, "x": "')


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
    # Integers in every form protobuf reads, and at the edges of their fields' ranges.
    "int64 at its maximum": created_at('"9223372036854775807"'),
    "int64 one past it": created_at('"9223372036854775808"'),
    "int64 below its minimum": created_at('"-9223372036854775809"'),
    "int64 past it, as a number": created_at("9223372036854775808"),
    "int32 at its maximum": BODY[:-1] + ', "numDropped": 2147483647}',
    "int32 one past it": BODY[:-1] + ', "numDropped": 2147483648}',
    "int32 below its minimum": BODY[:-1] + ', "numDropped": "-2147483649"}',
    "uint32 negative": edit('"room": {', '"room": {"maxParticipants": -1, '),
    "uint32 past its maximum": edit('"room": {', '"room": {"maxParticipants": 4294967296, '),
    "uint32 as a string": edit('"room": {', '"room": {"maxParticipants": "7", '),
    "an integer with a plus sign": edit('"createdAt": "', '"createdAt": "+'),
    "an integer with a space": edit('"createdAt": "', '"createdAt": " '),
    "an integer as 1e3": created_at('"1e3"'),
    "an integer as 1.0": BODY[:-1] + ', "numDropped": 1.0}',
    "a bool for an integer": BODY[:-1] + ', "numDropped": true}',
    "uint32 negative, deep": edit('"identity": ', '"tracks": [{"layers": [{"width": -1}]}], '
                                  '"identity": '),
    # Names and values protobuf reads some other way than the plain one.
    "a snake_case name": edit('"createdAt": "', '"created_at": "'),
    "both names of a field": edit('"createdAt": "', '"created_at": "5", "createdAt": "'),
    "an extension name": BODY[:-1] + ', "[livekit.x]": 1}',
    "null for a message": BODY[:-1] + ', "track": null}',
    "null for a string": edit('"id": "', '"sid": null, "id": "'),
    "null in a repeated field": edit('"identity": ', '"kindDetails": [null], "identity": '),
    "a string for a message": BODY[:-1] + ', "track": "abc"}',
    "a number for a string": edit('"id": "', '"id": 5, "x": "'),
    "a bool as a string": edit('"room": {', '"room": {"activeRecording": "true", '),
    "an enum by number": edit('"identity": ', '"kind": 4, "identity": '),
    "an enum by number, as a string": edit('"identity": ', '"kind": "4", "identity": '),
    "an unknown enum name, deep": edit('"identity": ', '"tracks": [{"source": "NEW"}], '
                                       '"identity": '),
    "a lone surrogate in an unknown field": BODY[:-1] + ', "futureField": "\\udc00"}',
    "a lone surrogate in an attribute name": edit('"identity": ',
                                                  '"attributes": {"\\ud800": "x"}, "identity": '),
    "a lone surrogate in an attribute value": edit('"identity": ',
                                                   '"attributes": {"a": "\\ud800"}, '
                                                   '"identity": '),
    "a lone surrogate in an unknown field's name": BODY[:-1] + ', "\\ud800": 1}',
    "a lone surrogate in an unknown field's name, nested": edit('"room": {',
                                                                '"room": {"\\udfff": 1, '),
    "a lone surrogate in a name inside an unknown field": BODY[:-1] + ', "x": {"\\ud800": 1}}',
    "a number as an attribute value": edit('"identity": ', '"attributes": {"a": 1}, "identity": '),
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
        parse_event(body)
        return True
    except MalformedEvent:
        return False


@pytest.mark.parametrize("case", list(WEBHOOK_CASES))
def test_webhook_bodies_are_read_as_livekit_api_reads_them(case: str) -> None:
    text = WEBHOOK_CASES[case]
    assert ours_accept_webhook(text.encode("utf-8", "surrogatepass")) == \
        reference_accepts_webhook(text), case


# -- webhooks: the plain reading matches protobuf's, and plain bodies skip protobuf -----------


def rich_event() -> WebhookEvent:
    """A track_published with every kind of field livekit-server fills in: repeated messages
    and enums, a map, nested versions, integers of each width."""
    at = time.time()
    layer = models.VideoLayer(quality=models.VideoQuality.HIGH, width=1280, height=720,
                              bitrate=1_700_000, ssrc=4_000_000_000, spatial_layer=2, rid="f")
    version = models.TimedVersion(unix_micro=int(at * 1e6), ticks=3)
    track = models.TrackInfo(
        sid="TR_rich", type=models.TrackType.VIDEO, name="camera", width=1280, height=720,
        simulcast=True, source=models.TrackSource.CAMERA, layers=[layer], mime_type="video/VP8",
        mid="1", stream="camera", version=version,
        codecs=[models.SimulcastCodecInfo(mime_type="video/VP8", mid="1", cid="c1",
                                          layers=[layer], video_layer_mode=1)],
        audio_features=[models.AudioTrackFeature.TF_NO_DTX], backup_codec_policy=1)
    face = avatar(at)
    face.tracks.append(track)
    face.permission.CopyFrom(models.ParticipantPermission(
        can_subscribe=True, can_publish=True, agent=True,
        can_publish_sources=[models.TrackSource.CAMERA, models.TrackSource.MICROPHONE]))
    face.kind_details.append(models.ParticipantInfo.KindDetail.CLOUD_AGENT)
    face.region, face.version, face.is_publisher, face.client_protocol = "eu", 7, True, 1
    room = Room()
    event = room.event("track_published", at, participant=face, track=track, num_dropped=2)
    event.room.enabled_codecs.append(models.Codec(mime="audio/opus", fmtp_line="useinbandfec=1"))
    event.room.max_participants, event.room.num_participants = 4, 2
    event.room.active_recording = True
    event.room.version.CopyFrom(version)
    return event


def livekit_bodies() -> list[bytes]:
    """Bodies of every event kind as livekit-server writes them, indented and compact."""
    at = time.time()
    room, face = Room(), avatar(at)
    made = [room.started(), room.joined(user(at)), room.joined(face),
            room.track(face, models.TrackType.AUDIO, at),
            room.left(face, at, models.DisconnectReason.PARTICIPANT_REMOVED),
            room.finished(at, models.RoomEndReason.ROOM_END_API_DELETE), rich_event()]
    bodies = [encode(event) for event in made]
    return bodies + [json.dumps(json.loads(body), separators=(",", ":")).encode()
                     for body in bodies]


def _name(enum: Any, number: int, unknown: str | None) -> str | None:
    return enum.Name(number) if number in enum.values() else unknown


def _seconds(millis: int, seconds: int) -> float | None:
    return (millis / 1000.0) or float(seconds) or None


def by_reference(body: bytes) -> inputs.Event:
    """The Event read from livekit-api's own WebhookEvent for the body, field by field, with
    no code shared with parse_event."""
    text = body.decode("utf-8", "surrogatepass")
    m = api.WebhookReceiver(api.TokenVerifier(KEY, SECRET)).receive(text, sign(body))
    participant = None
    if m.HasField("participant"):
        p = m.participant
        behalf = p.attributes.get("lk.publish_on_behalf", "")[:256]
        reason = _name(models.DisconnectReason, p.disconnect_reason, "UNKNOWN_REASON")
        participant = inputs.Participant(
            sid=p.sid, identity=p.identity,
            kind=_name(models.ParticipantInfo.Kind, p.kind, "UNKNOWN") or "",
            joined_at=_seconds(p.joined_at_ms, p.joined_at),
            disconnect_reason=(reason or "").lower(), publishes_on_behalf=bool(behalf),
            hidden=p.permission.hidden, on_behalf_of=behalf)
    track_kind = track_published_at = None
    if m.HasField("track"):
        track_kind = (_name(models.TrackType, m.track.type, None) or "").lower() or None
        track_published_at = (m.track.version.unix_micro / 1e6) or None
    end = _name(models.RoomEndReason, m.room_end_reason, None)
    return inputs.Event(
        name=m.event, id=m.id, created_at=float(m.created_at), room_sid=m.room.sid,
        room_name=m.room.name,
        room_created_at=_seconds(m.room.creation_time_ms, m.room.creation_time),
        participant=participant, track_kind=track_kind,
        track_published_at=track_published_at, num_dropped=m.num_dropped,
        room_end_reason=None if end in (None, "ROOM_END_UNKNOWN")
        else end.removeprefix("ROOM_END_").lower())


def test_plain_webhooks_are_read_without_protobuf(monkeypatch: pytest.MonkeyPatch) -> None:
    bodies = livekit_bodies()
    expected = [by_reference(body) for body in bodies]

    def protobuf_called(*args: object, **kwargs: object) -> None:
        raise AssertionError("a plain body went through protobuf's parser")

    monkeypatch.setattr(events, "ParseDict", protobuf_called)
    assert [parse_event(body) for body in bodies] == expected


ACCEPTED = [case for case, text in WEBHOOK_CASES.items() if reference_accepts_webhook(text)]


@pytest.mark.parametrize("case", ACCEPTED)
def test_accepted_webhooks_read_as_protobuf_reads_them(case: str) -> None:
    body = WEBHOOK_CASES[case].encode("utf-8", "surrogatepass")
    assert parse_event(body) == by_reference(body), case


RICH = json.loads(encode(rich_event()))
ENUM_NAMES = sorted({value.name for message in (WebhookEvent, models.TrackInfo)
                     for fd in message.DESCRIPTOR.fields if fd.enum_type
                     for value in fd.enum_type.values}
                    | {"AGENT", "CLIENT_INITIATED", "ROOM_END_API_DELETE", "NOT_A_NAME"})
NUMBERS = [0, 1, -1, 4, 2**31 - 1, 2**31, -(2**31) - 1, 2**32 - 1, 2**32, 2**63 - 1, 2**63,
           -(2**63) - 1, 2**64 - 1, 2**64, 10**30]
FIELD_VALUES = st.one_of(
    st.sampled_from(NUMBERS), st.sampled_from(NUMBERS).map(str),
    st.sampled_from(["+5", " 5", "1e3", "1.5", "0x10", "007", "-0", "NaN", "Infinity", "",
                     "true", "\ud800", "\ud83d\ude00", 1.0, 1.5, float("nan"), float("inf")]),
    st.sampled_from(ENUM_NAMES), st.booleans(), st.none(), st.text(max_size=4),
    st.lists(st.one_of(st.none(), st.sampled_from(NUMBERS), st.sampled_from(ENUM_NAMES),
                       st.dictionaries(st.sampled_from(["width", "sid", "x"]),
                                       st.sampled_from([-1, 5, "a"]), max_size=2)),
             max_size=2),
    st.dictionaries(st.sampled_from(["a", "\ud800", "sid", "width", "layers"]),
                    st.one_of(st.text(max_size=3), st.sampled_from(NUMBERS), st.none()),
                    max_size=2),
)


@st.composite
def edited_webhooks(draw: st.DrawFn) -> str:
    """The rich body with one to three fields, anywhere in the message tree, set to values of
    the wrong form, at the edges of their ranges, or null; fields chosen by protobuf name or
    JSON name, or unknown."""
    doc = json.loads(json.dumps(RICH))
    for _ in range(draw(st.integers(1, 3))):
        node, descriptor = doc, WebhookEvent.DESCRIPTOR
        while True:
            fields = {fd.json_name: fd for fd in descriptor.fields}
            snake = sorted(fd.name for fd in descriptor.fields if fd.name != fd.json_name)
            name = draw(st.sampled_from([*sorted(fields), *snake, "futureField"]))
            fd = fields.get(name)
            entry = fd.message_type if fd else None
            if entry is None or entry.GetOptions().map_entry or not draw(st.booleans()):
                node[name] = draw(FIELD_VALUES)
                break
            if fd.is_repeated:
                if not (type(node.get(name)) is list and node[name]
                        and type(node[name][0]) is dict):
                    node[name] = [{}]
                node = node[name][0]
            else:
                if type(node.get(name)) is not dict:
                    node[name] = {}
                node = node[name]
            descriptor = entry
    return json.dumps(doc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_webhooks())
def test_generated_webhooks_are_read_as_livekit_api_reads_them(text: str) -> None:
    body = text.encode("utf-8", "surrogatepass")
    accepted = reference_accepts_webhook(text)
    assert ours_accept_webhook(body) == accepted
    if accepted:
        assert parse_event(body) == by_reference(body)


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


# -- the plain-text fast path reads exactly what json with duplicate keys refused reads ------

def _typed(value: object) -> object:
    """The value with every leaf's type, floats by repr (NaN equals itself)."""
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, repr(value))


def _read_by_json(body: bytes) -> object:
    try:
        return _typed(strict_json._DECODER.decode(strict_json._text(body)))
    except (ValueError, RecursionError):  # NotAccepted is one
        return "refused"


def _read_by_document(body: bytes) -> object:
    try:
        return _typed(strict_json.document(body))
    except strict_json.NotAccepted:
        return "refused"


PLAIN_CASES = [
    b'{"a":1,"a":2}', b'{"a":{"b":1,"b":1}}', b'[{"a":1},{"a":1,"a":1}]', b'{"a" :1,"a":2}',
    b'{"k":":x","a":1,"a":2}', b'{"a":":","b":1}', b'{":":1,":":2}', b'{"a":"b\\"c","a":1}',
    b'{"n":-9223372036854775809}', b'{"n":18446744073709551616}', b'{"n":9223372036854775807}',
    b'{"n":1e400}', b'{"n":NaN}', b'{"n":-0}', b'{"n":0.1}', b'{"n":1E-7}', b' {"a":1} ',
    b'{"a":1} x', b'{"a":"\xc3\xa9"}', b'{"a":"\xff"}', b'\xef\xbb\xbf{"a":1}', b"[]", b"5",
    b'{"a":\t1,\n"a":2}', b'{"a"\n:1,"a":2}', b"[" * 2000 + b"]" * 2000, b"",
]


@pytest.mark.parametrize("body", PLAIN_CASES)
def test_the_plain_text_path_reads_as_json_reads(body: bytes) -> None:
    assert _read_by_document(body) == _read_by_json(body)


PLAIN_LEAVES = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=': a"\\\u00e9', max_size=4),
)
PLAIN_VALUES = st.recursive(
    PLAIN_LEAVES, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(alphabet=":ab ", max_size=2), inner, max_size=3), max_leaves=10)


def _with_duplicate(text: str, at: int) -> str:
    """The text with the first key of its `at`-th object (if any) written twice."""
    starts = [i for i in range(len(text)) if text.startswith('{"', i)]
    if not starts:
        return text
    i = starts[at % len(starts)]
    key = text[i + 1:].split('"', 2)[1]
    return text[:i + 1] + '"' + key + '":0,' + text[i + 1:]


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(alphabet=":ab ", max_size=2), PLAIN_VALUES, max_size=4),
       st.sampled_from(["compact", "spaced", "duplicate", "spaced duplicate"]),
       st.integers(0, 5))
def test_generated_plain_texts_are_read_as_json_reads_them(doc: dict, how: str,
                                                           at: int) -> None:
    separators = (", ", " : ") if how.startswith("spaced") else (",", ":")
    text = json.dumps(doc, separators=separators, ensure_ascii=False)
    if how.endswith("duplicate"):
        text = _with_duplicate(text, at)
    body = text.encode()
    assert _read_by_document(body) == _read_by_json(body)
