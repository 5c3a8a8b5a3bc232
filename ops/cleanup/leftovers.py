"""What `cdk destroy` leaves of one platform environment: found by tag, in deletion order.

What counts as the platform's (nothing else is ever listed):

- What CloudFormation created carries the tags app.py `build_platform` puts on every resource: `project=<name>` and
  `environment=<env>`. What `cdk destroy` leaves of it is what a removal policy retains (README "Teardown": the S3
  buckets everywhere; prod's KMS keys, log groups and generated Secrets Manager secrets). Found with the Resource
  Groups Tagging API, then checked with each service (a key already pending deletion is not a leftover). The tags
  alone do not make it ours (anyone can tag a bucket `project=genai`): it must also be a resource one of the
  platform's stacks retained, which that stack's resource list says with the status DELETE_SKIPPED (CloudFormation
  User Guide, DeletionPolicy attribute). CloudFormation keeps a deleted stack and its resource list for 90 days
  (ListStacks), readable by the stack's id; a tagged resource no such list names is shown as kept, never deleted.
- What EKS Auto Mode created for Kubernetes objects (the load balancer, target groups and security groups of an
  Ingress, the EBS volume of a PVC, pod network interfaces) carries `eks:eks-cluster-name=<cluster>`: Auto Mode's
  managed policies let the cluster role create these only with that tag (AWS Managed Policy Reference:
  AmazonEKSLoadBalancingPolicy, AmazonEKSBlockStoragePolicy, AmazonEKSNetworkingPolicy, each a condition on
  `aws:RequestTag/eks:eks-cluster-name`; EKS User Guide `auto-troubleshoot`: find Auto Mode volumes and load
  balancers "by searching for the tag key eks:eks-cluster-name"). They carry no project tags (Auto Mode refuses
  user-defined tags without an extra policy, FACTS.md), and the open-source controllers' tags
  (`elbv2.k8s.aws/cluster`, `ebs.csi.aws.com/cluster`, `KubernetesCluster`) are not Auto Mode's, so neither is
  looked for.
- The cluster security group EKS creates carries `kubernetes.io/cluster/<cluster>=owned` (EKS User Guide
  `sec-group-reqs`); EKS deletes it with the cluster unless a leftover network interface still holds it.

Nothing is listed while the cluster exists (its controllers still own the load balancers and volumes); anything a
platform stack that is not deleted still holds is kept; volumes and network interfaces only when `available`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import boto3
from botocore.exceptions import ClientError

from ops.errors import OpsError, aws_error_code, aws_error_message
from ops.target import PLATFORM_STACKS
from platform_config import PlatformConfig

CLUSTER_TAG = "eks:eks-cluster-name"

# Deletion order. A load balancer's listeners hold its target groups; a load balancer and a network interface hold
# their security groups (an available interface keeps its groups, so interfaces go before groups); data and logs
# go before the keys that encrypt them.
DELETION_ORDER_NOTE = (
    "load balancers, target groups, network interfaces, security groups, volumes, Prometheus workspaces, log "
    "groups, buckets (emptied first, a bucket other buckets log to last), secrets, keys"
)


class Kind(Enum):
    """What a leftover is; the members are listed in deletion order."""

    LOAD_BALANCER = "load balancer"
    TARGET_GROUP = "target group"
    NETWORK_INTERFACE = "network interface"
    SECURITY_GROUP = "security group"
    VOLUME = "EBS volume"
    WORKSPACE = "Prometheus workspace"
    LOG_GROUP = "log group"
    BUCKET = "S3 bucket"
    SECRET = "secret"
    KEY = "KMS key"


_ORDER = {kind: index for index, kind in enumerate(Kind)}


@dataclass(frozen=True)
class Leftover:
    """One resource to delete: `id` is what its delete call takes, `marked_by` the tag that makes it ours."""

    kind: Kind
    id: str
    name: str
    marked_by: str
    detail: str = ""
    arn: str = ""

    @property
    def label(self) -> str:
        """The name, and the id when it says more than the name (an ARN does not)."""
        if self.name == self.id or self.id.startswith("arn:"):
            return self.name
        return f"{self.name} ({self.id})"


@dataclass(frozen=True)
class Kept:
    """A resource tagged as the platform's that cleanup leaves alone, and why."""

    kind: str
    resource: str
    reason: str


@dataclass
class Findings:
    leftovers: list[Leftover] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlatformScope:
    """The tags and names that identify one environment of the platform in one region."""

    project: str
    environment: str
    cluster: str
    region: str

    @classmethod
    def of(cls, config: PlatformConfig, region: str) -> PlatformScope:
        # The cluster and every stack are named after `config.prefix` (stacks/foundation.py, app.py).
        return cls(project=config.name, environment=config.env_name, cluster=config.prefix, region=region)

    @property
    def project_tags(self) -> str:
        return f"project={self.project}, environment={self.environment}"

    @property
    def cluster_tag(self) -> str:
        return f"{CLUSTER_TAG}={self.cluster}"


def find_leftovers(session: boto3.Session, scope: PlatformScope) -> Findings:
    """Everything tagged as this platform's that is left, in deletion order, minus what live stacks hold."""
    ensure_cluster_is_gone(session, scope)
    try:
        return _find(session, scope)
    except ClientError as error:
        # AccessDenied and the like: one sentence naming the call, not a traceback.
        raise OpsError(
            f"listing the account's resources failed in {error.operation_name}: {aws_error_message(error)}; the "
            "identity running cleanup needs the read permissions of each service it lists"
        ) from None


def _find(session: boto3.Session, scope: PlatformScope) -> Findings:
    candidates = [
        *_load_balancers(session, scope),
        *_target_groups(session, scope),
        *_network_interfaces(session, scope),
        *_security_groups(session, scope),
        *_volumes(session, scope),
    ]
    findings = Findings()
    tagged = _project_tagged(session, scope, findings)
    history = stack_history(session, scope)
    for candidate in candidates:
        if holder := history.holder(candidate):
            findings.kept.append(Kept(candidate.kind.value, candidate.label, f"stack {holder} still holds it"))
        else:
            findings.leftovers.append(candidate)
    for candidate in tagged:
        if holder := history.holder(candidate):
            findings.kept.append(Kept(candidate.kind.value, candidate.label, f"stack {holder} still holds it"))
        elif retainer := history.retainer(candidate):
            findings.leftovers.append(replace(candidate, marked_by=f"{candidate.marked_by}; retained by {retainer}"))
        else:
            findings.kept.append(Kept(candidate.kind.value, candidate.label, _not_retained(scope)))
    # sorted() is stable: within a kind the finders' order stands (buckets that receive access logs last).
    findings.leftovers.sort(key=lambda leftover: _ORDER[leftover.kind])
    tagged_groups = {candidate.name for candidate in tagged if candidate.kind is Kind.LOG_GROUP}
    findings.notes.extend(_untagged_cluster_log_groups(session, scope, tagged_groups))
    return findings


def _not_retained(scope: PlatformScope) -> str:
    return (
        f"tagged {scope.project_tags}, but no stack {scope.cluster}-* (live, or deleted in the last 90 days) retained "
        "it: not made by this platform's stacks, or its stack was deleted longer ago; check it and delete it yourself"
    )


def ensure_cluster_is_gone(session: boto3.Session, scope: PlatformScope) -> None:
    """Refuse while the cluster exists: its controllers own the load balancers, its PVCs the volumes."""
    try:
        cluster = session.client("eks").describe_cluster(name=scope.cluster)["cluster"]
    except ClientError as error:
        if aws_error_code(error) == "ResourceNotFoundException":
            return
        raise OpsError(
            f"cannot tell whether cluster {scope.cluster} still exists: {aws_error_message(error)}"
        ) from None
    raise OpsError(
        f"cluster {scope.cluster} still exists in {scope.region} (status {cluster.get('status', 'unknown')}): its "
        "controllers still own the load balancers and volumes cleanup would delete. Run "
        f"`npx cdk destroy --all -c env={scope.environment}` first and wait for it to finish"
    )


def _tags(pairs: Iterable[dict[str, str]] | None) -> dict[str, str]:
    return {pair["Key"]: pair["Value"] for pair in pairs or ()}


def _elbv2_tagged(elbv2: Any, arns: list[str], scope: PlatformScope) -> set[str]:
    """The ARNs among `arns` that carry the cluster tag (DescribeTags takes at most 20 ARNs per call)."""
    tagged = set()
    for start in range(0, len(arns), 20):
        for description in elbv2.describe_tags(ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            if _tags(description.get("Tags")).get(CLUSTER_TAG) == scope.cluster:
                tagged.add(description["ResourceArn"])
    return tagged


def _load_balancers(session: boto3.Session, scope: PlatformScope) -> list[Leftover]:
    elbv2 = session.client("elbv2")
    balancers = [
        lb for page in elbv2.get_paginator("describe_load_balancers").paginate() for lb in page["LoadBalancers"]
    ]
    tagged = _elbv2_tagged(elbv2, [lb["LoadBalancerArn"] for lb in balancers], scope)
    return [
        Leftover(
            Kind.LOAD_BALANCER,
            lb["LoadBalancerArn"],
            lb["LoadBalancerName"],
            scope.cluster_tag,
            f"{lb.get('Type', '')} {lb.get('Scheme', '')}".strip(),
            arn=lb["LoadBalancerArn"],
        )
        for lb in balancers
        if lb["LoadBalancerArn"] in tagged
    ]


def _target_groups(session: boto3.Session, scope: PlatformScope) -> list[Leftover]:
    elbv2 = session.client("elbv2")
    groups = [tg for page in elbv2.get_paginator("describe_target_groups").paginate() for tg in page["TargetGroups"]]
    tagged = _elbv2_tagged(elbv2, [tg["TargetGroupArn"] for tg in groups], scope)
    return [
        Leftover(
            Kind.TARGET_GROUP, tg["TargetGroupArn"], tg["TargetGroupName"], scope.cluster_tag, arn=tg["TargetGroupArn"]
        )
        for tg in groups
        if tg["TargetGroupArn"] in tagged
    ]


def _ec2_pages(session: boto3.Session, operation: str, key: str, filters: list[dict[str, Any]]) -> Iterator[Any]:
    paginator = session.client("ec2").get_paginator(operation)
    for page in paginator.paginate(Filters=filters):
        yield from page[key]


def _network_interfaces(session: boto3.Session, scope: PlatformScope) -> list[Leftover]:
    filters = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [scope.cluster]}, {"Name": "status", "Values": ["available"]}]
    return [
        Leftover(
            Kind.NETWORK_INTERFACE,
            eni["NetworkInterfaceId"],
            eni.get("Description") or eni["NetworkInterfaceId"],
            scope.cluster_tag,
            f"available, {eni.get('PrivateIpAddress', '')}".strip(", "),
        )
        for eni in _ec2_pages(session, "describe_network_interfaces", "NetworkInterfaces", filters)
    ]


def _security_groups(session: boto3.Session, scope: PlatformScope) -> list[Leftover]:
    owned = f"kubernetes.io/cluster/{scope.cluster}"
    found: dict[str, Leftover] = {}
    for key, value in ((CLUSTER_TAG, scope.cluster), (owned, "owned")):
        for group in _ec2_pages(
            session, "describe_security_groups", "SecurityGroups", [{"Name": f"tag:{key}", "Values": [value]}]
        ):
            found.setdefault(
                group["GroupId"],
                Leftover(
                    Kind.SECURITY_GROUP,
                    group["GroupId"],
                    group["GroupName"],
                    f"{key}={value}",
                    f"in {group.get('VpcId')}",
                ),
            )
    return list(found.values())


def _volumes(session: boto3.Session, scope: PlatformScope) -> list[Leftover]:
    filters = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [scope.cluster]}, {"Name": "status", "Values": ["available"]}]
    leftovers = []
    for volume in _ec2_pages(session, "describe_volumes", "Volumes", filters):
        tags = _tags(volume.get("Tags"))
        # Where the volume carries the EBS CSI driver's claim tags (kubernetes.io/created-for/pvc/*), they name it.
        claim = "/".join(
            part
            for part in (
                tags.get("kubernetes.io/created-for/pvc/namespace"),
                tags.get("kubernetes.io/created-for/pvc/name"),
            )
            if part
        )
        leftovers.append(
            Leftover(
                Kind.VOLUME,
                volume["VolumeId"],
                claim or tags.get("Name") or volume["VolumeId"],
                scope.cluster_tag,
                f"available, {volume.get('Size', '?')} GiB {volume.get('VolumeType', '')}".strip(),
            )
        )
    return leftovers


def _project_tagged(session: boto3.Session, scope: PlatformScope, findings: Findings) -> list[Leftover]:
    """Log groups, buckets, secrets, keys (and final snapshots, kept) tagged project=<name>, environment=<env>."""
    tagging = session.client("resourcegroupstaggingapi")
    pages = tagging.get_paginator("get_resources").paginate(
        TagFilters=[
            {"Key": "project", "Values": [scope.project]},
            {"Key": "environment", "Values": [scope.environment]},
        ],
        # Service-wide filters ("logs", not "logs:log-group") take every resource type of the service.
        ResourceTypeFilters=["logs", "s3", "secretsmanager", "kms", "rds"],
    )
    by_service: dict[str, list[str]] = {}
    for page in pages:
        for mapping in page["ResourceTagMappingList"]:
            arn = mapping["ResourceARN"]
            by_service.setdefault(arn.split(":")[2], []).append(arn)
    snapshot_keys = _final_snapshots(session, by_service.get("rds", []), findings)
    return [
        *_workspaces(session, scope),
        *_log_groups(session, scope, by_service.get("logs", [])),
        *_buckets(session, scope, by_service.get("s3", [])),
        *_secrets(session, scope, by_service.get("secretsmanager", []), findings),
        *_keys(session, scope, by_service.get("kms", []), snapshot_keys, findings),
    ]


def _final_snapshots(session: boto3.Session, arns: list[str], findings: Findings) -> dict[str, str]:
    """The Aurora snapshots a SNAPSHOT removal policy took (prod): a backup kept on purpose, named, never deleted.

    Returns the id of each KMS key that encrypts one, with the snapshot's name: prod's Aurora clusters are encrypted
    with a key the stacks retain (GatewayStores: the data key; LangfuseStores: its own key); an encrypted cluster's
    snapshots are encrypted with its key (Aurora User Guide, Overview.Encryption), and data encrypted under a
    deleted key is unrecoverable (KMS Developer Guide, deleting-keys), so that key is kept with the snapshot.
    """
    rds, kms = session.client("rds"), session.client("kms")
    keys: dict[str, str] = {}
    for arn in arns:
        if ":cluster-snapshot:" not in arn:
            continue  # a cluster itself is gone with its stack, or held by a live one
        name = arn.split(":cluster-snapshot:", 1)[1]
        findings.kept.append(
            Kept(
                "Aurora snapshot",
                name,
                "the stack's final Aurora snapshot, a backup kept on purpose: `aws rds delete-db-cluster-snapshot "
                f"--db-cluster-snapshot-identifier {name}` once its data is no longer needed",
            )
        )
        # A filter, not DBClusterSnapshotIdentifier: it also finds an automated snapshot (`rds:...`) without
        # SnapshotType, and a snapshot deleted since the Tagging API listed it is simply absent (RDS API Reference,
        # DescribeDBClusterSnapshots).
        snapshots = rds.describe_db_cluster_snapshots(Filters=[{"Name": "db-cluster-snapshot-id", "Values": [name]}])
        for snapshot in snapshots["DBClusterSnapshots"]:
            if not snapshot.get("KmsKeyId"):
                continue
            # RDS may name the key by ARN, id or alias; KMS resolves each to the key's id.
            try:
                key_id = kms.describe_key(KeyId=snapshot["KmsKeyId"])["KeyMetadata"]["KeyId"]
            except ClientError as error:
                if aws_error_code(error) == "NotFoundException":
                    continue
                raise
            keys.setdefault(key_id, name)
    return keys


def _workspaces(session: boto3.Session, scope: PlatformScope) -> list[Leftover]:
    """Amazon Managed Service for Prometheus workspaces (prod retains its workspace, README "Teardown").

    Listed through AMP itself: ListWorkspaces returns each workspace's tags.
    """
    pages = session.client("amp").get_paginator("list_workspaces").paginate()
    return [
        Leftover(
            Kind.WORKSPACE,
            workspace["workspaceId"],
            workspace.get("alias") or workspace["workspaceId"],
            scope.project_tags,
            "its stored metrics go with it",
            workspace["arn"],
        )
        for page in pages
        for workspace in page["workspaces"]
        if workspace.get("tags", {}).get("project") == scope.project
        and workspace.get("tags", {}).get("environment") == scope.environment
        and workspace.get("status", {}).get("statusCode") != "DELETING"
    ]


def _log_groups(session: boto3.Session, scope: PlatformScope, arns: list[str]) -> list[Leftover]:
    logs = session.client("logs")
    leftovers = []
    for arn in arns:
        name = arn.split(":log-group:", 1)[1].removesuffix(":*")
        # The Tagging API can still list a group deleted moments ago: ask CloudWatch Logs whether it exists.
        groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        group = next((g for g in groups if g["logGroupName"] == name), None)
        if group is not None:
            stored = group.get("storedBytes", 0)
            leftovers.append(Leftover(Kind.LOG_GROUP, name, name, scope.project_tags, f"{stored} bytes stored", arn))
    return leftovers


def _buckets(session: boto3.Session, scope: PlatformScope, arns: list[str]) -> list[Leftover]:
    s3 = session.client("s3")
    names = []
    for arn in arns:
        name = arn.split(":::", 1)[1]
        try:
            s3.head_bucket(Bucket=name)
        except ClientError as error:
            if aws_error_code(error) in ("404", "NoSuchBucket"):
                continue
            raise
        names.append(name)
    # A bucket that receives another one's access logs goes last, so no late log delivery refills it.
    log_targets = set()
    for name in names:
        logging = s3.get_bucket_logging(Bucket=name).get("LoggingEnabled") or {}
        if logging.get("TargetBucket"):
            log_targets.add(logging["TargetBucket"])
    names.sort(key=lambda name: name in log_targets)
    return [
        Leftover(
            Kind.BUCKET,
            name,
            name,
            scope.project_tags,
            "receives access logs, so it goes last" if name in log_targets else "",
            f"arn:aws:s3:::{name}",
        )
        for name in names
    ]


def _secrets(session: boto3.Session, scope: PlatformScope, arns: list[str], findings: Findings) -> list[Leftover]:
    secrets = session.client("secretsmanager")
    leftovers = []
    for arn in arns:
        try:
            secret = secrets.describe_secret(SecretId=arn)
        except ClientError as error:
            if aws_error_code(error) == "ResourceNotFoundException":
                continue
            raise
        leftover = Leftover(Kind.SECRET, secret["ARN"], secret["Name"], scope.project_tags, arn=secret["ARN"])
        if secret.get("DeletedDate"):
            continue  # already scheduled for deletion
        if secret.get("OwningService"):
            # A managed secret (RDS's master user secret) is deleted by the service that owns it.
            findings.kept.append(Kept(Kind.SECRET.value, leftover.label, f"managed by {secret['OwningService']}"))
            continue
        leftovers.append(leftover)
    return leftovers


def _keys(
    session: boto3.Session, scope: PlatformScope, arns: list[str], snapshot_keys: dict[str, str], findings: Findings
) -> list[Leftover]:
    """`snapshot_keys`: key id -> the kept Aurora snapshot it encrypts; such a key is kept with its snapshot."""
    kms = session.client("kms")
    leftovers = []
    for arn in arns:
        key = kms.describe_key(KeyId=arn)["KeyMetadata"]
        # A key CloudFormation already scheduled (dev's keys) or an AWS managed key is not ours to delete.
        if key.get("KeyManager") == "AWS" or key.get("KeyState") not in ("Enabled", "Disabled"):
            continue
        leftover = Leftover(
            Kind.KEY,
            key["KeyId"],
            key.get("Description") or key["KeyId"],
            scope.project_tags,
            key["KeyState"],
            key["Arn"],
        )
        if snapshot := snapshot_keys.get(key["KeyId"]):
            findings.kept.append(
                Kept(
                    Kind.KEY.value,
                    leftover.label,
                    f"encrypts the kept Aurora snapshot {snapshot}, which cannot be restored once the key is "
                    f"deleted: after deleting the snapshot, `aws kms schedule-key-deletion --key-id {key['KeyId']}`",
                )
            )
            continue
        leftovers.append(leftover)
    return leftovers


@dataclass(frozen=True)
class StackHistory:
    """Physical ids the platform's stacks name: held by a stack that is not deleted, or retained by one.

    Keys are physical ids as CloudFormation reports them: a bucket's or log group's name, a key's id, a secret's or
    Prometheus workspace's ARN (each type's primary identifier in the CloudFormation resource schema).
    """

    held: dict[str, str] = field(default_factory=dict)
    retained: dict[str, str] = field(default_factory=dict)

    def holder(self, leftover: Leftover) -> str | None:
        return next((self.held[key] for key in _keys_of(leftover) if key in self.held), None)

    def retainer(self, leftover: Leftover) -> str | None:
        return next((self.retained[key] for key in _keys_of(leftover) if key in self.retained), None)


def _keys_of(leftover: Leftover) -> tuple[str, ...]:
    return tuple(key for key in (leftover.id, leftover.arn, leftover.name) if key)


# A resource a stack still has; DELETE_SKIPPED is one a Retain/Snapshot policy kept out of the stack's deletion.
_GONE_FROM_STACK = frozenset({"DELETE_COMPLETE", "DELETE_SKIPPED"})


def stack_history(session: boto3.Session, scope: PlatformScope) -> StackHistory:
    """What the platform's stacks (`<prefix>-<name>`, ops/target.py PLATFORM_STACKS, and their nested stacks) hold
    or retained, deleted ones included: ListStacks returns deleted stacks for 90 days, and ListStackResources reads
    a deleted stack's resources only by its unique stack id (CloudFormation API Reference, both actions)."""
    cloudformation = session.client("cloudformation")
    names = {f"{scope.cluster}-{stack}" for stack in PLATFORM_STACKS}
    summaries = [
        summary for page in cloudformation.get_paginator("list_stacks").paginate() for summary in page["StackSummaries"]
    ]
    roots = {summary["StackId"] for summary in summaries if summary["StackName"] in names}
    history = StackHistory()
    for stack in summaries:
        if stack["StackId"] not in roots and stack.get("RootId") not in roots:
            continue
        deleted = stack["StackStatus"] == "DELETE_COMPLETE"
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack["StackId"]):
            for resource in page["StackResourceSummaries"]:
                physical = resource.get("PhysicalResourceId")
                if not physical:
                    continue
                if resource["ResourceStatus"] == "DELETE_SKIPPED":
                    history.retained.setdefault(physical, stack["StackName"])
                elif not deleted and resource["ResourceStatus"] not in _GONE_FROM_STACK:
                    history.held[physical] = stack["StackName"]
    return history


def _untagged_cluster_log_groups(session: boto3.Session, scope: PlatformScope, tagged: set[str]) -> list[str]:
    """Log groups named after the cluster but without the project tags: named, never deleted.

    The CloudWatch agent creates Container Insights' groups itself, and EKS creates `/aws/eks/<cluster>/cluster`
    anew, untagged, if control-plane logs arrive after the stack deleted the tagged one.
    """
    writers = {f"/aws/containerinsights/{scope.cluster}/": "the CloudWatch agent", f"/aws/eks/{scope.cluster}/": "EKS"}
    notes: list[str] = []
    for prefix, writer in writers.items():
        pages = session.client("logs").get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix)
        notes.extend(
            f"log group {group['logGroupName']} (written by {writer}, not tagged as the platform's): left alone; "
            "delete it yourself once you no longer need it"
            for page in pages
            for group in page["logGroups"]
            if group["logGroupName"] not in tagged
        )
    return notes
