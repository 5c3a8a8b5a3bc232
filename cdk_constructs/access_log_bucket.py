"""The S3 server access-log bucket every data bucket of the platform logs to.

A function, not a construct: it creates the bucket directly in `scope` under `id`, so the buckets it replaced keep
their construct paths and logical ids (a new logical id would make CloudFormation create a new bucket and leave the
retained one behind).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from compliance.acknowledgments import acknowledge
from compliance.checkov_skips import skip_checkov

# The cdk-nag packs with S3 encryption and replication rules (AwsSolutions has neither).
PACKS_WITH_S3_RULES = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


def access_log_bucket(
    scope: Construct, id: str, *, removal_policy: RemovalPolicy, replication_reason: str
) -> s3.Bucket:
    """SSE-S3, TLS only, private, versioned, logs kept a year; `replication_reason` says why its logs are not copied
    to a second region (cdk-nag's replication rules)."""
    bucket = s3.Bucket(
        scope,
        id,
        # S3 server access logging can only deliver to SSE-S3 buckets (S3 User Guide,
        # enable-server-access-logging), hence no KMS here.
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=True,
        lifecycle_rules=[
            s3.LifecycleRule(expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30))
        ],
        removal_policy=removal_policy,
    )
    skip_checkov(bucket, "CKV_AWS_18", "This is the access-log bucket; logging it to itself would loop.")
    for pack in PACKS_WITH_S3_RULES:
        acknowledge(
            bucket, f"{pack}-S3DefaultEncryptionKMS", "S3 server access logs can only be delivered to SSE-S3 buckets."
        )
        acknowledge(bucket, f"{pack}-S3BucketReplicationEnabled", replication_reason)
    return bucket
