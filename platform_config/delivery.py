"""How the platform is delivered: `cdk deploy --all` (the default) or a CDK Pipelines CodePipeline.

Not per environment: the pipeline is one stack that deploys every environment it lists, in order. Read from the
context key `delivery` (cdk.json) and `-c delivery.KEY=VALUE` overrides, e.g. `-c delivery.pipeline=true`.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from platform_config.base import Settings, matching
from platform_config.model import AccountId, DnsLabel, Region

# CodeConnections ARNs: `codeconnections` since the service's rename on 2024-03-29, `codestar-connections` before;
# both keep working (AWS Developer Tools console user guide, "Connections rename").
ConnectionArn = Annotated[
    str,
    AfterValidator(
        matching(
            r"arn:aws(-cn|-us-gov)?:(codeconnections|codestar-connections):[a-z]{2}(-gov)?-[a-z]+-\d:\d{12}:"
            r"connection/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "a CodeConnections connection ARN, like arn:aws:codeconnections:us-west-2:111122223333:connection/"
            "<uuid> (the console's Settings > Connections)",
        )
    ),
]
# `owner/name` (GitHub, Bitbucket) or `group/subgroup/name` (GitLab): CDK Pipelines' connection source takes 2 to 23
# slash-separated parts (aws-cdk-lib 2.275 pipelines CodePipelineSource.connection).
Repository = Annotated[
    str,
    AfterValidator(
        matching(
            r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){1,22}",
            "a repository as owner/name (letters, digits, '_', '.', '-'; GitLab groups as group/subgroup/name)",
        )
    ),
]
# A git branch name as `git check-ref-format --branch` accepts it, restricted to characters a pipeline trigger and
# a URL carry unescaped.
Branch = Annotated[
    str,
    AfterValidator(
        matching(
            r"(?!/)(?!.*//)(?!.*\.\.)(?!.*@\{)(?!.*\.lock$)(?!.*[/.]$)[A-Za-z0-9._/-]{1,255}",
            "a git branch name (letters, digits, '.', '_', '-', '/'; no '..', '//', or trailing '/' or '.')",
        )
    ),
]


class DeliverySettings(Settings):
    """The delivery pipeline, validated before anything is built."""

    pipeline: bool = Field(False, description="Build the CodePipeline stack that deploys the environments in order.")
    connection_arn: ConnectionArn | None = Field(None, description="CodeConnections connection to the repository.")
    repository: Repository | None = Field(None, description="The repository the pipeline builds, owner/name.")
    branch: Branch = Field("main", description="The branch whose pushes start the pipeline.")
    environments: tuple[DnsLabel, ...] = Field(
        ("dev", "prod"),
        description="cdk.json environments the pipeline deploys, in this order; a production one waits for approval.",
    )
    account: AccountId | None = Field(None, description="Account the pipeline stack lives in.")
    region: Region | None = Field(None, description="Region the pipeline stack lives in.")

    @model_validator(mode="after")
    def _complete_when_on(self) -> Self:
        if len(set(self.environments)) != len(self.environments):
            raise ValueError(f"environments lists an environment twice ({', '.join(self.environments)})")
        if not self.pipeline:
            return self
        missing = [key for key in ("connection_arn", "repository", "account", "region") if getattr(self, key) is None]
        if missing:
            raise ValueError(
                f"pipeline is on, so {', '.join(missing)} must be set: the pipeline reads the repository through "
                "the connection and lives in an explicit account and region (it deploys to other environments)"
            )
        if not self.environments:
            raise ValueError("pipeline is on, so environments must list at least one cdk.json environment")
        return self
