"""One clock: the server's time, estimated on this machine's monotonic clock.

Deadlines and durations compare server timestamps (a user's `joinedAtMs`, a webhook's
`createdAt`) with "now". Reading "now" from this machine's wall clock would move every deadline by
the skew between the two clocks: 60 s behind, a join timeout fires at once (a false page). So
"now" is the monotonic clock plus an anchor, the server's time minus the monotonic clock,
measured from webhooks: each one says what time it was on the server when it was sent (or when
its participant joined), which is at most the server's time at arrival. Delivery delay and retries
only ever make a sample smaller, so the anchor is the largest sample of a sliding window
(`window` seconds): it never runs ahead of the server, and a deadline fires late by at most the
fastest delivery seen (plus up to 1 s while only whole-second `createdAt`s were seen), never early.
Until the first sample the wall clock stands in for the server's.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

# Skew beyond this is logged as a warning: deadlines stay right, but the operator should know.
WARN_OFFSET_SECONDS = 5.0
WARN_EVERY_SECONDS = 300.0
# How late a webhook can reach us after the server stamped it: livekit-server retries one for
# about 15 s and drops one queued for more than 30 s. A server clock that seems behind ours by
# less than this may only be a late delivery.
LATEST_DELIVERY = 30.0


class ServerClock:
    """Server time on the monotonic clock; `offset()` is server minus this machine's wall."""

    def __init__(self, window: float = 600.0, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall
        self._mono = mono
        self._window = window
        self._created = mono()
        self._anchor = wall() - self._created
        self._wall_anchor = self._anchor  # this machine's wall clock minus the monotonic
        self._samples: deque[tuple[float, float]] = deque()  # (mono at, sample), decreasing
        self.measured = False
        self._warned_at: float | None = None

    def now(self) -> float:
        """The server's time now (unix seconds), as best known."""
        return self._mono() + self._anchor

    def counting_start(self) -> float:
        """The process start in the server's time, for deciding what the previous process
        counted (a start taken too early would count that again): this machine's wall clock at
        the start, moved by the measured offset only as far as a late delivery cannot explain.
        A server ahead of us is at least as far ahead as measured (samples only fall short, and
        each fresh delivery tightens them); one that seems behind counts as behind by the offset
        less LATEST_DELIVERY, so there the calls of the first moments after the start may go
        uncounted, never counted twice."""
        offset = self._anchor - self._wall_anchor
        if offset < 0:
            offset = min(offset + LATEST_DELIVERY, 0.0)
        return self._created + self._wall_anchor + offset

    def offset(self) -> float:
        """Server clock minus this machine's wall clock, in seconds."""
        return self._anchor - (self._wall() - self._mono())

    def observe(self, server_time: float) -> None:
        """A server timestamp of something that had happened by now (a webhook's createdAt, a
        participant's join in a participant_joined webhook, an HTTP Date header)."""
        if server_time <= 0:
            return
        at = self._mono()
        sample = server_time - at
        samples = self._samples
        while samples and samples[-1][1] <= sample:
            samples.pop()  # never the maximum again while `sample` is in the window
        samples.append((at, sample))
        while len(samples) > 1 and samples[0][0] < at - self._window:
            samples.popleft()
        self._anchor = samples[0][1]
        self.measured = True
        self._warn_if_skewed(at)

    def _warn_if_skewed(self, at: float) -> None:
        offset = self.offset()
        if abs(offset) < WARN_OFFSET_SECONDS:
            return
        if self._warned_at is None or at - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = at
            log.warning("livekit-server's clock is %+.1f s from this machine's; deadlines follow "
                        "the server's clock, but check NTP on both", offset)
