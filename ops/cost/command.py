"""`genai-ops cost`: what one environment of the platform costs per month, at minimum and maximum scale."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ops.cost.capacity import INSTANCE_TYPE, AcceleratorPool, InstanceSpec, ReplicaShape, family_of
from ops.cost.estimate import CAPACITIES, HOURS_PER_MONTH, NOT_INCLUDED, SCALES, Estimate, Line, Total, estimate
from ops.cost.prices import Missing, Price, PriceBook
from ops.cost.snapshot import load_snapshot, save_snapshot
from ops.cost.tokens import Throughput, TokenCost, cost_per_million, read_throughput
from ops.errors import BadInputError
from platform_config import ConfigError, PlatformConfig, cdk_cli_context, load_config

REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d")
DEFAULT_CPU_INSTANCE_TYPE = "m7i.large"


def aws_clients(region: str) -> tuple[Any, Any]:
    """The Price List client (us-east-1 endpoint) and an EC2 client for `region`."""
    import boto3

    from ops.cost.live import PRICING_REGION

    return boto3.client("pricing", region_name=PRICING_REGION), boto3.client("ec2", region_name=region)


def cost(
    env: Annotated[str, typer.Option("--env", help="Environment of cdk.json to price (as `-c env=` for cdk).")] = "dev",
    context: Annotated[
        list[str] | None,
        typer.Option("--context", "-c", help="KEY=VALUE configuration override, as with `cdk -c` (repeatable)."),
    ] = None,
    cdk_json: Annotated[Path, typer.Option(help="The cdk.json whose context holds the environments.")] = Path(
        "cdk.json"
    ),
    region: Annotated[
        str | None, typer.Option(help="AWS region (default: the config's region, then AWS_REGION).")
    ] = None,
    snapshot: Annotated[
        Path | None, typer.Option(help="Price offline from a file written by --save-snapshot (no AWS calls).")
    ] = None,
    save_snapshot_to: Annotated[
        Path | None, typer.Option("--save-snapshot", help="Write the live prices to this file for offline use.")
    ] = None,
    loadtest: Annotated[
        Path | None,
        typer.Option(help="A `genai-ops loadtest` results.json (or output_tokens + duration_s): cost per 1M tokens."),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(min=1, help="vLLM replicas that served the load test (default: autoscaling.min_replicas)."),
    ] = None,
    instance_type: Annotated[
        str | None,
        typer.Option(help="Accelerator instance type to price vLLM on (default: the cheapest candidate On-Demand)."),
    ] = None,
    cpu_instance_type: Annotated[
        str, typer.Option(help="cpu pool instance type the gateway's share is priced on.")
    ] = DEFAULT_CPU_INSTANCE_TYPE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
) -> None:
    """Monthly cost at minimum and maximum scale, Spot savings, and cost per 1M output tokens.

    Prices come from the AWS Price List API and EC2 Spot price history, or from a saved snapshot.

    A price that is not found is reported as missing, and the total says it is incomplete: nothing is filled in.
    """
    if snapshot and save_snapshot_to:
        raise BadInputError("--snapshot and --save-snapshot exclude each other: a snapshot is saved from live prices")
    if replicas is not None and loadtest is None:
        raise BadInputError(f"--replicas {replicas} applies only with --loadtest (the replicas that served that run)")
    config = load_platform_config(cdk_json, env, context or [])
    validate_instance_types(config, instance_type, cpu_instance_type)
    throughput = read_throughput(loadtest) if loadtest else None
    now = datetime.now(UTC)
    if snapshot:
        book, specs = load_snapshot(snapshot)
        chosen_region = resolve_region(config, region, snapshot_region=book.region)
    else:
        chosen_region = resolve_region(config, region)
        book, specs = live_prices(config, chosen_region, cpu_instance_type, now)
    result = estimate(
        config,
        book,
        specs,
        today=now.date(),
        cpu_instance_type=cpu_instance_type,
        accelerator_instance_type=instance_type,
    )
    if instance_type and result.accelerator_type != instance_type:
        offered = [c.candidate.spec.name for c in result.candidates if c.candidate.spec]
        raise BadInputError(
            f"--instance-type {instance_type} is not a candidate for a vLLM replica ({result.shape.describe()}); "
            f"candidates: {', '.join(offered) or 'none'}"
        )
    token_costs = token_cost_rows(result, throughput, replicas or config.inference.autoscaling.min_replicas)
    if save_snapshot_to:
        save_snapshot(save_snapshot_to, book, specs, f"EC2 DescribeInstanceTypes {book.region} {book.captured_at}")
    document = as_document(result, throughput, replicas, config, token_costs)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        render(Console(highlight=False), result, document, throughput, token_costs, save_snapshot_to)


def load_platform_config(cdk_json: Path, env: str, overrides: list[str]) -> PlatformConfig:
    """The environment's validated config, built as app.py builds it from cdk.json's context."""
    try:
        # cdk.json's context, then cdk.context.json (personal values), as `cdk deploy` reads them.
        json.loads(cdk_json.read_text(encoding="utf-8")).get("context", {})
        context: dict[str, Any] = cdk_cli_context(cdk_json)
    except OSError as error:
        raise BadInputError(f"--cdk-json {cdk_json}: cannot be read ({error.strerror or error})") from None
    except (json.JSONDecodeError, AttributeError):
        raise BadInputError(f"--cdk-json {cdk_json}: not a cdk.json (a JSON object with a context)") from None
    environments = context.get("environments")
    if not isinstance(environments, dict) or env not in environments:
        allowed = ", ".join(sorted(environments)) if isinstance(environments, dict) else "none"
        raise BadInputError(f"--env {env!r} is not an environment in {cdk_json}; allowed: {allowed}")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInputError(f"--context {item!r} is not KEY=VALUE, like inference.autoscaling.min_replicas=2")
        context[key] = value
    context["env"] = env
    try:
        return load_config(context)
    except ConfigError as error:
        raise BadInputError(f"--env {env} with {cdk_json}: {error}") from None


def validate_instance_types(config: PlatformConfig, accelerator: str | None, cpu: str) -> None:
    pool = AcceleratorPool.of(config)
    if accelerator is not None:
        if not INSTANCE_TYPE.fullmatch(accelerator):
            raise BadInputError(f"--instance-type {accelerator!r} is not an EC2 instance type, like g6.xlarge")
        if family_of(accelerator) not in pool.families:
            raise BadInputError(
                f"--instance-type {accelerator} is not in the {pool.name} pool's families "
                f"({', '.join(pool.families)}: inference.node_pools.{pool.name}.instance_families)"
            )
    if not INSTANCE_TYPE.fullmatch(cpu):
        raise BadInputError(f"--cpu-instance-type {cpu!r} is not an EC2 instance type, like m7i.large")
    categories = config.inference.node_pools.cpu.instance_categories
    category = re.match(r"[a-z]+", family_of(cpu))
    if category is None or category.group() not in categories:
        raise BadInputError(
            f"--cpu-instance-type {cpu} is not in the cpu pool's categories ({', '.join(categories)}: "
            "inference.node_pools.cpu.instance_categories)"
        )


def resolve_region(config: PlatformConfig, given: str | None, *, snapshot_region: str | None = None) -> str:
    """--region, else the config's pinned region, else the snapshot's, else AWS_REGION / AWS_DEFAULT_REGION."""
    chosen = (
        given
        or config.region
        or snapshot_region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
    )
    if not chosen:
        raise BadInputError("no region: pass --region (like us-west-2), pin `region` in cdk.json or set AWS_REGION")
    if not REGION.fullmatch(chosen):
        raise BadInputError(f"--region {chosen!r} is not an AWS region name, like us-west-2")
    if config.region and chosen != config.region:
        raise BadInputError(
            f"--region {chosen} differs from the region {config.region} that env {config.env_name} pins"
        )
    if snapshot_region and chosen != snapshot_region:
        raise BadInputError(f"--snapshot holds {snapshot_region} prices; --region {chosen} needs a snapshot of its own")
    return chosen


def live_prices(
    config: PlatformConfig, region: str, cpu_instance_type: str, now: datetime
) -> tuple[PriceBook, dict[str, InstanceSpec]]:
    from ops.cost.live import collect

    pricing, ec2 = aws_clients(region)
    return collect(
        pricing,
        ec2,
        region=region,
        pool=AcceleratorPool.of(config),
        shape=ReplicaShape.of(config),
        cpu_instance_type=cpu_instance_type if config.gateway.enabled else None,
        gateway=config.gateway.enabled,
        now=now,
        zones=config.availability_zones,
    )


def token_cost_rows(result: Estimate, throughput: Throughput | None, replicas: int) -> list[TokenCost]:
    if throughput is None:
        return []
    if result.accelerator_type is None:
        return [TokenCost("vLLM nodes", None, "no accelerator instance type priced")]
    chosen = next(c for c in result.candidates if c.candidate.spec and c.candidate.spec.name == result.accelerator_type)
    per_node = result.replicas_per_node
    return [
        cost_per_million("EC2 On-Demand", throughput, replicas, per_node, [chosen.on_demand]),
        cost_per_million(
            "EC2 On-Demand + Auto Mode fee", throughput, replicas, per_node, [chosen.on_demand, chosen.fee]
        ),
        cost_per_million("EC2 Spot", throughput, replicas, per_node, [chosen.spot]),
        cost_per_million("EC2 Spot + Auto Mode fee", throughput, replicas, per_node, [chosen.spot, chosen.fee]),
    ]


# --- output ----------------------------------------------------------------------------------------------------


def _money(usd: float | None) -> str:
    return "missing" if usd is None else f"${usd:,.2f}"


def _total_text(total: Total) -> str:
    return f"${total.usd:,.2f}" if total.complete else f">= ${total.usd:,.2f} (incomplete)"


def _unit_price(line: Line) -> str:
    return f"${line.price.usd:.6g}/{line.price.unit}" if isinstance(line.price, Price) else "missing"


def _hourly(entry: Price | Missing) -> float | None:
    return entry.usd if isinstance(entry, Price) else None


def _total_json(total: Total) -> dict[str, Any]:
    return {"usd": round(total.usd, 2), "complete": total.complete, "missing": list(total.missing)}


def _line_json(line: Line, capacity: str) -> dict[str, Any]:
    price = line.price
    return {
        "item": line.item,
        "key": line.key,
        "capacity": capacity,
        "quantity": line.quantity,
        "units_per_hour": {"min": line.per_hour_min, "max": line.per_hour_max},
        "unit_price": None
        if isinstance(price, Missing)
        else {"usd": price.usd, "unit": price.unit, "source": price.source},
        "missing": price.reason if isinstance(price, Missing) else None,
        "monthly_usd": {scale: None if (v := line.monthly(scale)) is None else round(v, 2) for scale in SCALES},
    }


def as_document(
    result: Estimate,
    throughput: Throughput | None,
    replicas: int | None,
    config: PlatformConfig,
    token_costs: list[TokenCost],
) -> dict[str, Any]:
    totals = {
        capacity: {scale: _total_json(result.total(capacity, scale)) for scale in SCALES} for capacity in CAPACITIES
    }
    savings = {scale: _total_json(result.spot_savings(scale)) for scale in SCALES}
    missing = result.missing
    return {
        "env": result.env,
        "region": result.region,
        "prices": {"origin": result.prices_origin, "captured_at": result.prices_captured_at},
        "hours_per_month": HOURS_PER_MONTH,
        "control_plane_support": result.support,
        "accelerator": {
            "pool": result.pool.name,
            "families": list(result.pool.families),
            "capacity_types": list(result.pool.capacity_types),
            "replica": result.shape.describe(),
            "instance_type": result.accelerator_type,
            "replicas_per_node": result.replicas_per_node,
            "candidates": [
                {
                    "family": c.candidate.family,
                    "instance_type": c.candidate.spec.name if c.candidate.spec else None,
                    "replicas_per_node": c.candidate.replicas_per_node,
                    "on_demand_usd_per_hour": _hourly(c.on_demand),
                    "spot_usd_per_hour": _hourly(c.spot),
                    "auto_mode_fee_usd_per_hour": _hourly(c.fee),
                    "missing": {
                        name: entry.reason
                        for name, entry in (("on_demand", c.on_demand), ("spot", c.spot), ("fee", c.fee))
                        if isinstance(entry, Missing)
                    },
                }
                for c in result.candidates
            ],
        },
        "lines": [
            *[_line_json(line, "any") for line in result.fixed],
            *[_line_json(line, "on-demand") for line in result.capacity["on-demand"]],
            *[_line_json(line, "spot") for line in result.capacity["spot"]],
        ],
        "monthly_total": totals,
        "spot_savings": savings,
        "complete": not missing,
        "missing": missing,
        "not_included": list(NOT_INCLUDED),
        "notes": result.notes,
        "cost_per_million_output_tokens": None
        if throughput is None
        else {
            "output_tokens": throughput.output_tokens,
            "seconds": throughput.seconds,
            "fields_read": throughput.fields,
            "output_tokens_per_s": round(throughput.tokens_per_second, 3),
            "replicas": replicas or config.inference.autoscaling.min_replicas,
            "replicas_from": "--replicas" if replicas else "inference.autoscaling.min_replicas",
            "instance_type": result.accelerator_type,
            "usd": {t.label: None if t.usd_per_million is None else round(t.usd_per_million, 4) for t in token_costs},
            "missing": {t.label: t.reason for t in token_costs if t.usd_per_million is None},
        },
    }


def render(
    console: Console,
    result: Estimate,
    document: dict[str, Any],
    throughput: Throughput | None,
    token_costs: list[TokenCost],
    saved: Path | None,
) -> None:
    console.print(
        f"[bold]genai-ops cost[/bold]: env {result.env}, region {result.region}, prices {result.prices_origin} "
        f"captured {result.prices_captured_at}; control plane {result.support} support"
    )
    candidates = Table(
        title=f"vLLM on the {result.pool.name} pool ({', '.join(result.pool.capacity_types)}): "
        f"one replica needs {result.shape.describe()}",
        title_justify="left",
    )
    for column in ("family", "instance type", "replicas/node", "On-Demand $/h", "Spot $/h (zone mean)", "fee $/h"):
        candidates.add_column(column, justify="right" if "$" in column or "/" in column else "left")
    for c in result.candidates:
        spec = c.candidate.spec
        name = spec.name if spec else c.candidate.reason
        if spec and spec.name == result.accelerator_type:
            name += " (chosen)"
        candidates.add_row(
            c.candidate.family,
            name,
            str(c.candidate.replicas_per_node or "-"),
            *[f"{v:.4f}" if (v := _hourly(e)) is not None else "missing" for e in (c.on_demand, c.spot, c.fee)],
        )
    console.print(candidates)

    table = Table(title=f"Monthly estimate ({HOURS_PER_MONTH:g} h)", title_justify="left")
    for column in ("item", "units (min -> max)", "unit price", "minimum scale", "maximum scale"):
        table.add_column(column, justify="right" if column.endswith("scale") else "left")
    for line in [*result.fixed, *result.capacity["on-demand"], *result.capacity["spot"]]:
        table.add_row(
            line.item, line.quantity, _unit_price(line), _money(line.monthly("min")), _money(line.monthly("max"))
        )
    table.add_section()
    for capacity in CAPACITIES:
        label = "Total, On-Demand nodes" if capacity == "on-demand" else "Total, Spot nodes"
        table.add_row(f"[bold]{label}[/bold]", "", "", *[_total_text(result.total(capacity, s)) for s in SCALES])
    table.add_row(
        "Spot savings", "", "", _total_text(result.spot_savings("min")), _total_text(result.spot_savings("max"))
    )
    console.print(table)

    if result.missing:
        console.print("[bold red]Incomplete:[/bold red] these prices were not found and are not in the totals:")
        for key, reason in result.missing.items():
            console.print(f"  - {key}: {reason}", soft_wrap=True)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True)
    console.print("Not included: " + "; ".join(NOT_INCLUDED) + ".", soft_wrap=True)

    if throughput is not None:
        tokens = document["cost_per_million_output_tokens"]
        console.print(
            f"\nCost per 1M output tokens: {throughput.output_tokens} tokens in {throughput.seconds:g} s "
            f"({throughput.tokens_per_second:.1f} tok/s, read {throughput.fields}) on {tokens['replicas']} "
            f"replica(s) ({tokens['replicas_from']}) of {result.accelerator_type}"
        )
        for row in token_costs:
            value = f"${row.usd_per_million:.4f}" if row.usd_per_million is not None else f"missing: {row.reason}"
            console.print(f"  {row.label}: {value}")
    if saved:
        console.print(f"\nSaved these prices to {saved} (use with --snapshot).")
