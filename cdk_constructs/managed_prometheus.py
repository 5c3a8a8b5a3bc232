"""Amazon Managed Service for Prometheus: the durable copy of the in-cluster metrics, and alert delivery.

The in-cluster Prometheus remote-writes every series to a workspace encrypted with its own key, signing
with SigV4 from the credentials EKS Pod Identity gives its service account (Prometheus >= v2.49 reads
them through the AWS SDK's default chain: FACTS.md; the pinned chart runs v3.14.0). The same alerting
rules run in the workspace, and its alert manager publishes to the platform's encrypted alarm topic
(AMP's only receiver type is SNS: FACTS.md). CDK has only L1 constructs for AMP, and cdk-nag no AMP rules;
the platform's own check (compliance/eks_checks.py) requires the workspace key.
"""

from __future__ import annotations

from typing import Any

import yaml
from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_aps as aps
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from cdk_constructs.pod_identity import PodIdentityRole

# The rule groups namespace holding the platform's alerting rules inside the workspace.
RULES_NAMESPACE = "platform-alerts"
# Series names the in-cluster Prometheus keeps to itself (see ManagedPrometheus.remote_write).
NOT_REMOTE_WRITTEN = "ALERTS|ALERTS_FOR_STATE|go_.*|process_.*|python_.*"
APS_SERVICE = "aps.amazonaws.com"


def alert_manager_definition(topic_arn: str, region: str) -> str:
    """AMP's alert manager definition: an Alertmanager configuration under `alertmanager_config`, every
    alert to one SNS receiver (AMP User Guide, "Alert manager configuration" and "SNS receiver"). Grouped
    by alert name and SLO so a burn-rate page does not arrive once per window pair."""
    config = {
        "route": {
            "receiver": "alarm-topic",
            "group_by": ["alertname", "slo"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "alarm-topic",
                "sns_configs": [{"topic_arn": topic_arn, "sigv4": {"region": region}, "send_resolved": True}],
            }
        ],
    }
    # A block literal, so the definition reads as the Alertmanager file it is in the console and the template.
    inner = yaml.safe_dump(config, sort_keys=False, width=1000)
    return "alertmanager_config: |\n" + "".join(f"  {line}\n" for line in inner.splitlines())


def rule_groups_document(groups: list[dict[str, Any]]) -> str:
    """A Prometheus rule file, the format of a rule groups namespace's data."""
    return yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000)


class ManagedPrometheus(Construct):
    """A workspace (own rotating key), its rule groups and alert manager, and the remote-write identity."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        cluster: eks.ICluster,
        namespace: str,
        service_account: str,
        rule_groups: list[dict[str, Any]],
        alarm_topic: sns.ITopic,
        alarm_key: kms.IKey,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "WorkspaceKey",
            alias=f"alias/{prefix}/managed-prometheus",
            description=f"{prefix}: Amazon Managed Service for Prometheus workspace",
            enable_key_rotation=True,
            pending_window=Duration.days(7 if removal_policy == RemovalPolicy.DESTROY else 30),
            removal_policy=removal_policy,
        )
        # AMP reaches the key through a grant it creates when the workspace is created (AMP User Guide,
        # encryption-at-rest); the creator, CloudFormation's role, may do that through the key's default
        # statement for the account.
        self.workspace = aps.CfnWorkspace(
            self,
            "Workspace",
            alias=prefix,
            kms_key_arn=self.key.key_arn,
            alert_manager_definition=alert_manager_definition(alarm_topic.topic_arn, Aws.REGION),
        )
        # Retained in prod: changing the key (or this construct's id) replaces the workspace and leaves the old
        # one, with its data, billed until deleted by hand.
        self.workspace.apply_removal_policy(removal_policy)
        self.rules = aps.CfnRuleGroupsNamespace(
            self,
            "AlertingRules",
            workspace=self.workspace.attr_arn,
            name=RULES_NAMESPACE,
            data=rule_groups_document(rule_groups),
        )
        self._allow_alert_manager_to_publish(alarm_topic, alarm_key)
        self.remote_write_identity = PodIdentityRole(
            self,
            "RemoteWriteIdentity",
            cluster=cluster,
            namespace=namespace,
            service_account=service_account,
            statements=[
                iam.PolicyStatement(actions=["aps:RemoteWrite"], resources=[self.workspace.attr_arn]),
            ],
        )
        # `PrometheusEndpoint` ends with a slash: .../workspaces/ws-<id>/ (CloudFormation AWS::APS::Workspace).
        self.remote_write_url = f"{self.workspace.attr_prometheus_endpoint}api/v1/remote_write"

    def remote_write(self) -> dict[str, Any]:
        """The Prometheus `remote_write` entry: SigV4 in this region with the pod's own credentials.

        Not sent: the in-cluster `ALERTS`/`ALERTS_FOR_STATE` series (the workspace evaluates the same rules and
        writes its own) and the exporters' runtime series (Go, process, Python) and Prometheus's own, which no
        rule or dashboard reads and which AMP would bill per sample.
        """
        return {
            "url": self.remote_write_url,
            "sigv4": {"region": Aws.REGION},
            "write_relabel_configs": [
                {"source_labels": ["__name__"], "regex": NOT_REMOTE_WRITTEN, "action": "drop"},
                {"source_labels": ["job"], "regex": "prometheus", "action": "drop"},
            ],
        }

    def pod_annotations(self) -> dict[str, str]:
        """Annotations for the Prometheus server's pods, so they are recreated when the remote-write role or
        workspace changes: the chart puts no config checksum on its pods, and Prometheus v3.14 stops at start
        (and refuses a config reload) when SigV4 finds no credentials (prometheus/sigv4 v0.4.1
        NewSigV4RoundTripper), which a pod created before its Pod Identity association would never get."""
        return {
            "platform/remote-write-role": self.remote_write_identity.role.role_arn,
            "platform/remote-write-workspace": self.workspace.attr_arn,
        }

    def _allow_alert_manager_to_publish(self, topic: sns.ITopic, key: kms.IKey) -> None:
        # AMP's alert manager publishes as the aps service principal; an encrypted topic also needs its key
        # to admit it (AMP User Guide, AMP-alertmanager-receiver-AMPpermission). The topic policy is the gate
        # and names this workspace. The key statement has no conditions, as in that guide: whether SNS's KMS
        # call on AMP's behalf carries aws:SourceArn is not documented, and a condition it lacks would drop
        # every notification; the statement lets AMP use the key for nothing the topic policy does not allow.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowManagedPrometheusAlertManager",
                principals=[iam.ServicePrincipal(APS_SERVICE)],
                actions=["sns:Publish", "sns:GetTopicAttributes"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnEquals": {"aws:SourceArn": self.workspace.attr_arn},
                },
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowManagedPrometheusAlertManager",
                principals=[iam.ServicePrincipal(APS_SERVICE)],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
            )
        )
