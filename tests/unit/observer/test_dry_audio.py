"""A dry audio track (monitor/observer/dry_audio.py): the rule on a fake clock and fake stats
reads, and the probe's subscribe, read, report and unsubscribe with a fake track; no network."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from livekit import rtc

from monitor.observer import dry_audio
from monitor.observer.dry_audio import (
    AUDIBLE_ENERGY,
    DRY_AFTER,
    MAX_PROBES,
    PROBE_WINDOW,
    DryAudioProbe,
    DryRule,
    Outcome,
    inbound_energy,
)

TONE = 0.03  # totalAudioEnergy a tone adds in half a second (measured: 0.06 a second)


def test_no_probe_before_the_agent_has_spoken_for_a_while() -> None:
    rule = DryRule()
    assert rule.probe_due() is None  # no turn
    rule.speaking(True, 100)
    assert rule.probe_due() == 100 + DRY_AFTER
    assert not rule.start(100 + DRY_AFTER - 0.1)
    assert rule.start(100 + DRY_AFTER)
    assert rule.probe_due() is None  # one a turn


def test_sound_in_the_window_is_heard() -> None:
    rule = DryRule()
    rule.speaking(True, 0)
    assert rule.start(2)
    assert rule.read(None, 2.0) is Outcome.LISTENING  # no packet yet
    assert rule.read(0.0, 2.5) is Outcome.LISTENING
    assert rule.read(TONE, 3.0) is Outcome.HEARD


def test_a_pause_between_sentences_shorter_than_the_window_is_not_dry() -> None:
    """The avatar is between two sentences when the probe starts: silence for 2.5 s, then the
    next sentence."""
    rule = DryRule()
    rule.speaking(True, 0)
    rule.start(2)
    for i in range(6):
        assert rule.read(0.0, 2 + i * 0.5) is Outcome.LISTENING
    assert rule.read(TONE, 5.0) is Outcome.HEARD


def test_silence_for_the_whole_window_is_dry_from_the_first_read() -> None:
    rule = DryRule()
    rule.speaking(True, 0)
    rule.start(2)
    assert rule.read(0.0, 2.05) is Outcome.LISTENING
    assert rule.read(AUDIBLE_ENERGY / 2, 4.0) is Outcome.LISTENING  # below sound
    assert rule.read(AUDIBLE_ENERGY / 2, 2.05 + PROBE_WINDOW) is Outcome.DRY
    assert rule.dry_since == 2.05
    assert rule.read(AUDIBLE_ENERGY / 2, 6.0) is Outcome.LISTENING  # still dry, told once
    assert rule.speaking(False, 9.0) == 2.05  # the turn ends: back, from the caller
    assert rule.dry_since is None


def test_sound_after_a_dry_window_is_back() -> None:
    rule = DryRule()
    rule.speaking(True, 0)
    rule.start(2)
    rule.read(0.0, 2)
    assert rule.read(0.0, 5) is Outcome.DRY
    assert rule.read(TONE, 8) is Outcome.BACK
    assert rule.speaking(False, 9) is None  # nothing more to tell


def test_a_turn_that_ends_before_the_window_tells_nothing() -> None:
    rule = DryRule()
    rule.speaking(True, 0)
    rule.start(2)
    rule.read(0.0, 2)
    assert rule.speaking(False, 3.5) is None
    rule.speaking(True, 10)  # the next turn is probed afresh
    assert rule.start(12)
    assert rule.read(0.0, 12) is Outcome.LISTENING


def test_speaking_told_again_keeps_the_turn() -> None:
    rule = DryRule()
    rule.speaking(True, 0)
    rule.speaking(True, 1.5)
    assert rule.probe_due() == DRY_AFTER


def test_probes_per_call_are_capped() -> None:
    rule = DryRule()
    for turn in range(MAX_PROBES):
        rule.speaking(True, turn * 10)
        assert rule.start(turn * 10 + DRY_AFTER)
        rule.speaking(False, turn * 10 + 5)
    rule.speaking(True, 1000)
    assert rule.probe_due() is None
    assert not rule.start(1000 + DRY_AFTER)


def test_inbound_energy_reads_the_inbound_rtp_stats() -> None:
    codec = rtc.stats.RtcStats(codec=rtc.stats.RtcStats.Codec())
    inbound = rtc.stats.RtcStats(inbound_rtp=rtc.stats.RtcStats.InboundRtp(
        inbound=rtc.stats.InboundRtpStreamStats(total_audio_energy=0.25)))
    assert inbound_energy([codec]) is None
    assert inbound_energy([codec, inbound]) == 0.25


# -- the probe, on a fake clock: asyncio.sleep in the module advances it ---------------------

@dataclass
class FakeTrack:
    energies: list[float]  # what successive reads return; the last one repeats

    async def get_stats(self) -> list[rtc.stats.RtcStats]:
        energy = self.energies.pop(0) if len(self.energies) > 1 else self.energies[0]
        return [rtc.stats.RtcStats(inbound_rtp=rtc.stats.RtcStats.InboundRtp(
            inbound=rtc.stats.InboundRtpStreamStats(total_audio_energy=energy)))]


@dataclass
class FakePublication:
    source: FakeTrack
    track: FakeTrack | None = None
    subscriptions: list[bool] = field(default_factory=list)

    def set_subscribed(self, subscribed: bool) -> None:
        self.subscriptions.append(subscribed)
        self.track = self.source if subscribed else None


class Stage:
    """A probe of one room, its clock, what it reported and counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, energies: list[float]) -> None:
        self.now = 1000.0
        self.publication = FakePublication(FakeTrack(energies))
        self.reports: list[tuple[str, bool, float]] = []
        self.outcomes: list[str] = []
        real_sleep = asyncio.sleep

        async def sleep(seconds: float) -> None:
            self.now += seconds
            await real_sleep(0)

        monkeypatch.setattr(dry_audio.asyncio, "sleep", sleep)
        self.probe = DryAudioProbe(lambda: self.now, lambda: (self.publication, "PA_avatar"),  # type: ignore[arg-type, return-value]
                                   lambda sid, on, at: self.reports.append((sid, on, at)),
                                   self.outcomes.append)

    async def run_for(self, seconds: float) -> None:
        """Let the probe's task run until the clock has moved `seconds` on."""
        end = self.now + seconds
        while self.now < end:
            await asyncio.sleep(0.05)  # the module's patched sleep: the clock moves


async def test_a_probe_that_hears_sound_unsubscribes_and_reports_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stage = Stage(monkeypatch, [0.0, TONE])
    stage.probe.speaking(True)
    await stage.run_for(DRY_AFTER + PROBE_WINDOW + 2)
    assert stage.publication.subscriptions == [True, False]
    assert (stage.reports, stage.outcomes) == ([], ["heard"])
    stage.probe.speaking(False)
    assert stage.reports == []


async def test_a_dry_turn_is_reported_off_then_back_when_the_turn_ends(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stage = Stage(monkeypatch, [0.0])
    start = stage.now
    stage.probe.speaking(True)
    await stage.run_for(DRY_AFTER + PROBE_WINDOW + 1)
    assert stage.publication.subscriptions == [True]  # stays subscribed while dry
    assert len(stage.reports) == 1
    sid, on, since = stage.reports[0]
    assert (sid, on) == ("PA_avatar", False)
    assert start + DRY_AFTER <= since <= start + DRY_AFTER + 0.2
    stage.probe.speaking(False)
    ended = stage.now
    await stage.run_for(1)
    assert stage.reports[1] == ("PA_avatar", True, ended)
    assert stage.publication.subscriptions == [True, False]
    assert stage.outcomes == ["dry"]


async def test_sound_after_a_dry_window_reports_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    stage = Stage(monkeypatch, [0.0] * 12 + [TONE])
    stage.probe.speaking(True)
    await stage.run_for(DRY_AFTER + 10)
    assert [on for _, on, _ in stage.reports] == [False, True]
    assert stage.publication.subscriptions == [True, False]
    stage.probe.speaking(False)
    assert len(stage.reports) == 2


async def test_a_turn_shorter_than_the_delay_is_not_probed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stage = Stage(monkeypatch, [0.0])
    stage.probe.speaking(True)
    await stage.run_for(DRY_AFTER - 0.5)
    stage.probe.speaking(False)
    await stage.run_for(5)
    assert (stage.publication.subscriptions, stage.reports, stage.outcomes) == ([], [], [])


async def test_a_muted_track_ends_the_probe_without_an_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stage = Stage(monkeypatch, [0.0])
    stage.probe.speaking(True)
    await stage.run_for(DRY_AFTER + 1)
    stage.probe.track_gone()
    await stage.run_for(1)
    assert stage.publication.subscriptions == [True, False]
    assert (stage.reports, stage.outcomes) == ([], ["undecided"])
