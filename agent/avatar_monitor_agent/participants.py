"""livekit-rtc participants as the role rules (avatar_monitor_agent.roles) read them."""

from __future__ import annotations

from dataclasses import dataclass

from livekit import rtc

from avatar_monitor_agent.roles import ATTRIBUTE_PUBLISH_ON_BEHALF

# rtc.ParticipantKind values -> ParticipantInfo.Kind names, as webhooks spell them
KIND_NAMES = {0: "STANDARD", 1: "INGRESS", 2: "EGRESS", 3: "SIP", 4: "AGENT", 5: "CONNECTOR",
              6: "BRIDGE"}


def kind_name(kind: rtc.ParticipantKind.ValueType) -> str:
    return KIND_NAMES.get(int(kind), "STANDARD")


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
