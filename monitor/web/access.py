"""Who may use /v1/events, /v1/calls and the status page: holders of a LiveKit access token
signed with the sidecar's key pair (livekit-api `AccessToken`), in `Authorization: Bearer`.
A token whose video grant names a room is good for that room only. Reports (/v1/events) take
more: an agent's token (kind `agent`) whose grant names the room reported on."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from aiohttp import web
from livekit.api import TokenVerifier
from livekit.api.access_token import Claims

from monitor.limits import TOKEN_LEEWAY

ANY_ROOM = ""
AGENT_KIND = "agent"
# The status page's session: the token, once given as ?token=, kept in an HttpOnly,
# SameSite=Strict cookie so that addresses and links no longer carry it.
SESSION_COOKIE = "avatar_monitor_token"


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
        leeway = datetime.timedelta(seconds=TOKEN_LEEWAY)
        return cls(TokenVerifier(api_key, api_secret, leeway=leeway), hint)

    def room_scope(self, request: web.Request, query_token: bool = False) -> str:
        """The room the caller may act on (ANY_ROOM for all); raises Denied. With
        `query_token` (a browser), a `?token=` parameter or the session cookie is taken too."""
        if self.verifier is None:
            return ANY_ROOM
        return _room_of(self._claims(request, query_token))

    def agent_room(self, request: web.Request) -> str:
        """The one room an agent's token may report on; raises Denied: 401 without a good
        token, 403 `forbidden` for a token that is not an agent's (a user's join token), 403
        `foreign_room` for an agent token that names no room."""
        if self.verifier is None:
            return ANY_ROOM
        claims = self._claims(request, query_token=False)
        if claims.kind != AGENT_KIND:
            raise Denied(403, "forbidden",
                         "only the voice agent may report: the token's kind must be agent")
        room = _room_of(claims)
        if not room:
            raise Denied(403, "foreign_room", "an agent token must grant the room it reports on")
        return room

    def _claims(self, request: web.Request, query_token: bool) -> Claims:
        assert self.verifier is not None
        token = bearer_token(request)
        if not token and query_token:
            token = request.query.get("token", "") or request.cookies.get(SESSION_COOKIE, "")
        if not token:
            raise Denied(401, "unauthorized",
                         f"a LiveKit access token is needed (Authorization: Bearer){self.hint}")
        try:
            return self.verifier.verify(token)
        except Exception as exc:  # livekit-api raises jwt's errors and ValueError alike
            raise Denied(401, "unauthorized",
                         f"token does not verify: {type(exc).__name__}") from None


def bearer_token(request: web.Request, *, bare: bool = False) -> str:
    """The token of `Authorization: Bearer <token>`, or "" without one. With `bare`, a header
    without the scheme is the token itself (livekit-server sends webhooks' tokens that way)."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[7:]
    return auth if bare else ""


def _room_of(claims: Claims) -> str:
    room = claims.video.room if claims.video is not None else ""
    if type(room) is not str:  # never read as "any room"
        raise Denied(401, "unauthorized", "the token's room grant is not a room name")
    return room
