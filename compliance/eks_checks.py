"""The platform's own checks for what cdk-nag does not inspect: `aws_eks_v2` clusters.

cdk-nag's EKS rules (AwsSolutions-EKS1, EKS2) match only the old `aws_eks` custom resource, so a
native AWS::EKS::Cluster passes them unseen. These rules are pure functions of one synthesized
resource; `PlatformEksChecks` runs them on every template as a CDK policy-validation plugin, so a
violation fails `cdk synth` like any cdk-nag error.
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
RULE_PREFIX = "Platform-EKS-"
REQUIRED_LOG_TYPES = frozenset({"api", "audit", "authenticator", "controllerManager", "scheduler"})


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    fix: str
    check: Callable[[dict[str, Any]], bool]  # properties of an AWS::EKS::Cluster -> compliant?


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


SECRETS_ENCRYPTION = Rule(
    f"{RULE_PREFIX}SecretsEncryption",
    "The cluster encrypts Kubernetes Secrets with a customer-managed KMS key.",
    "Pass secrets_encryption_key to the cluster.",
    _secrets_encrypted,
)
CONTROL_PLANE_LOGS = Rule(
    f"{RULE_PREFIX}ControlPlaneLogs",
    "The cluster sends all five control-plane log types (api, audit, authenticator, "
    "controllerManager, scheduler) to CloudWatch.",
    "Pass cluster_logging with every ClusterLoggingTypes member.",
    _all_logs_enabled,
)
PRIVATE_ENDPOINT = Rule(
    f"{RULE_PREFIX}PrivateEndpoint",
    "A production cluster's API endpoint is private only.",
    "Set cluster.endpoint_access to 'private' for production.",
    _endpoint_private,
)


def rules_for(production: bool) -> tuple[Rule, ...]:
    return (SECRETS_ENCRYPTION, CONTROL_PLANE_LOGS) + ((PRIVATE_ENDPOINT,) if production else ())


def violations(template: dict[str, Any], rules: tuple[Rule, ...]) -> Iterator[tuple[Rule, str]]:
    """(rule, logical id) for every AWS::EKS::Cluster in the template that breaks a rule."""
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::EKS::Cluster":
            continue
        for rule in rules:
            if not rule.check(resource.get("Properties", {})):
                yield rule, logical_id


@jsii.implements(IPolicyValidationPlugin)
class PlatformEksChecks:
    """CDK policy-validation plugin running the rules above on every synthesized template."""

    def __init__(self, *, production: bool) -> None:
        self._rules = rules_for(production)

    @property
    def name(self) -> str:
        return "PlatformEksChecks"

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
