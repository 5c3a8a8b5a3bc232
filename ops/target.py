"""Which deployed platform a command looks at: one environment's validated config, the names its stacks and charts
give things, and the AWS clients to read it with.

The config is built exactly as `app.py` builds it (cdk.json's context, `--env`, `-c KEY=VALUE` overrides), so a
command looks for the cluster, stacks and keys the same synth deployed. The names below are the ones the stacks and
charts set; they are repeated here, not imported, because the console script installs only `ops` and
`platform_config` (pyproject.toml) and importing `k8s`/`cdk_constructs` would start the jsii runtime. A test
(tests/test_ops_verify.py::test_the_names_the_toolkit_reads_are_the_ones_the_platform_sets) holds each one equal
to its source.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.errors import BadInputError, OpsError
from platform_config import ConfigError, PlatformConfig, cdk_cli_context, load_config
from platform_config import namespaces as ns

# k8s/inference.py VLLM_NAME: the vLLM Deployment, Service, PDB, ScaledObject and (stacks/data.py) service account.
VLLM = "vllm"
# k8s/vllm.py: the selector labels of vLLM's pods.
VLLM_POD_SELECTOR = "app.kubernetes.io/name=vllm,app.kubernetes.io/component=inference-server"
VLLM_CONTAINER = "vllm"
# k8s/gateway.py NAME: the LiteLLM Deployment, Service (port 80, named http), PDB, ScaledObject, service account.
LITELLM = "litellm"
LITELLM_SERVICE_PORT = 80
# cdk_constructs/helm.py Prometheus: release `prometheus`, whose chart names the server's Service
# `<release>-server` on Prometheus.SERVICE_PORT.
PROMETHEUS_SERVICE = "prometheus-server"
PROMETHEUS_SERVICE_PORT = 80
# k8s/metrics.py: the scrape jobs whose series the scaling path and the GPU dashboards read.
VLLM_JOB = "vllm"
DCGM_JOB = "dcgm-exporter"
# k8s/cluster_features.py: the switch that makes Auto Mode enforce NetworkPolicies.
VPC_CNI_CONFIG_MAP = "amazon-vpc-cni"
NETWORK_POLICY_SWITCH = "enable-network-policy-controller"
# Labels EKS Auto Mode (Karpenter) puts on every node (EKS User Guide, create-node-pool; k8s/metrics.py).
NODE_POOL_LABEL = "karpenter.sh/nodepool"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
# k8s/node_pools.py: the platform's own NodePools, each with a NodeClass naming the node-volume key.
PLATFORM_POOLS = ("gpu", "neuron", "cpu")
# Auto Mode's built-in pools (FACTS.md): their default NodeClass cannot be changed, so it names no platform key.
BUILT_IN_POOLS = ("system", "general-purpose")
# stacks/data.py and stacks/gateway.py outputs.
MASTER_KEY_OUTPUT = "GatewayMasterKeySecret"
GATEWAY_ADDRESS_OUTPUT = "GatewayAddressCommand"
# cdk_constructs/gateway_stores.py: the master key secret's JSON field; clients send `sk-<key>`.
MASTER_KEY_FIELD = "key"


def key_alias(config: PlatformConfig, purpose: str) -> str:
    """cdk_constructs/encryption_keys.py: `alias/<prefix>/<purpose>` (secrets, node-volumes, logs, data)."""
    return f"alias/{config.prefix}/{purpose}"


# app.py `build_platform`: every stack of an environment is named `<prefix>-<one of these>` (`verify` and
# `verify-access` only where the delivery pipeline deploys the environment, app.py `build_delivery`).
PLATFORM_STACKS = ("foundation", "data", "observability", "inference", "gateway", "tracing", "verify", "verify-access")


def stack_name(config: PlatformConfig, stack: str) -> str:
    """app.py: `<prefix>-<stack>`, `stack` one of PLATFORM_STACKS."""
    return f"{config.prefix}-{stack}"


def accelerator_pool(config: PlatformConfig) -> str:
    """The NodePool vLLM runs on (k8s/vllm.py: `neuron` for Neuron accelerators, else `gpu`)."""
    return "neuron" if config.inference.vllm.accelerator == "neuron" else "gpu"


def expected_pod_identities(config: PlatformConfig) -> list[tuple[str, str]]:
    """(namespace, service account) of every Pod Identity association the stacks create for this config."""
    expected = [
        (ns.INFERENCE, VLLM),  # stacks/data.py VllmIdentity: reads the model bucket
        (ns.KEDA, "keda-operator"),  # cdk_constructs/helm.py Keda.OPERATOR_SERVICE_ACCOUNT
    ]
    store = config.inference.model_store
    if store.download_job and store.hf_token_secret_name:
        expected.append((ns.INFERENCE, "model-downloader"))  # stacks/data.py DOWNLOADER_SERVICE_ACCOUNT
    if config.addons.container_insights:
        expected.append((ns.CLOUDWATCH, "cloudwatch-agent"))  # cdk_constructs/cluster_addons.py, on the add-on
    if config.observability.managed_prometheus.enabled:
        expected.append((ns.OBSERVABILITY, PROMETHEUS_SERVICE))  # cdk_constructs/managed_prometheus.py remote write
    if config.gateway.enabled:
        expected.append((ns.GATEWAY, LITELLM))  # stacks/gateway.py LiteLlmIdentity
        expected.append((ns.EXTERNAL_SECRETS, "external-secrets"))  # cdk_constructs/helm.py ExternalSecrets
    if config.observability.tracing.mode == "self-hosted":
        expected.append((ns.LANGFUSE, "langfuse"))  # cdk_constructs/langfuse.py SERVICE_ACCOUNT
    return sorted(expected)


def load_platform_config(env: str, overrides: Sequence[str], cdk_json: Path) -> PlatformConfig:
    """The config `cdk synth -c env=ENV -c KEY=VALUE...` builds, or one sentence saying what is wrong."""
    if not cdk_json.is_file():
        raise BadInputError(
            f"--cdk-json {cdk_json}: no such file; run from the project's root (where cdk.json is) or pass its path"
        )
    try:
        context = cdk_cli_context(cdk_json)  # cdk.context.json too, as `cdk deploy` reads it
    except (OSError, json.JSONDecodeError) as error:
        raise BadInputError(f"--cdk-json {cdk_json}: cannot be read as JSON ({error})") from None
    environments = context.get("environments") or {}
    if env not in environments:
        allowed = ", ".join(sorted(environments)) or "none defined"
        raise BadInputError(f"--env {env!r} is not an environment in {cdk_json}; allowed: {allowed}")
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInputError(f"-c {item!r}: expected KEY=VALUE, like -c name=acme (the keys `cdk synth -c` takes)")
        parsed[key.strip()] = value
    try:
        return load_config({**context, **parsed, "env": env})
    except ConfigError as error:
        raise BadInputError(str(error)) from None


@dataclass(frozen=True)
class AwsClients:
    """The boto3 clients the commands read with, all in one region."""

    region: str
    eks: Any
    ec2: Any
    kms: Any
    secretsmanager: Any
    cloudformation: Any


def aws_clients(region: str | None) -> AwsClients:
    """Clients from the default credential chain (AWS_PROFILE, environment, SSO, instance or pod role)."""
    import boto3

    session = boto3.Session(region_name=region)
    if not session.region_name:
        raise OpsError("no AWS region: pass --region or set AWS_REGION", exit_code=2)
    names = ("eks", "ec2", "kms", "secretsmanager", "cloudformation")
    clients = {name: session.client(name) for name in names}
    return AwsClients(region=session.region_name, **clients)


def resolve_key_arn(aws: AwsClients, key_id: str) -> str:
    """The key ARN behind an alias, alias ARN, key id or key ARN (KMS DescribeKey accepts each)."""
    arn: str = aws.kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    return arn
