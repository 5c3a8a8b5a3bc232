"""Typed helpers for the custom resources the platform synthesizes, one per kind.

cdk8s has no typed classes for these CRDs here, so each kind gets one small function that takes
typed arguments and builds the raw `ApiObject`. In Python, `ApiObject(spec=...)` raises TypeError
(FACTS.md, cdk8s-plus), so the spec is added with a JSON patch: that escape hatch lives only here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cdk8s
from constructs import Construct


def custom_resource(
    scope: Construct,
    id: str,
    *,
    api_version: str,
    kind: str,
    name: str,
    namespace: str | None,
    spec: Mapping[str, Any],
    labels: Mapping[str, str] | None = None,
) -> cdk8s.ApiObject:
    """An ApiObject of a custom kind with its spec (the one place the JSON-patch escape hatch is used)."""
    obj = cdk8s.ApiObject(
        scope,
        id,
        api_version=api_version,
        kind=kind,
        metadata=cdk8s.ApiObjectMetadata(name=name, namespace=namespace, labels=dict(labels or {})),
    )
    obj.add_json_patch(cdk8s.JsonPatch.add("/spec", dict(spec)))
    return obj


# --- eks.amazonaws.com/v1 NodeClass -----------------------------------------------------------------


@dataclass(frozen=True)
class NodeClassSpec:
    role: str
    subnet_terms: Sequence[Mapping[str, Any]]
    security_group_terms: Sequence[Mapping[str, Any]]
    ephemeral_storage: str
    iops: int
    throughput: int
    kms_key_arn: str
    network_policy: str
    tags: Mapping[str, str] = field(default_factory=dict)


def node_class(scope: Construct, id: str, *, name: str, spec: NodeClassSpec) -> cdk8s.ApiObject:
    return custom_resource(
        scope,
        id,
        api_version="eks.amazonaws.com/v1",
        kind="NodeClass",
        name=name,
        namespace=None,
        spec={
            "role": spec.role,
            "subnetSelectorTerms": [dict(term) for term in spec.subnet_terms],
            "securityGroupSelectorTerms": [dict(term) for term in spec.security_group_terms],
            "ephemeralStorage": {
                "size": spec.ephemeral_storage,
                "iops": spec.iops,
                "throughput": spec.throughput,
                "kmsKeyID": spec.kms_key_arn,
            },
            "networkPolicy": spec.network_policy,
            "networkPolicyEventLogs": "Disabled",
            **({"tags": dict(spec.tags)} if spec.tags else {}),
        },
    )


# --- karpenter.sh/v1 NodePool ---------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    values: Sequence[str]
    operator: str = "In"

    def render(self) -> dict[str, Any]:
        return {"key": self.key, "operator": self.operator, "values": list(self.values)}


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str = "NoSchedule"

    def render(self) -> dict[str, str]:
        return {"key": self.key, "effect": self.effect}


@dataclass(frozen=True)
class NodePoolSpec:
    node_class: str
    requirements: Sequence[Requirement]
    limits: Mapping[str, str]
    consolidation_policy: str
    consolidate_after: str
    expire_after: str
    termination_grace_period: str
    max_nodes_disrupted: int
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Taint] = ()
    weight: int | None = None


def node_pool(scope: Construct, id: str, *, name: str, spec: NodePoolSpec) -> cdk8s.ApiObject:
    template_spec: dict[str, Any] = {
        "nodeClassRef": {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": spec.node_class},
        "requirements": [r.render() for r in spec.requirements],
        "expireAfter": spec.expire_after,
        "terminationGracePeriod": spec.termination_grace_period,
    }
    if spec.taints:
        template_spec["taints"] = [t.render() for t in spec.taints]
    body: dict[str, Any] = {
        "template": {"metadata": {"labels": dict(spec.labels)}, "spec": template_spec},
        "limits": dict(spec.limits),
        "disruption": {
            "consolidationPolicy": spec.consolidation_policy,
            "consolidateAfter": spec.consolidate_after,
            "budgets": [{"nodes": str(spec.max_nodes_disrupted)}],
        },
    }
    if spec.weight is not None:
        body["weight"] = spec.weight
    return custom_resource(
        scope, id, api_version="karpenter.sh/v1", kind="NodePool", name=name, namespace=None, spec=body
    )


# --- keda.sh/v1alpha1 ScaledObject ----------------------------------------------------------------


@dataclass(frozen=True)
class PrometheusTrigger:
    """A KEDA `prometheus` trigger. `name` labels the trigger so its query can be found by tests."""

    name: str
    server_address: str
    query: str
    threshold: float
    metric_type: str = "AverageValue"
    activation_threshold: float | None = None

    def render(self) -> dict[str, Any]:
        metadata = {"serverAddress": self.server_address, "query": self.query, "threshold": _number(self.threshold)}
        if self.activation_threshold is not None:
            metadata["activationThreshold"] = _number(self.activation_threshold)
        return {
            "type": "prometheus",
            "name": self.name,
            "metricType": self.metric_type,
            # Read at HPA request time, not from KEDA's polling cache (see autoscaling.queue_reaction_bound).
            "useCachedMetrics": False,
            "metadata": metadata,
        }


@dataclass(frozen=True)
class CpuTrigger:
    """KEDA's `cpu` trigger: average utilisation of the pods' CPU requests (needs requests set)."""

    utilization_percent: int
    name: str = "cpu"

    def render(self) -> dict[str, Any]:
        return {
            "type": "cpu",
            "name": self.name,
            "metricType": "Utilization",
            "metadata": {"value": str(self.utilization_percent)},
        }


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # Pods | Percent
    value: int
    period_seconds: int

    def render(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "periodSeconds": self.period_seconds}


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int
    policies: Sequence[ScalingPolicy]
    select_policy: str = "Max"

    def render(self) -> dict[str, Any]:
        return {
            "stabilizationWindowSeconds": self.stabilization_window_seconds,
            "selectPolicy": self.select_policy,
            "policies": [p.render() for p in self.policies],
        }


@dataclass(frozen=True)
class ScaledObjectSpec:
    deployment: str
    min_replicas: int
    max_replicas: int
    polling_interval_seconds: int
    cooldown_period_seconds: int
    fallback_replicas: int
    fallback_failure_threshold: int
    scale_up: ScalingRules
    scale_down: ScalingRules
    triggers: Sequence[PrometheusTrigger | CpuTrigger]


def scaled_object(scope: Construct, id: str, *, name: str, namespace: str, spec: ScaledObjectSpec) -> cdk8s.ApiObject:
    if not spec.min_replicas <= spec.max_replicas:
        raise ValueError(f"'minReplicaCount' ({spec.min_replicas}) must be <= 'maxReplicaCount' ({spec.max_replicas})")
    return custom_resource(
        scope,
        id,
        api_version="keda.sh/v1alpha1",
        kind="ScaledObject",
        name=name,
        namespace=namespace,
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.deployment},
            "minReplicaCount": spec.min_replicas,
            "maxReplicaCount": spec.max_replicas,
            "pollingInterval": spec.polling_interval_seconds,
            "cooldownPeriod": spec.cooldown_period_seconds,
            "fallback": {
                "failureThreshold": spec.fallback_failure_threshold,
                "replicas": spec.fallback_replicas,
            },
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "name": f"keda-hpa-{name}",
                    "behavior": {"scaleUp": spec.scale_up.render(), "scaleDown": spec.scale_down.render()},
                },
            },
            "triggers": [t.render() for t in spec.triggers],
        },
    )


def _number(value: float) -> str:
    """KEDA reads trigger metadata as strings: 5.0 -> "5", 0.8 -> "0.8"."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --- eks.amazonaws.com/v1 IngressClassParams --------------------------------------------------------


@dataclass(frozen=True)
class IngressClassParamsSpec:
    scheme: str  # internal | internet-facing
    certificate_arns: Sequence[str] = ()
    inbound_cidrs: Sequence[str] = ()
    ssl_policy: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def ingress_class_params(scope: Construct, id: str, *, name: str, spec: IngressClassParamsSpec) -> cdk8s.ApiObject:
    body: dict[str, Any] = {"scheme": spec.scheme, "ipAddressType": "ipv4"}
    if spec.certificate_arns:
        body["certificateARNs"] = list(spec.certificate_arns)
    if spec.inbound_cidrs:
        body["inboundCIDRs"] = list(spec.inbound_cidrs)
    if spec.ssl_policy:
        body["sslPolicy"] = spec.ssl_policy
    if spec.tags:
        body["tags"] = [{"key": k, "value": v} for k, v in spec.tags.items()]
    return custom_resource(
        scope, id, api_version="eks.amazonaws.com/v1", kind="IngressClassParams", name=name, namespace=None, spec=body
    )
