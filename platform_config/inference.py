"""Settings of the inference tier: node pools, the vLLM server, its autoscaling, the signal path.

Figures without a source in a comment are product choices, not measurements; the cold-start budget
they must respect is in `platform_config/cold_start.py` with its sources.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from platform_config.base import DigestPinnedImage, SecretName, Settings, matching
from platform_config.cold_start import COLD_START

CapacityType = Literal["spot", "on-demand"]
# NVIDIA GPU instance families EKS Auto Mode can launch for inference (EC2 accelerated computing).
GpuFamily = Literal["g4dn", "g5", "g6", "g6e", "gr6", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200"]
NeuronFamily = Literal["inf2", "trn1", "trn1n", "trn2"]
CpuCategory = Literal["c", "m", "r"]
# Kubernetes resource quantity of storage, as the NodeClass schema accepts it.
StorageSize = Annotated[
    str, AfterValidator(matching(r"[1-9][0-9]{1,4}Gi", "a size in Gi from 10Gi to 99999Gi, like 200Gi"))
]
ServedModelName = Annotated[
    str,
    AfterValidator(
        matching(
            r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}", "up to 63 letters, digits and '._-', starting with a letter or digit"
        )
    ),
]
# A Hugging Face model id, `organisation/name` or `name` (Hugging Face Hub repository naming: letters,
# digits, '-', '_', '.', at most 96 characters per part). It becomes an S3 key prefix, so no URL or path.
HuggingFaceModelId = Annotated[
    str,
    AfterValidator(
        matching(
            r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?",
            "a Hugging Face model id like meta-llama/Llama-3.1-8B-Instruct (letters, digits, '._-', at most one "
            "'/'), not a URL or a path",
        )
    ),
]
BucketPrefix = Annotated[
    str,
    AfterValidator(
        matching(
            r"[a-z0-9][a-z0-9._/-]*[a-z0-9]",
            "an S3 key prefix of lowercase letters, digits and '._/-', starting and ending with a letter or digit",
        )
    ),
]
WholeCores = Annotated[str, AfterValidator(matching(r"[1-9][0-9]*", "a whole number of CPU cores, like 3"))]

# Auto Mode replaces every node after at most 21 days (EKS User Guide, auto-learn; FACTS.md).
AUTO_MODE_MAX_NODE_LIFETIME_HOURS = 21 * 24


class NodeClassSettings(Settings):
    """Node storage: gp3 data volume, encrypted with the foundation's node-volume key."""

    ephemeral_storage: StorageSize = Field("100Gi", description="Data volume size (images, caches, emptyDirs).")
    iops: int = Field(3000, ge=3000, le=16000, description="gp3 IOPS of the data volume.")
    throughput: int = Field(125, ge=125, le=1000, description="gp3 throughput (MiB/s) of the data volume.")


class PoolDisruption(Settings):
    # WhenEmpty on accelerator pools: moving a running vLLM replica to a cheaper node costs a cold start
    # (minutes) of capacity; an empty node is still removed after consolidate_after_seconds.
    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = Field(
        "WhenEmpty",
        description="Which nodes Auto Mode may consolidate: only empty ones, or underused ones too (their pods move).",
    )
    consolidate_after_seconds: int = Field(
        900, ge=0, description="How long a node stays empty or underused before it is consolidated."
    )
    expire_after_hours: int = Field(
        336,
        ge=1,
        le=AUTO_MODE_MAX_NODE_LIFETIME_HOURS,
        description="Node lifetime before replacement; Auto Mode's maximum is 21 days (504 h).",
    )
    max_nodes_disrupted: int = Field(1, ge=1, description="Nodes a voluntary disruption may take at once.")
    # Auto Mode applies 24 h when none is set (EKS User Guide, create-node-pool); set explicitly so the bound
    # on a drain blocked by a PodDisruptionBudget is visible in the manifest.
    termination_grace_period_hours: int = Field(
        24,
        ge=1,
        le=168,
        description="How long a drain may wait on a PodDisruptionBudget before Auto Mode deletes the pods anyway.",
    )

    @model_validator(mode="after")
    def _within_auto_mode_lifetime(self) -> PoolDisruption:
        lifetime = self.expire_after_hours + self.termination_grace_period_hours
        if lifetime > AUTO_MODE_MAX_NODE_LIFETIME_HOURS:
            raise ValueError(
                f"expire_after_hours ({self.expire_after_hours}) + termination_grace_period_hours "
                f"({self.termination_grace_period_hours}) is {lifetime} h, past Auto Mode's 21-day node lifetime "
                f"({AUTO_MODE_MAX_NODE_LIFETIME_HOURS} h), which ends a blocked drain by force"
            )
        return self


def _distinct(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} lists a value twice: {list(values)}")
    return values


class GpuPoolSettings(Settings):
    instance_families: tuple[GpuFamily, ...] = Field(
        ("g6", "g6e", "g5"), min_length=1, description="NVIDIA instance families of the gpu NodePool."
    )
    capacity_types: tuple[CapacityType, ...] = Field(
        ("spot", "on-demand"),
        min_length=1,
        description="With both, Auto Mode picks Spot when it is available and falls back to On-Demand.",
    )
    gpu_limit: int = Field(8, ge=1, description="Most nvidia.com/gpu the pool may hold at once (a cost cap).")
    node_class: NodeClassSettings = NodeClassSettings(ephemeral_storage="200Gi")
    disruption: PoolDisruption = PoolDisruption()

    @model_validator(mode="after")
    def _distinct_values(self) -> GpuPoolSettings:
        _distinct(self.instance_families, "instance_families")
        _distinct(self.capacity_types, "capacity_types")
        return self


class NeuronPoolSettings(Settings):
    enabled: bool = Field(True, description="Create the neuron NodePool (it costs nothing until a pod needs it).")
    instance_families: tuple[NeuronFamily, ...] = Field(("inf2", "trn1", "trn2"), min_length=1)
    capacity_types: tuple[CapacityType, ...] = Field(("on-demand",), min_length=1)
    neuron_device_limit: int = Field(16, ge=1, description="Most aws.amazon.com/neuron devices at once.")
    node_class: NodeClassSettings = NodeClassSettings(ephemeral_storage="200Gi")
    disruption: PoolDisruption = PoolDisruption()


class CpuPoolSettings(Settings):
    instance_categories: tuple[CpuCategory, ...] = Field(("c", "m", "r"), min_length=1)
    capacity_types: tuple[CapacityType, ...] = Field(("spot", "on-demand"), min_length=1)
    cpu_limit: int = Field(64, ge=1, description="Most vCPUs the cpu pool may hold at once.")
    memory_limit_gib: int = Field(256, ge=1, description="Most memory (GiB) the cpu pool may hold at once.")
    node_class: NodeClassSettings = NodeClassSettings()
    disruption: PoolDisruption = PoolDisruption(
        consolidation_policy="WhenEmptyOrUnderutilized", consolidate_after_seconds=60
    )


class NodePoolSettings(Settings):
    network_policy: Literal["DefaultAllow", "DefaultDeny"] = Field(
        "DefaultAllow",
        description="NodeClass network policy default. Workload namespaces carry their own default-deny "
        "NetworkPolicy either way; DefaultDeny also blocks pods whose namespace has none.",
    )
    gpu: GpuPoolSettings = GpuPoolSettings()
    neuron: NeuronPoolSettings = NeuronPoolSettings()
    cpu: CpuPoolSettings = CpuPoolSettings()


class VllmSettings(Settings):
    """The vLLM OpenAI-compatible server and the model it serves."""

    accelerator: Literal["nvidia", "neuron"] = Field("nvidia", description="GPU (gpu pool) or Neuron (neuron pool).")
    # The v0.11.0 multi-arch image (V1 engine: the metric names FACTS.md lists; runai streamer built in).
    # Check a new digest with `docker buildx imagetools inspect vllm/vllm-openai:<tag>` before changing it.
    image: DigestPinnedImage = Field(
        "vllm/vllm-openai:v0.11.0@sha256:014a95f21c9edf6abe0aea6b07353f96baa4ec291c427bb1176dc7c93a85845c",
        description="Server image for accelerator nvidia, pinned by digest.",
    )
    neuron_image: DigestPinnedImage | None = Field(
        None,
        description="Server image for accelerator neuron (an AWS Neuron vLLM image), pinned by digest; "
        "required when accelerator is neuron.",
    )
    model: HuggingFaceModelId = Field("meta-llama/Llama-3.1-8B-Instruct", description="Hugging Face model id.")
    served_model_name: ServedModelName = Field(
        "llama-3.1-8b-instruct", description="Model name clients request (and LiteLLM routes to)."
    )
    max_model_len: int = Field(8192, ge=256, le=131072, description="--max-model-len (context length).")
    gpu_memory_utilization: float = Field(
        0.90, gt=0, lt=1, description="--gpu-memory-utilization: share of GPU memory for weights and KV cache."
    )
    max_num_seqs: int = Field(32, ge=1, le=1024, description="--max-num-seqs: sequences batched at once.")
    enable_prefix_caching: bool = Field(True, description="--enable-prefix-caching.")
    gpus_per_replica: int = Field(1, ge=1, le=8, description="GPUs (tensor parallel size) per replica.")
    streamer_concurrency: int = Field(
        32, ge=1, le=256, description="Run:ai streamer S3 concurrency (32 measured fastest; runai-model-streamer docs)."
    )
    longest_request_seconds: int = Field(
        600, ge=30, description="Longest request a replica must finish while draining (sizes the grace period)."
    )
    pre_stop_delay_seconds: int = Field(
        15, ge=5, le=120, description="Wait after SIGTERM is scheduled so the endpoint leaves the Service first."
    )
    # Sized so one replica fits the smallest 24 GB GPU instance, g6.xlarge (4 vCPU, 16 GiB).
    cpu: WholeCores = Field("3", description="CPU request per replica (cores).")
    memory_gib: int = Field(12, ge=8, description="Memory request and limit per replica (GiB).")
    shm_size_gib: int = Field(
        2, ge=1, description="/dev/shm size (tensor-parallel workers share memory here; counts against memory)."
    )
    streamer_memory_limit_gib: int = Field(
        4, ge=1, description="CPU buffer of the Run:ai streamer (unlimited by default: it would hold all weights)."
    )

    @model_validator(mode="after")
    def _memory_fits(self) -> VllmSettings:
        if self.shm_size_gib + self.streamer_memory_limit_gib >= self.memory_gib:
            raise ValueError(
                f"shm_size_gib ({self.shm_size_gib}) + streamer_memory_limit_gib ({self.streamer_memory_limit_gib}) "
                f"must leave room for the server within memory_gib ({self.memory_gib})"
            )
        return self

    @model_validator(mode="after")
    def _image_for_accelerator(self) -> VllmSettings:
        if self.accelerator == "neuron" and self.neuron_image is None:
            raise ValueError("accelerator 'neuron' needs neuron_image (a Neuron vLLM image pinned by digest)")
        return self

    @property
    def server_image(self) -> str:
        return self.neuron_image if self.accelerator == "neuron" and self.neuron_image else self.image


class VllmAutoscalingSettings(Settings):
    """One KEDA ScaledObject for vLLM; thresholds are per replica."""

    min_replicas: int = Field(1, ge=1, description="Replicas that stay up (no scale to zero: cold start is minutes).")
    max_replicas: int = Field(4, ge=1, description="Most replicas (with gpus_per_replica, bounded by gpu_limit).")
    fallback_replicas: int = Field(2, ge=1, description="Replicas held while the metrics cannot be read.")
    polling_interval_seconds: int = Field(5, ge=1, le=60, description="KEDA polling interval.")
    # production-stack scales on 5 waiting requests and llm-d queues at 5 (FACTS.md, Autoscaling).
    queue_depth_per_replica: float = Field(5, gt=0, description="vllm:num_requests_waiting per replica.")
    # llm-d's KV-cache threshold (FACTS.md, Autoscaling).
    kv_cache_usage: float = Field(0.8, gt=0, le=1, description="vllm:kv_cache_usage_perc, averaged per replica.")
    ttft_p95_seconds: float = Field(
        2.0, gt=0, description="p95 time to first token (product target for interactive chat)."
    )
    # ~80% of the 513 output tok/s an L4 sustains on Llama-3.1-8B (arc53/llm-price-compass, FACTS.md).
    generation_tokens_per_second_per_replica: float = Field(400, gt=0, description="Output tokens/s per replica.")
    dcgm_gpu_utilization_trigger: bool = Field(
        False,
        description="Also scale on DCGM GPU utilisation. Off: it sits near 100% whenever any batch runs "
        "(EKS User Guide ML pages; llm-d).",
    )
    dcgm_gpu_utilization_percent: float = Field(90, gt=0, le=100, description="Threshold of that trigger.")
    scale_up_pods_per_period: int = Field(2, ge=1, description="Most replicas added per scale-up period.")
    scale_up_period_seconds: int = Field(30, ge=1, le=1800)
    scale_down_stabilization_seconds: int = Field(
        900, ge=0, le=3600, description="Scale-down waits this long at low load (must outlast a cold start)."
    )
    scale_down_pods_per_period: int = Field(1, ge=1)
    scale_down_period_seconds: int = Field(120, ge=1, le=1800)

    @model_validator(mode="after")
    def _replica_bounds(self) -> VllmAutoscalingSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must be less than or equal to max_replicas ({self.max_replicas})"
            )
        if not self.min_replicas <= self.fallback_replicas <= self.max_replicas:
            raise ValueError(
                f"fallback_replicas ({self.fallback_replicas}) must lie between min_replicas "
                f"({self.min_replicas}) and max_replicas ({self.max_replicas})"
            )
        return self


class MetricsSettings(Settings):
    """The in-cluster Prometheus that KEDA reads scaling signals from."""

    scrape_interval_seconds: int = Field(
        5, ge=1, le=10, description="Scrape interval of vLLM and DCGM (<= 10 s keeps scaling reaction <= 30 s)."
    )
    retention_days: int = Field(
        # At least 3: the SLO ticket alerts read a 3-day window (k8s/alert_rules.py).
        7,
        ge=3,
        le=90,
        description="Local TSDB retention (>= 3, the SLO alerts' longest window); "
        "observability.managed_prometheus keeps a durable copy.",
    )
    storage_gib: int = Field(50, ge=10, description="Prometheus persistent volume size (GiB).")


class ModelStoreSettings(Settings):
    """Model weights in S3 and the one-shot Job that fills the bucket from Hugging Face."""

    bucket_prefix: BucketPrefix = Field("models", description="Key prefix of model weights in the bucket.")
    download_job: bool = Field(False, description="Run the Job that copies the model from Hugging Face.")
    # The official AWS CLI image, pinned by digest: it fetches the token and uploads the weights.
    tools_image: DigestPinnedImage = Field(
        "amazon/aws-cli:2.27.50@sha256:48c3d4212e2f5b0e24bdc6af7708f9412ce65425a79575e0f78b8f8c0dcd70ab",
        description="AWS CLI image used by the download Job, pinned by digest.",
    )
    hf_token_secret_name: SecretName | None = Field(
        None,
        description="Secrets Manager secret holding the Hugging Face token (created by you, never in config).",
    )

    @model_validator(mode="after")
    def _token_for_download(self) -> ModelStoreSettings:
        if self.download_job and not self.hf_token_secret_name:
            raise ValueError("download_job needs hf_token_secret_name (gated models such as Llama need a token)")
        return self


class InferenceSettings(Settings):
    node_pools: NodePoolSettings = NodePoolSettings()
    vllm: VllmSettings = VllmSettings()
    autoscaling: VllmAutoscalingSettings = VllmAutoscalingSettings()
    metrics: MetricsSettings = MetricsSettings()
    model_store: ModelStoreSettings = ModelStoreSettings()

    @model_validator(mode="after")
    def _fits_the_pools(self) -> InferenceSettings:
        gpus_at_max = self.autoscaling.max_replicas * self.vllm.gpus_per_replica
        if self.vllm.accelerator == "nvidia" and gpus_at_max > self.node_pools.gpu.gpu_limit:
            raise ValueError(
                f"autoscaling.max_replicas x vllm.gpus_per_replica ({gpus_at_max}) exceeds "
                f"node_pools.gpu.gpu_limit ({self.node_pools.gpu.gpu_limit})"
            )
        budget = COLD_START.total_seconds
        if self.autoscaling.scale_down_stabilization_seconds < budget:
            raise ValueError(
                f"autoscaling.scale_down_stabilization_seconds ({self.autoscaling.scale_down_stabilization_seconds}) "
                f"must outlast the cold-start budget ({budget} s)"
            )
        pool = self.node_pools.neuron if self.vllm.accelerator == "neuron" else self.node_pools.gpu
        if pool.disruption.consolidate_after_seconds < budget:
            raise ValueError(
                f"node_pools.{'neuron' if self.vllm.accelerator == 'neuron' else 'gpu'}.disruption."
                f"consolidate_after_seconds ({pool.disruption.consolidate_after_seconds}) must outlast the "
                f"cold-start budget ({budget} s)"
            )
        if self.vllm.accelerator == "neuron" and not self.node_pools.neuron.enabled:
            raise ValueError("vllm.accelerator 'neuron' needs node_pools.neuron.enabled")
        return self
