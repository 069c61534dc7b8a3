"""How often the repeated-length detector is wrong, and how often it finds a real limit.

    .venv/bin/python -m benchmarks.repeated_lengths [--hours 300]

False groups: `--hours` simulated hours per distribution of natural session lengths (log-normal,
exponential, uniform, and a two-peaked mix), with 10 to 3,000 abnormal departures an hour; any
group found is a false one. Power: k calls cut at one random length (within +-2 s) among n
natural log-normal lengths, 40 trials each. Also times one search over 10,000 departures.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from monitor.sinks.session_lengths import find_repeats

DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "log-normal": lambda r: 30 + r.lognormvariate(5.5, r.choice([0.5, 0.8, 1.2])),
    "exponential": lambda r: 30 + r.expovariate(1 / 300),
    "uniform": lambda r: r.uniform(30, 3600),
    "two peaks": lambda r: r.gauss(120, 20) if r.random() < 0.5 else r.gauss(900, 200),
}
VOLUMES = (10, 30, 100, 300, 1000, 3000)


def false_groups(hours: int) -> dict[str, int]:
    out = {}
    for name, draw in DISTRIBUTIONS.items():
        found = 0
        for seed in range(hours):
            r = random.Random(seed)
            lengths = [draw(r) for _ in range(VOLUMES[seed % len(VOLUMES)])]
            found += bool(find_repeats([(x, str(i)) for i, x in enumerate(lengths) if x >= 30],
                                       5.0))
        out[name] = found
    return out


def power(k: int, n: int, trials: int = 40) -> float:
    hits = 0
    for seed in range(trials):
        r = random.Random(1000 + seed)
        cut = r.uniform(120, 2400)
        lengths = [(30 + r.lognormvariate(5.5, 0.8), str(i)) for i in range(n)]
        lengths += [(cut + r.uniform(-2, 2), f"cut{i}") for i in range(k)]
        hits += any(abs(g.length - cut) < 3 for g in find_repeats(lengths, 5.0))
    return hits / trials


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hours", type=int, default=300)
    args = ap.parse_args()
    wrong = false_groups(args.hours)
    total = args.hours * len(DISTRIBUTIONS)
    print(f"false groups: {sum(wrong.values())} in {total} hours {wrong}")
    for k in (3, 4, 5, 7):
        print(f"{k} cut calls found among n others: " + ", ".join(
            f"n={n}: {power(k, n):.0%}" for n in (0, 10, 100, 300)))
    r = random.Random(1)
    many = [(30 + r.lognormvariate(5.5, 0.8), str(i)) for i in range(10_000)]
    started = time.perf_counter()
    find_repeats(many, 5.0)
    print(f"one search over 10,000 departures: {(time.perf_counter() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
