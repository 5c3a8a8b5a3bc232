"""Which instances the configuration's pods land on, and how many of them a scale needs.

Sizes come from EC2 DescribeInstanceTypes (vCPUs, memory, NVIDIA GPUs, Neuron devices), never from a table in
this file. A vLLM replica asks for `inference.vllm.gpus_per_replica` devices (`nvidia.com/gpu`, or
`aws.amazon.com/neuron` for the neuron accelerator), `cpu` cores and `memory_gib` (k8s/vllm.py); the pool may
launch any size of its families, and for a pending replica Auto Mode (Karpenter) launches the cheapest type that
fits it. Each family's smallest size that fits one replica is that family's candidate.

"Fits" here is an approximation stated in the output: a size holds k replicas when it has k x the devices and
strictly more vCPUs and memory than k replicas request, leaving room for the kubelet, the OS and DaemonSets; the
exact allocatable is Auto Mode's to decide.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from platform_config import PlatformConfig

# The LiteLLM container's requests (k8s/gateway.py, GatewayChart: requests cpu "1", memory "1Gi");
# tests/test_ops_cost.py renders the gateway chart and fails when they change.
GATEWAY_CPU_REQUEST = 1.0
GATEWAY_MEMORY_REQUEST_GIB = 1.0

# An EC2 instance type name: family, a dot, a size (`g6.xlarge`, `p6-b200.48xlarge`, `m7i.large`).
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9-]+")


@dataclass(frozen=True)
class InstanceSpec:
    """An instance type's size, as DescribeInstanceTypes reports it."""

    name: str
    vcpus: int
    memory_mib: int
    gpus: int
    neuron_devices: int

    @property
    def family(self) -> str:
        return family_of(self.name)

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024


def family_of(instance_type: str) -> str:
    """`g6.xlarge` -> `g6`: the value of the `eks.amazonaws.com/instance-family` label."""
    return instance_type.split(".", 1)[0]


@dataclass(frozen=True)
class ReplicaShape:
    """What one vLLM replica requests."""

    devices: int
    device_kind: str  # "NVIDIA GPU" or "Neuron device"
    cpu: float
    memory_gib: float

    @classmethod
    def of(cls, config: PlatformConfig) -> ReplicaShape:
        vllm = config.inference.vllm
        neuron = vllm.accelerator == "neuron"
        return cls(
            devices=vllm.gpus_per_replica,
            device_kind="Neuron device" if neuron else "NVIDIA GPU",
            cpu=float(vllm.cpu),
            memory_gib=float(vllm.memory_gib),
        )

    def devices_of(self, spec: InstanceSpec) -> int:
        return spec.neuron_devices if self.device_kind == "Neuron device" else spec.gpus

    def replicas_per_node(self, spec: InstanceSpec) -> int:
        """How many replicas one node of `spec` holds (0: not even one)."""
        by_devices = self.devices_of(spec) // self.devices
        # Strictly more than k replicas request: the largest k with k * request < capacity.
        by_cpu = math.ceil(spec.vcpus / self.cpu) - 1
        by_memory = math.ceil(spec.memory_gib / self.memory_gib) - 1
        return max(0, min(by_devices, by_cpu, by_memory))

    def describe(self) -> str:
        return f"{self.devices} {self.device_kind}(s), {self.cpu:g} vCPU, {self.memory_gib:g} GiB"


@dataclass(frozen=True)
class Candidate:
    """A family's smallest size that fits a replica, or why the family has none."""

    family: str
    spec: InstanceSpec | None
    replicas_per_node: int
    reason: str = ""


@dataclass(frozen=True)
class AcceleratorPool:
    """The node pool vLLM runs on, as configured."""

    name: str  # "gpu" or "neuron"
    families: tuple[str, ...]
    capacity_types: tuple[str, ...]

    @classmethod
    def of(cls, config: PlatformConfig) -> AcceleratorPool:
        pools = config.inference.node_pools
        if config.inference.vllm.accelerator == "neuron":
            return cls("neuron", tuple(pools.neuron.instance_families), tuple(pools.neuron.capacity_types))
        return cls("gpu", tuple(pools.gpu.instance_families), tuple(pools.gpu.capacity_types))

    @property
    def allows_spot(self) -> bool:
        return "spot" in self.capacity_types


def candidates(pool: AcceleratorPool, shape: ReplicaShape, specs: Mapping[str, InstanceSpec]) -> list[Candidate]:
    """Per family of the pool, the smallest size (fewest devices, then vCPUs, then memory) holding a replica."""
    found = []
    for family in pool.families:
        sizes = [spec for spec in specs.values() if spec.family == family]
        if not sizes:
            found.append(Candidate(family, None, 0, "no size of this family in the region's instance types"))
            continue
        fitting = sorted(
            (s for s in sizes if shape.replicas_per_node(s) >= 1),
            key=lambda s: (shape.devices_of(s), s.vcpus, s.memory_mib),
        )
        if not fitting:
            found.append(Candidate(family, None, 0, f"no size holds one replica ({shape.describe()})"))
            continue
        best = fitting[0]
        found.append(Candidate(family, best, shape.replicas_per_node(best)))
    return found


def nodes_for(replicas: int, replicas_per_node: int) -> int:
    return math.ceil(replicas / replicas_per_node)


def gateway_share(spec: InstanceSpec) -> float:
    """The share of one node a gateway replica takes: the larger of its CPU and memory fractions."""
    return max(GATEWAY_CPU_REQUEST / spec.vcpus, GATEWAY_MEMORY_REQUEST_GIB / spec.memory_gib)


def spec_from_ec2(info: Mapping[str, object]) -> InstanceSpec:
    """An InstanceSpec from one DescribeInstanceTypes `InstanceTypes` entry."""

    def count(section: str, devices: str) -> int:
        block = info.get(section) or {}
        assert isinstance(block, Mapping)
        entries = block.get(devices) or []
        assert isinstance(entries, list)
        return sum(int(entry.get("Count", 0)) for entry in entries)

    vcpu = info.get("VCpuInfo") or {}
    memory = info.get("MemoryInfo") or {}
    assert isinstance(vcpu, Mapping)
    assert isinstance(memory, Mapping)
    return InstanceSpec(
        name=str(info["InstanceType"]),
        vcpus=int(vcpu["DefaultVCpus"]),
        memory_mib=int(memory["SizeInMiB"]),
        gpus=count("GpuInfo", "Gpus"),
        neuron_devices=count("NeuronInfo", "NeuronDevices"),
    )
