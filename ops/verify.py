"""`genai-ops verify`: prove a deployed environment is what the platform promises, one check at a time.

Each check reads the live system (EKS, EC2 and KMS through boto3; the cluster through the Kubernetes client;
Prometheus and LiteLLM over HTTP) and reports pass or fail with the evidence it read. Nothing is changed: the only
request that is not a read is one chat completion through the gateway (`--no-completion` leaves it out).

The environment is named as for `cdk deploy` (`--env`, `-c KEY=VALUE`), so the cluster is `<name>-<env>` and the
keys are that prefix's aliases. The kubeconfig's context must point at that cluster's endpoint: a context left on
another cluster is refused rather than checked. A tunnel to a private endpoint (`--tunnel URL`) is accepted when the
context pins the cluster's own certificate authority and names the endpoint's host as `tls-server-name`
(`ops.live.require_cluster`).

`--wait-for SECONDS` runs the checks again every `--poll-interval` seconds while any fails, for an environment that is
still starting (a pipeline verifies right after a deploy, before vLLM's replicas are Ready: README "Cold-start
budget"). Each retry re-reads what the checks read, the cluster's DescribeCluster included; the config, the kubeconfig
and the connection to the cluster are made once, so a refused context or a wrong cluster name ends the run at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ops.checks import (
    CheckResult,
    Verdict,
    any_failed,
    fails,
    passes,
    passes_if,
    render_json,
    render_table,
    skipped,
)
from ops.errors import BadInputError, OpsError, aws_error_message
from ops.live import (
    EndpointError,
    HttpEndpoint,
    Kube,
    UrlEndpoint,
    chat_completion,
    connect,
    gateway_master_key,
    require_cluster,
    tunnel_url,
)
from ops.target import (
    BUILT_IN_POOLS,
    CAPACITY_TYPE_LABEL,
    DCGM_JOB,
    INSTANCE_TYPE_LABEL,
    LITELLM,
    LITELLM_SERVICE_PORT,
    NETWORK_POLICY_SWITCH,
    NODE_POOL_LABEL,
    PLATFORM_POOLS,
    PROMETHEUS_SERVICE,
    PROMETHEUS_SERVICE_PORT,
    VLLM,
    VLLM_CONTAINER,
    VLLM_JOB,
    VLLM_POD_SELECTOR,
    VPC_CNI_CONFIG_MAP,
    AwsClients,
    accelerator_pool,
    aws_clients,
    expected_pod_identities,
    key_alias,
    load_platform_config,
    resolve_key_arn,
)
from platform_config import PlatformConfig
from platform_config import namespaces as ns

# The environment variable the EKS Pod Identity webhook sets in every container of a pod whose service account has
# an association (EKS User Guide, pod-identities and pod-id-how-it-works): the SDKs' container credential provider.
POD_IDENTITY_ENV = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
# The signals read: KEDA's queue trigger (FACTS.md, vLLM V1 metrics) and the DCGM GPU utilisation gauge.
VLLM_SERIES = f'vllm:num_requests_waiting{{job="{VLLM_JOB}"}}'
DCGM_SERIES = f'DCGM_FI_DEV_GPU_UTIL{{job="{DCGM_JOB}"}}'
# How many names an evidence line lists before it says "and N more".
SHOWN = 6
# --wait-for and --poll-interval, in seconds. Two hours is far beyond a rollout of several replicas at the cold-start
# budget of 300 s each (README "Cold-start budget"); a wait longer than that hides a fault. Attempts closer than 5 s
# apart only add load (each sends one completion); more than 10 minutes apart they miss most of the wait.
WAIT_FOR_MAX = 7200
POLL_INTERVAL_MIN, POLL_INTERVAL_MAX = 5, 600

# Tests replace these so that waiting takes no time (as ops/cleanup/deletion.py DeletionSettings does).
sleep: Callable[[float], None] = time.sleep
clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Node:
    name: str
    pool: str
    capacity_type: str
    instance_type: str
    ready: bool
    instance_id: str | None


@dataclass
class Target:
    """The environment under check and the ways to reach it."""

    config: PlatformConfig
    aws: AwsClients
    cluster: dict[str, Any]  # EKS DescribeCluster's `cluster`
    kube: Kube
    prometheus: HttpEndpoint
    gateway: HttpEndpoint | None
    completion: bool = True


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _describe_error(error: Exception) -> str:
    """A failure while checking, as evidence: the API and its answer."""
    from botocore.exceptions import BotoCoreError, ClientError
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ClientError):
        return f"{error.operation_name}: {aws_error_message(error)}"
    if isinstance(error, ApiException):
        return f"Kubernetes API answered HTTP {error.status} {error.reason}"
    if isinstance(error, (BotoCoreError, EndpointError, OpsError)):
        return str(error)
    raise error


class LiveChecks:
    """Every check of `verify`, in the order they are reported."""

    def __init__(self, target: Target) -> None:
        self.t = target
        self.config = target.config

    def checks(self) -> list[tuple[str, Callable[[], Verdict]]]:
        return [
            ("cluster ACTIVE with Auto Mode", self.cluster_active),
            ("Secrets encrypted with the platform key", self.secrets_encryption),
            ("nodes of each pool", self.nodes_by_pool),
            ("IMDSv2 required, hop limit 1", self.imds),
            ("node volumes encrypted with the platform key", self.node_volumes),
            ("network policy enforcement on", self.network_policy),
            ("Pod Identity associations", self.pod_identity_associations),
            ("a pod holding Pod Identity credentials", self.pod_credentials),
            ("PDBs satisfiable", self.pdbs),
            ("ScaledObjects Ready", self.scaled_objects),
            ("Prometheus receiving vLLM series", self.prometheus_vllm),
            ("Prometheus receiving DCGM series", self.prometheus_dcgm),
            ("LiteLLM ready", self.litellm_ready),
            ("a real completion through the gateway", self.completion),
        ]

    def run(self, on_check: Callable[[str], None] = lambda name: None) -> list[CheckResult]:
        results = []
        for name, check in self.checks():
            on_check(name)
            try:
                result = check()
            except Exception as error:
                result = fails(_describe_error(error))
            results.append(result.named(name))
        return results

    # --- AWS: the cluster ----------------------------------------------------------------------------------------
    def cluster_active(self) -> Verdict:
        c = self.t.cluster
        compute = c.get("computeConfig") or {}
        storage = ((c.get("storageConfig") or {}).get("blockStorage") or {}).get("enabled") is True
        balancing = ((c.get("kubernetesNetworkConfig") or {}).get("elasticLoadBalancing") or {}).get("enabled") is True
        auto_mode = compute.get("enabled") is True
        pools = ", ".join(compute.get("nodePools") or []) or "none"
        # Auto Mode is the three capabilities together (EKS API UpdateClusterConfig: compute, block storage and
        # load balancing are enabled or disabled as one).
        ok = c.get("status") == "ACTIVE" and auto_mode and storage and balancing
        return passes_if(
            ok,
            f"{c.get('name')} in {self.t.aws.region}: status {c.get('status')}, Kubernetes {c.get('version')}; "
            f"computeConfig.enabled {auto_mode} (built-in pools: {pools}), "
            f"blockStorage {storage}, elasticLoadBalancing {balancing}",
        )

    def secrets_encryption(self) -> Verdict:
        alias = key_alias(self.config, "secrets")
        expected = resolve_key_arn(self.t.aws, alias)
        keys = [
            (entry.get("provider") or {}).get("keyArn", "")
            for entry in self.t.cluster.get("encryptionConfig") or []
            if "secrets" in (entry.get("resources") or [])
        ]
        if not keys:
            return fails("encryptionConfig has no entry for secrets: Kubernetes Secrets use only EBS encryption")
        actual = resolve_key_arn(self.t.aws, keys[0])
        if actual != expected:
            return fails(f"encryptionConfig: Secrets encrypted with {keys[0]}, not {alias} ({expected})")
        return passes(f"encryptionConfig: Secrets encrypted with {keys[0]}, the key of {alias}")

    # --- nodes and instances -------------------------------------------------------------------------------------
    @cached_property
    def nodes(self) -> list[Node]:
        found = []
        for node in self.t.kube.core.list_node(_request_timeout=self.t.kube.timeout).items:
            labels = node.metadata.labels or {}
            conditions = (node.status.conditions if node.status else None) or []
            provider = (node.spec.provider_id if node.spec else None) or ""
            instance = provider.rsplit("/", 1)[-1]
            found.append(
                Node(
                    name=node.metadata.name,
                    pool=labels.get(NODE_POOL_LABEL, "(no pool label)"),
                    capacity_type=labels.get(CAPACITY_TYPE_LABEL, "?"),
                    instance_type=labels.get(INSTANCE_TYPE_LABEL, "?"),
                    ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
                    instance_id=instance if instance.startswith("i-") else None,
                )
            )
        return found

    def nodes_by_pool(self) -> Verdict:
        pool = accelerator_pool(self.config)
        by_pool: dict[str, list[Node]] = {}
        for node in self.nodes:
            by_pool.setdefault(node.pool, []).append(node)
        order = [*PLATFORM_POOLS, *BUILT_IN_POOLS, *sorted(set(by_pool) - {*PLATFORM_POOLS, *BUILT_IN_POOLS})]
        parts = []
        for name in order:
            members = by_pool.get(name, [])
            if not members and name not in (pool, *BUILT_IN_POOLS):
                continue
            if not members:
                parts.append(f"{name}: none")
                continue
            ready = [n for n in members if n.ready]
            kinds = sorted({f"{n.instance_type} {n.capacity_type}" for n in members})
            parts.append(f"{name}: {len(ready)} of {len(members)} Ready ({', '.join(kinds)})")
        not_ready = [n.name for n in self.nodes if not n.ready]
        serving = [n for n in by_pool.get(pool, []) if n.ready]
        problems = []
        if not serving:
            problems.append(f"no Ready node in the {pool} pool, where vLLM runs")
        if not_ready:
            problems.append(f"not Ready: {_listed(not_ready)}")
        return passes_if(not problems, "; ".join(problems + parts))

    def _instances(self, nodes: Sequence[Node]) -> dict[str, dict[str, Any]]:
        ids = [n.instance_id for n in nodes if n.instance_id]
        if not ids:
            return {}
        paginator = self.t.aws.ec2.get_paginator("describe_instances")
        found: dict[str, dict[str, Any]] = {}
        for page in paginator.paginate(Filters=[{"Name": "instance-id", "Values": ids}]):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    found[instance["InstanceId"]] = instance
        return found

    def imds(self) -> Verdict:
        if not self.nodes:
            return fails("the cluster has no nodes to check")
        instances = self._instances(self.nodes)
        problems = [f"{n.name} has no EC2 instance id in spec.providerID" for n in self.nodes if not n.instance_id]
        good = []
        for node in self.nodes:
            if not node.instance_id:
                continue
            instance = instances.get(node.instance_id)
            if instance is None:
                problems.append(f"{node.instance_id} ({node.name}) not found in {self.t.aws.region}")
                continue
            options = instance.get("MetadataOptions") or {}
            tokens, hops = options.get("HttpTokens"), options.get("HttpPutResponseHopLimit")
            if tokens == "required" and hops == 1:
                good.append(node.instance_id)
            else:
                problems.append(
                    f"{node.instance_id} ({node.name}, pool {node.pool}): HttpTokens {tokens}, hop limit {hops}"
                )
        if problems:
            return fails("; ".join(problems))
        return passes(f"{len(good)} instances with HttpTokens required and hop limit 1: {_listed(good)}")

    def node_volumes(self) -> Verdict:
        alias = key_alias(self.config, "node-volumes")
        key_arn = resolve_key_arn(self.t.aws, alias)
        covered = [n for n in self.nodes if n.pool in PLATFORM_POOLS and n.instance_id]
        skipped = sorted({n.pool for n in self.nodes if n.pool not in PLATFORM_POOLS})
        note = (
            f"; nodes of {', '.join(skipped)} not covered (Auto Mode's built-in pools use its default NodeClass, "
            "which names no customer key)"
            if skipped
            else ""
        )
        if not covered:
            return fails(f"no node of the platform's pools ({', '.join(PLATFORM_POOLS)}) to check{note}")
        owner = {n.instance_id: n for n in covered if n.instance_id}
        paginator = self.t.aws.ec2.get_paginator("describe_volumes")
        volumes = [
            volume
            for page in paginator.paginate(Filters=[{"Name": "attachment.instance-id", "Values": list(owner)}])
            for volume in page["Volumes"]
        ]
        problems = []
        for volume in volumes:
            instance = next((a["InstanceId"] for a in volume.get("Attachments", []) if a["InstanceId"] in owner), "?")
            where = f"{volume['VolumeId']} on {instance} (pool {owner[instance].pool if instance in owner else '?'})"
            if not volume.get("Encrypted"):
                problems.append(f"{where} is not encrypted")
            elif volume.get("KmsKeyId") != key_arn:
                problems.append(f"{where} is encrypted with {volume.get('KmsKeyId')}")
        if not volumes:
            problems.append(f"no volume attached to {_listed(list(owner))}")
        if problems:
            return fails("; ".join(problems) + f" (expected {alias} = {key_arn}){note}")
        return passes(
            f"{len(volumes)} volumes of {len(owner)} instances (pools "
            f"{', '.join(sorted({n.pool for n in covered}))}) encrypted with {alias} ({key_arn}){note}",
        )

    # --- Kubernetes objects --------------------------------------------------------------------------------------
    def network_policy(self) -> Verdict:
        from kubernetes.client.exceptions import ApiException

        try:
            config_map = self.t.kube.core.read_namespaced_config_map(
                VPC_CNI_CONFIG_MAP, "kube-system", _request_timeout=self.t.kube.timeout
            )
        except ApiException as error:
            if error.status == 404:
                return fails(
                    f"ConfigMap kube-system/{VPC_CNI_CONFIG_MAP} is missing: NetworkPolicies are accepted and ignored "
                    "(EKS User Guide, auto-net-pol)",
                )
            raise
        value = (config_map.data or {}).get(NETWORK_POLICY_SWITCH)
        return passes_if(value == "true", f"kube-system/{VPC_CNI_CONFIG_MAP} {NETWORK_POLICY_SWITCH}: {value!r}")

    def pod_identity_associations(self) -> Verdict:
        name = self.t.cluster["name"]
        found: set[tuple[str, str]] = set()
        token: str | None = None
        while True:
            page = self.t.aws.eks.list_pod_identity_associations(
                clusterName=name, **({"nextToken": token} if token else {})
            )
            found |= {(a["namespace"], a["serviceAccount"]) for a in page.get("associations", [])}
            token = page.get("nextToken")
            if not token:
                break
        expected = expected_pod_identities(self.config)
        missing = [f"{n}/{s}" for n, s in expected if (n, s) not in found]
        present = [f"{n}/{s}" for n, s in expected if (n, s) in found]
        if missing:
            return fails(f"missing: {', '.join(missing)}; present: {', '.join(present) or 'none'}")
        return passes(f"{len(expected)} of {len(expected)}: {', '.join(present)}")

    def pod_credentials(self) -> Verdict:
        pods = self.t.kube.core.list_namespaced_pod(
            ns.INFERENCE, label_selector=VLLM_POD_SELECTOR, _request_timeout=self.t.kube.timeout
        ).items
        running = [p for p in pods if p.status and p.status.phase == "Running"]
        if not running:
            return fails(f"no Running vLLM pod in {ns.INFERENCE} ({len(pods)} pods found)")
        lacking = []
        for pod in running:
            container = next((c for c in pod.spec.containers if c.name == VLLM_CONTAINER), None)
            env = {e.name: e.value for e in (container.env if container else None) or []}
            if env.get(POD_IDENTITY_ENV):
                return passes(f"pod {ns.INFERENCE}/{pod.metadata.name}: {POD_IDENTITY_ENV}={env[POD_IDENTITY_ENV]}")
            lacking.append(pod.metadata.name)
        return fails(
            f"no {POD_IDENTITY_ENV} in {_listed(lacking)}: the webhook sets it only in pods created after their "
            f"association existed; restart them (kubectl -n {ns.INFERENCE} rollout restart deployment/{VLLM})",
        )

    def pdbs(self) -> Verdict:
        expected = [(ns.INFERENCE, VLLM)] + ([(ns.GATEWAY, LITELLM)] if self.config.gateway.enabled else [])
        seen: set[tuple[str, str]] = set()
        parts, problems = [], []
        for namespace in ns.PLATFORM:
            budgets = self.t.kube.policy.list_namespaced_pod_disruption_budget(
                namespace, _request_timeout=self.t.kube.timeout
            ).items
            for pdb in budgets:
                name = f"{namespace}/{pdb.metadata.name}"
                seen.add((namespace, pdb.metadata.name))
                status = pdb.status
                if status is None:
                    problems.append(f"{name}: no status yet")
                    continue
                line = (
                    f"{name}: {status.current_healthy} of {status.expected_pods} healthy "
                    f"(needs {status.desired_healthy}), {status.disruptions_allowed} disruptions allowed"
                )
                if status.expected_pods < 1:
                    problems.append(f"{line}: selects no pod")
                elif status.current_healthy < status.desired_healthy or status.disruptions_allowed < 0:
                    problems.append(f"{line}: not satisfied")
                else:
                    parts.append(line)
        missing = [f"{n}/{name} missing" for n, name in expected if (n, name) not in seen]
        problems = missing + problems
        return passes_if(not problems, "; ".join(problems + parts) or "no PodDisruptionBudget found")

    def scaled_objects(self) -> Verdict:
        expected = [(ns.INFERENCE, VLLM)] + ([(ns.GATEWAY, LITELLM)] if self.config.gateway.enabled else [])
        parts, problems = [], []
        for namespace in sorted({n for n, _ in expected}):
            listed = self.t.kube.custom.list_namespaced_custom_object(
                "keda.sh", "v1alpha1", namespace, "scaledobjects", _request_timeout=self.t.kube.timeout
            )
            by_name = {item["metadata"]["name"]: item for item in listed.get("items", [])}
            for want_ns, want in expected:
                if want_ns != namespace:
                    continue
                item = by_name.get(want)
                if item is None:
                    problems.append(f"{namespace}/{want} missing")
                    continue
                conditions = {c["type"]: c for c in (item.get("status") or {}).get("conditions") or []}
                ready = conditions.get("Ready", {})
                fallback = conditions.get("Fallback", {}).get("status") == "True"
                line = f"{namespace}/{want}: Ready {ready.get('status', 'unknown')}"
                if ready.get("status") != "True":
                    problems.append(f"{line} ({ready.get('reason', '')}: {ready.get('message', '')})")
                elif fallback:
                    # KEDA sets Fallback True while a trigger fails and it holds the fallback replica count
                    # (kedacore/keda apis/keda/v1alpha1/condition_types.go, ConditionFallback).
                    problems.append(
                        f"{line}, Fallback True: a trigger's query fails ({conditions['Fallback'].get('message', '')})"
                    )
                else:
                    parts.append(f"{line}, Active {conditions.get('Active', {}).get('status', 'unknown')}")
        return passes_if(not problems, "; ".join(problems + parts))

    # --- HTTP: Prometheus, LiteLLM -------------------------------------------------------------------------------
    def _series(self, query: str, label: str) -> tuple[int, list[str]]:
        """Series an instant query returns (Prometheus HTTP API /api/v1/query: data.result is a vector)."""
        reply = self.t.prometheus.request("GET", "/api/v1/query", query={"query": query})
        if reply.status != 200:
            raise EndpointError(
                f"Prometheus ({self.t.prometheus.description}) answered HTTP {reply.status}: {reply.text()}"
            )
        payload = reply.json()
        if payload.get("status") != "success":
            raise EndpointError(f"Prometheus refused {query}: {payload.get('error', payload)}")
        result = payload["data"]["result"]
        return len(result), sorted({str(r["metric"].get(label, "?")) for r in result})

    def prometheus_vllm(self) -> Verdict:
        count, pods = self._series(VLLM_SERIES, "pod")
        where = f"via {self.t.prometheus.description}"
        if not count:
            return fails(f"no {VLLM_SERIES} series in the last 5 minutes {where}: check Prometheus' /targets")
        return passes(f"{count} series of {VLLM_SERIES} (pods {_listed(pods)}) {where}")

    def prometheus_dcgm(self) -> Verdict:
        if self.config.inference.vllm.accelerator != "nvidia":
            return skipped("vLLM runs on Neuron accelerators: no NVIDIA GPU, no DCGM exporter series")
        count, hosts = self._series(DCGM_SERIES, "Hostname")
        where = f"via {self.t.prometheus.description}"
        if not count:
            return fails(f"no {DCGM_SERIES} series in the last 5 minutes {where}: check Prometheus' /targets")
        return passes(f"{count} series of {DCGM_SERIES} (hosts {_listed(hosts)}) {where}")

    def litellm_ready(self) -> Verdict:
        if self.t.gateway is None:
            return skipped("gateway.enabled is false")
        reply = self.t.gateway.request("GET", "/health/readiness")
        # LiteLLM 1.102.1 proxy/health_endpoints/_health_endpoints.py health_readiness: {"status": "healthy", "db":
        # "connected"}, 503 when a configured database is unreachable; "Not connected" means no database configured.
        try:
            body = reply.json()
        except ValueError:
            body = {}
        ok = reply.status == 200 and body.get("status") == "healthy" and body.get("db") == "connected"
        return passes_if(
            ok, f"GET /health/readiness via {self.t.gateway.description}: HTTP {reply.status} {reply.text()}"
        )

    def completion(self) -> Verdict:
        if self.t.gateway is None:
            return skipped("gateway.enabled is false")
        if not self.t.completion:
            return skipped("--no-completion")
        key, secret = gateway_master_key(self.t.aws, self.config)
        model = self.config.inference.vllm.served_model_name
        result = chat_completion(self.t.gateway, model=model, key=key)
        where = f"via {self.t.gateway.description}, key from {secret}"
        if not result.ok:
            return fails(f"POST /v1/chat/completions {model}: HTTP {result.status} {result.reply} ({where})")
        return passes(
            f"{model} answered {result.reply!r} ({result.completion_tokens} tokens, {result.seconds:.2f} s, {where})",
        )


def describe_cluster(aws: AwsClients, config: PlatformConfig) -> dict[str, Any]:
    """EKS DescribeCluster for the environment's cluster, or one message when there is none."""
    from botocore.exceptions import ClientError

    try:
        cluster: dict[str, Any] = aws.eks.describe_cluster(name=config.prefix)["cluster"]
    except ClientError as error:
        if error.response["Error"].get("Code") == "ResourceNotFoundException":
            raise BadInputError(
                f"--env {config.env_name}: there is no EKS cluster named {config.prefix!r} in {aws.region} "
                f"(the name is <name>-<env>, here name={config.name!r}); pass the --region it is in, or -c name=..."
            ) from None
        raise OpsError(f"cannot describe the cluster {config.prefix!r}: {_describe_error(error)}") from None
    return cluster


def open_cluster(
    config: PlatformConfig,
    aws: AwsClients,
    *,
    kubeconfig: Path | None,
    kube_context: str | None,
    timeout: float,
    tunnel: str | None = None,
) -> tuple[dict[str, Any], Kube]:
    """The environment's cluster in EKS, and a Kubernetes client for that cluster (a context on another is refused;
    `tunnel` accepts a tunnel to its endpoint, see `ops.live.require_cluster`)."""
    tunnel = tunnel_url(tunnel) if tunnel is not None else None
    cluster = describe_cluster(aws, config)
    kube = connect(kubeconfig, kube_context, timeout=timeout)
    require_cluster(kube, cluster, region=aws.region, tunnel=tunnel)
    kube.probe()
    return cluster, kube


def open_target(
    config: PlatformConfig,
    aws: AwsClients,
    *,
    kubeconfig: Path | None,
    kube_context: str | None,
    prometheus_url: str | None,
    gateway_url: str | None,
    timeout: float,
    completion: bool = True,
    tunnel: str | None = None,
) -> Target:
    """Reach the environment: its cluster in EKS, then the Kubernetes API of that cluster (and no other)."""
    prometheus = UrlEndpoint(prometheus_url, timeout=timeout, option="--prometheus-url") if prometheus_url else None
    gateway = UrlEndpoint(gateway_url, timeout=timeout, option="--gateway-url") if gateway_url else None
    cluster, kube = open_cluster(
        config, aws, kubeconfig=kubeconfig, kube_context=kube_context, timeout=timeout, tunnel=tunnel
    )
    return Target(
        config=config,
        aws=aws,
        cluster=cluster,
        kube=kube,
        prometheus=prometheus or kube.service(ns.OBSERVABILITY, PROMETHEUS_SERVICE, PROMETHEUS_SERVICE_PORT),
        gateway=(gateway or kube.service(ns.GATEWAY, LITELLM, LITELLM_SERVICE_PORT))
        if config.gateway.enabled
        else None,
        completion=completion,
    )


def run_checks(target: Target, console: Console | None = None) -> list[CheckResult]:
    checks = LiveChecks(target)
    if console is None:
        return checks.run()
    with console.status("checking") as status:
        return checks.run(lambda name: status.update(f"checking: {name}"))


def check_waiting(wait_for: int, poll_interval: int) -> None:
    """--wait-for and --poll-interval within their bounds, or one message naming the option, value and bounds."""
    if not 0 <= wait_for <= WAIT_FOR_MAX:
        raise BadInputError(f"--wait-for {wait_for} is out of range: give 0 (check once) to {WAIT_FOR_MAX} seconds")
    if not POLL_INTERVAL_MIN <= poll_interval <= POLL_INTERVAL_MAX:
        raise BadInputError(
            f"--poll-interval {poll_interval} is out of range: give {POLL_INTERVAL_MIN} to {POLL_INTERVAL_MAX} seconds"
        )


def run_checks_until_they_pass(
    target: Target,
    *,
    wait_for: int,
    poll_interval: int,
    console: Console | None,
    progress: Callable[[str], None],
) -> list[CheckResult]:
    """The checks' results once every check passes, or those of the last attempt that starts at most `wait_for`
    seconds after the first (attempts `poll_interval` seconds apart; `wait_for` 0: one attempt). After each failed
    attempt `progress` gets one line: the attempt, the seconds since the first began, the failing checks.

    Before a retry the cluster is described again, so the two checks that read DescribeCluster see its status now;
    the connection to the Kubernetes API is kept (its exec token renews itself: the client reruns the kubeconfig's
    `aws eks get-token` once the token's expirationTimestamp is near, kubernetes/config/kube_config.py)."""
    started = clock()
    attempt = 1
    while True:
        results = run_checks(target, console)
        if wait_for == 0 or not any_failed(results):
            return results
        elapsed = clock() - started
        again = elapsed + poll_interval <= wait_for
        failing = [r.name for r in results if r.status == "fail"]
        then = f"next attempt in {poll_interval} s" if again else f"--wait-for {wait_for} s ends before another attempt"
        progress(f"attempt {attempt} at {elapsed:.0f} s, {len(failing)} failing: {'; '.join(failing)} ({then})")
        if not again:
            return results
        sleep(poll_interval)
        attempt += 1
        target.cluster = describe_cluster(target.aws, target.config)


# --- the command ---------------------------------------------------------------------------------------------------
EnvOption = Annotated[str, typer.Option("--env", help="Environment in cdk.json (as `cdk deploy -c env=`).")]
OverrideOption = Annotated[
    list[str] | None,
    typer.Option("-c", "--config", metavar="KEY=VALUE", help="Config override, as `cdk deploy -c` (repeatable)."),
]
CdkJsonOption = Annotated[Path, typer.Option("--cdk-json", help="The project's cdk.json.")]
RegionOption = Annotated[str | None, typer.Option("--region", help="AWS region (default: AWS_REGION/profile).")]
KubeconfigOption = Annotated[
    Path | None, typer.Option("--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
]
KubeContextOption = Annotated[str | None, typer.Option("--kube-context", help="Kubeconfig context (default: current).")]
TunnelOption = Annotated[
    str | None,
    typer.Option(
        "--tunnel",
        metavar="URL",
        help="The context's server when it is a tunnel to the cluster's private endpoint (e.g. SSM port forwarding: "
        "https://127.0.0.1:8443); accepted only if the context trusts exactly the cluster's CA and sets "
        "tls-server-name to the endpoint's host.",
    ),
]
PrometheusUrlOption = Annotated[
    str | None,
    typer.Option("--prometheus-url", help="Prometheus base URL (default: the API server's service proxy)."),
]
GatewayUrlOption = Annotated[
    str | None,
    typer.Option("--gateway-url", help="LiteLLM base URL, e.g. the internal ALB (default: the service proxy)."),
]
TimeoutOption = Annotated[float, typer.Option("--timeout", min=1, help="Seconds to wait for each request.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]
WaitForOption = Annotated[
    int,
    typer.Option(
        "--wait-for",
        metavar="SECONDS",
        help=f"While a check fails, run them all again until every one passes or this many seconds have passed since "
        f"the first run (0 to {WAIT_FOR_MAX}; 0: run once). Each failed attempt is one line on stderr.",
    ),
]
PollIntervalOption = Annotated[
    int,
    typer.Option(
        "--poll-interval",
        metavar="SECONDS",
        help=f"Seconds between attempts with --wait-for ({POLL_INTERVAL_MIN} to {POLL_INTERVAL_MAX}).",
    ),
]

# Tests replace this to hand the command clients with botocore Stubbers attached.
make_aws_clients: Callable[[str | None], AwsClients] = aws_clients


def verify(
    env: EnvOption = "dev",
    overrides: OverrideOption = None,
    cdk_json: CdkJsonOption = Path("cdk.json"),
    region: RegionOption = None,
    kubeconfig: KubeconfigOption = None,
    kube_context: KubeContextOption = None,
    tunnel: TunnelOption = None,
    prometheus_url: PrometheusUrlOption = None,
    gateway_url: GatewayUrlOption = None,
    completion: Annotated[
        bool, typer.Option("--completion/--no-completion", help="Send one chat completion through the gateway.")
    ] = True,
    timeout: TimeoutOption = 15.0,
    json_output: JsonOption = False,
    wait_for: WaitForOption = 0,
    poll_interval: PollIntervalOption = 30,
) -> None:
    """Check a deployed environment against its live cluster: each check pass or fail with its evidence.

    Exits 1 when any check fails (with --wait-for: when one still fails at the end of the wait). Reads only, except
    one chat completion per attempt (--no-completion leaves it out).
    """
    # Bounds checked here rather than with typer's min/max, whose message names neither the value nor both bounds.
    check_waiting(wait_for, poll_interval)
    config = load_platform_config(env, overrides or [], cdk_json)
    aws = make_aws_clients(region)
    target = open_target(
        config,
        aws,
        kubeconfig=kubeconfig,
        kube_context=kube_context,
        prometheus_url=prometheus_url,
        gateway_url=gateway_url,
        timeout=timeout,
        completion=completion,
        tunnel=tunnel,
    )
    started = clock()
    # Progress goes to stderr in both modes: with --json, stdout holds the JSON document only.
    stderr = Console(stderr=True, highlight=False, soft_wrap=True)
    results = run_checks_until_they_pass(
        target,
        wait_for=wait_for,
        poll_interval=poll_interval,
        console=None if json_output else Console(stderr=True),
        progress=lambda line: stderr.print(line, markup=False),
    )
    if json_output:
        typer.echo(render_json("verify", results, env=config.env_name, cluster=config.prefix, region=aws.region))
    else:
        title = f"genai-ops verify: {config.prefix} in {aws.region} ({clock() - started:.0f} s)"
        render_table(Console(highlight=False), title, results)
    if any_failed(results):
        raise typer.Exit(1)
