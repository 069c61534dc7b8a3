"""Repeated session lengths: calls cut at a limit nobody configured are found; natural lengths,
normal endings, the configured session timeout and old departures are not."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from livekit.protocol import models

from monitor.calls.departures import Departure
from monitor.sinks.session_lengths import (
    MIN_SECONDS,
    RepeatedLengthCollector,
    RepeatedLengths,
    find_repeats,
    poisson_tail,
)
from tests.support.calls import Call
from tests.support.served import StartMonitor

NETWORK, UNKNOWN = Departure.NETWORK, Departure.UNKNOWN
NATURAL: dict[str, Callable[[random.Random], float]] = {
    "lognormal": lambda r: 30 + r.lognormvariate(5.5, 0.8),  # most calls 3-8 min
    "exponential": lambda r: 30 + r.expovariate(1 / 300),
    "uniform": lambda r: r.uniform(30, 3600),
}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def left(lengths: RepeatedLengths, sid: str, seconds: float, at: float,
         departure: Departure = NETWORK) -> None:
    call: Any = SimpleNamespace(room_sid=sid)
    lengths.avatar_left(call, departure, seconds, at)


def natural(kind: str, seed: int, n: int) -> list[tuple[float, str]]:
    r = random.Random(seed)
    return [(NATURAL[kind](r), f"n{i}") for i in range(n)]


@pytest.mark.parametrize("kind", list(NATURAL))
@pytest.mark.parametrize("n", [10, 100, 400])
def test_natural_lengths_do_not_repeat(kind: str, n: int) -> None:
    for seed in range(25):
        assert find_repeats(natural(kind, seed, n), spread=5.0) == (), (kind, n, seed)


@pytest.mark.parametrize("n", [0, 10, 100])
def test_calls_cut_at_an_unconfigured_length_repeat(n: int) -> None:
    cut = [(1200 + d, f"cut{i}") for i, d in enumerate((-2.0, -0.5, 0.0, 0.7, 1.5, 2.0))]
    found = find_repeats(natural("lognormal", 7, n) + cut, spread=5.0)
    assert len(found) == 1, found
    assert found[0].calls == 6 and found[0].sids == {sid for _, sid in cut}
    assert 1198 <= found[0].length <= 1202


def test_three_calls_alone_at_one_length_repeat_but_not_among_many() -> None:
    three = [(905.0, "a"), (906.5, "b"), (908.0, "c")]
    assert [r.calls for r in find_repeats(three, spread=5.0)] == [3]
    # Among 100 natural lengths three close ones are no evidence.
    assert find_repeats(natural("uniform", 3, 100) + three, spread=5.0) == ()


def test_lengths_further_apart_than_the_spread_are_not_one_group() -> None:
    apart = [(600.0 + 6 * i, f"s{i}") for i in range(5)]
    assert find_repeats(apart, spread=5.0) == ()


def test_poisson_tail() -> None:
    assert poisson_tail(0, 2.0) == pytest.approx(1.0)
    assert poisson_tail(1, 2.0) == pytest.approx(1 - 2.718281828 ** -2)
    assert poisson_tail(3, 0.0) == 0.0


def test_normal_endings_and_the_configured_timeout_are_not_counted() -> None:
    clock = Clock()
    lengths = RepeatedLengths(clock)
    for i in range(5):
        left(lengths, f"u{i}", 600.0, clock.now, Departure.USER_HANGUP)
        left(lengths, f"a{i}", 600.0, clock.now, Departure.AGENT_HANGUP)
        left(lengths, f"s{i}", 1800.0, clock.now, Departure.SESSION_TIMEOUT)
        left(lengths, f"c{i}", MIN_SECONDS - 1, clock.now)  # crashes at start, not a limit
    assert lengths.repeats() == ()
    for i in range(3):
        left(lengths, f"n{i}", 600.0 + i, clock.now, (NETWORK, UNKNOWN, Departure.REMOVED)[i])
    assert [(r.length, r.calls) for r in lengths.repeats()] == [(601.0, 3)]
    assert lengths.of("n0") == (601.0, 3) and lengths.of("u0") is None


def test_departures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    lengths = RepeatedLengths(clock, window=3600)
    for i in range(3):
        left(lengths, f"n{i}", 1200.0 + i, clock.now - 3000 + i)
    assert lengths.of("n1") == (1201.0, 3)
    clock.now += 601  # the first departure is now 3601 s old
    assert lengths.repeats() == () and lengths.of("n1") is None


def test_memory_is_bounded() -> None:
    clock = Clock()
    lengths = RepeatedLengths(clock, max_entries=100)
    for i in range(1000):
        left(lengths, f"n{i}", 60.0 + i, clock.now)
    assert len(lengths._left) == 100


def test_collector_describes_and_collects_two_gauges() -> None:
    clock = Clock()
    lengths = RepeatedLengths(clock)
    collector = RepeatedLengthCollector(lengths)
    names = ["avatar_repeated_session_length_seconds", "avatar_repeated_session_length_calls"]
    assert [m.name for m in collector.describe()] == names
    assert [m.samples[0].value for m in collector.collect()] == [0.0, 0.0]
    for i in range(4):
        left(lengths, f"n{i}", 1500.0 + i, clock.now)
    assert [m.samples[0].value for m in collector.collect()] == [1502.0, 4.0]
    assert all(m.samples[0].labels == {} for m in collector.collect())


def test_finding_repeats_among_many_departures_is_fast() -> None:
    many = natural("lognormal", 1, 10_000)
    started = time.perf_counter()
    find_repeats(many, spread=5.0)
    assert time.perf_counter() - started < 1.0


async def test_calls_cut_at_one_length_through_the_sidecar(start_monitor: StartMonitor) -> None:
    """Signed webhooks: four avatars drop (SIGNAL_CLOSE) 20:00 into their sessions, a fifth
    call ends by the user hanging up at the same length; the gauges and each cut call's verdict
    show the repeated length, the hung-up call stays healthy."""
    sidecar = await start_monitor()
    now = float(int(time.time()))
    cut = []
    for i in range(4):
        call = Call(sidecar, now - 1300 + i)
        await call.start()
        await call.avatar_leaves(call.t + 2 + 1200 + i * 0.5, models.DisconnectReason.SIGNAL_CLOSE)
        cut.append(call)
    hung_up = Call(sidecar, now - 1300)
    await hung_up.start()
    await hung_up.user_hangs_up(hung_up.t + 2 + 1200)
    await sidecar.wait_for("avatar_repeated_session_length_calls", 4)
    assert await sidecar.value("avatar_repeated_session_length_seconds") == 1201.0
    for call in cut:
        body = await call.verdict()
        assert body["verdict"] == "repeated_length", body["findings"]
        assert "like 3 other call(s) in the last hour (at 20:01)" in body["findings"][0]["evidence"]
        assert [f["rule"] for f in body["findings"]][:2] == ["repeated_length", "network"]
    assert (await hung_up.verdict())["status"] == "healthy"
