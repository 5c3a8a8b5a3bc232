"""The build that runs `genai-ops verify` against this environment after the delivery pipeline deploys it.

Built only with the pipeline on, in the environment's Stage, next to the platform's stacks: the build runs in the
environment's VPC (the production cluster's endpoint is private), and nothing here may be referenced from the pipeline
stack (CDK refuses references across Stages). The pipeline finds the project and the role it starts it with by their
fixed names (cdk_constructs/pipeline_identity.py).

The role the pipeline starts the build with lives in its own stack outside the Stage, `<prefix>-verify-access`, which
the pipeline stack depends on: CodePipeline checks when it creates or updates a pipeline that its role may assume
every action's role (InvalidStructureException otherwise), so that role must exist before the pipeline does. This is
how CDK deploys a cross-account action's role itself (aws-codepipeline `pipeline.ts`
getRoleFromActionPropsOrGenerateIfCrossAccount: a support stack the pipeline stack depends on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks as eks_l1
from constructs import Construct

from cdk_constructs.pipeline_identity import PipelineIdentity
from cdk_constructs.verification_project import VerifyProject, verify_build_spec
from cdk_constructs.verification_roles import BuildRuntime, VerifyActionRole, VerifyBuildRole, VerifyReads
from k8s.namespaces import platform_labels
from k8s.verify_rbac import VERIFY_GROUP, VerifyRbacChart
from platform_config import PlatformConfig

if TYPE_CHECKING:
    from app import Platform

HTTPS = 443


class VerifyAccessStack(Stack):
    """The role the pipeline assumes to start one environment's verify build, deployed before the pipeline stack."""

    def __init__(
        self, scope: Construct, id: str, *, config: PlatformConfig, identity: PipelineIdentity, **kwargs: Any
    ) -> None:
        super().__init__(scope, id, **kwargs)
        project_name = identity.verify_project_name(config)
        self.action_role = VerifyActionRole(
            self,
            "ActionRole",
            role_name=identity.verify_action_role_name(config),
            description=f"The pipeline {identity.pipeline_name} starts {project_name} with this role",
            pipeline_account=identity.account,
            pipeline_role_name=identity.pipeline_role_name,
            project_arn=f"arn:{self.partition}:codebuild:{self.region}:{self.account}:project/{project_name}",
        )


class VerificationStack(Stack):
    """The verify build of one environment: its security group and way into the cluster's API, its role, the CodeBuild
    project, and its (read-only) place in the cluster's RBAC."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: PlatformConfig,
        platform: Platform,
        identity: PipelineIdentity,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        foundation = platform.foundation
        cluster = foundation.cluster.cluster
        vpc = foundation.network.vpc
        removal_policy = RemovalPolicy.RETAIN if config.removal_policy == "retain" else RemovalPolicy.DESTROY

        self.security_group = self._security_group(vpc, cluster.cluster_security_group_id)
        project_name = identity.verify_project_name(config)
        stores = platform.data.gateway_stores
        reads = VerifyReads(
            cluster_arn=cluster.cluster_arn,
            described_key_arns=[foundation.keys.eks_secrets.key_arn, foundation.keys.node_volumes.key_arn],
            data_stack_name=platform.data.stack_name if stores else None,
            master_key_secret_arn=stores.master_key_secret.secret_arn if stores else None,
            master_key_secret_key_arn=foundation.keys.data.key_arn if stores else None,
        )
        # Logs and build output go under the platform's logs key, not its data key: that one also guards the model
        # bucket and the gateway's secrets, which this role may decrypt only through Secrets Manager.
        project_key = foundation.keys.logs
        self.build_role = VerifyBuildRole(
            self,
            "BuildRole",
            role_name=identity.verify_build_role_name(config),
            description=f"CodeBuild project {project_name}: runs genai-ops verify against {config.prefix}",
            reads=reads,
        )
        self.project = VerifyProject(
            self,
            "Project",
            project_name=project_name,
            description=f"genai-ops verify against {config.prefix}, started by the pipeline {identity.pipeline_name}",
            role=self.build_role.role.without_policy_updates(),
            vpc=vpc,
            security_groups=[self.security_group],
            key=project_key,
            # Kept as long as the cluster's own control-plane logs: both are evidence about the same cluster.
            log_retention_days=config.cluster.control_plane_log_retention_days,
            removal_policy=removal_policy,
            build_spec=verify_build_spec(env_name=config.env_name, cluster_name=config.prefix, region=self.region),
        )
        self.runtime_policy = self.build_role.allow_runtime(
            BuildRuntime(
                subnet_ids=vpc.select_subnets(subnet_type=self.project.subnets.subnet_type).subnet_ids,
                log_group_arn=self.project.log_group.log_group_arn,
                project_key_arn=project_key.key_arn,
                artifact_bucket_name=identity.artifact_bucket_name,
                pipeline_account=identity.account,
                pipeline_region=identity.region,
            )
        )
        # CodeBuild checks the role's EC2 permissions when it creates a project in a VPC (aws/aws-cdk#2652).
        self.project.project.node.add_dependency(self.runtime_policy)
        self._cluster_access(config, platform)

    def _security_group(self, vpc: ec2.IVpc, cluster_security_group_id: str) -> ec2.SecurityGroup:
        """The build's group: HTTPS out only (PyPI, AWS APIs, the cluster's endpoint), and HTTPS into the cluster's
        endpoint. The rule lives here, on the EKS-created cluster security group (which its private endpoint's
        network interfaces carry, EKS User Guide sec-group-reqs), so the foundation stack does not depend on this
        one."""
        group = ec2.SecurityGroup(
            self,
            "BuildSecurityGroup",
            vpc=vpc,
            description="genai-ops verify build, HTTPS out to AWS APIs, PyPI and the Kubernetes API",
            allow_all_outbound=False,
        )
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), "HTTPS to AWS APIs, PyPI, the cluster's API")
        ec2.CfnSecurityGroupIngress(
            self,
            "ClusterApiFromBuild",
            group_id=cluster_security_group_id,
            source_security_group_id=group.security_group_id,
            ip_protocol="tcp",
            from_port=HTTPS,
            to_port=HTTPS,
            description="genai-ops verify build to the Kubernetes API",
        )
        return group

    def _cluster_access(self, config: PlatformConfig, platform: Platform) -> None:
        """A STANDARD access entry putting the build's role in VERIFY_GROUP, no EKS access policy, and the RBAC that
        group gets (k8s/verify_rbac.py). The entry stays in the role's stack: an entry outlives a deleted and
        recreated role of the same ARN without working for it (EKS User Guide, creating-access-entries)."""
        cluster = platform.foundation.cluster
        self.access_entry = eks_l1.CfnAccessEntry(
            self,
            "BuildAccessEntry",
            cluster_name=cluster.cluster.cluster_name,
            principal_arn=self.build_role.role.role_arn,
            # aws_eks_v2.AccessEntry takes access policies only, no Kubernetes groups (aws-eks-v2 access-entry.ts).
            kubernetes_groups=[VERIFY_GROUP],
            type="STANDARD",
        )
        self.rbac = VerifyRbacChart(
            platform.k8s_app,
            "verify-rbac",
            group=VERIFY_GROUP,
            gateway=config.gateway.enabled,
            labels=platform_labels(config),
        )
        self.rbac_manifest = platform.charts.apply(self, "VerifyRbac", cluster=cluster.interface, chart=self.rbac)
        # Roles go into namespaces the foundation's chart creates.
        self.rbac_manifest.node.add_dependency(platform.foundation.namespaces_manifest)
