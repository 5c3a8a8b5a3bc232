"""Customer-managed KMS keys, one per kind of data, all with yearly rotation."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


class EncryptionKeys(Construct):
    """Keys for EKS secrets, node volumes, logs and data.

    Separate keys keep each grant narrow: the logs service can use only the logs key, and revoking the
    data key does not break the cluster.
    """

    def __init__(self, scope: Construct, id: str, *, prefix: str, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, id)
        self._prefix = prefix
        self._removal_policy = removal_policy
        self.eks_secrets = self._key("EksSecrets", "secrets", "envelope encryption of Kubernetes Secrets")
        self.node_volumes = self._key("NodeVolumes", "node-volumes", "EKS Auto Mode node volumes")
        self.logs = self._key("Logs", "logs", "CloudWatch log groups (flow logs, control plane)")
        self.data = self._key("Data", "data", "model weights and data stores")
        self._allow_cloudwatch_logs(self.logs)

    def _key(self, id: str, alias: str, purpose: str) -> kms.Key:
        return kms.Key(
            self,
            id,
            alias=f"alias/{self._prefix}/{alias}",
            description=f"{self._prefix}: {purpose}",
            enable_key_rotation=True,
            # 7 days (the minimum) in throwaway environments; 30 when keys are retained anyway.
            pending_window=Duration.days(7 if self._removal_policy == RemovalPolicy.DESTROY else 30),
            removal_policy=self._removal_policy,
        )

    @staticmethod
    def _allow_cloudwatch_logs(key: kms.Key) -> None:
        # CloudWatch Logs encrypts a log group only if the key policy admits the regional logs
        # principal, scoped by encryption context to this account's log groups (CloudWatch Logs
        # User Guide, encrypt-log-data-kms).
        log_groups_in_account = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsInThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups_in_account}},
            )
        )

    def allow_auto_mode_node_volumes(self, cluster_role: iam.IRole) -> None:
        """Let EKS Auto Mode encrypt node volumes with `node_volumes`.

        The cluster role needs the data-key actions, and CreateGrant, ListGrants and RevokeGrant restricted
        to AWS resources (EKS User Guide, auto-kms: grants are created when a volume attaches and revoked when
        it is released); a NodeClass then names this key in `ephemeralStorage.kmsKeyID`.
        """
        principal = iam.ArnPrincipal(cluster_role.role_arn)
        self.node_volumes.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowAutoModeClusterRoleToUseKey",
                principals=[principal],
                actions=["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                resources=["*"],
            )
        )
        self.node_volumes.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowAutoModeClusterRoleToAttachVolumes",
                principals=[principal],
                actions=["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                resources=["*"],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
