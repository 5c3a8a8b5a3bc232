"""The CodeBuild project that runs `genai-ops verify` against an environment from inside its VPC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_constructs.log_retention import retention
from compliance.acknowledgments import acknowledge

# Where the toolkit is installed in the build: the README's own layout (`.venv/bin/genai-ops`).
VENV = ".venv"
# How long verify runs its checks again while some fail (`--wait-for`). The build starts right after the deploy, when
# vLLM is often not Ready: one replica on a new GPU node has a cold-start budget of 300 s (README "Cold-start budget",
# platform_config/cold_start.py COLD_START.total_seconds), GPU capacity can take longer to launch than that budget's
# 90 s, and the vLLM Deployment rolls one replica at a time (maxSurge 1, maxUnavailable 0: k8s/vllm.py), so a rollout
# of several replicas (prod keeps 2, up to max_replicas 4) takes that budget once per replica: 4 x 300 s = 1200 s,
# plus half again for node launches slower than budgeted and Prometheus' first scrape of the new pods.
VERIFY_WAIT_SECONDS = 1800
# Installing the pinned requirements takes a few minutes; then the wait above, and a last run of verify's 14 checks
# (each request times out after 15 s). A build still running after this is stuck.
BUILD_TIMEOUT = Duration.minutes(60)


def verify_build_spec(*, env_name: str, cluster_name: str, region: str) -> dict[str, Any]:
    """The buildspec (CodeBuild User Guide, build-spec-ref): install the project as the Makefile does, point the
    kubeconfig at the environment's cluster, run verify. The source is the pipeline's checkout of the repository,
    so cdk.json (which verify builds the environment's config from) is the one the stacks were synthesized from."""
    python = f"{VENV}/bin/python"
    return {
        "version": "0.2",
        "env": {"shell": "bash", "variables": {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}},
        "phases": {
            "install": {
                # standard:7.0 offers Python 3.11 and 3.12 (aws/aws-codebuild-docker-images ubuntu/standard/7.0/
                # runtimes.yml); the project targets 3.11 (pyproject.toml).
                "runtime-versions": {"python": "3.11"},
                "commands": [
                    f"python -m venv {VENV}",
                    f"{python} -m pip install --quiet -r requirements.txt",
                    # The console script, without dependencies: requirements.txt pins them (Makefile, $(VENV)).
                    f"{python} -m pip install --quiet --no-deps -e .",
                ],
            },
            "build": {
                "commands": [
                    # Writes a context whose user runs `aws eks get-token` (the AWS CLI of the image) with the build's
                    # credentials; verify refuses a context on any other cluster (ops/live.py require_cluster).
                    f"aws eks update-kubeconfig --name {cluster_name} --region {region}",
                    # Checks that fail only because the environment is still starting pass within the wait; the
                    # build fails if any check still fails when it is over (ops/verify.py --wait-for).
                    f"{VENV}/bin/genai-ops verify --env {env_name} --region {region} --wait-for {VERIFY_WAIT_SECONDS}",
                ],
            },
        },
    }


class VerifyProject(Construct):
    """A non-privileged CodeBuild project in the VPC's private subnets, its own log group and the platform's key.

    Source and artifacts are CodePipeline's (a `PipelineProject`): the pipeline starts it after the environment's
    stacks deploy, with the repository as input. The build reaches the cluster's endpoint (private in production)
    from inside the VPC, and Prometheus and LiteLLM through the API server's service proxy, verify's default.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        project_name: str,
        description: str,
        role: iam.IRole,
        vpc: ec2.IVpc,
        security_groups: Sequence[ec2.ISecurityGroup],
        key: kms.IKey,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
        build_spec: dict[str, Any],
    ) -> None:
        super().__init__(scope, id)
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        # The name CodeBuild would give the group, made first so it gets a key and a retention.
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/codebuild/{project_name}",
            encryption_key=key,
            retention=retention(log_retention_days),
            removal_policy=removal_policy,
        )
        self.project = codebuild.PipelineProject(
            self,
            "Project",
            project_name=project_name,
            description=description,
            # Immutable: the role's permissions are the managed policies written out in VerifyBuildRole, so CDK's
            # own grants (an inline default policy with a log group it does not use) are not added.
            role=role,
            vpc=vpc,
            subnet_selection=self.subnets,
            security_groups=list(security_groups),
            encryption_key=key,
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=codebuild.ComputeType.SMALL,
                privileged=False,
            ),
            timeout=BUILD_TIMEOUT,
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.log_group)),
            build_spec=codebuild.BuildSpec.from_object(build_spec),
            grant_report_group_permissions=False,
        )
        drop_unattached_vpc_policy(self.project)
        for pack in ("HIPAA.Security", "PCI.DSS.321"):
            acknowledge(
                self.project,
                f"{pack}-CodeBuildProjectSourceRepoUrl",
                "The source is the CodePipeline input artifact, not a GitHub or Bitbucket URL with credentials; the "
                "rule flags every source that is not OAuth (cdklabs/cdk-nag#1590).",
            )


def drop_unattached_vpc_policy(project: codebuild.Project) -> None:
    """Escape hatch: remove the inline policy construct CDK makes for a project in a VPC when it cannot attach it.

    aws-codebuild `project.ts` `addVpcRequiredPermissions` always creates `PolicyDocument` (an iam.Policy with the
    EC2 network-interface actions) and attaches it to the project's role. An immutable role ignores the attachment,
    so the policy is never in the template, but cdk-nag walks the construct tree and reports it as an inline policy.
    The same actions are in the role's managed policy (`build_runtime_statements`). Raises if CDK stops creating it,
    so a change is noticed."""
    if not project.node.try_remove_child("PolicyDocument"):
        raise LookupError(f"{project.node.path} has no PolicyDocument child: aws-codebuild changed, review this hatch")
