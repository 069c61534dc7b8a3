"""Configuration: flags, their environment variables and defaults, validated at start, and the
settings of every component that Config makes (`Config.settings()`); monitor/app.py wires them."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avatar_monitor_agent.roles import DEFAULT_AVATAR_IDENTITY

from monitor.limits import (
    IDLE_TIMEOUT,
    INTERRUPTION_GRACE,
    JOIN_TIMEOUT,
    MAX_CALLS,
    OBSERVE_MAX_ROOMS,
    READY_IDENTITIES,
    READY_PROVIDERS,
    SESSION_TIMEOUT,
    TIMEOUT_TOLERANCE,
    UNATTENDED_AFTER,
)

if TYPE_CHECKING:
    from monitor.calls.core import TrackerSettings
    from monitor.diagnosis.verdicts import Thresholds
    from monitor.observer.room import ObserverSettings

DEV_API_KEY, DEV_API_SECRET = "devkey", "secret"
DEFAULT_HISTORY = "data/avatar-monitor.sqlite3"  # under the working directory
LOG_LEVELS = ("debug", "info", "warning", "error")
OTLP_PROTOCOLS = ("http/protobuf", "grpc")
# What the room observer may receive: the avatar's audio (when the agent publishes no state, and
# the dry-audio probe), or no track at all (data messages and attributes only).
OBSERVE_MEDIA = ("audio", "none")


@dataclass(frozen=True, slots=True)
class Config:
    api_key: str
    api_secret: str
    host: str = "0.0.0.0"
    port: int = 9465
    avatar_identities: tuple[str, ...] = (DEFAULT_AVATAR_IDENTITY,)
    # Avatars that announce readiness (bot_ready): identity globs, lk.avatar_provider values.
    ready_identities: tuple[str, ...] = READY_IDENTITIES
    ready_providers: tuple[str, ...] = READY_PROVIDERS
    avatar_join_timeout: float = JOIN_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    session_timeout: float = SESSION_TIMEOUT
    timeout_tolerance: float = TIMEOUT_TOLERANCE
    unattended_after: float = UNATTENDED_AFTER
    interruption_grace: float = INTERRUPTION_GRACE
    max_calls: int = MAX_CALLS
    max_body_bytes: int = 1 << 20
    log_level: str = "info"
    log_json: bool = False
    livekit_url: str = ""
    observer: bool = True  # with livekit_url: the room observer (the reconciler always runs)
    observe_max_rooms: int = OBSERVE_MAX_ROOMS
    observe_media: str = "audio"
    shard: tuple[int, int] = (0, 1)
    shard_url: str = ""
    observe_interval: float = 30.0
    otlp_endpoint: str = ""
    otlp_protocol: str = "http/protobuf"
    service_name: str = "avatar-monitor"
    recent_calls: int = 1000
    public_status: bool = False
    state_file: str = ""
    # Finished calls kept in SQLite (monitor/sinks/history.py); off when empty. The command
    # line's default is DEFAULT_HISTORY: tests and embedders get no file unless they ask.
    history: str = ""
    history_days: float = 14.0
    history_max_calls: int = 100_000
    # The status page's links: a trace viewer's URL with {trace_id}, a dashboard's URL.
    trace_url: str = ""
    dashboard_url: str = ""

    @property
    def uses_dev_keys(self) -> bool:
        return self.api_key == DEV_API_KEY and self.api_secret == DEV_API_SECRET

    def settings(self) -> Settings:
        """Every component's settings, taken from this config (the one place that maps the
        flags onto them). Imports are late: `serve --help` and the agent side need none."""
        from monitor.calls.core import TrackerSettings
        from monitor.diagnosis.verdicts import Thresholds

        observer = reconciler = None
        if self.livekit_url:
            reconciler = ReconcilerSettings(self.livekit_url, self.api_key, self.api_secret,
                                            self.observe_interval, self.shard)
        if self.livekit_url and self.observer:
            from monitor.observer.room import ObserverSettings

            shard, shards = self.shard
            observer = ObserverSettings(
                url=self.livekit_url, api_key=self.api_key, api_secret=self.api_secret,
                max_rooms=self.observe_max_rooms, shard=shard, shards=shards,
                receive_audio=self.observe_media != "none")
        return Settings(
            tracker=TrackerSettings(
                join_timeout=self.avatar_join_timeout,
                idle_timeout=self.idle_timeout,
                session_timeout=self.session_timeout,
                timeout_tolerance=self.timeout_tolerance,
                max_calls=self.max_calls,
                interruption_grace=self.interruption_grace,
                ready_identities=self.ready_identities,
                ready_providers=self.ready_providers,
            ),
            thresholds=Thresholds(join_timeout=self.avatar_join_timeout,
                                  idle_timeout=self.idle_timeout,
                                  session_timeout=self.session_timeout,
                                  unattended=self.unattended_after),
            length_spread=self.timeout_tolerance,
            observer=observer,
            reconciler=reconciler,
        )


@dataclass(frozen=True, slots=True)
class ReconcilerSettings:
    """RoomService reconciliation: the server, the key pair, how often, which rooms."""

    url: str
    api_key: str
    api_secret: str
    interval: float
    shard: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Settings:
    """The settings of the components that take more than a value or two from Config."""

    tracker: TrackerSettings
    thresholds: Thresholds  # the verdicts' (the app adds the repeated lengths it finds)
    length_spread: float  # repeated session lengths: how close counts as the same length
    observer: ObserverSettings | None  # None: no room observer
    reconciler: ReconcilerSettings | None  # None: no LiveKit URL, no reconciliation


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _positive(kind: type[float] | type[int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _port(text: str) -> int:
    value = _positive(int)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be 1..65535, got {text}")
    return int(value)


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        shard, shards = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be I/N, e.g. 0/3, got {text!r}") from None
    if shards < 1 or not 0 <= shard < shards:
        raise argparse.ArgumentTypeError(f"needs 0 <= I < N, got {text!r}")
    return shard, shards


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` flags. Each flag's environment variable sets its default."""
    d = Config("", "")

    def option(field: str, help: str, kind: Callable[[str], Any] = str, env: str = "",
               **extra: Any) -> None:
        """`--field-name`, defaulting to $env (AVATAR_MONITOR_FIELD_NAME) or Config's default."""
        env = env or "AVATAR_MONITOR_" + field.upper()
        default = getattr(d, field)
        parser.add_argument(
            "--" + field.replace("_", "-"), type=kind,
            default=_env(env, default if isinstance(default, str) else str(default)),
            help=f"{help} (env {env}; default {'%(default)s' if default != '' else 'empty'})",
            **extra)

    seconds, count = _positive(float), _positive(int)
    option("host", "address to listen on")
    option("port", "port to listen on", _port)
    parser.add_argument(
        "--avatar-identity", action="append", dest="avatar_identities", metavar="GLOB",
        help="identity of the avatar participant, a glob; repeat for several (env "
             "AVATAR_MONITOR_AVATAR_IDENTITY, comma-separated; default "
             f"{DEFAULT_AVATAR_IDENTITY}). AGENT participants with lk.publish_on_behalf are "
             "avatars too")
    parser.add_argument(
        "--ready-identity", action="append", dest="ready_identities", metavar="GLOB",
        help="identity of an avatar that says bot_ready once its video is visible, a glob; "
             "repeat for several, '' for none (env AVATAR_MONITOR_READY_IDENTITY, "
             f"comma-separated; default {','.join(READY_IDENTITIES)}). Such an avatar that "
             "never says it is a black screen")
    parser.add_argument(
        "--ready-provider", action="append", dest="ready_providers", metavar="NAME",
        help="lk.avatar_provider attribute of avatars that say bot_ready; repeat for several, "
             "'' for none (env AVATAR_MONITOR_READY_PROVIDER, comma-separated; default "
             f"{','.join(READY_PROVIDERS)})")
    option("avatar_join_timeout",
           "seconds a user may wait for the avatar before the call counts as a startup failure",
           seconds)
    option("idle_timeout", "the avatar's idle timeout in seconds", seconds)
    option("session_timeout", "the avatar's session (GPU) timeout in seconds", seconds)
    option("timeout_tolerance",
           "seconds within which a session length or silence counts as hitting a timeout",
           seconds)
    option("unattended_after", "seconds an avatar may stay in a room with no user (a billed "
           "session nobody sees) before its call gets a warning", seconds)
    option("interruption_grace",
           "seconds the avatar's audio or video may be unpublished or muted mid-call before it "
           "counts as an interruption", seconds)
    option("max_calls", "calls tracked at once; beyond it the oldest are evicted and counted",
           count)
    option("max_body_bytes", "largest webhook body accepted; larger ones get 413", count)
    option("log_level", "log level", choices=LOG_LEVELS)
    option("livekit_url", "LiveKit server URL (ws://, wss://, http:// or https://) for the "
           "RoomService reconciler and the room observer, a hidden participant in each call's "
           "room; both off when empty",
           env="LIVEKIT_URL")
    option("observe_max_rooms", "rooms observed at once; more are skipped and counted", count)
    option("observe_media", "what the room observer may receive: 'audio' (the avatar's audio "
           "where the voice agent publishes no lk.agent.state, and probes of it for a dry "
           "track) or 'none' (no track: data messages and attributes only, cheaper, but no "
           "dry-audio detection and no speech without lk.agent.state)", choices=OBSERVE_MEDIA)
    parser.add_argument(
        "--shard", type=_shard, default=_env("AVATAR_MONITOR_SHARD", "0/1"), metavar="I/N",
        help="observe only rooms whose name hashes to shard I of N, so N replicas split the "
             "rooms (env AVATAR_MONITOR_SHARD; default %(default)s)")
    option("shard_url", "the base URL of each shard's replica, with {shard} for its index "
           "(e.g. http://avatar-monitor-{shard}.avatar-monitor:9465): a replica redirects a "
           "call lookup for another shard's room there, and tells the agent's client where to "
           "report")
    option("observe_interval",
           "seconds between RoomService room listings that find calls in progress", seconds)
    option("otlp_endpoint", "send one trace per call to this OTLP collector base URL, e.g. "
           "http://127.0.0.1:4318; tracing is off when empty", env="OTEL_EXPORTER_OTLP_ENDPOINT")
    option("otlp_protocol", "OTLP transport", choices=OTLP_PROTOCOLS,
           env="OTEL_EXPORTER_OTLP_PROTOCOL")
    option("recent_calls", "finished calls kept for /v1/calls, the status page and diagnose "
           "(live calls are always kept)", count)
    option("trace_url", "the call page links the call's trace here: a URL with {trace_id} "
           "(32 hex digits), e.g. http://jaeger:16686/trace/{trace_id}; needs --otlp-endpoint")
    option("dashboard_url", "the call page links this dashboard (e.g. a Grafana dashboard's "
           "URL), with from= and to= (epoch milliseconds) around the call added")
    option("state_file", "file where the sidecar notes the server time it last ran, so that "
           "after a restart or an outage what happened while none ran is counted once; off "
           "when empty")
    parser.add_argument(
        "--history", default=_env("AVATAR_MONITOR_HISTORY", DEFAULT_HISTORY), metavar="PATH",
        help="SQLite file that keeps finished calls (record, verdict, timeline) across restarts "
             "for /v1/calls, the status page and diagnose; '' turns it off (env "
             "AVATAR_MONITOR_HISTORY; default %(default)s, under the working directory)")
    option("history_days", "days finished calls are kept in the history", _positive(float))
    option("history_max_calls", "finished calls kept in the history at most; the oldest go "
           "first", count)
    parser.add_argument(
        "--public-status", action="store_true",
        default=_env("AVATAR_MONITOR_PUBLIC_STATUS", "") not in ("", "0", "false"),
        help="serve /v1/calls and the status page without a token; they show room names and "
             "identities (env AVATAR_MONITOR_PUBLIC_STATUS=1)")
    parser.add_argument(
        "--no-observer", dest="observer", action="store_false",
        default=_env("AVATAR_MONITOR_OBSERVER", "1") not in ("0", "false", "off"),
        help="with --livekit-url, reconcile with RoomService but join no room (env "
             "AVATAR_MONITOR_OBSERVER=0)")
    parser.add_argument(
        "--log-json", action="store_true",
        default=_env("AVATAR_MONITOR_LOG_JSON", "") not in ("", "0", "false"),
        help="log one JSON object per line (env AVATAR_MONITOR_LOG_JSON=1)")


class ConfigError(ValueError):
    """A configuration value is wrong; the message is one line for the operator."""


def _names(given: list[str] | None, env: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A repeatable flag's values, else its comma-separated environment variable, else the
    default; empty values are dropped (so '' means none)."""
    values = given if given is not None else _env(env, ",".join(default)).split(",")
    return tuple(value.strip() for value in values if value.strip())


def config_from_args(args: argparse.Namespace) -> Config:
    """Build the Config, or raise ConfigError naming the wrong value."""
    key = os.environ.get("LIVEKIT_API_KEY", "")
    secret = os.environ.get("LIVEKIT_API_SECRET", "")
    if not key or not secret:
        raise ConfigError("LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set (the key pair "
                     "livekit-server signs webhooks with)")
    identities = args.avatar_identities or [
        glob.strip() for glob in _env("AVATAR_MONITOR_AVATAR_IDENTITY",
                                      DEFAULT_AVATAR_IDENTITY).split(",") if glob.strip()
    ]
    if not identities:
        raise ConfigError("--avatar-identity must not be empty")
    ready_identities = _names(args.ready_identities, "AVATAR_MONITOR_READY_IDENTITY",
                              READY_IDENTITIES)
    ready_providers = _names(args.ready_providers, "AVATAR_MONITOR_READY_PROVIDER",
                             READY_PROVIDERS)
    if args.livekit_url and not args.livekit_url.startswith(("ws://", "wss://", "http://",
                                                             "https://")):
        raise ConfigError("--livekit-url must be a ws://, wss://, http:// or https:// URL")
    if args.otlp_protocol not in OTLP_PROTOCOLS:
        raise ConfigError(f"--otlp-protocol must be one of {', '.join(OTLP_PROTOCOLS)}")
    if args.otlp_endpoint and not args.otlp_endpoint.startswith(("http://", "https://")):
        raise ConfigError("--otlp-endpoint must be an http:// or https:// URL")
    if args.trace_url and (not args.trace_url.startswith(("http://", "https://"))
                           or "{trace_id}" not in args.trace_url):
        raise ConfigError("--trace-url must be an http:// or https:// URL with {trace_id}")
    if args.dashboard_url and not args.dashboard_url.startswith(("http://", "https://")):
        raise ConfigError("--dashboard-url must be an http:// or https:// URL")
    if args.observe_media not in OBSERVE_MEDIA:
        raise ConfigError(f"--observe-media must be one of {', '.join(OBSERVE_MEDIA)}")
    if args.log_level not in LOG_LEVELS:
        raise ConfigError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
    return Config(
        api_key=key,
        api_secret=secret,
        host=args.host,
        port=args.port,
        avatar_identities=tuple(identities),
        ready_identities=ready_identities,
        ready_providers=ready_providers,
        avatar_join_timeout=args.avatar_join_timeout,
        idle_timeout=args.idle_timeout,
        session_timeout=args.session_timeout,
        timeout_tolerance=args.timeout_tolerance,
        unattended_after=args.unattended_after,
        interruption_grace=args.interruption_grace,
        max_calls=args.max_calls,
        max_body_bytes=args.max_body_bytes,
        log_level=args.log_level,
        log_json=args.log_json,
        livekit_url=args.livekit_url,
        observer=args.observer,
        observe_max_rooms=args.observe_max_rooms,
        observe_media=args.observe_media,
        shard=args.shard,
        shard_url=args.shard_url,
        observe_interval=args.observe_interval,
        otlp_endpoint=args.otlp_endpoint,
        otlp_protocol=args.otlp_protocol,
        service_name=_env("OTEL_SERVICE_NAME", "avatar-monitor") or "avatar-monitor",
        recent_calls=args.recent_calls,
        public_status=args.public_status,
        state_file=args.state_file,
        history=args.history,
        history_days=args.history_days,
        history_max_calls=args.history_max_calls,
        trace_url=args.trace_url,
        dashboard_url=args.dashboard_url,
    )
