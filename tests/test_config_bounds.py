"""Each documented range of a setting, at its edges: the bound itself is accepted, one step past it is refused
with a message naming the bound. A bound moved by one (or a default that only hides it) fails here.

Config only: no synth, milliseconds per case. The bounds are written here, with their reasons; they are not
read from the model under test.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from platform_config import ConfigError, PlatformConfig
from tests.conftest import config_for

# (setting, the value at its bound, the value one step past it, what the refusal says). `extra` holds the
# other settings the bound needs to be reachable (e.g. max_replicas x gpus_per_replica within gpu_limit 8).
BOUNDS: list[Any] = [
    # LiteLLM router: a cooldown of at most an hour; a request timeout of 10 s to an hour.
    pytest.param(
        "gateway.router.cooldown_seconds",
        "3600",
        "3601",
        "Input should be less than or equal to 3600",
        {},
        id="cooldown-max",
    ),
    pytest.param(
        "gateway.router.cooldown_seconds", "1", "0", "Input should be greater than or equal to 1", {}, id="cooldown-min"
    ),
    pytest.param(
        "gateway.router.timeout_seconds",
        "3600",
        "3601",
        "Input should be less than or equal to 3600",
        {},
        id="timeout-max",
    ),
    # With the gateway on, a timeout under the longest request (30 s at least) is refused for that reason
    # instead; off, only the field's own minimum applies.
    pytest.param(
        "gateway.router.timeout_seconds",
        "10",
        "9",
        "Input should be greater than or equal to 10",
        {"gateway.enabled": "false"},
        id="timeout-min",
    ),
    # Two gateway replicas for availability: the most may equal the least.
    pytest.param(
        "gateway.autoscaling.max_replicas",
        "2",
        "1",
        "Input should be greater than or equal to 2",
        {},
        id="gateway-max-2",
    ),
    # gp3 gives 3000 IOPS and 125 MiB/s at its base price; the platform allows up to 16000 and 1000.
    pytest.param(
        "inference.node_pools.gpu.node_class.iops",
        "3000",
        "2999",
        "Input should be greater than or equal to 3000",
        {},
        id="iops-min",
    ),
    pytest.param(
        "inference.node_pools.gpu.node_class.iops",
        "16000",
        "16001",
        "Input should be less than or equal to 16000",
        {},
        id="iops-max",
    ),
    pytest.param(
        "inference.node_pools.cpu.node_class.throughput",
        "125",
        "124",
        "Input should be greater than or equal to 125",
        {},
        id="throughput-min",
    ),
    # The cpu pool may consolidate at once (no cold-start budget applies to it).
    pytest.param(
        "inference.node_pools.cpu.disruption.consolidate_after_seconds",
        "0",
        "-1",
        "Input should be greater than or equal to 0",
        {},
        id="consolidate-after-zero",
    ),
    # A drain blocked by a PodDisruptionBudget waits at least an hour before Auto Mode forces it.
    pytest.param(
        "inference.node_pools.gpu.disruption.termination_grace_period_hours",
        "1",
        "0",
        "Input should be greater than or equal to 1",
        {},
        id="termination-grace-min",
    ),
    pytest.param(
        "inference.node_pools.gpu.disruption.expire_after_hours",
        "1",
        "0",
        "Input should be greater than or equal to 1",
        {},
        id="expiry",
    ),
    # A NodePool requirement `In []` matches no instance: each pool names at least one family.
    pytest.param(
        "inference.node_pools.neuron.instance_families",
        '["inf2"]',
        "[]",
        "Tuple should have at least 1 item",
        {},
        id="neuron-families-not-empty",
    ),
    # One to eight GPUs per replica (the largest GPU instances have eight).
    pytest.param(
        "inference.vllm.gpus_per_replica", "1", "0", "Input should be greater than or equal to 1", {}, id="gpus-min"
    ),
    pytest.param(
        "inference.vllm.gpus_per_replica",
        "8",
        "9",
        "Input should be less than or equal to 8",
        {
            "inference.autoscaling.min_replicas": "1",
            "inference.autoscaling.max_replicas": "1",
            "inference.autoscaling.fallback_replicas": "1",
        },
        id="gpus-max",
    ),
    # vLLM may be pinned to a single replica (min = max = fallback = 1).
    pytest.param(
        "inference.autoscaling.max_replicas",
        "1",
        "0",
        "Input should be greater than or equal to 1",
        {"inference.autoscaling.fallback_replicas": "1"},
        id="vllm-max-1",
    ),
    pytest.param(
        "inference.autoscaling.scale_down_stabilization_seconds",
        "3600",
        "3601",
        "Input should be less than or equal to 3600",
        {},
        id="scale-down-window-max",
    ),
    # A scrape every 1 to 10 s (10 s keeps a queue breach within the 30 s reaction target).
    pytest.param(
        "inference.metrics.scrape_interval_seconds",
        "1",
        "0",
        "Input should be greater than or equal to 1",
        {},
        id="scrape-min",
    ),
    pytest.param(
        "inference.metrics.scrape_interval_seconds",
        "10",
        "11",
        "Input should be less than or equal to 10",
        {},
        id="scrape-max",
    ),
    # Up to ten retries on another deployment.
    pytest.param(
        "gateway.router.num_retries", "10", "11", "Input should be less than or equal to 10", {}, id="retries-max"
    ),
    # Llama 3.1's context is 128K tokens (131072); at most 1024 sequences batched at once.
    pytest.param(
        "inference.vllm.max_model_len",
        "131072",
        "131073",
        "Input should be less than or equal to 131072",
        {},
        id="context-max",
    ),
    pytest.param(
        "inference.vllm.max_num_seqs", "1024", "1025", "Input should be less than or equal to 1024", {}, id="seqs-max"
    ),
    # A threshold of zero tokens/s or waiting requests would scale out on an idle fleet.
    pytest.param(
        "inference.autoscaling.generation_tokens_per_second_per_replica",
        "0.5",
        "0",
        "Input should be greater than 0",
        {},
        id="tokens-threshold-positive",
    ),
    pytest.param(
        "inference.autoscaling.scale_up_period_seconds",
        "1800",
        "1801",
        "Input should be less than or equal to 1800",
        {},
        id="scale-up-period-max",
    ),
    pytest.param(
        "inference.autoscaling.scale_down_period_seconds",
        "1800",
        "1801",
        "Input should be less than or equal to 1800",
        {},
        id="scale-down-period-max",
    ),
    # Prometheus keeps at most 90 days locally (the only copy: no remote write).
    pytest.param(
        "inference.metrics.retention_days", "90", "91", "Input should be less than or equal to 90", {}, id="retention"
    ),
    # Alert thresholds: a KV-cache share is at most 1; a queue backlog above zero.
    pytest.param(
        "observability.alerts.kv_cache_usage", "1", "1.01", "Input should be less than or equal to 1", {}, id="kv-alert"
    ),
    pytest.param(
        "observability.alerts.queue_backlog_per_replica",
        "0.5",
        "0",
        "Input should be greater than 0",
        {},
        id="queue-alert-positive",
    ),
]


@pytest.mark.parametrize(("key", "at_bound", "past_bound", "refusal", "extra"), BOUNDS)
def test_a_setting_is_accepted_at_its_bound_and_refused_one_step_past_it(
    key: str, at_bound: str, past_bound: str, refusal: str, extra: dict[str, str]
) -> None:
    config = config_for("dev", **extra, **{key: at_bound})
    assert _value(config, key) is not None
    with pytest.raises(ConfigError) as raised:
        config_for("dev", **extra, **{key: past_bound})
    assert f"{key}: {refusal}" in str(raised.value)


def _value(config: PlatformConfig, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize(
    ("cidr", "accepted"),
    [
        ("10.0.0.0/16", True),
        ("10.0.0.0/20", True),  # a /20 VPC still holds four /22 node subnets
        ("10.0.0.0/21", False),
        ("10.0.0.0/15", False),
        ("172.16.0.0/16", True),
        ("192.168.0.0/16", True),
    ],
)
def test_a_new_vpc_is_a_private_slash_16_to_slash_20(cidr: str, accepted: bool) -> None:
    if accepted:
        assert config_for("dev", **{"vpc.cidr": cidr}).vpc.cidr == cidr
    else:
        with pytest.raises(ConfigError, match=r"vpc\.cidr: must be a private .* with a prefix from /16 to /20"):
            config_for("dev", **{"vpc.cidr": cidr})


def test_the_neuron_pool_may_be_left_out_while_vllm_runs_on_gpus() -> None:
    config = config_for("dev", **{"inference.node_pools.neuron.enabled": "false"})
    assert config.inference.vllm.accelerator == "nvidia"
    assert config.inference.node_pools.neuron.enabled is False
    neuron_image = "public.ecr.aws/neuron/vllm:0.1@sha256:" + "0" * 64
    with pytest.raises(ConfigError, match=r"vllm\.accelerator 'neuron' needs node_pools\.neuron\.enabled"):
        config_for(
            "dev",
            **{
                "inference.node_pools.neuron.enabled": "false",
                "inference.vllm.accelerator": "neuron",
                "inference.vllm.neuron_image": neuron_image,
            },
        )


def test_a_validated_config_cannot_be_changed_afterwards() -> None:
    """Settings are validated once, when loaded; a later assignment would skip every bound above."""
    config = config_for("dev")
    with pytest.raises(ValidationError, match="Instance is frozen"):
        config.inference.autoscaling.max_replicas = 1000  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Instance is frozen"):
        config.gateway.router.timeout_seconds = 1  # type: ignore[misc]
    assert config.inference.autoscaling.max_replicas == 4
