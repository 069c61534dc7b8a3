"""`python -m dashboards [--check] [--out DIR]`: write (or verify) every generated dashboard and
rule file, and the Helm chart's copies of them (dashboards/chart.py); with --out, into DIR instead
of the repository (a copy built from a mixin config, see dashboards/config.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from dashboards import base, calls, chart, rule_tests, rules, sidecar

ROOT = Path(__file__).resolve().parent.parent

DASHBOARDS: dict[str, Callable[[], str]] = {
    "avatar-calls.json": lambda: base.render(calls.build()),
    "avatar-monitor.json": lambda: base.render(sidecar.build()),
}
OUTPUTS: dict[str, Callable[[], str]] = {
    **{f"dashboards/{name}": make for name, make in DASHBOARDS.items()},
    rules.RULES_FILE: rules.render,
    rule_tests.TESTS_FILE: rule_tests.render,
    **chart.outputs(DASHBOARDS),
}


def stale(root: Path = ROOT) -> list[str]:
    """Generated files whose committed text differs from what the code generates."""
    out = []
    for rel, make in OUTPUTS.items():
        path = root / rel
        if not path.exists() or path.read_text() != make():
            out.append(rel)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the files, or with --check list the stale ones and fail."""
    ap = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    ap.add_argument("--out", type=Path, default=ROOT, help="write under this directory")
    args = ap.parse_args(argv)
    if args.check:
        bad = stale()
        for rel in bad:
            print(f"stale: {rel} (run `make dashboards`)", file=sys.stderr)
        return 1 if bad else 0
    for rel, make in OUTPUTS.items():
        path = args.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
