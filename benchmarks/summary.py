"""One summary table per benchmark, in a form a check can parse.

Each benchmark ends with `print_summary(name, figures)`: a Markdown table for people, every row
also on a line of its own, `SUMMARY<TAB>benchmark<TAB>figure<TAB>value<TAB>unit<TAB>target<TAB>met`,
for scripts. `python -m benchmarks.summary < output` reads such lines back (from one benchmark
or all of `make bench`), prints them as one table and exits 1 if a target was missed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

PREFIX = "SUMMARY"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure and, when it has one, its target (`value <op> target` is met)."""

    name: str
    value: float
    unit: str
    target: float | None = None
    better: Literal["higher", "lower"] = "higher"
    others_cpu: float | None = None  # CPUs used by other processes while it was measured

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.better == "higher" else self.value <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return f"{'>=' if self.better == 'higher' else '<='} {self.target:g}"


def _met_text(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "NO")


def summary_lines(benchmark: str, figures: Iterable[Figure]) -> list[str]:
    return [
        "\t".join((PREFIX, benchmark, f.name, f"{f.value:.6g}", f.unit, f.target_text(),
                   _met_text(f.met), "-" if f.others_cpu is None else f"{f.others_cpu:.2f}"))
        for f in figures]


def table(rows: Sequence[Sequence[str]]) -> str:
    header = ("benchmark", "figure", "value", "unit", "target", "met", "other CPU")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def print_summary(benchmark: str, figures: Iterable[Figure]) -> None:
    """Print the figures as a table and as SUMMARY lines."""
    lines = summary_lines(benchmark, figures)
    print(f"\n== summary: {benchmark}")
    print(table([line.split("\t")[1:] for line in lines]))
    for line in lines:
        print(line)
    sys.stdout.flush()


def parse(text: Iterable[str]) -> list[list[str]]:
    """The SUMMARY rows found in a benchmark's output, without the prefix."""
    rows = []
    for line in text:
        fields = line.rstrip("\n").split("\t")
        if fields[0] == PREFIX and len(fields) == 8:
            rows.append(fields[1:])
    return rows


def main() -> int:
    rows = parse(sys.stdin)
    print(table(rows))
    missed = [row for row in rows if row[5] == "NO"]
    for row in missed:
        print(f"missed: {row[0]} {row[1]} = {row[2]} {row[3]} (target {row[4]})")
    return 1 if missed or not rows else 0


if __name__ == "__main__":
    raise SystemExit(main())
