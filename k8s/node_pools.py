"""Custom capacity for EKS Auto Mode: a NodeClass and a karpenter.sh/v1 NodePool per kind of node.

Auto Mode's built-in pools cannot be changed (FACTS.md), so GPU, Neuron and CPU capacity come from
our own pools. Each pool is tainted (except cpu) so only pods that ask for it land there, carries a
resource limit that caps what it can cost, and consolidates no sooner than a cold start lasts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cdk8s
from constructs import Construct

from k8s.crds import NodeClassSpec, NodePoolSpec, Requirement, Taint, node_class, node_pool
from platform_config.inference import NodeClassSettings, NodePoolSettings, PoolDisruption

GPU_RESOURCE = "nvidia.com/gpu"
NEURON_RESOURCE = "aws.amazon.com/neuron"
POOL_LABEL = "platform.genai/pool"
# Well-known labels EKS Auto Mode puts on its nodes (EKS User Guide, create-node-pool).
INSTANCE_FAMILY = "eks.amazonaws.com/instance-family"
INSTANCE_CATEGORY = "eks.amazonaws.com/instance-category"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
ARCH = "kubernetes.io/arch"


@dataclass(frozen=True)
class NodeClassInputs:
    """What the foundation provides for every NodeClass."""

    role_name: str
    subnet_terms: Sequence[Mapping[str, Any]]
    security_group_terms: Sequence[Mapping[str, Any]]
    node_volume_key_arn: str


def _duration(seconds: int) -> str:
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


class NodePoolsChart(cdk8s.Chart):
    """NodeClasses and NodePools `gpu`, `neuron` (when enabled) and `cpu`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: NodePoolSettings,
        inputs: NodeClassInputs,
        labels: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id, labels=dict(labels))
        self._inputs = inputs
        self._network_policy = settings.network_policy

        gpu = settings.gpu
        self._pool(
            "gpu",
            gpu.node_class,
            gpu.disruption,
            requirements=[
                Requirement(INSTANCE_FAMILY, gpu.instance_families),
                Requirement(CAPACITY_TYPE, gpu.capacity_types),
                Requirement(ARCH, ["amd64"]),
            ],
            limits={GPU_RESOURCE: str(gpu.gpu_limit)},
            taints=[Taint(GPU_RESOURCE)],
        )
        neuron = settings.neuron
        if neuron.enabled:
            self._pool(
                "neuron",
                neuron.node_class,
                neuron.disruption,
                requirements=[
                    Requirement(INSTANCE_FAMILY, neuron.instance_families),
                    Requirement(CAPACITY_TYPE, neuron.capacity_types),
                    Requirement(ARCH, ["amd64"]),
                ],
                limits={NEURON_RESOURCE: str(neuron.neuron_device_limit)},
                taints=[Taint(NEURON_RESOURCE)],
            )
        cpu = settings.cpu
        self._pool(
            "cpu",
            cpu.node_class,
            cpu.disruption,
            requirements=[
                Requirement(INSTANCE_CATEGORY, cpu.instance_categories),
                Requirement(CAPACITY_TYPE, cpu.capacity_types),
                Requirement(ARCH, ["amd64", "arm64"]),
            ],
            limits={"cpu": str(cpu.cpu_limit), "memory": f"{cpu.memory_limit_gib}Gi"},
            taints=[],
        )

    def _pool(
        self,
        name: str,
        storage: NodeClassSettings,
        disruption: PoolDisruption,
        *,
        requirements: list[Requirement],
        limits: dict[str, str],
        taints: list[Taint],
    ) -> None:
        node_class(
            self,
            f"{name}-nodeclass",
            name=name,
            spec=NodeClassSpec(
                role=self._inputs.role_name,
                subnet_terms=self._inputs.subnet_terms,
                security_group_terms=self._inputs.security_group_terms,
                ephemeral_storage=storage.ephemeral_storage,
                iops=storage.iops,
                throughput=storage.throughput,
                kms_key_arn=self._inputs.node_volume_key_arn,
                network_policy=self._network_policy,
                # No `tags`: Auto Mode's managed policies refuse user-defined tags on the instances they
                # launch unless the cluster role gets an extra tag policy (EKS User Guide, auto-learn-iam,
                # "Custom AWS tags for EKS Auto resources"); every launch would be denied. Auto Mode's own
                # eks:eks-cluster-name / eks:kubernetes-node-pool-name tags already attribute cost per pool.
            ),
        )
        node_pool(
            self,
            f"{name}-nodepool",
            name=name,
            spec=NodePoolSpec(
                node_class=name,
                requirements=requirements,
                limits=limits,
                consolidation_policy=disruption.consolidation_policy,
                consolidate_after=_duration(disruption.consolidate_after_seconds),
                termination_grace_period=f"{disruption.termination_grace_period_hours}h",
                expire_after=f"{disruption.expire_after_hours}h",
                max_nodes_disrupted=disruption.max_nodes_disrupted,
                labels={POOL_LABEL: name},
                taints=taints,
            ),
        )
