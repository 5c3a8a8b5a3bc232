"""`genai-ops cost`: prices from the Price List API and Spot history (botocore Stubber), the monthly arithmetic
against figures written here, missing prices reported and never filled, the offline snapshot, bad input.

Prices written in this file and where they come from:
- FACTS.md "Capacity and cost" (us-west-2 On-Demand): g6.xlarge $0.8048/h, g5.xlarge $1.006/h,
  g6e.xlarge $1.861/h; control plane $0.10/h standard, $0.60/h extended; an L4 at 513 output tok/s, so
  0.8048 / (513 x 3600) x 1e6 = ~$0.44 per 1M output tokens.
- README "Cost at rest" (us-west-2 list prices): NAT gateway $0.045/h, Aurora Serverless v2 $0.12 per ACU-hour.
- The extended-support surcharge is the Price List's `AmazonEKS-Hours:extendedSupport` at $0.50/h, billed on top
  of the $0.10 `perCluster` hour (FACTS.md's $0.60 is their sum; see ops/cost/live.py).
- TEST INPUTS, not published prices (no checked source gives them): the Auto Mode fees, m7i.large On-Demand, every
  Spot price and the ElastiCache Serverless rates below. They only have to be distinct, so a wrong line shows.

Price List items are JSON strings laid out as in the GetProducts example of botocore's pricing model
(data/pricing/2017-10-15/examples-1.json, the API reference's example). DescribeInstanceTypes answers are the EC2
API's own, as recorded in moto 5.2.6 (moto/ec2/resources/instance_types.json.gz).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.stub import ANY, Stubber

from ops.cli import app, run
from ops.cost import command
from ops.cost.capacity import (
    GATEWAY_CPU_REQUEST,
    GATEWAY_MEMORY_REQUEST_GIB,
    AcceleratorPool,
    InstanceSpec,
    ReplicaShape,
    candidates,
)
from ops.cost.estimate import estimate
from ops.cost.live import collect
from ops.cost.prices import Missing, Price, PriceBook, keys, select_price
from tests.conftest import PROJECT_CDK_JSON, config_for, gateway_chart_documents

REGION = "us-west-2"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
CDK_JSON = PROJECT_CDK_JSON

# FACTS.md "Capacity and cost".
G6_XLARGE = 0.8048
G5_XLARGE = 1.006
G6E_XLARGE = 1.861
CONTROL_PLANE = 0.10
EXTENDED_SURCHARGE = 0.50
# README "Cost at rest".
NAT_HOUR = 0.045
ACU_HOUR = 0.12
# Test inputs (see the module docstring).
FEE = {"g6.xlarge": 0.09658, "g6e.xlarge": 0.22332, "g5.xlarge": 0.12072, "m7i.large": 0.012096}
M7I_LARGE = 0.1008
CACHE_GB_HOUR = 0.084
ECPU_PER_ECPU = 0.0000000023  # quoted per ECPU: $0.0023 per million
SPOT = {
    "g6.xlarge": {"us-west-2a": 0.3012, "us-west-2b": 0.3220},
    "g6e.xlarge": {"us-west-2a": 0.9001},
    "g5.xlarge": {"us-west-2a": 0.4400, "us-west-2c": 0.4600},
    "m7i.large": {"us-west-2a": 0.0402, "us-west-2b": 0.0398},
}


# --- Price List items in the API's layout ------------------------------------------------------------------------


def price_item(
    service: str, sku: str, family: str, attributes: dict[str, str], usd: float, unit: str, description: str
) -> str:
    term = f"{sku}.JRTCKXETXF"
    rate = f"{term}.6YS6EN2CT7"
    return json.dumps(
        {
            "product": {
                "productFamily": family,
                "attributes": {
                    "servicecode": service,
                    "regionCode": REGION,
                    "location": "US West (Oregon)",
                    **attributes,
                },
                "sku": sku,
            },
            "serviceCode": service,
            "terms": {
                "OnDemand": {
                    term: {
                        "priceDimensions": {
                            rate: {
                                "unit": unit,
                                "endRange": "Inf",
                                "description": description,
                                "appliesTo": [],
                                "rateCode": rate,
                                "beginRange": "0",
                                "pricePerUnit": {"USD": f"{usd:.10f}"},
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2026-10-01T00:00:00Z",
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": {},
                    }
                }
            },
            "version": "20261001000000",
            "publicationDate": "2026-10-01T00:00:00Z",
        }
    )


def ec2_item(instance_type: str, usd: float) -> str:
    return price_item(
        "AmazonEC2",
        f"SKU{instance_type.upper().replace('.', '')}",
        "Compute Instance",
        {
            "instanceType": instance_type,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "licenseModel": "No License required",
            "marketoption": "OnDemand",
            "operation": "RunInstances",
            "usagetype": f"USW2-BoxUsage:{instance_type}",
        },
        usd,
        "Hrs",
        f"${usd} per On Demand Linux {instance_type} Instance Hour",
    )


def fee_item(instance_type: str, usd: float) -> str:
    return price_item(
        "AmazonEKS",
        f"FEE{instance_type.upper().replace('.', '')}",
        "Compute",
        {"eksproducttype": "AutoMode", "instancetype": instance_type, "operation": "EKSAutoUsage"},
        usd,
        "hours",
        f"EKS Auto Mode management fee for {instance_type}",
    )


def eks_item(sku: str, operation: str, usage: str, usd: float) -> str:
    return price_item(
        "AmazonEKS", sku, "Compute", {"operation": operation, "usagetype": usage}, usd, "Hrs", f"{usage} per hour"
    )


def nat_items() -> list[str]:
    """The zonal gateway hour, and what shares its product family: the Regional NAT gateway and data processed."""
    return [
        price_item(
            "AmazonEC2",
            "NATHOURS",
            "NAT Gateway",
            {"usagetype": "USW2-NatGateway-Hours", "operation": "NatGateway", "group": "NGW:NatGateway"},
            NAT_HOUR,
            "Hrs",
            "$0.045 per NAT Gateway Hour",
        ),
        price_item(
            "AmazonEC2",
            "NATREGIONAL",
            "NAT Gateway",
            {"usagetype": "USW2-RegionalNatGateway-Hours", "operation": "RegionalNatGateway"},
            0.06,
            "Hrs",
            "Regional NAT Gateway hour",
        ),
        price_item(
            "AmazonEC2",
            "NATBYTES",
            "NAT Gateway",
            {"usagetype": "USW2-NatGateway-Bytes", "operation": "NatGateway"},
            0.045,
            "GB",
            "$0.045 per GB Data Processed by NAT Gateways",
        ),
    ]


def aurora_items() -> list[str]:
    """Standard-storage PostgreSQL ACU-hours, beside the I/O-Optimized and MySQL products of the same family."""

    def item(sku: str, engine: str, usage: str, usd: float) -> str:
        return price_item(
            "AmazonRDS",
            sku,
            "ServerlessV2",
            {"databaseEngine": engine, "usagetype": usage},
            usd,
            "ACU-Hr",
            f"{engine} {usage}",
        )

    return [
        item("AURORAPG", "Aurora PostgreSQL", "USW2-Aurora:ServerlessV2Usage", ACU_HOUR),
        item("AURORAPGIO", "Aurora PostgreSQL", "USW2-Aurora:ServerlessV2IOOptimizedUsage", 0.156),
        item("AURORAMYSQL", "Aurora MySQL", "USW2-Aurora:ServerlessV2Usage", 0.13),
    ]


def cache_item(sku: str, usage: str, usd: float, unit: str) -> str:
    return price_item(
        "AmazonElastiCache",
        sku,
        "ElastiCache Serverless",
        {"usagetype": usage, "cacheEngine": "Valkey"},
        usd,
        unit,
        f"ElastiCache Serverless for Valkey {usage}",
    )


# --- the stubbed APIs ----------------------------------------------------------------------------------------


def recorded_instance_types(families: tuple[str, ...], extra: tuple[str, ...]) -> list[dict[str, Any]]:
    """DescribeInstanceTypes entries as the EC2 API returns them (moto's recording of the real answers)."""
    path = Path(moto.__file__).parent / "ec2/resources/instance_types.json.gz"
    recorded: dict[str, dict[str, Any]] = json.loads(gzip.decompress(path.read_bytes()))
    return [info for name, info in sorted(recorded.items()) if name.split(".")[0] in families or name in extra]


GPU_TYPES = ["g6.xlarge", "g6e.xlarge", "g5.xlarge"]  # each family's smallest size holding a replica
PRICED_TYPES = [*GPU_TYPES, "m7i.large"]
ON_DEMAND = {"g6.xlarge": G6_XLARGE, "g6e.xlarge": G6E_XLARGE, "g5.xlarge": G5_XLARGE, "m7i.large": M7I_LARGE}


def pricing_request(service: str, *filters: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "ServiceCode": service,
        "Filters": [{"Type": kind, "Field": name, "Value": value} for kind, name, value in filters],
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
    }


def term(name: str, value: str) -> tuple[str, str, str]:
    return ("TERM_MATCH", name, value)


def stub_pricing(stubber: Stubber, *, without: frozenset[str] = frozenset(), gateway: bool = True) -> None:
    """The GetProducts calls in the order ops/cost/live.py makes them, each with the filters it must send;
    a key in `without` gets an empty answer (no product in the Price List)."""

    def answer(key: str, items: list[str], request: dict[str, Any]) -> None:
        stubber.add_response(
            "get_products", {"FormatVersion": "aws_v1", "PriceList": [] if key in without else items}, request
        )

    for t in PRICED_TYPES:
        answer(
            keys.on_demand(t),
            [ec2_item(t, ON_DEMAND[t])],
            pricing_request(
                "AmazonEC2",
                term("instanceType", t),
                term("regionCode", REGION),
                term("operatingSystem", "Linux"),
                term("tenancy", "Shared"),
                term("preInstalledSw", "NA"),
                term("capacitystatus", "Used"),
            ),
        )
    for t in PRICED_TYPES:
        answer(
            keys.auto_mode_fee(t),
            [fee_item(t, FEE[t])],
            pricing_request(
                "AmazonEKS", term("regionCode", REGION), term("operation", "EKSAutoUsage"), term("instancetype", t)
            ),
        )
    answer(
        keys.CONTROL_PLANE,
        [eks_item("EKSSTD", "CreateOperation", "USW2-AmazonEKS-Hours:perCluster", CONTROL_PLANE)],
        pricing_request("AmazonEKS", term("regionCode", REGION), term("operation", "CreateOperation")),
    )
    answer(
        keys.EXTENDED_SUPPORT,
        [eks_item("EKSEXT", "ExtendedSupport", "USW2-AmazonEKS-Hours:extendedSupport", EXTENDED_SURCHARGE)],
        pricing_request("AmazonEKS", term("regionCode", REGION), term("operation", "ExtendedSupport")),
    )
    answer(
        keys.NAT_GATEWAY,
        nat_items(),
        pricing_request("AmazonEC2", term("regionCode", REGION), term("productFamily", "NAT Gateway")),
    )
    if not gateway:
        return
    answer(
        keys.AURORA_ACU,
        aurora_items(),
        pricing_request("AmazonRDS", term("regionCode", REGION), term("productFamily", "ServerlessV2")),
    )
    answer(
        keys.CACHE_STORAGE,
        [cache_item("VALKEYGB", "USW2-CachedData:Valkey", CACHE_GB_HOUR, "GB-Hours")],
        pricing_request(
            "AmazonElastiCache", term("regionCode", REGION), ("CONTAINS", "usagetype", "CachedData:Valkey")
        ),
    )
    answer(
        keys.CACHE_ECPU,
        [cache_item("VALKEYECPU", "USW2-ElastiCacheProcessingUnits:Valkey", ECPU_PER_ECPU, "ECPUs")],
        pricing_request(
            "AmazonElastiCache",
            term("regionCode", REGION),
            ("CONTAINS", "usagetype", "ElastiCacheProcessingUnits:Valkey"),
        ),
    )


def stub_instance_types(stubber: Stubber) -> None:
    stubber.add_response(
        "describe_instance_types",
        {"InstanceTypes": recorded_instance_types(("g6", "g6e", "g5"), ("m7i.large",))},
        {"Filters": [{"Name": "instance-type", "Values": ["g5.*", "g6.*", "g6e.*", "m7i.large"]}]},
    )


def stub_spot(stubber: Stubber, *, now: Any = NOW) -> None:
    rows = [
        {
            "AvailabilityZone": zone,
            "InstanceType": t,
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": f"{usd:.6f}",
            "Timestamp": NOW - timedelta(hours=3),
        }
        for t, zones in SPOT.items()
        for zone, usd in zones.items()
    ]
    # An earlier price change in a zone is history, not the price in effect: the latest row per zone counts.
    rows.append(
        {
            "AvailabilityZone": "us-west-2a",
            "InstanceType": "g6.xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": "0.500000",
            "Timestamp": NOW - timedelta(days=2),
        }
    )
    stubber.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": rows},
        {
            "InstanceTypes": sorted(PRICED_TYPES),
            "ProductDescriptions": ["Linux/UNIX"],
            "StartTime": now,
            "EndTime": now,
        },
    )


def stub_ec2(stubber: Stubber, *, now: Any = NOW) -> None:
    """DescribeInstanceTypes, then the Spot prices (after the Price List calls, which use another client)."""
    stub_instance_types(stubber)
    stub_spot(stubber, now=now)


def clients() -> tuple[Any, Any]:
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return (
        boto3.client("pricing", region_name="us-east-1", **credentials),
        boto3.client("ec2", region_name=REGION, **credentials),
    )


def live_book(env: str = "dev", *, without: frozenset[str] = frozenset()) -> tuple[PriceBook, dict[str, InstanceSpec]]:
    config = config_for(env)
    pricing, ec2 = clients()
    with Stubber(pricing) as prices, Stubber(ec2) as compute:
        stub_pricing(prices, without=without)
        stub_ec2(compute)
        book, specs = collect(
            pricing,
            ec2,
            region=REGION,
            pool=AcceleratorPool.of(config),
            shape=ReplicaShape.of(config),
            cpu_instance_type="m7i.large",
            gateway=True,
            now=NOW,
        )
        prices.assert_no_pending_responses()
        compute.assert_no_pending_responses()
    return book, specs


@pytest.fixture
def stubbed_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stubber, Stubber]]:
    """The command's AWS clients, stubbed (the command's own seam, not botocore's internals)."""
    pricing, ec2 = clients()
    monkeypatch.setattr(command, "aws_clients", lambda region: (pricing, ec2))
    with Stubber(pricing) as prices, Stubber(ec2) as compute:
        yield prices, compute
        prices.assert_no_pending_responses()
        compute.assert_no_pending_responses()


def cli(*args: str) -> int:
    return run(lambda: app(["cost", "--cdk-json", str(CDK_JSON), *args], standalone_mode=True))


def one_line(text: str) -> str:
    """stderr as one line: ops.cli's console wraps long messages at the terminal width (80 when not a tty)."""
    return " ".join(text.split())


# --- what the live calls give -----------------------------------------------------------------------------------


def test_each_price_comes_from_its_product_with_its_source() -> None:
    book, specs = live_book()
    expected = {
        keys.on_demand("g6.xlarge"): G6_XLARGE,
        keys.on_demand("g5.xlarge"): G5_XLARGE,
        keys.on_demand("g6e.xlarge"): G6E_XLARGE,
        keys.auto_mode_fee("g6.xlarge"): FEE["g6.xlarge"],
        keys.CONTROL_PLANE: CONTROL_PLANE,
        keys.EXTENDED_SUPPORT: EXTENDED_SURCHARGE,
        keys.NAT_GATEWAY: NAT_HOUR,  # not the Regional NAT gateway's $0.06, nor the per-GB rate
        keys.AURORA_ACU: ACU_HOUR,  # not I/O-Optimized ($0.156), not MySQL ($0.13)
        keys.CACHE_STORAGE: CACHE_GB_HOUR,
        keys.CACHE_ECPU: 0.0023,  # per million ECPUs, from $0.0000000023 per ECPU
        keys.spot("g6.xlarge", "us-west-2a"): 0.3012,  # the latest change, not the $0.50 two days earlier
        keys.spot("g6.xlarge", "us-west-2b"): 0.3220,
    }
    for key, usd in expected.items():
        price = book.get(key)
        assert isinstance(price, Price), f"{key}: {price}"
        assert price.usd == pytest.approx(usd), key
        assert price.source, key
    assert "sku SKUG6XLARGE" in book.get(keys.on_demand("g6.xlarge")).source  # type: ignore[union-attr]
    assert "DescribeSpotPriceHistory" in book.get(keys.spot("g6.xlarge", "us-west-2a")).source  # type: ignore[union-attr]
    assert book.captured_at == "2026-11-02T09:00:00+00:00"
    assert specs["g6.xlarge"] == InstanceSpec("g6.xlarge", vcpus=4, memory_mib=16384, gpus=1, neuron_devices=0)


def test_a_refused_price_list_call_is_one_message_not_a_report_of_missing_prices(
    stubbed_cli: tuple[Stubber, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    prices, compute = stubbed_cli
    stub_instance_types(compute)  # sizes first; the Spot call is never reached
    prices.add_client_error(
        "get_products",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: pricing:GetProducts",
    )
    assert cli("--env", "dev", "--region", REGION) == 1
    err = one_line(capsys.readouterr().err)
    assert err.startswith("error: pricing:GetProducts was refused (AccessDeniedException")
    assert "Traceback" not in err


# --- choosing a price out of Price List items ---------------------------------------------------------------------


def test_products_with_different_prices_are_ambiguous_and_not_resolved() -> None:
    entry = select_price([ec2_item("g6.xlarge", 0.8048), ec2_item("g6.xlarge", 0.9)], what="g6.xlarge", unit="hour")
    assert isinstance(entry, Missing)
    assert "2 products match with different prices" in entry.reason


def test_reserved_instance_applied_rows_are_not_prices() -> None:
    item = json.loads(ec2_item("g6.xlarge", G6_XLARGE))
    (term_,) = item["terms"]["OnDemand"].values()
    term_["priceDimensions"]["RI"] = {
        "unit": "Hrs",
        "description": "Linux/UNIX (Amazon VPC), g6.xlarge reserved instance applied",
        "beginRange": "0",
        "rateCode": "RI",
        "pricePerUnit": {"USD": "0.0000000000"},
    }
    entry = select_price([json.dumps(item)], what="g6.xlarge", unit="hour")
    assert isinstance(entry, Price)
    assert entry.usd == G6_XLARGE


def test_a_unit_the_tool_does_not_convert_is_missing_not_guessed() -> None:
    entry = select_price([cache_item("X", "USW2-CachedData:Valkey", 60.0, "GB-Mo")], what="cache", unit="GB-hour")
    assert isinstance(entry, Missing)
    assert "GB-Mo" in entry.reason


# --- the monthly arithmetic, against figures written here -------------------------------------------------------


def test_dev_monthly_estimate_at_minimum_and_maximum_scale() -> None:
    book, specs = live_book()
    result = estimate(config_for("dev"), book, specs, today=TODAY, cpu_instance_type="m7i.large")
    # g6.xlarge is the cheapest candidate On-Demand ($0.8048 < $1.006 < $1.861), one replica per node.
    assert result.accelerator_type == "g6.xlarge"
    monthly = {line.item: (line.monthly("min"), line.monthly("max")) for line in result.lines("on-demand")}
    expected = {
        "EKS control plane": (73.00, 73.00),  # 0.10 x 730
        "NAT gateways": (32.85, 32.85),  # 1 x 0.045 x 730
        "Aurora Serverless v2": (43.80, 350.40),  # 0.12 x 0.5 x 730; 0.12 x 4 x 730
        "ElastiCache Serverless data stored": (6.132, 306.60),  # 0.084 x 0.1 GB x 730; x 5 GB
        "ElastiCache Serverless ECPUs": (0.0, 30.222),  # 0.0023 x 18 M/h (5000/s) x 730
        "Auto Mode fee, vLLM nodes (g6.xlarge)": (70.5034, 282.0136),  # 0.09658 x 730 x 1; x 4 nodes
        "Auto Mode fee, LiteLLM share (m7i.large)": (8.83008, 26.49024),  # 0.012096 x 730 x 2 x 0.5; 6 x 0.5
        "vLLM nodes, g6.xlarge (On-Demand)": (587.504, 2350.016),  # 0.8048 x 730 x 1; x 4
        "LiteLLM share of m7i.large (On-Demand)": (73.584, 220.752),  # 0.1008 x 730 x 1; x 3
    }
    assert set(monthly) == set(expected)
    for item, figures in expected.items():
        assert monthly[item] == pytest.approx(figures), item
    on_demand_min, on_demand_max = result.total("on-demand", "min"), result.total("on-demand", "max")
    assert on_demand_min.complete
    assert on_demand_max.complete
    assert on_demand_min.usd == pytest.approx(896.20348)
    assert on_demand_max.usd == pytest.approx(3672.34384)
    # Spot: g6.xlarge at the zone mean (0.3012 + 0.3220) / 2 = 0.3116, m7i.large at 0.04; fees unchanged.
    assert result.total("spot", "min").usd == pytest.approx(491.78348)  # 896.20348 - 661.088 + 227.468 + 29.2
    assert result.total("spot", "max").usd == pytest.approx(2099.04784)
    assert result.spot_savings("min").usd == pytest.approx(404.42)
    assert result.spot_savings("max").usd == pytest.approx(1573.296)


def test_prod_counts_three_nat_gateways_a_reader_and_two_on_demand_replicas() -> None:
    book, specs = live_book()
    result = estimate(config_for("prod"), book, specs, today=TODAY, cpu_instance_type="m7i.large")
    monthly = {line.item: (line.monthly("min"), line.monthly("max")) for line in result.lines("on-demand")}
    assert monthly["NAT gateways"] == pytest.approx((98.55, 98.55))  # 3 x 0.045 x 730
    assert monthly["Aurora Serverless v2"] == pytest.approx((87.60, 1401.60))  # 2 x 0.5 ACU; 2 x 8 ACU
    assert monthly["vLLM nodes, g6.xlarge (On-Demand)"] == pytest.approx((1175.008, 2350.016))  # 2 -> 4 nodes
    assert any("capacity_types is ['on-demand']" in note for note in result.notes)


@pytest.mark.parametrize(
    ("today", "control_plane"),
    [
        (date(2026, 7, 29), 73.00),  # the last day of 1.33's standard support: $0.10 x 730
        (date(2026, 7, 30), 438.00),  # the day after: ($0.10 + $0.50) x 730
    ],
)
def test_control_plane_is_billed_extended_support_after_standard_support_ends(
    today: date, control_plane: float
) -> None:
    book, specs = live_book()
    config = config_for("dev", **{"cluster.kubernetes_version": "1.33"})
    result = estimate(config, book, specs, today=today, cpu_instance_type="m7i.large")
    eks = [line for line in result.fixed if line.item.startswith("EKS")]
    assert sum(line.monthly("min") or 0 for line in eks) == pytest.approx(control_plane)


def test_a_chosen_instance_type_is_priced_instead_of_the_cheapest() -> None:
    book, specs = live_book()
    result = estimate(
        config_for("dev"),
        book,
        specs,
        today=TODAY,
        cpu_instance_type="m7i.large",
        accelerator_instance_type="g5.xlarge",
    )
    (nodes,) = [line for line in result.capacity["on-demand"] if line.item.startswith("vLLM")]
    assert nodes.monthly("min") == pytest.approx(734.38)  # 1.006 x 730


# --- which instances a replica needs -----------------------------------------------------------------------------


def _specs(*names: str) -> dict[str, InstanceSpec]:
    from ops.cost.capacity import spec_from_ec2

    families = tuple({name.split(".")[0] for name in names})
    recorded = {info["InstanceType"]: info for info in recorded_instance_types(families, ())}
    return {name: spec_from_ec2(recorded[name]) for name in names}


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [
        ("3", "g6.xlarge"),  # 3 < 4 vCPUs: fits
        ("4", "g6.2xlarge"),  # 4 is all of g6.xlarge's vCPUs: no room left for the node itself
    ],
)
def test_a_replica_needs_more_vcpus_than_it_requests(cpu: str, expected: str) -> None:
    config = config_for("dev", **{"inference.vllm.cpu": cpu})
    (g6,) = candidates(
        AcceleratorPool("gpu", ("g6",), ("on-demand",)),
        ReplicaShape.of(config),
        _specs("g6.xlarge", "g6.2xlarge", "g6.12xlarge"),
    )
    assert g6.spec is not None
    assert g6.spec.name == expected


def test_two_gpu_replicas_share_a_four_gpu_node() -> None:
    config = config_for("dev", **{"inference.vllm.gpus_per_replica": "2"})
    (g6,) = candidates(
        AcceleratorPool("gpu", ("g6",), ("on-demand",)),
        ReplicaShape.of(config),
        _specs("g6.xlarge", "g6.2xlarge", "g6.12xlarge"),
    )
    assert g6.spec is not None
    assert (g6.spec.name, g6.replicas_per_node) == ("g6.12xlarge", 2)  # 4 L4s, 48 vCPUs, 192 GiB


def test_a_neuron_replica_is_sized_by_neuron_devices() -> None:
    shape = ReplicaShape(devices=1, device_kind="Neuron device", cpu=3.0, memory_gib=12.0)
    specs = _specs("inf2.xlarge", "inf2.8xlarge", "g6.xlarge")
    (inf2,) = candidates(AcceleratorPool("neuron", ("inf2",), ("on-demand",)), shape, specs)
    assert inf2.spec is not None
    assert (inf2.spec.name, inf2.replicas_per_node) == ("inf2.xlarge", 1)  # 1 Inferentia2 device, 4 vCPUs, 16 GiB
    (g6,) = candidates(AcceleratorPool("neuron", ("g6",), ("on-demand",)), shape, specs)
    assert g6.spec is None  # an NVIDIA GPU is not a Neuron device


def test_the_gateway_share_uses_the_requests_the_gateway_chart_sets() -> None:
    """The LiteLLM container's requests in the rendered gateway chart (k8s/gateway.py)."""
    (deployment,) = [doc for doc in gateway_chart_documents() if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert (GATEWAY_CPU_REQUEST, GATEWAY_MEMORY_REQUEST_GIB) == (1.0, 1.0)


# --- missing prices: reported, never filled ----------------------------------------------------------------------


def test_a_missing_price_is_reported_and_the_total_says_it_is_incomplete() -> None:
    book, specs = live_book(without=frozenset({keys.auto_mode_fee("g6.xlarge")}))
    missing = book.get(keys.auto_mode_fee("g6.xlarge"))
    assert isinstance(missing, Missing)
    assert "no product in the Price List matched" in missing.reason
    assert "operation = EKSAutoUsage" in missing.reason
    result = estimate(config_for("dev"), book, specs, today=TODAY, cpu_instance_type="m7i.large")
    minimum = result.total("on-demand", "min")
    assert not minimum.complete
    assert minimum.missing == ("Auto Mode fee, vLLM nodes (g6.xlarge)",)
    assert minimum.usd == pytest.approx(896.20348 - 70.5034)  # the other lines only: nothing stands in for it
    assert keys.auto_mode_fee("g6.xlarge") in result.missing


def test_json_output_names_the_missing_price_and_marks_the_estimate_incomplete(
    stubbed_cli: tuple[Stubber, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    prices, compute = stubbed_cli
    stub_ec2(compute, now=ANY)
    stub_pricing(prices, without=frozenset({keys.NAT_GATEWAY}))
    assert cli("--env", "dev", "--region", REGION, "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["complete"] is False
    assert list(document["missing"]) == [keys.NAT_GATEWAY]
    assert document["monthly_total"]["on-demand"]["min"] == {
        "usd": pytest.approx(896.20348 - 32.85, abs=0.01),
        "complete": False,
        "missing": ["NAT gateways"],
    }
    (nat,) = [line for line in document["lines"] if line["item"] == "NAT gateways"]
    assert nat["unit_price"] is None
    assert nat["monthly_usd"] == {"min": None, "max": None}


def test_table_output_says_incomplete_and_lists_what_is_missing(
    stubbed_cli: tuple[Stubber, Stubber], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    prices, compute = stubbed_cli
    stub_ec2(compute, now=ANY)
    stub_pricing(prices, without=frozenset({keys.CACHE_STORAGE}))
    assert cli("--env", "dev", "--region", REGION) == 0
    out = capsys.readouterr().out
    assert "(incomplete)" in out
    assert f"{keys.CACHE_STORAGE}: ElastiCache Serverless for Valkey data stored" in out


# --- offline snapshot --------------------------------------------------------------------------------------------


def test_snapshot_round_trip_gives_the_same_estimate_offline(
    stubbed_cli: tuple[Stubber, Stubber], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prices, compute = stubbed_cli
    stub_ec2(compute, now=ANY)
    stub_pricing(prices, without=frozenset({keys.auto_mode_fee("g5.xlarge")}))
    saved = tmp_path / "prices.json"
    assert cli("--env", "dev", "--region", REGION, "--save-snapshot", str(saved), "--json") == 0
    live = json.loads(capsys.readouterr().out)

    snapshot = json.loads(saved.read_text())
    assert snapshot["format"] == "genai-ops-cost-snapshot/1"
    assert snapshot["region"] == REGION
    assert datetime.fromisoformat(snapshot["captured_at"]).tzinfo is not None
    for key, entry in snapshot["prices"].items():
        assert entry.get("source") or entry.get("missing"), key
    assert "no product in the Price List matched" in snapshot["prices"][keys.auto_mode_fee("g5.xlarge")]["missing"]

    assert cli("--env", "dev", "--snapshot", str(saved), "--json") == 0  # no stubbed response is used: offline
    offline = json.loads(capsys.readouterr().out)
    assert offline["prices"]["origin"] == "snapshot prices.json"
    captured = offline["prices"]["captured_at"]
    assert datetime.fromisoformat(captured) == datetime.fromisoformat(snapshot["captured_at"])
    for field in ("monthly_total", "spot_savings", "lines", "missing", "accelerator"):
        assert offline[field] == live[field], field
    (g5,) = [c for c in offline["accelerator"]["candidates"] if c["family"] == "g5"]
    assert g5["auto_mode_fee_usd_per_hour"] is None  # still missing offline


def test_a_price_absent_from_the_snapshot_is_missing(tmp_path: Path) -> None:
    from ops.cost.snapshot import load_snapshot, save_snapshot

    book, specs = live_book()
    del book.entries[keys.AURORA_ACU]
    path = tmp_path / "partial.json"
    save_snapshot(path, book, specs, "EC2 DescribeInstanceTypes us-west-2")
    offline, offline_specs = load_snapshot(path)
    assert offline_specs == specs
    entry = offline.get(keys.AURORA_ACU)
    assert isinstance(entry, Missing)
    assert entry.reason == f"{keys.AURORA_ACU} is not in the snapshot partial.json prices captured {book.captured_at}"


# --- cost per 1M output tokens -----------------------------------------------------------------------------------


def _book_file(tmp_path: Path) -> Path:
    from ops.cost.snapshot import save_snapshot

    book, specs = live_book()
    path = tmp_path / "prices.json"
    save_snapshot(path, book, specs, "EC2 DescribeInstanceTypes us-west-2")
    return path


def test_cost_per_million_tokens_at_l4_saturation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FACTS.md: one L4 (g6.xlarge, $0.8048/h) saturated at 513 output tok/s is ~$0.44 per 1M output tokens."""
    result = tmp_path / "loadtest.json"
    result.write_text(json.dumps({"output_tokens": 513 * 600, "duration_s": 600}))
    snapshot = _book_file(tmp_path)
    assert cli("--snapshot", str(snapshot), "--loadtest", str(result), "--replicas", "1", "--json") == 0
    tokens = json.loads(capsys.readouterr().out)["cost_per_million_output_tokens"]
    assert tokens["output_tokens_per_s"] == 513
    assert tokens["instance_type"] == "g6.xlarge"
    assert tokens["usd"]["EC2 On-Demand"] == pytest.approx(0.4358, abs=1e-4)  # 0.8048 / (513 x 3600) x 1e6
    assert round(tokens["usd"]["EC2 On-Demand"], 2) == 0.44
    # With the Auto Mode fee: (0.8048 + 0.09658) / 1846800 x 1e6; Spot at the zone mean 0.3116.
    assert tokens["usd"]["EC2 On-Demand + Auto Mode fee"] == pytest.approx(0.4881, abs=1e-4)
    assert tokens["usd"]["EC2 Spot"] == pytest.approx(0.1687, abs=1e-4)


def test_cost_per_token_reads_the_results_file_loadtest_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The contract with `genai-ops loadtest`: its results.json, written by its own writer."""
    from ops.loadtest.client import RequestRecord
    from ops.loadtest.results import Recorder, RunResult, Slo, write_results

    recorder = Recorder()
    # Two replicas' worth: 2 x 513 tok/s for 600 s, in two requests that end at 600 s.
    for index in range(2):
        recorder.finished(
            RequestRecord(
                index=index,
                scheduled=0.0,
                sent=0.0,
                first_token=0.2,
                last_token=599.0,
                end=600.0,
                content_chunks=513 * 600,
                usage_tokens=513 * 600,
                status=200,
            )
        )
    run_result = RunResult(
        run_id="cost-test",
        started_at=NOW.isoformat(),
        config={},
        recorder=recorder,
        start=0.0,
        duration_s=600,
        scheduled=2,
    )
    write_results(run_result, Slo(), tmp_path / "run")
    assert (
        cli(
            "--snapshot",
            str(_book_file(tmp_path)),
            "--loadtest",
            str(tmp_path / "run/results.json"),
            "--replicas",
            "2",
            "--json",
        )
        == 0
    )
    tokens = json.loads(capsys.readouterr().out)["cost_per_million_output_tokens"]
    assert tokens["fields_read"] == "summary.output_tokens/measured_s"
    assert tokens["output_tokens_per_s"] == 1026
    assert tokens["usd"]["EC2 On-Demand"] == pytest.approx(0.4358, abs=1e-4)  # twice the nodes, twice the tokens


# --- bad input: one sentence, exit 2 -----------------------------------------------------------------------------


def _file_with(tmp_path: Path, content: str) -> str:
    path = tmp_path / "input.json"
    path.write_text(content)
    return str(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "staging"], "--env 'staging' is not an environment in"),
        (["--region", "mars-north-1a"], "--region 'mars-north-1a' is not an AWS region name, like us-west-2"),
        (["--snapshot", "/nonexistent/prices.json"], "--snapshot /nonexistent/prices.json: cannot be read"),
        (["--snapshot", "SNAPSHOT:not json"], "not JSON"),
        (["--snapshot", 'SNAPSHOT:{"format": "other"}'], "not a genai-ops-cost-snapshot/1 file"),
        (["--loadtest", "LOADTEST:{}"], "needs summary.output_tokens and summary.measured_s"),
        (["--loadtest", 'LOADTEST:{"output_tokens": 10, "duration_s": 0}'], "is not a number of seconds above 0"),
        (["--loadtest", 'LOADTEST:{"output_tokens": -1, "duration_s": 5}'], "is not a whole number of tokens"),
        (["--instance-type", "p5.48xlarge"], "--instance-type p5.48xlarge is not in the gpu pool's families"),
        (["--instance-type", "G6 XL"], "--instance-type 'G6 XL' is not an EC2 instance type"),
        (["--cpu-instance-type", "g6.xlarge"], "--cpu-instance-type g6.xlarge is not in the cpu pool's categories"),
        (["-c", "inference.autoscaling.min_replicas"], "is not KEY=VALUE"),
        (["-c", "inference.autoscaling.min_replicas=0"], "inference.autoscaling.min_replicas"),
        (["--snapshot", "a.json", "--save-snapshot", "b.json"], "--snapshot and --save-snapshot exclude each other"),
        (["--replicas", "2"], "--replicas 2 applies only with --loadtest"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resolved = []
    for arg in args:
        for marker in ("SNAPSHOT:", "LOADTEST:"):  # the file's content, written to a file of the test's own
            if arg.startswith(marker):
                arg = _file_with(tmp_path, arg.removeprefix(marker))
        resolved.append(arg)
    assert cli(*resolved) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_a_snapshot_of_another_region_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--snapshot", str(_book_file(tmp_path)), "--region", "us-east-1") == 2
    assert "--snapshot holds us-west-2 prices; --region us-east-1 needs a snapshot of its own" in one_line(
        capsys.readouterr().err
    )


def test_an_instance_type_that_is_not_a_candidate_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """g6.2xlarge is of the pool's family g6, but g6.xlarge is that family's smallest size holding a replica."""
    assert cli("--snapshot", str(_book_file(tmp_path)), "--instance-type", "g6.2xlarge") == 2
    err = one_line(capsys.readouterr().err)
    assert "--instance-type g6.2xlarge is not a candidate for a vLLM replica" in err
    assert "candidates: g6.xlarge, g6e.xlarge, g5.xlarge" in err


def test_no_region_anywhere_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert cli("--env", "dev") == 2
    assert "no region: pass --region" in one_line(capsys.readouterr().err)


def test_no_credentials_is_one_message(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Real clients with nothing to sign with: the first call fails before any request leaves the machine."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    assert cli("--env", "dev", "--region", REGION) == 1
    err = one_line(capsys.readouterr().err)
    assert err.startswith("error: no AWS credentials")
    assert "Traceback" not in err


def test_help_lists_the_offline_options() -> None:
    script = Path(sys.executable).parent / "genai-ops"
    result = subprocess.run([str(script), "cost", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    for option in ("--env", "--snapshot", "--save-snapshot", "--loadtest", "--json"):
        assert option in result.stdout
