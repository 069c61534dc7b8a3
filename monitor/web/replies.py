"""JSON answers, one shape for every endpoint: `{"status": ...}` for an outcome, and
`{"error": reason, "detail": text}` for a refusal."""

from __future__ import annotations

import json

from aiohttp import web


def json_reply(http_status: int, **fields: str | int) -> web.Response:
    """A small JSON answer: a status, or an error and its detail."""
    return web.Response(status=http_status, body=json.dumps(fields).encode(),
                        content_type="application/json")


def error_reply(http_status: int, reason: str, detail: str) -> web.Response:
    """A refusal: its reason (a closed set per endpoint) and a line of detail."""
    return json_reply(http_status, error=reason, detail=detail)
