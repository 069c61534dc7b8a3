"""The Helm chart (deploy/helm/avatar-monitor), linted and rendered by the pinned helm
(scripts/build-helm.sh): one shard per StatefulSet pod, probes, the security context, the state
volume, and the Prometheus Operator and Grafana objects made from the generated rules and
dashboards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import chart, config, rules
from dashboards.__main__ import DASHBOARDS, OUTPUTS
from monitor.cli import build_parser
from monitor.config import config_from_args
from monitor.shard import url_of
from tests.deploy import kube
from tests.deploy.helm import CHART, NAMESPACE, ROOT, helm, kinds, one, render

STATE_DIR = "/var/lib/avatar-monitor"
SECRET = {"avatar-monitor-livekit": {"api-key": "APIkey", "api-secret": "s" * 40}}
EVERYTHING = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
              "dashboards": {"enabled": True}, "networkPolicy": {"enabled": True}}


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return dict(only)


@pytest.mark.parametrize("sets", [[], ["--set", "replicas=3"],
                                  ["--set", "replicas=3", "--set", "serviceMonitor.enabled=true",
                                   "--set", "prometheusRule.enabled=true", "--set",
                                   "dashboards.enabled=true", "--set",
                                   "networkPolicy.enabled=true", "--set",
                                   "persistence.enabled=false"]],
                         ids=["defaults", "replicas=3", "everything"])
def test_lint_strict(sets: list[str]) -> None:
    done = helm("lint", "--strict", str(CHART), *sets)
    assert done.returncode == 0, done.stdout + done.stderr


def test_default_rendering(tmp_path: Path) -> None:
    docs = render(tmp_path)
    assert kinds(docs) == ["PodDisruptionBudget", "Service", "Service", "ServiceAccount",
                           "StatefulSet"]
    assert one(docs, "StatefulSet")["spec"]["replicas"] == 1


def test_each_pod_takes_its_ordinal_as_its_shard(tmp_path: Path) -> None:
    """replicas=3: pod N gets the label apps.kubernetes.io/pod-index=N from the StatefulSet
    controller; the downward API puts it in POD_INDEX and the kubelet expands
    AVATAR_MONITOR_SHARD="$(POD_INDEX)/3" to "N/3", which avatar-monitor's own flag parsing
    reads as shard N of 3."""
    statefulset = one(render(tmp_path, {"replicas": 3}), "StatefulSet")
    assert statefulset["spec"]["replicas"] == 3
    (spec,) = statefulset["spec"]["template"]["spec"]["containers"]
    shard_vars = {v["name"]: v for v in spec["env"] if v["name"] in ("POD_INDEX",
                                                                        "AVATAR_MONITOR_SHARD")}
    assert shard_vars["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        f"metadata.labels['{kube.POD_INDEX_LABEL}']")
    assert shard_vars["AVATAR_MONITOR_SHARD"]["value"] == "$(POD_INDEX)/3"
    for ordinal in range(3):
        metadata = kube.pod_metadata(statefulset, ordinal, NAMESPACE)
        assert metadata["name"] == f"avatar-monitor-{ordinal}"
        env = kube.container_env(spec, metadata, SECRET)
        assert env["AVATAR_MONITOR_SHARD"] == f"{ordinal}/3"
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            args = build_parser().parse_args(kube.container_args(spec, env))
            cfg = config_from_args(args)
        assert cfg.shard == (ordinal, 3)
        # Every shard's replica by name: pod k of the headless Service.
        assert [url_of(cfg.shard_url, k) for k in range(3)] == [
            f"http://avatar-monitor-{k}.avatar-monitor.{NAMESPACE}.svc:9465" for k in range(3)]
        assert (cfg.api_key, cfg.api_secret) == ("APIkey", "s" * 40)
        assert cfg.state_file == f"{STATE_DIR}/state"
        assert (cfg.host, cfg.port) == ("0.0.0.0", 9465)


def test_a_pod_index_label_needs_kubernetes_1_28(tmp_path: Path) -> None:
    assert render(tmp_path, None, "--kube-version", "1.28.0")
    done = helm("template", str(CHART), "--kube-version", "1.27.9")
    assert done.returncode != 0 and "kubeVersion" in done.stderr


def test_replicas_must_be_positive(tmp_path: Path) -> None:
    done = helm("template", str(CHART), "--set", "replicas=0")
    assert done.returncode != 0 and "replicas must be at least 1" in done.stderr


def test_probes(tmp_path: Path) -> None:
    spec = container(render(tmp_path))
    assert spec["ports"] == [{"name": "http", "containerPort": 9465, "protocol": "TCP"}]
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert spec["livenessProbe"]["timeoutSeconds"] == 3


def test_security_context(tmp_path: Path) -> None:
    docs = render(tmp_path)
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}}
    ctx = container(docs)["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    # No Kubernetes API token, and no service links (AVATAR_MONITOR_PORT=tcp://... for a
    # Service called avatar-monitor would stop the start).
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False


def test_resources(tmp_path: Path) -> None:
    resources = container(render(tmp_path, {"resources": {"limits": {"memory": "1Gi"}}}))
    assert resources["resources"]["limits"]["memory"] == "1Gi"
    assert container(render(tmp_path))["resources"]["requests"]["cpu"] == "100m"


def test_key_pair_from_the_existing_secret(tmp_path: Path) -> None:
    spec = container(render(tmp_path, {"livekit": {
        "existingSecret": "lk", "apiKeyKey": "key", "apiSecretKey": "secret",
        "url": "ws://livekit.livekit:7880"}}))
    env = {v["name"]: v for v in spec["env"]}
    assert env["LIVEKIT_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "lk", "key": "key"}
    assert env["LIVEKIT_API_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "lk",
                                                                       "key": "secret"}
    assert env["LIVEKIT_URL"]["value"] == "ws://livekit.livekit:7880"


def test_state_volume_is_a_claim_per_pod_or_an_empty_dir(tmp_path: Path) -> None:
    docs = render(tmp_path, {"persistence": {"size": "1Gi", "storageClass": "fast"}})
    statefulset = one(docs, "StatefulSet")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert mounts["state"] == STATE_DIR
    env = {v["name"]: v.get("value") for v in container(docs)["env"]}
    assert env["AVATAR_MONITOR_STATE_FILE"] == f"{STATE_DIR}/state"
    assert "state" not in {v["name"] for v in statefulset["spec"]["template"]["spec"]["volumes"]}

    docs = render(tmp_path, {"persistence": {"enabled": False}})
    statefulset = one(docs, "StatefulSet")
    assert "volumeClaimTemplates" not in statefulset["spec"]
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["state"]
    assert {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}["state"] == (
        STATE_DIR)


def test_services_name_each_pod_and_reach_them_all(tmp_path: Path) -> None:
    docs = render(tmp_path, {"replicas": 3})
    statefulset = one(docs, "StatefulSet")
    headless = one(docs, "Service", "avatar-monitor")
    http = one(docs, "Service", "avatar-monitor-http")
    assert statefulset["spec"]["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert http["spec"]["type"] == "ClusterIP"
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    for service in (headless, http):
        assert service["spec"]["ports"][0]["port"] == 9465
        assert service["spec"]["selector"].items() <= pod_labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_disruption_budget_and_network_policy(tmp_path: Path) -> None:
    docs = render(tmp_path)
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert "NetworkPolicy" not in kinds(docs)
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "livekit"}}}
    policy = one(render(tmp_path, {"networkPolicy": {"enabled": True, "ingressFrom": [peer]}}),
                 "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}],
                                          "from": [peer]}]


def test_service_monitor_only_when_enabled(tmp_path: Path) -> None:
    assert "ServiceMonitor" not in kinds(render(tmp_path))
    docs = render(tmp_path, {"serviceMonitor": {
        "enabled": True, "interval": "15s", "additionalLabels": {"release": "kps"}}})
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics",
                                                                          "15s")
    # The rules and dashboards select the mixin's job, whatever the Service is called.
    assert {"action": "replace", "targetLabel": "job",
            "replacement": config.SIDECAR_JOB} in endpoint["relabelings"]
    # It selects the http Service only: through the headless one too, every pod twice.
    selected = [s["metadata"]["name"] for s in docs if s["kind"] == "Service"
                and monitor["spec"]["selector"]["matchLabels"].items()
                <= s["metadata"]["labels"].items()]
    assert selected == ["avatar-monitor-http"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_prometheus_rule_holds_the_generated_groups(tmp_path: Path) -> None:
    assert "PrometheusRule" not in kinds(render(tmp_path))
    docs = render(tmp_path, {"prometheusRule": {"enabled": True,
                                                "additionalLabels": {"release": "kps"}}})
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    generated = yaml.safe_load((ROOT / rules.RULES_FILE).read_text())
    assert rule["spec"] == {"groups": generated["groups"]}


def test_runbook_base_url_is_one_value(tmp_path: Path) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["prometheusRule"]["runbookBaseUrl"] == config.RUNBOOK_BASE_URL
    base = "https://git.example.org/ops/avatar-monitor/blob/main/docs/runbooks.md"
    rule = one(render(tmp_path, {"prometheusRule": {"enabled": True, "runbookBaseUrl": base}}),
               "PrometheusRule")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    for alert in alerts:
        assert alert["annotations"]["runbook_url"] == f"{base}#{alert['alert'].lower()}"
    assert chart.RUNBOOK_PLACEHOLDER in (CHART / "templates" / "prometheusrule.yaml").read_text()


def test_dashboards_config_maps_hold_the_generated_json(tmp_path: Path) -> None:
    assert "ConfigMap" not in kinds(render(tmp_path))
    maps = [d for d in render(tmp_path, {"dashboards": {"enabled": True}})
            if d["kind"] == "ConfigMap"]
    found = {}
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((name, text),) = config_map["data"].items()
        found[name] = text
    assert set(found) == set(DASHBOARDS) == {p.name for p in (ROOT / "dashboards").glob("*.json")}
    for name, text in found.items():
        assert text == (ROOT / "dashboards" / name).read_text()
        assert json.loads(text)["uid"]


def test_chart_copies_equal_the_generated_files() -> None:
    """One source: `make dashboards` writes the chart's files/ from the same code as
    dashboards/ and alerts/ (dashboards/chart.py)."""
    copies = chart.outputs(DASHBOARDS)
    assert set(copies) <= set(OUTPUTS)
    on_disk = {str(p.relative_to(ROOT)) for p in (CHART / "files").rglob("*") if p.is_file()}
    assert on_disk == set(copies)
    for rel, make in copies.items():
        assert (ROOT / rel).read_text() == make(), f"{rel} is stale: run `make dashboards`"
    for name in DASHBOARDS:
        assert (CHART / "files" / "dashboards" / name).read_text() == (
            ROOT / "dashboards" / name).read_text()
    copy = (ROOT / chart.RULES_COPY).read_text()
    assert copy.replace(chart.RUNBOOK_PLACEHOLDER, config.RUNBOOK_BASE_URL) == (
        ROOT / rules.RULES_FILE).read_text()
