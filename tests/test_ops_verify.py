"""`genai-ops verify` against a whole fake environment: EC2, KMS, CloudFormation and Secrets Manager in moto, EKS
through botocore's Stubber (moto has no Pod Identity associations and no Auto Mode fields), the cluster as a local
fake API server the real `kubernetes` client talks to, and Prometheus and LiteLLM as local stubs reached through that
server's service proxy. Every check passes on the healthy environment and fails, showing its evidence, when one
thing in it is broken."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import typer
from botocore.stub import Stubber
from moto import mock_aws

from ops.checks import CheckResult
from ops.cli import run
from ops.target import AwsClients, expected_pod_identities, load_platform_config
from ops.verify import open_target, run_checks, verify
from tests.conftest import PROJECT_CDK_JSON, Synthesized, resources_of
from tests.fake_kube_api import FakeKubeApi
from tests.stub_http import StubHttp, StubRequest
from tests.tls_identity import TlsIdentity, cluster_identity

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "genai-ops"
REGION = "us-west-2"
# cdk.json: name "genai", env dev -> every stack and the cluster are genai-dev (README, Configuration).
CLUSTER = "genai-dev"
MASTER_KEY = "test-master-key-0123456789"
ALB_HOSTNAME = "internal-k8s-gateway-litellm-0123456789.us-west-2.elb.amazonaws.com"
GATEWAY_ADDRESS_COMMAND = (
    "kubectl -n gateway get ingress litellm -o jsonpath='{.status.loadBalancer.ingress[0].hostname}'"
)
# The associations the dev stacks create (README, "Add-ons and identity", Gateway tier): vLLM, KEDA's operator,
# the CloudWatch agent, LiteLLM and External Secrets.
DEV_ASSOCIATIONS = [
    ("inference", "vllm"),
    ("keda", "keda-operator"),
    ("amazon-cloudwatch", "cloudwatch-agent"),
    ("gateway", "litellm"),
    ("external-secrets", "external-secrets"),
]
# What the EKS Pod Identity webhook puts in a container (EKS User Guide, pod-id-how-it-works).
CREDENTIALS_URI = "http://169.254.170.23/v1/credentials"

CLUSTER_CHECK = "cluster ACTIVE with Auto Mode"
SECRETS_CHECK = "Secrets encrypted with the platform key"
NODES_CHECK = "nodes of each pool"
IMDS_CHECK = "IMDSv2 required, hop limit 1"
VOLUMES_CHECK = "node volumes encrypted with the platform key"
NETPOL_CHECK = "network policy enforcement on"
ASSOCIATIONS_CHECK = "Pod Identity associations"
CREDENTIALS_CHECK = "a pod holding Pod Identity credentials"
PDB_CHECK = "PDBs satisfiable"
SCALED_CHECK = "ScaledObjects Ready"
VLLM_SERIES_CHECK = "Prometheus receiving vLLM series"
DCGM_SERIES_CHECK = "Prometheus receiving DCGM series"
LITELLM_CHECK = "LiteLLM ready"
COMPLETION_CHECK = "a real completion through the gateway"


# --- Kubernetes objects, as `kubectl get -o json` shows them ---------------------------------------------------------
def node(
    name: str, pool: str, instance_id: str, *, ready: bool = True, instance_type: str = "g6.xlarge"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "karpenter.sh/nodepool": pool,
                "karpenter.sh/capacity-type": "on-demand",
                "node.kubernetes.io/instance-type": instance_type,
            },
        },
        "spec": {"providerID": f"aws:///{REGION}a/{instance_id}"},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady"}]},
    }


def vllm_pod(name: str = "vllm-6d5f8b7c9-abcde", *, credentials: bool = True) -> dict[str, Any]:
    env = [{"name": "AWS_REGION", "value": REGION}]
    if credentials:
        env += [
            {"name": "AWS_CONTAINER_CREDENTIALS_FULL_URI", "value": CREDENTIALS_URI},
            {
                "name": "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                "value": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            },
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "inference",
            "labels": {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/component": "inference-server"},
        },
        "spec": {
            "serviceAccountName": "vllm",
            "containers": [{"name": "vllm", "image": "vllm/vllm-openai", "env": env}],
        },
        "status": {"phase": "Running"},
    }


def pdb(namespace: str, name: str, *, expected: int, healthy: int, desired: int) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": desired, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}},
        "status": {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": max(healthy - desired, 0),
            "expectedPods": expected,
            "observedGeneration": 1,
        },
    }


def scaled_object(namespace: str, name: str, *, ready: str = "True", fallback: str = "False") -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scaleTargetRef": {"name": name}},
        "status": {
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "ScaledObjectReady", "message": "ready for scaling"},
                {"type": "Active", "status": "True", "reason": "ScalerActive"},
                {"type": "Fallback", "status": fallback, "reason": "NoFallbackFound", "message": "trigger failing"},
            ]
        },
    }


def service(namespace: str, name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": port, "protocol": "TCP"}]},
    }


def gateway_ingress(hostname: str = ALB_HOSTNAME) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "litellm", "namespace": "gateway"},
        "spec": {"ingressClassName": "alb-gateway"},
        "status": {"loadBalancer": {"ingress": [{"hostname": hostname}]}},
    }


def vpc_cni(value: str = "true") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "amazon-vpc-cni", "namespace": "kube-system"},
        "data": {"enable-network-policy-controller": value},
    }


def prometheus_vector(series: list[dict[str, str]]) -> dict[str, Any]:
    """Prometheus HTTP API, instant query: {"status": "success", "data": {"resultType": "vector", ...}}."""
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [1767225600.0, "0"]} for m in series]},
    }


# --- the environment ---------------------------------------------------------------------------------------------
@dataclass
class World:
    """A healthy dev environment; tests break one part of it, then `check()` runs verify's checks."""

    tmp: Path
    node_key: str
    secrets_key: str
    other_key: str
    gpu_instance: str
    general_instance: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    cluster: dict[str, Any] = field(default_factory=dict)
    associations: list[tuple[str, str]] = field(default_factory=lambda: list(DEV_ASSOCIATIONS))
    vllm_series: list[dict[str, str]] = field(default_factory=list)
    dcgm_series: list[dict[str, str]] = field(default_factory=list)
    readiness: tuple[int, Any] = (200, {"status": "healthy", "db": "connected"})
    completion: Callable[[StubRequest], tuple[int, Any]] | None = None
    kube_requests: list[Any] = field(default_factory=list)
    gateway_requests: list[StubRequest] = field(default_factory=list)

    def replace(self, kind: str, name: str, obj: dict[str, Any]) -> None:
        self.objects = [o for o in self.objects if not (o["kind"] == kind and o["metadata"]["name"] == name)] + [obj]

    def aws(
        self,
        endpoint: str,
        *,
        cluster_error: str | None = None,
        attempts: int = 1,
        later_clusters: Sequence[Mapping[str, Any]] = (),
    ) -> AwsClients:
        """EKS answers in the order verify asks (a Stubber checks the order): DescribeCluster when connecting, then
        per attempt ListPodIdentityAssociations, and DescribeCluster again before each further attempt (answered with
        `later_clusters` in turn, then `self.cluster`)."""
        eks = boto3.client("eks", region_name=REGION)
        stubber = Stubber(eks)
        later = list(later_clusters)
        for attempt in range(attempts):
            description = later.pop(0) if attempt and later else self.cluster
            if cluster_error:
                stubber.add_client_error("describe_cluster", cluster_error, "No cluster found", 404, {"name": CLUSTER})
            else:
                stubber.add_response(
                    "describe_cluster", {"cluster": {**description, "endpoint": endpoint}}, {"name": CLUSTER}
                )
            stubber.add_response(
                "list_pod_identity_associations",
                {
                    "associations": [
                        {
                            "clusterName": CLUSTER,
                            "namespace": n,
                            "serviceAccount": s,
                            "associationArn": f"arn:aws:eks:{REGION}:123456789012:podidentityassociation/"
                            f"{CLUSTER}/a-{i}",
                            "associationId": f"a-{i}",
                        }
                        for i, (n, s) in enumerate(self.associations)
                    ]
                },
                {"clusterName": CLUSTER},
            )
        stubber.activate()
        return AwsClients(
            region=REGION,
            eks=eks,
            ec2=boto3.client("ec2", region_name=REGION),
            kms=boto3.client("kms", region_name=REGION),
            secretsmanager=boto3.client("secretsmanager", region_name=REGION),
            cloudformation=boto3.client("cloudformation", region_name=REGION),
        )

    def _prometheus(self, request: StubRequest) -> tuple[int, Any]:
        query = request.query["query"]
        if "vllm:num_requests_waiting" in query:
            return 200, prometheus_vector(self.vllm_series)
        if "DCGM_FI_DEV_GPU_UTIL" in query:
            return 200, prometheus_vector(self.dcgm_series)
        return 200, prometheus_vector([])

    def _completion(self, request: StubRequest) -> tuple[int, Any]:
        if self.completion:
            return self.completion(request)
        if request.headers.get("x-litellm-api-key") != f"Bearer sk-{MASTER_KEY}":
            return 401, {"error": {"message": "Authentication Error", "code": "401"}}
        body = request.json()
        return 200, {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        }

    @contextmanager
    def serving(self, tls: TlsIdentity | None = None) -> Iterator[tuple[FakeKubeApi, StubHttp]]:
        """The cluster's API server with Prometheus and LiteLLM stubs behind its service proxy: (API, LiteLLM); over
        HTTPS with `tls`'s server certificate."""
        routes_prometheus = {("GET", "/api/v1/query"): self._prometheus}
        routes_gateway = {
            ("GET", "/health/readiness"): lambda r: self.readiness,
            ("POST", "/v1/chat/completions"): self._completion,
        }
        with (
            StubHttp(routes_prometheus) as prometheus,
            StubHttp(routes_gateway) as gateway,
            FakeKubeApi(self.objects, tls=(tls.cert_file, tls.key_file) if tls else None) as fake,
        ):
            fake.serve("keda.sh/v1alpha1", "ScaledObject")
            fake.proxy_service("observability", "prometheus-server", prometheus.url)
            fake.proxy_service("gateway", "litellm", gateway.url)
            yield fake, gateway
            self.kube_requests = list(fake.requests)
            self.gateway_requests = list(gateway.requests)

    def check(self, *, direct_gateway: bool = False, **options: Any) -> dict[str, CheckResult]:
        with self.serving() as (fake, gateway):
            config = load_platform_config("dev", [], PROJECT_CDK_JSON)
            target = open_target(
                config,
                self.aws(fake.url),
                kubeconfig=fake.write_kubeconfig(self.tmp / "kubeconfig"),
                kube_context=None,
                prometheus_url=None,
                gateway_url=gateway.url if direct_gateway else None,
                timeout=5,
                **options,
            )
            results = run_checks(target)
        assert [r.name for r in results] == [
            CLUSTER_CHECK,
            SECRETS_CHECK,
            NODES_CHECK,
            IMDS_CHECK,
            VOLUMES_CHECK,
            NETPOL_CHECK,
            ASSOCIATIONS_CHECK,
            CREDENTIALS_CHECK,
            PDB_CHECK,
            SCALED_CHECK,
            VLLM_SERIES_CHECK,
            DCGM_SERIES_CHECK,
            LITELLM_CHECK,
            COMPLETION_CHECK,
        ]
        return {r.name: r for r in results}


def _key(kms: Any, alias: str | None) -> str:
    key = kms.create_key(Description=alias or "another key")["KeyMetadata"]
    if alias:
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    arn: str = key["Arn"]
    return arn


def _instance(ec2: Any, *, key: str, metadata: dict[str, Any], instance_type: str) -> str:
    reservation = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        MetadataOptions=metadata,
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 20, "Encrypted": True, "KmsKeyId": key}}
        ],
    )
    instance_id: str = reservation["Instances"][0]["InstanceId"]
    return instance_id


IMDS_V2_HOP_1 = {"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"}


@contextmanager
def fake_aws_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's account, with credentials that can reach nothing real."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        # moto loads hundreds of public AMIs into every new EC2 backend (a second per test); instances here need none.
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    with fake_aws_account(monkeypatch):
        yield build_world(tmp_path)


def build_world(tmp_path: Path) -> World:
    """The healthy dev environment, inside a `fake_aws_account`."""
    kms = boto3.client("kms", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    node_key = _key(kms, "alias/genai-dev/node-volumes")
    secrets_key = _key(kms, "alias/genai-dev/secrets")
    other_key = _key(kms, None)
    gpu = _instance(ec2, key=node_key, metadata=IMDS_V2_HOP_1, instance_type="g6.xlarge")
    # The data volume Auto Mode attaches beside the root volume, on the same key (EKS User Guide, create-node-class).
    zone = ec2.describe_instances(InstanceIds=[gpu])["Reservations"][0]["Instances"][0]["Placement"]["AvailabilityZone"]
    data = ec2.create_volume(AvailabilityZone=zone, Size=200, Encrypted=True, KmsKeyId=node_key)
    ec2.attach_volume(VolumeId=data["VolumeId"], InstanceId=gpu, Device="/dev/xvdb")
    # A built-in pool's node: Auto Mode's default NodeClass encrypts with a key that is not the platform's.
    general = _instance(ec2, key=other_key, metadata=IMDS_V2_HOP_1, instance_type="m6i.large")

    secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="genai-dev/gateway/master-key", SecretString=json.dumps({"key": MASTER_KEY})
    )
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    # The two outputs the toolkit reads (stacks/data.py, stacks/gateway.py), on stacks moto can create.
    for stack, output, value in [
        ("genai-dev-data", "GatewayMasterKeySecret", secret["ARN"]),
        ("genai-dev-gateway", "GatewayAddressCommand", GATEWAY_ADDRESS_COMMAND),
    ]:
        template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {output: {"Value": value}}}
        cloudformation.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    world = World(tmp_path, node_key, secrets_key, other_key, gpu, general)
    world.cluster = {
        "name": CLUSTER,
        "arn": f"arn:aws:eks:{REGION}:123456789012:cluster/{CLUSTER}",
        "version": "1.35",
        "status": "ACTIVE",
        "computeConfig": {"enabled": True, "nodePools": ["system", "general-purpose"]},
        "storageConfig": {"blockStorage": {"enabled": True}},
        "kubernetesNetworkConfig": {"elasticLoadBalancing": {"enabled": True}, "ipFamily": "ipv4"},
        "encryptionConfig": [{"resources": ["secrets"], "provider": {"keyArn": secrets_key}}],
    }
    world.objects = [
        node("i-gpu-node", "gpu", gpu),
        node("i-general-node", "general-purpose", general, instance_type="m6i.large"),
        vllm_pod(),
        vpc_cni(),
        pdb("inference", "vllm", expected=1, healthy=1, desired=1),
        pdb("gateway", "litellm", expected=2, healthy=2, desired=1),
        scaled_object("inference", "vllm"),
        scaled_object("gateway", "litellm"),
        service("observability", "prometheus-server", 80),
        service("gateway", "litellm", 80),
        gateway_ingress(),
    ]
    world.vllm_series = [{"__name__": "vllm:num_requests_waiting", "job": "vllm", "pod": "vllm-6d5f8b7c9-abcde"}]
    world.dcgm_series = [{"__name__": "DCGM_FI_DEV_GPU_UTIL", "job": "dcgm-exporter", "Hostname": "i-gpu-node"}]
    return world


# --- the healthy environment -------------------------------------------------------------------------------------
def test_every_check_passes_on_a_healthy_environment_and_nothing_is_written(world: World) -> None:
    results = world.check()
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(results, "pass"), results
    assert "computeConfig.enabled True" in results[CLUSTER_CHECK].evidence
    assert world.secrets_key in results[SECRETS_CHECK].evidence
    assert "gpu: 1 of 1 Ready (g6.xlarge on-demand)" in results[NODES_CHECK].evidence
    assert f"2 instances with HttpTokens required and hop limit 1: {world.gpu_instance}" in results[IMDS_CHECK].evidence
    volumes = results[VOLUMES_CHECK].evidence
    assert (
        f"2 volumes of 1 instances (pools gpu) encrypted with alias/genai-dev/node-volumes ({world.node_key})"
        in volumes
    )
    assert "general-purpose not covered" in volumes
    assert "'true'" in results[NETPOL_CHECK].evidence
    assert "5 of 5" in results[ASSOCIATIONS_CHECK].evidence
    assert CREDENTIALS_URI in results[CREDENTIALS_CHECK].evidence
    assert "inference/vllm: 1 of 1 healthy (needs 1), 0 disruptions allowed" in results[PDB_CHECK].evidence
    assert "gateway/litellm: Ready True" in results[SCALED_CHECK].evidence
    assert "vllm-6d5f8b7c9-abcde" in results[VLLM_SERIES_CHECK].evidence
    assert "service proxy observability/prometheus-server:80" in results[VLLM_SERIES_CHECK].evidence
    assert "i-gpu-node" in results[DCGM_SERIES_CHECK].evidence
    assert "llama-3.1-8b-instruct answered 'Hello!'" in results[COMPLETION_CHECK].evidence
    assert [r for r in world.kube_requests if r.method != "GET" and "/proxy/" not in r.path] == []


def test_the_key_reaches_litellm_in_its_own_header_through_the_service_proxy(world: World) -> None:
    """The API server drops `Authorization` after authenticating (the fake does the same), so the key travels in
    `x-litellm-api-key`; the cluster token never reaches the gateway."""
    world.check()
    (posted,) = [r for r in world.gateway_requests if r.method == "POST"]
    assert posted.path == "/v1/chat/completions"
    assert posted.headers["x-litellm-api-key"] == f"Bearer sk-{MASTER_KEY}"
    assert "authorization" not in posted.headers
    assert posted.json()["model"] == "llama-3.1-8b-instruct"  # cdk.json dev: inference.vllm.served_model_name


def test_a_gateway_url_is_used_directly(world: World) -> None:
    results = world.check(direct_gateway=True)
    assert results[COMPLETION_CHECK].status == "pass"
    assert "via http://127.0.0.1:" in results[COMPLETION_CHECK].evidence
    assert not [r for r in world.kube_requests if "/services/litellm" in r.path]


# --- one broken thing at a time ----------------------------------------------------------------------------------
def test_a_cluster_without_auto_mode_or_not_active_fails(world: World) -> None:
    world.cluster["computeConfig"] = {"enabled": False}
    result = world.check()[CLUSTER_CHECK]
    assert result.status == "fail"
    assert "computeConfig.enabled False" in result.evidence
    world.cluster["computeConfig"] = {"enabled": True}
    world.cluster["status"] = "UPDATING"
    result = world.check()[CLUSTER_CHECK]
    assert (result.status, "status UPDATING" in result.evidence) == ("fail", True)


def test_secrets_encrypted_with_another_key_fail(world: World) -> None:
    world.cluster["encryptionConfig"] = [{"resources": ["secrets"], "provider": {"keyArn": world.other_key}}]
    result = world.check()[SECRETS_CHECK]
    assert result.status == "fail"
    assert world.other_key in result.evidence
    assert world.secrets_key in result.evidence
    world.cluster["encryptionConfig"] = []
    assert "no entry for secrets" in world.check()[SECRETS_CHECK].evidence


def test_no_ready_gpu_node_fails(world: World) -> None:
    world.replace("Node", "i-gpu-node", node("i-gpu-node", "gpu", world.gpu_instance, ready=False))
    result = world.check()[NODES_CHECK]
    assert result.status == "fail"
    assert "no Ready node in the gpu pool" in result.evidence
    assert "not Ready: i-gpu-node" in result.evidence


def test_an_instance_with_imdsv1_or_two_hops_fails(world: World) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    loose = _instance(
        ec2,
        key=world.node_key,
        metadata={"HttpTokens": "optional", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"},
        instance_type="g6.xlarge",
    )
    # IMDSv2 but two hops: a container could reach the node's role credentials (FACTS.md: Auto Mode holds it at 1).
    two_hops = _instance(
        ec2,
        key=world.node_key,
        metadata={"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"},
        instance_type="g6.xlarge",
    )
    world.objects += [node("i-loose-node", "gpu", loose), node("i-two-hops", "gpu", two_hops)]
    result = world.check()[IMDS_CHECK]
    assert result.status == "fail"
    assert f"{loose} (i-loose-node, pool gpu): HttpTokens optional, hop limit 2" in result.evidence
    assert f"{two_hops} (i-two-hops, pool gpu): HttpTokens required, hop limit 2" in result.evidence
    assert world.gpu_instance not in result.evidence


def test_a_node_volume_on_another_key_fails(world: World) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    zone = ec2.describe_instances(InstanceIds=[world.gpu_instance])["Reservations"][0]["Instances"][0]["Placement"]
    stray = ec2.create_volume(
        AvailabilityZone=zone["AvailabilityZone"], Size=50, Encrypted=True, KmsKeyId=world.other_key
    )
    ec2.attach_volume(VolumeId=stray["VolumeId"], InstanceId=world.gpu_instance, Device="/dev/xvdc")
    result = world.check()[VOLUMES_CHECK]
    assert result.status == "fail"
    assert (
        f"{stray['VolumeId']} on {world.gpu_instance} (pool gpu) is encrypted with {world.other_key}" in result.evidence
    )
    assert f"expected alias/genai-dev/node-volumes = {world.node_key}" in result.evidence


def test_network_policy_switch_off_or_missing_fails(world: World) -> None:
    world.replace("ConfigMap", "amazon-vpc-cni", vpc_cni("false"))
    result = world.check()[NETPOL_CHECK]
    assert (result.status, "enable-network-policy-controller: 'false'" in result.evidence) == ("fail", True)
    world.objects = [o for o in world.objects if o["kind"] != "ConfigMap"]
    result = world.check()[NETPOL_CHECK]
    assert (result.status, "is missing" in result.evidence) == ("fail", True)


def test_a_missing_pod_identity_association_fails(world: World) -> None:
    world.associations = [a for a in DEV_ASSOCIATIONS if a != ("gateway", "litellm")]
    result = world.check()[ASSOCIATIONS_CHECK]
    assert result.status == "fail"
    assert result.evidence.startswith("missing: gateway/litellm;")


def test_a_vllm_pod_without_pod_identity_credentials_fails(world: World) -> None:
    world.replace("Pod", "vllm-6d5f8b7c9-abcde", vllm_pod(credentials=False))
    result = world.check()[CREDENTIALS_CHECK]
    assert result.status == "fail"
    assert "no AWS_CONTAINER_CREDENTIALS_FULL_URI in vllm-6d5f8b7c9-abcde" in result.evidence


def test_an_unsatisfied_or_empty_pdb_fails(world: World) -> None:
    world.replace("PodDisruptionBudget", "litellm", pdb("gateway", "litellm", expected=2, healthy=0, desired=1))
    result = world.check()[PDB_CHECK]
    assert result.status == "fail"
    assert "gateway/litellm: 0 of 2 healthy (needs 1), 0 disruptions allowed: not satisfied" in result.evidence
    world.replace("PodDisruptionBudget", "litellm", pdb("gateway", "litellm", expected=0, healthy=0, desired=0))
    assert "selects no pod" in world.check()[PDB_CHECK].evidence
    world.objects = [o for o in world.objects if o["kind"] != "PodDisruptionBudget" or o["metadata"]["name"] != "vllm"]
    assert "inference/vllm missing" in world.check()[PDB_CHECK].evidence


def test_a_scaled_object_not_ready_or_in_fallback_fails(world: World) -> None:
    world.replace("ScaledObject", "vllm", scaled_object("inference", "vllm", ready="False"))
    result = world.check()[SCALED_CHECK]
    assert (result.status, "inference/vllm: Ready False" in result.evidence) == ("fail", True)
    world.replace("ScaledObject", "vllm", scaled_object("inference", "vllm", fallback="True"))
    result = world.check()[SCALED_CHECK]
    assert (result.status, "Fallback True: a trigger's query fails" in result.evidence) == ("fail", True)


def test_no_series_in_prometheus_fails(world: World) -> None:
    world.dcgm_series = []
    results = world.check()
    assert results[VLLM_SERIES_CHECK].status == "pass"
    assert results[DCGM_SERIES_CHECK].status == "fail"
    assert 'no DCGM_FI_DEV_GPU_UTIL{job="dcgm-exporter"} series' in results[DCGM_SERIES_CHECK].evidence


def test_prometheus_without_a_ready_endpoint_fails_with_the_api_servers_answer(world: World) -> None:
    world.objects = [o for o in world.objects if o["metadata"]["name"] != "prometheus-server"]
    result = world.check()[VLLM_SERIES_CHECK]
    assert result.status == "fail"
    assert "HTTP 404" in result.evidence
    assert 'services \\"prometheus-server\\" not found' in result.evidence


def test_litellm_not_ready_fails(world: World) -> None:
    world.readiness = (503, {"status": "healthy", "db": "disconnected"})
    result = world.check()[LITELLM_CHECK]
    assert result.status == "fail"
    assert 'HTTP 503 {"status": "healthy", "db": "disconnected"}' in result.evidence


def test_a_refused_completion_fails_without_showing_the_key(world: World) -> None:
    # A server that echoes the key it got: the evidence must still not show it.
    world.completion = lambda request: (401, {"error": {"message": f"bad key {request.headers['x-litellm-api-key']}"}})
    result = world.check()[COMPLETION_CHECK]
    assert result.status == "fail"
    assert "HTTP 401" in result.evidence
    assert MASTER_KEY not in result.evidence
    assert "sk-***" in result.evidence


def test_no_completion_skips_the_only_request_that_is_not_a_read(world: World) -> None:
    results = world.check(completion=False)
    assert results[COMPLETION_CHECK].status == "skip"
    assert not [r for r in world.gateway_requests if r.method == "POST"]


# --- the command: output, exit codes, bad input ------------------------------------------------------------------
def _verify(kubeconfig: Path, *args: str) -> int:
    """`genai-ops verify` in this process (so the Stubber-backed clients can be handed to it), through the CLI's
    `run`, which turns failures into one line and an exit code."""
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(verify)
    base = ["--cdk-json", str(PROJECT_CDK_JSON), "--kubeconfig", str(kubeconfig)]
    return run(lambda: app([*base, *args], standalone_mode=True))


def _hand_clients(world: World, monkeypatch: pytest.MonkeyPatch, endpoint: str, **options: Any) -> None:
    monkeypatch.setattr("ops.verify.make_aws_clients", lambda region: world.aws(endpoint, **options))


def test_json_output_and_exit_code_follow_the_checks(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with StubHttp({("GET", "/api/v1/query"): world._prometheus}) as prometheus, FakeKubeApi(world.objects) as fake:
        fake.serve("keda.sh/v1alpha1", "ScaledObject")
        fake.proxy_service("gateway", "litellm", prometheus.url)  # a backend with no readiness route: LiteLLM fails
        _hand_clients(world, monkeypatch, fake.url)
        code = _verify(
            fake.write_kubeconfig(world.tmp / "kubeconfig"),
            "--json",
            "--prometheus-url",
            prometheus.url,
            "--no-completion",
        )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (report["command"], report["cluster"], report["ok"]) == ("verify", CLUSTER, False)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses[LITELLM_CHECK] == "fail"
    assert statuses[VLLM_SERIES_CHECK] == "pass"
    assert statuses[COMPLETION_CHECK] == "skip"


def test_the_table_names_every_check_and_a_clean_run_exits_zero(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        StubHttp({("GET", "/api/v1/query"): world._prometheus}) as prometheus,
        StubHttp({("GET", "/health/readiness"): lambda r: world.readiness}) as gateway,
        FakeKubeApi(world.objects) as fake,
    ):
        fake.serve("keda.sh/v1alpha1", "ScaledObject")
        _hand_clients(world, monkeypatch, fake.url)
        kubeconfig = fake.write_kubeconfig(world.tmp / "kubeconfig")
        code = _verify(kubeconfig, "--prometheus-url", prometheus.url, "--gateway-url", gateway.url, "--no-completion")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "genai-ops verify: genai-dev in us-west-2" in out
    assert "13 passed, 1 skipped" in out


def test_a_wrong_cluster_name_is_one_message(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeKubeApi() as fake:
        _hand_clients(world, monkeypatch, fake.url, cluster_error="ResourceNotFoundException")
        code = _verify(fake.write_kubeconfig(world.tmp / "kubeconfig"))
        assert fake.requests == []
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert err.startswith("error: --env dev: there is no EKS cluster named 'genai-dev' in us-west-2")
    assert "Traceback" not in err


def test_an_unreachable_cluster_is_one_message(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeKubeApi() as fake:
        kubeconfig = fake.write_kubeconfig(world.tmp / "kubeconfig")
        url = fake.url
    # The server has stopped: its port refuses connections.
    _hand_clients(world, monkeypatch, url)
    code = _verify(kubeconfig)
    err = " ".join(capsys.readouterr().err.split())  # rich wraps stderr at the terminal width
    assert code == 1
    assert err == (
        f"error: cannot reach the Kubernetes API at {url} (kubeconfig context 'fake'): Failed to establish a new "
        "connection: [Errno 111] Connection refused; a private endpoint is reachable only from inside the VPC"
    )


def test_a_kubeconfig_on_another_cluster_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _hand_clients(world, monkeypatch, "https://ABCDEF.gr7.us-west-2.eks.amazonaws.com")
    with FakeKubeApi() as fake:
        code = _verify(fake.write_kubeconfig(world.tmp / "kubeconfig", context="other-cluster"))
        assert fake.requests == []  # nothing was asked of the wrong cluster
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "the kubeconfig context 'other-cluster' points at http://127.0.0.1:" in err
    assert "aws eks update-kubeconfig --name genai-dev --region us-west-2" in err
    assert "pass --tunnel http://127.0.0.1:" in err


# --- a tunnel to a private endpoint (SSM port forwarding to the endpoint's host) ---------------------------------
# An EKS endpoint as DescribeCluster gives it (upper-case hex, EKS User Guide cluster-endpoint); the kubeconfig names
# its host in lower case, as DNS names compare.
ENDPOINT_HOST = "0123456789ABCDEF0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com"
ENDPOINT = f"https://{ENDPOINT_HOST}"
SERVER_NAME = ENDPOINT_HOST.lower()


@dataclass(frozen=True)
class Identities:
    cluster: TlsIdentity  # the cluster's CA, and its API server's certificate for the endpoint's host
    other: TlsIdentity  # another cluster's CA, with a certificate for the same host name


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> Identities:
    directory = tmp_path_factory.mktemp("tls")
    return Identities(
        cluster_identity(directory / "cluster", SERVER_NAME),
        cluster_identity(directory / "other", SERVER_NAME, ca_name="another-cluster"),
    )


def _fingerprint(pem: bytes) -> str:
    """As `openssl x509 -noout -fingerprint -sha256`, lower case without colons, first 16 digits."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return "sha256:" + x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA256()).hex()[:16]


def test_a_tunnel_to_the_endpoint_is_checked_with_the_clusters_ca_and_server_name(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], identities: Identities
) -> None:
    """The kubeconfig's server is the tunnel's local end; the real client verifies the API server's certificate
    against the cluster's CA for the endpoint's host (its tls-server-name), and every check runs through it."""
    world.cluster["certificateAuthority"] = {"data": identities.cluster.ca_data}
    _hand_clients(world, monkeypatch, ENDPOINT)
    with world.serving(tls=identities.cluster) as (fake, _):
        assert fake.url.startswith("https://127.0.0.1:")
        kubeconfig = fake.write_kubeconfig(
            world.tmp / "kubeconfig", context="tunnel", ca_data=identities.cluster.ca_data, tls_server_name=SERVER_NAME
        )
        code = _verify(kubeconfig, "--tunnel", fake.url + "/")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "14 passed" in captured.out
    assert world.kube_requests[0].path == "/version"
    assert [r for r in world.gateway_requests if r.method == "POST"]  # the completion went through the tunnel too


def test_a_tunnel_without_the_option_is_refused_and_the_message_names_the_option(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], identities: Identities
) -> None:
    world.cluster["certificateAuthority"] = {"data": identities.cluster.ca_data}
    _hand_clients(world, monkeypatch, ENDPOINT)
    with FakeKubeApi(tls=(identities.cluster.cert_file, identities.cluster.key_file)) as fake:
        kubeconfig = fake.write_kubeconfig(
            world.tmp / "kubeconfig", context="tunnel", ca_data=identities.cluster.ca_data, tls_server_name=SERVER_NAME
        )
        code = _verify(kubeconfig)
        assert fake.requests == []
        url = fake.url
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert err == (
        f"error: the kubeconfig context 'tunnel' points at {url}, not at the cluster genai-dev ({ENDPOINT}); run "
        "`aws eks update-kubeconfig --name genai-dev --region us-west-2` or pass --kube-context, or, when "
        f"{url} is a tunnel to that endpoint, pass --tunnel {url}"
    )


@pytest.mark.parametrize(
    ("kubeconfig_ca", "server_name", "insecure", "tunnel_is_the_server", "message"),
    [
        pytest.param(
            "other",
            SERVER_NAME,
            False,
            True,
            "trusts the certificate authority {other}; a tunnel is accepted only when the context trusts exactly the "
            "cluster genai-dev's CA, {cluster} (DescribeCluster certificateAuthority), as `aws eks update-kubeconfig "
            "--name genai-dev` writes it into certificate-authority-data",
            id="another cluster's CA",
        ),
        pytest.param(
            "both",
            SERVER_NAME,
            False,
            True,
            "trusts the certificate authorities {both}; a tunnel is accepted only when the context trusts exactly",
            id="the cluster's CA and another",
        ),
        pytest.param(
            None,
            SERVER_NAME,
            False,
            True,
            "names no certificate authority; a tunnel is accepted only when the context trusts exactly",
            id="no CA: the system trust store",
        ),
        pytest.param(
            "cluster",
            None,
            False,
            True,
            f"has no tls-server-name; a tunnel is accepted only with tls-server-name {SERVER_NAME}, the host of the "
            f"cluster genai-dev's endpoint (kubectl config set-cluster <its cluster> --tls-server-name {SERVER_NAME})",
            id="no tls-server-name",
        ),
        pytest.param(
            "cluster",
            "kubernetes",
            False,
            True,
            f"has tls-server-name 'kubernetes'; a tunnel is accepted only with tls-server-name {SERVER_NAME}",
            id="another tls-server-name",
        ),
        pytest.param(
            "cluster",
            SERVER_NAME,
            True,
            True,
            "sets insecure-skip-tls-verify, so nothing proves the tunnel reaches the cluster genai-dev",
            id="insecure-skip-tls-verify",
        ),
        pytest.param(
            "cluster",
            SERVER_NAME,
            False,
            False,
            f"points at {{url}}, neither that tunnel nor the cluster genai-dev's endpoint ({ENDPOINT})",
            id="the option names another server",
        ),
    ],
)
def test_a_tunnel_is_refused_unless_the_context_pins_the_clusters_ca_and_server_name(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    identities: Identities,
    kubeconfig_ca: str | None,
    server_name: str | None,
    insecure: bool,
    tunnel_is_the_server: bool,
    message: str,
) -> None:
    world.cluster["certificateAuthority"] = {"data": identities.cluster.ca_data}
    _hand_clients(world, monkeypatch, ENDPOINT)
    ca_pem = {
        "cluster": identities.cluster.ca_pem,
        "other": identities.other.ca_pem,
        "both": identities.cluster.ca_pem + identities.other.ca_pem,
    }
    with FakeKubeApi(tls=(identities.cluster.cert_file, identities.cluster.key_file)) as fake:
        url = fake.url
        tunnel = url if tunnel_is_the_server else "https://127.0.0.1:8443"
        kubeconfig = fake.write_kubeconfig(
            world.tmp / "kubeconfig",
            context="tunnel",
            ca_data=base64.b64encode(ca_pem[kubeconfig_ca]).decode() if kubeconfig_ca else None,
            tls_server_name=server_name,
            insecure=insecure,
        )
        code = _verify(kubeconfig, "--tunnel", tunnel)
        assert fake.requests == []  # refused before anything was sent
    err = " ".join(capsys.readouterr().err.split())
    cluster, other = _fingerprint(identities.cluster.ca_pem), _fingerprint(identities.other.ca_pem)
    expected = message.format(cluster=cluster, other=other, both=" and ".join(sorted([cluster, other])), url=url)
    assert code == 2
    assert err.startswith(f"error: --tunnel {tunnel}: the kubeconfig context 'tunnel' {expected}"), err


def test_a_tunnel_to_another_clusters_api_server_fails_the_tls_handshake(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], identities: Identities
) -> None:
    """The context pins the cluster's CA and server name, but the tunnel ends at an API server whose certificate
    another cluster's CA issued (for the same host name): the handshake fails, no request is sent, exit 1."""
    world.cluster["certificateAuthority"] = {"data": identities.cluster.ca_data}
    _hand_clients(world, monkeypatch, ENDPOINT)
    with FakeKubeApi(tls=(identities.other.cert_file, identities.other.key_file)) as fake:
        kubeconfig = fake.write_kubeconfig(
            world.tmp / "kubeconfig", context="tunnel", ca_data=identities.cluster.ca_data, tls_server_name=SERVER_NAME
        )
        code = _verify(kubeconfig, "--tunnel", fake.url)
        assert fake.requests == []
        url = fake.url
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert err.startswith(
        f"error: the Kubernetes API at {url} (kubeconfig context 'tunnel') failed TLS verification against the "
        "context's certificate authority: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get "
        "local issuer certificate"
    ), err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "staging"], "error: --env 'staging' is not an environment in"),
        (["-c", "vpc.max_azs=7"], "vpc.max_azs"),
        (["-c", "novalue"], "error: -c 'novalue': expected KEY=VALUE"),
        (["--gateway-url", "localhost:4000"], "error: --gateway-url 'localhost:4000' is not an http(s) URL"),
        (["--tunnel", "127.0.0.1:8443"], "error: --tunnel '127.0.0.1:8443' is not an https URL of a host and port"),
        (["--tunnel", "http://127.0.0.1:8443"], "error: --tunnel 'http://127.0.0.1:8443' is not an https URL"),
        (["--tunnel", "https://127.0.0.1:8443/k8s"], "error: --tunnel 'https://127.0.0.1:8443/k8s' is not an https"),
        # Just outside the bounds; the values just inside are accepted in test_wait_for_bounds_are_accepted below.
        (["--wait-for", "-1"], "error: --wait-for -1 is out of range: give 0 (check once) to 7200 seconds"),
        (["--wait-for", "7201"], "error: --wait-for 7201 is out of range: give 0 (check once) to 7200 seconds"),
        (["--poll-interval", "4"], "error: --poll-interval 4 is out of range: give 5 to 600 seconds"),
        (["--wait-for", "60", "--poll-interval", "601"], "error: --poll-interval 601 is out of range: give 5 to 600"),
    ],
)
def test_bad_input_is_one_message_and_exit_2(args: list[str], message: str) -> None:
    result = subprocess.run(
        [str(SCRIPT), "verify", "--cdk-json", str(PROJECT_CDK_JSON), "--region", REGION, *args],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# --- --wait-for: an environment still starting ------------------------------------------------------------------
VLLM_POD = "vllm-6d5f8b7c9-abcde"
# LiteLLM's answer while its only backend is down (the stub's wording; the check reads only the status).
NO_BACKEND = (503, {"error": {"message": "no healthy deployment for llama-3.1-8b-instruct", "code": "503"}})


@dataclass
class FakeTime:
    """verify's clock and sleep: time passes only while verify sleeps, and `on_sleep(n)` changes the environment
    during the n-th pause."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[int], None] = lambda pauses: None

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep(len(self.sleeps))

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr("ops.verify.sleep", fake.sleep)
    monkeypatch.setattr("ops.verify.clock", fake.clock)
    return fake


def _pending(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod while its node is launched and vLLM loads the model: not Running."""
    return {**pod, "status": {"phase": "Pending"}}


def _attempts(world: World) -> int:
    """How many times the checks ran: each attempt lists the nodes once (LiveChecks.nodes)."""
    return len([r for r in world.kube_requests if r.method == "GET" and r.path == "/api/v1/nodes"])


def _connections(world: World) -> int:
    """How many times verify connected to the cluster: each connection probes /version once (Kube.probe)."""
    return len([r for r in world.kube_requests if r.path == "/version"])


def test_wait_for_runs_the_checks_again_until_vllm_is_ready(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_time: FakeTime
) -> None:
    """Right after a deploy: vLLM's pod is Pending, Prometheus has no vLLM series and LiteLLM has no backend. The pod
    starts during the first pause, Prometheus scrapes it and the gateway answers during the second: the third attempt
    passes. One line on stderr per failed attempt; the table shows the last attempt."""
    series = world.vllm_series
    world.replace("Pod", VLLM_POD, _pending(vllm_pod()))
    world.vllm_series = []
    world.completion = lambda request: NO_BACKEND

    def starting(pauses: int) -> None:
        if pauses == 1:
            fake.add(vllm_pod())
        if pauses == 2:
            world.vllm_series, world.completion = series, None

    fake_time.on_sleep = starting
    with world.serving() as (fake, _):
        _hand_clients(world, monkeypatch, fake.url, attempts=3)
        code = _verify(fake.write_kubeconfig(world.tmp / "kubeconfig"), "--wait-for", "1800")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert fake_time.sleeps == [30, 30]  # --poll-interval's default
    assert captured.err.splitlines() == [
        "attempt 1 at 0 s, 3 failing: a pod holding Pod Identity credentials; Prometheus receiving vLLM series; "
        "a real completion through the gateway (next attempt in 30 s)",
        "attempt 2 at 30 s, 2 failing: Prometheus receiving vLLM series; a real completion through the gateway "
        "(next attempt in 30 s)",
    ]
    assert "genai-ops verify: genai-dev in us-west-2 (60 s)" in captured.out
    assert "14 passed" in captured.out
    assert (_attempts(world), _connections(world)) == (3, 1)  # the checks ran again; the cluster was opened once


@pytest.mark.parametrize(
    ("wait_for", "attempts"),
    [
        # Attempts start 30 s apart (checks take no time on the fake clock): at 0, 30 and 60 s. The last one starts
        # at most --wait-for seconds after the first, so 59 s leaves room for two, 60 and 61 s for three.
        ("59", 2),
        ("60", 3),
        ("61", 3),
    ],
)
def test_wait_for_stops_at_the_deadline_and_exits_1(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_time: FakeTime,
    wait_for: str,
    attempts: int,
) -> None:
    """vLLM's pod never leaves Pending: verify gives up when another attempt would start after --wait-for seconds,
    prints the last attempt's JSON on stdout (the progress lines stay on stderr) and exits 1."""
    world.replace("Pod", VLLM_POD, _pending(vllm_pod()))
    with world.serving() as (fake, _):
        _hand_clients(world, monkeypatch, fake.url, attempts=attempts)
        kubeconfig = fake.write_kubeconfig(world.tmp / "kubeconfig")
        code = _verify(kubeconfig, "--wait-for", wait_for, "--poll-interval", "30", "--json")
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 1
    assert report["ok"] is False
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == [CREDENTIALS_CHECK]
    assert (_attempts(world), len(fake_time.sleeps), _connections(world)) == (attempts, attempts - 1, 1)
    lines = captured.err.splitlines()
    assert len(lines) == attempts
    assert lines[-1] == (
        f"attempt {attempts} at {30 * (attempts - 1)} s, 1 failing: a pod holding Pod Identity credentials "
        f"(--wait-for {wait_for} s ends before another attempt)"
    )


@pytest.mark.parametrize(
    ("args", "healthy", "code"),
    [
        # --wait-for 0 (the default) is one run, as without the option, and no progress line; --poll-interval 5 is
        # the smallest allowed.
        (["--wait-for", "0", "--poll-interval", "5"], False, 1),
        ([], False, 1),
        # The largest values allowed; a healthy environment passes on the first attempt, with no pause.
        (["--wait-for", "7200", "--poll-interval", "600"], True, 0),
    ],
)
def test_wait_for_bounds_are_accepted_and_0_runs_the_checks_once(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_time: FakeTime,
    args: list[str],
    healthy: bool,
    code: int,
) -> None:
    if not healthy:
        world.replace("Pod", VLLM_POD, _pending(vllm_pod()))
    with world.serving() as (fake, _):
        _hand_clients(world, monkeypatch, fake.url)
        returned = _verify(fake.write_kubeconfig(world.tmp / "kubeconfig"), *args)
    captured = capsys.readouterr()
    assert returned == code, captured.err
    assert (_attempts(world), fake_time.sleeps, captured.err) == (1, [], "")
    assert ("13 passed, 1 failed" if code else "14 passed") in captured.out


def test_wait_for_sees_the_cluster_become_active(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_time: FakeTime
) -> None:
    """The checks of DescribeCluster read it again before each retry: a cluster UPDATING at the first attempt and
    ACTIVE at the second passes, still with one connection to its API server."""
    active = dict(world.cluster)
    world.cluster["status"] = "UPDATING"
    with world.serving() as (fake, _):
        _hand_clients(world, monkeypatch, fake.url, attempts=2, later_clusters=[active])
        code = _verify(fake.write_kubeconfig(world.tmp / "kubeconfig"), "--wait-for", "300", "--json")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.splitlines() == [
        "attempt 1 at 0 s, 1 failing: cluster ACTIVE with Auto Mode (next attempt in 30 s)"
    ]
    (cluster_check,) = [c for c in json.loads(captured.out)["checks"] if c["name"] == CLUSTER_CHECK]
    assert cluster_check["status"] == "pass"
    assert "status ACTIVE" in cluster_check["evidence"]
    assert (_attempts(world), _connections(world)) == (2, 1)


@pytest.mark.parametrize("failure", ["another cluster's context", "no such cluster"])
def test_wait_for_does_not_retry_a_refused_kubeconfig_or_a_wrong_cluster(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_time: FakeTime,
    failure: str,
) -> None:
    with FakeKubeApi() as fake:
        if failure == "no such cluster":
            _hand_clients(world, monkeypatch, fake.url, cluster_error="ResourceNotFoundException")
            kubeconfig = fake.write_kubeconfig(world.tmp / "kubeconfig")
        else:
            _hand_clients(world, monkeypatch, "https://ABCDEF.gr7.us-west-2.eks.amazonaws.com")
            kubeconfig = fake.write_kubeconfig(world.tmp / "kubeconfig", context="other-cluster")
        code = _verify(kubeconfig, "--wait-for", "1800")
        assert fake.requests == []
    err = " ".join(capsys.readouterr().err.split())
    assert (code, fake_time.sleeps) == (2, [])
    assert err.startswith("error: ")
    assert "attempt" not in err


# --- the names the toolkit reads are the ones the platform sets --------------------------------------------------
def test_the_names_the_toolkit_reads_are_the_ones_the_platform_sets(dev: Synthesized) -> None:
    from cdk_constructs.helm import Prometheus
    from k8s.cluster_features import NETWORK_POLICY_SWITCH, VPC_CNI_CONFIG_MAP
    from k8s.gateway import NAME as GATEWAY_NAME
    from k8s.inference import VLLM_NAME
    from k8s.metrics import DCGM_JOB, NODE_POOL_LABEL, VLLM_JOB
    from ops import target

    assert target.VLLM == VLLM_NAME
    assert target.LITELLM == GATEWAY_NAME
    assert f"{Prometheus.RELEASE}-server" == target.PROMETHEUS_SERVICE
    assert target.PROMETHEUS_SERVICE_PORT == Prometheus.SERVICE_PORT
    assert (target.VPC_CNI_CONFIG_MAP, target.NETWORK_POLICY_SWITCH) == (VPC_CNI_CONFIG_MAP, NETWORK_POLICY_SWITCH)
    assert (target.VLLM_JOB, target.DCGM_JOB, target.NODE_POOL_LABEL) == (VLLM_JOB, DCGM_JOB, NODE_POOL_LABEL)
    # The synthesized objects themselves: Service ports, the vLLM pods' labels and container, the pools.
    litellm_service = dev.one("Service", "litellm")
    assert litellm_service["spec"]["ports"][0]["port"] == target.LITELLM_SERVICE_PORT
    deployment = dev.one("Deployment", "vllm")["spec"]
    match_labels = deployment["selector"]["matchLabels"]
    assert set(target.VLLM_POD_SELECTOR.split(",")) == {f"{k}={v}" for k, v in match_labels.items()}
    vllm = deployment["template"]
    assert [c["name"] for c in vllm["spec"]["containers"]] == [target.VLLM_CONTAINER]
    assert sorted(p["metadata"]["name"] for p in dev.find("NodePool")) == sorted(target.PLATFORM_POOLS)
    foundation = dev.stack_json("foundation")
    aliases = {r["Properties"]["AliasName"] for r in resources_of(foundation, "AWS::KMS::Alias").values()}
    assert {"alias/genai-dev/secrets", "alias/genai-dev/node-volumes"} <= aliases
    outputs = set(dev.stack_json("data")["Outputs"]) | set(dev.stack_json("gateway")["Outputs"])
    assert {target.MASTER_KEY_OUTPUT, target.GATEWAY_ADDRESS_OUTPUT} <= outputs


def _associations_in(synth: Synthesized) -> list[tuple[str, str]]:
    found = []
    for path in synth.template_files():
        template = json.loads(path.read_text())
        for resource in resources_of(template, "AWS::EKS::PodIdentityAssociation").values():
            found.append((resource["Properties"]["Namespace"], resource["Properties"]["ServiceAccount"]))
        for addon in resources_of(template, "AWS::EKS::Addon").values():
            for association in addon["Properties"].get("PodIdentityAssociations", []):
                # The amazon-cloudwatch-observability add-on installs into its own namespace.
                assert addon["Properties"]["AddonName"] == "amazon-cloudwatch-observability"
                found.append(("amazon-cloudwatch", association["ServiceAccount"]))
    return sorted(found)


def test_expected_associations_are_the_ones_the_templates_create(dev: Synthesized, prod: Synthesized) -> None:
    assert _associations_in(dev) == sorted(DEV_ASSOCIATIONS)
    assert expected_pod_identities(dev.config) == sorted(DEV_ASSOCIATIONS)
    # prod adds Prometheus' remote write to Amazon Managed Service for Prometheus.
    assert _associations_in(prod) == sorted([*DEV_ASSOCIATIONS, ("observability", "prometheus-server")])
    assert expected_pod_identities(prod.config) == _associations_in(prod)
