"""The two IAM roles of an environment's verify build: the build's own, and the one the pipeline starts it with.

Both have fixed names (cdk_constructs/pipeline_identity.py), because the pipeline stack refers to them before this
environment's stacks exist, possibly from another account. Their permissions are customer-managed policies (no inline
policy) written out here, so each action is where a reviewer can see why it is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from constructs import Construct

from compliance.acknowledgments import acknowledge
from compliance.checkov_skips import skip_checkov

# How cdk-nag names the CloudFormation pseudo parameters in a finding id (`Resource::arn:<AWS::Partition>:...`).
_NAG_PARTITION, _NAG_REGION, _NAG_ACCOUNT = "<AWS::Partition>", "<AWS::Region>", "<AWS::AccountId>"


@dataclass(frozen=True)
class VerifyReads:
    """What `genai-ops verify` reads in AWS for one environment, as ARNs (ops/verify.py, ops/live.py, ops/target.py)."""

    cluster_arn: str
    # The keys verify resolves by alias (`alias/<prefix>/secrets`, `alias/<prefix>/node-volumes`): DescribeKey is
    # authorized on the key an alias points to (KMS Developer Guide, alias-access "Using aliases to control access").
    described_key_arns: Sequence[str]
    # With the gateway: the data stack verify reads the master key secret's ARN from, the secret, and its key.
    data_stack_name: str | None = None
    master_key_secret_arn: str | None = None
    master_key_secret_key_arn: str | None = None


def verify_read_statements(reads: VerifyReads) -> list[iam.PolicyStatement]:
    """The AWS calls of `genai-ops verify` (and `aws eks update-kubeconfig`, which calls DescribeCluster)."""
    statements = [
        iam.PolicyStatement(
            sid="Cluster",
            actions=["eks:DescribeCluster", "eks:ListPodIdentityAssociations"],
            resources=[reads.cluster_arn],
        ),
        # DescribeInstances and DescribeVolumes support no resource-level permissions (Service Authorization
        # Reference, Amazon EC2: no resource type for either), so the resource is "*".
        iam.PolicyStatement(
            sid="NodeInstancesAndVolumes", actions=["ec2:DescribeInstances", "ec2:DescribeVolumes"], resources=["*"]
        ),
        iam.PolicyStatement(sid="PlatformKeys", actions=["kms:DescribeKey"], resources=list(reads.described_key_arns)),
    ]
    if reads.data_stack_name and reads.master_key_secret_arn and reads.master_key_secret_key_arn:
        statements += [
            iam.PolicyStatement(
                sid="DataStackOutputs",
                actions=["cloudformation:DescribeStacks"],
                # A stack's ARN ends in a generated id: arn:<p>:cloudformation:<region>:<account>:stack/<name>/<id>.
                resources=[
                    f"arn:{Aws.PARTITION}:cloudformation:{Aws.REGION}:{Aws.ACCOUNT_ID}:stack/{reads.data_stack_name}/*"
                ],
            ),
            iam.PolicyStatement(
                sid="GatewayMasterKey",
                actions=["secretsmanager:GetSecretValue"],
                resources=[reads.master_key_secret_arn],
            ),
            # GetSecretValue of a secret under a customer managed key needs kms:Decrypt on that key (Secrets Manager
            # User Guide, security-encryption "Permissions for the KMS key"); only through Secrets Manager, because
            # this key also encrypts the model bucket and the gateway's stores.
            iam.PolicyStatement(
                sid="GatewayMasterKeyDecrypt",
                actions=["kms:Decrypt"],
                resources=[reads.master_key_secret_key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{Aws.REGION}.amazonaws.com"}},
            ),
        ]
    return statements


@dataclass(frozen=True)
class BuildRuntime:
    """What CodeBuild itself does with the build's role: its network interface in the VPC, its logs, its key, and
    the pipeline's input artifact (the repository) it downloads before the build starts."""

    subnet_ids: Sequence[str]
    log_group_arn: str
    project_key_arn: str
    artifact_bucket_name: str
    pipeline_account: str
    pipeline_region: str


def build_runtime_statements(runtime: BuildRuntime) -> list[iam.PolicyStatement]:
    partition = Aws.PARTITION
    bucket_arn = f"arn:{partition}:s3:::{runtime.artifact_bucket_name}"
    return [
        # A build in a VPC: CodeBuild creates, describes and deletes its network interface with the service role
        # (CodeBuild User Guide, auth-and-access-control-iam-identity-based-access-control "Allow CodeBuild access to
        # AWS services required to create a VPC network interface"); CreateProject checks them, so the project
        # depends on this policy. None of these actions takes a resource narrower than "*" there.
        iam.PolicyStatement(
            sid="VpcNetworkInterface",
            actions=[
                "ec2:CreateNetworkInterface",
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DeleteNetworkInterface",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeVpcs",
            ],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="VpcNetworkInterfacePermission",
            actions=["ec2:CreateNetworkInterfacePermission"],
            resources=[f"arn:{partition}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:network-interface/*"],
            conditions={
                "StringEquals": {
                    "ec2:Subnet": [
                        f"arn:{partition}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:subnet/{subnet}"
                        for subnet in runtime.subnet_ids
                    ],
                    "ec2:AuthorizedService": "codebuild.amazonaws.com",
                }
            },
        ),
        # A log group's `Arn` attribute ends in `:*` (CloudFormation AWS::Logs::LogGroup return values), which
        # covers its streams; the same grant CDK's LogGroup.grantWrite makes.
        iam.PolicyStatement(
            sid="BuildLogs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[runtime.log_group_arn]
        ),
        # The project's encryption key (CodeBuild User Guide, setting-up "Create and configure a customer managed key
        # for CodeBuild": the service role uses it for build output). The build publishes no artifact; these are
        # what an SSE-KMS upload needs, nothing re-encrypts.
        iam.PolicyStatement(
            sid="ProjectKey",
            actions=["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"],
            resources=[runtime.project_key_arn],
        ),
        # The input artifact: CodePipeline hands CodeBuild its S3 location in the pipeline's bucket, and CodeBuild
        # downloads it with this role (CodePipeline User Guide, pipelines-create-cross-account). The bucket's name is
        # fixed (PipelineIdentity), so no reference crosses from the pipeline's stack. The actions are the CodeBuild
        # service role's documented minimum for S3 (CodeBuild User Guide, setting-up "Create a CodeBuild service
        # role": GetObject, GetObjectVersion, and GetBucketAcl, GetBucketLocation for the bucket owner check).
        iam.PolicyStatement(
            sid="PipelineArtifactObjects",
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=[f"{bucket_arn}/*"],
        ),
        iam.PolicyStatement(
            sid="PipelineArtifactBucket", actions=["s3:GetBucketAcl", "s3:GetBucketLocation"], resources=[bucket_arn]
        ),
        # The artifacts are SSE-KMS objects under the pipeline's key, in the pipeline's account: decrypt only as S3
        # reading this bucket's objects (KMS Developer Guide, conditions-kms "kms:ViaService"; S3 User Guide,
        # UsingKMSEncryption "Encryption context": the object's ARN, since the bucket has no S3 Bucket Key,
        # cdk_constructs/pipeline_artifacts.py).
        iam.PolicyStatement(
            sid="PipelineArtifactKey",
            actions=["kms:Decrypt"],
            resources=[f"arn:{partition}:kms:{runtime.pipeline_region}:{runtime.pipeline_account}:key/*"],
            conditions={
                "StringEquals": {"kms:ViaService": f"s3.{runtime.pipeline_region}.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": f"{bucket_arn}/*"},
            },
        ),
    ]


class VerifyBuildRole(Construct):
    """The role CodeBuild runs the verify build as: `VerifyReads` is what verify itself calls; `allow_runtime` adds
    what CodeBuild needs around it, once the project's log group exists."""

    def __init__(self, scope: Construct, id: str, *, role_name: str, description: str, reads: VerifyReads) -> None:
        super().__init__(scope, id)
        self.role_name = role_name
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            description=description,
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
        )
        self.verify_policy = iam.ManagedPolicy(
            self,
            "VerifyPolicy",
            description=f"{role_name}: what genai-ops verify reads",
            roles=[self.role],
            statements=verify_read_statements(reads),
        )
        acknowledge(
            self.verify_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ec2:DescribeInstances and ec2:DescribeVolumes take no resource-level permission (Service Authorization "
            "Reference, Amazon EC2); verify reads the node instances and their volumes, both read-only.",
        )
        if reads.data_stack_name:
            acknowledge(
                self.verify_policy,
                f"AwsSolutions-IAM5[Resource::arn:{_NAG_PARTITION}:cloudformation:{_NAG_REGION}:{_NAG_ACCOUNT}:"
                f"stack/{reads.data_stack_name}/*]",
                "A CloudFormation stack ARN ends in an id generated at creation; the name is fixed, so this is the "
                "one data stack, read with DescribeStacks for the master key secret's ARN.",
            )

    def allow_runtime(self, runtime: BuildRuntime) -> iam.ManagedPolicy:
        policy = iam.ManagedPolicy(
            self,
            "RuntimePolicy",
            description=f"{self.role_name}: CodeBuild's network interface, logs, key and input artifact",
            roles=[self.role],
            statements=build_runtime_statements(runtime),
        )
        _acknowledge_runtime_policy(policy, runtime)
        return policy


def _acknowledge_runtime_policy(policy: iam.ManagedPolicy, runtime: BuildRuntime) -> None:
    bucket = runtime.artifact_bucket_name
    for finding, reason in [
        (
            "AwsSolutions-IAM5[Resource::*]",
            "The network-interface actions CodeBuild needs for a build in a VPC, as its user guide lists them with "
            "resource *: the interface does not exist before the build and its id is CodeBuild's.",
        ),
        (
            f"AwsSolutions-IAM5[Resource::arn:{_NAG_PARTITION}:ec2:{_NAG_REGION}:{_NAG_ACCOUNT}:network-interface/*]",
            "CodeBuild's interface has an id known only at build time; the permission is limited to this project's "
            "subnets and to CodeBuild as the authorized service.",
        ),
        (
            f"AwsSolutions-IAM5[Resource::arn:{_NAG_PARTITION}:s3:::{bucket}/*]",
            "The pipeline writes each run's input artifact under a generated key of its own artifact bucket; read "
            "only (GetObject, GetObjectVersion).",
        ),
        (
            f"AwsSolutions-IAM5[Resource::arn:{_NAG_PARTITION}:kms:{runtime.pipeline_region}:"
            f"{runtime.pipeline_account}:key/*]",
            "The pipeline's artifact key lives in the pipeline stack, whose id this Stage cannot reference; Decrypt "
            "is allowed only through S3, for objects of the pipeline's artifact bucket.",
        ),
    ]:
        acknowledge(policy, finding, reason)
    skip_checkov(
        policy,
        "CKV_AWS_111",
        "ec2:CreateNetworkInterface and DeleteNetworkInterface on *: what CodeBuild needs for a build in a VPC "
        "(CodeBuild User Guide); the interface's id is CodeBuild's, unknown before the build.",
    )


class VerifyActionRole(Construct):
    """The role the pipeline assumes to start the verify build, from the pipeline's account.

    Trusted by that account's root with an `aws:PrincipalArn` condition naming the pipeline's role, not by the role's
    ARN: a policy naming a principal that does not exist yet is refused, and this environment may be deployed by hand
    before the pipeline exists. The same shape CDK uses for cross-account action roles (aws-codepipeline
    `pipeline.ts`, reduceCrossAccountActionRoleTrustScope).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        role_name: str,
        description: str,
        pipeline_account: str,
        pipeline_role_name: str,
        project_arn: str,
    ) -> None:
        super().__init__(scope, id)
        pipeline_role_arn = f"arn:{Aws.PARTITION}:iam::{pipeline_account}:role/{pipeline_role_name}"
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            description=description,
            assumed_by=iam.AccountPrincipal(pipeline_account).with_conditions(
                {"ArnEquals": {"aws:PrincipalArn": pipeline_role_arn}}
            ),
        )
        # What CodePipeline's CodeBuild action calls (aws-codepipeline-actions codebuild/build-action.ts `bound`).
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description=f"{role_name}: start, watch and stop the verify build",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="VerifyBuild",
                    actions=["codebuild:StartBuild", "codebuild:BatchGetBuilds", "codebuild:StopBuild"],
                    resources=[project_arn],
                )
            ],
        )
