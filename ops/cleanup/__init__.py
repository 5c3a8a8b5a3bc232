"""`genai-ops cleanup`: find what `cdk destroy` leaves behind, and delete it only with `--yes`.

leftovers.py says what counts as the platform's (project/environment tags on what the platform's stacks retained,
Auto Mode's cluster tag) and finds it;
deletion.py deletes it in a safe order. Kubernetes Secrets that Helm keeps after an uninstall
(`helm.sh/resource-policy: keep`) live in the cluster and go with it; in AWS the secrets that stay are the retained
Secrets Manager ones, handled here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import boto3
import typer
from botocore.exceptions import ClientError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ops.cleanup.deletion import WAITING_DAYS, Deleter, DeletionSettings
from ops.cleanup.leftovers import (
    DELETION_ORDER_NOTE,
    Kept,
    Kind,
    Leftover,
    PlatformScope,
    find_leftovers,
)
from ops.errors import BadInputError, OpsError, aws_error_message
from platform_config import ConfigError, PlatformConfig, cdk_cli_context, load_config

__all__ = ["DeletionSettings", "PlatformScope", "cleanup", "run_cleanup"]

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


def load_platform_config(env: str, cdk_json: Path) -> PlatformConfig:
    """The environment's config as `cdk deploy -c env=ENV` builds it: cdk.json's context plus cdk.context.json."""
    if not cdk_json.is_file():
        raise BadInputError(
            f"--cdk-json {cdk_json} is not a file: run from the project's root or pass the path to its cdk.json"
        )
    # cdk.json's context, then cdk.context.json (the README keeps personal values there), as the CDK CLI reads them.
    context = cdk_cli_context(cdk_json)
    environments = sorted(context.get("environments") or {})
    if env not in environments:
        raise BadInputError(f"--env {env!r} is not an environment in {cdk_json}; allowed: {', '.join(environments)}")
    try:
        return load_config({**context, "env": env})
    except ConfigError as error:
        raise BadInputError(f"--env {env}: the configuration in {cdk_json} is invalid: {error}") from None


def resolve_region(region: str | None, config: PlatformConfig) -> str:
    """--region, else the region the environment is pinned to, else the AWS profile's or environment's region."""
    if region is not None and not _REGION.fullmatch(region):
        raise BadInputError(f"--region {region!r} is not an AWS region name: give one like us-west-2")
    if region and config.region and region != config.region:
        raise BadInputError(
            f"--region {region} differs from the region env {config.env_name} is pinned to ({config.region}) "
            "in cdk.json: leave --region out or give that region"
        )
    chosen = region or config.region or boto3.Session().region_name
    if not chosen:
        raise BadInputError(
            "--region is missing: give the region the platform was deployed to (or set AWS_REGION); no region is "
            f"pinned for env {config.env_name} in cdk.json and the AWS configuration names none"
        )
    return str(chosen)


def _days(option: str, value: int) -> int:
    if value not in WAITING_DAYS:
        raise BadInputError(f"{option} {value} is not allowed: AWS accepts 7 to 30 days")
    return value


def cleanup(
    env: Annotated[str, typer.Option(help="The environment to clean up (a name in cdk.json, e.g. dev, prod).")],
    region: Annotated[
        str | None, typer.Option(help="Region it was deployed to (default: pinned in cdk.json, else AWS_REGION).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Delete what is listed. Without it nothing is deleted.")] = False,
    key_pending_days: Annotated[
        int, typer.Option(help="Waiting period before KMS deletes a key (7-30 days; cancel-key-deletion undoes it).")
    ] = 30,
    secret_recovery_days: Annotated[
        int, typer.Option(help="Recovery window of deleted secrets (7-30 days; restore-secret undoes it).")
    ] = 7,
    cdk_json: Annotated[Path, typer.Option(help="The project's cdk.json (names, tags, environments).")] = Path(
        "cdk.json"
    ),
) -> None:
    """List what `cdk destroy` left behind (only resources tagged as this platform's); delete it with --yes."""
    settings = DeletionSettings(
        key_pending_days=_days("--key-pending-days", key_pending_days),
        secret_recovery_days=_days("--secret-recovery-days", secret_recovery_days),
    )
    config = load_platform_config(env, cdk_json)
    scope = PlatformScope.of(config, resolve_region(region, config))
    console = Console(highlight=False, emoji=False)
    run_cleanup(boto3.Session(region_name=scope.region), scope, settings, yes=yes, console=console)


def run_cleanup(
    session: boto3.Session, scope: PlatformScope, settings: DeletionSettings, *, yes: bool, console: Console
) -> None:
    """Find, show, and (with `yes`) delete; raises OpsError when any deletion failed."""
    findings = find_leftovers(session, scope)
    if findings.kept:
        console.print(_kept_table(findings.kept))
    for note in findings.notes:
        console.print(Text(f"note: {note}"))
    if not findings.leftovers:
        console.print(
            f"Nothing left behind: no resource tagged as {scope.cluster}'s ({scope.project_tags} or "
            f"{scope.cluster_tag}) remains in {scope.region}."
        )
        return
    console.print(_plan_table(findings.leftovers, scope, settings))
    if not yes:
        console.print(
            f"Dry run: nothing was deleted. `--yes` deletes these {len(findings.leftovers)} resources in this order "
            f"({DELETION_ORDER_NOTE})."
        )
        return

    groups = [leftover.id for leftover in findings.leftovers if leftover.kind is Kind.SECURITY_GROUP]
    deleter = Deleter(session, settings, security_groups=groups)
    failures: list[str] = []
    for step, leftover in enumerate(findings.leftovers, start=1):
        # Each step is reported as it ends; a failure is recorded and the rest go on.
        what = escape(f"[{step}/{len(findings.leftovers)}] {leftover.kind.value} {leftover.label}")
        with console.status(f"{what}: deleting"):
            try:
                done = deleter.delete(leftover)
            except ClientError as error:
                failures.append(f"{leftover.kind.value} {leftover.id} ({aws_error_message(error)})")
                console.print(f"{what}: [bold red]FAILED[/] {escape(aws_error_message(error))}")
                continue
        console.print(f"{what}: {escape(done)}")
    if failures:
        raise OpsError(
            f"{len(failures)} of {len(findings.leftovers)} deletions failed: {'; '.join(failures)}. The others went "
            f"through; fix the cause and run `genai-ops cleanup --env {scope.environment} --yes` again (it finds only "
            "what is left)"
        )
    console.print(f"Done: {len(findings.leftovers)} resources deleted or scheduled for deletion.")


def _plan_table(leftovers: list[Leftover], scope: PlatformScope, settings: DeletionSettings) -> Table:
    table = Table(title=f"Left behind by {scope.cluster} in {scope.region}, in deletion order", title_justify="left")
    table.add_column("#", justify="right")
    for column in ("kind", "resource", "what --yes does"):
        table.add_column(column, overflow="fold")
    table.add_column("why it is the platform's", overflow="fold")
    actions = {
        Kind.KEY: f"schedule deletion in {settings.key_pending_days} days",
        Kind.SECRET: f"delete, {settings.secret_recovery_days}-day recovery window",
        Kind.BUCKET: "empty (every version), delete",
    }
    for step, leftover in enumerate(leftovers, start=1):
        action = "; ".join(part for part in (actions.get(leftover.kind, "delete"), leftover.detail) if part)
        cells = (str(step), leftover.kind.value, leftover.label, action, leftover.marked_by)
        table.add_row(*(Text(cell) for cell in cells))
    return table


def _kept_table(kept: list[Kept]) -> Table:
    table = Table(title="Tagged as the platform's but kept", title_justify="left")
    table.add_column("kind")
    table.add_column("resource", overflow="fold")
    table.add_column("why it stays")
    for item in kept:
        table.add_row(*(Text(cell) for cell in (item.kind, item.resource, item.reason)))
    return table
