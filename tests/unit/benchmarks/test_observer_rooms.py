"""The observer benchmark's per-room arithmetic: the observer's, and the bare livekit-rtc
floor's beside it."""

from __future__ import annotations

import pytest

from benchmarks.observer_rooms import (
    Floor,
    Options,
    Step,
    Usage,
    floor_line,
    floor_per_room,
    per_room,
    summary,
)


def _step(rooms: int, observed: int, rss_mib: float, cpu: float = 1.0, threads: int = 12,
          fds: int = 40) -> Step:
    return Step(rooms=rooms, observed=observed, sidecar_cpu=cpu, rss_kib=int(rss_mib * 1024),
                server_cpu=0.0, driver_cpu=0.0, others_cpu=50.0, threads=threads, fds=fds,
                speech_seen=observed)


def _floor(memory_mib: float, others_cpu: float = 30.0) -> Floor:
    return Floor(rooms=100, cpu=0.05, memory_mib=memory_mib, threads=0.1, fds=2.0,
                 others_cpu=others_cpu)


OPTIONS = Options(steps=[10, 50, 100], seconds=10.0, video=False, concurrency=4,
                  source="shared", keep_logs=False)


def test_the_floor_is_per_room_over_its_own_baseline() -> None:
    base = Usage(cpu=0.5, rss_kib=40 * 1024, threads=5, fds=12, others_cpu=80.0)
    top = Usage(cpu=10.5, rss_kib=140 * 1024, threads=15, fds=312, others_cpu=90.0)
    floor = floor_per_room(base, top, 100)
    assert floor == Floor(rooms=100, cpu=0.1, memory_mib=1.0, threads=0.1, fds=3.0,
                          others_cpu=90.0)


def test_the_observer_over_the_floor_at_its_largest_fully_observed_step() -> None:
    steps = [_step(0, 0, 100.0), _step(10, 10, 120.0), _step(50, 50, 170.0),
             _step(100, 98, 240.0)]  # the last step not fully observed: 50 rooms count
    found = per_room(steps, _floor(1.0))
    assert found is not None and found.rooms == 50
    assert found.memory_mib == pytest.approx(1.4)
    assert found.memory_over_floor_mib == pytest.approx(0.4)
    bare = per_room(steps)
    assert bare is not None and bare.memory_over_floor_mib is None
    assert "1.00 MiB" in floor_line(_floor(1.0), found)
    assert "0.40 MiB over the floor" in floor_line(_floor(1.0), found)


def test_the_summary_has_the_floor_figures_only_when_a_run_measured_it() -> None:
    steps = [_step(0, 0, 100.0), _step(10, 10, 120.0), _step(100, 100, 230.0)]
    without = [per_room(steps), per_room(steps)]
    assert all(r is not None for r in without)
    names = [f.name for f in summary([r for r in without if r is not None], OPTIONS)]
    assert not any("floor" in name for name in names)

    runs = [per_room(steps), per_room(steps, _floor(1.1, others_cpu=40.0))]
    figures = {f.name: f for f in summary([r for r in runs if r is not None], OPTIONS)}
    floor = figures["observer_rtc_floor_memory_per_room"]
    over = figures["observer_memory_over_floor_per_room"]
    assert floor.value == pytest.approx(1.1) and floor.unit == "MiB" and floor.target is None
    assert floor.others_cpu == pytest.approx(0.4)  # the floor's own window
    assert over.value == pytest.approx(1.3 - 1.1) and over.target is None
    assert figures["observer_memory_per_room"].target == 1.0


def test_the_no_media_mode_names_its_floor_figures_with_its_prefix() -> None:
    steps = [_step(0, 0, 100.0), _step(50, 50, 160.0)]
    found = per_room(steps, _floor(1.0))
    assert found is not None
    options = Options(steps=[50], seconds=10.0, video=False, concurrency=4, source="shared",
                      keep_logs=False, observe_media="none")
    names = {f.name for f in summary([found], options)}
    assert {"observer_no_media_rtc_floor_memory_per_room",
            "observer_no_media_memory_over_floor_per_room"} <= names
