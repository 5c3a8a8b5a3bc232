"""The foundation: network, keys, the Auto Mode cluster, its add-ons and the platform namespaces.

Everything later stacks build on, with the longest lifecycle: it changes rarely and is deleted last.
"""

from __future__ import annotations

from typing import Any

import cdk8s
from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from cdk_constructs.auto_mode_cluster import AutoModeCluster
from cdk_constructs.cluster_addons import ClusterAddons
from cdk_constructs.encryption_keys import EncryptionKeys
from cdk_constructs.network import PlatformNetwork
from k8s.cluster_features import ClusterFeaturesChart
from k8s.namespaces import PlatformNamespaces, platform_labels
from k8s.storage import PlatformStorageChart
from platform_config import PlatformConfig


class FoundationStack(Stack):
    """Composes the foundation constructs; exposes `keys`, `network`, `cluster` for later stacks."""

    def __init__(self, scope: Construct, id: str, *, config: PlatformConfig, k8s_app: cdk8s.App, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        removal_policy = RemovalPolicy.RETAIN if config.removal_policy == "retain" else RemovalPolicy.DESTROY

        self.keys = EncryptionKeys(self, "Keys", prefix=config.prefix, removal_policy=removal_policy)
        self.network = PlatformNetwork(
            self,
            "Network",
            settings=config.vpc,
            availability_zones=config.availability_zones,
            logs_key=self.keys.logs,
            removal_policy=removal_policy,
            subnet_tag_value=config.prefix,
        )
        self.cluster = AutoModeCluster(
            self,
            "Eks",
            cluster_name=config.prefix,
            settings=config.cluster,
            vpc=self.network.vpc,
            secrets_key=self.keys.eks_secrets,
            logs_key=self.keys.logs,
            removal_policy=removal_policy,
        )
        self.keys.allow_auto_mode_node_volumes(self.cluster.cluster.role)
        self.addons = ClusterAddons(self, "Addons", cluster=self.cluster.interface, settings=config.addons)

        labels = platform_labels(config)
        self.namespaces = PlatformNamespaces(
            k8s_app,
            "platform-namespaces",
            namespaces=config.namespaces,
            kubernetes_version=config.cluster.kubernetes_version,
            labels=labels,
        )
        self.namespaces_manifest = self.cluster.cluster.add_cdk8s_chart("PlatformNamespaces", self.namespaces)
        self.storage = PlatformStorageChart(
            k8s_app,
            "platform-storage",
            kms_key_arn=self.keys.node_volumes.key_arn,
            retain_volumes=config.removal_policy == "retain",
            labels=labels,
        )
        self.cluster.cluster.add_cdk8s_chart("PlatformStorage", self.storage)
        CfnOutput(self, "ClusterName", value=config.prefix, description="EKS cluster name (aws eks update-kubeconfig)")
        self.features = ClusterFeaturesChart(k8s_app, "cluster-features", labels=labels)
        # overwrite: `kubectl apply` instead of `create`, so a ConfigMap someone already made (the docs tell
        # people to create it by hand) is taken over rather than failing the deployment.
        eks.KubernetesManifest(
            self, "ClusterFeatures", cluster=self.cluster.interface, manifest=self.features.to_json(), overwrite=True
        )
