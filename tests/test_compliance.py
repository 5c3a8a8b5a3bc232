"""cdk-nag packs and the platform's EKS checks run on every synth and fail it on an unacknowledged error."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_s3 as s3

from compliance.acknowledgments import acknowledge
from compliance.eks_checks import (
    CONTROL_PLANE_LOGS,
    PRIVATE_ENDPOINT,
    SECRETS_ENCRYPTION,
    PlatformEksChecks,
    rules_for,
    violations,
)
from compliance.nag import apply_compliance
from compliance.report import collect_acknowledgments, render_report
from tests.conftest import Synthesized, only, resources_of


def _cluster_properties(synth: Synthesized) -> dict[str, Any]:
    props: dict[str, Any] = only(resources_of(synth.template_json(), "AWS::EKS::Cluster"))["Properties"]
    return props


def test_synthesized_clusters_pass_the_platform_eks_rules(dev: Synthesized, prod: Synthesized) -> None:
    assert list(violations(dev.template_json(), rules_for(production=False))) == []
    assert list(violations(prod.template_json(), rules_for(production=True))) == []


def test_secrets_encryption_rule(dev: Synthesized) -> None:
    props = copy.deepcopy(_cluster_properties(dev))
    assert SECRETS_ENCRYPTION.check(props)
    props.pop("EncryptionConfig")
    assert not SECRETS_ENCRYPTION.check(props)
    props["EncryptionConfig"] = [{"Resources": ["secrets"], "Provider": {}}]
    assert not SECRETS_ENCRYPTION.check(props)


def test_control_plane_logs_rule_needs_all_five(dev: Synthesized) -> None:
    props = copy.deepcopy(_cluster_properties(dev))
    assert CONTROL_PLANE_LOGS.check(props)
    props["Logging"]["ClusterLogging"]["EnabledTypes"] = [{"Type": "api"}, {"Type": "audit"}]
    assert not CONTROL_PLANE_LOGS.check(props)
    props.pop("Logging")
    assert not CONTROL_PLANE_LOGS.check(props)


def test_private_endpoint_rule_applies_to_production_only(dev: Synthesized, prod: Synthesized) -> None:
    assert not PRIVATE_ENDPOINT.check(_cluster_properties(dev))
    assert PRIVATE_ENDPOINT.check(_cluster_properties(prod))
    assert PRIVATE_ENDPOINT not in rules_for(production=False)
    assert PRIVATE_ENDPOINT in rules_for(production=True)


def _bare_cluster_app(tmp_path: Path, *, production: bool) -> cdk.App:
    """A cluster with none of the platform's settings: public endpoint, no logs, no secrets key."""
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bare")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    eks.Cluster(
        stack,
        "Cluster",
        version=eks.KubernetesVersion.V1_35,
        vpc=vpc,
        default_capacity_type=eks.DefaultCapacityType.AUTOMODE,
    )
    cdk.Validations.of(app).add_plugins(PlatformEksChecks(production=production))
    return app


def test_platform_checks_fail_synth_for_a_bare_cluster(tmp_path: Path) -> None:
    app = _bare_cluster_app(tmp_path, production=True)
    with pytest.raises(RuntimeError) as raised:
        app.synth()
    message = str(raised.value)
    for rule_id in ("Platform-EKS-SecretsEncryption", "Platform-EKS-ControlPlaneLogs", "Platform-EKS-PrivateEndpoint"):
        assert rule_id in message


def test_cdk_nag_error_fails_synth(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Leaky")
    s3.Bucket(stack, "Unencrypted", encryption=s3.BucketEncryption.UNENCRYPTED)
    apply_compliance(app, production=False)
    with pytest.raises(RuntimeError, match="AwsSolutions-S10"):
        app.synth()


def test_acknowledgment_is_narrow_to_one_finding(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Narrow")
    bucket = s3.Bucket(stack, "Bucket", enforce_ssl=True, versioned=True)
    # Acknowledging server access logs must not hide the other findings on the same bucket.
    for pack in (
        "AwsSolutions-S1",
        "NIST.800.53.R5-S3BucketLoggingEnabled",
        "HIPAA.Security-S3BucketLoggingEnabled",
        "PCI.DSS.321-S3BucketLoggingEnabled",
    ):
        acknowledge(bucket, pack, "Access logs for this test bucket are out of scope of the test.")
    apply_compliance(app, production=False)
    with pytest.raises(RuntimeError) as raised:
        app.synth()
    assert "S3BucketLoggingEnabled" not in str(raised.value)
    assert "AwsSolutions-S1" not in str(raised.value).replace("AwsSolutions-S10", "")
    assert "S3BucketReplicationEnabled" in str(raised.value)


def test_acknowledgment_needs_a_reviewable_reason(tmp_path: Path) -> None:
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "Reasons")
    with pytest.raises(ValueError, match="needs a reason a reviewer can check"):
        acknowledge(stack, "AwsSolutions-IAM4", "TODO")


def test_report_lists_every_acknowledgment_with_path_and_reason(dev: Synthesized) -> None:
    records = collect_acknowledgments(dev.platform.app)
    assert len(records) >= 30
    assert all(r.reason and r.finding_id and r.path.startswith("genai-dev-") for r in records)
    paths_by_id = {(r.path, r.finding_id) for r in records}
    assert (
        "genai-dev-foundation/Eks/NodeRole",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEKSWorkerNodeMinimalPolicy]",
    ) in paths_by_id
    report = render_report("dev", records)
    assert report.startswith("# Compliance report: environment `dev`")
    assert report.count("\n| `genai-dev-") == len(records)


def test_no_acknowledgment_is_stack_wide(dev: Synthesized, prod: Synthesized) -> None:
    for synth in (dev, prod):
        stack_path = synth.platform.foundation.node.path
        assert all(r.path != stack_path for r in collect_acknowledgments(synth.platform.app))
