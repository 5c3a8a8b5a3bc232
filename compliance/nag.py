"""Compliance packs run on every synth: cdk-nag's four packs plus the platform's EKS checks."""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks, PCIDSS321Checks

from compliance.eks_checks import PlatformEksChecks

PACKS = ("AwsSolutions", "NIST 800-53 R5", "HIPAA Security", "PCI DSS 3.2.1", "PlatformEksChecks")


def apply_compliance(app: App, *, production: bool) -> None:
    """Register every pack as a validation plugin: an unacknowledged error makes synth fail."""
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app),
        NIST80053R5Checks(app),
        HIPAASecurityChecks(app),
        PCIDSS321Checks(app),
        PlatformEksChecks(production=production),
    )
