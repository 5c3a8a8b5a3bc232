"""`genai-ops cleanup` against moto: what `cdk destroy` leaves of the platform, next to look-alikes that must stay.

The account holds the platform's leftovers (env dev of project genai, cluster genai-dev) AND resources that look
like them but are not theirs: other projects' and other environments' tags, an in-use volume and network interface,
untagged resources, a bucket a live stack still holds, a security group of a cluster that merely shares a subnet
(`kubernetes.io/cluster/genai-dev=shared`), and resources tagged exactly like the platform's that none of its stacks
retained (made by hand, or by a stack `genai-dev-experiments` that is not one of the platform's). The stacks'
history (which deleted stack retained what) is CloudFormation's as AWS reports it (tests/recorded_cloudformation.py).
Every expected value below is written out here, never taken from ops.cleanup.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.handlers
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto import mock_aws
from rich.console import Console

from ops import cleanup
from ops.cleanup.deletion import retry_while_held
from ops.cleanup.leftovers import find_leftovers
from ops.cli import app, run
from ops.errors import OpsError
from tests.conftest import PROJECT_CDK_JSON
from tests.recorded_cloudformation import RecordedStacks

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-west-2"
CLUSTER = "genai-dev"
PLATFORM = {"project": "genai", "environment": "dev"}


@pytest.fixture
def stacks() -> RecordedStacks:
    return RecordedStacks(REGION)


def _refuse_referenced_group(
    model: Any, context: dict[str, Any], **_: Any
) -> tuple[AWSResponse, dict[str, Any]] | None:
    """EC2 refuses to delete a security group another group's rule references (EC2 API Reference DeleteSecurityGroup:
    DependencyViolation); moto deletes it anyway, so this answers as EC2 does, from moto's own state."""
    if model.name != "DeleteSecurityGroup":
        return None
    group = context["recorded_parameters"]["GroupId"]
    ec2 = boto3.client("ec2", region_name=REGION)
    for name in ("ip-permission.group-id", "egress.ip-permission.group-id"):
        groups = ec2.describe_security_groups(Filters=[{"Name": name, "Values": [group]}])["SecurityGroups"]
        if any(sg["GroupId"] != group for sg in groups):
            error = {"Code": "DependencyViolation", "Message": f"resource {group} has a dependent object"}
            return AWSResponse(None, 400, {}, None), {"Error": error}
    return None


def _keep_ec2_parameters(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["recorded_parameters"] = dict(params)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, stacks: RecordedStacks) -> Iterator[boto3.Session]:
    """A moto account whose CloudFormation history is `stacks`; the CLI's own boto3 sessions land in it too."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("COLUMNS", "250")
    handlers = [
        *stacks.handlers(),
        ("before-parameter-build.ec2.DeleteSecurityGroup", _keep_ec2_parameters),
        ("before-call.ec2.DeleteSecurityGroup", _refuse_referenced_group),
    ]
    # Built-in handlers reach every session created from now on, as moto's own do.
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", [*botocore.handlers.BUILTIN_HANDLERS, *handlers])
    with mock_aws():
        yield boto3.Session(region_name=REGION)


@pytest.fixture
def cdk_json(tmp_path: Path) -> Path:
    """The project's cdk.json alone (no developer's cdk.context.json next to it)."""
    path = tmp_path / "cdk.json"
    shutil.copy(PROJECT_CDK_JSON, path)
    return path


def _tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _ec2_tags(resource: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": _tag_list(tags)}] if tags else []


@dataclass
class Account:
    """The ids of what the scenario created: `ours` must go, everything else must stay."""

    ours: dict[str, list[str]]
    others: dict[str, list[str]]
    pending_key: str
    deleted_secret: str


def build_scenario(session: boto3.Session, stacks: RecordedStacks) -> Account:
    ec2 = session.client("ec2")
    elbv2 = session.client("elbv2")
    logs = session.client("logs")
    s3 = session.client("s3")
    secrets = session.client("secretsmanager")
    kms = session.client("kms")
    ours: dict[str, list[str]] = {}
    others: dict[str, list[str]] = {}

    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate("ab")
    ]
    cluster_tag = {"eks:eks-cluster-name": CLUSTER}
    other_cluster = {"eks:eks-cluster-name": "other-dev"}

    def group(name: str, tags: dict[str, str]) -> str:
        return str(
            ec2.create_security_group(
                GroupName=name, Description=name, VpcId=vpc, TagSpecifications=_ec2_tags("security-group", tags)
            )["GroupId"]
        )

    # Security groups: the ALB's (Auto Mode tags it with the cluster) and the EKS cluster group EKS left behind.
    alb_group = group("k8s-gateway-litellm", {**cluster_tag, "ingress.eks.amazonaws.com/stack": "gateway/litellm"})
    cluster_group = group("eks-cluster-sg-genai-dev", {f"kubernetes.io/cluster/{CLUSTER}": "owned"})
    # The load balancer's group is let into the cluster's: EC2 refuses to delete it while that rule stands.
    ec2.authorize_security_group_ingress(
        GroupId=cluster_group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 4000, "ToPort": 4000, "UserIdGroupPairs": [{"GroupId": alb_group}]}
        ],
    )
    ours["security groups"] = [alb_group, cluster_group]
    others["security groups"] = [
        group("shared-with-genai-dev", {f"kubernetes.io/cluster/{CLUSTER}": "shared"}),
        group("k8s-other", other_cluster),
        group("untagged", {}),
    ]

    # Load balancers and target groups: ours forwards to our target group, so the group can go only after it.
    def balancer(name: str, tags: dict[str, str]) -> str:
        return str(
            elbv2.create_load_balancer(
                Name=name,
                Subnets=subnets,
                SecurityGroups=[alb_group],
                Scheme="internal",
                **({"Tags": _tag_list(tags)} if tags else {}),
            )["LoadBalancers"][0]["LoadBalancerArn"]
        )

    def target_group(name: str, tags: dict[str, str]) -> str:
        arn = elbv2.create_target_group(Name=name, Protocol="HTTP", Port=4000, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        if tags:
            elbv2.add_tags(ResourceArns=[arn], Tags=_tag_list(tags))
        return str(arn)

    our_balancer = balancer("k8s-gateway-litellm-0a1b2c3d", {**cluster_tag, "ingress.eks.amazonaws.com/stack": "x"})
    our_target_group = target_group("k8s-gateway-litellm-4000", cluster_tag)
    elbv2.create_listener(
        LoadBalancerArn=our_balancer,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": our_target_group}],
    )
    ours["load balancers"] = [our_balancer]
    ours["target groups"] = [our_target_group]
    others["load balancers"] = [balancer("k8s-other-app", other_cluster), balancer("untagged-lb", {})]
    others["target groups"] = [target_group("k8s-other-tg", other_cluster), target_group("untagged-tg", {})]

    # Network interfaces and volumes: only available ones of this cluster; an attached one is in use.
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnets[0])["Instances"][0]

    def interface(tags: dict[str, str]) -> str:
        return str(
            ec2.create_network_interface(
                SubnetId=subnets[0], Groups=[cluster_group], TagSpecifications=_ec2_tags("network-interface", tags)
            )["NetworkInterface"]["NetworkInterfaceId"]
        )

    ours["network interfaces"] = [interface({**cluster_tag, "eks:kubernetes-cni-node-name": "i-0123"})]
    in_use_interface = interface(cluster_tag)
    ec2.attach_network_interface(NetworkInterfaceId=in_use_interface, InstanceId=instance["InstanceId"], DeviceIndex=1)
    others["network interfaces"] = [in_use_interface, interface(other_cluster), interface({})]

    def volume(tags: dict[str, str]) -> str:
        return str(
            ec2.create_volume(
                AvailabilityZone=f"{REGION}a", Size=20, VolumeType="gp3", TagSpecifications=_ec2_tags("volume", tags)
            )["VolumeId"]
        )

    claim = {"kubernetes.io/created-for/pvc/namespace": "observability", "kubernetes.io/created-for/pvc/name": "data"}
    ours["volumes"] = [volume({**cluster_tag, **claim})]
    in_use_volume = volume(cluster_tag)
    ec2.attach_volume(VolumeId=in_use_volume, InstanceId=instance["InstanceId"], Device="/dev/sdf")
    others["volumes"] = [in_use_volume, volume(other_cluster), volume({})]

    # Managed Prometheus workspaces: prod retains its workspace; here dev's is the leftover, prod's stays.
    amp = session.client("amp")
    workspace = amp.create_workspace(alias=CLUSTER, tags=PLATFORM)
    ours["workspaces"] = [workspace["workspaceId"]]
    others["workspaces"] = [
        amp.create_workspace(alias="genai-prod", tags={**PLATFORM, "environment": "prod"})["workspaceId"]
    ]

    # The final Aurora snapshot a SNAPSHOT removal policy took: tagged like a leftover, a backup kept on purpose.
    # Its cluster was encrypted with a key the foundation stack retained (prod's data key), which must stay with it.
    rds = session.client("rds")
    snapshot_key = kms.create_key(
        Description="genai-dev: model bucket, gateway database and secrets",
        Tags=[{"TagKey": k, "TagValue": v} for k, v in PLATFORM.items()],
    )["KeyMetadata"]
    rds.create_db_cluster(
        DBClusterIdentifier="genai-dev-gateway-db",
        Engine="aurora-postgresql",
        MasterUsername="litellm",
        MasterUserPassword="not-a-real-password",
        StorageEncrypted=True,
        KmsKeyId=snapshot_key["Arn"],
    )
    others["snapshots"] = [
        rds.create_db_cluster_snapshot(
            DBClusterIdentifier="genai-dev-gateway-db",
            DBClusterSnapshotIdentifier="genai-dev-gateway-db-final",
            Tags=_tag_list(PLATFORM),
        )["DBClusterSnapshot"]["DBClusterSnapshotIdentifier"]
    ]

    # Log groups: the cluster's (pre-created by the foundation stack, so project-tagged); prod's and another
    # project's are not dev's; Container Insights' groups carry no project tags and are only named.
    def log_group(name: str, tags: dict[str, str]) -> str:
        logs.create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))
        return name

    ours["log groups"] = [log_group(f"/aws/eks/{CLUSTER}/cluster", PLATFORM)]
    others["log groups"] = [
        log_group("/aws/eks/genai-prod/cluster", {"project": "genai", "environment": "prod"}),
        log_group("/other/app", {"project": "other", "environment": "dev"}),
        log_group(f"/aws/containerinsights/{CLUSTER}/application", {}),
    ]

    # Buckets: the model bucket (versioned, with old versions and a delete marker) logs to the access-log bucket.
    def bucket(name: str, tags: dict[str, str]) -> str:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        if tags:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tag_list(tags)})
        return name

    access_logs = bucket("genai-dev-data-accesslogs-1a2b", PLATFORM)
    models = bucket("genai-dev-data-models-3c4d", PLATFORM)
    s3.put_bucket_versioning(Bucket=models, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"v1", b"v2"):
        s3.put_object(Bucket=models, Key="models/config.json", Body=body)
    s3.delete_object(Bucket=models, Key="models/config.json")
    s3.put_object(Bucket=access_logs, Key="logs/2026-12-01", Body=b"log")
    s3.put_bucket_acl(
        Bucket=access_logs,
        AccessControlPolicy={
            "Grants": [
                {
                    "Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/s3/LogDelivery"},
                    "Permission": permission,
                }
                for permission in ("WRITE", "READ_ACP")
            ],
            "Owner": s3.get_bucket_acl(Bucket=access_logs)["Owner"],
        },
    )
    s3.put_bucket_logging(
        Bucket=models, BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": access_logs, "TargetPrefix": "m/"}}
    )
    # Deletion order within buckets: the one receiving access logs goes last.
    ours["buckets"] = [models, access_logs]
    others["buckets"] = [
        bucket("other-project-models", {"project": "other", "environment": "dev"}),
        bucket("untagged-b", {}),
    ]
    # Tagged exactly like the platform's, but no platform stack retained them: one made by hand, one a deleted
    # platform stack lists as deleted (DELETE_COMPLETE) whose name someone reused, one another stack retained.
    scratch = bucket("genai-dev-data-scratch-9z9z", PLATFORM)
    others["buckets"] += [bucket("genai-dev-handmade", PLATFORM), scratch]
    experiments = log_group("/genai-dev/experiments", PLATFORM)
    others["log groups"].append(experiments)
    # A bucket the live data stack still holds (a redeployed environment): tagged like a leftover, but not one.
    held = bucket("genai-dev-data-models-yucpjkjpledk", PLATFORM)
    others["buckets"].append(held)

    # Secrets: a retained one goes (recovery window); one already scheduled is not listed again.
    ours["secrets"] = [
        secrets.create_secret(Name="genai-dev/gateway/master-key", SecretString="x", Tags=_tag_list(PLATFORM))["ARN"]
    ]
    deleted_secret = secrets.create_secret(Name="genai-dev/old", SecretString="x", Tags=_tag_list(PLATFORM))["ARN"]
    secrets.delete_secret(SecretId=deleted_secret, RecoveryWindowInDays=7)
    others["secrets"] = [
        secrets.create_secret(
            Name="genai-prod/gateway/master-key", SecretString="x", Tags=_tag_list({**PLATFORM, "environment": "prod"})
        )["ARN"],
        secrets.create_secret(Name="genai-dev/handmade", SecretString="x", Tags=_tag_list(PLATFORM))["ARN"],
    ]

    # Keys: a retained one is scheduled; one CloudFormation already scheduled (dev's) is left as it is.
    def key(tags: dict[str, str]) -> str:
        return str(kms.create_key(Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()])["KeyMetadata"]["KeyId"])

    ours["keys"] = [key(PLATFORM)]
    pending_key = key(PLATFORM)
    kms.schedule_key_deletion(KeyId=pending_key, PendingWindowInDays=7)
    others["keys"] = [key({"project": "other", "environment": "dev"}), key({}), snapshot_key["KeyId"]]

    # CloudFormation's history: the platform's deleted stacks and what each retained (DELETE_SKIPPED; physical ids as
    # CloudFormation reports them: a bucket's and log group's name, a key's id, a secret's and workspace's ARN).
    foundation = stacks.add(
        "genai-dev-foundation",
        "DELETE_COMPLETE",
        [
            ("ClusterLogGroup", f"/aws/eks/{CLUSTER}/cluster", "AWS::Logs::LogGroup", "DELETE_SKIPPED"),
            ("Cluster", CLUSTER, "AWS::EKS::Cluster", "DELETE_COMPLETE"),
            ("OldKey", pending_key, "AWS::KMS::Key", "DELETE_COMPLETE"),
            ("DataKey", snapshot_key["KeyId"], "AWS::KMS::Key", "DELETE_SKIPPED"),
        ],
    )
    # A nested stack of a platform stack (ListStacks names its root): what it retained is the platform's too.
    stacks.add(
        "genai-dev-foundation-KeysNestedStack-1X2Y3Z",
        "DELETE_COMPLETE",
        [("SecretsKey", ours["keys"][0], "AWS::KMS::Key", "DELETE_SKIPPED")],
        root=foundation,
    )
    stacks.add(
        "genai-dev-observability",
        "DELETE_COMPLETE",
        [("Workspace", workspace["arn"], "AWS::APS::Workspace", "DELETE_SKIPPED")],
    )
    stacks.add(
        "genai-dev-data",
        "DELETE_COMPLETE",
        [
            ("ModelBucket", models, "AWS::S3::Bucket", "DELETE_SKIPPED"),
            ("AccessLogs", access_logs, "AWS::S3::Bucket", "DELETE_SKIPPED"),
            ("ScratchBucket", scratch, "AWS::S3::Bucket", "DELETE_COMPLETE"),
        ],
    )
    stacks.add(
        "genai-dev-gateway",
        "DELETE_COMPLETE",
        [("MasterKey", ours["secrets"][0], "AWS::SecretsManager::Secret", "DELETE_SKIPPED")],
    )
    # The data stack deployed again (it holds its bucket), a stack that is not the platform's, another project's.
    stacks.add("genai-dev-data", "CREATE_COMPLETE", [("ModelBucket", held, "AWS::S3::Bucket", "CREATE_COMPLETE")])
    stacks.add(
        "genai-dev-experiments", "DELETE_COMPLETE", [("Logs", experiments, "AWS::Logs::LogGroup", "DELETE_SKIPPED")]
    )
    stacks.add(
        "other-dev-data",
        "DELETE_COMPLETE",
        [("Models", "other-project-models", "AWS::S3::Bucket", "DELETE_SKIPPED")],
    )
    return Account(ours, others, pending_key, deleted_secret)


def inventory(session: boto3.Session) -> dict[str, set[str]]:
    """Every resource of the kinds cleanup touches, with the state that deletion would change."""
    ec2 = session.client("ec2")
    elbv2 = session.client("elbv2")
    secrets = session.client("secretsmanager")
    kms = session.client("kms")
    return {
        "load balancers": {lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]},
        "target groups": {tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]},
        "security groups": {
            sg["GroupId"] for sg in ec2.describe_security_groups()["SecurityGroups"] if sg["GroupName"] != "default"
        },
        "network interfaces": {
            eni["NetworkInterfaceId"]
            for eni in ec2.describe_network_interfaces()["NetworkInterfaces"]
            if eni.get("Attachment", {}).get("DeviceIndex") != 0  # the instance's own primary interface
        },
        "volumes": {
            v["VolumeId"]
            for v in ec2.describe_volumes()["Volumes"]
            if not any(a.get("Device") == "/dev/sda1" for a in v.get("Attachments", []))  # the instance's root
        },
        "workspaces": {w["workspaceId"] for w in session.client("amp").list_workspaces()["workspaces"]},
        "snapshots": {
            snapshot["DBClusterSnapshotIdentifier"]
            for snapshot in session.client("rds").describe_db_cluster_snapshots()["DBClusterSnapshots"]
        },
        "log groups": {g["logGroupName"] for g in session.client("logs").describe_log_groups()["logGroups"]},
        "buckets": {b["Name"] for b in session.client("s3").list_buckets()["Buckets"]},
        "secrets": {
            f"{s['ARN']} {'deleted' if s.get('DeletedDate') else 'live'}"
            for s in secrets.list_secrets(IncludePlannedDeletion=True)["SecretList"]
        },
        "keys": {
            f"{k['KeyId']} {kms.describe_key(KeyId=k['KeyId'])['KeyMetadata']['KeyState']}"
            for k in kms.list_keys()["Keys"]
        },
    }


def expected_after_cleanup(before: dict[str, set[str]], account: Account) -> dict[str, set[str]]:
    after = {kind: set(ids) for kind, ids in before.items()}
    for kind in (
        "load balancers",
        "target groups",
        "security groups",
        "network interfaces",
        "volumes",
        "workspaces",
        "log groups",
        "buckets",
    ):
        after[kind] -= set(account.ours[kind])
    for arn in account.ours["secrets"]:
        after["secrets"] = (after["secrets"] - {f"{arn} live"}) | {f"{arn} deleted"}
    for key in account.ours["keys"]:
        after["keys"] = (after["keys"] - {f"{key} Enabled"}) | {f"{key} PendingDeletion"}
    return after


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """stderr as one line: the error console wraps long messages at the terminal's width."""
    return " ".join(capsys.readouterr().err.split())


def _cli(*arguments: str) -> int:
    return run(lambda: app(["cleanup", *arguments], standalone_mode=True))


def test_without_yes_nothing_is_deleted_and_every_leftover_is_listed(
    aws: boto3.Session, stacks: RecordedStacks, cdk_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = build_scenario(aws, stacks)
    before = inventory(aws)
    assert all(before.values()), "the scenario creates something of every kind"

    assert _cli("--env", "dev", "--region", REGION, "--cdk-json", str(cdk_json)) == 0

    assert inventory(aws) == before
    out = capsys.readouterr().out
    assert "Dry run: nothing was deleted" in out
    listed = [
        "k8s-gateway-litellm-0a1b2c3d",
        "k8s-gateway-litellm-4000",
        *account.ours["network interfaces"],
        *account.ours["security groups"],
        "observability/data",
        *account.ours["workspaces"],
        f"/aws/eks/{CLUSTER}/cluster",
        "genai-dev-data-models-3c4d",
        "genai-dev-data-accesslogs-1a2b",
        "genai-dev/gateway/master-key",
        *account.ours["keys"],
    ]
    for name in listed:
        assert name in out
    # 12 leftovers: 1 LB, 1 TG, 1 ENI, 2 SGs, 1 volume, 1 workspace, 1 log group, 2 buckets, 1 secret, 1 key.
    assert "deletes these 12 resources" in out
    others = ("k8s-other-app", "other-project-models", "/other/app", "genai-dev/old", "genai-prod", account.pending_key)
    for kept_name in others:
        assert kept_name not in out
    # The bucket the live stack holds is shown as kept, with the stack; Container Insights' group is only named.
    assert "stack genai-dev-data still holds it" in out
    assert "genai-dev-gateway-db-final" in out
    assert "final Aurora snapshot, a backup kept on purpose" in out
    assert f"/aws/containerinsights/{CLUSTER}/application (written by the CloudWatch agent" in out
    assert f"/aws/eks/{CLUSTER}/cluster (written by EKS" not in out  # tagged: listed, not a note


def test_tagged_resources_count_only_when_a_platform_stack_retained_them(
    aws: boto3.Session, stacks: RecordedStacks
) -> None:
    account = build_scenario(aws, stacks)
    scope = cleanup.PlatformScope(project="genai", environment="dev", cluster=CLUSTER, region=REGION)

    findings = find_leftovers(aws, scope)

    kept = {item.resource: item.reason for item in findings.kept}
    not_retained = (
        "tagged project=genai, environment=dev, but no stack genai-dev-* (live, or deleted in the last 90 days) "
        "retained it"
    )
    # Made by hand; a deleted platform stack's DELETE_COMPLETE name reused; retained by a stack not the platform's.
    for look_alike in (
        "genai-dev-handmade",
        "genai-dev/handmade",
        "genai-dev-data-scratch-9z9z",
        "/genai-dev/experiments",
    ):
        assert kept[look_alike].startswith(not_retained), look_alike
    assert kept["genai-dev-data-models-yucpjkjpledk"] == "stack genai-dev-data still holds it"
    why = {leftover.id: leftover.marked_by for leftover in findings.leftovers}
    assert why["genai-dev-data-models-3c4d"] == "project=genai, environment=dev; retained by genai-dev-data"
    assert why[account.ours["workspaces"][0]] == "project=genai, environment=dev; retained by genai-dev-observability"
    assert why[account.ours["keys"][0]] == (
        "project=genai, environment=dev; retained by genai-dev-foundation-KeysNestedStack-1X2Y3Z"
    )
    assert why[account.ours["security groups"][0]] == f"eks:eks-cluster-name={CLUSTER}"  # Auto Mode's: no stack
    # The retained data key encrypts the kept final snapshot: scheduling its deletion would make the backup
    # unrestorable, so it stays with the snapshot.
    data_key = account.others["keys"][2]
    assert data_key not in why
    assert kept[f"genai-dev: model bucket, gateway database and secrets ({data_key})"] == (
        "encrypts the kept Aurora snapshot genai-dev-gateway-db-final, which cannot be restored once the key is "
        f"deleted: after deleting the snapshot, `aws kms schedule-key-deletion --key-id {data_key}`"
    )
    # A deleted stack is read by its id (by name AWS answers "does not exist"); other stacks are not read at all.
    read = [parameters["StackName"] for name, parameters in stacks.calls if name == "ListStackResources"]
    assert all(stack_id.startswith(f"arn:aws:cloudformation:{REGION}:") for stack_id in read)
    assert sorted(stack_id.split("/")[1] for stack_id in read) == [
        "genai-dev-data",
        "genai-dev-data",
        "genai-dev-foundation",
        "genai-dev-foundation-KeysNestedStack-1X2Y3Z",
        "genai-dev-gateway",
        "genai-dev-observability",
    ]


MUTATING = ("Delete", "Schedule", "Revoke")


def test_with_yes_exactly_the_leftovers_go_in_a_safe_order(aws: boto3.Session, stacks: RecordedStacks) -> None:
    account = build_scenario(aws, stacks)
    before = inventory(aws)
    calls: list[tuple[str, str]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name.startswith(MUTATING):
            target = next(
                (
                    str(params[k])
                    for k in (
                        "LoadBalancerArn",
                        "TargetGroupArn",
                        "GroupId",
                        "NetworkInterfaceId",
                        "VolumeId",
                        "workspaceId",
                        "logGroupName",
                        "Bucket",
                        "SecretId",
                        "KeyId",
                    )
                    if k in params
                ),
                "",
            )
            calls.append((model.name, target))

    aws.events.register("before-parameter-build", record)
    scope = cleanup.PlatformScope(project="genai", environment="dev", cluster=CLUSTER, region=REGION)
    settings = cleanup.DeletionSettings(key_pending_days=30, secret_recovery_days=7, dependency_timeout_seconds=0)
    cleanup.run_cleanup(aws, scope, settings, yes=True, console=Console(highlight=False, emoji=False, width=250))

    assert inventory(aws) == expected_after_cleanup(before, account)
    models, access_logs = account.ours["buckets"]
    operations = [name for name, _ in calls if name != "DeleteObjects"]
    alb_group, cluster_group = account.ours["security groups"]
    assert operations == [
        "DeleteLoadBalancer",
        "DeleteTargetGroup",
        "DeleteNetworkInterface",
        "RevokeSecurityGroupIngress",  # the cluster group's rule letting the load balancer's group in
        "DeleteSecurityGroup",
        "DeleteSecurityGroup",
        "DeleteVolume",
        "DeleteWorkspace",
        "DeleteLogGroup",
        "DeleteBucket",
        "DeleteBucket",
        "DeleteSecret",
        "ScheduleKeyDeletion",
    ]
    revoke = calls.index(("RevokeSecurityGroupIngress", cluster_group))
    assert calls[revoke + 1] == ("DeleteSecurityGroup", alb_group)
    deleted_buckets = [target for name, target in calls if name == "DeleteBucket"]
    assert deleted_buckets == [models, access_logs]  # the access-log target last
    # Both versions and the delete marker of the model bucket were removed before its DeleteBucket.
    first_delete_bucket = calls.index(("DeleteBucket", models))
    assert ("DeleteObjects", models) in calls[:first_delete_bucket]
    key = aws.client("kms").describe_key(KeyId=account.ours["keys"][0])["KeyMetadata"]
    created, deletion = key["CreationDate"], key["DeletionDate"]
    assert 29 <= (deletion - created).days <= 30
    secret = aws.client("secretsmanager").describe_secret(SecretId=account.ours["secrets"][0])
    assert secret["DeletedDate"]


def test_a_failed_deletion_is_reported_and_the_rest_continue(
    aws: boto3.Session, stacks: RecordedStacks, cdk_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = build_scenario(aws, stacks)
    elbv2 = aws.client("elbv2")
    (our_target_group,) = account.ours["target groups"]
    # Another project's load balancer still forwards to our target group: DeleteTargetGroup answers ResourceInUse.
    (other_lb, _) = account.others["load balancers"]
    elbv2.create_listener(
        LoadBalancerArn=other_lb,
        Protocol="HTTP",
        Port=8080,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": our_target_group}],
    )
    before = inventory(aws)
    scope = cleanup.PlatformScope(project="genai", environment="dev", cluster=CLUSTER, region=REGION)
    settings = cleanup.DeletionSettings(dependency_timeout_seconds=0)

    with pytest.raises(OpsError, match=r"1 of 12 deletions failed: target group .*ResourceInUse") as failed:
        cleanup.run_cleanup(aws, scope, settings, yes=True, console=Console(highlight=False, emoji=False, width=250))

    assert failed.value.exit_code == 1
    expected = expected_after_cleanup(before, account)
    expected["target groups"].add(our_target_group)
    assert inventory(aws) == expected
    out = capsys.readouterr().out
    assert "[2/12] target group k8s-gateway-litellm-4000: FAILED ResourceInUse" in out
    assert "[12/12] KMS key" in out


def _no_waiting(seconds: float) -> None:
    raise AssertionError(f"cleanup waited {seconds} s for a reference that waiting cannot remove")


def test_a_rule_in_a_group_not_the_platforms_is_never_changed_and_named(
    aws: boto3.Session, stacks: RecordedStacks
) -> None:
    account = build_scenario(aws, stacks)
    ec2 = aws.client("ec2")
    alb_group, _ = account.ours["security groups"]
    foreign = account.others["security groups"][1]
    ec2.authorize_security_group_egress(
        GroupId=foreign,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "UserIdGroupPairs": [{"GroupId": alb_group}]}
        ],
    )
    foreign_rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [foreign]}])
    before = inventory(aws)
    scope = cleanup.PlatformScope(project="genai", environment="dev", cluster=CLUSTER, region=REGION)
    # A long timeout: a reference by a group that is not a leftover fails at once, it is not waited out.
    settings = cleanup.DeletionSettings(dependency_timeout_seconds=600, sleep=_no_waiting)

    with pytest.raises(
        OpsError,
        match=rf"1 of 12 deletions failed: security group {alb_group} "
        rf"\(DependencyViolation: rules of {foreign} \(not leftovers",
    ):
        cleanup.run_cleanup(aws, scope, settings, yes=True, console=Console(highlight=False, emoji=False, width=250))

    expected = expected_after_cleanup(before, account)
    expected["security groups"].add(alb_group)
    assert inventory(aws) == expected
    after = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [foreign]}])
    assert after["SecurityGroupRules"] == foreign_rules["SecurityGroupRules"]


def test_a_revoked_rule_ec2_still_reports_is_waited_out_not_taken_for_a_foreign_one(
    aws: boto3.Session, stacks: RecordedStacks
) -> None:
    """EC2 is eventually consistent (EC2 Developer Guide, eventual-consistency): right after a rule is revoked,
    DescribeSecurityGroups and DeleteSecurityGroup can still see it. Here the revocation takes effect only after
    the first wait: the deletion is retried, and the leftover cluster group is never named as a foreign one."""
    account = build_scenario(aws, stacks)
    alb_group, cluster_group = account.ours["security groups"]
    pending: list[dict[str, Any]] = []

    def keep_parameters(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["revoke_parameters"] = dict(params)

    def revoke_later(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        pending.append(context["revoke_parameters"])
        return AWSResponse(None, 200, {}, None), {"Return": True}

    aws.events.register("before-parameter-build.ec2.RevokeSecurityGroupIngress", keep_parameters)
    aws.events.register("before-call.ec2.RevokeSecurityGroupIngress", revoke_later)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        # The lag ends: the revocation reaches EC2 (a session without the handlers above).
        for parameters in pending:
            boto3.client("ec2", region_name=REGION).revoke_security_group_ingress(**parameters)
        pending.clear()

    before = inventory(aws)
    scope = cleanup.PlatformScope(project="genai", environment="dev", cluster=CLUSTER, region=REGION)
    settings = cleanup.DeletionSettings(dependency_timeout_seconds=600, poll_seconds=15, sleep=sleep)
    out = io.StringIO()
    cleanup.run_cleanup(aws, scope, settings, yes=True, console=Console(file=out, highlight=False, width=250))

    assert inventory(aws) == expected_after_cleanup(before, account)
    assert sleeps == [15]  # DeleteSecurityGroup refused once while the revoked rule still showed, then went
    assert f"security group k8s-gateway-litellm ({alb_group}): deleted (after revoking 1 rules" in out.getvalue()
    assert f"rules of {cluster_group}" not in out.getvalue()


def test_a_held_resource_is_retried_until_the_timeout() -> None:
    now = [0.0]
    sleeps: list[float] = []
    attempts: list[int] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    def delete_security_group(**_: Any) -> None:
        attempts.append(1)
        raise ClientError({"Error": {"Code": "DependencyViolation", "Message": "has a dependent object"}}, "X")

    settings = cleanup.DeletionSettings(
        dependency_timeout_seconds=30, poll_seconds=10, sleep=sleep, clock=lambda: now[0]
    )
    with pytest.raises(ClientError, match="DependencyViolation"):
        retry_while_held(settings, delete_security_group, GroupId="sg-1")
    # Tries at 0, 10, 20 and 30 s; gives up at the deadline.
    assert (len(attempts), sleeps) == (4, [10, 10, 10])

    def not_found(**_: Any) -> None:
        attempts.append(1)
        raise ClientError({"Error": {"Code": "InvalidGroup.NotFound", "Message": "gone"}}, "X")

    attempts.clear()
    with pytest.raises(ClientError):
        retry_while_held(settings, not_found, GroupId="sg-1")
    assert len(attempts) == 1  # any other error is not retried


def test_with_yes_through_the_command_line(
    aws: boto3.Session, stacks: RecordedStacks, cdk_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = build_scenario(aws, stacks)
    before = inventory(aws)

    code = _cli("--env", "dev", "--region", REGION, "--cdk-json", str(cdk_json), "--yes", "--key-pending-days", "7")

    assert code == 0, _err(capsys)
    assert inventory(aws) == expected_after_cleanup(before, account)
    out = capsys.readouterr().out
    assert "[1/12] load balancer k8s-gateway-litellm-0a1b2c3d: deleted" in out
    assert "after 7 days" in out
    assert "Done: 12 resources deleted or scheduled for deletion." in out


def test_nothing_runs_while_the_cluster_exists(
    aws: boto3.Session, stacks: RecordedStacks, cdk_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_scenario(aws, stacks)
    aws.client("eks").create_cluster(
        name=CLUSTER,
        roleArn="arn:aws:iam::123456789012:role/genai-dev-cluster",
        resourcesVpcConfig={"subnetIds": []},
    )
    before = inventory(aws)

    assert _cli("--env", "dev", "--region", REGION, "--cdk-json", str(cdk_json), "--yes") == 1

    assert inventory(aws) == before
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "cluster genai-dev still exists" in err
    assert "cdk destroy --all -c env=dev" in err
    assert "Traceback" not in err + captured.out


def test_a_refused_read_is_one_sentence(aws: boto3.Session) -> None:
    def deny(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if model.name != "DescribeLoadBalancers":
            return None
        error = {
            "Code": "AccessDenied",
            "Message": "not authorized to perform elasticloadbalancing:DescribeLoadBalancers",
        }
        return AWSResponse(None, 403, {}, None), {"Error": error}  # how botocore's Stubber answers, too

    aws.events.register("before-call", deny)
    scope = cleanup.PlatformScope(project="genai", environment="dev", cluster=CLUSTER, region=REGION)
    with pytest.raises(
        OpsError, match=r"listing the account's resources failed in DescribeLoadBalancers: AccessDenied"
    ):
        cleanup.run_cleanup(aws, scope, cleanup.DeletionSettings(), yes=False, console=Console())


def test_a_clean_account_says_so(aws: boto3.Session, cdk_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("--env", "prod", "--region", REGION, "--cdk-json", str(cdk_json), "--yes") == 0
    assert "Nothing left behind" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--env", "staging", "--region", REGION], "--env 'staging' is not an environment in"),
        (["--env", "dev", "--region", "mars-1"], "--region 'mars-1' is not an AWS region name"),
        (["--env", "dev", "--region", REGION, "--key-pending-days", "6"], "--key-pending-days 6 is not allowed"),
        (
            ["--env", "dev", "--region", REGION, "--secret-recovery-days", "31"],
            "--secret-recovery-days 31 is not allowed",
        ),
        (["--env", "dev"], "--region is missing"),
    ],
)
def test_bad_input_exits_2_with_one_message(
    arguments: list[str],
    message: str,
    aws: boto3.Session,
    stacks: RecordedStacks,
    cdk_json: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # No region from the environment or an AWS config file either.
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    build_scenario(aws, stacks)
    before = inventory(aws)

    assert _cli(*arguments, "--cdk-json", str(cdk_json), "--yes") == 2

    captured = capsys.readouterr()
    assert " ".join(captured.err.split()).startswith(f"error: {message}")
    assert "Traceback" not in captured.err + captured.out
    assert inventory(aws) == before


def test_a_missing_cdk_json_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("--env", "dev", "--region", REGION, "--cdk-json", str(tmp_path / "cdk.json")) == 2
    assert "--cdk-json" in _err(capsys)
