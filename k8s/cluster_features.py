"""Cluster-side switches that EKS Auto Mode features need besides the objects that use them."""

from __future__ import annotations

from collections.abc import Mapping

import cdk8s
from cdk8s_plus_30 import k8s
from constructs import Construct

# Auto Mode enforces NetworkPolicies only when this ConfigMap turns the controller on, in addition to the
# NodeClass `networkPolicy` setting; without it every NetworkPolicy is accepted and ignored (EKS User Guide,
# auto-net-pol, step 1).
VPC_CNI_CONFIG_MAP = "amazon-vpc-cni"
NETWORK_POLICY_SWITCH = "enable-network-policy-controller"


class ClusterFeaturesChart(cdk8s.Chart):
    """The `kube-system/amazon-vpc-cni` ConfigMap that turns network policy enforcement on."""

    def __init__(self, scope: Construct, id: str, *, labels: Mapping[str, str]) -> None:
        super().__init__(scope, id, labels=dict(labels))
        k8s.KubeConfigMap(
            self,
            "vpc-cni",
            metadata=k8s.ObjectMeta(name=VPC_CNI_CONFIG_MAP, namespace="kube-system"),
            data={NETWORK_POLICY_SWITCH: "true"},
        )
