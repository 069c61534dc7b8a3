"""Who a participant is in an avatar call: avatar, agent, user or other. One set of rules for the
sidecar (webhooks, its room observer) and the voice agent's `wait_for_avatar`."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

# The identity livekit-plugins-lemonslice gives its avatar unless told otherwise.
DEFAULT_AVATAR_IDENTITY = "lemonslice-avatar-agent"
# Set by every livekit-agents avatar plugin on its avatar: the identity of the agent it speaks for.
ATTRIBUTE_PUBLISH_ON_BEHALF = "lk.publish_on_behalf"
# Set by LiveKit's inference-gateway avatars: the avatar's provider (e.g. `lemonslice`).
ATTRIBUTE_AVATAR_PROVIDER = "lk.avatar_provider"


class Role(StrEnum):
    AVATAR = "avatar"
    AGENT = "agent"
    USER = "user"
    OTHER = "other"


class Participant(Protocol):
    """What the rules read of a participant, however it was learnt."""

    @property
    def identity(self) -> str: ...
    @property
    def kind(self) -> str: ...  # ParticipantInfo.Kind name: STANDARD, AGENT, SIP, EGRESS, ...
    @property
    def hidden(self) -> bool: ...
    @property
    def publishes_on_behalf(self) -> bool: ...  # has ATTRIBUTE_PUBLISH_ON_BEHALF


class RoleClassifier:
    """Avatar: identity matches a glob, or an AGENT publishing on behalf of another agent
    (`lk.publish_on_behalf`, set by every livekit-agents avatar plugin). Agent: other AGENTs.
    User: STANDARD or SIP, unless hidden. Other: hidden participants (such as the room
    observer), egress, ingress, connectors, ..."""

    def __init__(self, avatar_identity_globs: Iterable[str]) -> None:
        pattern = "|".join(fnmatch.translate(glob) for glob in avatar_identity_globs)
        self._avatar_identity = re.compile(pattern) if pattern else None

    def role_of(self, participant: Participant) -> Role:
        kind = participant.kind
        if self._avatar_identity is not None and self._avatar_identity.match(participant.identity):
            return Role.AVATAR
        if kind == "AGENT":
            return Role.AVATAR if participant.publishes_on_behalf else Role.AGENT
        if participant.hidden:
            return Role.OTHER
        if kind in ("STANDARD", "SIP"):
            return Role.USER
        return Role.OTHER
