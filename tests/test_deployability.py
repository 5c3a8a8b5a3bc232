"""What schemas accept but AWS or a runtime refuses: one check per class of mistake, on dev and prod, and
each shown to fail on a copy of the synthesized output with the defect put back (tests/deployability.py)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Synthesized
from tests.deployability import (
    Templates,
    missing_enablements,
    missing_iam,
    resolve,
    rotating_secrets,
    rotation_gaps,
    runtime_contract_violations,
)


def templates_of(synth: Synthesized) -> dict[str, Any]:
    return {path.name.removesuffix(".template.json"): json.loads(path.read_text()) for path in synth.template_files()}


def mutated(
    docs: list[dict[str, Any]], kind: str, name: str, change: Callable[[dict[str, Any]], None]
) -> list[dict[str, Any]]:
    """A deep copy of `docs` with `change` applied to the one object of that kind and name."""
    result = copy.deepcopy(docs)
    (target,) = [d for d in result if d["kind"] == kind and d["metadata"]["name"] == name]
    change(target)
    return result


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == name)
    return found


def drop_env(name: str, container_name: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target = container(doc, container_name)
        target["env"] = [e for e in target["env"] if e["name"] != name]

    return change


# --- IAM implied by fields ---------------------------------------------------------------------------


def test_every_field_that_implies_a_permission_is_granted(each_env: Synthesized) -> None:
    assert missing_iam(templates_of(each_env), each_env.documents()) == []


def test_node_classes_carry_no_user_tags(dev: Synthesized) -> None:
    for node_class in dev.find("NodeClass"):
        assert "tags" not in node_class["spec"]


def test_node_class_tags_without_the_tag_policy_are_found(dev: Synthesized) -> None:
    docs = mutated(dev.documents(), "NodeClass", "gpu", lambda d: d["spec"].update(tags={"team": "ml"}))
    problems = missing_iam(templates_of(dev), docs)
    assert any("NodeClass gpu carries user tags" in p and "instances" in p for p in problems), problems


def test_ingress_tags_without_the_tag_policy_are_found(dev: Synthesized) -> None:
    docs = mutated(
        dev.documents(),
        "IngressClassParams",
        "alb-gateway",
        lambda d: d["spec"].update(tags=[{"key": "a", "value": "b"}]),
    )
    assert any("load balancers" in p for p in missing_iam(templates_of(dev), docs))


def test_a_node_volume_key_without_grant_management_is_found(dev: Synthesized) -> None:
    templates = templates_of(dev)
    for key in templates["genai-dev-foundation"]["Resources"].values():
        if key["Type"] == "AWS::KMS::Key":
            for statement in key["Properties"]["KeyPolicy"]["Statement"]:
                if statement.get("Sid") == "AllowAutoModeClusterRoleToAttachVolumes":
                    statement["Action"] = "kms:CreateGrant"
    problems = missing_iam(templates, dev.documents())
    assert any("kms:ListGrants" in p and "kms:RevokeGrant" in p for p in problems), problems


def test_an_alarm_topic_key_cloudwatch_cannot_use_is_found(dev: Synthesized) -> None:
    templates = templates_of(dev)
    keys = [key for key in templates["genai-dev-observability"]["Resources"].values() if key["Type"] == "AWS::KMS::Key"]
    assert len(keys) == 1
    statements = keys[0]["Properties"]["KeyPolicy"]["Statement"]
    keys[0]["Properties"]["KeyPolicy"]["Statement"] = [
        s for s in statements if s.get("Sid") != "AllowCloudWatchAlarmsToPublish"
    ]
    problems = missing_iam(templates, dev.documents())
    # Every alarm of dev: failed nodes, GPU telemetry missing, database CPU, cache throttling.
    assert len(problems) == 4, problems
    assert all("does not let cloudwatch.amazonaws.com use it" in p for p in problems), problems


def test_a_node_class_with_another_role_is_found(dev: Synthesized) -> None:
    docs = mutated(dev.documents(), "NodeClass", "cpu", lambda d: d["spec"].update(role="someone-else"))
    assert any("needs its own EC2 access entry" in p for p in missing_iam(templates_of(dev), docs))


# --- container runtime contract ---------------------------------------------------------------------


def test_every_container_can_run_as_its_uid_on_a_read_only_root(each_env: Synthesized) -> None:
    assert runtime_contract_violations(each_env.documents()) == []


def test_the_model_download_job_keeps_the_contract(synth_in: Any) -> None:
    synth = synth_in(
        "dev",
        **{"inference.model_store.download_job": "true", "inference.model_store.hf_token_secret_name": "genai/hf"},
    )
    jobs = synth.find("Job")
    assert len(jobs) == 1
    assert runtime_contract_violations(jobs) == []


@pytest.mark.parametrize(
    ("kind", "name", "container_name", "variable", "expected"),
    [
        ("Deployment", "vllm", "vllm", "USER", "without USER"),
        ("Deployment", "vllm", "vllm", "VLLM_NO_USAGE_STATS", "sends telemetry unless VLLM_NO_USAGE_STATS=1"),
        ("Deployment", "litellm", "litellm", "HOME", "without HOME"),
    ],
)
def test_a_missing_runtime_variable_is_found(
    dev: Synthesized, kind: str, name: str, container_name: str, variable: str, expected: str
) -> None:
    docs = mutated(dev.documents(), kind, name, drop_env(variable, container_name))
    problems = runtime_contract_violations(docs)
    assert any(expected in p for p in problems), problems


def test_a_write_path_off_the_volumes_is_found(dev: Synthesized) -> None:
    def migrations_on_root(doc: dict[str, Any]) -> None:
        target = container(doc, "litellm")
        target["volumeMounts"] = [m for m in target["volumeMounts"] if m["name"] != "migrations"]

    problems = runtime_contract_violations(mutated(dev.documents(), "Deployment", "litellm", migrations_on_root))
    assert any("LITELLM_MIGRATION_DIR=/var/lib/litellm/migrations is not on a writable volume" in p for p in problems)


def test_an_unknown_image_must_be_recorded(dev: Synthesized) -> None:
    docs = mutated(dev.documents(), "Deployment", "vllm", lambda d: container(d, "vllm").update(image="example/x:1"))
    assert any("image example/x is unknown here" in p for p in runtime_contract_violations(docs))


# --- features with a second switch ------------------------------------------------------------------


def test_every_feature_has_its_cluster_side_switch(each_env: Synthesized) -> None:
    assert missing_enablements(templates_of(each_env), each_env.documents()) == []


def test_network_policy_enforcement_is_switched_on(dev: Synthesized) -> None:
    (config_map,) = dev.find("ConfigMap", "amazon-vpc-cni")
    assert config_map["metadata"]["namespace"] == "kube-system"
    assert config_map["data"] == {"enable-network-policy-controller": "true"}
    applied = {chart.node.id: stack.stack_name for chart, stack in dev.platform.charts.entries}
    assert applied["cluster-features"] == "genai-dev-foundation"  # with the cluster, before any workload
    (manifest,) = [
        r["Properties"]
        for r in templates_of(dev)["genai-dev-foundation"]["Resources"].values()
        if r["Type"] == "Custom::AWSCDK-EKS-KubernetesResource" and "amazon-vpc-cni" in json.dumps(r["Properties"])
    ]
    # `kubectl apply`, not `create`: a ConfigMap made by hand beforehand (as the EKS docs show) is taken over.
    assert manifest["Overwrite"] is True


def test_network_policies_without_the_switch_are_found(dev: Synthesized) -> None:
    docs = [d for d in dev.documents() if d["metadata"]["name"] != "amazon-vpc-cni"]
    assert any("enable-network-policy-controller" in p for p in missing_enablements(templates_of(dev), docs))


def test_load_balancing_and_block_storage_switches_are_checked(dev: Synthesized) -> None:
    templates = templates_of(dev)
    for resource in templates["genai-dev-foundation"]["Resources"].values():
        if resource["Type"] == "AWS::EKS::Cluster":
            resource["Properties"]["KubernetesNetworkConfig"]["ElasticLoadBalancing"]["Enabled"] = False
            resource["Properties"]["StorageConfig"]["BlockStorage"]["Enabled"] = False
    problems = missing_enablements(templates, dev.documents())
    assert any("load balancing" in p for p in problems)
    assert any("block storage" in p for p in problems)


def test_a_pod_identity_association_in_a_namespace_nobody_creates_is_found(dev: Synthesized) -> None:
    docs = [d for d in dev.documents() if not (d["kind"] == "Namespace" and d["metadata"]["name"] == "inference")]
    problems = missing_enablements(templates_of(dev), docs)
    assert any("namespace inference is created by nothing" in p for p in problems), problems


# --- secrets that rotate --------------------------------------------------------------------------------


def test_the_rotating_database_password_reaches_the_proxy(dev: Synthesized) -> None:
    templates: Templates = templates_of(dev)
    (database_secret,) = rotating_secrets(templates)
    assert database_secret.attribute == "MasterUserSecret.SecretArn"
    (external,) = dev.find("ExternalSecret", "litellm")
    keys = [resolve(d["remoteRef"]["key"], "genai-dev-gateway", templates) for d in external["spec"]["data"]]
    assert any(k is not None and k.logical_id == database_secret.logical_id for k in keys)
    assert rotation_gaps(templates, dev.documents()) == []


def test_a_consumer_nothing_restarts_is_found(dev: Synthesized) -> None:
    docs = mutated(
        dev.documents(),
        "Deployment",
        "litellm",
        lambda d: d["metadata"]["annotations"].pop("secret.reloader.stakater.com/reload"),
    )
    problems = rotation_gaps(templates_of(dev), docs)
    assert any("nothing restarts it" in p for p in problems), problems


def test_a_slow_refresh_or_no_reloader_is_found(dev: Synthesized) -> None:
    docs = mutated(dev.documents(), "ExternalSecret", "litellm", lambda d: d["spec"].update(refreshInterval="1h"))
    assert any("refreshInterval 1h exceeds 15m" in p for p in rotation_gaps(templates_of(dev), docs))
    templates = templates_of(dev)
    for resource in templates["genai-dev-gateway"]["Resources"].values():
        if resource["Type"] == "Custom::AWSCDK-EKS-HelmChart" and resource["Properties"]["Chart"] == "reloader":
            resource["Properties"]["Chart"] = "something-else"
    assert any("no Reloader watches namespace gateway" in p for p in rotation_gaps(templates, dev.documents()))
