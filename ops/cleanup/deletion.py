"""Deleting one leftover: the call its kind needs.

KMS keys are scheduled for deletion after a waiting period and secrets deleted with a recovery window, never at
once; a resource another one still holds (a security group an ALB's network interfaces keep for some minutes after
the ALB is gone) is retried until a timeout. A security group another group's rule references cannot be deleted
(DependencyViolation, EC2 API Reference DeleteSecurityGroup), and leftover groups reference each other (the load
balancer's group is allowed into the cluster group): the rules of leftover groups that reference the group are
revoked first. A rule in a group that is not a leftover is never changed; the deletion then fails naming that group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from ops.cleanup.leftovers import Kind, Leftover
from ops.errors import aws_error_code

# KMS ScheduleKeyDeletion PendingWindowInDays and Secrets Manager DeleteSecret RecoveryWindowInDays both accept
# 7 to 30 days (KMS and Secrets Manager API references).
WAITING_DAYS = range(7, 31)


@dataclass(frozen=True)
class DeletionSettings:
    """How long keys and secrets wait, and how long to retry a resource another one still holds."""

    key_pending_days: int = 30
    secret_recovery_days: int = 7
    # An ALB's network interfaces are released some minutes after the ALB is deleted; until then its security
    # groups answer DependencyViolation.
    dependency_timeout_seconds: float = 600.0
    poll_seconds: float = 15.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


# Errors that mean "another resource still holds this one", worth waiting out while that one goes.
_HELD_ERRORS = frozenset({"DependencyViolation", "ResourceInUse", "InvalidNetworkInterface.InUse"})


class Deleter:
    """Deletes one leftover at a time with the call its kind needs; a refusal raises botocore's ClientError."""

    def __init__(
        self, session: boto3.Session, settings: DeletionSettings, *, security_groups: Collection[str] = ()
    ) -> None:
        """`security_groups`: every leftover security group, whose rules may be revoked before a group is deleted."""
        elbv2, ec2, logs = session.client("elbv2"), session.client("ec2"), session.client("logs")
        s3, secrets, kms = session.client("s3"), session.client("secretsmanager"), session.client("kms")
        amp = session.client("amp")

        def held(operation: Callable[..., Any], **arguments: Any) -> str:
            return retry_while_held(settings, operation, **arguments)

        self._by_kind: dict[Kind, Callable[[Leftover], str]] = {
            Kind.LOAD_BALANCER: lambda lo: _call(elbv2.delete_load_balancer, LoadBalancerArn=lo.id),
            Kind.TARGET_GROUP: lambda lo: held(elbv2.delete_target_group, TargetGroupArn=lo.id),
            Kind.NETWORK_INTERFACE: lambda lo: held(ec2.delete_network_interface, NetworkInterfaceId=lo.id),
            Kind.SECURITY_GROUP: lambda lo: _delete_security_group(ec2, settings, lo.id, frozenset(security_groups)),
            Kind.VOLUME: lambda lo: held(ec2.delete_volume, VolumeId=lo.id),
            Kind.WORKSPACE: lambda lo: _call(amp.delete_workspace, workspaceId=lo.id),
            Kind.LOG_GROUP: lambda lo: _call(logs.delete_log_group, logGroupName=lo.id),
            Kind.BUCKET: lambda lo: _empty_and_delete_bucket(s3, lo.id),
            Kind.SECRET: lambda lo: _delete_secret(secrets, lo.id, settings.secret_recovery_days),
            Kind.KEY: lambda lo: _schedule_key_deletion(kms, lo.id, settings.key_pending_days),
        }

    def delete(self, leftover: Leftover) -> str:
        """Delete `leftover`; returns what was done ("deleted", "scheduled for deletion on ...")."""
        return self._by_kind[leftover.kind](leftover)


def _call(operation: Callable[..., Any], **arguments: Any) -> str:
    operation(**arguments)
    return "deleted"


def retry_while_held(settings: DeletionSettings, operation: Callable[..., Any], **arguments: Any) -> str:
    """Call `operation`, retrying while another resource still holds this one, up to the dependency timeout."""
    deadline = settings.clock() + settings.dependency_timeout_seconds
    while True:
        try:
            operation(**arguments)
            return "deleted"
        except ClientError as error:
            if aws_error_code(error) not in _HELD_ERRORS or settings.clock() >= deadline:
                raise
            settings.sleep(settings.poll_seconds)


def _delete_security_group(ec2: Any, settings: DeletionSettings, group: str, leftover_groups: frozenset[str]) -> str:
    referencing = _groups_referencing(ec2, group)
    # A rule of a group that is not a leftover: waiting would not remove it (only network interfaces let go), and
    # it is never changed here, so fail at once, before anything is changed.
    if foreign := [other for other in referencing if other not in leftover_groups]:
        raise ClientError(
            {
                "Error": {
                    "Code": "DependencyViolation",
                    "Message": f"rules of {', '.join(foreign)} (not leftovers of the platform, never changed "
                    "here) reference it: remove those rules, then run cleanup again",
                }
            },
            "DeleteSecurityGroup",
        )
    # Rules of the other leftover groups naming this one go first (they go with their groups anyway). Only those
    # groups' rules are read: few filter values, whatever the number of leftover groups.
    pages = ec2.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": referencing}]
    )
    rules = [
        rule
        for page in (pages if referencing else ())
        for rule in page["SecurityGroupRules"]
        if rule.get("ReferencedGroupInfo", {}).get("GroupId") == group
    ]
    for rule in rules:
        revoke = ec2.revoke_security_group_egress if rule["IsEgress"] else ec2.revoke_security_group_ingress
        revoke(GroupId=rule["GroupId"], SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]])
    # EC2 is eventually consistent (EC2 Developer Guide, eventual-consistency): a rule just revoked can still hold
    # the group for a moment, which DependencyViolation's retry waits out.
    retry_while_held(settings, ec2.delete_security_group, GroupId=group)
    return f"deleted (after revoking {len(rules)} rules of leftover groups that referenced it)" if rules else "deleted"


def _groups_referencing(ec2: Any, group: str) -> list[str]:
    """The other groups with an inbound or outbound rule naming `group` (DescribeSecurityGroups filters)."""
    found: set[str] = set()
    for name in ("ip-permission.group-id", "egress.ip-permission.group-id"):
        for page in ec2.get_paginator("describe_security_groups").paginate(Filters=[{"Name": name, "Values": [group]}]):
            found.update(sg["GroupId"] for sg in page["SecurityGroups"] if sg["GroupId"] != group)
    return sorted(found)


def _empty_and_delete_bucket(s3: Any, bucket: str) -> str:
    """Delete every object version and delete marker (a versioned bucket is empty only then), then the bucket."""
    removed = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [
            {"Key": item["Key"], "VersionId": item["VersionId"]}
            for item in (*page.get("Versions", ()), *page.get("DeleteMarkers", ()))
        ]
        # DeleteObjects takes at most 1,000 keys; ListObjectVersions pages hold at most 1,000 of each list.
        for start in range(0, len(objects), 1000):
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": objects[start : start + 1000], "Quiet": True})
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise ClientError(
                    {"Error": {"Code": first.get("Code", "DeleteObjectsFailed"), "Message": first.get("Message", "")}},
                    "DeleteObjects",
                )
            removed += len(objects[start : start + 1000])
    s3.delete_bucket(Bucket=bucket)
    return f"deleted ({removed} object versions removed first)"


def _delete_secret(secrets: Any, secret_id: str, recovery_days: int) -> str:
    secrets.delete_secret(SecretId=secret_id, RecoveryWindowInDays=recovery_days)
    return f"deleted with a {recovery_days}-day recovery window (restore-secret undoes it)"


def _schedule_key_deletion(kms: Any, key_id: str, pending_days: int) -> str:
    answer = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=pending_days)
    when = answer.get("DeletionDate")
    on = f" on {when:%Y-%m-%d}" if when else ""
    return f"scheduled for deletion{on}, after {pending_days} days (cancel-key-deletion undoes it)"
