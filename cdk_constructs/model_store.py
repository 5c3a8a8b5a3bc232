"""Model weights in S3: KMS-encrypted, TLS-only, private, with server access logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_constructs.access_log_bucket import access_log_bucket
from compliance.acknowledgments import acknowledge

_REPLICATION_REASON = (
    "Model weights are a copy of a public Hugging Face revision and can be fetched again; "
    "cross-region replication would double storage cost for no recovery benefit."
)
_ACCESS_LOG_REPLICATION_REASON = (
    "Access logs are an audit trail of reads from the model bucket in this region; a copy in a second "
    "region would add cost without serving any reader of the platform."
)


class ModelStore(Construct):
    """The model bucket (read by vLLM through the S3 gateway endpoint) and its access-log bucket.

    Buckets are retained on stack deletion in every environment: a model copy is tens of GB that a
    failed teardown should not lose silently, and CloudFormation cannot delete a non-empty bucket.
    """

    def __init__(self, scope: Construct, id: str, *, key: kms.IKey, prefix: str) -> None:
        super().__init__(scope, id)
        self.prefix = prefix
        self.key = key
        self.access_logs = access_log_bucket(
            self, "AccessLogs", removal_policy=RemovalPolicy.RETAIN, replication_reason=_ACCESS_LOG_REPLICATION_REASON
        )
        self.bucket = s3.Bucket(
            self,
            "Models",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            # One data key per bucket instead of a KMS call per object: cheaper streamed loads.
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="models/",
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
            acknowledge(self.bucket, f"{pack}-S3BucketReplicationEnabled", _REPLICATION_REASON)

    def model_uri(self, model: str) -> str:
        return f"s3://{self.bucket.bucket_name}/{self.prefix}/{model}"

    def read_statements(self) -> list[iam.PolicyStatement]:
        """Read the model prefix and nothing else (what vLLM's streamer needs)."""
        return [
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(f"{self.prefix}/*")]),
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{self.prefix}/*", self.prefix]}},
            ),
            self._key_statement(["kms:Decrypt"]),
        ]

    def write_statements(self) -> list[iam.PolicyStatement]:
        """Write the model prefix (what the download Job needs), on top of reading it."""
        return [
            *self.read_statements(),
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[self.bucket.arn_for_objects(f"{self.prefix}/*")],
            ),
            self._key_statement(["kms:GenerateDataKey"]),
        ]

    def _key_statement(self, actions: list[str]) -> iam.PolicyStatement:
        return iam.PolicyStatement(actions=actions, resources=[self.key.key_arn])
