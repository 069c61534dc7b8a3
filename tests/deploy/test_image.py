"""The Dockerfile's image, built (`make image`, scripts/build-image.sh) and its command started
from its own root filesystem, read-only, as uid 10001 on a free loopback port: health and
readiness, a signed webhook counted, the state file on the declared volume, and a quick stop on
SIGTERM. Where python:3.11-slim cannot be pulled the image is built FROM a stand-in made from
Debian's packages, and the warnings summary says so."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.image import Built, Container, Runner, build
from tests.support import scrape
from tests.support.ports import free_port
from tests.support.webhooks import KEY, SECRET, Room, signed

STATE_DIR = "/var/lib/avatar-monitor"


@pytest.fixture(scope="module")
def image() -> Built:
    built = build()
    print(f"image {built.name} built in {built.seconds:.1f} s")
    return built


@pytest.fixture
def runner(image: Built) -> Iterator[Runner]:
    runner = Runner(image)
    try:
        yield runner
    finally:
        runner.close()


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def start(runner: Runner) -> tuple[Container, str]:
    """The image's command with the test key pair, on 127.0.0.1 and a free port (the run-time
    settings `docker run -e` would give), once it answers /healthz."""
    port = free_port()
    container = runner.start({"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET,
                              "AVATAR_MONITOR_HOST": "127.0.0.1",
                              "AVATAR_MONITOR_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if get(url + "/healthz")[0] == 200:
                return container, url
        except OSError:
            pass
        if container.process.poll() is not None:
            pytest.fail(f"the container exited ({container.process.returncode}):\n"
                        f"{container.output()}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"no answer on {url}/healthz in 30 s:\n{container.output()}",
                        pytrace=False)
        time.sleep(0.1)


def test_image_config(image: Built) -> None:
    config = image.config
    assert config["User"] == "10001:10001"
    assert set(config["Volumes"]) == {STATE_DIR}
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["AVATAR_MONITOR_STATE_FILE"] == f"{STATE_DIR}/state"
    assert env["AVATAR_MONITOR_PORT"] == "9465"
    assert config["Entrypoint"] == ["avatar-monitor"] and config["Cmd"] == ["serve"]
    assert "9465/tcp" in config["ExposedPorts"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert "PIP_CERT" not in env  # the build's CA bundle is not kept


def test_the_command_serves_as_uid_10001_and_counts_a_signed_webhook(runner: Runner) -> None:
    container, url = start(runner)
    # Its volume was made from the image's folder: owned by the user the image runs as.
    volume = container.volumes[STATE_DIR]
    assert (volume.stat().st_uid, volume.stat().st_gid) == (10001, 10001)

    status, body = get(url + "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, body = get(url + "/readyz")  # no --livekit-url: ready once the key pair is set
    assert (status, json.loads(body)) == (200, {"status": "ready"})

    with open(f"/proc/{container.pid}/status") as status_file:
        ids = {k: v.split() for k, v in (line.split(":", 1) for line in status_file)}
    assert ids["Uid"] == ["10001"] * 4 and ids["Gid"] == ["10001"] * 4
    cmdline = Path(f"/proc/{container.pid}/cmdline").read_bytes().split(b"\0")
    assert b"/opt/avatar-monitor/bin/avatar-monitor" in cmdline and b"serve" in cmdline

    body, headers = signed(Room().started())
    assert post(url + "/webhook", body, headers) == 200
    forged, forged_headers = signed(Room().started(), secret=SECRET[::-1])
    assert post(url + "/webhook", forged, forged_headers) == 401
    status, metrics = get(url + "/metrics")
    assert status == 200
    text = metrics.decode()
    assert scrape.value(text, "avatar_monitor_webhooks_total", event="room_started") == 1
    assert scrape.value(text, "avatar_monitor_webhooks_rejected_total",
                        reason="unauthorized") == 1

    # The state file (AVATAR_MONITOR_STATE_FILE, set by the image) is written on the volume,
    # the one place it can write: the root filesystem is read-only.
    state = volume / "state"
    deadline = time.monotonic() + 5
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state.exists(), container.output()
    assert state.stat().st_uid == 10001
    assert float(state.read_text()) == pytest.approx(time.time(), abs=30)
    assert _read_only(container)


def _read_only(container: Container) -> bool:
    """Whether the container's root is mounted read-only in its own mount namespace."""
    with open(f"/proc/{container.pid}/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            if fields[4] == "/":
                return "ro" in fields[5].split(",")
    return False


def test_sigterm_stops_it_within_3_seconds(runner: Runner) -> None:
    container, _ = start(runner)
    assert _read_only(container)
    state = container.volumes[STATE_DIR] / "state"
    sent = time.monotonic()
    os.kill(container.pid, signal.SIGTERM)
    code = container.process.wait(timeout=10)
    took = time.monotonic() - sent
    assert took < 3, f"{took:.2f} s to stop:\n{container.output()}"
    assert code == 0, container.output()
    assert state.exists()  # noted once more on the way out
