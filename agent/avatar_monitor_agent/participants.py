"""livekit-rtc participants as the role rules (avatar_monitor_agent.roles) read them."""

from __future__ import annotations

from dataclasses import dataclass

from livekit import rtc

from avatar_monitor_agent.roles import ATTRIBUTE_PUBLISH_ON_BEHALF

_KIND_PREFIX = "PARTICIPANT_KIND_"


def kind_name(kind: rtc.ParticipantKind.ValueType) -> str:
    """An rtc.ParticipantKind as the ParticipantInfo.Kind name webhooks carry
    (PARTICIPANT_KIND_AGENT -> AGENT; the two enums number CONNECTOR and BRIDGE differently, so
    names, not numbers, are compared). STANDARD for a kind this livekit does not know."""
    try:
        return rtc.ParticipantKind.Name(kind).removeprefix(_KIND_PREFIX)
    except ValueError:
        return "STANDARD"


@dataclass(slots=True, frozen=True)
class RoomParticipant:
    """A participant of a connected room (a hidden one is never seen there)."""

    identity: str
    kind: str
    on_behalf_of: str  # ATTRIBUTE_PUBLISH_ON_BEHALF, "" when absent
    hidden: bool = False

    @property
    def publishes_on_behalf(self) -> bool:
        return bool(self.on_behalf_of)


def room_participant(p: rtc.Participant) -> RoomParticipant:
    return RoomParticipant(identity=p.identity, kind=kind_name(p.kind),
                           on_behalf_of=p.attributes.get(ATTRIBUTE_PUBLISH_ON_BEHALF, ""))
