"""Command line: `avatar-monitor serve` runs the sidecar, `avatar-monitor diagnose ROOM` explains
one call (`--sid`, `--json`), `avatar-monitor docs metrics` prints the metrics reference."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from typing import NoReturn

from aiohttp import web

from monitor import __version__
from monitor.config import ConfigError, add_serve_arguments, config_from_args
from monitor.logs import configure_logging
from monitor.sinks.metrics_doc import metrics_markdown

log = logging.getLogger(__name__)

YOUNG_COLLECTION_EVERY = 10_000  # allocations, net of deallocations


class _OneLineErrors(argparse.ArgumentParser):
    """A wrong value fails with one clear line, not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineErrors(
        prog="avatar-monitor",
        description="Observability sidecar and Prometheus exporter for video-avatar calls in "
                    "LiveKit rooms.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineErrors)
    serve = commands.add_parser(
        "serve", help="receive LiveKit webhooks and serve /metrics",
        description="Receive signed LiveKit webhooks on POST /webhook and serve Prometheus "
                    "metrics on GET /metrics (health: GET /healthz). The webhook key pair comes "
                    "from LIVEKIT_API_KEY and LIVEKIT_API_SECRET.")
    add_serve_arguments(serve)
    diagnose = commands.add_parser(
        "diagnose", help="one call's verdict and timeline",
        description="Ask a running sidecar why a call failed: its verdict (the troubleshooting "
                    "guide's section and next step), participants and timeline, from its "
                    "memory or its history. Exit code 0 healthy or in progress, 1 failed, 2 "
                    "unknown room (or sid), 3 sidecar unreachable. With LIVEKIT_API_KEY/"
                    "LIVEKIT_API_SECRET set, a token for the room is sent.")
    diagnose.add_argument("room", help="the room name")
    diagnose.add_argument("--sid", help="the room sid of an earlier call in that room (default: "
                                        "its latest call)")
    diagnose.add_argument("--json", action="store_true", dest="as_json",
                          help="print the API's answer (GET /v1/calls/{room}) as JSON")
    diagnose.add_argument(
        "--url", default=os.environ.get("AVATAR_MONITOR_URL", "http://127.0.0.1:9465"),
        help="the sidecar's base URL (env AVATAR_MONITOR_URL; default %(default)s)")
    simulate = commands.add_parser(
        "simulate", help="send a running sidecar a few simulated calls",
        description="Send signed webhooks for one call of each kind (healthy, late join, "
                    "avatar never joined, pipeline error, network, agent lost, user network, "
                    "unattended) to a running sidecar, with no LiveKit server. The key pair "
                    "comes from LIVEKIT_API_KEY and LIVEKIT_API_SECRET (default: LiveKit's "
                    "development pair devkey/secret, as `make run` uses) and must be the "
                    "sidecar's.")
    simulate.add_argument(
        "url", nargs="?", default=os.environ.get("AVATAR_MONITOR_URL", "http://127.0.0.1:9465"),
        help="the sidecar's base URL (env AVATAR_MONITOR_URL; default %(default)s)")
    docs = commands.add_parser("docs", help="print generated reference documents")
    docs.add_argument("document", choices=["metrics", "diagnosis"])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "docs":
        sys.stdout.write(_docs(args.document))
        return 0
    if args.command == "diagnose":
        from monitor.diagnosis.cli import run

        return run(args.url, args.room, sid=args.sid, as_json=args.as_json)
    if args.command == "simulate":
        return _simulate(args.url)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"avatar-monitor serve: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_json)
    if config.uses_dev_keys:
        log.warning("using LiveKit's development key pair devkey/secret: webhooks signed by "
                    "anyone who knows it are accepted; set LIVEKIT_API_KEY/LIVEKIT_API_SECRET")
    if config.public_status:
        log.warning("--public-status: the status page and /v1/calls show room names and "
                    "identities to anyone who can reach port %d", config.port)
    from monitor.app import create_app
    from monitor.web.server import server_options

    app = create_app(config)
    # What start-up made (modules, protobuf descriptors, the app) lives as long as the process:
    # out of the collector's generations, the full collections no longer walk it.
    gc.freeze()
    # A busy intake has a few thousand young objects alive at once (requests in flight, calls
    # being decided): collecting the young generation every 700 allocations, as by default,
    # walks them hundreds of times a second for no garbage (benchmarks/README.md).
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 10, 10)
    log.info("listening on http://%s:%d (POST /webhook, POST /v1/events, GET /metrics, "
             "GET /healthz, GET /v1/calls, status page GET /)", config.host, config.port)
    web.run_app(app, host=config.host, port=config.port, access_log=None, print=None,
                handle_signals=True, **server_options())
    return 0


def _simulate(url: str) -> int:
    import asyncio

    from monitor.config import DEV_API_KEY, DEV_API_SECRET
    from monitor.simulate import send

    key = os.environ.get("LIVEKIT_API_KEY") or DEV_API_KEY
    secret = os.environ.get("LIVEKIT_API_SECRET") or DEV_API_SECRET
    try:
        made = asyncio.run(send(url, key, secret))
    except (TimeoutError, OSError, RuntimeError) as exc:
        print(f"avatar-monitor simulate: error: {exc}", file=sys.stderr)
        return 1
    width = max(len(call.name) for call in made)
    for call in made:
        print(f"{call.name:<{width}}  expect {call.expected}")
    print(f"sent {len(made)} calls; see {url.rstrip('/')}/ or "
          "`avatar-monitor diagnose ROOM`")
    return 0


def _docs(document: str) -> str:
    if document == "diagnosis":
        from monitor.diagnosis.verdicts import verdicts_markdown

        return verdicts_markdown()
    return metrics_markdown()
