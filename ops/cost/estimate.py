"""The monthly arithmetic: quantities from the configuration, unit prices from a PriceBook.

Every line is `unit price x units per hour x 730 hours` (the month of the AWS Pricing Calculator, 730 hours), at
the configuration's minimum scale (vLLM and gateway `min_replicas`, Aurora `database_min_acu`, the cache's
storage floor) and maximum scale (`max_replicas`, `database_max_acu`, the cache's storage and ECPU caps). A line
whose price is missing adds nothing and makes its total incomplete; the total then says so and names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from statistics import mean
from typing import Literal

from ops.cost.capacity import (
    AcceleratorPool,
    Candidate,
    InstanceSpec,
    ReplicaShape,
    candidates,
    gateway_share,
    nodes_for,
)
from ops.cost.prices import Entry, Missing, Price, PriceBook, keys
from platform_config import PlatformConfig
from platform_config.model import KUBERNETES_STANDARD_SUPPORT_ENDS

HOURS_PER_MONTH = 730.0
# ElastiCache Serverless for Valkey bills at least 100 MB of data stored (ElastiCache pricing page).
CACHE_MINIMUM_STORAGE_GB = 0.1
SECONDS_PER_HOUR = 3600

Capacity = Literal["on-demand", "spot"]
Scale = Literal["min", "max"]
CAPACITIES: tuple[Capacity, ...] = ("on-demand", "spot")
SCALES: tuple[Scale, ...] = ("min", "max")

# What the estimate leaves out, so a reader does not take the total for the whole bill.
NOT_INCLUDED = (
    "nodes for add-ons, KEDA, Prometheus and other system pods",
    "EBS volumes (node data volumes, Prometheus)",
    "interface endpoints, load balancer, data transfer and NAT per-GB processing",
    "Aurora storage and I/O, ElastiCache ECPUs at minimum scale (billed per use)",
    "KMS keys, Secrets Manager, CloudWatch logs and metrics, Managed Prometheus samples",
    "self-hosted LangFuse (tracing stack), when enabled",
)


@dataclass(frozen=True)
class Line:
    """A charge: its unit price (or why it is missing) and the units it bills per hour at each scale."""

    item: str
    key: str
    price: Entry
    per_hour_min: float
    per_hour_max: float
    quantity: str  # how the units were counted, for the reader

    def monthly(self, scale: Scale) -> float | None:
        if not isinstance(self.price, Price):
            return None
        units = self.per_hour_min if scale == "min" else self.per_hour_max
        return self.price.usd * units * HOURS_PER_MONTH


@dataclass(frozen=True)
class Total:
    """A sum of lines; `missing` names the lines whose price was not found (then `usd` is a lower bound)."""

    usd: float
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def total(lines: Iterable[Line], scale: Scale) -> Total:
    usd = 0.0
    missing = []
    for line in lines:
        monthly = line.monthly(scale)
        if monthly is None:
            units = line.per_hour_min if scale == "min" else line.per_hour_max
            if units > 0:
                missing.append(line.item)
        else:
            usd += monthly
    return Total(usd, tuple(missing))


@dataclass(frozen=True)
class CandidatePrices:
    """A pool family's candidate type with its prices."""

    candidate: Candidate
    on_demand: Entry
    spot: Entry
    fee: Entry


@dataclass
class Estimate:
    env: str
    region: str
    prices_captured_at: str
    prices_origin: str
    support: Literal["standard", "extended"]
    pool: AcceleratorPool
    shape: ReplicaShape
    candidates: list[CandidatePrices]
    accelerator_type: str | None
    replicas_per_node: int
    cpu_instance_type: str | None
    fixed: list[Line] = field(default_factory=list)
    capacity: dict[Capacity, list[Line]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self, capacity: Capacity) -> list[Line]:
        return [*self.fixed, *self.capacity[capacity]]

    def total(self, capacity: Capacity, scale: Scale) -> Total:
        return total(self.lines(capacity), scale)

    def spot_savings(self, scale: Scale) -> Total:
        """On-Demand minus Spot for the lines that differ (the nodes); incomplete when either side is."""
        on_demand = total(self.capacity["on-demand"], scale)
        spot = total(self.capacity["spot"], scale)
        return Total(on_demand.usd - spot.usd, on_demand.missing + spot.missing)

    @property
    def missing(self) -> dict[str, str]:
        """Every missing price a line needs, by key, with its reason."""
        found = {}
        for line in [*self.fixed, *self.capacity["on-demand"], *self.capacity["spot"]]:
            if isinstance(line.price, Missing) and (line.per_hour_min > 0 or line.per_hour_max > 0):
                found[line.key] = line.price.reason
        return found


def support_tier(config: PlatformConfig, today: date) -> Literal["standard", "extended"]:
    """Extended support once the version's standard support has ended (platform_config KUBERNETES_...)."""
    ends = date.fromisoformat(KUBERNETES_STANDARD_SUPPORT_ENDS[config.cluster.kubernetes_version])
    return "extended" if ends < today else "standard"


def mean_spot(book: PriceBook, instance_type: str) -> Entry:
    """The Spot price used for an instance type: the mean of its zones' current prices."""
    zones = book.spot(instance_type)
    if isinstance(zones, Missing):
        return zones
    listed = ", ".join(f"{zone} ${price.usd:.4f}" for zone, price in sorted(zones.items()))
    sources = "; ".join(sorted({p.source.split(",")[0] for p in zones.values()}))
    return Price(
        usd=mean(p.usd for p in zones.values()),
        unit="hour",
        source=f"mean of {len(zones)} zone(s): {listed} ({sources})",
    )


def _priced(entry: Entry) -> float | None:
    return entry.usd if isinstance(entry, Price) else None


def choose_accelerator(
    priced: Sequence[CandidatePrices], requested: str | None
) -> tuple[CandidatePrices | None, list[str]]:
    """The requested candidate, or the one with the lowest on-demand price (what Auto Mode launches
    On-Demand for a pending replica); notes say when the choice rests on incomplete prices."""
    notes: list[str] = []
    usable = [c for c in priced if c.candidate.spec is not None]
    if requested:
        chosen = next((c for c in usable if c.candidate.spec and c.candidate.spec.name == requested), None)
        return chosen, [f"vLLM priced on {requested}, chosen with --instance-type"] if chosen else []
    with_price = [c for c in usable if _priced(c.on_demand) is not None]
    if not usable:
        return None, ["no instance type of the pool's families holds a replica: no accelerator nodes priced"]
    if not with_price:
        return usable[0], [f"no on-demand price for any candidate; showing {usable[0].candidate.family} unpriced"]
    chosen = min(with_price, key=lambda c: (_priced(c.on_demand) or 0.0) / c.candidate.replicas_per_node)
    if len(with_price) < len(usable):
        unpriced = [c.candidate.family for c in usable if c not in with_price]
        notes.append(f"cheapest of the priced candidates; no on-demand price for {', '.join(unpriced)}")
    return chosen, notes


def estimate(
    config: PlatformConfig,
    book: PriceBook,
    specs: dict[str, InstanceSpec],
    *,
    today: date,
    cpu_instance_type: str,
    accelerator_instance_type: str | None = None,
) -> Estimate:
    pool = AcceleratorPool.of(config)
    shape = ReplicaShape.of(config)
    priced = [
        CandidatePrices(
            c,
            book.get(keys.on_demand(c.spec.name)) if c.spec else Missing(c.reason),
            mean_spot(book, c.spec.name) if c.spec else Missing(c.reason),
            book.get(keys.auto_mode_fee(c.spec.name)) if c.spec else Missing(c.reason),
        )
        for c in candidates(pool, shape, specs)
    ]
    chosen, notes = choose_accelerator(priced, accelerator_instance_type)
    result = Estimate(
        env=config.env_name,
        region=book.region,
        prices_captured_at=book.captured_at,
        prices_origin=book.origin,
        support=support_tier(config, today),
        pool=pool,
        shape=shape,
        candidates=priced,
        accelerator_type=chosen.candidate.spec.name if chosen and chosen.candidate.spec else None,
        replicas_per_node=chosen.candidate.replicas_per_node if chosen else 0,
        cpu_instance_type=cpu_instance_type if config.gateway.enabled else None,
        notes=notes,
    )
    result.fixed = _platform_lines(config, book, result.support)
    result.capacity = {"on-demand": [], "spot": []}
    if chosen and chosen.candidate.spec:
        _accelerator_lines(config, result, chosen)
    if config.gateway.enabled:
        _gateway_lines(config, book, result, specs.get(cpu_instance_type), cpu_instance_type)
    if not pool.allows_spot:
        result.notes.append(
            f"inference.node_pools.{pool.name}.capacity_types is {list(pool.capacity_types)}: Spot figures show "
            "what Spot would cost, not what this configuration runs"
        )
    return result


def _platform_lines(config: PlatformConfig, book: PriceBook, support: str) -> list[Line]:
    lines = [Line("EKS control plane", keys.CONTROL_PLANE, book.get(keys.CONTROL_PLANE), 1, 1, "1 cluster")]
    if support == "extended":
        lines.append(
            Line(
                f"EKS extended support (Kubernetes {config.cluster.kubernetes_version})",
                keys.EXTENDED_SUPPORT,
                book.get(keys.EXTENDED_SUPPORT),
                1,
                1,
                "1 cluster, added to the standard rate",
            )
        )
    # An existing VPC (vpc.vpc_id) brings its own egress: the platform creates no NAT gateway in it.
    nat = 0 if config.vpc.vpc_id else config.vpc.nat_gateways
    lines.append(Line("NAT gateways", keys.NAT_GATEWAY, book.get(keys.NAT_GATEWAY), nat, nat, f"{nat} gateway(s)"))
    if config.gateway.enabled:
        stores = config.gateway.stores
        # A production cluster has a reader that scales with the writer (cdk_constructs/gateway_stores.py).
        instances = 2 if config.production else 1
        lines.append(
            Line(
                "Aurora Serverless v2",
                keys.AURORA_ACU,
                book.get(keys.AURORA_ACU),
                stores.database_min_acu * instances,
                stores.database_max_acu * instances,
                f"{instances} instance(s) x {stores.database_min_acu:g} -> {stores.database_max_acu:g} ACU",
            )
        )
        lines.append(
            Line(
                "ElastiCache Serverless data stored",
                keys.CACHE_STORAGE,
                book.get(keys.CACHE_STORAGE),
                CACHE_MINIMUM_STORAGE_GB,
                float(stores.cache_max_storage_gb),
                f"{CACHE_MINIMUM_STORAGE_GB:g} GB (billed minimum) -> {stores.cache_max_storage_gb} GB (cap)",
            )
        )
        lines.append(
            Line(
                "ElastiCache Serverless ECPUs",
                keys.CACHE_ECPU,
                book.get(keys.CACHE_ECPU),
                0.0,
                stores.cache_max_ecpu_per_second * SECONDS_PER_HOUR / 1e6,
                f"0 -> {stores.cache_max_ecpu_per_second} ECPU/s (cap, sustained)",
            )
        )
    return lines


def _accelerator_lines(config: PlatformConfig, result: Estimate, chosen: CandidatePrices) -> None:
    spec = chosen.candidate.spec
    assert spec is not None
    autoscaling = config.inference.autoscaling
    per_node = chosen.candidate.replicas_per_node
    low, high = nodes_for(autoscaling.min_replicas, per_node), nodes_for(autoscaling.max_replicas, per_node)
    counted = f"{autoscaling.min_replicas} -> {autoscaling.max_replicas} replicas, {low} -> {high} node(s)"
    for capacity in CAPACITIES:
        price = chosen.on_demand if capacity == "on-demand" else chosen.spot
        label = "On-Demand" if capacity == "on-demand" else "Spot"
        key = keys.on_demand(spec.name) if capacity == "on-demand" else keys.spot(spec.name)
        result.capacity[capacity].append(Line(f"vLLM nodes, {spec.name} ({label})", key, price, low, high, counted))
    # The Auto Mode fee is one price per instance type whatever the capacity type: charged at the On-Demand rate
    # on Spot nodes too (issue 11; the Price List has one AutoMode product per instance type and no purchase
    # option attribute on it).
    result.fixed.append(
        Line(f"Auto Mode fee, vLLM nodes ({spec.name})", keys.auto_mode_fee(spec.name), chosen.fee, low, high, counted)
    )


def _gateway_lines(
    config: PlatformConfig, book: PriceBook, result: Estimate, spec: InstanceSpec | None, cpu_type: str
) -> None:
    autoscaling = config.gateway.autoscaling
    if spec is None:
        reason = Missing(f"no size for {cpu_type}: DescribeInstanceTypes did not return it in {book.region}")
        prices: dict[str, Entry] = {"on-demand": reason, "spot": reason, "fee": reason}
        per_replica = 1.0  # a placeholder quantity: the price is missing, so the line adds nothing
        counted = f"{autoscaling.min_replicas} -> {autoscaling.max_replicas} replicas, share of a node unknown"
    else:
        # The larger of the vCPU and memory shares of a node a replica requests.
        per_replica = gateway_share(spec)
        counted = f"{autoscaling.min_replicas} -> {autoscaling.max_replicas} replicas x {per_replica:.2f} node"
        prices = {
            "on-demand": book.get(keys.on_demand(cpu_type)),
            "spot": mean_spot(book, cpu_type),
            "fee": book.get(keys.auto_mode_fee(cpu_type)),
        }
    low, high = autoscaling.min_replicas * per_replica, autoscaling.max_replicas * per_replica
    for capacity in CAPACITIES:
        label = "On-Demand" if capacity == "on-demand" else "Spot"
        key = keys.on_demand(cpu_type) if capacity == "on-demand" else keys.spot(cpu_type)
        result.capacity[capacity].append(
            Line(f"LiteLLM share of {cpu_type} ({label})", key, prices[capacity], low, high, counted)
        )
    result.fixed.append(
        Line(
            f"Auto Mode fee, LiteLLM share ({cpu_type})",
            keys.auto_mode_fee(cpu_type),
            prices["fee"],
            low,
            high,
            counted,
        )
    )
    if "spot" not in config.inference.node_pools.cpu.capacity_types:
        result.notes.append("the cpu pool is On-Demand only: the gateway's Spot line shows what Spot would cost")
