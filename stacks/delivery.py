"""Delivery: the self-mutating CDK Pipelines pipeline that deploys each environment's Stage in order.

Source (a CodeConnections connection) -> Build (`make test`, the pipeline-on `make synth`, the compliance and checkov
artifacts) -> UpdatePipeline (self-mutation) -> Assets -> one stage per environment: a manual approval first when the
environment is `production`, its stacks, then its verification build (`genai-ops verify` inside its VPC).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from aws_cdk.region_info import RegionInfo
from constructs import Construct, IConstruct

from cdk_constructs.pipeline_artifacts import PipelineArtifactStore
from cdk_constructs.pipeline_identity import PipelineIdentity
from cdk_constructs.pipeline_verify_step import RunVerification
from compliance.acknowledgments import acknowledge
from compliance.checkov_skips import skip_checkov
from platform_config import ConfigError, DeliverySettings, PlatformConfig

PACKAGE_JSON = Path(__file__).resolve().parent.parent / "package.json"

# What the synth step runs, from the repository's root (README, "make synth" / "make test"): every check, then the
# pipeline-on synth the later stages deploy from, then each environment's checkov results next to its report. The
# checks' own cloud assembly (dev, pipeline off) is removed first: a synth adds to cdk.out without clearing it, and
# those top-level templates would ride along in the pipeline's cloud assembly artifact (`make synth` clears dist/).
# tests/pod_contract.py reads it (the test harness is not imported here: a deployed app does not ship tests).
SANDBOX_OPTIONAL_ENV = "GENAI_POD_CONTRACT_SANDBOX"
SYNTH_COMMANDS = (
    "make test",
    "rm -rf cdk.out",
    'make synth ARGS="-c delivery.pipeline=true"',
    "make delivery-artifacts",
)
# A CodeBuild action has at most 5 output artifacts (aws-codepipeline-actions 2.275 codebuild/build-action.js,
# artifactBounds maxOutputs 5; CodePipeline User Guide, action structure requirements): cdk.out plus one per
# environment.
MAX_SYNTH_OUTPUTS = 5
# `make test` took about 14 minutes on 2 cores; installing the venvs adds several, the pipeline-on synth (two full
# platforms with cdk-nag) and checkov a few more. MEDIUM is 4 vCPUs and 7 GB (CodeBuild User Guide,
# build-env-ref-compute-types); 90 minutes leaves room for a slow install without hiding a hung test.
SYNTH_COMPUTE = codebuild.ComputeType.MEDIUM
SYNTH_TIMEOUT = cdk.Duration.minutes(90)
# Every project of the pipeline runs on standard:8.0, Ubuntu 24.04 (aws/aws-codebuild-docker-images
# ubuntu/standard/8.0/Dockerfile `FROM public.ecr.aws/ubuntu/ubuntu:24.04`). Not standard:7.0: that is Ubuntu 22.04,
# whose `prometheus` package is 2.31.2 (jammy-updates 2.31.2+ds1-1ubuntu1.22.04.x), below the 2.40 that
# scripts/ensure-prometheus.sh requires, so `make test` would stop there; noble ships 2.45.3.
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_8_0
# standard:8.0 offers Python 3.10 to 3.14 and Node.js 22 and 24 through `runtime-versions` (ubuntu/standard/8.0/
# runtimes.yml); the project needs Python >= 3.11 and Node.js >= 18 (scripts/ensure-prereqs.sh), and the pinned
# aws-cdk and cdk-assets need Node.js >= 18 (their package.json `engines`).
RUNTIME_VERSIONS = {"python": "3.11", "nodejs": "22"}


def package_json_pin(package: str, path: Path = PACKAGE_JSON) -> str:
    """The exact version package.json's devDependencies pin for `package`, or a ConfigError naming what to add."""
    pins = json.loads(path.read_text(encoding="utf-8")).get("devDependencies", {})
    version = pins.get(package)
    if not isinstance(version, str) or not re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", version):
        raise ConfigError(
            f"package.json devDependencies.{package}: {version!r} is not an exact version; the pipeline installs "
            f'the {package} npm package at the version the repository pins there (add e.g. "{package}": "x.y.z")'
        )
    return version


def partition_of(region: str) -> str:
    partition = RegionInfo.get(region).partition
    if partition is None:
        raise ConfigError(f"region {region!r}: CDK knows no AWS partition for it, so no ARN can be built in it")
    return partition


class DeliveryStack(cdk.Stack):
    """The pipeline stack. `add_environment` once per environment in delivery order, then `finish` once."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: DeliverySettings,
        identity: PipelineIdentity,
        environments: list[PlatformConfig],
        **kwargs: Any,
    ) -> None:
        if len(environments) + 1 > MAX_SYNTH_OUTPUTS:
            names = ", ".join(config.env_name for config in environments)
            raise ConfigError(
                f"delivery.environments: {len(environments)} environments ({names}) are more than the pipeline "
                f"publishes: the synth action's outputs are cdk.out plus dist/<env> per environment, and a CodeBuild "
                f"action has at most {MAX_SYNTH_OUTPUTS} outputs; list at most {MAX_SYNTH_OUTPUTS - 1}"
            )
        elsewhere = [f"{c.env_name} is in {c.region}" for c in environments if c.region != identity.region]
        if elsewhere:
            # An action in another region makes CDK add a cross-region support stack whose replication bucket has
            # no key, which it then refuses for a cross-account action (ArtifactBucketMustHaveKmsKey, aws-codepipeline
            # 2.275 pipeline.js); and the verification build is granted only this region's artifact bucket.
            raise ConfigError(
                f"delivery.environments: {'; '.join(elsewhere)}, not in the pipeline's region (delivery.region "
                f"{identity.region}); the pipeline deploys only to environments in its own region: set their "
                f"`region` to {identity.region}, or give them a pipeline of their own"
            )
        super().__init__(scope, id, **kwargs)
        # DeliverySettings' validation requires both with the pipeline on.
        assert settings.connection_arn is not None
        assert settings.repository is not None
        self.connection_arn = settings.connection_arn
        self.identity = identity
        self._environments = {config.env_name for config in environments}
        self._added: list[str] = []
        removal_policy = (
            cdk.RemovalPolicy.RETAIN if any(c.production for c in environments) else cdk.RemovalPolicy.DESTROY
        )
        self.artifacts = PipelineArtifactStore(
            self,
            "Artifacts",
            bucket_name=identity.artifact_bucket_name,
            key_alias=f"alias/{identity.name}/delivery-artifacts",
            removal_policy=removal_policy,
        )
        # A fixed name: each environment's verification action role trusts this role by ARN (stacks/verification.py).
        self.pipeline_role = iam.Role(
            self,
            "PipelineRole",
            role_name=identity.pipeline_role_name,
            assumed_by=iam.ServicePrincipal("codepipeline.amazonaws.com"),
            description=f"CodePipeline {identity.pipeline_name}",
        )
        self.source = pipelines.CodePipelineSource.connection(
            settings.repository,
            settings.branch,
            connection_arn=settings.connection_arn,
            action_name="Checkout",
            trigger_on_push=True,
        )
        source_output = self.source.primary_output
        assert source_output is not None  # a source step always has its checkout as primary output
        self.source_output = source_output
        self.synth = pipelines.ShellStep(
            "Synth",
            input=self.source,
            commands=list(SYNTH_COMMANDS),
            primary_output_directory="cdk.out",
            # CodeBuild runs a non-privileged build in a Docker container whose seccomp profile refuses the new user
            # namespace bwrap needs for the gateway's pod-contract tests: there they are skipped, saying so, instead
            # of failing the build (tests/pod_contract.py SANDBOX_OPTIONAL_ENV; `make test` elsewhere runs them).
            env={SANDBOX_OPTIONAL_ENV: "optional"},
        )
        # Each environment's compliance report, checkov results, manifests and dashboards as a build artifact.
        self.reports = {
            config.env_name: self.synth.add_output_directory(f"dist/{config.env_name}") for config in environments
        }
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=identity.pipeline_name,
            pipeline_type=codepipeline.PipelineType.V2,
            synth=self.synth,
            artifact_bucket=self.artifacts.bucket,
            role=self.pipeline_role,
            # Without these CDK Pipelines installs `aws-cdk@2` and `cdk-assets@latest` (pipelines codepipeline.js).
            cli_version=package_json_pin("aws-cdk"),
            cdk_assets_cli_version=package_json_pin("cdk-assets"),
            # One asset project per asset type instead of one per asset: fewer projects and roles.
            publish_assets_in_parallel=False,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE, privileged=False),
                partial_build_spec=codebuild.BuildSpec.from_object(
                    {"version": "0.2", "phases": {"install": {"runtime-versions": RUNTIME_VERSIONS}}}
                ),
            ),
            synth_code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=BUILD_IMAGE, compute_type=SYNTH_COMPUTE, privileged=False
                ),
                timeout=SYNTH_TIMEOUT,
            ),
        )

    def add_environment(self, stage: cdk.Stage, config: PlatformConfig, verification: cdk.Stack) -> None:
        """Deploy `stage` after the environments added before it: approval first in production, verification last."""
        if config.env_name not in self._environments or config.env_name in self._added:
            raise ValueError(f"{config.env_name} is not a delivery environment of this pipeline, or added twice")
        if verification.node.scope is not stage:
            raise ValueError(f"the verification stack {verification.node.path} is not in the Stage {stage.node.path}")
        # build_delivery refuses an environment that pins no account and region.
        assert config.account is not None
        assert config.region is not None
        self._added.append(config.env_name)
        partition = partition_of(config.region)
        account = config.account
        if account != self.identity.account:
            # The verification build reads the source artifact with its own role, from another account: the bucket
            # and key policies must admit it. (CDK Pipelines adds the environment's bootstrap deploy role itself.)
            build_role = f"arn:{partition}:iam::{account}:role/{self.identity.verify_build_role_name(config)}"
            self.artifacts.allow_read(account, build_role)
        project = self.identity.verify_project_name(config)
        verify = RunVerification(
            "Verify",
            input=self.source_output,
            project_arn=f"arn:{partition}:codebuild:{config.region}:{account}:project/{project}",
            action_role_arn=f"arn:{partition}:iam::{account}:role/{self.identity.verify_action_role_name(config)}",
        )
        approval = [
            pipelines.ManualApprovalStep(
                "Approve",
                comment=f"Deploy to {config.env_name} (production). Review its compliance report and checkov results: "
                f"the Synth action's dist/{config.env_name} artifact.",
            )
        ]
        self.pipeline.add_stage(stage, pre=approval if config.production else [], post=[verify])

    def finish(self) -> None:
        """Build the pipeline (its resources exist only from here on), then acknowledge what CDK generates."""
        missing = sorted(self._environments - set(self._added))
        if missing:
            raise ValueError(f"delivery environments never added to the pipeline: {', '.join(missing)}")
        self.pipeline.build_pipeline()
        self._acknowledge()
        self._allow_codeconnections()

    def _allow_codeconnections(self) -> None:
        # CDK grants `codestar-connections:UseConnection` (aws-codepipeline-actions codestar-connections/
        # source-action.js). Since the 2024 rename, the IAM prefix must match the ARN's service ("Connections
        # rename", AWS Developer Tools console user guide), so a `codeconnections` ARN also needs this one.
        source_role = self._source_action().node.find_child("CodePipelineActionRole")
        assert isinstance(source_role, iam.Role)
        source_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["codeconnections:UseConnection"], resources=[self.connection_arn])
        )

    def _source_action(self) -> Construct:
        source_stage = self.pipeline.pipeline.node.find_child("Source")
        action = source_stage.node.find_child("Checkout")
        assert isinstance(action, Construct)
        return action

    def _acknowledge(self) -> None:
        """Findings on what CDK Pipelines generates, each acknowledged on its raising resource once it exists.

        Fixed instead, by the artifact store and the options above: AwsSolutions-CB4 (projects use the artifact key),
        AwsSolutions-KMS5 and the *-KMSBackingKeyRotationEnabled rules (rotation on), AwsSolutions-S1 and the
        *-S3BucketLoggingEnabled / *-S3BucketVersioningEnabled rules (access logs, versioning).
        """
        bucket = f"<{self.get_logical_id(self._cfn(self.artifacts.bucket))}.Arn>/*"
        region, account = self.identity.region, self.identity.account
        partition = partition_of(region)
        codebuild_arn = f"arn:{partition}:codebuild:{region}:{account}"
        logs_arn = f"arn:{partition}:logs:{region}:{account}:log-group:/aws/codebuild"

        def project_own(project: IConstruct) -> dict[str, str]:
            name = f"<{self.get_logical_id(self._cfn(project))}>"
            return {
                f"Resource::{logs_arn}/{name}:*": _PROJECT_LOGS,
                f"Resource::{codebuild_arn}:report-group/{name}-*": _PROJECT_REPORTS,
            }

        read = {f"Action::{action}": _BUCKET_GRANT for action in ("s3:GetBucket*", "s3:GetObject*", "s3:List*")}
        read[f"Resource::{bucket}"] = _BUCKET_GRANT
        write = {f"Action::{action}": _BUCKET_GRANT for action in ("s3:Abort*", "s3:DeleteObject*")}
        key = {f"Action::{action}": _KEY_GRANT for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*")}
        synth_project = self.pipeline.synth_project
        self_mutation = self.pipeline.self_mutation_project
        # Every role CDK Pipelines generates in this stack (a project stands for its role) and the wildcards of its
        # default policy.
        roles: list[tuple[IConstruct, dict[str, str]]] = [
            (self.pipeline_role, {**read, **write, **key}),
            (self._source_action().node.find_child("CodePipelineActionRole"), {**read, **write, **key}),
            (synth_project, {**read, **write, **key, **project_own(synth_project)}),
            (
                self_mutation,
                {
                    **read,
                    **key,
                    **project_own(self_mutation),
                    "Resource::*": _SELF_MUTATION_LOOKUPS,
                    f"Resource::arn:*:iam::{account}:role/*": _SELF_MUTATION_BOOTSTRAP_ROLES,
                },
            ),
            (self.pipeline.node.find_child("CodeBuildActionRole"), {}),
        ]
        projects: list[IConstruct] = [synth_project, self_mutation]
        assets = self.pipeline.node.try_find_child("Assets")
        if assets is not None:  # only when the app has file assets
            file_role = assets.node.find_child("FileRole")
            skip_checkov(file_role.node.find_child("DefaultPolicy"), "CKV_AWS_111", _ASSET_ROLE_STARTS_BUILDS)
            roles.append(
                (
                    file_role,
                    {
                        **read,
                        "Resource::*": _ASSET_ROLE_STARTS_BUILDS,
                        f"Resource::{logs_arn}/*": _ASSET_ROLE_PROJECTS,
                        f"Resource::{codebuild_arn}:report-group/*": _ASSET_ROLE_PROJECTS,
                    },
                )
            )
            projects.append(assets.node.find_child("FileAsset"))
        for owner, wildcards in roles:
            role = owner.role if isinstance(owner, codebuild.Project) else owner
            assert isinstance(role, iam.Role), owner.node.path
            policy = role.node.find_child("DefaultPolicy")
            for wildcard, reason in wildcards.items():
                acknowledge(policy, f"AwsSolutions-IAM5[{wildcard}]", reason)
            for pack in _PACKS_WITH_INLINE_POLICY_RULE:
                acknowledge(policy, f"{pack}-IAMNoInlinePolicy", _GENERATED_INLINE_POLICY)
        for project in projects:
            for pack in ("HIPAA.Security", "PCI.DSS.321"):
                acknowledge(project, f"{pack}-CodeBuildProjectSourceRepoUrl", _SOURCE_IS_CODEPIPELINE)

    @staticmethod
    def _cfn(construct: IConstruct) -> cdk.CfnElement:
        resource = construct.node.default_child
        assert isinstance(resource, cdk.CfnElement), construct.node.path
        return resource


_PACKS_WITH_INLINE_POLICY_RULE = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
_BUCKET_GRANT = (
    "CDK's grant on the pipeline's artifact bucket (Bucket.grantRead/grantReadWrite, aws-cdk-lib pipelines and "
    "codepipeline): limited to that one bucket and its objects, whose keys CodePipeline generates per execution."
)
_KEY_GRANT = (
    "CDK's grant on the artifact bucket's key: limited to that one key, which SSE-KMS needs to write and re-read "
    "artifacts (data keys are generated per object)."
)
_PROJECT_LOGS = (
    "CodeBuild writes each build's log stream under this project's own log group /aws/codebuild/<project>; the "
    "stream names are generated per build."
)
_PROJECT_REPORTS = (
    "CodeBuild's report groups of this project are named <project>-<group> (aws-cdk-lib codebuild Project); the "
    "grant is limited to this project's prefix."
)
_SELF_MUTATION_LOOKUPS = (
    "cloudformation:DescribeStacks and s3:ListBucket only: `cdk deploy` of the pipeline stack reads the bootstrap "
    "stack's outputs and lists its assets bucket, whose names it learns at run time (aws-cdk-lib pipelines "
    "codepipeline.js, self-mutation)."
)
_SELF_MUTATION_BOOTSTRAP_ROLES = (
    "sts:AssumeRole only on roles of this account tagged aws-cdk:bootstrap-role deploy, file-publishing or "
    "image-publishing (the statement's condition): the CDK bootstrap roles `cdk deploy` uses to update the pipeline."
)
_ASSET_ROLE_STARTS_BUILDS = (
    "codebuild:StartBuild, BatchGetBuilds and StopBuild on any project: CDK's shared asset role also serves as the "
    "asset action's role (aws-cdk-lib pipelines private/asset-singleton-role.js); it assumes nothing beyond the "
    "bootstrap file-publishing roles it names."
)
_ASSET_ROLE_PROJECTS = (
    "CDK's shared asset role writes logs and reports for the asset projects it runs, whose names are generated "
    "(aws-cdk-lib pipelines private/asset-singleton-role.js); limited to CodeBuild's /aws/codebuild and report groups."
)
_GENERATED_INLINE_POLICY = (
    "The default policy CDK generates for this role of the pipeline; its grants name this pipeline's bucket, key "
    "and projects, so a managed policy would serve no other role."
)
_SOURCE_IS_CODEPIPELINE = (
    "False positive: the project's source type is CODEPIPELINE (the pipeline hands it the artifact) and the "
    "repository is reached through a CodeConnections connection; the rule flags any source without OAuth "
    "(cdklabs/cdk-nag#1590)."
)
