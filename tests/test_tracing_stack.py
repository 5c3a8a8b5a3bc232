"""Self-hosted tracing (observability.tracing.mode self-hosted): LangFuse's stores, its Helm releases in order,
and what the values give LangFuse. One extra synth for the whole module; mode off is the `dev` fixture.

Expected values are written here from their sources: the chart pins from the LangFuse chart README at
langfuse-2.0.0 ("Prerequisites") and cert-manager's tested Kubernetes range at v1.21.1; the Pod Security
`restricted` rules from the Kubernetes Pod Security Standards page.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from aws_cdk.assertions import Match, Template

from cdk_constructs.langfuse import LangfuseWiring, ingress_values
from ops.target import PLATFORM_STACKS, stack_name
from platform_config import ConfigError
from tests.checkov_runner import run_checkov
from tests.conftest import ROOT, Synthesized, cfn_text, config_for, helm_values, only, resources_of, synthesize
from tests.crd_schemas import validate_custom_resource

SELF_HOSTED = {
    "observability.tracing.mode": "self-hosted",
    "observability.tracing.self_hosted.admin_email": "ops@example.com",
}
HELM = "Custom::AWSCDK-EKS-HelmChart"
MANIFEST = "Custom::AWSCDK-EKS-KubernetesResource"
CREDENTIALS = "langfuse-credentials"


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    # Raises when cdk-nag reports an unacknowledged finding or an acknowledgment matches nothing.
    return synthesize(tmp_path_factory.mktemp("tracing"), "dev", **SELF_HOSTED)


@pytest.fixture(scope="module")
def tracing(traced: Synthesized) -> dict[str, Any]:
    return traced.stack_json("tracing")


@pytest.fixture(scope="module")
def template(traced: Synthesized) -> Template:
    assert traced.platform.tracing is not None
    return Template.from_stack(traced.platform.tracing)


def releases(tracing: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Helm release name -> (logical id, resource)."""
    return {r["Properties"]["Release"]: (k, r) for k, r in resources_of(tracing, HELM).items()}


def manifest_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The objects a `Custom::AWSCDK-EKS-KubernetesResource` applies (deploy-time values as placeholders)."""
    objects: list[dict[str, Any]] = json.loads(cfn_text(resource["Properties"]["Manifest"]))
    return objects


def values_of(tracing: dict[str, Any], release: str) -> dict[str, Any]:
    return helm_values(releases(tracing)[release][1]["Properties"]["Values"])


def depends_on(tracing: dict[str, Any], logical_id: str) -> set[str]:
    """Every resource `logical_id` waits for, directly or through others."""
    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        for dependency in tracing["Resources"][todo.pop()].get("DependsOn", []):
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return seen


def key_logical_id(tracing: dict[str, Any]) -> str:
    (logical_id,) = resources_of(tracing, "AWS::KMS::Key")
    return logical_id


def key_arn(tracing: dict[str, Any]) -> dict[str, Any]:
    return {"Fn::GetAtt": [key_logical_id(tracing), "Arn"]}


# --- the stack exists only in mode self-hosted ------------------------------------------------------------


def test_self_hosted_adds_the_tracing_stack_after_the_gateway(traced: Synthesized) -> None:
    tracing = traced.platform.tracing
    assert tracing is not None
    assert tracing in traced.platform.stacks
    assert tracing.stack_name == "genai-dev-tracing"
    artifacts = traced.cloud_assembly_manifest()["artifacts"]
    assert "genai-dev-gateway" in artifacts["genai-dev-tracing"]["dependencies"]
    # No cycle: the gateway reads LangFuse's keys by name and never waits for the tracing stack.
    assert "genai-dev-tracing" not in artifacts["genai-dev-gateway"]["dependencies"]


def test_the_toolkit_knows_every_stack_name(traced: Synthesized) -> None:
    # genai-ops finds stacks by name (cleanup reads what each deleted one retained): with every stack on, the
    # names the app gives are exactly `<prefix>-<name>` for the names ops/target.py lists (the pipeline's verify
    # stack aside: tests/test_delivery.py).
    assert {stack.stack_name for stack in traced.platform.stacks} == {
        stack_name(traced.config, name) for name in PLATFORM_STACKS if not name.startswith("verify")
    }


def test_mode_off_builds_none_of_it(dev: Synthesized) -> None:
    assert dev.config.observability.tracing.mode == "off"
    assert dev.platform.tracing is None
    assert not (dev.outdir / "genai-dev-tracing.template.json").exists()
    for path in dev.template_files():
        template = json.loads(path.read_text())
        types = {r["Type"] for r in template["Resources"].values()}
        assert "AWS::ElastiCache::ReplicationGroup" not in types, path.name
        charts = {r["Properties"].get("Chart") for r in resources_of(template, HELM).values()}
        assert not charts & {"langfuse", "cert-manager", "clickhouse-operator-helm"}, path.name
        assert "langfuse" not in path.read_text().lower(), path.name
    kinds = {d["kind"] for d in dev.documents()}
    assert not kinds & {"ClickHouseCluster", "KeeperCluster"}
    assert not {d["metadata"]["name"] for d in dev.find("Namespace")} & {"langfuse", "cert-manager"}


# --- stores ----------------------------------------------------------------------------------------------


def test_postgres_is_a_separate_aurora_postgresql_16_cluster_encrypted_with_langfuses_key(
    template: Template, tracing: dict[str, Any]
) -> None:
    template.resource_count_is("AWS::RDS::DBCluster", 1)
    template.has_resource_properties(
        "AWS::RDS::DBCluster",
        {
            "Engine": "aurora-postgresql",
            "EngineVersion": Match.string_like_regexp(r"^16\."),
            "StorageEncrypted": True,
            "KmsKeyId": key_arn(tracing),
            "DatabaseName": "langfuse",
            "ServerlessV2ScalingConfiguration": {"MinCapacity": 0.5, "MaxCapacity": 4},
            # The password is a dynamic reference to a generated secret, never a value.
            "MasterUserPassword": Match.object_like(
                {"Fn::Join": ["", Match.array_with([Match.string_like_regexp("^{{resolve:secretsmanager:")])]}
            ),
        },
    )
    template.has_resource_properties(
        "AWS::RDS::DBClusterParameterGroup", {"Parameters": Match.object_like({"rds.force_ssl": "1"})}
    )


def test_valkey_is_node_based_with_noeviction_encrypted_at_rest_and_in_transit(
    template: Template, tracing: dict[str, Any]
) -> None:
    template.resource_count_is("AWS::ElastiCache::ServerlessCache", 0)
    template.has_resource_properties(
        "AWS::ElastiCache::ParameterGroup",
        {"CacheParameterGroupFamily": "valkey8", "Properties": {"maxmemory-policy": "noeviction"}},
    )
    (parameters_id,) = resources_of(tracing, "AWS::ElastiCache::ParameterGroup")
    template.has_resource_properties(
        "AWS::ElastiCache::ReplicationGroup",
        {
            "Engine": "valkey",
            "CacheNodeType": "cache.t4g.small",
            "NumCacheClusters": 1,
            "CacheParameterGroupName": {"Ref": parameters_id},
            "AtRestEncryptionEnabled": True,
            "KmsKeyId": key_arn(tracing),
            "TransitEncryptionEnabled": True,
            "TransitEncryptionMode": "required",
            "UserGroupIds": Match.any_value(),
        },
    )


def test_bucket_is_sse_kms_with_langfuses_key_and_tls_only(template: Template, tracing: dict[str, Any]) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": True,
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key_arn(tracing),
                        },
                    }
                ]
            },
            "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicPolicy": True}),
        },
    )
    bucket_id = next(k for k, r in resources_of(tracing, "AWS::S3::Bucket").items() if "KMSMasterKeyID" in str(r))
    policy = next(
        r
        for r in resources_of(tracing, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"]["Ref"] == bucket_id
    )
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_pod_identity_role_reaches_only_the_bucket_and_the_key(tracing: dict[str, Any]) -> None:
    association = only(resources_of(tracing, "AWS::EKS::PodIdentityAssociation"))["Properties"]
    assert (association["Namespace"], association["ServiceAccount"]) == ("langfuse", "langfuse")
    bucket_id = next(k for k, r in resources_of(tracing, "AWS::S3::Bucket").items() if "KMSMasterKeyID" in str(r))
    role_id = association["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [
        p
        for p in resources_of(tracing, "AWS::IAM::ManagedPolicy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    allowed = {
        json.dumps({"Fn::GetAtt": [bucket_id, "Arn"]}),
        json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]}),
        json.dumps(key_arn(tracing)),
    }
    actions: set[str] = set()
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert {json.dumps(r) for r in resources} <= allowed, statement
        actions |= set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    assert actions == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListBucket",
        "kms:Decrypt",
        "kms:GenerateDataKey",
    }


def test_every_credential_is_generated_by_secrets_manager_under_langfuses_key(tracing: dict[str, Any]) -> None:
    secrets = resources_of(tracing, "AWS::SecretsManager::Secret")
    assert len(secrets) == 7  # the eighth, the gateway's project keys, is the data stack's (below)
    for secret in secrets.values():
        properties = secret["Properties"]
        assert "SecretString" not in properties
        assert "GenerateSecretString" in properties
        assert properties["KmsKeyId"] == key_arn(tracing)
    encryption_key = next(
        s["Properties"]["GenerateSecretString"]
        for s in secrets.values()
        if "ENCRYPTION_KEY" in s["Properties"]["Description"]
    )
    # 64 hex digits (LangFuse env.ts: "64 string characters in hex format").
    assert encryption_key["PasswordLength"] == 64
    assert set(encryption_key["ExcludeCharacters"]) == set("ghijklmnopqrstuvwxyz")
    assert encryption_key["ExcludeUppercase"] is True
    assert encryption_key["ExcludePunctuation"] is True


def test_the_gateway_keys_come_from_the_data_stack_which_both_stacks_follow(
    traced: Synthesized, tracing: dict[str, Any]
) -> None:
    """The tracing stack deploys after the gateway (it needs the gateway's External Secrets Operator); the
    gateway's Secret needs the keys from its first deploy. So the keys are generated in the data stack, under
    the data key, and the gateway and tracing stacks both refer to that one secret."""
    data = traced.stack_json("data")
    ((keys_id, keys),) = [
        (lid, s["Properties"])
        for lid, s in resources_of(data, "AWS::SecretsManager::Secret").items()
        if s["Properties"].get("Name") == "genai-dev/langfuse/gateway-keys"
    ]
    generated = keys["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "secret_key"
    assert json.loads(generated["SecretStringTemplate"]) == {"public_key": "pk-lf-genai-dev-gateway"}
    assert "SecretString" not in keys
    data_key_output = keys["KmsKeyId"]["Fn::GetStackOutput"]
    assert data_key_output["StackName"] == "genai-dev-foundation"
    assert "KeysData" in data_key_output["OutputName"]
    outputs = tracing["Outputs"]
    assert outputs["LangfuseKeysSecretName"]["Value"] == "genai-dev/langfuse/gateway-keys"
    assert outputs["LangfuseInClusterUrl"]["Value"] == "http://langfuse-web.langfuse.svc.cluster.local:3000"
    # The gateway's ExternalSecret and LangFuse's credentials both read that secret of the data stack.
    (gateway_secret,) = [
        d for d in traced.find("ExternalSecret") if d["metadata"]["namespace"] == "gateway" and "langfuse" in str(d)
    ]
    gateway_refs = [r["remoteRef"] for r in gateway_secret["spec"]["data"] if "Langfuse" in r["remoteRef"]["key"]]
    assert {r["property"] for r in gateway_refs} == {"public_key", "secret_key"}
    for ref in gateway_refs:
        assert '"StackName":"genai-dev-data"' in ref["key"]
        assert f"PublishOutputRef{keys_id}" in ref["key"]
    init = [
        json.dumps(d)
        for d in traced.find("ExternalSecret")
        if d["metadata"]["namespace"] == "langfuse" and "genai-dev-data" in json.dumps(d)
    ]
    assert init, "LangFuse's credentials do not read the data stack's gateway keys"
    # Deployment order: data before both.
    stacks = traced.cloud_assembly_manifest()["artifacts"]
    for stack in ("genai-dev-gateway", "genai-dev-tracing"):
        assert "genai-dev-data" in stacks[stack]["dependencies"]
    assert "genai-dev-gateway" in stacks["genai-dev-tracing"]["dependencies"]
    # ...and the gateway sends its traces to the URL this stack's LangFuse answers at.
    (proxy,) = traced.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["LANGFUSE_OTEL_HOST"] == outputs["LangfuseInClusterUrl"]["Value"]


def test_external_secrets_may_read_every_langfuse_secret_and_decrypt_with_its_key(tracing: dict[str, Any]) -> None:
    secrets = {json.dumps({"Ref": k}) for k in resources_of(tracing, "AWS::SecretsManager::Secret")}
    gateway_keys = {
        "Fn::GetStackOutput": {
            "StackName": "genai-dev-data",
            "Region": {"Ref": "AWS::Region"},
            "OutputName": "PublishOutputRefLangfuseGatewayKeys0E3912DA56F3370E",
        }
    }
    secrets.add(json.dumps(gateway_keys))
    (policy,) = [
        p["Properties"]
        for p in resources_of(tracing, "AWS::IAM::ManagedPolicy").values()
        if "External Secrets" in p["Properties"].get("Description", "")
    ]
    read, decrypt = policy["PolicyDocument"]["Statement"]
    assert {json.dumps(r) for r in read["Resource"]} == secrets
    assert decrypt == {"Action": "kms:Decrypt", "Effect": "Allow", "Resource": key_arn(tracing)}
    # Attached to the controller's role in the gateway stack.
    assert "Fn::GetStackOutput" in policy["Roles"][0]


# --- Helm releases ---------------------------------------------------------------------------------------


def test_releases_are_pinned_and_ordered_cert_manager_then_operator_then_langfuse(tracing: dict[str, Any]) -> None:
    found = releases(tracing)
    pins = {
        name: (r["Properties"]["Repository"], r["Properties"]["Chart"], r["Properties"]["Version"])
        for name, (_, r) in found.items()
    }
    assert pins == {
        "cert-manager": ("https://charts.jetstack.io", "cert-manager", "v1.21.1"),
        "clickhouse-operator": (
            "oci://ghcr.io/clickhouse/clickhouse-operator-helm",
            "clickhouse-operator-helm",
            "0.0.5",
        ),
        "langfuse": ("https://langfuse.github.io/langfuse-k8s", "langfuse", "2.0.0"),
    }
    cert_manager, operator, langfuse = (found[n][0] for n in ("cert-manager", "clickhouse-operator", "langfuse"))
    assert cert_manager in tracing["Resources"][operator]["DependsOn"]
    assert operator in depends_on(tracing, langfuse)
    assert langfuse not in depends_on(tracing, operator)
    assert operator not in depends_on(tracing, cert_manager)
    # The ClickHouse resources need the operator's CRDs; LangFuse needs ClickHouse and its credentials.
    manifests = {manifest_of(r)[0]["kind"]: k for k, r in resources_of(tracing, MANIFEST).items()}
    assert operator in tracing["Resources"][manifests["KeeperCluster"]]["DependsOn"]
    assert manifests["KeeperCluster"] in tracing["Resources"][langfuse]["DependsOn"]
    assert manifests["SecretStore"] in tracing["Resources"][langfuse]["DependsOn"]
    namespaces = manifests["Namespace"]
    assert namespaces in tracing["Resources"][cert_manager]["DependsOn"]
    for name in found:
        assert not found[name][1]["Properties"].get("CreateNamespace"), name


def test_cert_manager_installs_its_crds(tracing: dict[str, Any]) -> None:
    assert values_of(tracing, "cert-manager")["crds"] == {"enabled": True, "keep": True}
    operator = values_of(tracing, "clickhouse-operator")
    assert operator["crd"]["enable"] is True
    assert operator["certManager"] == {"enable": True, "install": False}


def test_langfuse_telemetry_and_sign_up_are_off(tracing: dict[str, Any]) -> None:
    features = values_of(tracing, "langfuse")["langfuse"]["features"]
    assert features["telemetryEnabled"] is False
    assert features["signUpDisabled"] is True


def all_keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from all_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from all_keys(item)


def secret_refs(node: Any) -> Iterator[dict[str, str]]:
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]
        for value in node.values():
            yield from secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from secret_refs(item)


def test_no_credential_is_left_to_the_chart(traced: Synthesized, tracing: dict[str, Any]) -> None:
    values = values_of(tracing, "langfuse")
    # None of the stores the chart would deploy, with passwords it would generate through `lookup`.
    for store in ("postgresql", "redis", "clickhouse", "s3"):
        assert values[store]["deploy"] is False, store
    app = values["langfuse"]
    for credential in (app["salt"], app["encryptionKey"], app["nextauth"]["secret"]):
        assert set(credential) == {"secretKeyRef"}
    assert values["postgresql"]["auth"]["existingSecret"] == CREDENTIALS
    assert values["redis"]["auth"]["existingSecret"] == CREDENTIALS
    assert values["clickhouse"]["auth"]["existingSecret"] == CREDENTIALS
    # No plain password or access key anywhere (the chart's `<store>.auth.password`, `s3.accessKeyId`...).
    assert not set(all_keys(values)) & {"password", "rootPassword", "accessKeyId", "secretAccessKey"}
    # Every Secret key a pod or the ClickHouse resource reads is one External Secrets writes.
    external = traced.one("ExternalSecret", CREDENTIALS)
    written = set(external["spec"]["target"]["template"]["data"])
    refs = list(secret_refs(values))
    assert {r["name"] for r in refs} == {CREDENTIALS}
    read = {r["key"] for r in refs}
    read |= {
        values["postgresql"]["auth"]["secretKeys"]["userPasswordKey"],
        values["redis"]["auth"]["existingSecretPasswordKey"],
        values["clickhouse"]["auth"]["existingSecretKey"],
    }
    clickhouse = traced.one("ClickHouseCluster", "langfuse")["spec"]["settings"]["defaultUserPassword"]["secret"]
    assert clickhouse["name"] == CREDENTIALS
    read.add(clickhouse["key"])
    assert read == written
    # Each from one of this stack's generated secrets, or the data stack's gateway keys.
    for ref in external["spec"]["data"]:
        key = ref["remoteRef"]["key"]
        assert key.startswith('<deploy-time {"Ref":"Stores') or "PublishOutputRefLangfuseGatewayKeys" in key, key


def test_the_chart_app_secret_gets_data_after_the_release(traced: Synthesized, tracing: dict[str, Any]) -> None:
    merged = traced.one("ExternalSecret", "langfuse-app")
    assert merged["spec"]["target"]["creationPolicy"] == "Merge"
    assert set(merged["spec"]["target"]["template"]["data"]) == {"salt", "encryption-key", "nextauth-secret"}
    manifests = {manifest_of(r)[0]["metadata"]["name"]: (k, r) for k, r in resources_of(tracing, MANIFEST).items()}
    langfuse = releases(tracing)["langfuse"][0]
    assert langfuse in manifests["langfuse-app"][1]["DependsOn"]


# --- Pod Security `restricted` ----------------------------------------------------------------------------


def assert_restricted(pod: dict[str, Any], container: dict[str, Any], where: str) -> None:
    """The `restricted` profile's pod and container rules (Pod Security Standards): non-root, no privilege
    escalation, every capability dropped (only NET_BIND_SERVICE may be added), RuntimeDefault or Localhost
    seccomp, no privileged mode."""
    run_as_non_root = container.get("runAsNonRoot", pod.get("runAsNonRoot"))
    assert run_as_non_root is True, where
    assert container.get("runAsUser", pod.get("runAsUser", 1)) != 0, where
    assert container.get("allowPrivilegeEscalation") is False, where
    assert container.get("privileged", False) is False, where
    assert container["capabilities"]["drop"] == ["ALL"], where
    assert set(container["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}, where
    seccomp = container.get("seccompProfile", pod.get("seccompProfile"))
    assert seccomp is not None, where
    assert seccomp["type"] in {"RuntimeDefault", "Localhost"}, where


def test_every_pod_we_configure_meets_restricted(traced: Synthesized, tracing: dict[str, Any]) -> None:
    app = values_of(tracing, "langfuse")["langfuse"]
    assert_restricted(app["podSecurityContext"], app["securityContext"], "langfuse web and worker")
    assert app["podSecurityContext"]["runAsUser"] == 1001
    manager = values_of(tracing, "clickhouse-operator")["manager"]
    assert_restricted(manager["podSecurityContext"], manager["containerSecurityContext"], "clickhouse operator")
    for kind in ("ClickHouseCluster", "KeeperCluster"):
        spec = traced.one(kind, "langfuse")["spec"]
        container = spec["containerTemplate"]["securityContext"]
        assert_restricted(spec["podTemplate"]["securityContext"], container, kind)
        # An empty, present list: the operator fills only absent fields with its IPC_LOCK/PERFMON/SYS_PTRACE.
        assert container["capabilities"]["add"] == []
        assert spec["podTemplate"]["securityContext"]["runAsUser"] == 101


def test_the_tracing_namespaces_enforce_restricted(traced: Synthesized) -> None:
    for name in ("langfuse", "cert-manager", "clickhouse-operator"):
        labels = traced.one("Namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", name


def test_restricted_check_catches_a_missing_drop() -> None:
    with pytest.raises(AssertionError):
        assert_restricted(
            {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            {"allowPrivilegeEscalation": False, "capabilities": {"drop": [], "add": ["SYS_PTRACE"]}},
            "bad",
        )


# --- ClickHouse, ALB, probes ------------------------------------------------------------------------------


def _quantity(value: str) -> float:
    """A Kubernetes CPU or memory quantity in base units (enough of the suffixes for these tests)."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def test_operator_resources_set_every_limit_at_or_above_its_request(traced: Synthesized) -> None:
    """The ClickHouse operator adds each default key missing from `resources.limits` (cpu "1", memory "1Gi":
    api/v1alpha1 WithDefaults with controllerutil applyDefaultRecursive), so a limit left out can land under the
    request, and the API server refuses the StatefulSet. Every resource therefore sets both limits."""
    for kind in ("ClickHouseCluster", "KeeperCluster"):
        resources = traced.one(kind, "langfuse")["spec"]["containerTemplate"]["resources"]
        assert set(resources["limits"]) == {"cpu", "memory"}, kind
        for name, request in resources["requests"].items():
            assert _quantity(resources["limits"][name]) >= _quantity(request), (kind, name)


def test_clickhouse_and_keeper_use_encrypted_ebs(traced: Synthesized) -> None:
    storage_class = traced.one("StorageClass", "gp3-encrypted")
    assert storage_class["provisioner"] == "ebs.csi.eks.amazonaws.com"
    assert storage_class["parameters"]["encrypted"] == "true"
    assert storage_class["parameters"]["kmsKeyId"]
    server = traced.one("ClickHouseCluster", "langfuse")["spec"]
    keeper = traced.one("KeeperCluster", "langfuse")["spec"]
    assert server["dataVolumeClaimSpec"]["storageClassName"] == "gp3-encrypted"
    assert server["dataVolumeClaimSpec"]["resources"]["requests"]["storage"] == "100Gi"
    assert keeper["dataVolumeClaimSpec"]["storageClassName"] == "gp3-encrypted"
    assert server["keeperClusterRef"] == {"name": "langfuse"}
    assert keeper["replicas"] == 1
    # LangFuse connects to the Service the operator makes for this cluster.
    assert values_of(traced.stack_json("tracing"), "langfuse")["clickhouse"]["host"] == "langfuse-clickhouse-headless"


def test_langfuse_is_behind_an_internal_alb(traced: Synthesized, tracing: dict[str, Any]) -> None:
    params = traced.one("IngressClassParams", "alb-langfuse")
    assert params["spec"]["scheme"] == "internal"
    assert params["spec"]["inboundCIDRs"] == ["10.0.0.0/16"]
    assert traced.one("IngressClass", "alb-langfuse")["spec"]["controller"] == "eks.amazonaws.com/alb"
    ingress = values_of(tracing, "langfuse")["langfuse"]["ingress"]
    assert ingress["className"] == "alb-langfuse"
    # No hostname in this environment: no ALB (its login would redirect to localhost); the port-forward is the way in.
    assert ingress["enabled"] is False
    assert "port-forward" in tracing["Outputs"]["LangfuseUiCommand"]["Value"]


def test_with_a_hostname_the_ui_is_served_on_https_by_the_internal_alb() -> None:
    wiring = LangfuseWiring(
        namespace="langfuse",
        region="us-west-2",
        database_host="db",
        database_name="langfuse",
        database_user="langfuse",
        cache_host="cache",
        cache_port=6379,
        cache_user="langfuse",
        bucket="bucket",
        key_arn="arn:aws:kms:us-west-2:123456789012:key/x",
        organization="genai",
        admin_email="a@example.com",
        hostname="langfuse.example.com",
        https=True,
        replicas=1,
    )
    ingress = ingress_values(wiring)
    assert ingress["enabled"] is True
    assert ingress["hosts"][0]["host"] == "langfuse.example.com"
    assert ingress["annotations"]["alb.ingress.kubernetes.io/listen-ports"] == '[{"HTTPS":443}]'


def test_first_start_window_covers_migrations_as_long_as_helm_waits(tracing: dict[str, Any]) -> None:
    _, release = releases(tracing)["langfuse"]
    web = values_of(tracing, "langfuse")["langfuse"]["web"]
    # Chart 2.0.0 has no startupProbe value: the liveness probe's delay is the first-start window.
    # 14 minutes: under the kubectl provider Lambda's 15-minute limit, the longest a Helm wait can be.
    assert web["livenessProbe"]["initialDelaySeconds"] == 840
    assert release["Properties"]["Timeout"] == "840s"
    assert release["Properties"]["Wait"] is True


def test_headless_initialization_creates_the_gateway_project_keys(tracing: dict[str, Any]) -> None:
    env = {e["name"]: e for e in values_of(tracing, "langfuse")["langfuse"]["web"]["pod"]["additionalEnv"]}
    assert env["LANGFUSE_INIT_ORG_ID"]["value"] == "genai"
    assert env["LANGFUSE_INIT_PROJECT_ID"]["value"] == "genai-gateway"
    assert env["LANGFUSE_INIT_USER_EMAIL"]["value"] == "ops@example.com"
    for name, key in (
        ("LANGFUSE_INIT_PROJECT_PUBLIC_KEY", "init-public-key"),
        ("LANGFUSE_INIT_PROJECT_SECRET_KEY", "init-secret-key"),
        ("LANGFUSE_INIT_USER_PASSWORD", "init-user-password"),
    ):
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": CREDENTIALS, "key": key}}


def test_tracing_manifests_are_valid(traced: Synthesized) -> None:
    names = ("tracing-namespaces", "langfuse-config", "langfuse-app-secret")
    docs = [d for d in traced.documents() if d["metadata"].get("namespace") == "langfuse" or d["kind"] == "Namespace"]
    docs += traced.find("IngressClass", "alb-langfuse") + traced.find("IngressClassParams", "alb-langfuse")
    assert {d["kind"] for d in docs} >= {"Namespace", "SecretStore", "ExternalSecret", "IngressClassParams"}
    for doc in docs:
        if doc["kind"] in ("ClickHouseCluster", "KeeperCluster"):
            continue  # no schema in ../shared/crd-schemas; fields are asserted above
        if "." in doc["apiVersion"].split("/")[0] and not doc["apiVersion"].startswith("networking.k8s.io"):
            validate_custom_resource(doc)
        else:
            kubernetes_validate.validate(doc, "1.35", strict=True)
    assert all((traced.manifests_dir / f"{name}.k8s.yaml").exists() for name in names)


def test_compliance_audit_is_clean_with_self_hosted_tracing(traced: Synthesized) -> None:
    assert traced.audit.problems() == []
    assert traced.audit.failed == []
    tracing_findings = [f for f in traced.audit.acknowledged if f.in_scope("genai-dev-tracing")]
    assert {f.rule for f in tracing_findings} >= {"AwsSolutions-AEC6", "AwsSolutions-SMG4"}


# --- config ----------------------------------------------------------------------------------------------


def self_hosted(**overrides: str) -> dict[str, str]:
    return {**SELF_HOSTED, **{f"observability.tracing.self_hosted.{k}": v for k, v in overrides.items()}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"observability.tracing.mode": "self-hosted"},
            "mode 'self-hosted' needs self_hosted.admin_email",
        ),
        (
            {**SELF_HOSTED, "gateway.enabled": "false"},
            "observability.tracing.mode 'self-hosted' needs gateway.enabled",
        ),
        (
            {"observability.tracing.self_hosted.cache_replicas": "1"},
            "self_hosted applies to mode 'self-hosted' only, not 'off'",
        ),
        (self_hosted(keeper_replicas="2"), "keeper_replicas: must be 1, 3 or 5"),
        (self_hosted(keeper_replicas="4"), "keeper_replicas: must be 1, 3 or 5"),
        (self_hosted(database_min_acu="4.5"), "database_min_acu (4.5) must not exceed database_max_acu (4)"),
        (self_hosted(database_max_acu="2.25"), "must be a multiple of 0.5 ACU"),
        (self_hosted(cache_replicas="6"), "cache_replicas: Input should be less than or equal to 5"),
        (self_hosted(cache_node_type="t4g.small"), "must be an ElastiCache node type"),
        (
            self_hosted(clickhouse_storage_gib="19"),
            "clickhouse_storage_gib: Input should be greater than or equal to 20",
        ),
        (self_hosted(hostname="langfuse.example.com"), "hostname and certificate_arn are set together"),
        (
            {
                **SELF_HOSTED,
                "namespaces": json.dumps(
                    [
                        {"name": n}
                        for n in ("inference", "gateway", "keda", "external-secrets", "observability", "langfuse")
                    ]
                ),
            },
            "namespaces lists ['langfuse'], which the tracing stack creates itself",
        ),
    ],
)
def test_invalid_tracing_config_names_key_and_value(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_for("dev", **overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        self_hosted(keeper_replicas="3"),
        self_hosted(keeper_replicas="5"),
        self_hosted(database_min_acu="4", database_max_acu="4"),
        self_hosted(clickhouse_storage_gib="20", cache_replicas="5"),
        self_hosted(
            hostname="langfuse.internal.example.com",
            certificate_arn="arn:aws:acm:us-west-2:123456789012:certificate/0123abcd-0123-4567-89ab-0123456789ab",
        ),
    ],
)
def test_valid_tracing_config_at_the_bounds(overrides: dict[str, str]) -> None:
    tracing = config_for("dev", **overrides).observability.tracing
    assert tracing.mode == "self-hosted"
    assert tracing.self_hosted.admin_email == "ops@example.com"


def test_tracing_template_passes_cfn_lint_and_checkov(traced: Synthesized, tmp_path: Path) -> None:
    template = traced.outdir / "genai-dev-tracing.template.json"
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", "--", str(template)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    shutil.copy(template, tmp_path)
    report = run_checkov(tmp_path, framework="cloudformation")
    assert report.passed > 50, report.describe()
    assert report.failed == [], report.describe()
    assert {(f.check_id, f.resource.split(".", 1)[0]) for f in report.skipped} == {("CKV_AWS_18", "AWS::S3::Bucket")}


def test_every_valkey_user_authenticates_with_a_password_and_the_default_user_is_off(traced: Synthesized) -> None:
    """A user group of the Valkey engine admits only users with a password or IAM, not no-password users
    (ElastiCache User Guide, Clusters.RBAC, limitations); every group still has a `default` user, switched off."""
    users = [
        r["Properties"]
        for stack in ("data", "tracing")
        for r in resources_of(traced.stack_json(stack), "AWS::ElastiCache::User").values()
    ]
    assert len(users) == 4  # the gateway's and LangFuse's: a default and a working user each
    for user in users:
        assert user["Engine"] == "valkey"
        assert user["AuthenticationMode"]["Type"] == "password", user["UserName"]
        assert "NoPasswordRequired" not in user
    defaults = [u for u in users if u["UserName"] == "default"]
    assert [u["AccessString"] for u in defaults] == ["off -@all", "off -@all"]
