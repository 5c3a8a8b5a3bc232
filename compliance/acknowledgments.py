"""The one way the platform acknowledges a compliance finding.

Each acknowledgment names one finding id (with its `[...]` finding suffix where the rule has one),
sits on the construct that raises it, and carries a reason a reviewer can check.

It is recorded under the raising plugin's name (`AwsSolutions::AwsSolutions-S1`), not as a bare id.
cdk-nag 3 drops a finding itself when it sees the bare id, so CDK never learns the finding existed;
under the plugin's name cdk-nag reports it and CDK's own validation applies the acknowledgment, listing
the finding as suppressed, with reason and construct, in `cdk.out/validation-report.json`. That file
is what `compliance.audit` checks and the report is built from.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

from compliance.nag import plugin_for


def acknowledge(scope: IConstruct, finding_id: str, reason: str) -> None:
    """Acknowledge one finding on `scope` (the construct that raises it), with a reviewable reason."""
    if len(reason.strip()) < 20 or reason.strip().lower() in {"todo", "demo", "n/a"}:
        raise ValueError(f"acknowledgment of {finding_id} needs a reason a reviewer can check")
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{plugin_for(finding_id)}::{finding_id}", reason=reason))


def acknowledge_aws_managed_policies(scope: IConstruct, policy_names: list[str], reason: str) -> None:
    """Acknowledge AwsSolutions-IAM4 for each named AWS managed policy attached to one role."""
    for name in policy_names:
        acknowledge(scope, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]", reason)
