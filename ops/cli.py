"""`genai-ops`: the operations toolkit's command line (typer + rich).

Each subcommand is a module of this package that exposes `app` (a typer.Typer with one command); it is added
here. `main` turns the failures a person can act on (bad input, missing credentials, an unreachable endpoint)
into one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer
from rich.console import Console

from ops.cleanup import cleanup
from ops.cost import cost
from ops.errors import OpsError
from ops.loadtest import loadtest
from ops.manifests import manifests
from ops.readiness import readiness
from ops.smoke import smoke
from ops.verify import verify

app = typer.Typer(
    name="genai-ops",
    help="Operate the GenAI inference platform (see each command's --help).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


@app.callback()
def _group() -> None:
    """Operate the GenAI inference platform. Every command has --help; none changes anything without --yes."""


@app.command()
def version() -> None:
    """Print the toolkit's version (the project's, from pyproject.toml)."""
    from importlib.metadata import version as installed_version

    Console(highlight=False).print(installed_version("eks-genai-platform"))


app.command(name="loadtest")(loadtest)
app.command(name="cleanup")(cleanup)
app.command(name="manifests")(manifests)
app.command(name="cost")(cost)
app.command(name="verify")(verify)
app.command(name="readiness")(readiness)
app.command(name="smoke")(smoke)


def _translated(error: BaseException) -> OpsError | None:
    """The failures of the libraries the commands use that are the environment's, not the program's."""
    try:
        from botocore.exceptions import (
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
        )
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return OpsError(
            "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or run inside the VPC "
            "with a role), then try again"
        )
    if isinstance(error, NoRegionError):
        return OpsError("no AWS region: pass --region or set AWS_REGION", exit_code=2)
    if isinstance(error, EndpointConnectionError):
        return OpsError(f"cannot reach the AWS endpoint {error.kwargs.get('endpoint_url', '')}: check the network")
    return None


def run(entry: Callable[[], object]) -> int:
    """Run a typer app and map acted-on failures to an exit code with one message (used by `main` and tests)."""
    try:
        entry()
    except OpsError as error:
        stderr.print(f"error: {error}", markup=False)
        return error.exit_code
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    except Exception as error:
        translated = _translated(error)
        if translated is None:
            raise
        stderr.print(f"error: {translated}", markup=False)
        return translated.exit_code
    return 0


def main() -> None:
    """The console script `genai-ops`."""
    sys.exit(run(lambda: app(standalone_mode=True)))


if __name__ == "__main__":
    main()
