"""Configuration: one dataclass, Config, whose fields carry their flag, environment variable and
help (`option`), so that adding an option is one edit; validated at start. `Config.settings()`
makes every component's settings from it; monitor/app.py wires them."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from avatar_monitor_agent.roles import DEFAULT_AVATAR_IDENTITY

from monitor.limits import (
    IDLE_TIMEOUT,
    INTERRUPTION_GRACE,
    JOIN_TIMEOUT,
    MAX_CALLS,
    OBSERVE_MAX_ROOMS,
    OTLP_PROTOCOLS,
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
# What the room observer may receive: the avatar's audio (when the agent publishes no state, and
# the dry-audio probe), or no track at all (data messages and attributes only).
OBSERVE_MEDIA = ("audio", "none")
T = TypeVar("T")


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


def _names(given: list[str] | None, env: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A repeatable flag's values, else its comma-separated environment variable, else the
    default; empty values are dropped (so '' means none)."""
    values = given if given is not None else _env(env, ",".join(default)).split(",")
    return tuple(value.strip() for value in values if value.strip())


SECONDS, COUNT = _positive(float), _positive(int)
Style = Literal["value", "names", "switch", "negated"]


@dataclass(frozen=True, slots=True)
class Flag:
    """How a Config field is set from the command line and the environment. Styles: value
    (`--field-name X`), names (repeatable, or comma-separated in the environment), switch
    (`--field-name` turns it on, env=1), negated (`--no-field-name` turns it off, env=0)."""

    help: str
    parse: Callable[[str], Any] = str
    env: str = ""  # default AVATAR_MONITOR_FIELD_NAME
    flag: str = ""  # default --field-name
    style: Style = "value"
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    shown: Callable[[Any], str] = str  # the default as the text `parse` reads back
    cli_default: str | None = None  # the command line's default, where it is not Config's
    default_note: str = ""  # said after the default, inside the parenthesis
    note: str = ""  # said after the parenthesis

    def add_to(self, parser: argparse.ArgumentParser, name: str, default: Any) -> None:
        env = self.env or "AVATAR_MONITOR_" + name.upper()
        if self.style == "switch":
            parser.add_argument(
                self.flag or "--" + name.replace("_", "-"), action="store_true",
                default=_env(env, "") not in ("", "0", "false"),
                help=f"{self.help} (env {env}=1){self.note}")
        elif self.style == "negated":
            parser.add_argument(
                self.flag or "--no-" + name.replace("_", "-"), dest=name, action="store_false",
                default=_env(env, "1") not in ("0", "false", "off"),
                help=f"{self.help} (env {env}=0){self.note}")
        elif self.style == "names":
            parser.add_argument(
                self.flag or "--" + name.replace("_", "-"), action="append", dest=name,
                metavar=self.metavar,
                help=f"{self.help} (env {env}, comma-separated; default "
                     f"{','.join(default)}){self.note}")
        else:
            if self.cli_default is not None:
                default = self.cli_default
            shown = "%(default)s" if default != "" else "empty"
            parser.add_argument(
                self.flag or "--" + name.replace("_", "-"), type=self.parse,
                default=_env(env, self.shown(default)), metavar=self.metavar,
                choices=self.choices,
                help=f"{self.help} (env {env}; default {shown}{self.default_note}){self.note}")

    def value(self, given: Any, name: str, default: Any) -> Any:
        """The field's value from the parsed command line (and the environment)."""
        if self.style == "names":
            return _names(given, self.env or "AVATAR_MONITOR_" + name.upper(), default)
        return given


def option(default: T, help: str, parse: Callable[[str], Any] = str, **how: Any) -> T:
    """A Config field set by a flag and an environment variable (see Flag)."""
    return field(default=default, metadata={"flag": Flag(help, parse, **how)})


@dataclass(frozen=True, slots=True)
class Config:
    # The key pair livekit-server signs webhooks with: LIVEKIT_API_KEY, LIVEKIT_API_SECRET.
    api_key: str
    api_secret: str
    host: str = option("0.0.0.0", "address to listen on")
    port: int = option(9465, "port to listen on", _port)
    avatar_identities: tuple[str, ...] = option(
        (DEFAULT_AVATAR_IDENTITY,),
        "identity of the avatar participant, a glob; repeat for several", style="names",
        flag="--avatar-identity", env="AVATAR_MONITOR_AVATAR_IDENTITY", metavar="GLOB",
        note=". AGENT participants with lk.publish_on_behalf are avatars too")
    # Avatars that announce readiness (bot_ready): identity globs, lk.avatar_provider values.
    ready_identities: tuple[str, ...] = option(
        READY_IDENTITIES,
        "identity of an avatar that says bot_ready once its video is visible, a glob; repeat "
        "for several, '' for none", style="names", flag="--ready-identity",
        env="AVATAR_MONITOR_READY_IDENTITY", metavar="GLOB",
        note=". Such an avatar that never says it is a black screen")
    ready_providers: tuple[str, ...] = option(
        READY_PROVIDERS,
        "lk.avatar_provider attribute of avatars that say bot_ready; repeat for several, '' "
        "for none", style="names", flag="--ready-provider", env="AVATAR_MONITOR_READY_PROVIDER",
        metavar="NAME")
    avatar_join_timeout: float = option(
        JOIN_TIMEOUT,
        "seconds a user may wait for the avatar before the call counts as a startup failure",
        SECONDS)
    idle_timeout: float = option(IDLE_TIMEOUT, "the avatar's idle timeout in seconds", SECONDS)
    session_timeout: float = option(SESSION_TIMEOUT,
                                    "the avatar's session (GPU) timeout in seconds", SECONDS)
    timeout_tolerance: float = option(
        TIMEOUT_TOLERANCE,
        "seconds within which a session length or silence counts as hitting a timeout", SECONDS)
    unattended_after: float = option(
        UNATTENDED_AFTER, "seconds an avatar may stay in a room with no user (a billed "
        "session nobody sees) before its call gets a warning", SECONDS)
    interruption_grace: float = option(
        INTERRUPTION_GRACE,
        "seconds the avatar's audio or video may be unpublished or muted mid-call before it "
        "counts as an interruption", SECONDS)
    max_calls: int = option(
        MAX_CALLS, "calls tracked at once; beyond it the oldest are evicted and counted", COUNT)
    max_body_bytes: int = option(1 << 20, "largest webhook body accepted; larger ones get 413",
                                 COUNT)
    log_level: str = option("info", "log level", choices=LOG_LEVELS)
    livekit_url: str = option(
        "", "LiveKit server URL (ws://, wss://, http:// or https://) for the RoomService "
        "reconciler and the room observer, a hidden participant in each call's room; both off "
        "when empty", env="LIVEKIT_URL")
    observe_max_rooms: int = option(
        OBSERVE_MAX_ROOMS, "rooms observed at once; more are skipped and counted", COUNT)
    observe_media: str = option(
        "audio", "what the room observer may receive: 'audio' (the avatar's audio where the "
        "voice agent publishes no lk.agent.state, and probes of it for a dry track) or 'none' "
        "(no track: data messages and attributes only, cheaper, but no dry-audio detection and "
        "no speech without lk.agent.state)", choices=OBSERVE_MEDIA)
    shard: tuple[int, int] = option(
        (0, 1), "observe only rooms whose name hashes to shard I of N, so N replicas split the "
        "rooms", _shard, metavar="I/N", shown=lambda shard: f"{shard[0]}/{shard[1]}")
    shard_url: str = option(
        "", "the base URL of each shard's replica, with {shard} for its index "
        "(e.g. http://avatar-monitor-{shard}.avatar-monitor:9465): a replica redirects a "
        "call lookup for another shard's room there, and tells the agent's client where to "
        "report")
    observe_interval: float = option(
        30.0, "seconds between RoomService room listings that find calls in progress", SECONDS)
    otlp_endpoint: str = option(
        "", "send one trace per call to this OTLP collector base URL, e.g. "
        "http://127.0.0.1:4318; tracing is off when empty", env="OTEL_EXPORTER_OTLP_ENDPOINT")
    otlp_protocol: str = option("http/protobuf", "OTLP transport", choices=OTLP_PROTOCOLS,
                                env="OTEL_EXPORTER_OTLP_PROTOCOL")
    recent_calls: int = option(
        1000, "finished calls kept for /v1/calls, the status page and diagnose (live calls "
        "are always kept)", COUNT)
    # The status page's links: a trace viewer's URL with {trace_id}, a dashboard's URL.
    trace_url: str = option(
        "", "the call page links the call's trace here: a URL with {trace_id} (32 hex "
        "digits), e.g. http://jaeger:16686/trace/{trace_id}; needs --otlp-endpoint")
    dashboard_url: str = option(
        "", "the call page links this dashboard (e.g. a Grafana dashboard's URL), with from= "
        "and to= (epoch milliseconds) around the call added")
    state_file: str = option(
        "", "file where the sidecar notes the server time it last ran, so that after a "
        "restart or an outage what happened while none ran is counted once; off when empty")
    # Finished calls kept in SQLite (monitor/sinks/history.py); off when empty. The command
    # line's default is DEFAULT_HISTORY: tests and embedders get no file unless they ask.
    history: str = option(
        "", "SQLite file that keeps finished calls (record, verdict, timeline) across restarts "
        "for /v1/calls, the status page and diagnose; '' turns it off", metavar="PATH",
        cli_default=DEFAULT_HISTORY, default_note=", under the working directory")
    history_days: float = option(14.0, "days finished calls are kept in the history", SECONDS)
    history_max_calls: int = option(
        100_000, "finished calls kept in the history at most; the oldest go first", COUNT)
    public_status: bool = option(
        False, "serve /v1/calls and the status page without a token; they show room names and "
        "identities", style="switch")
    observer: bool = option(  # with livekit_url: the room observer (the reconciler always runs)
        True, "with --livekit-url, reconcile with RoomService but join no room",
        style="negated")
    log_json: bool = option(False, "log one JSON object per line", style="switch")
    service_name: str = "avatar-monitor"  # OTEL_SERVICE_NAME

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


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` flags, one per Config field that has one. Each flag's environment variable
    sets its default."""
    for spec in fields(Config):
        flag = spec.metadata.get("flag")
        if isinstance(flag, Flag):
            flag.add_to(parser, spec.name, spec.default)


class ConfigError(ValueError):
    """A configuration value is wrong; the message is one line for the operator."""


def config_from_args(args: argparse.Namespace) -> Config:
    """Build the Config, or raise ConfigError naming the wrong value."""
    key = os.environ.get("LIVEKIT_API_KEY", "")
    secret = os.environ.get("LIVEKIT_API_SECRET", "")
    if not key or not secret:
        raise ConfigError("LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set (the key pair "
                          "livekit-server signs webhooks with)")
    values = {spec.name: spec.metadata["flag"].value(getattr(args, spec.name), spec.name,
                                                     spec.default)
              for spec in fields(Config) if isinstance(spec.metadata.get("flag"), Flag)}
    if not values["avatar_identities"]:
        raise ConfigError("--avatar-identity must not be empty")
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
    service_name = _env("OTEL_SERVICE_NAME", "avatar-monitor") or "avatar-monitor"
    return Config(api_key=key, api_secret=secret, service_name=service_name, **values)
