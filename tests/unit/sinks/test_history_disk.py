"""The call history on a disk that really fills up (a 256 KiB tmpfs mounted for the test, as
root): writes that fail are counted and logged, the sidecar keeps counting calls, and every call
is still served from memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.simulate import send
from tests.support.served import StartMonitor
from tests.support.webhooks import KEY, SECRET, access_token

ROUNDS = 12  # 8 calls each: far more than 256 KiB holds


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs; mounting needs root, which `make test` has (it fails, never skips)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (needs root): {done.stderr}")
    try:
        yield mount
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_disk_loses_no_count_and_no_call_in_memory(
        start_monitor: StartMonitor, tiny_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sidecar = await start_monitor(history=str(tiny_disk / "history.sqlite3"), recent_calls=200)
    sent = []
    for _ in range(ROUNDS):
        sent += await send(sidecar.url, KEY, SECRET)
        sidecar.monitor.tracker.expire(time.time() + 60)  # past the linger: to the history
    await sidecar.wait_for("avatar_calls_started_total", len(sent))

    async def settled() -> tuple[float, float]:
        written = await sidecar.value("avatar_monitor_history_written_total") or 0
        failed = await sidecar.value("avatar_monitor_history_dropped_total",
                                     reason="write_failed") or 0
        return written, failed

    deadline = time.monotonic() + 30
    while sum(await settled()) < len(sent):  # the writer thread's batches, as they land
        assert time.monotonic() < deadline, await settled()
        await asyncio.sleep(0.1)
    written, failed = await settled()
    assert failed > 0 and written + failed == len(sent), (written, failed)
    errors = [r for r in caplog.records if r.name == "monitor.sinks.history"]
    assert errors and "full" in errors[0].getMessage(), [r.getMessage() for r in errors]
    # nothing lost in memory: every call is served with its verdict (the failed calls of a kind
    # all end at the same session length, which the sidecar rightly calls repeated_length)
    headers = {"Authorization": f"Bearer {access_token()}"}
    for call in sent:
        async with sidecar.http.get(f"{sidecar.url}/v1/calls/{call.name}",
                                    headers=headers) as resp:
            assert resp.status == 200, call.name
            body = await resp.json()
        assert body["sid"] == call.sid
        assert body["verdict"] in (call.expected, "repeated_length"), call.kind
