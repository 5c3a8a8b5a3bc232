"""cdk-nag packs and the platform's own checks run on every synth and fail it on an unacknowledged error."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_aps as aps
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_s3 as s3

from compliance.acknowledgments import acknowledge
from compliance.audit import ComplianceError, audit
from compliance.nag import apply_compliance, pack_rules, plugin_names
from compliance.platform_checks import (
    CONTROL_PLANE_LOGS,
    PRIVATE_ENDPOINT,
    SECRETS_ENCRYPTION,
    rules_for,
    violations,
)
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
    """A cluster with none of the platform's settings (public endpoint, no logs, no secrets key) and an AMP
    workspace with AWS's own key."""
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
    aps.CfnWorkspace(stack, "Workspace", alias="bare")
    apply_compliance(app, production=production)
    return app


def test_platform_checks_fail_synth_for_a_bare_cluster(tmp_path: Path) -> None:
    app = _bare_cluster_app(tmp_path, production=True)
    with pytest.raises(RuntimeError) as raised:
        app.synth()
    message = str(raised.value)
    for rule_id in (
        "Platform-EKS-SecretsEncryption",
        "Platform-EKS-ControlPlaneLogs",
        "Platform-EKS-PrivateEndpoint",
        "Platform-AMP-WorkspaceEncryption",
    ):
        assert rule_id in message


def test_every_cdk_nag_pack_fails_synth(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Leaky")
    s3.Bucket(stack, "Unencrypted", encryption=s3.BucketEncryption.UNENCRYPTED)
    apply_compliance(app, production=False)
    with pytest.raises(RuntimeError) as raised:
        app.synth()
    for finding in (
        "AwsSolutions-S10",
        "NIST.800.53.R5-S3BucketSSLRequestsOnly",
        "HIPAA.Security-S3BucketSSLRequestsOnly",
        "PCI.DSS.321-S3BucketSSLRequestsOnly",
    ):
        assert finding in str(raised.value)


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


def test_acknowledgment_needs_a_known_pack(tmp_path: Path) -> None:
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "Unknown")
    with pytest.raises(ValueError, match=r"belongs to no registered pack.*AwsSolutions-"):
        acknowledge(stack, "Serverless-LambdaTracing", "A pack the platform does not register at all.")


def test_acknowledgment_needs_a_reviewable_reason(tmp_path: Path) -> None:
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "Reasons")
    with pytest.raises(ValueError, match="needs a reason a reviewer can check"):
        acknowledge(stack, "AwsSolutions-IAM4", "TODO")


# cdk-nag 3.0.2's packs: the number of `this.applyRule(...)` calls in lib/packs/<pack>.js, one per rule.
RULES_PER_PACK = {"AwsSolutions": 131, "NIST.800.53.R5": 85, "HIPAA.Security": 90, "PCI.DSS.321": 69}


def test_pack_rules_are_read_from_the_installed_packs() -> None:
    for pack, count in RULES_PER_PACK.items():
        assert len(pack_rules(pack)) == count, pack
    assert {"AwsSolutions-S1", "AwsSolutions-IAM4", "AwsSolutions-EKS1"} <= set(pack_rules("AwsSolutions"))
    assert "NIST.800.53.R5-S3BucketLoggingEnabled" in pack_rules("NIST.800.53.R5")
    assert "HIPAA.Security-RDSInBackupPlan" in pack_rules("HIPAA.Security")
    # The PCI pack has no Secrets Manager rotation rule: acknowledging one would acknowledge nothing.
    assert "PCI.DSS.321-SecretsManagerRotationEnabled" not in pack_rules("PCI.DSS.321")
    assert "PCI.DSS.321-SecretsManagerUsingKMSKey" in pack_rules("PCI.DSS.321")
    assert plugin_names() == {*RULES_PER_PACK, "PlatformChecks"}


def _bucket_app(tmp_path: Path) -> tuple[cdk.App, cdk.Stack, s3.Bucket]:
    """A bucket whose only findings are access logs and replication, those of three packs acknowledged."""
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Audited")
    bucket = s3.Bucket(
        stack,
        "Bucket",
        enforce_ssl=True,
        versioned=True,
        encryption=s3.BucketEncryption.KMS,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
    )
    apply_compliance(app, production=False)
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        acknowledge(bucket, f"{pack}-S3BucketReplicationEnabled", "Replication is out of scope of this test.")
        acknowledge(bucket, f"{pack}-S3BucketLoggingEnabled", "Access logs are out of scope of this test.")
    return app, stack, bucket


def test_a_bucket_with_its_findings_acknowledged_audits_clean(tmp_path: Path) -> None:
    app, _, bucket = _bucket_app(tmp_path)
    acknowledge(bucket, "AwsSolutions-S1", "Access logs are out of scope of this test.")
    app.synth()
    result = audit(app, tmp_path, plugin_names())
    assert result.problems() == []
    assert result.failed == []
    assert {(f.rule, f.construct, f.acknowledged_at) for f in result.acknowledged if f.plugin == "AwsSolutions"} == {
        ("AwsSolutions-S1", "Audited/Bucket/Resource", "Audited/Bucket")
    }
    assert len(result.acknowledged) == 7


def test_a_stale_acknowledgment_is_a_problem(tmp_path: Path) -> None:
    app, _, bucket = _bucket_app(tmp_path)
    acknowledge(bucket, "AwsSolutions-S1", "Access logs are out of scope of this test.")
    # Versioning is on, so the versioning rule raises nothing here: this acknowledges nothing.
    acknowledge(bucket, "NIST.800.53.R5-S3BucketVersioningEnabled", "Versioning is out of scope of this test.")
    app.synth()
    stale = "NIST.800.53.R5-S3BucketVersioningEnabled on Audited/Bucket matches no"
    with pytest.raises(ComplianceError, match=re.escape(stale)):
        audit(app, tmp_path, plugin_names()).check()


def test_an_acknowledgment_above_the_raising_resource_is_a_problem(tmp_path: Path) -> None:
    app, stack, _ = _bucket_app(tmp_path)
    acknowledge(stack, "AwsSolutions-S1", "Access logs are out of scope of this test.")
    app.synth()
    misplaced = "AwsSolutions-S1 is raised by Audited/Bucket/Resource but acknowledged on Audited;"
    with pytest.raises(ComplianceError, match=re.escape(misplaced)):
        audit(app, tmp_path, plugin_names()).check()


def test_platform_synth_fails_on_a_stale_acknowledgment_and_writes_no_manifests(tmp_path: Path) -> None:
    from app import build_platform, synthesize
    from platform_config import load_config
    from tests.conftest import context_for

    context = context_for("dev")
    app = cdk.App(context=context, outdir=str(tmp_path / "cdk.out"))
    platform = build_platform(app, load_config(context), tmp_path / "k8s")
    assert platform.data.gateway_stores is not None
    # IAM database authentication is on, so AwsSolutions-RDS6 is never raised.
    acknowledge(platform.data.gateway_stores.database, "AwsSolutions-RDS6", "IAM database authentication is on here.")
    stale = "AwsSolutions-RDS6 on genai-dev-data/GatewayStores/Database matches no finding"
    with pytest.raises(ComplianceError, match=re.escape(stale)):
        synthesize(platform, tmp_path)
    assert not (tmp_path / "k8s").exists()
    assert not (tmp_path / "compliance-report.md").exists()


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_synthesized_acknowledgments_are_all_used_and_on_their_resources(
    env: str, dev: Synthesized, prod: Synthesized
) -> None:
    synth = {"dev": dev, "prod": prod}[env]
    assert synth.audit.problems() == []
    assert synth.audit.failed == []
    assert len(synth.audit.acknowledged) >= 55
    stacks = {stack.node.path for stack in synth.platform.stacks}
    assert all(f.acknowledged_at not in stacks for f in synth.audit.acknowledged)


def _report_table(markdown: str, heading: str) -> list[list[str]]:
    """The rows of the table under `## heading...`, as cells without their backticks."""
    section = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    return [[cell.strip().strip("`").replace("\\|", "|") for cell in row[2:-2].split(" | ")] for row in rows[1:]]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_report_agrees_with_cdks_validation_report(env: str, dev: Synthesized, prod: Synthesized) -> None:
    synth = {"dev": dev, "prod": prod}[env]
    markdown = (synth.outdir.parent / "compliance-report.md").read_text()
    validation = json.loads((synth.outdir / "validation-report.json").read_text())
    suppressed = {
        (where["constructPath"], violation["ruleName"], violation["reason"])
        for plugin in validation["pluginReports"]
        if plugin["pluginName"] in plugin_names()
        for violation in plugin.get("suppressedViolations") or []
        for where in violation["violatingConstructs"]
    }
    acknowledged_rows = {tuple(row) for row in _report_table(markdown, "Acknowledged findings")}
    assert acknowledged_rows == suppressed
    assert f"## Acknowledged findings ({len(suppressed)})" in markdown
    unsuppressed = [
        v for p in validation["pluginReports"] if p["pluginName"] in plugin_names() for v in p["violations"]
    ]
    assert unsuppressed == []
    assert "## Failed findings (0)" in markdown
    per_pack: dict[str, int] = {}
    for _, pack, evaluated, passed, acknowledged, failed in _report_table(markdown, "Rules per stack and pack"):
        assert int(evaluated) == RULES_PER_PACK[pack]
        assert int(failed) == 0
        assert 0 < int(passed) <= int(evaluated)
        per_pack[pack] = per_pack.get(pack, 0) + int(acknowledged)
    for plugin in validation["pluginReports"]:
        if plugin["pluginName"] in RULES_PER_PACK:
            count = sum(len(v["violatingConstructs"]) for v in plugin.get("suppressedViolations") or [])
            assert per_pack[plugin["pluginName"]] == count
    platform_rows = {row[0]: row[2] for row in _report_table(markdown, "The platform's own checks")}
    expected = {"Platform-EKS-SecretsEncryption": "passed", "Platform-EKS-ControlPlaneLogs": "passed"}
    if env == "prod":
        # prod runs the private-endpoint rule and has an AMP workspace (cdk.json); dev has neither.
        expected["Platform-EKS-PrivateEndpoint"] = "passed"
        expected["Platform-AMP-WorkspaceEncryption"] = "passed"
    else:
        expected["Platform-AMP-WorkspaceEncryption"] = "not applicable (no `AWS::APS::Workspace`)"
    assert platform_rows == expected
