"""livekit-rtc participants in the sidecar's terms, so every side names roles by one set of rules
(monitor.calls.roles): the room observer, and the voice agent's `wait_for_avatar`."""

from __future__ import annotations

from livekit import rtc

from monitor.intake.events import Participant

ATTRIBUTE_PUBLISH_ON_BEHALF = "lk.publish_on_behalf"
# rtc.ParticipantKind values -> ParticipantInfo.Kind names, as webhooks spell them
KIND_NAMES = {0: "STANDARD", 1: "INGRESS", 2: "EGRESS", 3: "SIP", 4: "AGENT", 5: "CONNECTOR",
              6: "BRIDGE"}


def kind_name(p: rtc.Participant) -> str:
    return KIND_NAMES.get(int(p.kind), "STANDARD")


def participant_of(p: rtc.Participant) -> Participant:
    """What the role rules read of a participant in a connected room."""
    on_behalf_of = p.attributes.get(ATTRIBUTE_PUBLISH_ON_BEHALF, "")
    return Participant(sid=p.sid, identity=p.identity, kind=kind_name(p), joined_at=None,
                       disconnect_reason="unknown_reason",
                       publishes_on_behalf=bool(on_behalf_of), on_behalf_of=on_behalf_of)
