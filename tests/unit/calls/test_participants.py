"""One participant adapter: a webhook, a RoomService listing and a connected room (livekit-rtc)
describe the same participant alike, and a kind this livekit does not name is never a user or an
avatar, whichever source told it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from avatar_monitor_agent.roles import (
    ATTRIBUTE_AVATAR_PROVIDER,
    ATTRIBUTE_PUBLISH_ON_BEHALF,
    Role,
    RoleClassifier,
)
from livekit import rtc
from livekit.protocol import models
from livekit.rtc._proto import participant_pb2

from monitor.calls.inputs import Participant
from monitor.calls.participants import UNKNOWN_KIND, from_info, from_rtc
from monitor.intake.events import parse_event
from tests.support.webhooks import Room, encode

Info = models.ParticipantInfo
ROLES = RoleClassifier(["lemonslice-avatar-agent"])
UNNAMED = 99  # a kind number neither enum names (a newer server's)


def _info(kind: int, attributes: dict[str, str]) -> Info:
    info = Info(sid="PA_one", identity="someone", kind=kind, joined_at=1_700_000_000)
    info.attributes.update(attributes)
    return info


@dataclass
class _NewerRtcParticipant:
    """What a newer livekit-rtc would hold: a kind number this version's enum lacks (its own
    protobuf cannot carry one)."""

    sid: str
    identity: str
    attributes: dict[str, str]
    kind: int = UNNAMED


def _rtc(info: Info) -> rtc.Participant:
    """The participant as a connected room holds it: rtc numbers its kinds by their own enum."""
    if info.kind == UNNAMED:
        newer = _NewerRtcParticipant(info.sid, info.identity, dict(info.attributes))
        return newer  # type: ignore[return-value]
    owned = participant_pb2.OwnedParticipant()
    owned.info.sid, owned.info.identity = info.sid, info.identity
    owned.info.kind = rtc.ParticipantKind.Value("PARTICIPANT_KIND_" + Info.Kind.Name(info.kind))
    owned.info.attributes.update(info.attributes)
    return rtc.RemoteParticipant(owned)


def _by_webhook(info: Info) -> Participant:
    participant = parse_event(encode(Room().joined(info, at=1_700_000_001))).participant
    assert participant is not None
    return participant


KINDS = [number for _, number in Info.Kind.items()] + [UNNAMED]
ATTRIBUTES = [{}, {ATTRIBUTE_PUBLISH_ON_BEHALF: "voice-agent",
                   ATTRIBUTE_AVATAR_PROVIDER: "lemonslice"}]


@pytest.mark.parametrize("attributes", ATTRIBUTES, ids=["plain", "on-behalf"])
@pytest.mark.parametrize("kind", KINDS, ids=lambda k: Info.Kind.Name(k) if k != UNNAMED
                         else "unnamed")
def test_every_source_reads_a_participant_alike(kind: int, attributes: dict[str, str]) -> None:
    info = _info(kind, attributes)
    webhook, listed, room = _by_webhook(info), from_info(info), from_rtc(_rtc(info))
    assert webhook == listed  # a listing is read as its webhook would be
    for seen in (listed, room):
        assert (seen.kind, seen.publishes_on_behalf, seen.on_behalf_of, seen.avatar_provider) \
            == (webhook.kind, webhook.publishes_on_behalf, webhook.on_behalf_of,
                webhook.avatar_provider)
        assert ROLES.role_of(seen) is ROLES.role_of(webhook)


@pytest.mark.parametrize("attributes", ATTRIBUTES, ids=["plain", "on-behalf"])
def test_an_unknown_kind_is_never_a_user_or_an_avatar(attributes: dict[str, str]) -> None:
    info = _info(UNNAMED, attributes)
    for seen in (_by_webhook(info), from_info(info), from_rtc(_rtc(info))):
        assert seen.kind == UNKNOWN_KIND
        assert ROLES.role_of(seen) is Role.OTHER


def test_rtc_kinds_are_matched_by_name_not_number() -> None:
    """rtc numbers CONNECTOR and BRIDGE 5 and 6; ParticipantInfo.Kind numbers them 7 and 8."""
    for name in ("CONNECTOR", "BRIDGE"):
        assert from_rtc(_rtc(_info(Info.Kind.Value(name), {}))).kind == name
