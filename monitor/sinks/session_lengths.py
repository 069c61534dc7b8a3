"""Session lengths that repeat: the limits nobody configured.

Several avatars leaving after the same session length, within a few seconds, and not because the
call normally ended (user or agent hang-up) nor on the configured `--session-timeout`, point at a
fixed limit somewhere: the avatar's own session timeout, a TTS or LLM provider's stream limit, a
token's TTL, a proxy's connection timeout.

Natural call lengths also coincide now and then, so a group counts only when it stands out from
the lengths around it: with the lengths within half a minute either side, the group's count must be
unlikely (Poisson, corrected for the number of places a group could have been found) below
`ALPHA`. Memory is bounded: the departures of the last `window` seconds, at most `max_entries`.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.calls.departures import HEALTHY, SESSION_ONLY, USER_SIDE, Departure
from monitor.calls.listener import CallListener
from monitor.calls.model import Call
from monitor.limits import TIMEOUT_TOLERANCE
from monitor.sinks.metric_table import REPEAT_WINDOW_SECONDS, SPECS

WINDOW_SECONDS = REPEAT_WINDOW_SECONDS
MIN_CALLS = 3  # "several avatars"
MIN_SECONDS = 30.0  # shorter sessions are crashes at start, not limits
BACKGROUND_SECONDS = 30.0  # lengths this close either side give the local density
ALPHA = 1e-3  # chance of a false group, over the whole length range
RATIO = 4.0  # and a group has at least this many times the calls expected from around it
MAX_ENTRIES = 10_000
# A configured limit has its own departure cause, rule and alert.
_NOT_COUNTED = frozenset({*HEALTHY, *USER_SIDE, *SESSION_ONLY, Departure.SESSION_TIMEOUT})


@dataclass(slots=True, frozen=True)
class Repeat:
    """A group of sessions that ended at the same length."""

    length: float  # the group's median session length, seconds
    calls: int
    sids: frozenset[str]


class RepeatedLengths(CallListener):
    """Keeps the recent abnormal departures and finds the lengths that repeat among them."""

    def __init__(self, clock: Callable[[], float], spread: float = TIMEOUT_TOLERANCE,
                 window: float = WINDOW_SECONDS, min_calls: int = MIN_CALLS,
                 max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self.spread = spread
        self.window = window
        self.min_calls = max(min_calls, 2)
        self._left: deque[tuple[float, float, str]] = deque(maxlen=max_entries)  # at, len, sid
        self._cache: tuple[float, int, tuple[Repeat, ...]] | None = None  # oldest, count, found
        self._by_sid: dict[str, Repeat] = {}

    def avatar_left(self, call: Call, departure: Departure, session_seconds: float,
                    at: float) -> None:
        if departure in _NOT_COUNTED or session_seconds < MIN_SECONDS:
            return
        self._left.append((at, session_seconds, call.room_sid))
        self._cache = None

    def repeats(self) -> tuple[Repeat, ...]:
        """The repeated lengths of the last `window` seconds, most calls first."""
        since = self._clock() - self.window
        while self._left and self._left[0][0] < since:
            self._left.popleft()
            self._cache = None
        if self._cache is None:
            found = find_repeats([(length, sid) for _, length, sid in self._left], self.spread,
                                 self.min_calls)
            self._cache = (since, len(self._left), found)
            self._by_sid = {sid: r for r in found for sid in r.sids}
        return self._cache[2]

    def of(self, sid: str) -> tuple[float, int] | None:
        """The repeated length the call with room sid `sid` ended at and how many calls share
        it, if any."""
        self.repeats()
        found = self._by_sid.get(sid)
        return (found.length, found.calls) if found else None


def find_repeats(lengths: Iterable[tuple[float, str]], spread: float,
                 min_calls: int = MIN_CALLS) -> tuple[Repeat, ...]:
    """Groups of at least `min_calls` lengths within `spread` seconds of each other that stand
    out from the lengths around them; groups do not overlap; most calls first."""
    items = sorted(lengths)
    values = [length for length, _ in items]
    n = len(values)
    if n < min_calls:
        return ()
    places = max((values[-1] - values[0]) / spread, 1.0)
    windows = []
    j = 0
    for i in range(n):  # every window starting at a length: [values[i], values[i] + spread]
        j = max(j, i)
        while j + 1 < n and values[j + 1] - values[i] <= spread:
            j += 1
        if j - i + 1 >= min_calls:
            windows.append((j - i + 1, i, j))
    windows.sort(key=lambda w: (-w[0], w[1]))
    taken = [False] * n
    found = []
    for count, i, j in windows:
        if any(taken[i:j + 1]):
            continue
        centre = (values[i] + values[j]) / 2
        around = (bisect.bisect_right(values, centre + BACKGROUND_SECONDS)
                  - bisect.bisect_left(values, centre - BACKGROUND_SECONDS) - count)
        # One more length than seen around, so an empty neighbourhood is not taken as certainty.
        rate = (around + 1) * spread / (2 * BACKGROUND_SECONDS - spread)
        # Windows slide, so about `count` of them cover a group: the scan statistic's share.
        if count < RATIO * rate or poisson_tail(count, rate) * places * count > ALPHA:
            continue
        taken[i:j + 1] = [True] * (j - i + 1)
        group = values[i:j + 1]
        found.append(Repeat(group[len(group) // 2], count,
                            frozenset(sid for _, sid in items[i:j + 1])))
    return tuple(sorted(found, key=lambda r: (-r.calls, r.length)))


def poisson_tail(k: int, rate: float) -> float:
    """P(X >= k) for X ~ Poisson(rate)."""
    if rate <= 0:
        return 0.0 if k > 0 else 1.0
    term = math.exp(-rate)
    below = 0.0
    for i in range(k):
        below += term
        term *= rate / (i + 1)
    return max(1.0 - below, 0.0)


class RepeatedLengthCollector(Collector):
    """The largest repeated length and how many calls share it, read at scrape time."""

    def __init__(self, lengths: RepeatedLengths) -> None:
        self._lengths = lengths

    def describe(self) -> Iterable[Metric]:
        """The families without searching the departures (registration checks names)."""
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        found = self._lengths.repeats()
        return self._families(found[0] if found else None)

    @staticmethod
    def _families(top: Repeat | None) -> list[Metric]:
        length_spec, calls_spec = SPECS["repeated_length"], SPECS["repeated_length_calls"]
        length = GaugeMetricFamily(length_spec.name, length_spec.help,
                                   value=top.length if top else 0.0)
        calls = GaugeMetricFamily(calls_spec.name, calls_spec.help,
                                  value=top.calls if top else 0)
        return [length, calls]
