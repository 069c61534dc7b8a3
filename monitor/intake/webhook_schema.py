"""Whether protobuf's JSON parser would read a document as a `WebhookEvent`, decided without it.

livekit-api reads webhooks with `google.protobuf.json_format.Parse(..., ignore_unknown_fields=
True)`: every known field, however deep, must hold a value of its type (integers in range,
strings without lone surrogates, enum names or numbers); unknown fields are skipped unread, but
their names must encode as UTF-8. `certainly_accepted` walks a document with a table compiled
from the message descriptors and answers True only when every known field holds its value in
the plain form livekit-server writes (lowerCamelCase names, int64 as decimal strings or numbers,
enums as names) and every other name is one protobuf skips. Anything else, valid or not,
answers False: the caller asks protobuf itself. So a True is never wrong, and a False only
costs time; tests/unit/intake/test_strict_json.py holds it to the parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from livekit.protocol.webhook import WebhookEvent

_INTEGER_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
# A decimal integer as livekit-server writes int64s; 21 characters hold any 64-bit value.
_DECIMAL = re.compile(r"-?[0-9]{1,20}")

# Whether one field's JSON value is certainly read by protobuf: one function per field, made
# for its type when the table is compiled, so a document's walk decides each value in one call.
Check = Callable[[Any], bool]


@dataclass(slots=True)
class Message:
    """A message's fields by JSON name, each with its check, and the other names protobuf also
    reads as fields."""

    fields: dict[str, Check] = field(default_factory=dict)
    other_names: frozenset[str] = frozenset()


def certainly_accepted(doc: dict[str, Any]) -> bool:
    """True if protobuf's JSON parser certainly reads `doc` as a WebhookEvent (unknown fields
    ignored); False if it may not, or reads it some way this check does not follow."""
    return _message_ok(doc, WEBHOOK_EVENT)


def _message_ok(doc: dict[str, Any], message: Message) -> bool:
    fields = message.fields
    for key, value in doc.items():
        check = fields.get(key)
        if check is None:
            # Unknown fields are skipped, but protobuf also reads snake_case field names,
            # refuses "[extension]" names, and fails on a name it cannot encode as UTF-8.
            if key in message.other_names or key[:1] == "[" or not _utf8(key):
                return False
        elif not check(value):
            return False
    return True


def _utf8(text: str) -> bool:
    """No lone surrogates (after json.loads, any surrogate is a lone one)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- the checks, one kind of field each ------------------------------------------------------


def _string(value: Any) -> bool:
    return type(value) is str and (value.isascii() or _utf8(value))


def _bool(value: Any) -> bool:
    return type(value) is bool


def _undecided(value: Any) -> bool:
    """Floats, bytes, well-known types, oneof members: left to protobuf."""
    return False


def _integer(low: int, high: int) -> Check:
    def check(value: Any) -> bool:
        if type(value) is str:
            return _DECIMAL.fullmatch(value) is not None and low <= int(value) <= high
        return type(value) is int and low <= value <= high

    return check


def _enum(names: frozenset[str], numbers: frozenset[int]) -> Check:
    def check(value: Any) -> bool:
        if type(value) is str:
            return value in names
        return type(value) is int and value in numbers

    return check


def _message(message: Message) -> Check:
    def check(value: Any) -> bool:
        return type(value) is dict and _message_ok(value, message)

    return check


def _map(value_check: Check) -> Check:
    """Keys are strings; values are checked as the entry message says."""

    def check(value: Any) -> bool:
        return type(value) is dict and all(map(_utf8, value)) and \
            all(map(value_check, value.values()))

    return check


def _repeated(item_check: Check) -> Check:
    def check(value: Any) -> bool:
        return type(value) is list and all(map(item_check, value))

    return check


# -- the table, compiled once from the descriptors ------------------------------------------


def _compile(descriptor: Descriptor, path: tuple[str, ...] = ()) -> Message:
    path = (*path, descriptor.full_name)
    oneof_names = {oneof.name for oneof in descriptor.oneofs}
    message = Message(other_names=frozenset(f.name for f in descriptor.fields) - {
        f.json_name for f in descriptor.fields})
    for fd in descriptor.fields:
        if fd.containing_oneof is not None or fd.json_name in oneof_names:
            message.fields[fd.json_name] = _undecided
        else:
            message.fields[fd.json_name] = _field(fd, path)
    return message


def _field(fd: FieldDescriptor, path: tuple[str, ...]) -> Check:
    if fd.message_type is not None:
        entry = fd.message_type
        if entry.GetOptions().map_entry:
            key_type = entry.fields_by_name["key"].type
            if key_type != FieldDescriptor.TYPE_STRING:
                return _undecided
            value_check = _compile(entry, path).fields["value"]
            return _undecided if value_check is _undecided else _map(value_check)
        if entry.full_name.startswith("google.protobuf.") or entry.full_name in path:
            return _undecided  # well-known types have JSON forms of their own; cycles
        return _each(fd, _message(_compile(entry, path)))
    if fd.type == FieldDescriptor.TYPE_STRING:
        return _each(fd, _string)
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return _each(fd, _bool)
    if fd.cpp_type in _INTEGER_RANGES:
        return _each(fd, _integer(*_INTEGER_RANGES[fd.cpp_type]))
    if fd.enum_type is not None:
        values = fd.enum_type.values
        return _each(fd, _enum(frozenset(v.name for v in values),
                               frozenset(v.number for v in values)))
    return _undecided


def _each(fd: FieldDescriptor, check: Check) -> Check:
    """A repeated field's check is its items' check, on every item of a list."""
    return _repeated(check) if fd.is_repeated else check


WEBHOOK_EVENT = _compile(cast(Descriptor, WebhookEvent.DESCRIPTOR))  # upb's, to the stubs
