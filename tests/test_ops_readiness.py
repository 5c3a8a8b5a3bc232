"""`genai-ops readiness` on the synthesized dev and prod environments (the session's `dev`/`prod` synths): dev fails
the items only production settings meet and says which setting; prod passes them. Items that pass (or fail) in
both are also run on a copy of the artifacts with one thing changed, so each item is seen passing and failing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from ops.cli import run
from ops.readiness import Checklist, Synth, live_items, load_synth, readiness
from ops.target import load_platform_config
from tests.conftest import PROJECT_CDK_JSON, Synthesized
from tests.fake_kube_api import FakeKubeApi
from tests.test_ops_verify import ENDPOINT, SERVER_NAME, World, build_world, fake_aws_account
from tests.tls_identity import cluster_identity

ROOT = Path(__file__).resolve().parent.parent

PRIVATE = "API endpoint private"
PROTECTION = "termination protection"
RETAINED = "data kept when a stack is deleted"
DATABASE = "database protected, with a reader"
NAT = "a NAT gateway per availability zone"
LOGS = "logs kept a year"
ALARMS = "alarms reach a person by email"
AMP = "durable metrics and alerting (AMP)"
PDBS = "PodDisruptionBudgets for vLLM and LiteLLM"
REPLICAS = "at least 2 replicas of vLLM and LiteLLM"
SPOT = "GPU nodes On-Demand only (no Spot)"
DIGESTS = "container images pinned by digest"
CHARTS = "Helm charts pinned by version"
COMPLIANCE = "compliance report: 0 failed findings"
ADMINS = "a person can reach the cluster"
TLS = "gateway serves HTTPS"
PERSON_ITEMS = [
    "model licence and weights",
    "accelerator quota for the maximum scale",
    "load test at the expected peak",
    "someone answers the alarms",
    "restore drill",
    "who holds cluster admin",
]

# What each environment's settings give (cdk.json: prod is production, retains data, 3 AZs with a NAT each, a year
# of logs, AMP, 2 vLLM replicas, On-Demand GPUs, a private endpoint). Neither sets an alarm email, an admin role or
# a certificate: those are a deployer's own values.
EXPECTED = {
    "dev": {
        PRIVATE: "fail",
        PROTECTION: "fail",
        RETAINED: "fail",
        DATABASE: "fail",
        NAT: "fail",
        LOGS: "fail",
        ALARMS: "fail",
        AMP: "fail",
        PDBS: "pass",
        REPLICAS: "fail",
        SPOT: "fail",
        DIGESTS: "pass",
        CHARTS: "pass",
        COMPLIANCE: "pass",
        ADMINS: "fail",
        TLS: "fail",
        **dict.fromkeys(PERSON_ITEMS, "needs a person"),
    },
    "prod": {
        PRIVATE: "pass",
        PROTECTION: "pass",
        RETAINED: "pass",
        DATABASE: "pass",
        NAT: "pass",
        LOGS: "pass",
        ALARMS: "fail",
        AMP: "pass",
        PDBS: "pass",
        REPLICAS: "pass",
        SPOT: "pass",
        DIGESTS: "pass",
        CHARTS: "pass",
        COMPLIANCE: "pass",
        ADMINS: "fail",
        TLS: "fail",
        **dict.fromkeys(PERSON_ITEMS, "needs a person"),
    },
}


def _readiness(*args: str) -> int:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(readiness)
    return run(lambda: app(["--cdk-json", str(PROJECT_CDK_JSON), *args], standalone_mode=True))


def _paths(synth: Synthesized) -> list[str]:
    return ["--cdk-out", str(synth.outdir), "--dist", str(synth.manifests_dir.parent)]


def _report(synth: Synthesized, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = _readiness("--env", synth.config.env_name, *_paths(synth), "--json")
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, report


def test_dev_fails_the_production_items_and_says_which_setting(
    dev: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _report(dev, capsys)
    assert code == 1
    assert {c["name"]: c["status"] for c in report["checks"]} == EXPECTED["dev"]
    evidence = {c["name"]: c["evidence"] for c in report["checks"]}
    assert evidence[PRIVATE].startswith("EndpointPublicAccess true (from 192.0.2.0/24)")
    assert "prod sets cluster.endpoint_access=private" in evidence[PRIVATE]
    assert "genai-dev-foundation" in evidence[PROTECTION]
    assert "prod sets removal_policy=retain" in evidence[RETAINED]
    assert evidence[RETAINED].startswith(
        "deleted with their stack: 5 KMS::Key, 2 Logs::LogGroup, 1 RDS::DBCluster, 3 SecretsManager::Secret;"
    )
    assert evidence[DATABASE].startswith("DeletionProtection False, 1 instance, backups kept 7 days")
    assert evidence[NAT].startswith("1 NAT gateway for 2 private subnets")
    assert "Network/FlowLogs 90 days" in evidence[LOGS]
    assert "inference/vllm minReplicaCount 1" in evidence[REPLICAS]
    assert "prod sets inference.autoscaling.min_replicas 2" in evidence[REPLICAS]
    assert "NodePool gpu karpenter.sh/capacity-type ['spot', 'on-demand']" in evidence[SPOT]
    assert "set observability.alarm_email" in evidence[ALARMS]
    assert "prod sets observability.managed_prometheus.enabled" in evidence[AMP]


def test_prod_passes_what_its_settings_promise(prod: Synthesized, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _report(prod, capsys)
    assert code == 1  # the alarm email, an admin role and a certificate are the deployer's to give
    assert {c["name"]: c["status"] for c in report["checks"]} == EXPECTED["prod"]
    evidence = {c["name"]: c["evidence"] for c in report["checks"]}
    # README, Teardown: prod keeps its keys, the two data log groups, the buckets, the secrets, the workspace and
    # a final Aurora snapshot.
    assert evidence[RETAINED] == (
        "kept: 1 APS::Workspace (Retain), 6 KMS::Key (Retain), 2 Logs::LogGroup (Retain), "
        "1 RDS::DBCluster (Snapshot), 2 S3::Bucket (Retain), 3 SecretsManager::Secret (Retain)"
    )
    assert evidence[NAT] == "3 NAT gateways for 3 private subnets"
    assert evidence[DATABASE] == "DeletionProtection True, 2 instances, backups kept 35 days"
    assert evidence[REPLICAS] == "inference/vllm minReplicaCount 2; gateway/litellm minReplicaCount 2"
    assert "@sha256:" in evidence[DIGESTS]
    assert "0 failed findings" in evidence[COMPLIANCE]


def test_the_table_says_the_live_checks_were_not_run(dev: Synthesized, capsys: pytest.CaptureFixture[str]) -> None:
    _readiness("--env", "dev", *_paths(dev))
    out = capsys.readouterr().out
    assert "genai-ops readiness: genai-dev (synth)" in out
    assert "6 need a person" in out
    assert "Live checks not run: add --live" in out


# --- each item that both environments agree on, seen the other way ----------------------------------------------
@pytest.fixture
def prod_synth(prod: Synthesized) -> Synth:
    """A fresh in-memory copy of prod's artifacts per test (tests change it)."""
    config = load_platform_config("prod", [], PROJECT_CDK_JSON)
    return load_synth(config, prod.outdir, prod.manifests_dir.parent)


def _item(synth: Synth, name: str) -> tuple[str, str]:
    config = load_platform_config(synth.env, [], PROJECT_CDK_JSON)
    (result,) = [r for r in Checklist(synth, config).run() if r.name == name]
    return result.status, result.evidence


def test_a_tag_only_image_fails(prod_synth: Synth) -> None:
    (deployment,) = prod_synth.objects("Deployment", "litellm")
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/berriai/litellm:v1.102.1"
    status, evidence = _item(prod_synth, DIGESTS)
    assert (status, evidence) == ("fail", "by tag only: ghcr.io/berriai/litellm:v1.102.1 (Deployment/litellm)")


def test_a_missing_pdb_fails(prod_synth: Synth) -> None:
    prod_synth.documents = [d for d in prod_synth.documents if d["kind"] != "PodDisruptionBudget"]
    assert _item(prod_synth, PDBS) == ("fail", "no PodDisruptionBudget for inference/vllm, gateway/litellm")


def test_an_unpinned_chart_fails(prod_synth: Synth) -> None:
    (chart, *_) = prod_synth.resources("Custom::AWSCDK-EKS-HelmChart")
    del chart.props["Version"]
    status, evidence = _item(prod_synth, CHARTS)
    assert status == "fail"
    assert evidence.startswith(f"no version for {chart.props['Chart']}")


def test_a_failed_finding_in_the_report_fails(prod_synth: Synth) -> None:
    assert prod_synth.report is not None
    prod_synth.report = prod_synth.report.replace("## Failed findings (0)", "## Failed findings (1)")
    status, evidence = _item(prod_synth, COMPLIANCE)
    assert status == "fail"
    assert evidence.startswith("1 failed findings")
    prod_synth.report = None
    assert _item(prod_synth, COMPLIANCE) == ("fail", "no dist/compliance-report.md: run `make synth`")


def test_an_email_subscription_an_admin_and_a_certificate_pass(prod_synth: Synth) -> None:
    observability = prod_synth.templates["genai-prod-observability"]["Resources"]
    observability["AlarmEmail"] = {
        "Type": "AWS::SNS::Subscription",
        "Properties": {"Protocol": "email", "Endpoint": "oncall@example.com", "TopicArn": {"Ref": "Topic"}},
    }
    foundation = prod_synth.templates["genai-prod-foundation"]["Resources"]
    admin = "arn:aws:iam::123456789012:role/PlatformAdmins"
    foundation["Admins"] = {"Type": "AWS::EKS::AccessEntry", "Properties": {"PrincipalArn": admin}}
    (ingress,) = prod_synth.objects("Ingress", "litellm")
    ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"] = '[{"HTTPS":443}]'
    assert _item(prod_synth, ALARMS) == (
        "pass",
        "4 of 4 alarms notify the alarm topic, subscribed by oncall@example.com (confirm the mail)",
    )
    assert _item(prod_synth, ADMINS) == ("pass", f"cluster admins: {admin}")
    assert _item(prod_synth, TLS) == ("pass", 'the ALB listens on [{"HTTPS":443}]')


def test_a_day_short_of_a_year_of_logs_or_a_zone_without_its_nat_fails(prod_synth: Synth) -> None:
    (flow_logs,) = [g for g in prod_synth.resources("AWS::Logs::LogGroup") if "/FlowLogs/" in g.path]
    flow_logs.props["RetentionInDays"] = 364
    status, evidence = _item(prod_synth, LOGS)
    assert (status, evidence.startswith("genai-prod-foundation/Network/FlowLogs 364 days")) == ("fail", True)
    foundation = prod_synth.templates["genai-prod-foundation"]["Resources"]
    (nat, *_) = [k for k, v in foundation.items() if v["Type"] == "AWS::EC2::NatGateway"]
    del foundation[nat]
    assert _item(prod_synth, NAT)[0] == "fail"


def test_a_public_endpoint_and_spot_gpus_fail_in_prod_too(prod_synth: Synth) -> None:
    (cluster,) = prod_synth.resources("AWS::EKS::Cluster")
    cluster.props["ResourcesVpcConfig"]["EndpointPublicAccess"] = True
    (pool,) = prod_synth.objects("NodePool", "gpu")
    for requirement in pool["spec"]["template"]["spec"]["requirements"]:
        if requirement["key"] == "karpenter.sh/capacity-type":
            requirement["values"] = ["spot", "on-demand"]
    assert _item(prod_synth, PRIVATE)[0] == "fail"
    assert _item(prod_synth, SPOT)[0] == "fail"


# --- bad input and the live cluster ------------------------------------------------------------------------------
def test_another_environments_artifacts_are_refused(dev: Synthesized, capsys: pytest.CaptureFixture[str]) -> None:
    code = _readiness("--env", "prod", *_paths(dev))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "holds genai-dev-data, genai-dev-foundation, genai-dev-gateway" in err
    assert "not the stacks of genai-prod; run `make synth ENV=prod` first" in err
    assert "Traceback" not in err


def test_a_missing_assembly_is_one_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _readiness("--env", "dev", "--cdk-out", str(tmp_path / "nothing"), "--dist", str(tmp_path))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert err.startswith(f"error: --cdk-out {tmp_path / 'nothing'}: no cloud assembly (manifest.json) there")


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    """tests/test_ops_verify.py's healthy environment (moto, Stubber, the fake API server)."""
    with fake_aws_account(monkeypatch):
        yield build_world(tmp_path)


def test_live_adds_verifys_checks_or_says_why_it_could_not(
    dev: Synthesized, world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeKubeApi() as fake:
        kubeconfig = fake.write_kubeconfig(world.tmp / "kubeconfig")
        url = fake.url
    # The cluster's endpoint stopped answering: one item says so, the offline items are still reported.
    monkeypatch.setattr("ops.verify.make_aws_clients", lambda region: world.aws(url))
    code = _readiness("--env", "dev", *_paths(dev), "--live", "--kubeconfig", str(kubeconfig), "--json")
    checks = json.loads(capsys.readouterr().out)["checks"]
    assert code == 1
    assert checks[-1]["name"] == "live: cluster reachable"
    assert checks[-1]["status"] == "fail"
    assert checks[-1]["evidence"].startswith(f"cannot reach the Kubernetes API at {url}")
    assert len(checks) == len(EXPECTED["dev"]) + 1

    with FakeKubeApi(world.objects) as fake:
        fake.serve("keda.sh/v1alpha1", "ScaledObject")
        monkeypatch.setattr("ops.verify.make_aws_clients", lambda region: world.aws(fake.url))
        kubeconfig = fake.write_kubeconfig(world.tmp / "kubeconfig")
        _readiness("--env", "dev", *_paths(dev), "--live", "--kubeconfig", str(kubeconfig), "--json")
    live = {
        c["name"]: c["status"] for c in json.loads(capsys.readouterr().out)["checks"] if c["name"].startswith("live")
    }
    assert live["live: IMDSv2 required, hop limit 1"] == "pass"
    assert live["live: network policy enforcement on"] == "pass"
    assert len(live) == 14


def test_live_items_reach_the_cluster_through_a_tunnel(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """--live --tunnel: verify's checks through a tunnel whose context pins the cluster's CA and server name."""
    identity = cluster_identity(world.tmp / "tls", SERVER_NAME)
    world.cluster["certificateAuthority"] = {"data": identity.ca_data}
    # Each call gets fresh Stubber-backed clients.
    monkeypatch.setattr("ops.verify.make_aws_clients", lambda region: world.aws(ENDPOINT))
    config = load_platform_config("dev", [], PROJECT_CDK_JSON)
    with world.serving(tls=identity) as (fake, _):
        kubeconfig = fake.write_kubeconfig(world.tmp / "kc", ca_data=identity.ca_data, tls_server_name=SERVER_NAME)
        reach = {"kubeconfig": kubeconfig, "kube_context": None, "prometheus_url": None, "gateway_url": None}
        refused = live_items(config, region=None, timeout=5, **reach)
        items = live_items(config, region=None, timeout=5, tunnel=fake.url, **reach)
        url = fake.url
    assert [(i.name, i.status) for i in refused] == [("live: cluster reachable", "fail")]
    assert f"pass --tunnel {url}" in refused[0].evidence
    assert {i.status for i in items} == {"pass"}, items
    assert len(items) == 14


def test_a_malformed_tunnel_is_bad_input_before_anything_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _readiness("--env", "dev", "--cdk-out", str(tmp_path / "none"), "--live", "--tunnel", "127.0.0.1:8443")
    assert code == 2
    assert " ".join(capsys.readouterr().err.split()) == (
        "error: --tunnel '127.0.0.1:8443' is not an https URL of a host and port; give the kubeconfig's server at the "
        "local end of the tunnel, e.g. https://127.0.0.1:8443"
    )
