"""The two yardsticks the sidecar is measured against, each a bare aiohttp server.

    python -m benchmarks.bare_servers ceiling --port 9500    # reads the body, returns 200
    python -m benchmarks.bare_servers reference --port 9501  # livekit-api WebhookReceiver only

Both serve POST /webhook and GET /healthz, with the sidecar's run_app settings (no access log).
"""

from __future__ import annotations

import argparse

from aiohttp import web
from livekit.api import TokenVerifier, WebhookReceiver

from tests.support.webhooks import KEY, SECRET

_OK = b'{"status":"ok"}'


def _ok() -> web.Response:
    return web.Response(body=_OK, content_type="application/json")


async def _ceiling(request: web.Request) -> web.Response:
    await request.read()
    return _ok()


def _reference() -> web.Handler:
    receiver = WebhookReceiver(TokenVerifier(KEY, SECRET))

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            receiver.receive(body.decode(), request.headers.get("Authorization", ""))
        except Exception:  # livekit-api raises bare Exceptions for every failure
            return web.Response(status=401)
        return _ok()

    return handle


async def _healthz(request: web.Request) -> web.Response:
    return _ok()


def build_app(kind: str) -> web.Application:
    app = web.Application()
    app.router.add_post("/webhook", _ceiling if kind == "ceiling" else _reference())
    app.router.add_get("/healthz", _healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["ceiling", "reference"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(build_app(args.kind), host=args.host, port=args.port, access_log=None,
                print=None)


if __name__ == "__main__":
    main()
