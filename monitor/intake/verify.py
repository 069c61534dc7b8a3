"""Webhook signature verification: livekit-api's decision, with a fast path for canonical tokens.

LiveKit signs each webhook with an HS256 JWT whose `sha256` claim is the base64 SHA-256 of the
body. livekit-api's `WebhookReceiver` is the reference. It costs hundreds of microseconds per
request, so tokens in the exact shape LiveKit mints (canonical base64url segments, header
`{"alg":"HS256","typ":"JWT"}`, plain claims) are decided here with `hmac`; every other token goes
to livekit-api's `TokenVerifier` and the body-hash check of `WebhookReceiver.receive`. A fast-path
decision is only taken where the reference must decide the same way;
tests/unit/intake/test_verify.py checks that on every class of input.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import re
import time
from typing import Any, TypeGuard

import orjson
from livekit.api import TokenVerifier

from monitor.limits import TOKEN_LEEWAY

_SEGMENT = re.compile(rb"[A-Za-z0-9_-]+")
_HEADER = {"alg": "HS256", "typ": "JWT"}
# That header as LiveKit (and livekit-api) encode it: tokens that carry it skip decoding it.
_LIVEKIT_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
# Claims whose handling by the reference is plain enough to decide here; anything else falls back.
_PLAIN_CLAIMS = frozenset(
    {"iss", "sub", "exp", "nbf", "iat", "jti", "sha256", "video", "name", "kind", "metadata",
     "attributes"}
)
_FALLBACK = None
# base64url <-> base64, as the base64 module's urlsafe functions translate (binascii is called
# directly: the module's wrappers cost more than the decoding of a short segment).
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


class Unauthorized(Exception):
    """The request's signature does not verify; the message is a short reason."""


def _b64url_canonical(segment: bytes) -> bytes | None:
    """Decode an unpadded base64url segment, or None unless it is the canonical encoding."""
    if len(segment) % 4 == 1 or not _SEGMENT.fullmatch(segment):
        return None
    decoded = binascii.a2b_base64(
        segment.translate(_FROM_URLSAFE) + b"=" * (-len(segment) % 4), strict_mode=False)
    if _b64url(decoded) != segment:
        return None
    return decoded


def _b64url(data: bytes) -> bytes:
    """Unpadded base64url, as JWTs carry their segments."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


class _Hs256:
    """HMAC-SHA256 with one key: the keyed state is made once and copied per token (hmac.digest
    would redo the key schedule every call)."""

    def __init__(self, key: bytes) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def mac(self, message: bytes) -> bytes:
        keyed = self._keyed.copy()
        keyed.update(message)
        return keyed.digest()


def _json(raw: bytes) -> Any:
    """json.loads(raw), as PyJWT reads claims. orjson reads the same values several times
    faster where it reads a text at all (it keeps the last of duplicate keys, as json does);
    what it refuses (NaN, an integer beyond 64 bits, a lone surrogate...) json decides."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    if raw[:2] == b'{"':  # an object's text is UTF-8, as json.loads would find
        return json.loads(raw.decode("utf-8", "surrogatepass"))
    return json.loads(raw)


def _is_int(value: Any) -> TypeGuard[int]:
    return type(value) is int


class WebhookVerifier:
    """Decides whether a webhook body and its Authorization token were signed with our key."""

    def __init__(self, api_key: str, api_secret: str, leeway_seconds: float = TOKEN_LEEWAY) -> None:
        self._key = api_key
        self._hs256 = _Hs256(api_secret.encode())
        self._leeway = leeway_seconds
        self._reference = TokenVerifier(
            api_key, api_secret, leeway=datetime.timedelta(seconds=leeway_seconds)
        )
        self.fast_decisions = 0
        self.reference_decisions = 0

    def verify(self, body: bytes, token: str) -> None:
        """Return if the request is authentic, else raise Unauthorized."""
        reason = self._fast(body, token)
        if reason is _FALLBACK:
            self.reference_decisions += 1
            reason = self._by_reference(body, token)
        else:
            self.fast_decisions += 1
        if reason:
            raise Unauthorized(reason)

    def _by_reference(self, body: bytes, token: str) -> str:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return "body is not UTF-8"
        # The checks of livekit-api's WebhookReceiver.receive, without its parse: a body that
        # does not parse is judged later, as malformed rather than unauthorized.
        try:
            claims = self._reference.verify(token)
            if not claims.sha256:
                return "token has no sha256 claim"
            if hashlib.sha256(text.encode()).digest() != base64.b64decode(claims.sha256):
                return "body hash mismatch"
        except Exception as exc:  # livekit-api raises bare Exceptions for every failure
            return f"invalid token: {type(exc).__name__}"
        return ""

    def _fast(self, body: bytes, token: str) -> str | None:
        """A reason to reject, "" to accept, or None when the reference must decide."""
        raw = token.encode("utf-8", "surrogatepass") if isinstance(token, str) else b""
        parts = raw.split(b".")
        if len(parts) != 3:
            return _FALLBACK
        if parts[0] == _LIVEKIT_HEADER:
            decided = self._livekit_shaped(parts, body)
            if decided is not _FALLBACK:
                return decided
        header_raw, payload_raw, signature = (_b64url_canonical(p) for p in parts)
        if header_raw is None or payload_raw is None or signature is None:
            return _FALLBACK
        try:
            header = json.loads(header_raw)
            claims = json.loads(payload_raw)
        except ValueError:
            return _FALLBACK
        if header != _HEADER or type(claims) is not dict or not claims.keys() <= _PLAIN_CLAIMS:
            return _FALLBACK
        expected = self._hs256.mac(parts[0] + b"." + parts[1])
        if not hmac.compare_digest(expected, signature):
            return "bad signature"
        return self._check_claims(claims, body)

    def _livekit_shaped(self, parts: list[bytes], body: bytes) -> str | None:
        """The common case, cheapest: LiveKit's header, and a signature segment that is the
        canonical encoding of the right MAC. Anything else goes the general way."""
        mac = self._hs256.mac(parts[0] + b"." + parts[1])
        if not hmac.compare_digest(_b64url(mac), parts[2]):
            return _FALLBACK
        payload_raw = _b64url_canonical(parts[1])
        if payload_raw is None:
            return _FALLBACK
        try:
            claims = _json(payload_raw)
        except ValueError:
            return _FALLBACK
        if type(claims) is not dict or not claims.keys() <= _PLAIN_CLAIMS:
            return _FALLBACK
        return self._check_claims(claims, body)

    def _check_claims(self, claims: dict[str, Any], body: bytes) -> str | None:
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        iss, sha = claims.get("iss"), claims.get("sha256")
        if not _is_int(exp) or type(iss) is not str or type(sha) is not str:
            return _FALLBACK
        if (nbf is not None and not _is_int(nbf)) or (iat is not None and not _is_int(iat)):
            return _FALLBACK
        if "sub" in claims and type(claims["sub"]) is not str:
            return _FALLBACK
        if "jti" in claims and type(claims["jti"]) is not str:
            return _FALLBACK
        if "video" in claims and type(claims["video"]) is not dict:
            return _FALLBACK
        now = time.time()
        if exp <= now - self._leeway:
            return "token expired"
        if (nbf is not None and nbf > now + self._leeway) or (
            iat is not None and iat > now + self._leeway
        ):
            return "token not yet valid"
        if iss != self._key:
            return "unknown issuer"
        if not sha:
            return "token has no sha256 claim"
        try:
            claimed = base64.b64decode(sha)
        except (binascii.Error, ValueError):
            return "bad sha256 claim"
        if hashlib.sha256(body).digest() != claimed:
            return "body hash mismatch"
        return ""
