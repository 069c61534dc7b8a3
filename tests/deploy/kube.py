"""What Kubernetes makes of a StatefulSet's pod template, for the container's environment: the
StatefulSet controller names pod N `<statefulset>-N` and labels it
`apps.kubernetes.io/pod-index: "N"` (Kubernetes 1.28 and later); the kubelet resolves the
downward API's fieldRefs and secretKeyRefs, and expands `$(VAR)` in a value with the variables
defined before it (`$$` is a literal `$`; an undefined reference stays as written)."""

from __future__ import annotations

import re
from typing import Any

POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_LABEL = re.compile(r"metadata\.labels\['([^']+)'\]")


def pod_metadata(statefulset: dict[str, Any], ordinal: int, namespace: str) -> dict[str, Any]:
    """The metadata the StatefulSet controller gives pod `ordinal`."""
    template = statefulset["spec"]["template"]["metadata"]
    return {
        "name": f"{statefulset['metadata']['name']}-{ordinal}",
        "namespace": namespace,
        "labels": {**template.get("labels", {}), POD_INDEX_LABEL: str(ordinal)},
    }


def expand(text: str, env: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _REFERENCE.sub(one, text)


def field(path: str, metadata: dict[str, Any]) -> str:
    if path in ("metadata.name", "metadata.namespace"):
        return str(metadata[path.split(".")[1]])
    label = _LABEL.fullmatch(path)
    if label:
        return str(metadata["labels"].get(label.group(1), ""))
    raise AssertionError(f"fieldRef {path} not simulated")


def container_env(container: dict[str, Any], metadata: dict[str, Any],
                  secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it, in order."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(str(var["value"]), env)
        elif "fieldRef" in var.get("valueFrom", {}):
            env[var["name"]] = field(var["valueFrom"]["fieldRef"]["fieldPath"], metadata)
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            raise AssertionError(f"env {var} not simulated")
    return env


def container_args(container: dict[str, Any], env: dict[str, str]) -> list[str]:
    return [expand(str(arg), env) for arg in container.get("args", [])]
