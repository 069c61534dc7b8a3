"""The bill's scrape keeps no scan over the avatars alone: its figures equal the scan's."""

from __future__ import annotations

import random

from monitor.calls.model import Call
from monitor.sinks.bill import AvatarBill

T0 = 1_700_000_000.0


def _scanned(alone: dict[str, float], counted: float, now: float) -> tuple[float, float, float]:
    """The figures as a scan over every avatar alone computes them."""
    stays = [max(now - since, 0.0) for since in alone.values()]
    return counted + sum(stays), float(len(stays)), max(stays, default=0.0)


def _read(bill: AvatarBill) -> tuple[float, float, float]:
    seconds, now_alone, longest = (family.samples[0].value for family in bill.collect())
    return seconds, now_alone, longest


def test_figures_equal_a_scan_through_random_stays() -> None:
    rng = random.Random(7)
    clock = [T0]
    bill = AvatarBill(lambda: clock[0])
    calls = [Call(f"RM_{i}", f"room-{i}", T0) for i in range(40)]
    alone: dict[str, float] = {}
    counted = 0.0
    for _ in range(3000):
        clock[0] += rng.choice([0, 0.5, 1, 7])
        call = rng.choice(calls)
        if call.room_sid in alone:
            since = alone.pop(call.room_sid)
            bill.avatar_unattended(call, since, clock[0])
            counted += max(clock[0] - since, 0.0)
        else:
            since = clock[0] - rng.choice([0, 2, 30])
            alone[call.room_sid] = since
            bill.avatar_alone(call, since)
        seconds, now_alone, longest = _read(bill)
        want_seconds, want_now, want_longest = _scanned(alone, counted, clock[0])
        assert (now_alone, longest) == (want_now, want_longest)
        assert abs(seconds - want_seconds) <= 1e-6 * max(want_seconds, 1.0)


def test_a_stay_dated_after_now_counts_from_now() -> None:
    clock = [T0]
    bill = AvatarBill(lambda: clock[0])
    bill.avatar_alone(Call("RM_1", "room-1", T0), T0 + 5)  # the server's clock ahead of ours
    bill.avatar_alone(Call("RM_2", "room-2", T0), T0 - 3)
    assert _read(bill) == (3.0, 2.0, 3.0)
