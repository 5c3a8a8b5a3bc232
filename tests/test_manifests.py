"""The cdk8s output: what `dist/k8s/` holds, that it passes strict Kubernetes schema validation for the
configured version, and that the template applies exactly those manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import Synthesized, resources_of
from tests.crd_schemas import (
    SCHEMA_DIR_ENV,
    MissingSchemasError,
    UnknownKindError,
    _strict_schema,
    is_custom,
    main,
    validate_custom_resource,
)

# aws/aws-cdk#19165: a custom resource's properties fail over 262,144 bytes and updates send old and
# new; FACTS.md sets the platform's budget per chart at 120 KB.
MAX_CHART_BYTES = 120_000


def _documents(synth: Synthesized) -> dict[str, list[dict[str, Any]]]:
    files = sorted(synth.manifests_dir.glob("*.yaml"))
    assert files, f"no manifests written to {synth.manifests_dir}"
    return {f.name: [d for d in yaml.safe_load_all(f.read_text()) if d] for f in files}


def _all_documents(synth: Synthesized) -> list[dict[str, Any]]:
    return [doc for docs in _documents(synth).values() for doc in docs]


def test_namespaces_with_pod_security_labels(dev: Synthesized) -> None:
    namespaces = {
        doc["metadata"]["name"]: doc["metadata"]["labels"] for doc in _all_documents(dev) if doc["kind"] == "Namespace"
    }
    assert set(namespaces) == {"inference", "gateway", "keda", "external-secrets", "observability"}
    # The DCGM exporter runs in the add-on's namespace with Container Insights (the default): all restricted.
    for name in ("inference", "gateway", "keda", "external-secrets", "observability"):
        assert namespaces[name]["pod-security.kubernetes.io/enforce"] == "restricted"
    for labels in namespaces.values():
        assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.35"
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_every_manifest_passes_strict_schema_validation(each_env: Synthesized) -> None:
    version = each_env.config.cluster.kubernetes_version
    builtin = [doc for doc in _all_documents(each_env) if not is_custom(doc)]
    custom = [doc for doc in _all_documents(each_env) if is_custom(doc)]
    assert len(builtin) > 10
    for doc in builtin:
        kubernetes_validate.validate(doc, version, strict=True)
    assert {doc["kind"] for doc in custom} == {
        "NodeClass",
        "NodePool",
        "ScaledObject",
        "IngressClassParams",
        "SecretStore",
        "ExternalSecret",
    }
    for doc in custom:
        validate_custom_resource(doc)


def test_crd_validation_rejects_a_misspelt_field(dev: Synthesized) -> None:
    pool = json.loads(json.dumps(dev.one("NodePool", "gpu")))
    pool["spec"]["disruption"]["consolidateAfterr"] = "10m"
    with pytest.raises(jsonschema.ValidationError, match="consolidateAfterr"):
        validate_custom_resource(pool)
    scaled = json.loads(json.dumps(dev.one("ScaledObject", "vllm")))
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 5  # must be a string
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(scaled)


def test_external_secrets_are_validated_against_their_crds(dev: Synthesized) -> None:
    external = json.loads(json.dumps(dev.one("ExternalSecret", "litellm")))
    validate_custom_resource(external)
    external["spec"]["refreshInterval"] = 300  # the CRD wants a duration string
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(external)
    external = json.loads(json.dumps(dev.one("ExternalSecret", "litellm")))
    external["spec"]["data"][0]["remoteRef"]["propertyy"] = "key"
    with pytest.raises(jsonschema.ValidationError, match="propertyy"):
        validate_custom_resource(external)
    (store,) = [s for s in dev.find("SecretStore") if s["metadata"]["namespace"] == "gateway"]
    store = json.loads(json.dumps(store))
    store["spec"]["provider"]["aws"]["service"] = "SecretManager"
    with pytest.raises(jsonschema.ValidationError, match="SecretManager"):
        validate_custom_resource(store)


def test_a_custom_kind_without_a_schema_fails_instead_of_being_skipped(tmp_path: Path) -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    assert is_custom(unknown)
    assert not is_custom({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"})
    assert not is_custom({"apiVersion": "apps/v1", "kind": "Deployment"})
    with pytest.raises(UnknownKindError, match=r"no CRD schema for \('example.com/v1', 'Widget'\)"):
        validate_custom_resource(unknown)
    path = tmp_path / "widget.yaml"
    path.write_text(yaml.safe_dump(unknown))
    assert main([str(path)]) == 1


def test_missing_crd_schemas_fail_with_a_clear_message(
    dev: Synthesized, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SCHEMA_DIR_ENV, str(tmp_path / "absent"))
    _strict_schema.cache_clear()
    try:
        with pytest.raises(MissingSchemasError, match=r"CRD schemas not found at .*absent"):
            validate_custom_resource(dev.one("NodePool", "gpu"))
    finally:
        _strict_schema.cache_clear()


def test_strict_validation_rejects_an_unknown_field(dev: Synthesized) -> None:
    doc = json.loads(json.dumps(_all_documents(dev)[0]))
    doc["metadata"]["podSecurity"] = "restricted"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, dev.config.cluster.kubernetes_version, strict=True)


def _applied_manifests(synth: Synthesized) -> list[list[dict[str, Any]]]:
    resources = resources_of(synth.template_json(), "Custom::AWSCDK-EKS-KubernetesResource").values()
    # A manifest holding a deploy-time value is an Fn::Join in the template; the namespaces are plain.
    return [json.loads(r["Properties"]["Manifest"]) for r in resources if isinstance(r["Properties"]["Manifest"], str)]


def test_template_applies_the_same_namespaces_through_the_kubectl_provider(dev: Synthesized) -> None:
    applied = [m for m in _applied_manifests(dev) if m[0]["kind"] == "Namespace"]
    assert len(applied) == 1
    for doc in applied[0]:
        # CDK adds its prune label to every object it applies; otherwise the object is the chart's.
        doc["metadata"]["labels"] = {
            k: v for k, v in doc["metadata"]["labels"].items() if not k.startswith("aws.cdk.eks/prune-")
        }
    assert applied[0] == _documents(dev)["platform-namespaces.k8s.yaml"]


def test_every_chart_resource_stays_under_the_size_budget(each_env: Synthesized) -> None:
    sizes = {
        logical_id: len(json.dumps(r["Properties"]))
        for stack in ("foundation", "data", "observability", "inference")
        for kind in ("Custom::AWSCDK-EKS-KubernetesResource", "Custom::AWSCDK-EKS-HelmChart")
        for logical_id, r in resources_of(each_env.stack_json(stack), kind).items()
    }
    assert len(sizes) >= 7
    largest = max(sizes, key=lambda k: sizes[k])
    assert sizes[largest] < MAX_CHART_BYTES, (largest, sizes[largest])


def test_each_manifest_file_says_what_it_is_for(dev: Synthesized, prod: Synthesized) -> None:
    for synth, env in ((dev, "dev"), (prod, "prod")):
        applied = {chart.node.id: stack.stack_name for chart, stack in synth.platform.charts.entries}
        for path in sorted(synth.manifests_dir.glob("*.yaml")):
            first = path.read_text().splitlines()[0]
            stack = applied[path.name.removesuffix(".k8s.yaml")]
            assert first == f"# Environment {env} (genai-{env}), applied by the stack {stack} through", path
            assert "cannot be applied with kubectl as it is" in path.read_text()
