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

from ops.errors import OpsError

app = typer.Typer(
    name="genai-ops",
    help="Operate the GenAI inference platform (see each command's --help).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

stderr = Console(stderr=True, highlight=False)


@app.callback()
def _group() -> None:
    """Operate the GenAI inference platform. Every command has --help; none changes anything without --yes."""


@app.command()
def version() -> None:
    """Print the toolkit's version (the project's, from pyproject.toml)."""
    from importlib.metadata import version as installed_version

    Console(highlight=False).print(installed_version("eks-genai-platform"))


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
        stderr.print(f"error: {error}")
        return error.exit_code
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    except Exception as error:
        translated = _translated(error)
        if translated is None:
            raise
        stderr.print(f"error: {translated}")
        return translated.exit_code
    return 0


def main() -> None:
    """The console script `genai-ops`."""
    sys.exit(run(lambda: app(standalone_mode=True)))


if __name__ == "__main__":
    main()
