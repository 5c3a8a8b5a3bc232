"""checkov's Kubernetes checks on every manifest the platform writes: each passes, or is skipped in
the manifest itself with a reason."""

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
