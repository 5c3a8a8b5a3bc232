"""The vLLM OpenAI-compatible server: Deployment, Service, ServiceAccount, PDB and NetworkPolicies.

Typed `k8s.*` objects rather than cdk8s-plus: the server needs extended resources (`nvidia.com/gpu`),
a memory-backed /dev/shm, a `sleep` preStop handler and a startup probe budget, which cdk8s-plus
either lacks or fills with defaults that would have to be undone (FACTS.md, cdk8s-plus).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from cdk8s_plus_30 import k8s
from constructs import Construct

from k8s.network_policies import dns_egress, https_egress, namespace_peer, pod_identity_egress, port
from k8s.node_pools import GPU_RESOURCE, NEURON_RESOURCE, POOL_LABEL
from k8s.pod_security import restricted_container, restricted_pod, runtime_identity_env
from k8s.probes import http_probe
from platform_config.cold_start import COLD_START
from platform_config.inference import VllmSettings

PORT = 8000
HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
# Node-local emptyDir for every cache and the home directory (the root filesystem is read-only).
CACHE_DIR = "/cache"
# vLLM reports usage to its maintainers unless one of these is set (vllm/usage/usage_lib.py,
# is_usage_stats_enabled); the pod has HTTPS egress for S3, so nothing else would stop it.
VLLM_NO_TELEMETRY_ENV = (
    k8s.EnvVar(name="VLLM_NO_USAGE_STATS", value="1"),
    k8s.EnvVar(name="DO_NOT_TRACK", value="1"),
    k8s.EnvVar(name="HF_HUB_DISABLE_TELEMETRY", value="1"),
)
# Kubelet probe timing; the startup budget is a multiple of the period.
STARTUP_PROBE_PERIOD_SECONDS = 10
# The startup probe allows twice the in-container cold-start budget: a slow S3 read or a first
# torch.compile must not get a loading replica killed and restarted from scratch.
STARTUP_BUDGET_FACTOR = 2
# Findings of checkov's Kubernetes checks skipped on purpose, each with its reason (no "=" inside:
# checkov 3.3 fails to parse one).
CHECKOV_SKIPS = {
    "CKV_K8S_11": "No CPU limit on purpose: CFS throttling of the API server and scheduler threads adds "
    "latency to every token; the CPU request reserves what the server needs",
}


@dataclass(frozen=True)
class VllmWiring:
    """What other parts of the platform provide to the server."""

    namespace: str
    service_account: str
    model_uri: str  # s3://bucket/prefix/model-id
    aws_region: str
    gateway_namespace: str
    metrics_namespace: str


def startup_probe_seconds() -> int:
    """How long the startup probe lets a replica load before the kubelet restarts it."""
    return STARTUP_BUDGET_FACTOR * COLD_START.in_container_seconds


def termination_grace_seconds(settings: VllmSettings) -> int:
    """preStop delay, then the longest request, then 30 s for the engine to shut down."""
    return settings.pre_stop_delay_seconds + settings.longest_request_seconds + 30


def server_args(settings: VllmSettings, model_uri: str) -> list[str]:
    args = [
        "--model", model_uri,
        "--served-model-name", settings.served_model_name,
        "--load-format", "runai_streamer",
        "--max-model-len", str(settings.max_model_len),
        "--max-num-seqs", str(settings.max_num_seqs),
        "--tensor-parallel-size", str(settings.gpus_per_replica),
        "--port", str(PORT),
    ]  # fmt: skip
    if settings.accelerator == "nvidia":
        args += ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]
    args.append("--enable-prefix-caching" if settings.enable_prefix_caching else "--no-enable-prefix-caching")
    return args


class VllmServer(Construct):
    """One vLLM Deployment behind a ClusterIP Service named `vllm` (stable DNS for the gateway)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        settings: VllmSettings,
        wiring: VllmWiring,
        labels: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id)
        self.name = name
        self.selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "inference-server"}
        all_labels = {**labels, **self.selector}
        meta = k8s.ObjectMeta(name=name, namespace=wiring.namespace, labels=all_labels)
        annotations = {
            f"checkov.io/skip{i}": f"{check}={why}" for i, (check, why) in enumerate(CHECKOV_SKIPS.items(), 1)
        }
        neuron = settings.accelerator == "neuron"
        device_resource = NEURON_RESOURCE if neuron else GPU_RESOURCE
        devices = k8s.Quantity.from_string(str(settings.gpus_per_replica))  # a plain "1" is dropped (FACTS.md)

        k8s.KubeServiceAccount(
            self,
            "service-account",
            metadata=k8s.ObjectMeta(name=wiring.service_account, namespace=wiring.namespace, labels=all_labels),
            automount_service_account_token=False,
        )

        container = k8s.Container(
            name="vllm",
            image=settings.server_image,
            image_pull_policy="IfNotPresent",
            args=server_args(settings, wiring.model_uri),
            ports=[k8s.ContainerPort(name="http", container_port=PORT, protocol="TCP")],
            env=[
                k8s.EnvVar(name="AWS_REGION", value=wiring.aws_region),
                k8s.EnvVar(name="RUNAI_STREAMER_CONCURRENCY", value=str(settings.streamer_concurrency)),
                k8s.EnvVar(name="RUNAI_STREAMER_MEMORY_LIMIT", value=str(settings.streamer_memory_limit_gib * 2**30)),
                # Weights and tokenizer come from S3: never call the Hugging Face hub at run time.
                k8s.EnvVar(name="HF_HUB_OFFLINE", value="1"),
                *runtime_identity_env(home="/tmp"),
                *VLLM_NO_TELEMETRY_ENV,
                k8s.EnvVar(name="HF_HOME", value=CACHE_DIR + "/huggingface"),
                # torch.compile, Triton and CUDA graph caches on node-local storage (COLD_START.engine_seconds);
                # torch's default inductor dir is /tmp/torchinductor_<user>, which needs a user name first.
                k8s.EnvVar(name="VLLM_CACHE_ROOT", value=CACHE_DIR + "/vllm"),
                k8s.EnvVar(name="TORCHINDUCTOR_CACHE_DIR", value=CACHE_DIR + "/torchinductor"),
                k8s.EnvVar(name="TRITON_CACHE_DIR", value=CACHE_DIR + "/triton"),
                k8s.EnvVar(name="XDG_CACHE_HOME", value=CACHE_DIR),
                k8s.EnvVar(name="XDG_CONFIG_HOME", value=CACHE_DIR + "/config"),
                # FlashInfer's JIT kernels and CUDA's compute cache default to $HOME (/tmp, 2 GiB): an
                # emptyDir over its limit gets the pod evicted.
                k8s.EnvVar(name="FLASHINFER_WORKSPACE_BASE", value=CACHE_DIR),
                k8s.EnvVar(name="CUDA_CACHE_PATH", value=CACHE_DIR + "/nv"),
            ],
            resources=k8s.ResourceRequirements(
                requests={
                    "cpu": k8s.Quantity.from_string(settings.cpu),
                    "memory": k8s.Quantity.from_string(f"{settings.memory_gib}Gi"),
                    device_resource: devices,
                },
                limits={
                    "memory": k8s.Quantity.from_string(f"{settings.memory_gib}Gi"),
                    device_resource: devices,
                },
            ),
            startup_probe=http_probe(
                HEALTH_PATH,
                period=STARTUP_PROBE_PERIOD_SECONDS,
                failures=math.ceil(startup_probe_seconds() / STARTUP_PROBE_PERIOD_SECONDS),
            ),
            readiness_probe=http_probe(HEALTH_PATH, period=5, failures=3),
            liveness_probe=http_probe(HEALTH_PATH, period=10, failures=6),
            lifecycle=k8s.Lifecycle(
                # The endpoint leaves the Service (and LiteLLM's pool) before vLLM gets SIGTERM:
                # LiteLLM does not retry a stream cut mid-flight (FACTS.md).
                pre_stop=k8s.LifecycleHandler(sleep=k8s.SleepAction(seconds=settings.pre_stop_delay_seconds))
            ),
            security_context=restricted_container(),
            volume_mounts=[
                k8s.VolumeMount(name="shm", mount_path="/dev/shm"),
                k8s.VolumeMount(name="cache", mount_path=CACHE_DIR),
                k8s.VolumeMount(name="tmp", mount_path="/tmp"),
            ],
        )

        pool = "neuron" if neuron else "gpu"
        k8s.KubeDeployment(
            self,
            "deployment",
            metadata=k8s.ObjectMeta(name=name, namespace=wiring.namespace, labels=all_labels, annotations=annotations),
            spec=k8s.DeploymentSpec(
                # No `replicas`: KEDA's HPA owns the count; a value here would fight it on every apply.
                selector=k8s.LabelSelector(match_labels=self.selector),
                strategy=k8s.DeploymentStrategy(
                    type="RollingUpdate",
                    # Never below capacity during a rollout: the new replica must be ready first.
                    rolling_update=k8s.RollingUpdateDeployment(
                        max_surge=k8s.IntOrString.from_number(1), max_unavailable=k8s.IntOrString.from_number(0)
                    ),
                ),
                template=k8s.PodTemplateSpec(
                    metadata=k8s.ObjectMeta(labels=all_labels),
                    spec=k8s.PodSpec(
                        service_account_name=wiring.service_account,
                        automount_service_account_token=False,
                        termination_grace_period_seconds=termination_grace_seconds(settings),
                        security_context=restricted_pod(),
                        containers=[container],
                        volumes=[
                            k8s.Volume(
                                name="shm",
                                empty_dir=k8s.EmptyDirVolumeSource(
                                    medium="Memory", size_limit=k8s.Quantity.from_string(f"{settings.shm_size_gib}Gi")
                                ),
                            ),
                            k8s.Volume(
                                name="cache",
                                empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("50Gi")),
                            ),
                            k8s.Volume(
                                name="tmp",
                                empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("2Gi")),
                            ),
                        ],
                        tolerations=[k8s.Toleration(key=device_resource, operator="Exists", effect="NoSchedule")],
                        affinity=k8s.Affinity(
                            node_affinity=k8s.NodeAffinity(
                                required_during_scheduling_ignored_during_execution=k8s.NodeSelector(
                                    node_selector_terms=[
                                        k8s.NodeSelectorTerm(
                                            match_expressions=[
                                                k8s.NodeSelectorRequirement(
                                                    key=POOL_LABEL, operator="In", values=[pool]
                                                )
                                            ]
                                        )
                                    ]
                                )
                            )
                        ),
                        # Spread over zones when capacity allows; never refuse to scale out for it:
                        # GPU capacity in one zone beats no capacity.
                        topology_spread_constraints=[
                            k8s.TopologySpreadConstraint(
                                max_skew=1,
                                topology_key="topology.kubernetes.io/zone",
                                when_unsatisfiable="ScheduleAnyway",
                                label_selector=k8s.LabelSelector(match_labels=self.selector),
                            )
                        ],
                    ),
                ),
            ),
        )

        k8s.KubeService(
            self,
            "service",
            metadata=meta,
            spec=k8s.ServiceSpec(
                type="ClusterIP",
                selector=self.selector,
                ports=[k8s.ServicePort(name="http", port=PORT, target_port=k8s.IntOrString.from_string("http"))],
            ),
        )

        # A voluntary disruption (drain for drift, expiry, a person's `kubectl drain`) never takes the last
        # Ready replica: with one replica the eviction waits until a second one is Ready (`kubectl rollout
        # restart` surges one) or the pool's terminationGracePeriod ends the drain by force. A replica that is
        # not Ready may always be evicted, so a crash-looping pod cannot pin a node.
        k8s.KubePodDisruptionBudget(
            self,
            "pdb",
            metadata=meta,
            spec=k8s.PodDisruptionBudgetSpec(
                min_available=k8s.IntOrString.from_number(1),
                unhealthy_pod_eviction_policy="AlwaysAllow",
                selector=k8s.LabelSelector(match_labels=self.selector),
            ),
        )

        k8s.KubeNetworkPolicy(
            self,
            "network-policy",
            metadata=meta,
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=self.selector),
                policy_types=["Ingress", "Egress"],
                ingress=[
                    k8s.NetworkPolicyIngressRule(
                        from_=[namespace_peer(wiring.gateway_namespace), namespace_peer(wiring.metrics_namespace)],
                        ports=[port(PORT)],
                    )
                ],
                # DNS, S3 (weights, through the gateway endpoint) and the Pod Identity agent; nothing else.
                egress=[dns_egress(), https_egress(), pod_identity_egress()],
            ),
        )
