"""The agent's distribution as a voice agent installs it: its wheel, built from ./agent, needs
aiohttp, livekit and livekit-api only, and holds nothing of the server."""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

AGENT = Path(__file__).resolve().parents[2] / "agent"
RUNTIME = {"aiohttp", "livekit", "livekit-api"}
EXTRAS = {"agents": {"livekit-agents"}}
# Top-level modules of the server and of its own dependencies, none of which a voice agent needs.
SERVER_ONLY = {"monitor", "opentelemetry", "prometheus_client", "rich", "grpc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel --no-deps ./agent`, from a copy so the build leaves nothing in the tree."""
    tmp = tmp_path_factory.mktemp("agent-wheel")
    source = tmp / "agent"
    shutil.copytree(AGENT, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--disable-pip-version-check", str(source), "-w", str(tmp / "dist")],
                   check=True, timeout=300)
    (built,) = (tmp / "dist").glob("avatar_monitor_agent-*.whl")
    return built


def test_it_requires_aiohttp_and_livekit_only(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(name))
    assert metadata["Name"] == "avatar-monitor-agent"
    requires = [Requirement(line) for line in metadata.get_all("Requires-Dist")]
    assert {r.name for r in requires if r.marker is None} == RUNTIME
    for extra, names in EXTRAS.items():
        assert {r.name for r in requires
                if r.marker is not None and r.marker.evaluate({"extra": extra})} == names
    assert all(r.marker is None or any(r.marker.evaluate({"extra": extra}) for extra in EXTRAS)
               for r in requires)


def test_it_holds_the_client_package_and_no_monitor(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert {name.split("/")[0] for name in names} == {
        "avatar_monitor_agent", f"{wheel.name.split('-py3')[0]}.dist-info"}
    assert "avatar_monitor_agent/py.typed" in names  # its type hints reach the agent's mypy
    assert not any(name.startswith("monitor/") for name in names)


def test_it_imports_from_the_wheel_alone_without_the_servers_modules(wheel: Path) -> None:
    """Every module, imported from the wheel (not the source tree): nothing of the server, and
    livekit-agents only when the agent itself imports it."""
    script = f"""
import json, pkgutil, sys
sys.path.insert(0, {str(wheel)!r})
import avatar_monitor_agent
for module in pkgutil.iter_modules(avatar_monitor_agent.__path__, "avatar_monitor_agent."):
    __import__(module.name)
print(json.dumps({{"file": avatar_monitor_agent.__file__,
                   "loaded": sorted({{name.split(".")[0] for name in sys.modules}}),
                   "agents": "livekit.agents" in sys.modules}}))
"""
    # -I: no PYTHONPATH, no current directory: the server's sources are not on the path.
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                          check=True, timeout=120)
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["file"].startswith(str(wheel))
    assert not SERVER_ONLY & set(seen["loaded"])
    assert seen["agents"] is False
