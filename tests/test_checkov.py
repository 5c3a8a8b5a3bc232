"""checkov on everything the platform synthesizes: the Kubernetes checks on every manifest and the
CloudFormation checks on every template. Each check passes, or is skipped on the object itself with a
reason (and a template's skips are listed in the compliance report)."""

from __future__ import annotations

import pytest

from tests.checkov_runner import run_checkov
from tests.conftest import Synthesized


@pytest.fixture(scope="module")
def download_manifests(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    from tests.conftest import synthesize

    return synthesize(
        tmp_path_factory.mktemp("checkov"),
        "dev",
        **{"inference.model_store.download_job": "true", "inference.model_store.hf_token_secret_name": "hf"},
    )


def test_checkov_passes_or_skips_with_reasons(dev: Synthesized, download_manifests: Synthesized) -> None:
    for synth in (dev, download_manifests):
        report = run_checkov(synth.manifests_dir)
        assert report.passed > 50
        assert report.failed == [], report.describe()
        for finding in report.skipped:
            assert finding.suppress_comment, finding
            assert len(finding.suppress_comment) > 30, finding


def test_the_only_skips_are_the_deliberate_ones(dev: Synthesized) -> None:
    report = run_checkov(dev.manifests_dir)
    assert {(f.check_id, f.resource) for f in report.skipped} == {
        ("CKV_K8S_11", "Deployment.inference.vllm"),
        ("CKV_K8S_35", "Deployment.gateway.litellm"),
    }


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_templates_pass_checkov_or_skip_with_a_reason_the_report_lists(
    env: str, dev: Synthesized, prod: Synthesized
) -> None:
    synth = {"dev": dev, "prod": prod}[env]
    report = run_checkov(synth.outdir, framework="cloudformation")
    assert report.passed > 150, report.describe()
    assert report.failed == [], report.describe()
    assert report.parsing_errors == [], report.describe()
    compliance_report = (synth.outdir.parent / "compliance-report.md").read_text()
    for finding in report.skipped:
        assert finding.suppress_comment, finding
        assert len(finding.suppress_comment) > 30, finding
        logical_id = finding.resource.split(".", 1)[1]
        row = f"| `{logical_id}` | `{finding.check_id}` | {finding.suppress_comment} |"
        assert row in compliance_report, f"{finding} is not in the compliance report"


def test_template_skips_are_only_on_cdks_own_functions_and_the_log_bucket(dev: Synthesized) -> None:
    report = run_checkov(dev.outdir, framework="cloudformation")
    assert {(f.check_id, f.resource.split(".", 1)[1][:-8]) for f in report.skipped} == {
        ("CKV_AWS_18", "ModelStoreAccessLogs"),
        ("CKV_AWS_115", "CustomVpcRestrictDefaultSGCustomResourceProviderHandler"),
        ("CKV_AWS_116", "CustomVpcRestrictDefaultSGCustomResourceProviderHandler"),
        ("CKV_AWS_117", "CustomVpcRestrictDefaultSGCustomResourceProviderHandler"),
        ("CKV_AWS_115", "EksClusterKubectlProviderHandler"),
        ("CKV_AWS_116", "EksClusterKubectlProviderHandler"),
        ("CKV_AWS_173", "EksClusterKubectlProviderHandler"),
        ("CKV_AWS_115", "EksClusterKubectlProviderframeworkonEvent"),
        ("CKV_AWS_116", "EksClusterKubectlProviderframeworkonEvent"),
        ("CKV_AWS_173", "EksClusterKubectlProviderframeworkonEvent"),
    }
