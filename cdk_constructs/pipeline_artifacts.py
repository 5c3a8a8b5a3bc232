"""The delivery pipeline's artifact store: a KMS-encrypted, TLS-only, versioned bucket with server access logs.

CDK Pipelines would otherwise create a bucket without access logs or versioning, and a key only with
`cross_account_keys` (aws-cdk-lib 2.275 pipelines codepipeline.js). Passing our own bucket with a key is what
lets stages in other accounts read the artifacts (a cross-account action needs a bucket with a key:
ArtifactBucketMustHaveKmsKey, aws-codepipeline pipeline.js).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_constructs.access_log_bucket import PACKS_WITH_S3_RULES, access_log_bucket
from compliance.acknowledgments import acknowledge


class PipelineArtifactStore(Construct):
    """The artifact bucket (fixed name, so each environment's verification role can be granted it before the
    pipeline exists), its key and its access-log bucket."""

    def __init__(
        self, scope: Construct, id: str, *, bucket_name: str, key_alias: str, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "Key",
            alias=key_alias,
            description=f"Delivery pipeline artifacts in s3://{bucket_name}",
            enable_key_rotation=True,
            # 7 days (the minimum) when the pipeline is a throwaway; 30 when it delivers to production.
            pending_window=Duration.days(7 if removal_policy == RemovalPolicy.DESTROY else 30),
            removal_policy=removal_policy,
        )
        self.access_logs = access_log_bucket(
            self,
            "AccessLogs",
            removal_policy=removal_policy,
            replication_reason="Access logs of the pipeline's artifact bucket are an audit trail for this region; a "
            "copy in a second region would add cost without serving any reader.",
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=bucket_name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            # No S3 Bucket Key: with one, the KMS encryption context is the bucket's ARN instead of the object's
            # (S3 User Guide, bucket-key), and a verification role's decrypt grant is scoped to object ARNs.
            bucket_key_enabled=False,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="artifacts/",
            # Each execution stores the source and the cloud assembly again; a year covers any execution one
            # would re-run or roll back to.
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30))
            ],
            removal_policy=removal_policy,
        )
        for pack in PACKS_WITH_S3_RULES:
            acknowledge(
                self.bucket,
                f"{pack}-S3BucketReplicationEnabled",
                "Pipeline artifacts are rebuilt from the repository by the next execution; a copy in a second "
                "region would serve no reader (the pipeline reads this bucket only in its own region).",
            )

    def allow_read(self, account: str, role_arn: str) -> None:
        """Let one role of another account read the artifacts: the bucket and key policies name that account,
        restricted to `role_arn` by `aws:PrincipalArn`.

        Not the role itself as principal: S3 and KMS refuse a policy naming a principal that does not exist yet
        ("invalid principal"), and the pipeline is deployed before the environments that create these roles.
        The role still needs its own identity policy for the bucket and key (cross-account access needs both).
        """
        principal = iam.AccountPrincipal(account).with_conditions({"ArnEquals": {"aws:PrincipalArn": role_arn}})
        # Objects and the bucket, and kms:Decrypt on the key (Bucket.grantRead on a KMS bucket).
        self.bucket.grant_read(principal)
