"""README statements about security and reliability that no other test pinned down.

Each test asserts on synthesized output (the session's dev and prod synths; two charts are built with cdk8s
alone where dev has no such object) against values written here from the README, never imported from the
code under test. The README's table "Claims and the tests that hold them" maps each statement to its tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import pytest
import yaml

from compliance.acknowledgments import acknowledge
from platform_config import ConfigError
from tests.conftest import (
    Synthesized,
    config_for,
    download_job_documents,
    gateway_chart_documents,
    helm_values,
    resources_of,
)

STACKS = ("foundation", "data", "observability", "inference", "gateway")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# README, "vLLM": non-root UID 10001; "Read-only root": LiteLLM runs as the same UID.
NON_ROOT_UID = 10001
# aws/aws-cdk#19165 and FACTS.md: the platform's budget per chart resource.
MAX_CHART_BYTES = 120_000


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]]


def _templates(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {stack: synth.stack_json(stack) for stack in STACKS}


def _resolve(value: Any, stack: str, templates: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """(stack, logical id) of the resource a Ref, GetAtt or cross-stack output points at."""
    if "Fn::GetStackOutput" in value:
        spec = value["Fn::GetStackOutput"]
        (owner,) = [name for name in templates if spec["StackName"].endswith(f"-{name}")]
        return _resolve(templates[owner]["Outputs"][spec["OutputName"]]["Value"], owner, templates)
    if "Ref" in value:
        return stack, str(value["Ref"])
    return stack, str(value["Fn::GetAtt"][0])


def _path(resource: dict[str, Any]) -> str:
    return str(resource.get("Metadata", {}).get("aws:cdk:path", ""))


def _pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.fixture(scope="module")
def download_job() -> list[dict[str, Any]]:
    return download_job_documents()


def _gateway_chart(**overrides: str) -> list[dict[str, Any]]:
    """The gateway chart for a gateway configuration dev does not use, wired as stacks/gateway.py does."""
    return gateway_chart_documents(**overrides)


# --- security --------------------------------------------------------------------------------------------


def test_logs_key_admits_only_regional_cloudwatch_logs_for_this_accounts_log_groups(dev: Synthesized) -> None:
    """README, KMS: the logs key admits the regional CloudWatch Logs principal for this account's log
    groups only (CloudWatch Logs User Guide, encrypt-log-data-kms)."""
    foundation = dev.stack_json("foundation")
    (key,) = [k for k in resources_of(foundation, "AWS::KMS::Key").values() if "/Keys/Logs/" in _path(k)]
    # The other statement is the account root's (the default key policy); the only service admitted is Logs.
    (logs,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" in s.get("Principal", {})]
    assert logs["Principal"] == {"Service": {"Fn::Join": ["", ["logs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}
    assert logs["Condition"] == {
        "ArnLike": {
            "kms:EncryptionContext:aws:logs:arn": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":logs:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        ":log-group:*",
                    ],
                ]
            }
        }
    }


def test_every_pod_identity_role_is_bound_to_one_cluster_namespace_and_service_account(dev: Synthesized) -> None:
    """README, Add-ons and identity: every workload's role trusts pods.eks.amazonaws.com with sts:AssumeRole
    and sts:TagSession, restricted by session tags to one cluster, namespace and service account, with its
    permissions in a customer-managed policy, plus its Pod Identity association."""
    templates = _templates(dev)
    associations: dict[tuple[str, str], tuple[str, str]] = {}
    for stack, template in templates.items():
        for association in resources_of(template, "AWS::EKS::PodIdentityAssociation").values():
            props = association["Properties"]
            associations[(props["Namespace"], props["ServiceAccount"])] = _resolve(props["RoleArn"], stack, templates)
        for addon in resources_of(template, "AWS::EKS::Addon").values():
            for entry in addon["Properties"].get("PodIdentityAssociations", []):
                associations[("amazon-cloudwatch", entry["ServiceAccount"])] = _resolve(
                    entry["RoleArn"], stack, templates
                )
    roles = 0
    for stack, template in templates.items():
        for logical_id, role in resources_of(template, "AWS::IAM::Role").items():
            statements = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
            if not any(s.get("Principal", {}).get("Service") == "pods.eks.amazonaws.com" for s in statements):
                continue
            roles += 1
            (statement,) = statements
            assert statement["Effect"] == "Allow"
            assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
            (condition_type,) = statement["Condition"]
            assert condition_type == "StringEquals"
            conditions = statement["Condition"]["StringEquals"]
            assert set(conditions) == {
                "aws:SourceAccount",
                "aws:RequestTag/eks-cluster-name",
                "aws:RequestTag/kubernetes-namespace",
                "aws:RequestTag/kubernetes-service-account",
            }, logical_id
            namespace = conditions["aws:RequestTag/kubernetes-namespace"]
            service_account = conditions["aws:RequestTag/kubernetes-service-account"]
            assert isinstance(namespace, str), logical_id
            assert isinstance(service_account, str), logical_id
            assert associations[(namespace, service_account)] == (stack, logical_id)
            assert "Policies" not in role["Properties"], f"{logical_id} has an inline policy"
    assert roles >= 5  # CloudWatch agent, vLLM, KEDA, External Secrets, LiteLLM


def test_no_inline_iam_policy_outside_cdks_own_providers(dev: Synthesized, prod: Synthesized) -> None:
    """README, Compliance: findings fixed by customer-managed instead of inline policies; only aws-cdk-lib's own
    providers (the kubectl provider and the default-security-group restrictor), which CDK does not expose,
    keep inline policies."""
    cdk_own = ("/KubectlProvider/", "/Custom::VpcRestrictDefaultSGCustomResourceProvider/")
    for synth in (dev, prod):
        for stack, template in _templates(synth).items():
            for logical_id, policy in resources_of(template, "AWS::IAM::Policy").items():
                assert any(p in _path(policy) for p in cdk_own), f"{stack}/{logical_id} is an inline policy"
            for logical_id, role in resources_of(template, "AWS::IAM::Role").items():
                if "Policies" in role["Properties"]:
                    assert any(p in _path(role) for p in cdk_own), f"{stack}/{logical_id} has an inline policy"


def test_vllm_role_reads_only_the_model_prefix(dev: Synthesized) -> None:
    """README, vLLM: a ServiceAccount with Pod Identity, read-only on the model prefix (`models`)."""
    data = dev.stack_json("data")
    (policy,) = [p for p in resources_of(data, "AWS::IAM::ManagedPolicy").values() if "/VllmIdentity/" in _path(p)]
    statements = {s["Action"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}
    assert all(s["Effect"] == "Allow" for s in statements.values())
    (bucket,) = [k for k, b in resources_of(data, "AWS::S3::Bucket").items() if "/ModelStore/Models/" in _path(b)]
    assert statements["s3:GetObject"]["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/models/*"]]}
    assert statements["s3:ListBucket"]["Resource"] == {"Fn::GetAtt": [bucket, "Arn"]}
    assert statements["s3:ListBucket"]["Condition"] == {"StringLike": {"s3:prefix": ["models/*", "models"]}}
    templates = _templates(dev)
    (foundation_stack, key) = _resolve(statements["kms:Decrypt"]["Resource"], "data", templates)
    assert "/Keys/Data/" in _path(templates[foundation_stack]["Resources"][key])


def test_model_bucket_uses_the_data_key_is_versioned_and_logs_to_a_separate_sse_s3_bucket(dev: Synthesized) -> None:
    """README, Model store: KMS with bucket keys, versioned, access logs to a separate SSE-S3 bucket (server
    access logs cannot be delivered to SSE-KMS buckets), which blocks public access and TLS-less requests too."""
    templates = _templates(dev)
    data = templates["data"]
    buckets = resources_of(data, "AWS::S3::Bucket")
    (models_id,) = [k for k, b in buckets.items() if "/ModelStore/Models/" in _path(b)]
    (logs_id,) = [k for k, b in buckets.items() if "/ModelStore/AccessLogs/" in _path(b)]
    models, access_logs = buckets[models_id]["Properties"], buckets[logs_id]["Properties"]
    (rule,) = models["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    stack, key = _resolve(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"], "data", templates)
    assert "/Keys/Data/" in _path(templates[stack]["Resources"][key])
    assert models["VersioningConfiguration"] == {"Status": "Enabled"}
    assert models["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    (log_rule,) = access_logs["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert log_rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert access_logs["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    tls_only = [
        policy["Properties"]["Bucket"]
        for policy in resources_of(data, "AWS::S3::BucketPolicy").values()
        if {"Action": "s3:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}, "Effect": "Deny"}.items()
        <= policy["Properties"]["PolicyDocument"]["Statement"][0].items()
    ]
    assert sorted(b["Ref"] for b in tls_only) == sorted([models_id, logs_id])


def test_every_container_image_is_pinned_by_digest(dev: Synthesized, download_job: list[dict[str, Any]]) -> None:
    """README: the vLLM image, the LiteLLM image and the download Job's AWS CLI image, pinned by digest."""
    images = {
        container["image"] for _, pod in _pod_specs(dev.documents() + download_job) for container in _containers(pod)
    }
    assert {i.split(":")[0] for i in images} == {"vllm/vllm-openai", "ghcr.io/berriai/litellm", "amazon/aws-cli"}
    for image in images:
        assert DIGEST.search(image), f"{image} is not pinned by digest"


def test_pods_meet_the_restricted_pod_security_standard(
    dev: Synthesized, prod: Synthesized, download_job: list[dict[str, Any]]
) -> None:
    """README: vLLM and LiteLLM (and the download Job) are Pod Security `restricted`: non-root UID 10001, no
    privilege escalation, all capabilities dropped, RuntimeDefault seccomp, read-only root. The checks are
    the Restricted profile of the Kubernetes Pod Security Standards, plus the README's read-only root."""
    workloads = [*_pod_specs(dev.documents()), *_pod_specs(prod.documents()), *_pod_specs(download_job)]
    assert {doc["metadata"]["name"] for doc, _ in workloads} >= {"vllm", "litellm"}
    assert any(doc["kind"] == "Job" for doc, _ in workloads)
    for doc, pod in workloads:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(forbidden), where
        assert not any("hostPath" in v for v in pod.get("volumes", [])), where
        assert pod["securityContext"]["runAsUser"] == NON_ROOT_UID, where
        for container in _containers(pod):
            security = {**pod["securityContext"], **container["securityContext"]}
            assert security["runAsNonRoot"] is True, where
            assert security.get("runAsUser", NON_ROOT_UID) != 0, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert not security.get("privileged"), where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert set(security["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}, where
            assert security["seccompProfile"]["type"] in ("RuntimeDefault", "Localhost"), where
            assert security["readOnlyRootFilesystem"] is True, where


def test_namespaces_of_the_workloads_enforce_restricted(dev: Synthesized) -> None:
    """README: `restricted` enforced for every platform namespace; with Container Insights (the default) the DCGM
    exporter runs in the add-on's namespace, so `observability` is restricted too."""
    labels = {d["metadata"]["name"]: d["metadata"]["labels"] for d in dev.find("Namespace")}
    enforced = {name: label["pod-security.kubernetes.io/enforce"] for name, label in labels.items()}
    assert {name for name, level in enforced.items() if level != "restricted"} == set()
    for doc, _ in _pod_specs(dev.documents()):
        assert enforced[doc["metadata"]["namespace"]] == "restricted"


def test_the_hugging_face_token_never_reaches_a_log_an_argument_or_the_environment(
    download_job: list[dict[str, Any]],
) -> None:
    """README, Model store: the token exists only in Secrets Manager and the pod's memory, never in a log.
    The step that reads it sends the value to a file on the memory volume, not to its output; no step
    prints it, traces its shell or takes it as an argument or variable."""
    ((_, pod),) = _pod_specs(download_job)
    volumes = {v["name"]: v for v in pod["volumes"]}
    steps = {c["name"]: c for c in _containers(pod)}
    assert list(steps) == ["fetch-token", "download", "upload"]
    fetch = " ".join(steps["fetch-token"]["command"])
    match = re.search(r"aws secretsmanager get-secret-value .*--output text > (\S+)$", fetch)
    assert match, fetch
    token_file = match.group(1)
    (mount,) = [m for m in steps["fetch-token"]["volumeMounts"] if token_file.startswith(m["mountPath"] + "/")]
    assert volumes[mount["name"]]["emptyDir"]["medium"] == "Memory"
    for name, step in steps.items():
        command = " ".join(step["command"])
        assert not re.search(r"\b(echo|cat|printf|tee)\b|set -x|--debug", command), f"{name}: {command}"
        assert "hf_" not in json.dumps(step.get("env", [])), name
        if name != "fetch-token":
            assert command.count(token_file) <= 1
    assert f"open({token_file!r}).read()" in " ".join(steps["download"]["command"])
    assert token_file not in " ".join(steps["upload"]["command"])


def test_litellm_holds_secrets_only_as_environment_references(dev: Synthesized) -> None:
    """README, Configuration: secrets appear only as `os.environ/NAME` references; the Deployment takes their
    values from the Secret External Secrets builds, never inline."""
    config: dict[str, Any] = yaml.safe_load(dev.one("ConfigMap", "litellm")["data"]["config.yaml"])
    sensitive = re.compile(r"(key|password|secret|token|_url)$")

    def walk(node: Any, where: str) -> Iterator[tuple[str, Any]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{where}.{index}")
        else:
            yield where, node

    leaves = dict(walk(config, "config"))
    secret_leaves = {where: value for where, value in leaves.items() if sensitive.search(where)}
    assert {"config.general_settings.master_key", "config.general_settings.database_url"} <= set(secret_leaves)
    assert "config.router_settings.redis_password" in secret_leaves
    for where, value in secret_leaves.items():
        assert isinstance(value, str)
        assert re.fullmatch(r"os\.environ/[A-Z][A-Z0-9_]*", value), f"{where} = {value!r}"
    (container,) = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    for name, entry in _env(container).items():
        if re.search(r"(KEY|PASSWORD|SECRET|TOKEN|DATABASE_URL)$", name):
            assert "value" not in entry, name
            assert entry["valueFrom"]["secretKeyRef"]["name"] == "litellm", name


def test_gateway_network_policy_admits_the_vpc_and_the_scraper_and_limits_egress(dev: Synthesized) -> None:
    """README, Exposure: a NetworkPolicy admitting only the VPC (the ALB) and the metrics scraper, with egress
    limited to vLLM, the two stores, DNS, HTTPS and the Pod Identity agent; and the namespace's default deny."""
    (deny,) = [p for p in dev.find("NetworkPolicy", "default-deny") if p["metadata"]["namespace"] == "gateway"]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    policy = dev.one("NetworkPolicy", "litellm")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"]["matchLabels"] == dev.one("Deployment", "litellm")["spec"]["selector"]["matchLabels"]
    vpc = {"ipBlock": {"cidr": "10.0.0.0/16"}}
    to_4000 = [{"port": 4000, "protocol": "TCP"}]
    assert policy["ingress"] == [
        {"from": [vpc], "ports": to_4000},
        {
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
            "ports": to_4000,
        },
    ]
    egress = [(rule.get("to"), sorted((p["port"], p["protocol"]) for p in rule["ports"])) for rule in policy["egress"]]
    vllm_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "inference"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "vllm"}},
    }
    assert egress == [
        (None, [(53, "TCP"), (53, "UDP")]),
        ([vllm_peer], [(8000, "TCP")]),
        ([vpc], [(5432, "TCP"), (6379, "TCP")]),
        (None, [(443, "TCP")]),
        # EKS Pod Identity agent's link-local address (EKS User Guide, pod-id-agent-setup).
        ([{"ipBlock": {"cidr": "169.254.170.23/32"}}], [(80, "TCP")]),
    ]


def test_https_with_a_certificate_and_no_internet_facing_alb_without_one() -> None:
    """README, Exposure: internal by default; HTTPS when gateway.certificate_arn is set; an internet-facing
    ALB is refused without a certificate."""
    with pytest.raises(ConfigError, match="internet-facing gateway needs certificate_arn"):
        config_for("dev", **{"gateway.ingress_scheme": "internet-facing"})
    certificate = "arn:aws:acm:us-west-2:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    docs = _gateway_chart(**{"gateway.ingress_scheme": "internet-facing", "gateway.certificate_arn": certificate})
    (params,) = [d for d in docs if d["kind"] == "IngressClassParams"]
    assert params["spec"]["scheme"] == "internet-facing"
    assert params["spec"]["certificateARNs"] == [certificate]
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    assert json.loads(ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}]


def test_stores_sit_in_private_subnets_behind_the_cluster_security_group(dev: Synthesized, prod: Synthesized) -> None:
    """README, State: Aurora and Valkey in the private subnets, reachable only from the cluster's security
    group (on their own ports), Aurora instances not publicly accessible."""
    for synth in (dev, prod):
        templates = _templates(synth)
        data, foundation = templates["data"], templates["foundation"]
        (subnet_group,) = resources_of(data, "AWS::RDS::DBSubnetGroup").values()
        (cache,) = resources_of(data, "AWS::ElastiCache::ServerlessCache").values()
        for subnets in (subnet_group["Properties"]["SubnetIds"], cache["Properties"]["SubnetIds"]):
            assert len(subnets) == synth.config.vpc.max_azs
            for subnet in subnets:
                stack, logical_id = _resolve(subnet, "data", templates)
                tags = {t["Key"]: t["Value"] for t in templates[stack]["Resources"][logical_id]["Properties"]["Tags"]}
                assert tags["aws-cdk:subnet-type"] == "Private", logical_id
        (cluster_id,) = resources_of(foundation, "AWS::EKS::Cluster")
        ingress = list(resources_of(data, "AWS::EC2::SecurityGroupIngress").values())
        for group in resources_of(data, "AWS::EC2::SecurityGroup").values():
            assert "SecurityGroupIngress" not in group["Properties"]
        assert sorted(r["Properties"]["FromPort"] for r in ingress) == [5432, 6379]
        for rule in ingress:
            assert rule["Properties"]["ToPort"] == rule["Properties"]["FromPort"]
            source = rule["Properties"]["SourceSecurityGroupId"]
            assert source["Fn::GetStackOutput"]["StackName"].endswith("-foundation")
            output = foundation["Outputs"][source["Fn::GetStackOutput"]["OutputName"]]["Value"]
            assert output == {"Fn::GetAtt": [cluster_id, "ClusterSecurityGroupId"]}
        for instance in resources_of(data, "AWS::RDS::DBInstance").values():
            assert instance["Properties"]["PubliclyAccessible"] is False


def test_storage_class_is_the_default_and_encrypted_with_the_node_volume_key(dev: Synthesized) -> None:
    """README: default StorageClass gp3-encrypted; the node-volume key, which NodeClasses and the
    StorageClass name."""
    storage = dev.one("StorageClass", "gp3-encrypted")
    assert storage["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage["parameters"]["encrypted"] == "true"
    assert storage["parameters"]["type"] == "gp3"
    assert "KeysNodeVolumes" in storage["parameters"]["kmsKeyId"]
    assert [d["metadata"]["name"] for d in dev.find("StorageClass")] == ["gp3-encrypted"]


# The README's list of acknowledged findings ("Compliance"), each as (what, rule pattern, construct pattern).
_PACKS = r"(NIST\.800\.53\.R5|HIPAA\.Security|PCI\.DSS\.321)"
ACKNOWLEDGED = (
    (
        "AWS managed policies EKS Auto Mode requires on the cluster and node roles",
        r"AwsSolutions-IAM4\[Policy::arn:<AWS::Partition>:iam::aws:policy/(AmazonEKS(Cluster|Compute|BlockStorage"
        r"|LoadBalancing|Networking)Policy|AmazonEKSWorkerNodeMinimalPolicy|AmazonEC2ContainerRegistryPullOnly)\]",
        r"Eks/(Cluster/Role|NodeRole)/Resource",
    ),
    (
        "the CloudWatch agent's CloudWatchAgentServerPolicy",
        r"AwsSolutions-IAM4\[Policy::arn:<AWS::Partition>:iam::aws:policy/CloudWatchAgentServerPolicy\]",
        r"Addons/CloudWatchAgentIdentity/Role/Resource",
    ),
    (
        "RDS Enhanced Monitoring's role policy",
        r"AwsSolutions-IAM4\[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole\]",
        r"GatewayStores/Database/MonitoringRole/Resource",
    ),
    (
        "the public subnets' default route to the internet gateway",
        _PACKS + r"-VPCNoUnrestrictedRouteToIGW",
        r"Network/Vpc/publicSubnet\d/DefaultRoute",
    ),
    (
        "aws-cdk-lib's own kubectl provider Lambdas: runtime, policies, invocation settings",
        r"(AwsSolutions-(IAM4|IAM5|L1)|" + _PACKS + r"-(IAMNoInlinePolicy|LambdaConcurrency|LambdaDLQ))(\[.*\])?",
        r"Eks/Cluster/KubectlProvider/.*",
    ),
    (
        "secrets without scheduled rotation: the LiteLLM master and salt keys, the cache password",
        r"(AwsSolutions-SMG4|" + _PACKS + r"-SecretsManagerRotationEnabled)",
        r"GatewayStores/(MasterKey|SaltKey|CachePassword)/Resource",
    ),
    (
        "S3 replication of the model and access-log buckets",
        _PACKS + r"-S3BucketReplicationEnabled",
        r"ModelStore/(Models|AccessLogs)/Resource",
    ),
    ("SSE-S3 on the access-log bucket", _PACKS + r"-S3DefaultEncryptionKMS", r"ModelStore/AccessLogs/Resource"),
    (
        "Aurora's own backups instead of an AWS Backup plan",
        _PACKS + r"-RDSInBackupPlan",
        r"GatewayStores/Database/(writer|reader)/Resource",
    ),
    (
        "deletion protection off in dev",
        r"(AwsSolutions-RDS10|" + _PACKS + r"-RDSInstanceDeletionProtectionEnabled)",
        r"GatewayStores/Database/Resource",
    ),
    (
        "the vLLM role's read of the model prefix (models/*)",
        r"AwsSolutions-IAM5\[Resource::<ModelStoreModels[0-9A-F]{8}\.Arn>/models/\*\]",
        r"VllmIdentity/Policy/Resource",
    ),
)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_acknowledged_findings_are_exactly_the_readmes_list(env: str, dev: Synthesized, prod: Synthesized) -> None:
    """README, Compliance: "The acknowledged findings are: ..." Each acknowledged finding belongs to one
    of the listed kinds, and each kind is acknowledged (deletion protection only in dev)."""
    synth = {"dev": dev, "prod": prod}[env]
    used: set[str] = set()
    for finding in synth.audit.acknowledged:
        construct = finding.construct.split("/", 1)[1]
        kinds = [
            what
            for what, rule, path in ACKNOWLEDGED
            if re.fullmatch(rule, finding.rule) and re.fullmatch(path, construct)
        ]
        assert len(kinds) == 1, f"{finding.rule} on {finding.construct} is not in the README's list"
        used.update(kinds)
    expected = {what for what, _, _ in ACKNOWLEDGED}
    if env == "prod":
        expected.remove("deletion protection off in dev")
    assert used == expected


def test_an_acknowledgment_with_an_empty_or_placeholder_reason_is_refused() -> None:
    """README, Compliance: acknowledge refuses an empty or placeholder reason."""
    stack = cdk.Stack(cdk.App(), "Reasons")
    for reason in ("", "   ", "n/a", "TODO", "demo"):
        with pytest.raises(ValueError, match="needs a reason a reviewer can check"):
            acknowledge(stack, "AwsSolutions-IAM4", reason)


def test_a_blank_reason_of_any_length_is_refused() -> None:
    stack = cdk.Stack(cdk.App(), "BlankReason")
    with pytest.raises(ValueError, match="needs a reason a reviewer can check"):
        acknowledge(stack, "AwsSolutions-IAM4", " " * 40)


def test_helm_charts_are_the_official_ones_at_the_readmes_versions(dev: Synthesized) -> None:
    """README: KEDA 2.20.2, Prometheus 29.27.0, DCGM exporter 4.8.2, External Secrets 2.9.0, Reloader 2.2.16,
    each from its project's own chart repository."""
    charts = {
        r["Properties"]["Chart"]: (r["Properties"]["Repository"], r["Properties"]["Version"])
        for stack in STACKS
        for r in resources_of(dev.stack_json(stack), "Custom::AWSCDK-EKS-HelmChart").values()
    }
    assert charts == {
        "keda": ("https://kedacore.github.io/charts", "2.20.2"),
        "prometheus": ("https://prometheus-community.github.io/helm-charts", "29.27.0"),
        "dcgm-exporter": ("https://nvidia.github.io/dcgm-exporter/helm-charts", "4.8.2"),
        "external-secrets": ("https://charts.external-secrets.io", "2.9.0"),
        "reloader": ("https://stakater.github.io/stakater-charts", "2.2.16"),
    }


# --- reliability -----------------------------------------------------------------------------------------


def test_every_node_pool_has_a_cost_cap_one_node_budget_14_day_expiry_and_24_hour_grace(
    dev: Synthesized, prod: Synthesized
) -> None:
    """README, Node pools: every pool has a resource limit, a disruption budget of one node at a time, a
    14-day expireAfter and a 24-hour terminationGracePeriod (together within Auto Mode's 21 days)."""
    for synth in (dev, prod):
        pools = {p["metadata"]["name"]: p["spec"] for p in synth.find("NodePool")}
        assert set(pools) == {"gpu", "neuron", "cpu"}
        for name, spec in pools.items():
            assert spec["limits"], name
            assert spec["disruption"]["budgets"] == [{"nodes": "1"}], name
            assert spec["template"]["spec"]["expireAfter"] == "336h", name
            assert spec["template"]["spec"]["terminationGracePeriod"] == "24h", name


def test_accelerator_pools_consolidate_only_empty_nodes_after_15_minutes(dev: Synthesized, prod: Synthesized) -> None:
    """README, Node pools: accelerator pools consolidate only empty nodes (WhenEmpty, after 15 minutes); the
    cpu pool also consolidates underused nodes after a minute. GPU pool Spot and On-Demand, On-Demand only
    in prod; cpu Spot first."""
    for synth in (dev, prod):
        disruption = {p["metadata"]["name"]: p["spec"]["disruption"] for p in synth.find("NodePool")}
        for pool in ("gpu", "neuron"):
            assert disruption[pool]["consolidationPolicy"] == "WhenEmpty"
            assert _seconds(disruption[pool]["consolidateAfter"]) == 15 * 60
        assert disruption["cpu"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
        assert _seconds(disruption["cpu"]["consolidateAfter"]) == 60

    def capacity(synth: Synthesized, pool: str) -> list[str]:
        requirements = synth.one("NodePool", pool)["spec"]["template"]["spec"]["requirements"]
        (values,) = [r["values"] for r in requirements if r["key"] == "karpenter.sh/capacity-type"]
        return list(values)

    assert capacity(dev, "gpu") == ["spot", "on-demand"]
    assert capacity(prod, "gpu") == ["on-demand"]
    assert capacity(dev, "cpu")[0] == "spot"


def test_a_rollout_surges_a_ready_replica_before_removing_one_and_a_drain_lets_streams_finish(
    each_env: Synthesized,
) -> None:
    """README, The last replica: `rollout restart` surges a new replica and removes the old one only once
    the new one is Ready; Drain: a preStop sleep of 15 s, and a grace period of 15 s + the longest request
    (600 s, the config default) + 30 s."""
    spec = each_env.one("Deployment", "vllm")["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}
    assert pod["terminationGracePeriodSeconds"] == 15 + 600 + 30
    assert "readinessProbe" in container  # "Ready" is what the rollout waits for


def test_vllm_runtime_identity_for_a_uid_the_image_does_not_list(dev: Synthesized) -> None:
    """README, vLLM and Read-only root: the containers set USER, LOGNAME and HOME (getpass.getuser() reads
    LOGNAME first), HOME on a writable emptyDir."""
    for name in ("vllm", "litellm"):
        pod = dev.one("Deployment", name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {k: v.get("value") for k, v in _env(container).items()}
        assert env["USER"]
        assert env["LOGNAME"]
        assert env["HOME"] == "/tmp"
        (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}[tmp["name"]]


def test_vllm_scaling_triggers_thresholds_behaviour_and_fallback(each_env: Synthesized) -> None:
    """README, Autoscaling: queue (AverageValue, 5 per replica), KV cache (Value, 0.8), TTFT p95 (Value, 2 s),
    generation tokens (AverageValue, 400 tok/s per replica); scale up with no stabilization, +2 pods or +100%
    per 30 s; down after 15 minutes, one pod per 2 minutes; a fallback of 2 replicas."""
    spec = each_env.one("ScaledObject", "vllm")["spec"]
    triggers = {t["name"]: (t["type"], t["metricType"], t["metadata"]["threshold"]) for t in spec["triggers"]}
    assert triggers == {
        "queue-depth": ("prometheus", "AverageValue", "5"),
        "kv-cache": ("prometheus", "Value", "0.8"),
        "ttft-p95": ("prometheus", "Value", "2"),
        "generation-tokens": ("prometheus", "AverageValue", "400"),
    }
    queries = {t["name"]: t["metadata"]["query"] for t in spec["triggers"]}
    assert queries["queue-depth"].startswith("sum(vllm:num_requests_waiting{")
    assert queries["kv-cache"].startswith("avg(vllm:kv_cache_usage_perc{")
    assert "histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{" in queries["ttft-p95"]
    assert queries["generation-tokens"].startswith("sum(rate(vllm:generation_tokens_total{")
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleUp"]["selectPolicy"] == "Max"
    assert sorted((p["type"], p["value"], p["periodSeconds"]) for p in behavior["scaleUp"]["policies"]) == [
        ("Percent", 100, 30),
        ("Pods", 2, 30),
    ]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 15 * 60
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    assert spec["fallback"]["replicas"] == 2


def test_queue_reaction_follows_the_readmes_table(each_env: Synthesized) -> None:
    """README, Scaling reaction, computed here from the synthesized objects by the table's own rows: scrape
    interval 5 + KEDA metric cache 0 (useCachedMetrics false) + HPA sync 15 (Kubernetes default) +
    scale-up stabilization 0 + one query 1 = 21 s, within the 30 s target."""
    (chart,) = [
        r
        for r in resources_of(each_env.stack_json("observability"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "prometheus"
    ]
    scrape = _seconds(helm_values(chart["Properties"]["Values"])["scrapeConfigs"]["vllm"]["scrape_interval"])
    spec = each_env.one("ScaledObject", "vllm")["spec"]
    (queue,) = [t for t in spec["triggers"] if t["name"] == "queue-depth"]
    cache = spec["pollingInterval"] if queue.get("useCachedMetrics", False) else 0
    stabilization = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"][
        "stabilizationWindowSeconds"
    ]
    rows = {"scrape interval": scrape, "KEDA metric cache": cache, "scale-up stabilization": stabilization}
    assert rows == {"scrape interval": 5, "KEDA metric cache": 0, "scale-up stabilization": 0}
    assert "[" not in queue["metadata"]["query"], "the queue query must be an instant gauge, no rate window"
    assert scrape + cache + 15 + stabilization + 1 == 21 <= 30


def test_startup_probe_allows_twice_the_in_container_cold_start(each_env: Synthesized) -> None:
    """README, Cold-start budget: the startup probe allows twice the in-container part (weights 30 s +
    engine 90 s), 240 s."""
    (container,) = each_env.one("Deployment", "vllm")["spec"]["template"]["spec"]["containers"]
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * (30 + 90)


def test_prometheus_scrapes_every_5_s_keeps_7_days_on_a_50_gib_encrypted_volume(each_env: Synthesized) -> None:
    """README, Signal path: every 5 s, honor_labels on DCGM, a 50 GiB volume on the encrypted StorageClass, a
    PDB and restricted security contexts; local retention 7 days (the config reference)."""
    (chart,) = [
        r
        for r in resources_of(each_env.stack_json("observability"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "prometheus"
    ]
    values = helm_values(chart["Properties"]["Values"])
    jobs = {name: job for name, job in values["scrapeConfigs"].items() if job.get("enabled", True)}
    assert {name: job["scrape_interval"] for name, job in jobs.items()} == dict.fromkeys(
        ("vllm", "dcgm-exporter", "litellm", "kube-state-metrics"), "5s"
    )
    assert jobs["dcgm-exporter"]["honor_labels"] is True
    server = values["server"]
    assert server["retention"] == "7d"
    assert server["persistentVolume"] == {"enabled": True, "size": "50Gi", "storageClass": "gp3-encrypted"}
    assert server["podDisruptionBudget"]["enabled"] is True
    assert server["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert server["containerSecurityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_router_settings_and_no_cooldown_for_the_single_vllm_deployment(each_env: Synthesized) -> None:
    """README, Configuration and No lock-out: simple-shuffle, 2 retries, allowed_fails 0, 30 s cooldown;
    the vLLM Service, a group of one, gets model_info.cooldown_time 0; Redis shares router state."""
    config: dict[str, Any] = yaml.safe_load(each_env.one("ConfigMap", "litellm")["data"]["config.yaml"])
    router = config["router_settings"]
    assert router["routing_strategy"] == "simple-shuffle"
    assert router["num_retries"] == 2
    assert router["allowed_fails"] == 0
    assert router["cooldown_time"] == 30
    assert {"redis_host", "redis_port", "redis_password"} <= set(router)
    (deployment,) = config["model_list"]
    assert deployment["litellm_params"]["api_base"] == "http://vllm.inference.svc.cluster.local:8000/v1"
    assert deployment["model_info"]["cooldown_time"] == 0


def test_gateway_keeps_two_zone_spread_replicas_and_scales_on_20_requests_per_second(each_env: Synthesized) -> None:
    """README, Proxy and Autoscaling: zone spread, a PDB (minAvailable 1), two replicas at least, request rate
    20 req/s per replica and CPU 70%; the ALB routes to pod IPs and health-checks readiness."""
    deployment = each_env.one("Deployment", "litellm")["spec"]
    (spread,) = deployment["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"]["matchLabels"] == deployment["selector"]["matchLabels"]
    pdb = each_env.one("PodDisruptionBudget", "litellm")["spec"]
    assert pdb["minAvailable"] == 1
    assert pdb["selector"]["matchLabels"] == deployment["selector"]["matchLabels"]
    scaled = each_env.one("ScaledObject", "litellm")["spec"]
    assert scaled["minReplicaCount"] == 2
    triggers = {t["name"]: t for t in scaled["triggers"]}
    assert triggers["request-rate"]["metricType"] == "AverageValue"
    assert triggers["request-rate"]["metadata"]["threshold"] == "20"
    assert triggers["cpu"]["metadata"]["value"] == "70"
    annotations = each_env.one("Ingress", "litellm")["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/health/readiness"


def test_every_chart_resource_of_every_stack_stays_under_120_kb(each_env: Synthesized) -> None:
    """README, Manifests: one custom resource per chart, each well under the 120 KB budget (all five stacks,
    the gateway's charts included)."""
    sizes = {
        f"{stack}/{logical_id}": len(json.dumps(r["Properties"]))
        for stack in STACKS
        for kind in ("Custom::AWSCDK-EKS-KubernetesResource", "Custom::AWSCDK-EKS-HelmChart")
        for logical_id, r in resources_of(each_env.stack_json(stack), kind).items()
    }
    assert any(name.startswith("gateway/") for name in sizes)
    largest = max(sizes, key=lambda k: sizes[k])
    assert sizes[largest] < MAX_CHART_BYTES, (largest, sizes[largest])


def test_retention_backups_and_what_each_environment_keeps(dev: Synthesized, prod: Synthesized) -> None:
    """README, Deploy and Teardown: one-year log retention in prod; every environment retains the two S3
    buckets; dev deletes Aurora, Valkey and the generated secrets; prod keeps a final Aurora snapshot, retains
    the secrets and log groups and has termination protection; Aurora keeps its own backups."""
    for synth, env in ((dev, "dev"), (prod, "prod")):
        templates = _templates(synth)
        groups = [
            g
            for g in resources_of(templates["foundation"], "AWS::Logs::LogGroup").values()
            if "/Kubectl" not in _path(g)
        ]
        assert len(groups) == 2  # flow logs and control plane
        for group in groups:
            assert group["Properties"]["RetentionInDays"] == (365 if env == "prod" else 90)
            assert group["DeletionPolicy"] == ("Retain" if env == "prod" else "Delete")
        data = templates["data"]
        for bucket in resources_of(data, "AWS::S3::Bucket").values():
            assert bucket["DeletionPolicy"] == "Retain"
        (database,) = resources_of(data, "AWS::RDS::DBCluster").values()
        assert database["DeletionPolicy"] == ("Snapshot" if env == "prod" else "Delete")
        assert database["Properties"]["BackupRetentionPeriod"] >= 1
        (cache,) = resources_of(data, "AWS::ElastiCache::ServerlessCache").values()
        assert cache.get("DeletionPolicy", "Delete") == "Delete"
        secrets = resources_of(data, "AWS::SecretsManager::Secret").values()
        assert len(secrets) == 3  # master key, salt key, cache password (RDS keeps its own)
        for secret in secrets:
            assert secret["DeletionPolicy"] == ("Retain" if env == "prod" else "Delete")
        stacks = {
            name: artifact["properties"].get("terminationProtection", False)
            for name, artifact in synth.cloud_assembly_manifest()["artifacts"].items()
            if artifact["type"] == "aws:cloudformation:stack"
        }
        assert len(stacks) == 5
        assert set(stacks.values()) == {env == "prod"}


def test_prod_retains_only_what_the_teardown_section_names(prod: Synthesized) -> None:
    """README, Teardown: prod retains its KMS keys, log groups and AMP workspace (delete them by hand), keeps a
    final Aurora snapshot and the generated secrets; every environment retains the two S3 buckets."""
    kept = sorted(
        (resource["Type"], resource["DeletionPolicy"])
        for stack in STACKS
        for resource in prod.stack_json(stack)["Resources"].values()
        if resource.get("DeletionPolicy", "Delete") != "Delete"
    )
    assert kept == sorted(
        [("AWS::KMS::Key", "Retain")] * 6  # secrets, node volumes, logs, data; the alarm topic's; the AMP workspace's
        + [("AWS::APS::Workspace", "Retain")]
        # flow logs and control plane; the kubectl provider's two go with the cluster, deleted everywhere
        + [("AWS::Logs::LogGroup", "Retain")] * 2
        + [("AWS::S3::Bucket", "Retain")] * 2
        + [("AWS::SecretsManager::Secret", "Retain")] * 3
        + [("AWS::RDS::DBCluster", "Snapshot")]
    )


def test_no_secret_rotates_on_a_schedule_so_the_salt_key_never_changes(each_env: Synthesized) -> None:
    """README, Secrets into pods: LITELLM_SALT_KEY is its own generated secret, never rotated (stored values
    would become unreadable); only RDS rotates the database password it manages."""
    data = each_env.stack_json("data")
    assert resources_of(data, "AWS::SecretsManager::RotationSchedule") == {}
    (salt,) = [s for s in resources_of(data, "AWS::SecretsManager::Secret").values() if "/SaltKey/" in _path(s)]
    assert "GenerateSecretString" in salt["Properties"]
    (database,) = resources_of(data, "AWS::RDS::DBCluster").values()
    assert database["Properties"]["ManageMasterUserPassword"] is True


def test_subnet_tags_for_load_balancers_and_node_classes(each_env: Synthesized) -> None:
    """README, Network and Node pools: subnets carry the kubernetes.io/role/(internal-)elb tags Auto Mode's load
    balancers look for (internal-elb on the private subnets, elb on the public ones, one of each per zone), and
    NodeClasses select the private subnets by tag, which only the private subnets carry."""
    prefix = f"genai-{each_env.config.env_name}"
    subnets = resources_of(each_env.stack_json("foundation"), "AWS::EC2::Subnet").values()
    kinds: dict[str, list[str]] = {"Private": [], "Public": []}
    node_subnets: dict[str, int] = {"Private": 0, "Public": 0}
    for subnet in subnets:
        tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
        kind = tags["aws-cdk:subnet-type"]
        kinds[kind].extend(k for k in tags if k.startswith("kubernetes.io/role/"))
        node_subnets[kind] += tags.get("platform.genai/node-subnets") == prefix
    zones = each_env.config.vpc.max_azs
    assert kinds == {
        "Private": ["kubernetes.io/role/internal-elb"] * zones,
        "Public": ["kubernetes.io/role/elb"] * zones,
    }
    assert node_subnets == {"Private": zones, "Public": 0}
    for node_class in each_env.find("NodeClass"):
        assert node_class["spec"]["subnetSelectorTerms"] == [{"tags": {"platform.genai/node-subnets": prefix}}]
