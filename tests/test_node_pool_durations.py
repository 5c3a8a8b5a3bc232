"""NodePool durations say exactly what was configured: `consolidateAfter` in seconds or whole minutes,
`expireAfter` and `terminationGracePeriod` in hours (Karpenter reads Go durations: `61s`, `15m`, `336h`).

The NodePools chart is rendered by cdk8s alone from configs with values a synth never uses (61 s, 90 s),
which are where a rounding to minutes would show.
"""

from __future__ import annotations

import re
from typing import Any

import cdk8s
import pytest

from k8s.node_pools import NodeClassInputs, NodePoolsChart
from tests.conftest import config_for

UNITS = {"s": 1, "m": 60, "h": 3600}


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, f"{duration!r} is not a single-unit Go duration"
    return int(match[1]) * UNITS[match[2]]


def _pools(**overrides: str) -> dict[str, dict[str, Any]]:
    settings = config_for("dev", **overrides).inference.node_pools
    chart = NodePoolsChart(
        cdk8s.App(),
        "node-pools",
        settings=settings,
        inputs=NodeClassInputs(
            role_name="node-role",
            subnet_terms=[{"tags": {"kubernetes.io/role/internal-elb": "1"}}],
            security_group_terms=[{"tags": {"aws:eks:cluster-name": "genai-dev"}}],
            node_volume_key_arn="arn:aws:kms:us-west-2:123456789012:key/example",
        ),
        labels={},
    )
    return {doc["metadata"]["name"]: doc["spec"] for doc in chart.to_json() if doc["kind"] == "NodePool"}


@pytest.mark.parametrize(("cpu_seconds", "gpu_seconds"), [(61, 900), (90, 960), (0, 3600), (60, 301)])
def test_consolidate_after_is_the_configured_number_of_seconds(cpu_seconds: int, gpu_seconds: int) -> None:
    pools = _pools(
        **{
            "inference.node_pools.cpu.disruption.consolidate_after_seconds": str(cpu_seconds),
            "inference.node_pools.gpu.disruption.consolidate_after_seconds": str(gpu_seconds),
        }
    )
    assert _seconds(pools["cpu"]["disruption"]["consolidateAfter"]) == cpu_seconds
    assert _seconds(pools["gpu"]["disruption"]["consolidateAfter"]) == gpu_seconds


def test_lifetimes_are_the_configured_hours() -> None:
    pools = _pools(
        **{
            "inference.node_pools.gpu.disruption.expire_after_hours": "100",
            "inference.node_pools.gpu.disruption.termination_grace_period_hours": "5",
        }
    )
    template = pools["gpu"]["template"]["spec"]
    assert _seconds(template["expireAfter"]) == 100 * 3600
    assert _seconds(template["terminationGracePeriod"]) == 5 * 3600
