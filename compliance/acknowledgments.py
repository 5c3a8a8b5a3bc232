"""The one way the platform acknowledges a cdk-nag finding.

Each acknowledgment names one finding id (with its `[...]` finding suffix where the rule has one),
sits on the smallest construct that raises it, and carries a reason a reviewer can check. It is also
recorded as construct metadata so `compliance.report` can list every one with its construct path.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

METADATA_TYPE = "platform:acknowledgment"


def acknowledge(scope: IConstruct, finding_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on `scope`, with the reason recorded for the report."""
    if len(reason) < 20 or reason.strip().lower() in {"todo", "demo", "n/a"}:
        raise ValueError(f"acknowledgment of {finding_id} needs a reason a reviewer can check")
    Validations.of(scope).acknowledge(Acknowledgment(id=finding_id, reason=reason))
    scope.node.add_metadata(METADATA_TYPE, {"id": finding_id, "reason": reason})


def acknowledge_aws_managed_policies(scope: IConstruct, policy_names: list[str], reason: str) -> None:
    """Acknowledge AwsSolutions-IAM4 for each named AWS managed policy attached to one role."""
    for name in policy_names:
        acknowledge(scope, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]", reason)
