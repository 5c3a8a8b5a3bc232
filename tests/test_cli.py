"""The real entry points, as a user runs them: `cdk synth` through the pinned CLI, and
`python -m platform_config`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CDK = ROOT / "node_modules" / ".bin" / "cdk"


def _cdk_synth(tmp_path: Path, *context: str) -> subprocess.CompletedProcess[str]:
    if not CDK.exists():
        pytest.fail("the pinned CDK CLI is missing: run `make deps` (npm ci) first")
    args = [str(CDK), "synth", "--quiet", "-o", str(tmp_path / "cdk.out"), "-c", f"dist_dir={tmp_path / 'dist'}"]
    for item in context:
        args += ["-c", item]
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, check=False, timeout=300)


@pytest.mark.parametrize(
    ("context", "key"),
    [
        (["cluster.kubernetes_version=1.20"], "cluster.kubernetes_version"),
        (["vpc.max_azs=7"], "vpc.max_azs"),
        # Refused by AWS's tag rules before anything is built (CloudFormation would refuse it only later).
        (['tags={"aws:team": "ml"}'], "tags: key 'aws:team' starts with 'aws:'"),
        (["clustr.kubernetes_version=1.20"], "'clustr' is not a configuration section"),
    ],
)
def test_bad_value_exits_non_zero_and_writes_no_templates(tmp_path: Path, context: list[str], key: str) -> None:
    result = _cdk_synth(tmp_path, *context)
    assert result.returncode != 0
    assert key in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "cdk.out").glob("*.template.json"))
    assert not (tmp_path / "dist").exists()


def test_prod_synthesizes_through_the_cli_with_manifests_and_report(tmp_path: Path) -> None:
    result = _cdk_synth(tmp_path, "env=prod")
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "cdk.out" / "genai-prod-foundation.template.json").read_text())
    (cluster,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::EKS::Cluster"]
    assert cluster["Properties"]["ResourcesVpcConfig"]["EndpointPublicAccess"] is False
    assert (tmp_path / "dist" / "k8s" / "platform-namespaces.k8s.yaml").exists()
    assert "environment `prod`" in (tmp_path / "dist" / "compliance-report.md").read_text()


def test_stale_manifests_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / "dist" / "k8s" / "removed-chart.k8s.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("kind: Namespace\n")
    assert _cdk_synth(tmp_path).returncode == 0
    assert not stale.exists()
    shutil.rmtree(tmp_path / "cdk.out")


def test_config_module_prints_one_value() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "platform_config", "cluster.endpoint_access", "-c", "env=prod"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "private"
