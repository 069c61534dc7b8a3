"""Config.settings(): every flag reaches the component that uses it, under that component's
name for it."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from monitor.calls.core import TrackerSettings
from monitor.cli import build_parser
from monitor.config import (
    Config,
    ConfigError,
    Flag,
    ReconcilerSettings,
    add_serve_arguments,
    config_from_args,
)
from monitor.diagnosis.verdicts import Thresholds
from monitor.observer.room import ObserverSettings
from tests.support.webhooks import KEY, SECRET

URL = "ws://livekit.test:7880"


def test_flags_reach_each_component(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    args = build_parser().parse_args([
        "serve", "--avatar-join-timeout", "12", "--idle-timeout", "40", "--session-timeout",
        "900", "--timeout-tolerance", "2", "--max-calls", "7", "--livekit-url", URL,
        "--shard", "1/3", "--observe-max-rooms", "9", "--observe-interval", "4"])
    settings = config_from_args(args).settings()
    assert settings.tracker == TrackerSettings(join_timeout=12, idle_timeout=40,
                                               session_timeout=900, timeout_tolerance=2,
                                               max_calls=7)
    assert settings.thresholds == Thresholds(join_timeout=12, idle_timeout=40,
                                             session_timeout=900)
    assert settings.length_spread == 2
    assert settings.observer == ObserverSettings(URL, KEY, SECRET, max_rooms=9, shard=1,
                                                 shards=3)
    assert settings.reconciler == ReconcilerSettings(URL, KEY, SECRET, 4.0, (1, 3))


def test_livekit_url_and_observer_decide_what_runs() -> None:
    bare = Config(KEY, SECRET).settings()
    assert bare.observer is None and bare.reconciler is None
    listing_only = Config(KEY, SECRET, livekit_url=URL, observer=False).settings()
    assert listing_only.observer is None and listing_only.reconciler is not None
    both = Config(KEY, SECRET, livekit_url=URL).settings()
    assert both.observer is not None and both.reconciler is not None


def test_defaults_are_the_components_own() -> None:
    settings = Config(KEY, SECRET).settings()
    assert settings.tracker == TrackerSettings()
    assert settings.thresholds == Thresholds()


def test_interruption_grace_reaches_the_tracker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    args = build_parser().parse_args(["serve", "--interruption-grace", "2.5"])
    assert config_from_args(args).settings().tracker.interruption_grace == 2.5
    monkeypatch.setenv("AVATAR_MONITOR_INTERRUPTION_GRACE", "8")
    args = build_parser().parse_args(["serve"])
    assert config_from_args(args).settings().tracker.interruption_grace == 8


def test_which_avatars_announce_readiness_is_configurable(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    args = build_parser().parse_args(["serve", "--ready-identity", "tavus-*",
                                      "--ready-identity", "acme-*", "--ready-provider", ""])
    tracker = config_from_args(args).settings().tracker
    assert (tracker.ready_identities, tracker.ready_providers) == (("tavus-*", "acme-*"), ())
    monkeypatch.setenv("AVATAR_MONITOR_READY_PROVIDER", "lemonslice, hedra")
    tracker = config_from_args(build_parser().parse_args(["serve"])).settings().tracker
    assert (tracker.ready_identities, tracker.ready_providers) == (
        ("lemonslice-*",), ("lemonslice", "hedra"))


def test_the_pages_links_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    trace, dashboard = "http://jaeger:16686/trace/{trace_id}", "https://grafana.test/d/calls"
    args = build_parser().parse_args(["serve", "--trace-url", trace,
                                      "--dashboard-url", dashboard])
    config = config_from_args(args)
    assert (config.trace_url, config.dashboard_url) == (trace, dashboard)
    monkeypatch.setenv("AVATAR_MONITOR_TRACE_URL", "http://jaeger:16686/search")
    with pytest.raises(ConfigError, match=r"--trace-url .* with \{trace_id\}"):
        config_from_args(build_parser().parse_args(["serve"]))
    monkeypatch.delenv("AVATAR_MONITOR_TRACE_URL")
    with pytest.raises(ConfigError, match="--dashboard-url"):
        config_from_args(build_parser().parse_args(["serve", "--dashboard-url", "grafana"]))


def test_every_option_is_a_flag_with_its_environment_variable() -> None:
    """Config's fields are the flags: each one with an option has its flag and variable in
    `serve --help`; only the key pair and the service name come from the environment alone."""
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    text = " ".join(parser.format_help().split())
    without = []
    for spec in fields(Config):
        flag = spec.metadata.get("flag")
        if not isinstance(flag, Flag):
            without.append(spec.name)
            continue
        name = flag.flag or ("--no-" if flag.style == "negated" else "--") + spec.name.replace(
            "_", "-")
        env = flag.env or "AVATAR_MONITOR_" + spec.name.upper()
        assert name in text and env in text.replace("- ", "-"), spec.name
    assert without == ["api_key", "api_secret", "service_name"]


def test_an_environment_variable_sets_its_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    monkeypatch.setenv("AVATAR_MONITOR_SHARD", "2/4")
    monkeypatch.setenv("AVATAR_MONITOR_HISTORY_DAYS", "3")
    monkeypatch.setenv("AVATAR_MONITOR_OBSERVER", "0")
    monkeypatch.setenv("AVATAR_MONITOR_PUBLIC_STATUS", "1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("AVATAR_MONITOR_AVATAR_IDENTITY", "a-*, b-*")
    config = config_from_args(build_parser().parse_args(["serve", "--history-days", "5"]))
    assert (config.shard, config.history_days, config.observer, config.public_status,
            config.otlp_protocol, config.avatar_identities) == (
        (2, 4), 5.0, False, True, "grpc", ("a-*", "b-*"))
    assert config.history == "data/avatar-monitor.sqlite3"
    assert Config(KEY, SECRET).history == ""


def test_observe_media_none_receives_no_audio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    default = config_from_args(build_parser().parse_args(["serve", "--livekit-url", URL]))
    assert default.settings().observer == ObserverSettings(URL, KEY, SECRET, receive_audio=True)
    args = build_parser().parse_args(["serve", "--livekit-url", URL, "--observe-media", "none"])
    assert config_from_args(args).settings().observer == ObserverSettings(
        URL, KEY, SECRET, receive_audio=False)
    monkeypatch.setenv("AVATAR_MONITOR_OBSERVE_MEDIA", "none")
    args = build_parser().parse_args(["serve", "--livekit-url", URL])
    assert config_from_args(args).settings().observer == ObserverSettings(
        URL, KEY, SECRET, receive_audio=False)
    monkeypatch.setenv("AVATAR_MONITOR_OBSERVE_MEDIA", "video")
    with pytest.raises(ConfigError, match="--observe-media"):
        config_from_args(build_parser().parse_args(["serve", "--livekit-url", URL]))
