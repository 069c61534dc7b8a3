"""The pinned helm (scripts/build-helm.sh), and the chart rendered into parsed objects."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "avatar-monitor"
RELEASE = "avatar-monitor"
NAMESPACE = "monitoring"


@functools.cache
def helm_bin() -> str:
    """$HELM_BIN (make test sets it), else the build script's binary, built if need be. A helm
    that cannot be had fails the test that asked for it: the chart is never left untested."""
    path = os.environ.get("HELM_BIN", "")
    if not path:
        built = subprocess.run([str(ROOT / "scripts" / "build-helm.sh")], capture_output=True,
                               text=True, timeout=1800)
        if built.returncode != 0:
            pytest.fail(f"cannot build helm (scripts/build-helm.sh):\n{built.stderr}",
                        pytrace=False)
        path = built.stdout.strip()
    if not os.access(path, os.X_OK):
        pytest.fail(f"helm not found at {path!r} (HELM_BIN or scripts/build-helm.sh)",
                    pytrace=False)
    return path


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_bin(), *args], capture_output=True, text=True, timeout=120)


def values_args(values: dict[str, Any] | None, tmp: Path) -> list[str]:
    if not values:
        return []
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["--values", str(path)]


def render(tmp: Path, values: dict[str, Any] | None = None, *extra: str) -> list[dict[str, Any]]:
    """`helm template` of the chart with these values (merged over values.yaml), parsed."""
    done = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                *values_args(values, tmp), *extra)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The only object of this kind (and name) in a rendering."""
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in the rendering"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)
