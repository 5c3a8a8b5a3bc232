"""Prices as AWS publishes them, or the reason one is missing; never a figure from anywhere else.

A `PriceBook` maps a key (`ec2.on-demand/g6.xlarge`, `eks.auto-mode-fee/g6.xlarge`, ...) to a `Price` (USD per
normalized unit, with the source it came from) or a `Missing` (why there is none). The estimate reads only from
a PriceBook, so a price that was not found can only be reported, never filled in.

Price List items are JSON strings (botocore's pricing model: `PriceList` is a list of
`SynthesizedJsonPriceListJsonItem` strings); their layout is the one in the GetProducts example of the Price List
API reference (`product.attributes`, `terms.OnDemand.<sku.offerTermCode>.priceDimensions.<rateCode>` with `unit`,
`beginRange`, `description` and `pricePerUnit.USD`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

NormalizedUnit = Literal["hour", "ACU-hour", "GB-hour", "million ECPUs"]

# Raw Price List units (lowercased) accepted for each normalized unit, with the factor that converts a price per
# raw unit into a price per normalized unit. Units the Price List uses for these charges: EC2 "Hrs", EKS "Hours"
# and "hours" (Auto Mode), Aurora Serverless v2 "ACU-Hr" (infracost's Aurora component, unit ACU-Hr). ElastiCache
# Serverless is described as "per GB-hour" and "per million ECPUs" on its pricing page; an ECPU price quoted per
# single ECPU is converted. A unit outside this table is reported as missing rather than guessed at.
UNITS: dict[NormalizedUnit, dict[str, float]] = {
    "hour": {"hrs": 1.0, "hr": 1.0, "hours": 1.0, "hour": 1.0},
    "ACU-hour": {"acu-hr": 1.0, "acu-hrs": 1.0, "acu-hour": 1.0, "acu-hours": 1.0},
    "GB-hour": {"gb-hours": 1.0, "gb-hour": 1.0, "gb-hrs": 1.0, "gb-hr": 1.0},
    "million ECPUs": {"million ecpus": 1.0, "million ecpu": 1.0, "ecpus": 1e6, "ecpu": 1e6},
}


@dataclass(frozen=True)
class Price:
    """USD per `unit`, and where that figure came from (API, product id, publication date)."""

    usd: float
    unit: NormalizedUnit
    source: str
    description: str = ""


@dataclass(frozen=True)
class Missing:
    """No price: the sentence says why (no product matched, ambiguous products, the API refused, ...)."""

    reason: str


Entry = Price | Missing


@dataclass
class PriceBook:
    """Every price an estimate may use, keyed as in `keys`; anything absent is missing."""

    region: str
    captured_at: str  # ISO 8601, UTC
    entries: dict[str, Entry] = field(default_factory=dict)
    origin: str = "live"  # "live" or "snapshot FILE"

    def get(self, key: str) -> Entry:
        entry = self.entries.get(key)
        if entry is None:
            return Missing(f"{key} is not in the {self.origin} prices captured {self.captured_at}")
        return entry

    def spot(self, instance_type: str) -> dict[str, Price] | Missing:
        """The latest Spot price per availability zone, or why there is none."""
        prefix = keys.spot(instance_type, "")
        zones = {
            key.removeprefix(prefix): entry
            for key, entry in self.entries.items()
            if key.startswith(prefix) and isinstance(entry, Price)
        }
        if zones:
            return zones
        marker = self.entries.get(keys.spot(instance_type))
        if isinstance(marker, Missing):
            return marker
        return Missing(f"no Spot price for {instance_type} in the {self.origin} prices captured {self.captured_at}")


class keys:  # noqa: N801 - a namespace of key builders, read as keys.on_demand(...)
    """How prices are named in a PriceBook and in a snapshot file."""

    CONTROL_PLANE = "eks.control-plane/standard"
    EXTENDED_SUPPORT = "eks.control-plane/extended-support-surcharge"
    NAT_GATEWAY = "ec2.nat-gateway/hours"
    AURORA_ACU = "rds.aurora-postgresql-serverless-v2/acu-hours"
    CACHE_STORAGE = "elasticache.serverless-valkey/storage"
    CACHE_ECPU = "elasticache.serverless-valkey/ecpu"

    @staticmethod
    def on_demand(instance_type: str) -> str:
        return f"ec2.on-demand/{instance_type}"

    @staticmethod
    def auto_mode_fee(instance_type: str) -> str:
        return f"eks.auto-mode-fee/{instance_type}"

    @staticmethod
    def spot(instance_type: str, zone: str | None = None) -> str:
        """`ec2.spot/TYPE/ZONE` for a zone's price; `ec2.spot/TYPE` marks a type with no Spot price at all."""
        return f"ec2.spot/{instance_type}" if zone is None else f"ec2.spot/{instance_type}/{zone}"


@dataclass(frozen=True)
class Dimension:
    """One on-demand price dimension of a product."""

    sku: str
    rate_code: str
    unit: str
    usd: float
    begin_range: str
    description: str
    effective_date: str


@dataclass(frozen=True)
class Product:
    """A Price List item: its attributes and its on-demand price dimensions."""

    service: str
    sku: str
    product_family: str
    attributes: dict[str, str]
    publication_date: str
    dimensions: tuple[Dimension, ...]

    def attribute(self, name: str) -> str:
        """An attribute by name, case-insensitively (EC2 writes `instanceType`, EKS `instancetype`)."""
        lowered = name.lower()
        return next((value for key, value in self.attributes.items() if key.lower() == lowered), "")


class PriceListFormatError(ValueError):
    """A Price List item that is not the documented JSON layout."""


def parse_product(item: str | Mapping[str, Any]) -> Product:
    """One GetProducts `PriceList` entry (a JSON string) as a Product."""
    try:
        data = json.loads(item) if isinstance(item, str) else item
        product = data["product"]
        sku = str(product["sku"])
        attributes = {str(k): str(v) for k, v in product.get("attributes", {}).items()}
        dimensions = []
        for term in data.get("terms", {}).get("OnDemand", {}).values():
            for rate_code, dim in term.get("priceDimensions", {}).items():
                usd = dim.get("pricePerUnit", {}).get("USD")
                if usd is None:
                    continue
                dimensions.append(
                    Dimension(
                        sku=sku,
                        rate_code=str(dim.get("rateCode", rate_code)),
                        unit=str(dim.get("unit", "")),
                        usd=float(usd),
                        begin_range=str(dim.get("beginRange", "0")),
                        description=str(dim.get("description", "")),
                        effective_date=str(term.get("effectiveDate", "")),
                    )
                )
        return Product(
            service=str(data.get("serviceCode", attributes.get("servicecode", ""))),
            sku=sku,
            product_family=str(product.get("productFamily", "")),
            attributes=attributes,
            publication_date=str(data.get("publicationDate", "")),
            dimensions=tuple(dimensions),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise PriceListFormatError(f"a Price List item is not in the documented layout ({error!r})") from None


def usage_type_ends_with(suffix: str) -> Callable[[Product], bool]:
    """Usage types carry a region prefix (`USW2-NatGateway-Hours`), except in some regions
    (`NatGateway-Hours` in us-east-1); match the part after it exactly, so `RegionalNatGateway-Hours` is not
    taken for `NatGateway-Hours`."""

    def matches(product: Product) -> bool:
        usage = product.attribute("usagetype")
        return usage == suffix or usage.endswith("-" + suffix)

    return matches


def select_price(
    items: Iterable[str | Mapping[str, Any]],
    *,
    what: str,
    unit: NormalizedUnit,
    wanted: Callable[[Product], bool] = lambda _: True,
) -> Entry:
    """The one on-demand price of the products that are `wanted`, or why there is not exactly one.

    Dimensions priced at $0 ("reserved instance applied" rows of a product's on-demand term) are not prices;
    of tiered dimensions the first tier (beginRange 0) is taken. Several products with different prices are
    ambiguous and reported, never resolved by picking one.
    """
    try:
        products = [parse_product(item) for item in items]
    except PriceListFormatError as error:
        return Missing(f"{what}: {error}")
    matching = [p for p in products if wanted(p)]
    if not matching:
        seen = sorted({p.attribute("usagetype") for p in products if p.attribute("usagetype")})
        hint = f" (usage types seen: {', '.join(seen[:6])})" if seen else ""
        return Missing(f"{what}: no product in the Price List matched{hint}")
    accepted = UNITS[unit]
    candidates = [
        (product, dim)
        for product in matching
        for dim in product.dimensions
        if dim.usd > 0 and dim.begin_range in ("0", "0.0", "")
    ]
    if not candidates:
        units = sorted({d.unit for p in matching for d in p.dimensions})
        return Missing(f"{what}: the matching products have no non-zero on-demand price (units {units})")
    known = [(p, d) for p, d in candidates if d.unit.strip().lower() in accepted]
    if not known:
        units = sorted({d.unit for _, d in candidates})
        return Missing(f"{what}: priced in {units}, not a unit this tool converts to USD per {unit}")
    prices = {round(d.usd * accepted[d.unit.strip().lower()], 12) for _, d in known}
    if len(prices) > 1:
        listed = "; ".join(f"sku {p.sku} ${d.usd} per {d.unit}" for p, d in known[:4])
        return Missing(f"{what}: {len(known)} products match with different prices ({listed}); not picking one")
    product, dim = known[0]
    return Price(
        usd=prices.pop(),
        unit=unit,
        source=(
            f"AWS Price List API GetProducts {product.service or 'service'} sku {product.sku} rate {dim.rate_code}"
            f" (published {product.publication_date or 'date not given'})"
        ),
        description=dim.description,
    )
