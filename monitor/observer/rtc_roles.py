"""livekit-rtc participants as the tracker's role query takes them (CallTracker.role_of), read
with the rules' own names (avatar_monitor_agent: kinds, lk.publish_on_behalf)."""

from __future__ import annotations

from avatar_monitor_agent.participants import kind_name
from avatar_monitor_agent.roles import ATTRIBUTE_PUBLISH_ON_BEHALF
from livekit import rtc

from monitor.calls.inputs import Participant


def participant_of(p: rtc.Participant) -> Participant:
    """What the role rules read of a participant in a connected room."""
    on_behalf_of = p.attributes.get(ATTRIBUTE_PUBLISH_ON_BEHALF, "")
    return Participant(sid=p.sid, identity=p.identity, kind=kind_name(p.kind), joined_at=None,
                       disconnect_reason="unknown_reason",
                       publishes_on_behalf=bool(on_behalf_of), on_behalf_of=on_behalf_of)
