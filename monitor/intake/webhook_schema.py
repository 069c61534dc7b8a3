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
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from livekit.protocol.webhook import WebhookEvent

# Field kinds decided here; every other kind (floats, bytes, well-known types, oneof members)
# is left to protobuf.
STRING, BOOL, INTEGER, ENUM, MESSAGE, MAP, UNDECIDED = range(7)

_INTEGER_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
# A decimal integer as livekit-server writes int64s; 21 characters hold any 64-bit value.
_DECIMAL = re.compile(r"-?[0-9]{1,20}")


@dataclass(slots=True)
class Message:
    """A message's fields by JSON name, and the other names protobuf also reads as fields."""

    fields: dict[str, Field] = field(default_factory=dict)
    other_names: frozenset[str] = frozenset()


@dataclass(slots=True)
class Field:
    """How one field's JSON value is checked."""

    kind: int
    repeated: bool = False
    low: int = 0
    high: int = 0
    names: frozenset[str] = frozenset()  # enum value names
    numbers: frozenset[int] = frozenset()  # enum value numbers
    message: Message = field(default_factory=Message)  # of a message, or a map's entry


def certainly_accepted(doc: dict[str, Any]) -> bool:
    """True if protobuf's JSON parser certainly reads `doc` as a WebhookEvent (unknown fields
    ignored); False if it may not, or reads it some way this check does not follow."""
    return _message_ok(doc, WEBHOOK_EVENT)


def _message_ok(doc: dict[str, Any], message: Message) -> bool:
    fields = message.fields
    for key, value in doc.items():
        spec = fields.get(key)
        if spec is None:
            # Unknown fields are skipped, but protobuf also reads snake_case field names,
            # refuses "[extension]" names, and fails on a name it cannot encode as UTF-8.
            if key in message.other_names or key[:1] == "[" or not _utf8(key):
                return False
            continue
        if spec.repeated:
            if type(value) is not list:
                return False
            for item in value:
                if not _value_ok(item, spec):
                    return False
        elif spec.kind == STRING and type(value) is str:  # the most common field, inline
            if not (value.isascii() or _utf8(value)):
                return False
        elif not _value_ok(value, spec):
            return False
    return True


def _value_ok(value: Any, spec: Field) -> bool:
    kind = spec.kind
    if kind == STRING:
        return type(value) is str and _utf8(value)
    if kind == INTEGER:
        if type(value) is str:
            if not _DECIMAL.fullmatch(value):
                return False
            number = int(value)
        elif type(value) is int:
            number = value
        else:
            return False
        return spec.low <= number <= spec.high
    if kind == ENUM:
        if type(value) is str:
            return value in spec.names
        return type(value) is int and value in spec.numbers
    if kind == MESSAGE:
        return type(value) is dict and _message_ok(value, spec.message)
    if kind == BOOL:
        return type(value) is bool
    if kind == MAP:  # keys are strings; values are checked as the entry message says
        if type(value) is not dict:
            return False
        inner = spec.message.fields["value"]
        return all(_utf8(k) and _value_ok(v, inner) for k, v in value.items())
    return False


def _utf8(text: str) -> bool:
    """No lone surrogates (after json.loads, any surrogate is a lone one)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- the table, compiled once from the descriptors ------------------------------------------


def _compile(descriptor: Descriptor, path: tuple[str, ...] = ()) -> Message:
    path = (*path, descriptor.full_name)
    oneof_names = {oneof.name for oneof in descriptor.oneofs}
    message = Message(other_names=frozenset(f.name for f in descriptor.fields) - {
        f.json_name for f in descriptor.fields})
    for fd in descriptor.fields:
        if fd.containing_oneof is not None or fd.json_name in oneof_names:
            spec = Field(UNDECIDED)
        else:
            spec = _field(fd, path)
        message.fields[fd.json_name] = spec
    return message


def _field(fd: FieldDescriptor, path: tuple[str, ...]) -> Field:
    repeated = fd.is_repeated
    if fd.message_type is not None:
        entry = fd.message_type
        if entry.GetOptions().map_entry:
            key_type = entry.fields_by_name["key"].type
            if key_type != FieldDescriptor.TYPE_STRING:
                return Field(UNDECIDED)
            value = _compile(entry, path)
            return Field(MAP, message=value) if value.fields["value"].kind != UNDECIDED \
                else Field(UNDECIDED)
        if entry.full_name.startswith("google.protobuf.") or entry.full_name in path:
            return Field(UNDECIDED)  # well-known types have JSON forms of their own; cycles
        return Field(MESSAGE, repeated, message=_compile(entry, path))
    if fd.type == FieldDescriptor.TYPE_STRING:
        return Field(STRING, repeated)
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return Field(BOOL, repeated)
    if fd.cpp_type in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[fd.cpp_type]
        return Field(INTEGER, repeated, low, high)
    if fd.enum_type is not None:
        values = fd.enum_type.values
        return Field(ENUM, repeated, names=frozenset(v.name for v in values),
                     numbers=frozenset(v.number for v in values))
    return Field(UNDECIDED)


WEBHOOK_EVENT = _compile(cast(Descriptor, WebhookEvent.DESCRIPTOR))  # upb's, to the stubs
