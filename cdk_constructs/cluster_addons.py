"""EKS add-ons the platform runs on every cluster."""

from __future__ import annotations

import json

from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from cdk_constructs.pod_identity import PodIdentityRole
from compliance.acknowledgments import acknowledge
from platform_config import namespaces
from platform_config.model import AddonSettings

CLOUDWATCH_ADDON = "amazon-cloudwatch-observability"
# The add-on's agent runs as this service account in this namespace (CloudWatch User Guide,
# install-CloudWatch-Observability-EKS-addon).
CLOUDWATCH_NAMESPACE = namespaces.CLOUDWATCH
CLOUDWATCH_SERVICE_ACCOUNT = "cloudwatch-agent"
METRICS_SERVER_ADDON = "metrics-server"
# Only the add-on's DCGM exporter is turned off; everything else keeps the add-on's defaults.
CLOUDWATCH_ADDON_CONFIGURATION = {"dcgmExporter": {"enabled": False}}


class ClusterAddons(Construct):
    """metrics-server (resource metrics for `kubectl top` and CPU-based scaling) and Container
    Insights with enhanced observability, whose agent gets its credentials through Pod Identity.

    The CloudWatch add-on is an L1 `CfnAddon` because the L2 `eks.Addon` has no Pod Identity
    property. Enhanced observability, and with it NVIDIA GPU metrics (`accelerated_compute_metrics`,
    on unless set false), are the add-on's defaults from v2.0.0, so its agent configuration is left as
    it is. Its own DCGM exporter is always off: the platform's DCGM exporter (cdk_constructs/helm.py
    DcgmExporter) feeds both Prometheus and this agent, one exporter per GPU node.
    """

    def __init__(self, scope: Construct, id: str, *, cluster: eks.ICluster, settings: AddonSettings) -> None:
        super().__init__(scope, id)
        self.metrics_server: eks.Addon | None = None
        self.cloudwatch: eks.CfnAddon | None = None
        self.cloudwatch_agent_identity: PodIdentityRole | None = None
        if settings.metrics_server:
            self.metrics_server = eks.Addon(
                self,
                "MetricsServer",
                cluster=cluster,
                addon_name=METRICS_SERVER_ADDON,
                addon_version=settings.metrics_server_version,
            )
        if settings.container_insights:
            self.cloudwatch_agent_identity = PodIdentityRole(
                self,
                "CloudWatchAgentIdentity",
                cluster=cluster,
                namespace=CLOUDWATCH_NAMESPACE,
                service_account=CLOUDWATCH_SERVICE_ACCOUNT,
                aws_managed_policy_names=["CloudWatchAgentServerPolicy"],
                associate=False,
            )
            acknowledge(
                self.cloudwatch_agent_identity.role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/CloudWatchAgentServerPolicy]",
                "CloudWatchAgentServerPolicy is the policy the CloudWatch User Guide prescribes for the "
                "Container Insights agent; AWS maintains it as the agent gains metrics.",
            )
            self.cloudwatch = eks.CfnAddon(
                self,
                "CloudWatchObservability",
                cluster_name=cluster.cluster_name,
                addon_name=CLOUDWATCH_ADDON,
                addon_version=settings.container_insights_version,
                resolve_conflicts="OVERWRITE",
                # The chart renders its DcgmExporter resource only `if .Values.dcgmExporter.enabled`
                # (aws-observability/helm-charts, templates/linux/dcgm-exporter-daemonset.yaml).
                configuration_values=json.dumps(CLOUDWATCH_ADDON_CONFIGURATION),
                pod_identity_associations=[
                    eks.CfnAddon.PodIdentityAssociationProperty(
                        role_arn=self.cloudwatch_agent_identity.role.role_arn,
                        service_account=CLOUDWATCH_SERVICE_ACCOUNT,
                    )
                ],
            )
