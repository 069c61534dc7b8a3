"""The role rules as the voice agent's client reads a room's participants, and as the sidecar
reads webhooks: one participant, one role, whichever way it was learnt."""

from __future__ import annotations

import time

import pytest
from avatar_monitor_agent.participants import RoomParticipant, kind_name
from avatar_monitor_agent.roles import ATTRIBUTE_PUBLISH_ON_BEHALF, Role, RoleClassifier
from livekit import rtc
from livekit.protocol import models

from monitor.intake.events import parse_event
from tests.support.webhooks import Room, agent, avatar, encode, participant, user

Info = models.ParticipantInfo


def test_rtc_kinds_get_the_names_webhooks_give_them() -> None:
    # The two enums number CONNECTOR and BRIDGE differently (5, 6 in rtc; 7, 8 in webhooks).
    assert {number: kind_name(number) for _, number in rtc.ParticipantKind.items()} == {
        0: "STANDARD", 1: "INGRESS", 2: "EGRESS", 3: "SIP", 4: "AGENT", 5: "CONNECTOR",
        6: "BRIDGE"}
    assert {kind_name(number) for _, number in rtc.ParticipantKind.items()} <= set(Info.Kind.keys())


def test_an_rtc_kind_this_livekit_does_not_know_is_standard() -> None:
    assert kind_name(rtc.ParticipantKind.ValueType(99)) == "STANDARD"


def _room_view(info: models.ParticipantInfo) -> RoomParticipant:
    """The participant as a connected room shows it: an rtc kind, its attributes."""
    rtc_kind = rtc.ParticipantKind.Value("PARTICIPANT_KIND_" + Info.Kind.Name(info.kind))
    return RoomParticipant(identity=info.identity, kind=kind_name(rtc_kind),
                           on_behalf_of=info.attributes.get(ATTRIBUTE_PUBLISH_ON_BEHALF, ""))


@pytest.mark.parametrize(("info", "role"), [
    (avatar(0), Role.AVATAR),
    (avatar(0, identity="other-provider"), Role.AVATAR),  # lk.publish_on_behalf
    (participant("acme-avatar", 0), Role.AVATAR),  # identity glob
    (agent(0), Role.AGENT),
    (user(0), Role.USER),
    (participant("phone", 0, Info.SIP), Role.USER),
    (participant("rec", 0, Info.EGRESS), Role.OTHER),
    (participant("bridge", 0, Info.CONNECTOR), Role.OTHER),
], ids=lambda v: getattr(v, "identity", str(v)))
def test_a_room_participant_has_the_role_its_webhook_gives(info: models.ParticipantInfo,
                                                           role: Role) -> None:
    roles = RoleClassifier(["lemonslice-avatar-agent", "*-avatar"])
    webhook = parse_event(encode(Room().joined(info, at=time.time()))).participant
    assert webhook is not None
    assert roles.role_of(webhook) is role
    assert roles.role_of(_room_view(info)) is role
