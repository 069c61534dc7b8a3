"""Builders for signed LiveKit webhook requests, made exactly as livekit-server makes them:
protobuf `WebhookEvent` to JSON, signed with livekit-api's `AccessToken.with_sha256`; and the
access tokens the sidecar's other endpoints take."""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
import time

from google.protobuf.json_format import MessageToJson
from livekit import api
from livekit.protocol import models, webhook

KEY, SECRET = "test-key", "test-secret-that-is-long-enough-for-hs256"
AVATAR = "lemonslice-avatar-agent"
_ids = itertools.count(1)


def sign(body: bytes, key: str = KEY, secret: str = SECRET) -> str:
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return api.AccessToken(key, secret).with_sha256(digest).to_jwt()


def access_token(room: str | None = None, key: str = KEY, secret: str = SECRET,
                 ttl: datetime.timedelta = datetime.timedelta(minutes=5), kind: str = "",
                 identity: str = "") -> str:
    """A LiveKit access token, as /v1/calls and the status page take; with `room`, its video
    grant names that room; with kind `agent`, it is what /v1/events takes."""
    grants = api.VideoGrants(room=room) if room else api.VideoGrants()
    token = api.AccessToken(key, secret).with_grants(grants).with_ttl(ttl)
    if kind:
        token = token.with_kind(kind)  # type: ignore[arg-type]
    return token.with_identity(identity).to_jwt()


def agent_token(room: str | None, key: str = KEY, secret: str = SECRET,
                ttl: datetime.timedelta = datetime.timedelta(minutes=5)) -> str:
    """The voice agent's token for /v1/events, as avatar_monitor_agent mints it."""
    return access_token(room, key, secret, ttl, kind="agent", identity="agent-1")


def join_token(room: str, identity: str = "user-1", key: str = KEY, secret: str = SECRET) -> str:
    """A user's join token, as every frontend holds one."""
    return (api.AccessToken(key, secret).with_identity(identity)
            .with_grants(api.VideoGrants(room_join=True, room=room)).to_jwt())


def encode(event: webhook.WebhookEvent) -> bytes:
    return MessageToJson(event).encode()


def signed(event: webhook.WebhookEvent, key: str = KEY, secret: str = SECRET
           ) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the request livekit-server would send for `event`."""
    body = encode(event)
    return body, {"Authorization": sign(body, key, secret),
                  "Content-Type": "application/webhook+json"}


class Room:
    """A room on a simulated server clock; builds its webhook events."""

    def __init__(self, name: str | None = None, created_at: float | None = None) -> None:
        n = next(_ids)
        self.sid = f"RM_{n:06d}"
        self.name = name or f"room-{n}"
        self.created_at = time.time() if created_at is None else created_at

    def info(self) -> models.Room:
        return models.Room(sid=self.sid, name=self.name, creation_time=int(self.created_at),
                           creation_time_ms=int(self.created_at * 1000))

    def event(self, name: str, at: float, **fields: object) -> webhook.WebhookEvent:
        return webhook.WebhookEvent(event=name, id=f"EV_{next(_ids):08d}", created_at=int(at),
                                    room=self.info(), **fields)

    def started(self, at: float | None = None) -> webhook.WebhookEvent:
        return self.event("room_started", self.created_at if at is None else at)

    def finished(self, at: float, reason: int = models.RoomEndReason.ROOM_END_UNKNOWN
                 ) -> webhook.WebhookEvent:
        return self.event("room_finished", at, room_end_reason=reason)

    def joined(self, who: models.ParticipantInfo, at: float | None = None
               ) -> webhook.WebhookEvent:
        return self.event("participant_joined", who.joined_at_ms / 1000 if at is None else at,
                          participant=who)

    def left(self, who: models.ParticipantInfo, at: float,
             reason: int = models.DisconnectReason.CLIENT_INITIATED) -> webhook.WebhookEvent:
        gone = models.ParticipantInfo()
        gone.CopyFrom(who)
        gone.state = models.ParticipantInfo.DISCONNECTED
        gone.disconnect_reason = reason
        return self.event("participant_left", at, participant=gone)

    def track(self, who: models.ParticipantInfo, kind: int, at: float) -> webhook.WebhookEvent:
        info = models.TrackInfo(sid=f"TR_{next(_ids):06d}", type=kind,
                                version=models.TimedVersion(unix_micro=int(at * 1e6)))
        return self.event("track_published", at, participant=who, track=info)

    def untrack(self, who: models.ParticipantInfo, kind: int, at: float) -> webhook.WebhookEvent:
        """track_unpublished, as livekit-server sends it (no version on the track)."""
        info = models.TrackInfo(sid=f"TR_{next(_ids):06d}", type=kind)
        return self.event("track_unpublished", at, participant=who, track=info)


def participant(identity: str, joined_at: float, kind: int = models.ParticipantInfo.STANDARD,
                attributes: dict[str, str] | None = None) -> models.ParticipantInfo:
    return models.ParticipantInfo(
        sid=f"PA_{next(_ids):06d}", identity=identity, kind=kind,
        state=models.ParticipantInfo.ACTIVE, joined_at=int(joined_at),
        joined_at_ms=int(joined_at * 1000), attributes=attributes or {})


def user(joined_at: float, identity: str | None = None) -> models.ParticipantInfo:
    return participant(identity or f"user-{next(_ids)}", joined_at)


def avatar(joined_at: float, identity: str = AVATAR, on_behalf_of: str = "agent-1",
           provider: str = "") -> models.ParticipantInfo:
    attributes = {"lk.publish_on_behalf": on_behalf_of}
    if provider:
        attributes["lk.avatar_provider"] = provider
    return participant(identity, joined_at, models.ParticipantInfo.AGENT, attributes)


def agent(joined_at: float, identity: str = "agent-1") -> models.ParticipantInfo:
    return participant(identity, joined_at, models.ParticipantInfo.AGENT)
