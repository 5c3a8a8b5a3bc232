"""Applying cdk8s charts to the cluster from any stack, and remembering where each one went.

`cluster.add_cdk8s_chart` puts the manifest in the cluster's own stack; charts of later stacks
(inference, observability) are applied with a `KubernetesManifest` in their stack instead, through
the same kubectl provider. Every applied chart is recorded so that `dist/k8s/` can show each
deploy-time value (a token) as the CloudFormation expression its stack resolves it to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cdk8s
from aws_cdk import Stack
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct


@dataclass
class AppliedCharts:
    """Which stack applies which chart."""

    entries: list[tuple[cdk8s.Chart, Stack]] = field(default_factory=list)

    def apply(self, scope: Construct, id: str, *, cluster: eks.ICluster, chart: cdk8s.Chart) -> eks.KubernetesManifest:
        manifest = eks.KubernetesManifest(scope, id, cluster=cluster, manifest=chart.to_json())
        self.entries.append((chart, Stack.of(scope)))
        return manifest

    def record(self, chart: cdk8s.Chart, stack: Stack) -> None:
        self.entries.append((chart, stack))
