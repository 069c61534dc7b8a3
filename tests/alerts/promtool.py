"""promtool on the committed rule file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dashboards import rules
from tests.alerts.stack import binary

RULES = Path(__file__).resolve().parents[2] / rules.RULES_FILE


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *map(str, args)], capture_output=True, text=True,
                          timeout=60)
