"""infra/k8s/: every manifest valid against the Kubernetes schemas (kubernetes-validate, offline, strict: an unknown
field is an error), and what they run matches the platform: each service and the gateway with two replicas or more,
the service's metrics port, settings that Parvis reads."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from core.settings import SERVICES, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
KUBERNETES = "1.33.0"  # the version the manifests are checked against (any current cluster)
DOCS = [(path.name, doc) for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("name, doc", DOCS, ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in DOCS])
def test_the_manifest_is_valid_kubernetes(name, doc):
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_validator_refuses_a_broken_manifest():
    doc = next(d for _, d in DOCS if d["kind"] == "Deployment")
    broken = {**doc, "spec": {**doc["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    unknown = {**doc, "spec": {**doc["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBERNETES, strict=True)


def deployments() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for _, d in DOCS if d["kind"] == "Deployment"}


def test_every_service_and_the_gateway_run_with_replicas():
    found = deployments()
    assert set(found) == {s.replace("_", "-") for s in SERVICES} | {"gateway"}
    for name, d in found.items():
        assert d["spec"]["replicas"] >= 2, name
        pod = d["spec"]["template"]
        assert d["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(), name
        [container] = pod["spec"]["containers"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        refs = [r.get("configMapRef", r.get("secretRef"))["name"] for r in container["envFrom"]]
        assert refs == ["parvis", "parvis"], name
        if name == "gateway":
            assert container["args"] == ["gateway"]
            assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
        else:
            service = name.replace("-", "_")
            assert container["args"] == ["service", service]
            assert container["ports"][0]["containerPort"] == 9100
            assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    [svc] = [d for _, d in DOCS if d["kind"] == "Service"]
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "gateway"}


def test_the_config_names_settings_parvis_reads():
    [config] = [d for _, d in DOCS if d["kind"] == "ConfigMap"]
    known = {name for f in dataclasses.fields(ServiceSettings) for name in f.metadata.get("env", ())}
    assert set(config["data"]) <= known, set(config["data"]) - known
    assert config["data"]["PARVIS_ENV"] == "production" and config["data"]["PARVIS_QUEUE_TYPE"] == "quorum"
    assert config["data"]["PARVIS_METRICS_PORT"] == "9100"
