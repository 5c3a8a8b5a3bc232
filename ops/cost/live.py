"""Prices and instance sizes from the live AWS APIs.

- On-demand prices, the EKS control plane and Auto Mode fee, NAT gateway hours, Aurora Serverless v2 ACU-hours and
  ElastiCache Serverless from the Price List Query API (`pricing` client, us-east-1 endpoint: the API is served
  from us-east-1, eu-central-1 and ap-south-1 only; Price List API user guide, "price-list-query-api").
- Spot prices from EC2 DescribeSpotPriceHistory, per availability zone: with a start and end time the API also
  returns the last price change before the start, the price in effect at that time (EC2 API reference), so
  StartTime = EndTime = now gives each zone's current price.
- Instance sizes from EC2 DescribeInstanceTypes.

How each charge is found (service code, filters, and the usage type that identifies it):

- EC2 on-demand: AmazonEC2; instanceType, regionCode, operatingSystem Linux, tenancy Shared, preInstalledSw NA,
  capacitystatus Used; usage type `BoxUsage:<type>`, operation RunInstances.
- Auto Mode fee: AmazonEKS; regionCode, operation EKSAutoUsage, instancetype (eksproducttype AutoMode).
- Control plane: AmazonEKS; regionCode, operation CreateOperation; usage type `AmazonEKS-Hours:perCluster`.
- Extended support: AmazonEKS; regionCode, operation ExtendedSupport; `AmazonEKS-Hours:extendedSupport`, billed
  on top of perCluster.
- NAT gateway: AmazonEC2; regionCode, productFamily NAT Gateway; `NatGateway-Hours` (the platform's zonal
  gateways, not `RegionalNatGateway-Hours`).
- Aurora Serverless v2: AmazonRDS; regionCode, productFamily ServerlessV2; `Aurora:ServerlessV2Usage` (standard
  storage, as cdk_constructs/gateway_stores.py creates; not the I/O-Optimized usage type).
- ElastiCache Serverless: AmazonElastiCache; regionCode, usagetype CONTAINS; `CachedData:Valkey` (GB-hours) and
  `ElastiCacheProcessingUnits:Valkey` (ECPUs).

The Auto Mode products (eksproducttype AutoMode, operation EKSAutoUsage, one per instance type) are what
vantage-sh/ec2instances.info reads (scraper/aws/ec2/eks_auto_mode.go); the EKS operations CreateOperation and
ExtendedSupport and their usage types are those billing data shows (`<prefix>-AmazonEKS-Hours:perCluster` at
$0.10 and `<prefix>-AmazonEKS-Hours:extendedSupport` at $0.50 on top: the $0.60 of FACTS.md is their sum). The
ElastiCache Serverless for Valkey usage types are those Cost Explorer reports (`APN2-CachedData:Valkey`,
`APN2-ElastiCacheProcessingUnits:Valkey`), not the `ElastiCache:ServerlessStorage` a published Terraform cost
plugin looks for. Whatever does not match comes back as missing, with the filters in the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ops.cost.capacity import AcceleratorPool, InstanceSpec, ReplicaShape, candidates, spec_from_ec2
from ops.cost.prices import (
    Entry,
    Missing,
    NormalizedUnit,
    Price,
    PriceBook,
    Product,
    keys,
    select_price,
    usage_type_ends_with,
)
from ops.errors import OpsError, aws_error_code

PRICING_REGION = "us-east-1"
SPOT_PRODUCT = "Linux/UNIX"  # Auto Mode nodes run Bottlerocket, billed as Linux
# Errors that mean the caller cannot use the API at all: one message, not a report full of missing prices.
REFUSED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
}


@dataclass(frozen=True)
class Lookup:
    """One GetProducts query and how to pick the price out of its answer."""

    key: str
    what: str
    service: str
    filters: tuple[tuple[str, str, str], ...]  # (type, field, value)
    unit: NormalizedUnit
    wanted: Callable[[Product], bool]

    def request_filters(self) -> list[dict[str, str]]:
        return [{"Type": kind, "Field": name, "Value": value} for kind, name, value in self.filters]

    def describe_filters(self) -> str:
        return ", ".join(f"{name} {'~' if kind == 'CONTAINS' else '='} {value}" for kind, name, value in self.filters)


def _term(name: str, value: str) -> tuple[str, str, str]:
    return ("TERM_MATCH", name, value)


def on_demand_lookup(instance_type: str, region: str) -> Lookup:
    def wanted(product: Product) -> bool:
        return (
            product.attribute("instanceType") == instance_type
            and usage_type_ends_with(f"BoxUsage:{instance_type}")(product)
            and product.attribute("operation") in ("RunInstances", "")
        )

    return Lookup(
        keys.on_demand(instance_type),
        f"EC2 on-demand {instance_type} in {region}",
        "AmazonEC2",
        (
            _term("instanceType", instance_type),
            _term("regionCode", region),
            _term("operatingSystem", "Linux"),
            _term("tenancy", "Shared"),
            _term("preInstalledSw", "NA"),
            _term("capacitystatus", "Used"),
        ),
        "hour",
        wanted,
    )


def auto_mode_fee_lookup(instance_type: str, region: str) -> Lookup:
    return Lookup(
        keys.auto_mode_fee(instance_type),
        f"EKS Auto Mode fee for {instance_type} in {region}",
        "AmazonEKS",
        (_term("regionCode", region), _term("operation", "EKSAutoUsage"), _term("instancetype", instance_type)),
        "hour",
        lambda product: product.attribute("instancetype") == instance_type,
    )


def platform_lookups(region: str, *, gateway: bool) -> list[Lookup]:
    """The charges that do not depend on instance types: control plane, NAT, and the gateway's stores."""
    found = [
        Lookup(
            keys.CONTROL_PLANE,
            f"EKS control plane (standard support) in {region}",
            "AmazonEKS",
            (_term("regionCode", region), _term("operation", "CreateOperation")),
            "hour",
            usage_type_ends_with("AmazonEKS-Hours:perCluster"),
        ),
        Lookup(
            keys.EXTENDED_SUPPORT,
            f"EKS extended support surcharge in {region}",
            "AmazonEKS",
            (_term("regionCode", region), _term("operation", "ExtendedSupport")),
            "hour",
            usage_type_ends_with("AmazonEKS-Hours:extendedSupport"),
        ),
        Lookup(
            keys.NAT_GATEWAY,
            f"NAT gateway hours in {region}",
            "AmazonEC2",
            (_term("regionCode", region), _term("productFamily", "NAT Gateway")),
            "hour",
            usage_type_ends_with("NatGateway-Hours"),
        ),
    ]
    if gateway:

        def aurora_postgres(product: Product) -> bool:
            engine = product.attribute("databaseEngine")
            return usage_type_ends_with("Aurora:ServerlessV2Usage")(product) and engine in ("Aurora PostgreSQL", "")

        found += [
            Lookup(
                keys.AURORA_ACU,
                f"Aurora PostgreSQL Serverless v2 ACU-hours in {region}",
                "AmazonRDS",
                (_term("regionCode", region), _term("productFamily", "ServerlessV2")),
                "ACU-hour",
                aurora_postgres,
            ),
            Lookup(
                keys.CACHE_STORAGE,
                f"ElastiCache Serverless for Valkey data stored in {region}",
                "AmazonElastiCache",
                (_term("regionCode", region), ("CONTAINS", "usagetype", "CachedData:Valkey")),
                "GB-hour",
                usage_type_ends_with("CachedData:Valkey"),
            ),
            Lookup(
                keys.CACHE_ECPU,
                f"ElastiCache Serverless for Valkey ECPUs in {region}",
                "AmazonElastiCache",
                (_term("regionCode", region), ("CONTAINS", "usagetype", "ElastiCacheProcessingUnits:Valkey")),
                "million ECPUs",
                usage_type_ends_with("ElastiCacheProcessingUnits:Valkey"),
            ),
        ]
    return found


def _error_code(error: Exception) -> str:
    return aws_error_code(error) or type(error).__name__


def _refused(error: Exception, action: str) -> OpsError:
    return OpsError(f"{action} was refused ({_error_code(error)}: {error}); the caller needs that permission")


def fetch_prices(pricing: Any, lookups: Iterable[Lookup]) -> dict[str, Entry]:
    """Run each lookup against the Price List API; a failed or unmatched one is recorded as missing."""
    from botocore.exceptions import ClientError

    found: dict[str, Entry] = {}
    paginator = pricing.get_paginator("get_products")
    for lookup in lookups:
        try:
            items: list[str] = []
            for page in paginator.paginate(
                ServiceCode=lookup.service,
                Filters=lookup.request_filters(),
                FormatVersion="aws_v1",
                PaginationConfig={"PageSize": 100},
            ):
                items.extend(page.get("PriceList", []))
        except ClientError as error:
            if _error_code(error) in REFUSED:
                raise _refused(error, "pricing:GetProducts") from None
            found[lookup.key] = Missing(f"{lookup.what}: GetProducts failed ({_error_code(error)}: {error})")
            continue
        entry = select_price(items, what=lookup.what, unit=lookup.unit, wanted=lookup.wanted)
        if isinstance(entry, Missing):
            entry = Missing(f"{entry.reason} [{lookup.service}: {lookup.describe_filters()}]")
        found[lookup.key] = entry
    return found


def fetch_instance_specs(ec2: Any, patterns: Iterable[str]) -> dict[str, InstanceSpec]:
    """Every instance type the region offers that matches `patterns` (`g6.*`, `m7i.large`)."""
    from botocore.exceptions import ClientError

    specs: dict[str, InstanceSpec] = {}
    try:
        for page in ec2.get_paginator("describe_instance_types").paginate(
            Filters=[{"Name": "instance-type", "Values": sorted(set(patterns))}]
        ):
            for info in page.get("InstanceTypes", []):
                spec = spec_from_ec2(info)
                specs[spec.name] = spec
    except ClientError as error:
        if _error_code(error) in REFUSED:
            raise _refused(error, "ec2:DescribeInstanceTypes") from None
        raise OpsError(f"ec2:DescribeInstanceTypes failed ({_error_code(error)}: {error})") from None
    return specs


def fetch_spot(ec2: Any, instance_types: Iterable[str], now: datetime, zones: Iterable[str] = ()) -> dict[str, Entry]:
    """The Spot price in effect now, per instance type and availability zone (only `zones`, when given)."""
    from botocore.exceptions import ClientError

    wanted_types = sorted(set(instance_types))
    only = set(zones)
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    found: dict[str, Entry] = {}
    try:
        for page in ec2.get_paginator("describe_spot_price_history").paginate(
            InstanceTypes=wanted_types, ProductDescriptions=[SPOT_PRODUCT], StartTime=now, EndTime=now
        ):
            for row in page.get("SpotPriceHistory", []):
                key = (str(row["InstanceType"]), str(row["AvailabilityZone"]))
                if only and key[1] not in only:
                    continue
                if key not in latest or row["Timestamp"] > latest[key]["Timestamp"]:
                    latest[key] = row
    except ClientError as error:
        if _error_code(error) in REFUSED:
            raise _refused(error, "ec2:DescribeSpotPriceHistory") from None
        reason = f"DescribeSpotPriceHistory failed ({_error_code(error)}: {error})"
        return {keys.spot(t): Missing(reason) for t in wanted_types}
    for (instance_type, zone), row in sorted(latest.items()):
        found[keys.spot(instance_type, zone)] = Price(
            usd=float(row["SpotPrice"]),
            unit="hour",
            source=(f"EC2 DescribeSpotPriceHistory {SPOT_PRODUCT} {zone}, price set {row['Timestamp'].isoformat()}"),
        )
    for instance_type in wanted_types:
        if not any(t == instance_type for t, _ in latest):
            where = f" in zones {sorted(only)}" if only else ""
            found[keys.spot(instance_type)] = Missing(
                f"DescribeSpotPriceHistory returned no {SPOT_PRODUCT} price for {instance_type}{where}"
            )
    return found


def collect(
    pricing: Any,
    ec2: Any,
    *,
    region: str,
    pool: AcceleratorPool,
    shape: ReplicaShape,
    cpu_instance_type: str | None,
    gateway: bool,
    now: datetime,
    zones: Iterable[str] = (),
) -> tuple[PriceBook, dict[str, InstanceSpec]]:
    """Everything an estimate of this configuration needs, from the live APIs."""
    patterns = [f"{family}.*" for family in pool.families]
    if cpu_instance_type:
        patterns.append(cpu_instance_type)
    specs = fetch_instance_specs(ec2, patterns)
    types = [c.spec.name for c in candidates(pool, shape, specs) if c.spec]
    if cpu_instance_type and cpu_instance_type in specs:
        types.append(cpu_instance_type)
    lookups = [
        *[on_demand_lookup(t, region) for t in types],
        *[auto_mode_fee_lookup(t, region) for t in types],
        *platform_lookups(region, gateway=gateway),
    ]
    entries = fetch_prices(pricing, lookups)
    if types:
        entries.update(fetch_spot(ec2, types, now, zones))
    book = PriceBook(region=region, captured_at=now.isoformat(timespec="seconds"), entries=entries)
    return book, specs
