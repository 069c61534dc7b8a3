"""SLOs as code: each objective's error ratio over every burn-rate window, its error budget left
over the SLO period, and its multi-window, multi-burn-rate alert expressions (the SRE workbook's
"Alerting on SLOs"). Objectives, windows and factors live in dashboards/config.py.

Call counts are summed over the sidecars (`config.FLEET_LABELS`): calls are split between
instances, so a ratio per instance would page on one unlucky replica.
"""

from __future__ import annotations

import re

from prometheus_client.utils import floatToGoString

from dashboards import config
from dashboards import guide as g
from dashboards.config import (
    BURN_ALERTS,
    COMPLETION_SLO,
    JOIN_SLO,
    SLO,
    SLO_PERIOD,
    SLOS,
    STARTUP_SLO,
)
from dashboards.guide import Symptom
from dashboards.promql import FLEET, RECORDINGS, Recording, m
from monitor.calls.departures import HEALTHY, SESSION_ONLY, USER_SIDE, Departure

ERROR_RATIO = "slo:avatar_errors:ratio_rate"  # + window: bad events / valid events
BUDGET_LEFT = "slo:avatar_error_budget:remaining"  # share of the period's budget not yet spent
SYMPTOMS: dict[str, tuple[Symptom, ...]] = {
    STARTUP_SLO.name: (g.NEVER_CONNECTS, g.FAILS_TO_JOIN),
    JOIN_SLO.name: (g.EMPTY_ROOM, g.DELAYED),
    COMPLETION_SLO.name: (g.CRASHED, g.DISAPPEARS, g.SESSION_DIES),
}
# Departure causes of the call_completion SLO: every cause is good, bad, or not counted.
NOT_COUNTED = sorted(d.value for d in SESSION_ONLY)
BAD_DEPARTURES = sorted(d.value for d in Departure if d not in (*HEALTHY, *USER_SIDE,
                                                                 *SESSION_ONLY))
_UNIT = {"m": 60, "h": 3600, "d": 86400}


def seconds(window: str) -> int:
    """A Prometheus duration of one unit ("5m", "3d") in seconds."""
    m = re.fullmatch(r"(\d+)([mhd])", window)
    if not m:
        raise ValueError(f"unsupported window {window!r}")
    return int(m.group(1)) * _UNIT[m.group(2)]


WINDOWS: tuple[str, ...] = tuple(sorted(
    {w for a in BURN_ALERTS for w in (a.long, a.short)} | {SLO_PERIOD}, key=seconds))


def _sum(series: str, window: str) -> str:
    return f"sum by ({FLEET}) (increase({series}[{window}]))"


def error_ratio_expr(slo: SLO, window: str) -> str:
    """Bad events over valid events in `window`, summed over the sidecars."""
    if slo is STARTUP_SLO:
        # Valid: calls started, less those the user abandoned before the join timeout (the
        # avatar had not yet failed). Bad: startup failures.
        return (f"{_sum(m('avatar_startup_failures_total'), window)}\n/\n"
                f"(\n  {_sum(m('avatar_calls_started_total'), window)}\n"
                f"  - {_sum(m('avatar_calls_abandoned_total'), window)}\n)")
    if slo is JOIN_SLO:
        le = floatToGoString(config.JOIN_WITHIN_SECONDS)
        joins = _sum(m("avatar_join_latency_seconds_count"), window)
        fast = _sum(m("avatar_join_latency_seconds_bucket", le=le), window)
        return f"(\n  {joins}\n  - {fast}\n)\n/\n{joins}"
    if slo is COMPLETION_SLO:
        # Valid: the avatars' departures from active calls, less sessions replaced by another
        # (the call went on). Bad: the departures that are no normal ending.
        departures = f"avatar_departures_total{{{config.SELECTOR}, cause"
        bad = f'{departures}=~"{"|".join(BAD_DEPARTURES)}"}}'
        valid = f'{departures}!~"{"|".join(NOT_COUNTED)}"}}'
        return f"{_sum(bad, window)}\n/\n{_sum(valid, window)}"
    raise ValueError(f"no SLI for {slo.name}")


def error_ratio(slo: SLO, window: str) -> str:
    """The recorded error ratio of `slo` over `window`, as a selector."""
    return f'{ERROR_RATIO}{window}{{slo="{slo.name}"}}'


def burn_rate(slo: SLO, window: str) -> str:
    """How many times faster than the objective allows the budget burns over `window`."""
    return f"{error_ratio(slo, window)} / {_num(slo.budget)}"


def recordings(slo: SLO) -> tuple[Recording, ...]:
    """The SLO's rule group: error ratios over every window, then the budget left."""
    labels = (("slo", slo.name),)
    group = f"slo.{slo.name}"
    ratios = tuple(Recording(f"{ERROR_RATIO}{w}", error_ratio_expr(slo, w), labels, group)
                   for w in WINDOWS)
    left = Recording(BUDGET_LEFT, f"1 - {burn_rate(slo, SLO_PERIOD)}", labels, group)
    return (*ratios, left)


def burn_expr(slo: SLO, severity: str) -> str:
    """Fires while both windows of any pair of `severity` burn faster than its factor."""
    pairs = [a for a in BURN_ALERTS if a.severity == severity]
    terms = [f"  {burn_rate(slo, a.long)} > {_num(a.factor)}\n  and\n"
             f"  {burn_rate(slo, a.short)} > {_num(a.factor)}" for a in pairs]
    return "\nor\n".join(f"(\n{t}\n)" for t in terms)


def pairs_in_words(severity: str) -> str:
    """"14.4x over both 1h and 5m, or 6x over both 6h and 30m"."""
    return ", or ".join(f"{_num(a.factor)}x over both {a.long} and {a.short}"
                        for a in BURN_ALERTS if a.severity == severity)


def _num(x: float) -> str:
    return f"{x:.6g}"


SLO_RECORDINGS: tuple[Recording, ...] = tuple(r for s in SLOS for r in recordings(s))
ALL_RECORDINGS: tuple[Recording, ...] = (*RECORDINGS, *SLO_RECORDINGS)
