"""The names the delivery pipeline and each environment's verification stack agree on before either exists.

The pipeline stack is deployed first and every environment's stacks after it, possibly in other accounts, so neither
side can reference the other's resources (CDK refuses references across Stage boundaries, and an IAM principal that
does not exist yet is refused in a bucket or key policy). Both sides build the same physical names from config
instead: the pipeline's role, its artifact bucket, and per environment the verification project and the role the
pipeline assumes to start it.
"""

from __future__ import annotations

from dataclasses import dataclass

from platform_config import DeliverySettings, PlatformConfig


@dataclass(frozen=True)
class PipelineIdentity:
    """Where the pipeline lives and what its fixed-name resources are called."""

    name: str  # the project name (config `name`), prefix of the pipeline's resources
    account: str
    region: str

    @classmethod
    def of(cls, delivery: DeliverySettings, name: str) -> PipelineIdentity:
        # DeliverySettings' validation requires both with the pipeline on.
        assert delivery.account is not None
        assert delivery.region is not None
        return cls(name=name, account=delivery.account, region=delivery.region)

    @property
    def stack_name(self) -> str:
        return f"{self.name}-delivery"

    @property
    def pipeline_name(self) -> str:
        return f"{self.name}-delivery"

    @property
    def pipeline_role_name(self) -> str:
        return f"{self.name}-delivery-pipeline"

    @property
    def artifact_bucket_name(self) -> str:
        # Bucket names are global: the account and region keep this one unique. At most 63 characters (S3 bucket
        # naming rules): name <= 20 + "-artifacts-" 11 + account 12 + "-" 1 + region <= 14 (ap-southeast-4) = 58.
        return f"{self.name}-artifacts-{self.account}-{self.region}"

    def verify_project_name(self, config: PlatformConfig) -> str:
        return f"{config.prefix}-verify"

    def verify_action_role_name(self, config: PlatformConfig) -> str:
        return f"{config.prefix}-verify-action"

    def verify_build_role_name(self, config: PlatformConfig) -> str:
        return f"{config.prefix}-verify-build"
