"""The one way the platform skips a checkov check on a synthesized CloudFormation resource.

checkov reads skips from the resource's own `Metadata.checkov.skip` list (`{id, comment}`), so the skip
travels with the template and `compliance.report` lists it from there.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct


def skip_checkov(resource: IConstruct, check_id: str, reason: str) -> None:
    """Escape hatch: add one `Metadata.checkov.skip` entry to the CloudFormation resource `resource`
    (or the default child of an L2 construct), keeping the entries already there."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise TypeError(f"{resource.node.path} is not a CloudFormation resource and has none as its default child")
    if len(reason) < 30:
        raise ValueError(f"the checkov skip of {check_id} on {resource.node.path} needs a reason a reviewer can check")
    existing = cfn.get_metadata("checkov") or {}
    skips = [*existing.get("skip", []), {"id": check_id, "comment": reason}]
    cfn.add_metadata("checkov", {**existing, "skip": skips})
