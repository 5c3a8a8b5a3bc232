"""The verify build of each delivery environment (stacks/verification.py), built the way app.py builds it with the
pipeline on: dev in the pipeline's account, prod in another one.

The expected requests and AWS calls below are written out from reading ops/verify.py, ops/live.py and ops/target.py
(and checked against what verify actually sends in tests/test_ops_verify.py's healthy environment); the RBAC and IAM
the stack grants must be exactly those."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import boto3
import cdk8s
import kubernetes_validate
import pytest
import yaml
from aws_cdk.assertions import Template

import app as app_module
from cdk_constructs.verification_roles import VerifyReads, verify_read_statements
from k8s.verify_rbac import VerifyRbacChart
from platform_config import cdk_json_context
from stacks.verification import VerificationStack
from tests.conftest import PROJECT_CDK_JSON, cfn_text, only, resources_of
from tests.test_ops_verify import build_world, fake_aws_account

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_ACCOUNT = "111111111111"
REGION = "us-west-2"
ACCOUNTS = {"dev": PIPELINE_ACCOUNT, "prod": "222222222222"}
ZONES = {"dev": ["us-west-2a", "us-west-2b"], "prod": ["us-west-2a", "us-west-2b", "us-west-2c"]}
DELIVERY = {
    "pipeline": True,
    "connection_arn": f"arn:aws:codeconnections:{REGION}:{PIPELINE_ACCOUNT}:connection/"
    "0123abcd-0123-4567-89ab-0123456789ab",
    "repository": "acme/genai-platform",
    "branch": "main",
    "account": PIPELINE_ACCOUNT,
    "region": REGION,
}
# cdk.json name "genai": PipelineIdentity's names (cdk_constructs/pipeline_identity.py).
PIPELINE_ROLE = "genai-delivery-pipeline"
ARTIFACT_BUCKET = f"genai-artifacts-{PIPELINE_ACCOUNT}-{REGION}"
# cdk.json: control_plane_log_retention_days 90 by default, 365 in prod.
LOG_RETENTION = {"dev": 90, "prod": 365}
VERIFY_GROUP = "genai-ops:verify"
PARTITION = "<Ref AWS::Partition>"


# --- what verify calls, written out -------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class KubeRequest:
    """A request's RBAC attributes: namespace ("" cluster-scoped), API group, resource[/subresource], verb, name."""

    namespace: str
    group: str
    resource: str
    verb: str
    name: str = ""


PLATFORM_NAMESPACES = ("inference", "gateway", "keda", "external-secrets", "observability")
# ops/verify.py LiveChecks, with the gateway on (both environments in cdk.json):
VERIFY_REQUESTS = {
    KubeRequest("", "", "nodes", "list"),  # nodes: core.list_node
    KubeRequest("inference", "", "pods", "list"),  # pod_credentials: list_namespaced_pod(inference)
    KubeRequest("kube-system", "", "configmaps", "get", "amazon-vpc-cni"),  # network_policy
    *(KubeRequest(n, "policy", "poddisruptionbudgets", "list") for n in PLATFORM_NAMESPACES),  # pdbs: ns.PLATFORM
    KubeRequest("inference", "keda.sh", "scaledobjects", "list"),  # scaled_objects: vllm
    KubeRequest("gateway", "keda.sh", "scaledobjects", "list"),  # scaled_objects: litellm
    # _series: GET through ServiceProxyEndpoint(observability, prometheus-server, 80)
    KubeRequest("observability", "", "services/proxy", "get", "prometheus-server:80"),
    KubeRequest("gateway", "", "services/proxy", "get", "litellm:80"),  # litellm_ready: GET /health/readiness
    KubeRequest("gateway", "", "services/proxy", "create", "litellm:80"),  # completion: POST /v1/chat/completions
}
GATEWAY_ONLY = {
    KubeRequest("gateway", "keda.sh", "scaledobjects", "list"),
    KubeRequest("gateway", "", "services/proxy", "get", "litellm:80"),
    KubeRequest("gateway", "", "services/proxy", "create", "litellm:80"),
}
# ops/verify.py and ops/live.py through ops/target.AwsClients, with the gateway on.
VERIFY_AWS_CALLS = {
    "eks:DescribeCluster",  # describe_cluster (and `aws eks update-kubeconfig`)
    "eks:ListPodIdentityAssociations",  # pod_identity_associations
    "ec2:DescribeInstances",  # imds
    "ec2:DescribeVolumes",  # node_volumes
    "kms:DescribeKey",  # resolve_key_arn: secrets and node-volumes aliases
    "cloudformation:DescribeStacks",  # gateway_master_key: the data stack's output
    "secretsmanager:GetSecretValue",  # gateway_master_key
}


# --- the synthesized delivery app ---------------------------------------------------------------------------------
@dataclass
class Environment:
    name: str
    platform: app_module.Platform
    template: Template
    stage_dir: Path
    dist: Path
    access: dict[str, Any]  # the template of `<prefix>-verify-access`, on the App

    @property
    def stack(self) -> VerificationStack:
        assert isinstance(self.platform.verification, VerificationStack)
        return self.platform.verification

    def json(self) -> dict[str, Any]:
        return dict(self.template.to_json())

    def resolve(self, value: Any) -> Any:
        """A value of another stack as this stack's template refers to it."""
        return self.stack.resolve(value)

    def logical_id(self, construct: Any) -> str:
        return self.stack.get_logical_id(construct.node.default_child)

    def policy_statements(self, path_suffix: str) -> dict[str, dict[str, Any]]:
        policy = only(
            {
                k: v
                for k, v in resources_of(self.json(), "AWS::IAM::ManagedPolicy").items()
                if v["Metadata"]["aws:cdk:path"].endswith(path_suffix)
            }
        )
        return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def _context() -> dict[str, Any]:
    context = cdk_json_context(PROJECT_CDK_JSON)
    environments = dict(context["environments"])
    for env, account in ACCOUNTS.items():
        environments[env] = {
            **environments[env],
            "account": account,
            "region": REGION,
            "availability_zones": ZONES[env],
        }
    return {**context, "environments": environments, "delivery": DELIVERY}


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Environment]:
    """One pipeline-on synth, as `cdk synth -c delivery.pipeline=true` runs app.py (audit included)."""
    tmp = tmp_path_factory.mktemp("delivery")
    context = _context()
    app = cdk.App(context={**context, "aws:cdk:enable-path-metadata": True}, outdir=str(tmp / "cdk.out"))
    built = app_module.build_delivery(app, context, tmp / "dist")
    assert built is not None
    app_module.synthesize_delivery(built, app, tmp / "dist")
    environments = {}
    for platform in built.platforms:
        stage = platform.app
        assert isinstance(stage, cdk.Stage)
        assert platform.verification is not None
        stage_dir = Path(str(stage.outdir))
        template_file = stage_dir / f"{platform.verification.artifact_id}.template.json"
        template = Template.from_json(json.loads(template_file.read_text()))
        access = json.loads((tmp / "cdk.out" / f"{platform.config.prefix}-verify-access.template.json").read_text())
        environments[platform.config.env_name] = Environment(
            platform.config.env_name, platform, template, stage_dir, tmp / "dist" / platform.config.env_name, access
        )
    return environments


@pytest.fixture(params=["dev", "prod"])
def env(request: pytest.FixtureRequest, delivery: dict[str, Environment]) -> Environment:
    return delivery[request.param]


# --- the project ----------------------------------------------------------------------------------------------------
def _project(env: Environment) -> dict[str, Any]:
    props: dict[str, Any] = only(resources_of(env.json(), "AWS::CodeBuild::Project"))["Properties"]
    return props


def test_project_runs_in_the_private_subnets_with_its_own_group_not_privileged(env: Environment) -> None:
    vpc = env.platform.foundation.network.vpc
    project = _project(env)
    assert project["Name"] == f"genai-{env.name}-verify"
    private = [env.resolve(subnet.subnet_id) for subnet in vpc.private_subnets]
    public = [env.resolve(subnet.subnet_id) for subnet in vpc.public_subnets]
    assert len(private) == {"dev": 2, "prod": 3}[env.name]
    assert project["VpcConfig"]["Subnets"] == private
    assert not any(subnet in public for subnet in project["VpcConfig"]["Subnets"])
    assert project["VpcConfig"]["VpcId"] == env.resolve(vpc.vpc_id)
    (group_id,) = resources_of(env.json(), "AWS::EC2::SecurityGroup")
    assert project["VpcConfig"]["SecurityGroupIds"] == [{"Fn::GetAtt": [group_id, "GroupId"]}]
    assert project["Environment"] == {
        "ComputeType": "BUILD_GENERAL1_SMALL",
        "Image": "aws/codebuild/standard:7.0",
        "ImagePullCredentialsType": "CODEBUILD",
        "PrivilegedMode": False,
        "Type": "LINUX_CONTAINER",
    }
    assert project["Source"]["Type"] == "CODEPIPELINE"
    assert project["Artifacts"] == {"Type": "CODEPIPELINE"}
    # verify waits up to 30 min for a starting environment (--wait-for 1800, below); installing the requirements and
    # the last run of the checks fit in the other 30.
    assert project["TimeoutInMinutes"] == 60


def test_project_encrypts_with_the_platform_logs_key_and_logs_to_its_own_group(env: Environment) -> None:
    logs_key = env.resolve(env.platform.foundation.keys.logs.key_arn)
    project = _project(env)
    assert project["EncryptionKey"] == logs_key
    ((log_group_id, log_group),) = resources_of(env.json(), "AWS::Logs::LogGroup").items()
    assert log_group["Properties"]["LogGroupName"] == f"/aws/codebuild/genai-{env.name}-verify"
    assert log_group["Properties"]["KmsKeyId"] == logs_key
    assert log_group["Properties"]["RetentionInDays"] == LOG_RETENTION[env.name]
    assert project["LogsConfig"] == {"CloudWatchLogs": {"GroupName": {"Ref": log_group_id}, "Status": "ENABLED"}}


def test_the_build_group_sends_only_https_and_reaches_the_cluster_api_on_443(env: Environment) -> None:
    group_id, group = next(iter(resources_of(env.json(), "AWS::EC2::SecurityGroup").items()))
    assert [
        (r["IpProtocol"], r["FromPort"], r["ToPort"], r["CidrIp"]) for r in group["Properties"]["SecurityGroupEgress"]
    ] == [("tcp", 443, 443, "0.0.0.0/0")]
    assert "SecurityGroupIngress" not in group["Properties"]
    cluster_group = env.resolve(env.platform.foundation.cluster.cluster.cluster_security_group_id)
    env.template.resource_count_is("AWS::EC2::SecurityGroupIngress", 1)
    env.template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "GroupId": cluster_group,
            "SourceSecurityGroupId": {"Fn::GetAtt": [group_id, "GroupId"]},
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
        },
    )
    # The rule is in this stack, not added to the foundation's cluster group (which would make it depend on this one).
    foundation = json.loads((env.stage_dir / f"{env.platform.foundation.artifact_id}.template.json").read_text())
    assert "verify" not in json.dumps(resources_of(foundation, "AWS::EC2::SecurityGroupIngress")).lower()


def _buildspec(env: Environment) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(_project(env)["Source"]["BuildSpec"])
    return spec


def test_the_buildspec_installs_the_project_and_runs_verify_against_this_environment(env: Environment) -> None:
    spec = _buildspec(env)
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11"}
    assert spec["phases"]["install"]["commands"] == [
        "python -m venv .venv",
        ".venv/bin/python -m pip install --quiet -r requirements.txt",
        ".venv/bin/python -m pip install --quiet --no-deps -e .",
    ]
    assert spec["phases"]["build"]["commands"] == [
        f"aws eks update-kubeconfig --name genai-{env.name} --region {REGION}",
        f".venv/bin/genai-ops verify --env {env.name} --region {REGION} --wait-for 1800",
    ]
    assert "artifacts" not in spec  # a cross-account CodeBuild action can have no output (aws/aws-cdk#4169)


def test_the_wait_covers_a_rollout_of_every_replica_and_fits_in_the_build(env: Environment) -> None:
    """The vLLM Deployment replaces one replica at a time (maxSurge 1, maxUnavailable 0), each on a new GPU node in
    the worst case: max_replicas cold starts of 300 s each (README "Cold-start budget") must fit in verify's wait,
    and the wait must leave the build at least 20 minutes for the install and the last run of the checks."""
    command = _buildspec(env)["phases"]["build"]["commands"][-1].split()
    wait = int(command[command.index("--wait-for") + 1])
    manifests = yaml.safe_load_all((env.dist / "k8s" / "inference.k8s.yaml").read_text())
    (vllm,) = [m for m in manifests if m and m["kind"] == "Deployment" and m["metadata"]["name"] == "vllm"]
    assert vllm["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    replicas = env.platform.config.inference.autoscaling.max_replicas
    assert replicas * 300 <= wait, f"{replicas} replicas at 300 s each do not fit in --wait-for {wait}"
    assert wait <= 7200  # verify's bound for --wait-for
    assert _project(env)["TimeoutInMinutes"] * 60 - wait >= 20 * 60


def _verify_options() -> set[str]:
    script = Path(sys.executable).parent / "genai-ops"
    help_text = subprocess.run(
        [str(script), "verify", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"},
    ).stdout
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text))


def test_every_option_the_buildspec_passes_exists_and_names_a_real_environment(
    delivery: dict[str, Environment],
) -> None:
    options = _verify_options()
    assert {"--env", "--region", "--kubeconfig"} <= options  # the parse found the options table
    # `pip install -e .` puts the console script the buildspec calls into the venv (pyproject.toml).
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["genai-ops"] == "ops.cli:main"
    assert (ROOT / "requirements.txt").is_file()
    environments = cdk_json_context(PROJECT_CDK_JSON)["environments"]
    for env in delivery.values():
        command = _buildspec(env)["phases"]["build"]["commands"][-1].split()
        assert command[:2] == [".venv/bin/genai-ops", "verify"]
        passed = [word for word in command if word.startswith("--")]
        assert set(passed) <= options, f"not options of genai-ops verify: {set(passed) - options}"
        assert command[command.index("--env") + 1] in environments
        # verify refuses a kubeconfig context on another cluster: update-kubeconfig names the config's cluster.
        assert f"--name {env.platform.config.prefix} " in _buildspec(env)["phases"]["build"]["commands"][0]


# --- roles ----------------------------------------------------------------------------------------------------------
def _role(env: Environment, name: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    resources = resources_of(env.json() if template is None else template, "AWS::IAM::Role").values()
    roles = [r for r in resources if r["Properties"]["RoleName"] == name]
    assert len(roles) == 1, f"no single role named {name}"
    return roles[0]


def test_fixed_names_the_pipeline_refers_to(env: Environment) -> None:
    names = sorted(r["Properties"]["RoleName"] for r in resources_of(env.json(), "AWS::IAM::Role").values())
    assert names == [f"genai-{env.name}-verify-build"]
    # The action role is the verify-access stack's, deployed before the pipeline (tests/test_delivery.py).
    access = sorted(r["Properties"]["RoleName"] for r in resources_of(env.access, "AWS::IAM::Role").values())
    assert access == [f"genai-{env.name}-verify-action"]
    assert _project(env)["ServiceRole"] == {"Fn::GetAtt": [env.logical_id(env.stack.build_role.role), "Arn"]}


def test_the_build_role_is_codebuilds_only(env: Environment) -> None:
    trust = _role(env, f"genai-{env.name}-verify-build")["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}}
    ]


def test_the_action_role_trusts_the_pipeline_account_only_for_the_pipeline_role(env: Environment) -> None:
    role = _role(env, f"genai-{env.name}-verify-action", env.access)
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRole"
    # The account root, never the role's ARN: the pipeline role may not exist when this stack deploys.
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{PIPELINE_ACCOUNT}:root"}
    (operator, condition), *rest = statement["Condition"].items()
    assert not rest
    assert operator == "ArnEquals"
    assert {k: cfn_text(v) for k, v in condition.items()} == {
        "aws:PrincipalArn": f"arn:{PARTITION}:iam::{PIPELINE_ACCOUNT}:role/{PIPELINE_ROLE}"
    }
    assert ":role/" not in json.dumps(statement["Principal"])


def test_the_action_role_may_only_start_watch_and_stop_this_project(env: Environment) -> None:
    account = ACCOUNTS[env.name]
    (policy,) = resources_of(env.access, "AWS::IAM::ManagedPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statements == [
        {
            "Action": ["codebuild:BatchGetBuilds", "codebuild:StartBuild", "codebuild:StopBuild"],
            "Effect": "Allow",
            "Resource": f"arn:aws:codebuild:{REGION}:{account}:project/genai-{env.name}-verify",
            "Sid": "VerifyBuild",
        }
    ]


def test_no_inline_policy_every_permission_in_a_managed_policy(env: Environment) -> None:
    env.template.resource_count_is("AWS::IAM::Policy", 0)
    env.template.resource_count_is("AWS::IAM::ManagedPolicy", 2)
    role_ids = {env.logical_id(env.stack.build_role.role)}
    for policy in resources_of(env.json(), "AWS::IAM::ManagedPolicy").values():
        assert len(policy["Properties"]["Roles"]) == 1
        assert policy["Properties"]["Roles"][0]["Ref"] in role_ids


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_the_build_role_may_make_exactly_the_aws_calls_of_verify(env: Environment) -> None:
    foundation = env.platform.foundation
    stores = env.platform.data.gateway_stores
    assert stores is not None
    statements = env.policy_statements("/BuildRole/VerifyPolicy/Resource")
    assert {a for s in statements.values() for a in _actions(s)} == VERIFY_AWS_CALLS | {"kms:Decrypt"}
    assert all(s["Effect"] == "Allow" for s in statements.values())
    resources = {sid: s["Resource"] for sid, s in statements.items()}
    assert resources == {
        "Cluster": env.resolve(foundation.cluster.cluster.cluster_arn),
        "NodeInstancesAndVolumes": "*",
        "PlatformKeys": [
            env.resolve(foundation.keys.eks_secrets.key_arn),
            env.resolve(foundation.keys.node_volumes.key_arn),
        ],
        "DataStackOutputs": resources["DataStackOutputs"],
        "GatewayMasterKey": env.resolve(stores.master_key_secret.secret_arn),
        "GatewayMasterKeyDecrypt": env.resolve(foundation.keys.data.key_arn),
    }
    assert cfn_text(resources["DataStackOutputs"]) == (
        f"arn:{PARTITION}:cloudformation:<Ref AWS::Region>:<Ref AWS::AccountId>:stack/genai-{env.name}-data/*"
    )
    assert _actions(statements["Cluster"]) == ["eks:DescribeCluster", "eks:ListPodIdentityAssociations"]
    assert _actions(statements["NodeInstancesAndVolumes"]) == ["ec2:DescribeInstances", "ec2:DescribeVolumes"]
    assert _actions(statements["GatewayMasterKeyDecrypt"]) == ["kms:Decrypt"]
    # The data key also guards the model bucket and the gateway's stores: decrypt only through Secrets Manager.
    assert {k: cfn_text(v) for k, v in statements["GatewayMasterKeyDecrypt"]["Condition"]["StringEquals"].items()} == {
        "kms:ViaService": "secretsmanager.<Ref AWS::Region>.amazonaws.com"
    }
    assert all("Condition" not in s for sid, s in statements.items() if sid != "GatewayMasterKeyDecrypt")


def test_without_the_gateway_verify_reads_no_stack_output_and_no_secret() -> None:
    statements = verify_read_statements(VerifyReads(cluster_arn="arn:cluster", described_key_arns=["arn:k1", "arn:k2"]))
    actions = {a for s in statements for a in _actions(s.to_statement_json())}
    assert actions == VERIFY_AWS_CALLS - {"cloudformation:DescribeStacks", "secretsmanager:GetSecretValue"}


def test_the_build_role_may_run_in_the_vpc_log_and_read_the_pipelines_artifacts(env: Environment) -> None:
    statements = env.policy_statements("/BuildRole/RuntimePolicy/Resource")
    assert set(statements) == {
        "VpcNetworkInterface",
        "VpcNetworkInterfacePermission",
        "BuildLogs",
        "ProjectKey",
        "PipelineArtifactObjects",
        "PipelineArtifactBucket",
        "PipelineArtifactKey",
    }
    assert sorted(_actions(statements["VpcNetworkInterface"])) == [
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
    ]
    permission = statements["VpcNetworkInterfacePermission"]
    assert _actions(permission) == ["ec2:CreateNetworkInterfacePermission"]
    subnets = [env.resolve(s.subnet_id) for s in env.platform.foundation.network.vpc.private_subnets]
    conditions = permission["Condition"]["StringEquals"]
    assert conditions["ec2:AuthorizedService"] == "codebuild.amazonaws.com"
    assert [cfn_text(c).rsplit("/", 1)[1] for c in conditions["ec2:Subnet"]] == [cfn_text(s) for s in subnets]
    (log_group_id,) = resources_of(env.json(), "AWS::Logs::LogGroup")
    assert statements["BuildLogs"]["Resource"] == {"Fn::GetAtt": [log_group_id, "Arn"]}
    assert _actions(statements["BuildLogs"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statements["ProjectKey"]["Resource"] == env.resolve(env.platform.foundation.keys.logs.key_arn)
    assert _actions(statements["ProjectKey"]) == [
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey",
    ]
    objects = statements["PipelineArtifactObjects"]
    assert _actions(objects) == ["s3:GetObject", "s3:GetObjectVersion"]
    assert cfn_text(objects["Resource"]) == f"arn:{PARTITION}:s3:::{ARTIFACT_BUCKET}/*"
    bucket = statements["PipelineArtifactBucket"]
    assert _actions(bucket) == ["s3:GetBucketAcl", "s3:GetBucketLocation"]
    assert cfn_text(bucket["Resource"]) == f"arn:{PARTITION}:s3:::{ARTIFACT_BUCKET}"
    key = statements["PipelineArtifactKey"]
    assert _actions(key) == ["kms:Decrypt"]
    assert cfn_text(key["Resource"]) == f"arn:{PARTITION}:kms:{REGION}:{PIPELINE_ACCOUNT}:key/*"
    assert key["Condition"]["StringEquals"] == {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    # S3's encryption context is the object's ARN (the artifact bucket has no S3 Bucket Key).
    assert {k: cfn_text(v) for k, v in key["Condition"]["StringLike"].items()} == {
        "kms:EncryptionContext:aws:s3:arn": f"arn:{PARTITION}:s3:::{ARTIFACT_BUCKET}/*"
    }
    # CodeBuild checks these permissions when it creates a project in a VPC.
    (project_id,) = resources_of(env.json(), "AWS::CodeBuild::Project")
    runtime_id = env.logical_id(env.stack.runtime_policy)
    assert env.json()["Resources"][project_id]["DependsOn"] == [runtime_id]


# --- EKS access -----------------------------------------------------------------------------------------------------
def test_a_standard_access_entry_puts_the_build_role_in_the_verify_group(env: Environment) -> None:
    entry = only(resources_of(env.json(), "AWS::EKS::AccessEntry"))["Properties"]
    build_role = env.logical_id(env.stack.build_role.role)
    assert entry["Type"] == "STANDARD"
    assert entry["KubernetesGroups"] == [VERIFY_GROUP]
    assert entry["PrincipalArn"] == {"Fn::GetAtt": [build_role, "Arn"]}  # the role of this same stack
    assert entry["ClusterName"] == env.resolve(env.platform.foundation.cluster.cluster.cluster_name)
    assert "AccessPolicies" not in entry  # no EKS access policy: only the RBAC below
    assert not VERIFY_GROUP.startswith(("system:", "eks:", "aws:", "amazon:", "iam:"))  # EKS's reserved prefixes


def _foundation_resources(env: Environment, resource_type: str) -> dict[str, Any]:
    foundation = env.platform.foundation
    template = json.loads((env.stage_dir / f"{foundation.artifact_id}.template.json").read_text())
    return resources_of(template, resource_type)


def _joined(value: Any) -> str:
    """A string of Fn::Join over literals and pseudo-parameter Refs, the Refs written as `<Ref X>`."""
    if isinstance(value, str):
        return value
    if set(value) == {"Ref"}:
        return f"<Ref {value['Ref']}>"
    separator, parts = value["Fn::Join"]
    return str(separator).join(_joined(part) for part in parts)


def test_the_cluster_the_entry_goes_into_admits_api_access_entries(env: Environment) -> None:
    # An access entry works only when the cluster's authentication mode is API or API_AND_CONFIG_MAP (EKS User Guide,
    # setting-up-access-entries); with CONFIG_MAP the entry cannot be created and the stack fails on first deploy.
    cluster = only(_foundation_resources(env, "AWS::EKS::Cluster"))["Properties"]
    assert cluster["AccessConfig"]["AuthenticationMode"] in ("API", "API_AND_CONFIG_MAP")


def test_the_logs_key_admits_cloudwatch_logs_for_the_builds_log_group(env: Environment) -> None:
    # CloudWatch Logs associates a key with a log group only if the key policy lets logs.<region>.amazonaws.com use it
    # for that group's ARN as encryption context (CloudWatch Logs User Guide, encrypt-log-data-kms); otherwise the
    # log group, and so this stack, fails on create.
    logs_key = env.platform.foundation.keys.logs
    key_resource = logs_key.node.default_child
    assert isinstance(key_resource, cdk.CfnElement)
    key_id = env.platform.foundation.get_logical_id(key_resource)
    statements = _foundation_resources(env, "AWS::KMS::Key")[key_id]["Properties"]["KeyPolicy"]["Statement"]
    (logs,) = [s for s in statements if "Service" in s["Principal"]]
    assert _joined(logs["Principal"]["Service"]) == "logs.<Ref AWS::Region>.amazonaws.com"
    assert {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"} <= set(logs["Action"])
    (pattern,) = logs["Condition"]["ArnLike"].values()
    rendered = _joined(pattern).replace("<Ref AWS::Partition>", "aws").replace("<Ref AWS::Region>", REGION)
    rendered = rendered.replace("<Ref AWS::AccountId>", ACCOUNTS[env.name])
    group = f"arn:aws:logs:{REGION}:{ACCOUNTS[env.name]}:log-group:/aws/codebuild/genai-{env.name}-verify"
    assert fnmatch.fnmatchcase(group, rendered)
    assert not fnmatch.fnmatchcase(group.replace(ACCOUNTS[env.name], "333333333333"), rendered)


def _rbac_documents(env: Environment) -> list[dict[str, Any]]:
    text = (env.dist / "k8s" / "verify-rbac.k8s.yaml").read_text()
    assert f"applied by the stack genai-{env.name}-verify" in text
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_rbac_manifests_pass_strict_schema_validation_and_are_applied_by_this_stack(env: Environment) -> None:
    documents = _rbac_documents(env)
    assert {d["kind"] for d in documents} == {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    for document in documents:
        kubernetes_validate.validate(document, env.platform.config.cluster.kubernetes_version, strict=True)
    manifest = only(resources_of(env.json(), "Custom::AWSCDK-EKS-KubernetesResource"))["Properties"]
    applied = json.loads(manifest["Manifest"])
    assert [(d["kind"], d["metadata"].get("namespace")) for d in applied] == [
        (d["kind"], d["metadata"].get("namespace")) for d in documents
    ]


def _grants(documents: list[dict[str, Any]]) -> set[KubeRequest]:
    """Every request the bound roles allow: one per namespace, group, resource, verb and resource name."""
    roles = {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in documents}
    grants: set[KubeRequest] = set()
    for binding in (d for d in documents if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": VERIFY_GROUP}]
        namespace = binding["metadata"].get("namespace", "")
        role = roles[(binding["roleRef"]["kind"], namespace, binding["roleRef"]["name"])]
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames", [""]):
                            grants.add(KubeRequest(namespace, group, resource, verb, name))
    assert all(
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) in roles
        for d in documents
        if d["kind"] in ("Role", "ClusterRole")
    )
    return grants


def test_every_rbac_rule_covers_a_request_of_verify_and_no_more(env: Environment) -> None:
    documents = _rbac_documents(env)
    # Exact equality: nothing verify needs is missing, nothing it does not request is granted (no wildcard, no
    # watch, a `get` only of the named ConfigMap and Services).
    assert _grants(documents) == VERIFY_REQUESTS
    assert "*" not in json.dumps([d.get("rules") for d in documents])


def test_without_the_gateway_no_rule_reaches_it() -> None:
    chart = VerifyRbacChart(cdk8s.App(), "verify-rbac", group=VERIFY_GROUP, gateway=False, labels={})
    documents = [dict(d) for d in chart.to_json()]
    assert _grants(documents) == VERIFY_REQUESTS - GATEWAY_ONLY


# --- what verify actually requests ----------------------------------------------------------------------------------
def _rbac_attributes(method: str, path: str) -> KubeRequest | None:
    """The RBAC attributes the API server derives from a request (k8s.io/apiserver pkg/endpoints/request/
    requestinfo.go: /api/v1 is the core group, /apis/<group>/<version> others; namespaces/<ns>/<resource>/<name>/
    <subresource>; GET of a collection is `list`, of one object `get`, POST `create`). None for a non-resource URL."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = ""
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        namespace, rest = rest[1], rest[2:]
    name = rest[1] if len(rest) > 1 else ""
    resource = f"{rest[0]}/{rest[2]}" if len(rest) > 2 else rest[0]
    verb = {"GET": "get" if name else "list", "POST": "create"}[method]
    return KubeRequest(namespace, group, resource, verb, name)


@pytest.fixture
def moto_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's account (tests/test_ops_verify.py), with boto3's default session made afresh for this test only."""
    with fake_aws_account(monkeypatch):
        boto3.setup_default_session()
        yield
    boto3.DEFAULT_SESSION = None


def test_what_verify_really_requests_is_what_the_rbac_and_iam_grant(
    moto_account: None, tmp_path: Path, delivery: dict[str, Environment]
) -> None:
    """verify's checks against tests/test_ops_verify.py's healthy dev environment, every check passing: the Kubernetes
    requests its fake API server recorded and the AWS operations its clients made are the lists written out above."""
    world = build_world(tmp_path)  # its own setup calls are made before the recorder is registered
    recorded_aws_calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        # Clients copy the session's handlers when made: world.check() makes verify's clients after this.
        recorded_aws_calls.append(f"{model.service_model.signing_name}:{model.name}")

    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-parameter-build", record)
    results = world.check()
    assert {r.status for r in results.values()} == {"pass"}, results
    requested = {_rbac_attributes(r.method, r.path) for r in world.kube_requests}
    assert {r.path for r in world.kube_requests if _rbac_attributes(r.method, r.path) is None} == {"/version"}
    assert requested - {None} == VERIFY_REQUESTS
    assert set(recorded_aws_calls) == VERIFY_AWS_CALLS
    # And what the dev stack grants is exactly that.
    dev = delivery["dev"]
    assert _grants(_rbac_documents(dev)) == requested - {None}
    verify_actions = {
        a for s in dev.policy_statements("/BuildRole/VerifyPolicy/Resource").values() for a in _actions(s)
    }
    # kms:Decrypt is Secrets Manager's call to KMS on the build's behalf, not a client call.
    assert verify_actions == set(recorded_aws_calls) | {"kms:Decrypt"}


def test_the_vpc_policy_hatch_removes_cdks_unattached_policy_and_fails_loudly_when_cdk_changes() -> None:
    from aws_cdk import aws_codebuild as codebuild
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_iam as iam

    from cdk_constructs.verification_project import drop_unattached_vpc_policy

    stack = cdk.Stack(cdk.App(), "Hatch")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=1, nat_gateways=0)
    role = iam.Role.from_role_arn(stack, "Role", "arn:aws:iam::111111111111:role/verify", mutable=False)
    project = codebuild.PipelineProject(stack, "Project", vpc=vpc, role=role)
    # aws-codebuild makes this child for every project in a VPC (project.ts addVpcRequiredPermissions).
    assert project.node.try_find_child("PolicyDocument") is not None

    drop_unattached_vpc_policy(project)

    assert project.node.try_find_child("PolicyDocument") is None
    with pytest.raises(LookupError, match="aws-codebuild changed, review this hatch"):
        drop_unattached_vpc_policy(project)
