"""Signed webhook traffic, made once with the builders of tests/support/webhooks.py and replayed.

Each call is the sequence livekit-server sends for a healthy avatar call: user joined, avatar
joined, audio and video track published by the avatar, user left, avatar left. Every event has
its own id, so the sidecar does the full work for each one (no de-duplication short cut).
Tokens are livekit-api `AccessToken(...).with_sha256(...).with_ttl(...)`, valid for the run.

File format: records separated by NUL; a record is the token, a newline, then the body.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import itertools
import multiprocessing
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from livekit import api
from livekit.protocol import models

from tests.support import webhooks

EVENTS_PER_CALL = 6
TOKEN_TTL = datetime.timedelta(hours=1)
CONTENT_TYPE = "application/webhook+json"
_IDS_PER_CHUNK = 10_000_000  # room, participant and event ids never collide across chunks
_CHUNK_CALLS = 2_000


def sign(body: bytes) -> str:
    """The Authorization token livekit-server would send with `body`."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(webhooks.KEY, webhooks.SECRET).with_sha256(digest)
    return token.with_ttl(TOKEN_TTL).to_jwt()


def call_events(now: float) -> list[bytes]:
    """The bodies of one healthy call, in the order livekit-server sends them."""
    room = webhooks.Room(created_at=now)
    user = webhooks.user(now + 0.5)
    avatar = webhooks.avatar(now + 2.0)
    events = [
        room.joined(user),
        room.joined(avatar),
        room.track(avatar, models.TrackType.AUDIO, now + 2.4),
        room.track(avatar, models.TrackType.VIDEO, now + 2.5),
        room.left(user, now + 60.0),
        room.left(avatar, now + 61.0),
    ]
    return [webhooks.encode(event) for event in events]


def live_call_events(now: float) -> list[bytes]:
    """The bodies that make one call live and keep it so: user joined, avatar joined."""
    room = webhooks.Room(created_at=now)
    user = webhooks.user(now + 0.5)
    avatar = webhooks.avatar(now + 2.0)
    return [webhooks.encode(room.joined(user)), webhooks.encode(room.joined(avatar))]


def _chunk(args: tuple[int, int, float, bool]) -> list[tuple[str, bytes]] | list[bytes]:
    index, calls, now, signed = args
    webhooks._ids = itertools.count(1 + index * _IDS_PER_CHUNK)
    make: Callable[[float], list[bytes]] = call_events if signed else live_call_events
    bodies = [body for _ in range(calls) for body in make(now)]
    if not signed:
        return bodies
    return [(sign(body), body) for body in bodies]


def _chunks(calls: int, now: float, signed: bool) -> Iterator[tuple[int, int, float, bool]]:
    for index, start in enumerate(range(0, calls, _CHUNK_CALLS)):
        yield index, min(_CHUNK_CALLS, calls - start), now, signed


def _generate(calls: int, signed: bool) -> list:
    now = time.time()
    with multiprocessing.get_context("fork").Pool(min(2, multiprocessing.cpu_count())) as pool:
        parts = pool.map(_chunk, _chunks(calls, now, signed))
    return [item for part in parts for item in part]


def signed_requests(calls: int) -> list[tuple[str, bytes]]:
    """(token, body) for `calls` healthy calls, EVENTS_PER_CALL requests each, in call order."""
    return _generate(calls, signed=True)


def live_call_bodies(calls: int) -> list[bytes]:
    """Unsigned bodies, two per call, that leave `calls` calls live."""
    return _generate(calls, signed=False)


def save(requests: list[tuple[str, bytes]], path: Path) -> None:
    path.write_bytes(b"\0".join(token.encode() + b"\n" + body for token, body in requests))


def load(path: Path) -> list[tuple[str, bytes]]:
    records = path.read_bytes().split(b"\0")
    return [(token.decode(), body) for token, _, body in (r.partition(b"\n") for r in records)]


def raw_request(token: str, body: bytes, host: str) -> bytes:
    """One HTTP/1.1 keep-alive request, as bytes on the wire."""
    head = (f"POST /webhook HTTP/1.1\r\nHost: {host}\r\nAuthorization: {token}\r\n"
            f"Content-Type: {CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body
