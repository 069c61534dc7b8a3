"""The Dockerfile's image, built by scripts/build-image.sh with buildah, and its command started
from the image's own root filesystem as a container runtime would: the configured user, working
directory, environment, entrypoint and command, a read-only root filesystem, and a fresh volume
at each VOLUME, initialised from the image's folder (owner and mode) as Docker does."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helm import ROOT

IMAGE = "avatar-monitor:test"


@dataclass
class Built:
    name: str
    config: dict[str, Any]  # the image's Docker config: User, Env, Entrypoint, Cmd, Volumes...
    seconds: float
    log: str


def build() -> Built:
    """Build the image (cached steps are reused). Fails, never skips, when it cannot."""
    if os.geteuid() != 0:
        pytest.fail("the image tests run as root (buildah's storage, chroot)", pytrace=False)
    if shutil.which("buildah") is None:
        pytest.fail("buildah not found: run scripts/install-test-deps.sh", pytrace=False)
    started = time.monotonic()
    done = subprocess.run([str(ROOT / "scripts" / "build-image.sh")], capture_output=True,
                          text=True, timeout=1800,
                          env={**os.environ, "IMAGE": IMAGE, "BUILDER": "buildah"})
    seconds = time.monotonic() - started
    if done.returncode != 0:
        pytest.fail(f"scripts/build-image.sh failed:\n{done.stderr[-6000:]}", pytrace=False)
    name = done.stdout.strip()
    for line in done.stderr.splitlines():
        if line.startswith("# cannot pull"):
            # Loud: in pytest's warnings summary, not only in the captured output.
            warnings.warn(f"image {name} {line.removeprefix('# ')}", stacklevel=2)
    inspected = subprocess.run(["buildah", "inspect", "--type", "image", name],
                               capture_output=True, text=True, check=True)
    config = json.loads(inspected.stdout)["Docker"]["config"]
    return Built(name, config, seconds, done.stderr)


@dataclass
class Container:
    """The image's command running on this machine's network, as its configured user."""

    process: subprocess.Popen[bytes]
    rootfs: Path
    volumes: dict[str, Path]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Runner:
    """Starts containers from a built image: `buildah from` and `buildah mount` give its root
    filesystem; `unshare --mount` makes it read-only in a mount namespace of the container's
    own, binds the volumes, /proc and /dev, and `chroot --userspec` runs the entrypoint and
    command as the image's USER. Each process is the container's command itself (no shell
    between), so a signal reaches it as a runtime would send it."""

    def __init__(self, image: Built) -> None:
        self.image = image
        self._work: list[str] = []
        self._dirs: list[Path] = []
        self._containers: list[Container] = []

    def start(self, env: dict[str, str]) -> Container:
        ctr = subprocess.run(["buildah", "from", "--quiet", self.image.name], capture_output=True,
                             text=True, check=True).stdout.strip()
        self._work.append(ctr)
        rootfs = Path(subprocess.run(["buildah", "mount", ctr], capture_output=True, text=True,
                                     check=True).stdout.strip())
        scratch = Path(tempfile.mkdtemp(prefix="avatar-monitor-container-"))
        self._dirs.append(scratch)
        volumes = {}
        for target in self.image.config.get("Volumes") or {}:
            source = scratch / ("volume" + target.replace("/", "-"))
            source.mkdir()
            inside = os.stat(rootfs / target.lstrip("/"))  # a new volume copies its owner, mode
            os.chown(source, inside.st_uid, inside.st_gid)
            os.chmod(source, inside.st_mode & 0o7777)
            volumes[target] = source
        config = self.image.config
        user = config.get("User") or "0:0"
        if ":" not in user:
            user += f":{user}"
        image_env = dict(item.split("=", 1) for item in config.get("Env") or [])
        full_env = {**image_env, **env}
        argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
        mounts = [
            f"mount --bind {shlex.quote(str(rootfs))} {shlex.quote(str(rootfs))}",
            f"mount -o remount,bind,ro {shlex.quote(str(rootfs))}",
            *(f"mount --bind {shlex.quote(str(src))} {shlex.quote(str(rootfs) + dst)}"
              for dst, src in volumes.items()),
            f"mount -t proc proc {shlex.quote(str(rootfs / 'proc'))}",
            f"mount --rbind /dev {shlex.quote(str(rootfs / 'dev'))}",
            f"mount -t tmpfs -o size=16m,mode=1777 tmpfs {shlex.quote(str(rootfs / 'tmp'))}",
        ]
        run = ["exec", "chroot", f"--userspec={user}", str(rootfs), "/usr/bin/env", "-i",
               f"--chdir={config.get('WorkingDir') or '/'}",
               *(f"{k}={v}" for k, v in full_env.items()), *argv]
        script = "set -e\n" + "\n".join(mounts) + "\n" + shlex.join(run) + "\n"
        log = scratch / "output.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                stdout=out, stderr=subprocess.STDOUT)
        container = Container(process, rootfs, volumes, log, full_env)
        self._containers.append(container)
        return container

    def close(self) -> None:
        for container in self._containers:
            if container.process.poll() is None:
                container.process.kill()
                container.process.wait(timeout=10)
        for ctr in self._work:
            subprocess.run(["buildah", "umount", ctr], capture_output=True)
            subprocess.run(["buildah", "rm", ctr], capture_output=True)
        for scratch in self._dirs:
            shutil.rmtree(scratch, ignore_errors=True)
