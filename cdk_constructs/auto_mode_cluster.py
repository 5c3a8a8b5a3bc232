"""The EKS Auto Mode cluster (stable aws_eks_v2: a native AWS::EKS::Cluster)."""

from __future__ import annotations

import hashlib
import importlib
import json
from typing import cast

from aws_cdk import CfnElement, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_constructs.log_retention import retention
from compliance.acknowledgments import acknowledge, acknowledge_aws_managed_policies
from compliance.checkov_skips import skip_checkov
from platform_config.model import ClusterSettings

ALL_CONTROL_PLANE_LOGS = (
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
)
# Auto Mode accepts only these two built-in pools; custom capacity is karpenter.sh/v1 NodePools.
BUILT_IN_NODE_POOLS = ("system", "general-purpose")
# The minimal node policies for Auto Mode nodes (EKS User Guide, auto-learn-iam / create-node-role).
NODE_ROLE_MANAGED_POLICIES = ("AmazonEKSWorkerNodeMinimalPolicy", "AmazonEC2ContainerRegistryPullOnly")
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
# What aws_eks_v2 attaches to an Auto Mode cluster role (EKS User Guide, auto-cluster-iam-role).
AUTO_MODE_CLUSTER_ROLE_POLICIES = (
    "AmazonEKSClusterPolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
)
_KUBECTL_PROVIDER_REASON = (
    "Part of aws-cdk-lib's kubectl provider, which applies manifests and Helm charts during "
    "deployment; CDK exposes no option for this, it runs only during stack operations."
)
_KUBECTL_PROVIDER_ENVIRONMENT_REASON = (
    "The provider's environment holds an STS endpoint setting and a function ARN, no secret; Lambda "
    "encrypts it at rest with its AWS managed key."
)


def kubectl_layer(scope: Construct, kubernetes_version: str) -> lambda_.ILayerVersion:
    """The kubectl Lambda layer matching the cluster's minor version (PyPI aws-cdk.lambda-layer-kubectl-vNN)."""
    minor = kubernetes_version.split(".")[1]
    module = importlib.import_module(f"aws_cdk.lambda_layer_kubectl_v{minor}")
    layer: lambda_.ILayerVersion = getattr(module, f"KubectlV{minor}Layer")(scope, "KubectlLayer")
    return layer


class AutoModeCluster(Construct):
    """An EKS Auto Mode cluster with secrets encryption, every control-plane log, API authentication.

    Exposes `cluster`, `node_role` (for NodeClasses) and `control_plane_logs`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster_name: str,
        settings: ClusterSettings,
        vpc: ec2.IVpc,
        secrets_key: kms.IKey,
        logs_key: kms.IKey,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, id)
        # Named, because the platform's NodeClasses refer to it by name (NodeClass spec.role), and a
        # literal name keeps the rendered manifests free of deploy-time values.
        self.node_role_name = f"{cluster_name}-auto-mode-node"
        self.node_role = iam.Role(
            self,
            "NodeRole",
            role_name=self.node_role_name,
            description=f"EKS Auto Mode nodes of {cluster_name}",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(n) for n in NODE_ROLE_MANAGED_POLICIES],
        )
        # EKS writes control-plane logs to this fixed name; creating it first gives it a KMS key and a
        # retention instead of the unencrypted, never-expiring group EKS would create.
        self.control_plane_logs = logs.LogGroup(
            self,
            "ControlPlaneLogs",
            log_group_name=f"/aws/eks/{cluster_name}/cluster",
            encryption_key=logs_key,
            retention=retention(settings.control_plane_log_retention_days),
            removal_policy=removal_policy,
        )
        self.cluster = eks.Cluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            version=eks.KubernetesVersion.of(settings.kubernetes_version),
            default_capacity_type=eks.DefaultCapacityType.AUTOMODE,
            compute=eks.ComputeConfig(node_pools=list(BUILT_IN_NODE_POOLS), node_role=self.node_role),
            vpc=vpc,
            vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
            secrets_encryption_key=secrets_key,
            cluster_logging=list(ALL_CONTROL_PLANE_LOGS),
            endpoint_access=_endpoint_access(settings),
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=kubectl_layer(self, settings.kubernetes_version)
            ),
            # Always deleted with the stack, in every environment: the cluster keeps no data that outlives
            # it (weights in S3, gateway state in Aurora), a retained one stays billed, and its retained
            # security group would make the VPC's deletion fail. Termination protection guards prod.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.cluster.node.add_dependency(self.control_plane_logs)
        # EKS tags the cluster security group it creates with this (EKS User Guide, sec-group-reqs);
        # NodeClasses select it by the tag, which is known at synth time, unlike its id.
        self.security_group_terms = [{"tags": {f"kubernetes.io/cluster/{cluster_name}": "owned"}}]
        acknowledge_aws_managed_policies(
            self.node_role,
            list(NODE_ROLE_MANAGED_POLICIES),
            "The minimal node policies EKS Auto Mode requires for its node role (EKS User Guide, "
            "create-node-role); AWS keeps them in step with what Auto Mode nodes call.",
        )
        acknowledge_aws_managed_policies(
            self.cluster.role,
            list(AUTO_MODE_CLUSTER_ROLE_POLICIES),
            "The managed policies EKS Auto Mode requires on its cluster role (EKS User Guide, "
            "auto-cluster-iam-role); AWS updates them as Auto Mode's controllers change.",
        )
        acknowledge_kubectl_provider(self.cluster)
        encrypt_kubectl_provider_logs(self.cluster, logs_key)
        for principal_arn in settings.admin_principal_arns:
            self.cluster.grant_access(
                # Id from the ARN, not the list position: reordering the list must not replace entries.
                f"Admin{hashlib.sha256(principal_arn.encode()).hexdigest()[:10]}",
                principal_arn,
                [
                    eks.AccessPolicy.from_access_policy_name(
                        CLUSTER_ADMIN_POLICY, access_scope_type=eks.AccessScopeType.CLUSTER
                    )
                ],
            )

    @property
    def interface(self) -> eks.ICluster:
        """The cluster typed as `eks.ICluster`, for constructs that accept any cluster. jsii's generated
        ICluster protocol lists `kubectl_provider_options`, which the Cluster class does not declare,
        so a type checker needs this one cast."""
        return cast(eks.ICluster, self.cluster)


def _endpoint_access(settings: ClusterSettings) -> eks.EndpointAccess:
    if settings.endpoint_access == "private":
        return eks.EndpointAccess.PRIVATE
    return eks.EndpointAccess.PUBLIC_AND_PRIVATE.only_from(*settings.public_access_cidrs)


def acknowledge_kubectl_provider(cluster: eks.Cluster) -> None:
    """Acknowledge the findings on aws-cdk-lib's own kubectl provider, one finding per construct.

    The provider (two Lambda functions and their roles) is CDK's code: its runtime, managed policies,
    inline policies and invocation settings are not configurable. It runs only while CloudFormation
    deploys a manifest, inside the VPC's private subnets.
    """
    provider = cluster.node.find_child("KubectlProvider")
    handler = provider.node.find_child("Handler")
    on_event = provider.node.find_child("Provider").node.find_child("framework-onEvent")
    for function in (handler, on_event):
        role = function.node.find_child("ServiceRole")
        default_policy = role.node.find_child("DefaultPolicy")
        for pack in ("NIST.800.53.R5", "HIPAA.Security"):
            acknowledge(function, f"{pack}-LambdaConcurrency", _KUBECTL_PROVIDER_REASON)
            acknowledge(function, f"{pack}-LambdaDLQ", _KUBECTL_PROVIDER_REASON)
        for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
            acknowledge(default_policy, f"{pack}-IAMNoInlinePolicy", _KUBECTL_PROVIDER_REASON)
        # checkov's checks of the same concerns, and of environment encryption: the variables are an
        # STS endpoint setting and the handler's ARN, encrypted at rest by Lambda's AWS managed key.
        skip_checkov(function, "CKV_AWS_115", _KUBECTL_PROVIDER_REASON)
        skip_checkov(function, "CKV_AWS_116", _KUBECTL_PROVIDER_REASON)
        skip_checkov(function, "CKV_AWS_173", _KUBECTL_PROVIDER_ENVIRONMENT_REASON)
        acknowledge_aws_managed_policies(
            role,
            ["service-role/AWSLambdaBasicExecutionRole", "service-role/AWSLambdaVPCAccessExecutionRole"],
            _KUBECTL_PROVIDER_REASON,
        )
    acknowledge(handler, "AwsSolutions-L1", _KUBECTL_PROVIDER_REASON)
    handler_role = handler.node.find_child("ServiceRole")
    acknowledge_aws_managed_policies(handler_role, ["AmazonEC2ContainerRegistryReadOnly"], _KUBECTL_PROVIDER_REASON)
    # CDK attaches ECR Public read-only behind a condition; cdk-nag names that finding by the
    # unresolved Fn::If, so the id is built from the same expression.
    stack = Stack.of(handler)
    condition = next(child for child in handler.node.children if child.node.id.startswith("HasEcrPublic"))
    ecr_public_policy = {
        "Fn::If": [
            stack.get_logical_id(cast(CfnElement, condition)),
            {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":iam::aws:policy/AmazonElasticContainerRegistryPublicReadOnly",
                    ],
                ]
            },
            {"Ref": "AWS::NoValue"},
        ]
    }
    acknowledge(
        handler_role,
        f"AwsSolutions-IAM4[Policy::{json.dumps(ecr_public_policy, separators=(',', ':'))}]",
        _KUBECTL_PROVIDER_REASON,
    )
    handler_function = stack.get_logical_id(cast(CfnElement, handler.node.default_child))
    acknowledge(
        on_event.node.find_child("ServiceRole").node.find_child("DefaultPolicy"),
        f"AwsSolutions-IAM5[Resource::<{handler_function}.Arn>:*]",
        "The provider framework invokes every version of CDK's kubectl handler (Arn:*); CDK sets this.",
    )


def encrypt_kubectl_provider_logs(cluster: eks.Cluster, key: kms.IKey) -> None:
    """Escape hatch: encrypt the log groups of aws-cdk-lib's kubectl provider with the platform's logs key.

    With the `@aws-cdk/aws-lambda:useCdkManagedLogGroup` feature flag (cdk.json) CDK creates each
    provider function's log group, but offers no property for its key; NIST/HIPAA/PCI
    CloudWatchLogGroupEncrypted require one. Raises if CDK stops creating those groups, so the
    change is noticed rather than silently leaving logs unencrypted.
    """
    provider = cluster.node.find_child("KubectlProvider")
    functions = [
        provider.node.find_child("Handler"),
        provider.node.find_child("Provider").node.find_child("framework-onEvent"),
    ]
    for function in functions:
        log_group = function.node.try_find_child("LogGroup")
        if log_group is None:
            raise RuntimeError(
                f"{function.node.path} has no LogGroup child: check the @aws-cdk/aws-lambda:useCdkManagedLogGroup "
                "feature flag in cdk.json"
            )
        cfn_log_group = cast(logs.CfnLogGroup, log_group.node.default_child)
        cfn_log_group.kms_key_id = key.key_arn
