"""The platform's own checks for what cdk-nag does not inspect: `aws_eks_v2` clusters and AMP workspaces.

cdk-nag's EKS rules (AwsSolutions-EKS1, EKS2) match only the old `aws_eks` custom resource, so a
native AWS::EKS::Cluster passes them unseen, and cdk-nag has no rule for Amazon Managed Service for
Prometheus at all. These rules are pure functions of one synthesized resource of their type;
`PlatformChecks` runs them on every template as a CDK policy-validation plugin, so a violation fails
`cdk synth` like any cdk-nag error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsii
from aws_cdk import (
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
)

# Every rule id starts with this; acknowledgments are matched to this plugin by it.
RULE_PREFIX = "Platform-"
EKS_CLUSTER = "AWS::EKS::Cluster"
AMP_WORKSPACE = "AWS::APS::Workspace"
REQUIRED_LOG_TYPES = frozenset({"api", "audit", "authenticator", "controllerManager", "scheduler"})


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    fix: str
    resource_type: str
    check: Callable[[dict[str, Any]], bool]  # properties of a resource of `resource_type` -> compliant?


def _secrets_encrypted(props: dict[str, Any]) -> bool:
    return any(
        "secrets" in config.get("Resources", []) and config.get("Provider", {}).get("KeyArn")
        for config in props.get("EncryptionConfig", [])
    )


def _all_logs_enabled(props: dict[str, Any]) -> bool:
    enabled = props.get("Logging", {}).get("ClusterLogging", {}).get("EnabledTypes", [])
    return {entry.get("Type") for entry in enabled} >= REQUIRED_LOG_TYPES


def _endpoint_private(props: dict[str, Any]) -> bool:
    vpc_config = props.get("ResourcesVpcConfig", {})
    return vpc_config.get("EndpointPublicAccess") is False and vpc_config.get("EndpointPrivateAccess") is True


def _workspace_key(props: dict[str, Any]) -> bool:
    return bool(props.get("KmsKeyArn"))


SECRETS_ENCRYPTION = Rule(
    f"{RULE_PREFIX}EKS-SecretsEncryption",
    "The cluster encrypts Kubernetes Secrets with a customer-managed KMS key.",
    "Pass secrets_encryption_key to the cluster.",
    EKS_CLUSTER,
    _secrets_encrypted,
)
CONTROL_PLANE_LOGS = Rule(
    f"{RULE_PREFIX}EKS-ControlPlaneLogs",
    "The cluster sends all five control-plane log types (api, audit, authenticator, "
    "controllerManager, scheduler) to CloudWatch.",
    "Pass cluster_logging with every ClusterLoggingTypes member.",
    EKS_CLUSTER,
    _all_logs_enabled,
)
PRIVATE_ENDPOINT = Rule(
    f"{RULE_PREFIX}EKS-PrivateEndpoint",
    "A production cluster's API endpoint is private only.",
    "Set cluster.endpoint_access to 'private' for production.",
    EKS_CLUSTER,
    _endpoint_private,
)
# AMP encrypts with an AWS owned key unless given one, and a workspace cannot change keys later
# (AMP User Guide, encryption-at-rest).
WORKSPACE_ENCRYPTION = Rule(
    f"{RULE_PREFIX}AMP-WorkspaceEncryption",
    "An Amazon Managed Service for Prometheus workspace encrypts its data with a customer-managed KMS key.",
    "Pass kms_key_arn to the workspace (it cannot be added after creation).",
    AMP_WORKSPACE,
    _workspace_key,
)


def rules_for(production: bool) -> tuple[Rule, ...]:
    return (SECRETS_ENCRYPTION, CONTROL_PLANE_LOGS, WORKSPACE_ENCRYPTION) + ((PRIVATE_ENDPOINT,) if production else ())


def violations(template: dict[str, Any], rules: tuple[Rule, ...]) -> Iterator[tuple[Rule, str]]:
    """(rule, logical id) for every resource in the template that breaks a rule for its type."""
    for logical_id, resource in template.get("Resources", {}).items():
        for rule in rules:
            if resource.get("Type") == rule.resource_type and not rule.check(resource.get("Properties", {})):
                yield rule, logical_id


@jsii.implements(IPolicyValidationPlugin)
class PlatformChecks:
    """CDK policy-validation plugin running the rules above on every synthesized template."""

    def __init__(self, *, production: bool) -> None:
        self._rules = rules_for(production)

    @property
    def name(self) -> str:
        return "PlatformChecks"

    @property
    def version(self) -> str | None:
        return "1"

    @property
    def rule_ids(self) -> list[str] | None:
        return [rule.id for rule in self._rules]

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        found: dict[str, list[PolicyViolatingResource]] = {}
        for path in context.template_paths:
            with open(path, encoding="utf-8") as handle:
                template = json.load(handle)
            for rule, logical_id in violations(template, self._rules):
                found.setdefault(rule.id, []).append(
                    PolicyViolatingResource(
                        resource_logical_id=logical_id, template_path=path, locations=["Properties"]
                    )
                )
        by_id = {rule.id: rule for rule in self._rules}
        return PolicyValidationPluginReport(
            success=not found,
            violations=[
                PolicyViolation(
                    rule_name=rule_id,
                    description=by_id[rule_id].description,
                    fix=by_id[rule_id].fix,
                    severity="error",
                    violating_resources=resources,
                )
                for rule_id, resources in found.items()
            ],
        )
