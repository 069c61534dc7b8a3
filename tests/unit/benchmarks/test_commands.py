"""The benchmarks' child processes answer their commands one JSON line each (here rtc_floor,
which needs no server until it is asked to join)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_a_child_answers_status_errors_and_closes() -> None:
    env = {**os.environ, "LIVEKIT_URL": "ws://127.0.0.1:9", "LIVEKIT_API_KEY": "key",
           "LIVEKIT_API_SECRET": "secret-secret-secret-secret-secret"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.rtc_floor"], cwd=REPO, env=env,
                          input="status\nbogus 1\nleave\nquit\n", capture_output=True,
                          text=True, timeout=60, check=True)
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    idle = {"rooms": 0, "failed": 0, "errors": []}
    assert answers == [idle, {"error": "unknown command 'bogus 1'"}, idle, {"closed": True}]
