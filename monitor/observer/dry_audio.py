"""A dry audio track: the avatar's audio published and unmuted, but silent while the voice agent
says it speaks (the avatar's pipeline stalled: the user hears nothing, and no webhook or mute
says so).

Only where the voice agent publishes `lk.agent.state` (the observer then receives no audio).
When the agent has said `speaking` for DRY_AFTER seconds, the observer probes the call's
avatar's audio: it subscribes to that one track and reads its inbound-rtp stats every
READ_EVERY seconds. Sound heard (totalAudioEnergy up by AUDIBLE_ENERGY since the first read)
ends the probe; PROBE_WINDOW seconds without, the agent still speaking, and the audio is dry
from the first read on (`DryRule`). A dry turn stays subscribed, reading on, and ends when sound
is heard or the agent stops speaking; it is reported to the tracker as the avatar's audio off
with how `dry` (monitor/calls/media.py), which counts it if it outlasts the interruption grace.
A probe with no answer (the turn ended first, the track was muted or went away, or it was not
received within SUBSCRIBE_WAIT) reports nothing.

Measured with livekit-rtc 1.1.21 and livekit-server v1.13.5: each subscription starts its
inbound-rtp counters at 0 (`track.get_stats()`, 1 to 2 ms a read); a 400 Hz tone at -12 dBFS
adds 0.06 of totalAudioEnergy a second (about 50 packets); a track whose source is fed nothing,
or only zeros, still sends 4 to 7 packets a second of 2 to 6 bytes and adds exactly 0 (so
packets alone do not tell a dry track). With the real livekit-agents stack (an AvatarRunner
avatar on loopback), the avatar's first sound reached a subscriber 0.05 to 0.18 s after the
agent said `speaking` (10 turns, median 0.11 s): DRY_AFTER is ten times that.

Bounded: one probe at a time per room (a task of the room's watch), one per speaking turn, at
most MAX_PROBES per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from livekit import rtc

log = logging.getLogger(__name__)

# The agent has said `speaking` this long before the avatar's audio is probed: far above the
# measured 0.05-0.18 s from the state to the avatar's first sound, and above a hosted avatar's
# video rendering delay.
DRY_AFTER = 2.0
SUBSCRIBE_WAIT = 2.0  # the track not received within this: no answer
PROBE_WINDOW = 3.0  # silent this long (longer than a pause between two sentences): dry
READ_EVERY = 0.5  # seconds between two stats reads
# totalAudioEnergy (sum of squared sample levels times seconds) that is sound: 10 ms of speech
# at -30 dBFS, or 1 s of a hiss at -50 dBFS; a silent track adds exactly 0.
AUDIBLE_ENERGY = 1e-5
MAX_PROBES = 10  # per call: one per speaking turn


class Outcome(StrEnum):
    """What a probe's stats read means."""

    LISTENING = "listening"  # no sound yet, the window not over
    HEARD = "heard"  # sound: the probe is over, nothing to report
    DRY = "dry"  # the window passed in silence: the audio is off since DryRule.dry_since
    BACK = "back"  # sound again after a dry window: the audio is back



@dataclass(slots=True)
class DryRule:
    """One call's rule, without I/O: when to probe, and what the reads mean. Times on this
    machine's clock."""

    after: float = DRY_AFTER
    window: float = PROBE_WINDOW
    max_probes: int = MAX_PROBES
    probes: int = 0
    speaking_since: float | None = None  # the agent's speaking turn, while it lasts
    probed: bool = False  # this turn's probe has started
    first_read: float | None = None  # the probe's first read, and its energy
    baseline: float = 0.0
    dry_since: float | None = None  # the audio found dry, from the probe's first read

    def speaking(self, speaking: bool, at: float) -> float | None:
        """The agent's state changed: a turn starts or ends. Returns, when a dry turn ends, since
        when its audio was off (the caller reports it back at `at`)."""
        if speaking:
            if self.speaking_since is None:
                self.speaking_since, self.probed = at, False
            return None
        dry = self.dry_since
        self.speaking_since = None
        self.stop()
        return dry

    def probe_due(self) -> float | None:
        """When this turn's probe is due (None: no turn, already probed, or none left)."""
        if self.speaking_since is None or self.probed or self.probes >= self.max_probes:
            return None
        return self.speaking_since + self.after

    def start(self, at: float) -> bool:
        """Start this turn's probe at `at`, if it is due."""
        due = self.probe_due()
        if due is None or at < due:
            return False
        self.probed = True
        self.probes += 1
        return True

    def read(self, energy: float | None, at: float) -> Outcome:
        """A stats read of the probed track: its totalAudioEnergy (None: no inbound-rtp yet,
        no packet received)."""
        energy = energy or 0.0
        if self.first_read is None:
            self.first_read, self.baseline = at, energy
        if energy - self.baseline >= AUDIBLE_ENERGY:
            heard = Outcome.HEARD if self.dry_since is None else Outcome.BACK
            self.stop()
            return heard
        if self.dry_since is None and at - self.first_read >= self.window:
            self.dry_since = self.first_read
            return Outcome.DRY
        return Outcome.LISTENING

    def stop(self) -> None:
        """The probe is over (answered, the turn ended, or the track went away): forget it."""
        self.first_read, self.baseline, self.dry_since = None, 0.0, None


def inbound_energy(stats: list[rtc.stats.RtcStats]) -> float | None:
    """The totalAudioEnergy of a subscribed track's inbound-rtp stats (None: none yet)."""
    for stat in stats:
        if stat.WhichOneof("stats") == "inbound_rtp":
            return stat.inbound_rtp.inbound.total_audio_energy
    return None


# The avatar's audio publication and the avatar's sid, when it can be probed (the call active,
# the track published and unmuted).
AvatarAudio = Callable[[], tuple[rtc.RemoteTrackPublication, str] | None]
# (avatar sid, audio on, at): the audio found dry (False, from the probe's first read) or back.
DryReport = Callable[[str, bool, float], None]


class DryAudioProbe:
    """One observed room's probes of the avatar's audio, driven by the agent's state."""

    def __init__(self, clock: Callable[[], float], audio: AvatarAudio, report: DryReport,
                 outcome: Callable[[str], None], rule: DryRule | None = None) -> None:
        self._clock = clock
        self._audio = audio
        self._report = report
        self._outcome = outcome  # counts each probe's outcome: heard, dry, undecided
        self.rule = rule or DryRule()
        self._task: asyncio.Task[None] | None = None
        self._dry_avatar = ""  # the avatar whose audio is dry now

    def speaking(self, speaking: bool) -> None:
        """The voice agent's state: `speaking` or not."""
        at = self._clock()
        dry_since = self.rule.speaking(speaking, at)
        if not speaking:
            self._cancel()
            if dry_since is not None:
                self._report(self._dry_avatar, True, at)
        elif self._task is None and self.rule.probe_due() is not None:
            self._task = asyncio.get_running_loop().create_task(self._probe())

    def track_gone(self) -> None:
        """The avatar's audio was muted or unpublished, or the avatar left: no answer. An
        audio already dry stays off for the tracker until it is published or unmuted."""
        self._cancel()
        self.rule.stop()

    def close(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _probe(self) -> None:
        try:
            due = self.rule.probe_due()
            if due is not None:
                await asyncio.sleep(max(due - self._clock(), 0.0))
            audio = self._audio()
            if audio is None or not self.rule.start(self._clock()):
                return
            await self._listen(*audio)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _listen(self, publication: rtc.RemoteTrackPublication, avatar_sid: str) -> None:
        """Subscribe to the avatar's audio, read its stats until answered, then unsubscribe."""
        publication.set_subscribed(True)
        answered = False
        try:
            track = await self._subscribed(publication)
            while track is not None:
                outcome = self.rule.read(inbound_energy(await track.get_stats()), self._clock())
                if outcome is Outcome.DRY:
                    answered, self._dry_avatar = True, avatar_sid
                    self._outcome("dry")
                    assert self.rule.dry_since is not None
                    self._report(avatar_sid, False, self.rule.dry_since)
                    log.info("the avatar's audio is dry: silent for %.0f s while the agent "
                             "speaks", self.rule.window)
                elif outcome is Outcome.BACK:
                    self._report(avatar_sid, True, self._clock())
                    return
                elif outcome is Outcome.HEARD:
                    answered = True
                    self._outcome("heard")
                    return
                await asyncio.sleep(READ_EVERY)
        except Exception as exc:  # the room closing under the probe: no answer
            log.debug("audio probe failed: %s", exc)
        finally:
            if not answered:
                self._outcome("undecided")
            with contextlib.suppress(Exception):
                publication.set_subscribed(False)

    async def _subscribed(self, publication: rtc.RemoteTrackPublication
                          ) -> rtc.RemoteTrack | None:
        """The track once received (a few tens of ms on loopback), or None after
        SUBSCRIBE_WAIT."""
        waited = 0.0
        while publication.track is None and waited < SUBSCRIBE_WAIT:
            await asyncio.sleep(0.05)
            waited += 0.05
        return publication.track
