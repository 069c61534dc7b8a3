"""Typed webhook events: LiveKit's `WebhookEvent` JSON reduced to what call tracking needs.

A body is read once, strictly (monitor.intake.strict_json). Documents in the shape
livekit-server sends (lowerCamelCase names, int64 as strings, enums as names) that
monitor.intake.webhook_schema finds valid throughout are read straight from that parse; anything
else is decided and normalised by protobuf's own JSON parser, so the accepted language is
exactly protobuf JSON for `WebhookEvent`, as livekit-api reads it.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict
from livekit.protocol.models import DisconnectReason, RoomEndReason, TrackType
from livekit.protocol.webhook import WebhookEvent

from monitor.calls.inputs import Event, Participant
from monitor.calls.participants import (
    KIND_BY_NAME,
    KIND_BY_NUMBER,
    UNKNOWN_KIND,
    avatar_provider,
    on_behalf_of,
)
from monitor.intake import strict_json
from monitor.intake.webhook_schema import certainly_accepted

# The event names livekit-server sends; any other name is counted as "other" and ignored.
KNOWN_EVENTS = frozenset(
    {
        "room_started", "room_finished", "participant_joined", "participant_left",
        "participant_connection_aborted", "track_published", "track_unpublished",
        "egress_started", "egress_updated", "egress_ended", "ingress_started", "ingress_ended",
    }
)

_REASON_NAME = {number: name.lower() for name, number in DisconnectReason.items()}
_REASON_BY_NAME = {name: name.lower() for name, _ in DisconnectReason.items()}
_TRACK_NAME = {number: name.lower() for name, number in TrackType.items()}
_TRACK_BY_NAME = {name: name.lower() for name, _ in TrackType.items()}
# ROOM_END_API_DELETE -> "api_delete"; ROOM_END_UNKNOWN (the default) -> None.
_END_NAME: dict[int, str | None] = {
    number: None if number == 0 else name.removeprefix("ROOM_END_").lower()
    for name, number in RoomEndReason.items()}
_END_BY_NAME = {name: _END_NAME[number] for name, number in RoomEndReason.items()}

# Closed label sets, used by metrics.
DISCONNECT_REASONS = tuple(sorted(_REASON_NAME.values()))


def disconnect_reason_name(value: int) -> str:
    """A DisconnectReason number as its lower-case label (livekit-rtc uses the same numbers)."""
    return _REASON_NAME.get(value, "unknown_reason")


class MalformedEvent(Exception):
    """The body is not a LiveKit WebhookEvent; the message is a short reason."""


def parse_event(body: bytes) -> Event:
    """Parse a webhook body, raising MalformedEvent unless it is a JSON object livekit-api
    would read as a WebhookEvent, with names for the enum values read here."""
    try:
        doc = strict_json.document(body)
    except strict_json.NotAccepted as exc:
        raise MalformedEvent(str(exc)) from None
    if type(doc) is not dict:
        raise MalformedEvent("body is not a JSON object")
    if certainly_accepted(doc):
        try:
            return _event_from_canonical(doc)
        except _NotCanonical:
            pass
    return _event_by_protobuf(doc)


def _event_by_protobuf(doc: dict[str, Any]) -> Event:
    """The slow path: protobuf's JSON parser decides and normalises the document."""
    try:
        message = ParseDict(doc, WebhookEvent(), ignore_unknown_fields=True)
    except Exception as exc:  # ParseError, and whatever else Parse would wrap in one
        raise MalformedEvent(f"not a WebhookEvent: {strict_json.short_reason(exc)}") from None
    try:
        return _event_from_canonical(MessageToDict(message))
    except _NotCanonical as exc:  # MessageToDict's output is canonical: not expected
        raise MalformedEvent("unsupported WebhookEvent shape") from exc


class _NotCanonical(Exception):
    """An enum name this module has no label for; protobuf must decide."""


# The readers below trust the document's types: their callers give them only documents that
# certainly_accepted found valid throughout (every message an object, every string a string,
# every integer a decimal string or a number in range), or MessageToDict's output.


def _int(doc: dict[str, Any], key: str) -> int | None:
    value = doc.get(key)
    return None if value is None else int(value)


def _seconds(doc: dict[str, Any], seconds_key: str, millis_key: str) -> float | None:
    millis = _int(doc, millis_key)
    if millis:
        return millis / 1000.0
    seconds = _int(doc, seconds_key)
    return float(seconds) if seconds else None


def _enum(doc: dict[str, Any], key: str, by_name: dict[str, Any], by_number: dict[int, Any],
          default: Any, unknown: Any) -> Any:
    """The enum's name (`default` when absent); a number with no name (a newer server's value,
    which livekit-api accepts too) reads as `unknown`, so the event is kept and its labels stay
    in their closed sets."""
    value = doc.get(key)
    if value is None:
        return default
    if type(value) is str and value in by_name:
        return by_name[value]
    if type(value) is int:
        return by_number.get(value, unknown)
    raise _NotCanonical


def _event_from_canonical(doc: dict[str, Any]) -> Event:
    """An Event from a document protobuf would accept (checked by the caller)."""
    room = doc.get("room") or {}
    participant_doc = doc.get("participant")
    track = doc.get("track")
    participant = None
    if participant_doc is not None:
        attributes = participant_doc.get("attributes") or {}
        permission = participant_doc.get("permission") or {}
        behalf = on_behalf_of(attributes)
        participant = Participant(
            sid=participant_doc.get("sid", ""),
            identity=participant_doc.get("identity", ""),
            kind=_enum(participant_doc, "kind", KIND_BY_NAME, KIND_BY_NUMBER, "STANDARD",
                       UNKNOWN_KIND),
            joined_at=_seconds(participant_doc, "joinedAt", "joinedAtMs"),
            disconnect_reason=_enum(participant_doc, "disconnectReason", _REASON_BY_NAME,
                                    _REASON_NAME, "unknown_reason", "unknown_reason"),
            publishes_on_behalf=bool(behalf),
            hidden=permission.get("hidden") is True,
            on_behalf_of=behalf,
            avatar_provider=avatar_provider(attributes),
        )
    track_kind = track_published_at = None
    if track is not None:
        track_kind = _enum(track, "type", _TRACK_BY_NAME, _TRACK_NAME, "audio", None)
        version = track.get("version")
        micros = _int(version, "unixMicro") if version else None
        track_published_at = micros / 1e6 if micros else None
    return Event(
        name=doc.get("event", ""),
        id=doc.get("id", ""),
        created_at=float(_int(doc, "createdAt") or 0),
        room_sid=room.get("sid", ""),
        room_name=room.get("name", ""),
        room_created_at=_seconds(room, "creationTime", "creationTimeMs"),
        participant=participant,
        track_kind=track_kind,
        track_published_at=track_published_at,
        num_dropped=_int(doc, "numDropped") or 0,
        room_end_reason=_enum(doc, "roomEndReason", _END_BY_NAME, _END_NAME, None, None),
    )
