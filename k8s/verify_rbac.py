"""What the pipeline's verify build may read in the cluster: exactly the requests `genai-ops verify` makes.

The build's IAM role has a STANDARD access entry with one Kubernetes group and no EKS access policy; this chart binds
that group to the rules below. `AmazonEKSViewPolicy` lacks nodes, custom resources and the service proxy, and
`AmazonEKSAdminViewPolicy` reads every Secret yet still cannot POST through the proxy (EKS User Guide,
access-policy-permissions), so neither fits.

The requests (ops/verify.py, ops/live.py) and the RBAC attributes the API server gives them (Kubernetes docs,
"Authorization: Determine the request verb": a GET of a collection is `list`, of one object `get`, a POST `create`;
k8s.io/apiserver `pkg/endpoints/request/requestinfo.go`: the name of `/services/<name>:<port>/proxy/...` is
`<name>:<port>` and its subresource `proxy`):

- `list` nodes (cluster-scoped): the nodes of each pool, their instances and volumes;
- `list` pods in the inference namespace: a vLLM pod holding Pod Identity credentials;
- `get` the ConfigMap `kube-system/amazon-vpc-cni`: the network policy switch;
- `list` PodDisruptionBudgets in each platform namespace;
- `list` KEDA ScaledObjects where the platform makes them (inference, and gateway when it is on);
- `get` `services/proxy` of `observability/prometheus-server:80`: Prometheus' query API;
- `get` and `create` `services/proxy` of `gateway/litellm:80`: LiteLLM's readiness and one chat completion.

`/version` (verify's first request) is open to every authenticated user (the `system:public-info-viewer` binding).
`resourceNames` pins the ConfigMap and the two proxied Services; RBAC accepts it with `create` on a subresource (the
limit on `create` is only for top-level resources, Kubernetes docs "Using RBAC Authorization", "Referring to
resources").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cdk8s
from cdk8s_plus_30 import k8s
from constructs import Construct

from ops.target import (
    LITELLM,
    LITELLM_SERVICE_PORT,
    PROMETHEUS_SERVICE,
    PROMETHEUS_SERVICE_PORT,
    VPC_CNI_CONFIG_MAP,
)
from platform_config import namespaces as ns

# The group the verify build's access entry puts its role in. EKS refuses groups starting with `system:`, `eks:`,
# `aws:`, `amazon:` or `iam:` (EKS User Guide, creating-access-entries).
VERIFY_GROUP = "genai-ops:verify"
# The Role, RoleBinding, ClusterRole and ClusterRoleBinding all carry this name.
VERIFY_RBAC_NAME = "genai-ops-verify"
RBAC_API_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Rule:
    """One RBAC rule: verbs on resources of an API group ("" is core), optionally only the named objects."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    def render(self) -> k8s.PolicyRule:
        return k8s.PolicyRule(
            api_groups=[self.api_group],
            resources=list(self.resources),
            verbs=list(self.verbs),
            resource_names=list(self.resource_names) or None,
        )


def _proxied(service: str, port: int) -> str:
    return f"{service}:{port}"


def verify_cluster_rules() -> list[Rule]:
    """The cluster-scoped reads: verify lists every node."""
    return [Rule("", ("nodes",), ("list",))]


def verify_namespaced_rules(*, gateway: bool) -> dict[str, list[Rule]]:
    """Per namespace, the reads verify makes there (`gateway`: whether the LiteLLM gateway is deployed)."""
    pdbs = Rule("policy", ("poddisruptionbudgets",), ("list",))
    scaled_objects = Rule("keda.sh", ("scaledobjects",), ("list",))
    rules: dict[str, list[Rule]] = {namespace: [pdbs] for namespace in ns.PLATFORM}
    rules[ns.INFERENCE] += [Rule("", ("pods",), ("list",)), scaled_objects]
    rules[ns.OBSERVABILITY].append(
        Rule("", ("services/proxy",), ("get",), (_proxied(PROMETHEUS_SERVICE, PROMETHEUS_SERVICE_PORT),))
    )
    if gateway:
        rules[ns.GATEWAY] += [
            scaled_objects,
            Rule("", ("services/proxy",), ("get", "create"), (_proxied(LITELLM, LITELLM_SERVICE_PORT),)),
        ]
    rules["kube-system"] = [Rule("", ("configmaps",), ("get",), (VPC_CNI_CONFIG_MAP,))]
    return rules


class VerifyRbacChart(cdk8s.Chart):
    """A ClusterRole for the cluster-scoped read, a Role per namespace for the rest, each bound to `group`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        group: str,
        gateway: bool,
        labels: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id, labels=dict(labels))
        subjects = [k8s.Subject(kind="Group", name=group, api_group=RBAC_API_GROUP)]
        self._cluster_role(verify_cluster_rules(), subjects)
        for namespace, rules in verify_namespaced_rules(gateway=gateway).items():
            self._role(namespace, rules, subjects)

    def _cluster_role(self, rules: Sequence[Rule], subjects: list[k8s.Subject]) -> None:
        k8s.KubeClusterRole(
            self,
            "cluster-role",
            metadata=k8s.ObjectMeta(name=VERIFY_RBAC_NAME),
            rules=[rule.render() for rule in rules],
        )
        k8s.KubeClusterRoleBinding(
            self,
            "cluster-role-binding",
            metadata=k8s.ObjectMeta(name=VERIFY_RBAC_NAME),
            role_ref=k8s.RoleRef(api_group=RBAC_API_GROUP, kind="ClusterRole", name=VERIFY_RBAC_NAME),
            subjects=subjects,
        )

    def _role(self, namespace: str, rules: Sequence[Rule], subjects: list[k8s.Subject]) -> None:
        metadata = k8s.ObjectMeta(name=VERIFY_RBAC_NAME, namespace=namespace)
        k8s.KubeRole(self, f"role-{namespace}", metadata=metadata, rules=[rule.render() for rule in rules])
        k8s.KubeRoleBinding(
            self,
            f"role-binding-{namespace}",
            metadata=metadata,
            role_ref=k8s.RoleRef(api_group=RBAC_API_GROUP, kind="Role", name=VERIFY_RBAC_NAME),
            subjects=subjects,
        )
