"""JSON read only where livekit-api reads it.

livekit-api parses webhooks with protobuf's JSON parser: text (so UTF-8 without a byte order
mark), Python's `json` with duplicate keys refused, then every string encodable as UTF-8 (no lone
surrogates) and every number representable in its field. `document` is that first step, once
per body; monitor.intake.events takes a webhook on from there. `loads` reads a /v1/events body
by the same rules, as protobuf reads any JSON object (a `Struct`: numbers are doubles);
tests/unit/intake/test_strict_json.py holds both to the reference.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class NotAccepted(ValueError):
    """livekit-api would not read this body; the message is a short reason."""


def document(body: bytes) -> Any:
    """Parse UTF-8 JSON text without a byte order mark or duplicate keys; raises NotAccepted."""
    doc = _plain_document(body)
    if doc is not _UNDECIDED:
        return doc
    try:
        return _DECODER.decode(_text(body))
    except NotAccepted:
        raise
    except (ValueError, RecursionError) as exc:
        raise NotAccepted(f"not JSON: {short_reason(exc)}") from None


_UNDECIDED = object()
# Digits as "0" and JSON whitespace as " ", so that two `in` tests find what the plain path
# leaves to json: 19 digits in a row (a number that may be beyond 64 bits, which orjson reads
# as a float and json as an integer), or a space before a colon (a key spaced from its colon).
_SHAPES = bytes.maketrans(b"0123456789\t\n\r", b"0000000000   ")
_LONG_NUMBER = b"0" * 19


def _plain_document(body: bytes) -> Any:
    """The document of a body without escapes (LiveKit's usual ones), read by orjson, when it
    certainly has no duplicate keys; _UNDECIDED for json to decide, exactly.

    Without a backslash, every quote in the text opens or closes a string. So each `":` is a
    key's closing quote before its colon, or the opening quote of a string that starts with a
    colon; with no key spaced from its colon, the text's count of `":` is its keys plus those
    strings. orjson's compact text of the parsed document counts the same way, after duplicate
    keys were merged (each dropping its value's strings): the counts are equal only when no key
    was a duplicate. What orjson refuses (NaN, deep nesting...) or may read otherwise (numbers
    of 19 digits or more), and a byte order mark, json decides."""
    if b"\\" in body or body[:3] == b"\xef\xbb\xbf":
        return _UNDECIDED
    shapes = body.translate(_SHAPES)
    if _LONG_NUMBER in shapes or b" :" in shapes:
        return _UNDECIDED
    try:
        doc = orjson.loads(body)
        if orjson.dumps(doc).count(b'":') != body.count(b'":'):
            return _UNDECIDED  # duplicate keys, or a text this reasoning does not cover
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return _UNDECIDED
    return doc


def loads(body: bytes) -> Any:
    """Parse a JSON document as protobuf's JSON parser reads a Struct; raises NotAccepted."""
    doc = document(body)
    _check(doc)
    return doc


def _text(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise NotAccepted("not UTF-8") from None
    if text.startswith("\ufeff"):
        raise NotAccepted("a byte order mark")
    return text


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise NotAccepted("duplicate keys")
    return doc


# Built once: json.loads with a hook builds a decoder (and its scanner) on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _check(value: Any) -> None:
    """Strings (keys too) must be UTF-8 (no lone surrogates); numbers must fit a double."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            _utf8(item)
        elif type(item) is int:
            try:
                float(item)
            except OverflowError:
                raise NotAccepted("a number out of range") from None
        elif type(item) is dict:
            for key, inner in item.items():
                _utf8(key)
                stack.append(inner)
        elif type(item) is list:
            stack.extend(item)


def _utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NotAccepted("a lone surrogate in a string") from None


def short_reason(exc: BaseException) -> str:
    """An exception's first line, at most 120 characters, for a 400's reason."""
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
