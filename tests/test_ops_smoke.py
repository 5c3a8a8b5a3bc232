"""`genai-ops smoke`: one completion through the gateway from the stacks' outputs and the cluster, each step printed,
against tests/test_ops_verify.py's fake environment (moto for CloudFormation and Secrets Manager, the fake API server
with LiteLLM behind its service proxy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from ops.cli import run
from ops.smoke import smoke
from tests.conftest import PROJECT_CDK_JSON
from tests.stub_http import StubHttp
from tests.test_ops_verify import (
    ALB_HOSTNAME,
    ENDPOINT,
    MASTER_KEY,
    SERVER_NAME,
    World,
    build_world,
    fake_aws_account,
)
from tests.tls_identity import cluster_identity

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    with fake_aws_account(monkeypatch):
        yield build_world(tmp_path)


def _smoke(world: World, monkeypatch: pytest.MonkeyPatch, endpoint: str, *args: str) -> int:
    monkeypatch.setattr("ops.verify.make_aws_clients", lambda region: world.aws(endpoint))
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(smoke)
    return run(lambda: app(["--cdk-json", str(PROJECT_CDK_JSON), *args], standalone_mode=True))


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def test_a_completion_through_the_service_proxy_step_by_step(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with world.serving() as (fake, _):
        code = _smoke(world, monkeypatch, fake.url, "--kubeconfig", str(fake.write_kubeconfig(world.tmp / "kc")))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    steps = _lines(captured.out)
    assert [line.split(" ", 1)[0] for line in steps] == ["1.", "2.", "3.", "4.", "5."]
    assert steps[0].startswith("1. stack outputs: genai-dev-data GatewayMasterKeySecret = arn:aws:secretsmanager:")
    assert steps[1] == f"2. master key read from Secrets Manager ({len('sk-' + MASTER_KEY)} characters, not shown)"
    assert steps[2].startswith("3. gateway: service proxy gateway/litellm:80 on cluster genai-dev;")
    assert f"--gateway-url http://{ALB_HOSTNAME}" in steps[2]
    assert steps[3] == '4. LiteLLM ready: {"status": "healthy", "db": "connected"}'
    assert steps[4].endswith("(3 tokens): 'Hello!'")
    assert MASTER_KEY not in captured.out + captured.err
    (posted,) = [r for r in world.gateway_requests if r.method == "POST"]
    assert posted.json()["messages"] == [{"role": "user", "content": "Say hello."}]


def test_with_a_certificate_the_hint_is_https_for_its_domain(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With gateway.certificate_arn the ALB listens on HTTPS 443 only, for the certificate's domain (k8s/gateway.py
    listen-ports): an http:// hint at the ALB's own name would not connect."""
    certificate = "arn:aws:acm:us-west-2:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    with world.serving() as (fake, _):
        kubeconfig = str(fake.write_kubeconfig(world.tmp / "kc"))
        code = _smoke(
            world, monkeypatch, fake.url, "--kubeconfig", kubeconfig, "-c", f"gateway.certificate_arn={certificate}"
        )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (gateway_step,) = [line for line in _lines(captured.out) if line.startswith("3. gateway:")]
    assert "--gateway-url https://<the certificate's domain" in gateway_step
    assert f"http://{ALB_HOSTNAME}" not in gateway_step


def test_a_gateway_url_needs_no_cluster_access(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    routes = {
        ("GET", "/health/readiness"): lambda r: world.readiness,
        ("POST", "/v1/chat/completions"): world._completion,
    }
    with StubHttp(routes) as gateway:
        missing = world.tmp / "no-kubeconfig"
        code = _smoke(world, monkeypatch, "https://unused", "--gateway-url", gateway.url, "--kubeconfig", str(missing))
    out = capsys.readouterr().out
    assert code == 0
    assert f"3. gateway: {gateway.url} (--gateway-url)" in _lines(out)


def test_a_gateway_that_is_not_ready_stops_at_step_4(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.readiness = (503, {"status": "healthy", "db": "disconnected"})
    with world.serving() as (fake, _):
        code = _smoke(world, monkeypatch, fake.url, "--kubeconfig", str(fake.write_kubeconfig(world.tmp / "kc")))
    captured = capsys.readouterr()
    assert code == 1
    assert " ".join(captured.err.split()) == (
        "error: smoke test stopped at step 4: LiteLLM is not ready: GET /health/readiness answered HTTP 503 "
        '{"status": "healthy", "db": "disconnected"}'
    )
    assert not [r for r in world.gateway_requests if r.method == "POST"]


def test_a_failed_completion_stops_at_step_5_without_the_key(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    world.completion = lambda request: (500, {"error": f"no backend for {request.headers['x-litellm-api-key']}"})
    with world.serving() as (fake, _):
        code = _smoke(world, monkeypatch, fake.url, "--kubeconfig", str(fake.write_kubeconfig(world.tmp / "kc")))
    captured = capsys.readouterr()
    assert code == 1
    assert "smoke test stopped at step 5: completion from llama-3.1-8b-instruct: HTTP 500" in captured.err
    assert MASTER_KEY not in captured.out + captured.err


@pytest.mark.parametrize("option", [True, False], ids=["with --tunnel", "without"])
def test_a_tunnel_to_a_private_endpoint_needs_the_option(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], option: bool
) -> None:
    """smoke shares verify's check of the kubeconfig: a context whose server is a tunnel, with the cluster's CA and
    the endpoint's host as tls-server-name, is used with --tunnel and refused without it (exit 2)."""
    identity = cluster_identity(world.tmp / "tls", SERVER_NAME)
    world.cluster["certificateAuthority"] = {"data": identity.ca_data}
    with world.serving(tls=identity) as (fake, _):
        kubeconfig = fake.write_kubeconfig(world.tmp / "kc", ca_data=identity.ca_data, tls_server_name=SERVER_NAME)
        tunnel = ["--tunnel", fake.url] if option else []
        code = _smoke(world, monkeypatch, ENDPOINT, "--kubeconfig", str(kubeconfig), *tunnel)
        url = fake.url
    captured = capsys.readouterr()
    if option:
        assert code == 0, captured.err
        assert _lines(captured.out)[2].startswith("3. gateway: service proxy gateway/litellm:80 on cluster genai-dev;")
        assert _lines(captured.out)[4].endswith("(3 tokens): 'Hello!'")
    else:
        assert code == 2
        assert f"when {url} is a tunnel to that endpoint, pass --tunnel {url}" in " ".join(captured.err.split())
        assert world.kube_requests == []


def test_without_a_gateway_there_is_nothing_to_smoke_test(capsys: pytest.CaptureFixture[str]) -> None:
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(smoke)
    code = run(lambda: app(["--cdk-json", str(PROJECT_CDK_JSON), "-c", "gateway.enabled=false"], standalone_mode=True))
    assert code == 2
    assert "gateway.enabled is false" in capsys.readouterr().err


def test_the_walkthrough_runs_smoke_with_options_it_has() -> None:
    """README, "From `cdk deploy` to a first completion": the smoke step names options the command takes."""
    from typer.testing import CliRunner

    readme = (ROOT / "README.md").read_text()
    walkthrough = readme[readme.index("### From `cdk deploy` to a first completion") : readme.index("## Teardown")]
    (line,) = [line for line in walkthrough.splitlines() if "genai-ops smoke" in line and not line.startswith("#")]
    app = typer.Typer()
    app.command()(smoke)
    help_text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    options = [word for word in line.split() if word.startswith("--")]
    assert options == ["--env", "--region"]
    assert all(option in help_text for option in options)
