"""Who may use /v1/events, /v1/calls and the status page: holders of a LiveKit access token
signed with the sidecar's key pair (livekit-api `AccessToken`), in `Authorization: Bearer`.
A token whose video grant names a room is good for that room only."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from aiohttp import web
from livekit.api import TokenVerifier

ANY_ROOM = ""


class Denied(Exception):
    """The request may not go on; args: HTTP status, reason, detail."""


@dataclass(slots=True)
class TokenAccess:
    verifier: TokenVerifier | None  # None: open to everyone
    hint: str = ""  # appended to "a token is needed"

    @classmethod
    def create(cls, api_key: str, api_secret: str, public: bool = False,
               hint: str = "") -> TokenAccess:
        if public:
            return cls(None)
        leeway = datetime.timedelta(seconds=60)
        return cls(TokenVerifier(api_key, api_secret, leeway=leeway), hint)

    def room_scope(self, request: web.Request, query_token: bool = False) -> str:
        """The room the caller may act on (ANY_ROOM for all); raises Denied. With
        `query_token`, a `?token=` parameter is taken too (for a browser)."""
        if self.verifier is None:
            return ANY_ROOM
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if not token and query_token:
            token = request.query.get("token", "")
        if not token:
            raise Denied(401, "unauthorized",
                         f"a LiveKit access token is needed (Authorization: Bearer){self.hint}")
        try:
            return self.verifier.verify(token).video.room or ANY_ROOM
        except Exception as exc:  # livekit-api raises jwt's errors and ValueError alike
            raise Denied(401, "unauthorized", f"token does not verify: {exc}") from None
