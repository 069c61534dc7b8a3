"""One adapter for participants: the tracker's Participant (monitor.calls.inputs) from LiveKit's
ParticipantInfo (a RoomService listing; a webhook's JSON is read by monitor.intake.events with the
same tables and rules) and from a livekit-rtc participant (the room observer).

Kinds are ParticipantInfo.Kind names: STANDARD, INGRESS, EGRESS, SIP, AGENT, CONNECTOR, BRIDGE.
A kind this version of livekit does not name (a newer server's) is UNKNOWN_KIND whatever the
source, and an unknown kind is never a user or an avatar (the role rules give it Role.OTHER):
a new kind of participant is not counted as a caller. livekit-rtc's ParticipantKind numbers
CONNECTOR and BRIDGE differently from ParticipantInfo.Kind, so its kinds are matched by name.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from avatar_monitor_agent.roles import ATTRIBUTE_AVATAR_PROVIDER, ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit import rtc
from livekit.protocol.models import ParticipantInfo

from monitor.calls.inputs import Participant

# A participant kind this version does not know: neither a user nor an agent (Role.OTHER).
UNKNOWN_KIND = "UNKNOWN"
# ParticipantInfo.Kind: name -> name (as webhooks spell it), number -> name.
KIND_BY_NAME: dict[str, str] = {name: name for name, _ in ParticipantInfo.Kind.items()}
KIND_BY_NUMBER: dict[int, str] = {int(number): name
                                  for name, number in ParticipantInfo.Kind.items()}
_RTC_PREFIX = "PARTICIPANT_KIND_"
_KIND_BY_RTC_NUMBER: dict[int, str] = {
    int(number): KIND_BY_NAME.get(name.removeprefix(_RTC_PREFIX), UNKNOWN_KIND)
    for name, number in rtc.ParticipantKind.items()}
NO_REASON = "unknown_reason"  # DisconnectReason UNKNOWN_REASON: none given, or still present


def kind_name(value: int) -> str:
    """A ParticipantInfo.Kind number as its name; UNKNOWN_KIND for one this version lacks."""
    return KIND_BY_NUMBER.get(value, UNKNOWN_KIND)


def rtc_kind_name(value: int) -> str:
    """An rtc.ParticipantKind number as the ParticipantInfo.Kind name (PARTICIPANT_KIND_AGENT ->
    AGENT); UNKNOWN_KIND for one either enum lacks."""
    return _KIND_BY_RTC_NUMBER.get(value, UNKNOWN_KIND)


def on_behalf_of(attributes: Mapping[str, Any]) -> str:
    """Whom the participant publishes for (lk.publish_on_behalf), cut to 256 characters;
    interned: the same few agents' names are kept by every live call."""
    value = attributes.get(ATTRIBUTE_PUBLISH_ON_BEHALF)
    return sys.intern(value[:256]) if type(value) is str else ""


def avatar_provider(attributes: Mapping[str, Any]) -> str:
    """The avatar's provider (lk.avatar_provider), cut to 64 characters."""
    value = attributes.get(ATTRIBUTE_AVATAR_PROVIDER)
    return value[:64] if type(value) is str else ""


def participant(sid: str, identity: str, kind: str, joined_at: float | None,
                disconnect_reason: str, attributes: Mapping[str, Any],
                hidden: bool) -> Participant:
    """A Participant from fields already read (kind a ParticipantInfo.Kind name or
    UNKNOWN_KIND), its attributes read here."""
    behalf = on_behalf_of(attributes)
    return Participant(sid=sid, identity=identity, kind=kind, joined_at=joined_at,
                       disconnect_reason=disconnect_reason, publishes_on_behalf=bool(behalf),
                       hidden=hidden, on_behalf_of=behalf,
                       avatar_provider=avatar_provider(attributes))


def from_info(info: ParticipantInfo) -> Participant:
    """A RoomService participant as a webhook would describe it (server timestamps)."""
    return participant(info.sid, info.identity, kind_name(info.kind),
                       (info.joined_at_ms / 1000) or float(info.joined_at) or None, NO_REASON,
                       info.attributes, info.permission.hidden)


def from_rtc(p: rtc.Participant) -> Participant:
    """A participant of a connected room, as its webhook would describe it but for its join
    time, unknown there (a hidden one is never seen in a room)."""
    return participant(p.sid, p.identity, rtc_kind_name(p.kind), None, NO_REASON,
                       p.attributes, False)
