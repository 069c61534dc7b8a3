"""What the HTTP server allows a client: time to send a body, time idle on a connection, time to
finish at shutdown; what every answer carries; and what happens when a handler fails.

- A body must arrive within BODY_READ_SECONDS (else 408 `timeout`, and the connection closes);
  one cut short is 400 `malformed`.
- A connection with no request under way (idle, or whose headers never finish) is closed after
  IDLE_SECONDS.
- At SIGTERM, requests under way get SHUTDOWN_SECONDS to finish, then are cancelled.
- An exception in a handler is a 500 `internal` JSON answer, a rate-limited log line and a count;
  never a silent failure.
- Every answer says `nosniff`, `no-referrer` and `no-store`; HTML ones carry a Content-Security-
  Policy that allows nothing but the page's own style sheet.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from monitor.logs import RateLimitedLog
from monitor.web.replies import error_reply

log = logging.getLogger(__name__)

BODY_READ_SECONDS = 10.0
IDLE_SECONDS = 15.0
SHUTDOWN_SECONDS = 2.0
LINGER_SECONDS = 1.0  # an unread body after the answer: read and dropped this long at most
CHUNK_BYTES = 16 * 1024
# Endpoints, for counting failures with a closed label set.
ENDPOINTS = {"/webhook": "webhook", "/v1/events": "events", "/metrics": "metrics",
             "/healthz": "health", "/readyz": "health"}
ENDPOINT_NAMES = ("webhook", "events", "calls", "status_page", "metrics", "health", "other")


def server_options() -> dict[str, Any]:
    """Keyword arguments for `web.run_app` / `web.AppRunner`: the timeouts above."""
    return {"keepalive_timeout": IDLE_SECONDS, "shutdown_timeout": SHUTDOWN_SECONDS,
            "lingering_time": LINGER_SECONDS}


class BodyRefused(Exception):
    """The body was not read in full; args: HTTP status, reason, detail."""


async def read_body(request: web.Request, max_bytes: int, timeout: float | None = None
                    ) -> bytes:
    """The whole body, or BodyRefused: 413 `too_large` past `max_bytes` (chunked bodies have no
    length to check first), 408 `timeout` when it does not arrive in time (default
    BODY_READ_SECONDS)."""
    timeout = BODY_READ_SECONDS if timeout is None else timeout
    length = request.content_length
    if length is not None and length > max_bytes:
        raise BodyRefused(413, "too_large", f"body over {max_bytes} bytes")
    content = request.content
    if content.is_eof() and content.exception() is None:
        # The usual case: the whole body came with the headers; nothing to wait for.
        whole = content.read_nowait()
        if len(whole) > max_bytes:
            raise BodyRefused(413, "too_large", f"body over {max_bytes} bytes")
        return whole
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(CHUNK_BYTES):
                body += chunk
                if len(body) > max_bytes:
                    raise BodyRefused(413, "too_large", f"body over {max_bytes} bytes")
    except TimeoutError:
        raise BodyRefused(408, "timeout", f"the body did not arrive within {timeout:g} s"
                          ) from None
    except (ConnectionError, HttpProcessingError, ClientPayloadError):
        raise BodyRefused(400, "malformed", "the body ended early (connection lost, or a bad "
                          "chunked encoding)") from None
    return bytes(body)


def endpoint_of(request: web.Request) -> str:
    path = request.path
    if path in ENDPOINTS:
        return ENDPOINTS[path]
    if path.startswith("/v1/calls"):
        return "calls"
    if path == "/" or path.startswith("/calls/"):
        return "status_page"
    return "other"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answers_middleware(count: Callable[[str], None], html_policy: str) -> Any:
    """Every answer, aiohttp's own too (404, 405, 413 ...), carries the security headers (and
    an HTML one `html_policy`). Any exception in a handler is a 500 `internal`, counted by
    `count(endpoint)` and logged."""
    warn = RateLimitedLog(log)

    @web.middleware
    async def answers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _secure(exc.headers, html_policy)
            raise
        except Exception as exc:
            endpoint = endpoint_of(request)
            count(endpoint)
            warn.warning(f"internal:{endpoint}", "%s %s failed: %s", request.method, endpoint,
                         type(exc).__name__)
            log.debug("handler failure", exc_info=True)
            response = error_reply(500, "internal", "the request could not be handled")
            response.force_close()
        _secure(response.headers, html_policy)
        return response

    return answers


def _secure(headers: MutableMapping[str, str], html_policy: str) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cache-Control", "no-store")
    if headers.get("Content-Type", "").startswith("text/html"):
        headers.setdefault("Content-Security-Policy", html_policy)
        headers.setdefault("X-Frame-Options", "DENY")


def style_hash(css: str) -> str:
    """A CSP source for an inline <style> element with exactly this text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"
