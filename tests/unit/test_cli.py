"""The command line: documented flags, one clear line for a wrong value, a real start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.ports import free_port
from tests.support.webhooks import KEY, SECRET

FLAGS = ("--host", "--port", "--avatar-identity", "--avatar-join-timeout", "--idle-timeout",
         "--session-timeout", "--timeout-tolerance", "--max-calls", "--max-body-bytes",
         "--log-level", "--log-json", "--recent-calls", "--public-status")


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "AVATAR_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True,
                          text=True, env=full_env, timeout=30)


def test_help_documents_every_flag() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for flag in FLAGS:
        assert flag in result.stdout
    assert "LIVEKIT_API_KEY" in result.stdout and "AVATAR_MONITOR_PORT" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--port", "99999"), {}, "--port"),
        (("--avatar-join-timeout", "-1"), {}, "--avatar-join-timeout"),
        (("--max-calls", "lots"), {}, "--max-calls"),
        ((), {"AVATAR_MONITOR_PORT": "http"}, "--port"),
        (("--log-level", "loud"), {}, "--log-level"),
        ((), {"LIVEKIT_API_KEY": ""}, "LIVEKIT_API_KEY"),
    ],
)
def test_wrong_value_fails_with_one_line(args: tuple[str, ...], env: dict[str, str],
                                         message: str) -> None:
    base = {"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}
    result = run_cli("serve", *args, env={**base, **env})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_serve_starts_and_warns_about_dev_keys() -> None:
    port = free_port()
    env = {**os.environ, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret",
           "AVATAR_MONITOR_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "monitor", "serve", "--host", "127.0.0.1",
                                "--log-json"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert process.poll() is None, "the sidecar exited"
                assert time.monotonic() < deadline, "no answer on /healthz"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert b"avatar_calls_started_total 0.0" in r.read()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert '"level": "warning"' in stderr and "devkey" in stderr
