"""NetworkPolicy building blocks shared by the platform's workloads."""

from __future__ import annotations

from cdk8s_plus_30 import k8s
from constructs import Construct

# Pod Identity agent's link-local address on every node (EKS User Guide, pod-id-how-it-works).
POD_IDENTITY_AGENT = "169.254.170.23/32"


def default_deny(scope: Construct, id: str, *, namespace: str) -> k8s.KubeNetworkPolicy:
    """Deny all traffic to and from every pod of the namespace unless another policy allows it."""
    return k8s.KubeNetworkPolicy(
        scope,
        id,
        metadata=k8s.ObjectMeta(name="default-deny", namespace=namespace),
        spec=k8s.NetworkPolicySpec(pod_selector=k8s.LabelSelector(), policy_types=["Ingress", "Egress"]),
    )


def namespace_peer(namespace: str) -> k8s.NetworkPolicyPeer:
    return k8s.NetworkPolicyPeer(
        namespace_selector=k8s.LabelSelector(match_labels={"kubernetes.io/metadata.name": namespace})
    )


def port(number: int, protocol: str = "TCP") -> k8s.NetworkPolicyPort:
    return k8s.NetworkPolicyPort(port=k8s.IntOrString.from_number(number), protocol=protocol)


def dns_egress() -> k8s.NetworkPolicyEgressRule:
    """DNS on port 53 to any address: on Auto Mode, CoreDNS runs as a node process rather than as
    kube-system pods, so a namespace selector would not match it."""
    return k8s.NetworkPolicyEgressRule(ports=[port(53, "UDP"), port(53, "TCP")])


def https_egress() -> k8s.NetworkPolicyEgressRule:
    """HTTPS to any address: AWS endpoints (S3 through its gateway endpoint, STS, Secrets Manager) use
    public prefixes that a NetworkPolicy cannot name as a CIDR."""
    return k8s.NetworkPolicyEgressRule(ports=[port(443)])


def pod_identity_egress() -> k8s.NetworkPolicyEgressRule:
    return k8s.NetworkPolicyEgressRule(
        to=[k8s.NetworkPolicyPeer(ip_block=k8s.IpBlock(cidr=POD_IDENTITY_AGENT))], ports=[port(80)]
    )
