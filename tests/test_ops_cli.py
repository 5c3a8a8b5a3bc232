"""The `genai-ops` console script: installed into .venv, every command reachable, failures one line without a
traceback (the operations toolkit's contract, README "Operations")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from botocore.exceptions import NoCredentialsError

from ops.cli import run
from ops.errors import BadInputError, OpsError
from tests.conftest import PROJECT_CDK_JSON

SCRIPT = Path(sys.executable).parent / "genai-ops"


def test_the_console_script_is_installed_and_lists_its_commands() -> None:
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "version" in result.stdout
    assert subprocess.run([str(SCRIPT), "version"], capture_output=True, text=True, check=True).stdout.strip()


def test_an_unknown_command_is_a_usage_error_without_a_traceback() -> None:
    result = subprocess.run([str(SCRIPT), "no-such-command"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "No such command" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _failing(error: Exception) -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.command()
    def fail() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (BadInputError("--rate -1 is not allowed: give a rate above 0 requests per second"), 2, "--rate -1"),
        (OpsError("cluster genai-dev is not ACTIVE (CREATING)"), 1, "not ACTIVE"),
        (NoCredentialsError(), 1, "no AWS credentials"),
    ],
)
def test_failures_are_one_message_and_an_exit_code(
    error: Exception, code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _failing(error)
    assert run(lambda: app([], standalone_mode=True)) == code
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_a_programming_error_is_not_hidden() -> None:
    app = _failing(KeyError("bug"))
    with pytest.raises(KeyError):
        run(lambda: app([], standalone_mode=True))


def test_commands_read_cdk_context_json_as_the_cdk_cli_does(tmp_path: Path) -> None:
    """The README keeps personal values in cdk.context.json; `cdk deploy` reads it after cdk.json's context (the
    CLI's context bags: cdk.json first, then cdk.context.json, then ~/.cdk.json; the first with a key wins), so the
    commands must see the same configuration."""
    import json

    from ops.target import load_platform_config
    from platform_config import cdk_cli_context

    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(PROJECT_CDK_JSON.read_text())
    (tmp_path / "cdk.context.json").write_text(
        json.dumps({"name": "acme", "environments": {"dev": {"name": "ignored"}}})
    )
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cdk.json").write_text(json.dumps({"context": {"name": "from-home", "region": "eu-west-1"}}))
    context = cdk_cli_context(cdk_json, home=home)
    assert context["name"] == "acme"  # cdk.context.json before ~/.cdk.json
    assert context["region"] == "eu-west-1"  # only in ~/.cdk.json
    assert "prod" in context["environments"]  # cdk.json's wins over cdk.context.json's
    assert load_platform_config("dev", [], cdk_json).name == "acme"


def test_a_kubeconfig_whose_exec_command_fails_is_named_not_taken_for_an_access_entry(tmp_path: Path) -> None:
    """kubernetes 36.0.3 logs a failing exec plugin (`aws eks get-token` without the AWS CLI or a session) and sends
    anonymous requests; EKS answers /version to those, so the failure must be caught where the kubeconfig loads."""
    import yaml

    from ops.live import connect

    kubeconfig = tmp_path / "kubeconfig"
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "false",  # exits 1, as `aws` does without credentials
            "args": ["eks", "get-token", "--cluster-name", "genai-dev"],
            "interactiveMode": "Never",
        }
    }
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "eks", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "eks", "user": user}],
                "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks"}}],
                "current-context": "eks",
            }
        )
    )
    with pytest.raises(OpsError, match=r"gave no credentials.*exec command failed"):
        connect(kubeconfig, None, timeout=1.0)
    # The same kubeconfig with a token loads.
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"][0]["user"] = {"token": "t0ken"}
    kubeconfig.write_text(yaml.safe_dump(config))
    assert connect(kubeconfig, None, timeout=1.0).context == "eks"
