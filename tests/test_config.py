"""The config layer: defaults, environments, overrides, and the errors a bad value gets.

These fail in the config layer before any construct is built, so they cost milliseconds."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from platform_config import ConfigError, cdk_json_context, load_config
from platform_config.reference import render_reference
from tests.conftest import PROJECT_CDK_JSON, ROOT, config_for, context_for

# The values AWS::Logs::LogGroup RetentionInDays accepts (CloudFormation resource reference).
CLOUDWATCH_RETENTION_DAYS = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
]  # fmt: skip


def test_dev_defaults_synthesize_without_an_account() -> None:
    config = config_for("dev")
    assert config.account is None
    assert config.region is None
    assert config.cluster.kubernetes_version == "1.35"
    assert config.cluster.endpoint_access == "public_and_private"
    assert config.production is False
    assert config.prefix == "genai-dev"


def test_prod_environment_from_cdk_json() -> None:
    config = config_for("prod")
    assert config.production is True
    assert config.cluster.endpoint_access == "private"
    assert config.removal_policy == "retain"
    assert config.vpc.max_azs == 3
    assert config.vpc.nat_gateways == 3


def test_single_key_overrides_from_the_command_line() -> None:
    config = config_for(
        "dev",
        **{
            "cluster.kubernetes_version": "1.36",
            "vpc.max_azs": "3",
            "cluster.public_access_cidrs": '["203.0.113.0/24", "198.51.100.7/32"]',
            "account": "123456789012",
            "region": "eu-west-1",
            "availability_zones": '["eu-west-1a", "eu-west-1b", "eu-west-1c"]',
        },
    )
    assert config.cluster.kubernetes_version == "1.36"
    assert config.vpc.max_azs == 3
    assert config.cluster.public_access_cidrs == ("203.0.113.0/24", "198.51.100.7/32")
    assert config.account == "123456789012"


def test_an_override_does_not_leak_into_cdk_json_environments() -> None:
    context = context_for("prod", **{"cluster.admin_principal_arns": '["arn:aws:iam::123456789012:role/Admin"]'})
    load_config(context)
    assert "admin_principal_arns" not in context["environments"]["prod"]["cluster"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"cluster.kubernetes_version": "1.20"},
            "cluster.kubernetes_version: Input should be '1.33', '1.34', '1.35' or '1.36' (got '1.20')",
            id="kubernetes-version-too-old",
        ),
        pytest.param(
            {"vpc.max_azs": "7"},
            "vpc.max_azs: Input should be less than or equal to 3 (got '7')",
            id="az-count-7",
        ),
        pytest.param(
            {"vpc.nat_gateways": "3"},
            "vpc: nat_gateways (3) must be at most max_azs (2)",
            id="more-nat-gateways-than-azs",
        ),
        pytest.param(
            {"vpc.cidr": "8.8.0.0/16"},
            "vpc.cidr: must be a private (RFC 1918: within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) IPv4 "
            "network with a prefix from /16 to /20, like 10.0.0.0/16 (got '8.8.0.0/16')",
            id="public-vpc-cidr",
        ),
        pytest.param(
            {"cluster.public_access_cidrs": '["0.0.0.0/0"]'},
            "cluster.public_access_cidrs.0: 0.0.0.0/0 opens the Kubernetes API to the internet",
            id="endpoint-open-to-the-internet",
        ),
        pytest.param(
            {"cluster.public_access_cidrs": "[]"},
            "cluster: a public endpoint needs at least one CIDR in public_access_cidrs",
            id="public-endpoint-without-allowlist",
        ),
        pytest.param(
            {"cluster.endpoint_access": "public"},
            "cluster.endpoint_access: Input should be 'public_and_private' or 'private' (got 'public')",
            id="unknown-endpoint-access",
        ),
        pytest.param(
            {"cluster.admin_principal_arns": '["arn:aws:iam::12345:role/Admin"]'},
            "cluster.admin_principal_arns.0: must be an IAM role or user ARN, like "
            "arn:aws:iam::123456789012:role/PlatformAdmins (got 'arn:aws:iam::12345:role/Admin')",
            id="malformed-admin-arn",
        ),
        pytest.param(
            {"account": "123456789012"},
            "config: account and region are pinned together: set both or neither",
            id="account-without-region",
        ),
        pytest.param(
            {"account": "123456789012", "region": "us-west-2"},
            "a pinned account/region needs availability_zones listing at least vpc.max_azs (2) zones",
            id="pinned-without-azs",
        ),
        pytest.param(
            {"account": "123456789012", "region": "us-west-2", "availability_zones": '["eu-west-1a", "eu-west-1b"]'},
            "availability_zones ['eu-west-1a', 'eu-west-1b'] are not in region us-west-2",
            id="azs-of-another-region",
        ),
        pytest.param(
            {"cluster.control_plane_log_retention_days": "42"},
            f"cluster.control_plane_log_retention_days: must be one of CloudWatch Logs' retention values "
            f"{CLOUDWATCH_RETENTION_DAYS} (got '42')",
            id="log-retention-not-a-cloudwatch-value",
        ),
        pytest.param(
            {"vpc.vpc_id": "vpc-0123456789abcdef0"},
            "vpc: an existing vpc_id needs at least 2 private_subnet_ids in different AZs",
            id="existing-vpc-without-subnets",
        ),
        pytest.param(
            {"cluster.kubernets_version": "1.35"},
            "cluster.kubernets_version: unknown key; allowed keys here: admin_principal_arns, "
            "control_plane_log_retention_days, endpoint_access, kubernetes_version, public_access_cidrs",
            id="misspelt-key",
        ),
        pytest.param(
            {"namespaces": '[{"name": "Inference"}]'},
            "namespaces.0.name: must be a DNS label: up to 63 lowercase letters, digits and '-', starting with a "
            "letter, not ending with '-' (got 'Inference')",
            id="namespace-not-a-dns-label",
        ),
        pytest.param(
            {"vpc.cidr": "127.0.0.0/16"},
            "vpc.cidr: must be a private (RFC 1918: within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)",
            id="loopback-vpc-cidr",
        ),
        pytest.param(
            {"vpc.cidr": "10.0.0.1/16"},
            "vpc.cidr: must be a private (RFC 1918",
            id="vpc-cidr-with-host-bits",
        ),
        pytest.param(
            {"cluster.public_access_cidrs": '["my office"]'},
            "cluster.public_access_cidrs.0: must be an IPv4 network in CIDR notation with its host bits zero, "
            "like 203.0.113.0/24 (got 'my office')",
            id="allowlist-not-a-cidr",
        ),
        pytest.param(
            {"cluster.public_access_cidrs": "203.0.113.0/24"},
            "cluster.public_access_cidrs: expects a JSON list, like '[\"first\", \"second\"]' (got '203.0.113.0/24')",
            id="list-without-json",
        ),
        pytest.param(
            {"clustr.kubernetes_version": "1.20"},
            "clustr.kubernetes_version: 'clustr' is not a configuration section (sections: account, addons, "
            "availability_zones, cluster, gateway, inference, name, namespaces, observability, production, region, "
            "removal_policy, tags, vpc)",
            id="unknown-section",
        ),
        pytest.param(
            {"Cluster.kubernetes_version": "1.20"},
            "'Cluster' is not a configuration section",
            id="mis-cased-section",
        ),
        pytest.param(
            {"tags": '{"aws:team": "ml"}'},
            "tags: key 'aws:team' starts with 'aws:', which AWS reserves for its own tags",
            id="tag-with-aws-prefix",
        ),
        pytest.param(
            {"tags": '{"team#1": "ml"}'},
            "tags: key 'team#1' must be 1-128 letters, digits, spaces or _ . : / = + - @ (AWS tag rules)",
            id="tag-key-with-a-refused-character",
        ),
        pytest.param(
            {"tags": '{"team": "' + "x" * 257 + '"}'},
            "tags: value of 'team' must be at most 256 letters, digits, spaces or _ . : / = + - @",
            id="tag-value-too-long",
        ),
        pytest.param(
            {"tags": '{"team": ["ml"]}'},
            "tags.team: Input should be a valid string",
            id="tag-value-not-a-string",
        ),
        pytest.param(
            {"namespaces": '[{"name": "inference"}, {"name": "extra"}]'},
            "config: namespaces leaves out ['gateway', 'keda', 'external-secrets', 'observability'], which the "
            "platform's workloads run in",
            id="namespaces-without-the-platforms-own",
        ),
        pytest.param(
            {"name": "GenAI"},
            "name: must be 3-20 lowercase letters, digits and '-', starting with a letter and ending with a letter "
            "or digit (got 'GenAI')",
            id="uppercase-prefix",
        ),
    ],
)
def test_invalid_values_name_key_value_and_what_is_allowed(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_for("dev", **overrides)
    assert expected in str(raised.value)


def test_tag_count_limit_is_tested_at_its_boundary() -> None:
    import json

    # AWS allows 50 tags per resource; the platform sets project and environment itself.
    assert len(config_for("dev", tags=json.dumps({f"k{i}": "v" for i in range(48)})).tags) == 48
    with pytest.raises(ConfigError, match="tags: lists 49 tags; AWS allows 50 per resource"):
        config_for("dev", tags=json.dumps({f"k{i}": "v" for i in range(49)}))
    # Overriding a platform tag does not count twice; letters beyond ASCII and spaces are allowed.
    assert config_for("dev", tags=json.dumps({"project": "x", "équipe ml": "a/b=c+d@e"})).tags["équipe ml"]


def test_gateway_timeout_may_equal_the_longest_request() -> None:
    assert config_for("dev", **{"gateway.router.timeout_seconds": "600"}).gateway.router.timeout_seconds == 600
    # With the gateway off, nothing cuts a request.
    assert config_for("dev", **{"gateway.enabled": "false", "gateway.router.timeout_seconds": "60"})


def test_cdk_context_keys_are_not_configuration_sections() -> None:
    config = config_for(
        "dev",
        **{"@aws-cdk/core:newStyleStackSynthesis": True, "aws:cdk:enable-path-metadata": True, "dist_dir": "x"},
    )
    assert config.env_name == "dev"


def test_production_must_not_have_a_public_endpoint() -> None:
    with pytest.raises(ConfigError, match=r"production requires cluster\.endpoint_access 'private'"):
        config_for(
            "prod",
            **{"cluster.endpoint_access": "public_and_private", "cluster.public_access_cidrs": '["203.0.113.0/24"]'},
        )


def test_unknown_environment_lists_the_defined_ones() -> None:
    with pytest.raises(ConfigError, match=r"env: 'stage' is not an environment in cdk.json; allowed: dev, prod"):
        config_for("stage")


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        config_for("dev", **{"vpc.max_azs": "9", "cluster.kubernetes_version": "1.2"})
    assert "vpc.max_azs" in str(raised.value)
    assert "cluster.kubernetes_version" in str(raised.value)


# Overrides that silence the access warnings, so a test sees only the warning it is about.
REACHABLE = {
    "cluster.admin_principal_arns": '["arn:aws:iam::123456789012:role/Admin"]',
    "cluster.public_access_cidrs": '["198.18.0.0/24"]',
    "inference.model_store.download_job": "true",
    "inference.model_store.hf_token_secret_name": "genai/hf-token",
}


def test_extended_support_version_warns_about_the_price() -> None:
    config = config_for("dev", **{"cluster.kubernetes_version": "1.33", **REACHABLE})
    (warning,) = config.warnings(today=date(2026, 11, 26))
    assert "1.33 left EKS standard support on 2026-07-29" in warning
    assert "$0.60/h instead of $0.10/h" in warning
    assert config_for("dev", **REACHABLE).warnings(today=date(2026, 11, 26)) == []


def test_standard_support_ends_are_respected_by_date() -> None:
    config = config_for("dev", **{"cluster.kubernetes_version": "1.34", **REACHABLE})
    assert config.warnings(today=date(2026, 12, 1)) == []
    assert len(config.warnings(today=date(2026, 12, 3))) == 1


def test_a_cluster_nobody_can_reach_is_warned_about() -> None:
    """Dev's defaults: no admin access entry and a public endpoint open only to a documentation range."""
    warnings = config_for("dev").warnings(today=date(2026, 11, 26))
    assert len(warnings) == 3
    assert "cluster.admin_principal_arns is empty: no person gets an EKS access entry" in warnings[1]
    assert "cdk.context.json" in warnings[1]
    assert "cluster.public_access_cidrs ['192.0.2.0/24'] are documentation ranges (RFC 5737)" in warnings[2]


def test_a_model_bucket_nothing_fills_is_warned_about() -> None:
    (warning, *_) = config_for("dev").warnings(today=date(2026, 11, 26))
    assert warning.startswith(
        "nothing fills the model bucket: vLLM streams meta-llama/Llama-3.1-8B-Instruct from "
        "s3://<ModelBucket>/models/meta-llama/Llama-3.1-8B-Instruct"
    )
    assert "Llama 3.1 is gated" in warning
    assert not any("model bucket" in w for w in config_for("dev", **REACHABLE).warnings(today=date(2026, 11, 26)))
    # Any documentation range alone, or a subnet of one, still reaches nobody; one real network is enough.
    for cidrs in ('["203.0.113.0/24", "198.51.100.0/25"]', '["192.0.2.128/25"]'):
        only_docs = config_for("dev", **{"cluster.public_access_cidrs": cidrs})
        assert any("documentation ranges" in w for w in only_docs.warnings(today=date(2026, 11, 26)))
    mixed = config_for("dev", **{"cluster.public_access_cidrs": '["192.0.2.0/24", "198.18.0.0/24"]'})
    assert not any("documentation ranges" in w for w in mixed.warnings(today=date(2026, 11, 26)))
    # A private endpoint has no public allowlist to warn about.
    assert not any("documentation" in w for w in config_for("prod").warnings(today=date(2026, 11, 26)))


def test_reference_shows_each_sections_own_defaults() -> None:
    """A section may override the defaults of a nested class; the reference shows the value in force."""
    reference = render_reference()
    assert '| `inference.node_pools.gpu.node_class.ephemeral_storage` | str | `"200Gi"` |' in reference
    assert '| `inference.node_pools.cpu.node_class.ephemeral_storage` | str | `"100Gi"` |' in reference
    assert "| `inference.node_pools.cpu.disruption.consolidate_after_seconds` | int | `60` |" in reference
    assert "| `inference.node_pools.gpu.disruption.consolidate_after_seconds` | int | `900` |" in reference
    assert "| `env_name` | str | (required) |" in reference


def test_readme_configuration_reference_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert render_reference() in readme, (
        "README's configuration reference is stale: run `.venv/bin/python -m platform_config --update-readme README.md`"
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"inference.autoscaling.min_replicas": "5"},
            "inference.autoscaling: min_replicas (5) must be less than or equal to max_replicas (4)",
            id="min-above-max-replicas",
        ),
        pytest.param(
            {"inference.node_pools.gpu.instance_families": '["g6", "m7i"]'},
            "inference.node_pools.gpu.instance_families.1: Input should be 'g4dn', 'g5', 'g6', 'g6e', 'gr6', "
            "'p4d', 'p4de', 'p5', 'p5e', 'p5en' or 'p6-b200' (got 'm7i')",
            id="non-gpu-family-in-gpu-pool",
        ),
        pytest.param(
            {"inference.node_pools.gpu.capacity_types": '["reserved"]'},
            "inference.node_pools.gpu.capacity_types.0: Input should be 'spot' or 'on-demand' (got 'reserved')",
            id="unknown-capacity-type",
        ),
        pytest.param(
            {"inference.autoscaling.queue_depth_per_replica": "0"},
            "inference.autoscaling.queue_depth_per_replica: Input should be greater than 0 (got '0')",
            id="zero-threshold",
        ),
        pytest.param(
            {"inference.autoscaling.ttft_p95_seconds": "-1"},
            "inference.autoscaling.ttft_p95_seconds: Input should be greater than 0 (got '-1')",
            id="negative-threshold",
        ),
        pytest.param(
            {"inference.vllm.gpu_memory_utilization": "1.0"},
            "inference.vllm.gpu_memory_utilization: Input should be less than 1 (got '1.0')",
            id="gpu-memory-utilization-one",
        ),
        pytest.param(
            {"inference.vllm.gpu_memory_utilization": "0"},
            "inference.vllm.gpu_memory_utilization: Input should be greater than 0 (got '0')",
            id="gpu-memory-utilization-zero",
        ),
        pytest.param(
            {"inference.vllm.image": "vllm/vllm-openai:latest"},
            "inference.vllm.image: must be an image pinned by digest, like "
            "registry/repository:tag@sha256:<64 hex digits> (got 'vllm/vllm-openai:latest')",
            id="image-not-pinned-by-digest",
        ),
        pytest.param(
            {"inference.autoscaling.scale_down_stabilization_seconds": "120"},
            "autoscaling.scale_down_stabilization_seconds (120) must outlast the cold-start budget (300 s)",
            id="scale-down-shorter-than-cold-start",
        ),
        pytest.param(
            {"inference.node_pools.gpu.disruption.consolidate_after_seconds": "60"},
            "node_pools.gpu.disruption.consolidate_after_seconds (60) must outlast the cold-start budget (300 s)",
            id="consolidation-shorter-than-cold-start",
        ),
        pytest.param(
            {"inference.node_pools.gpu.disruption.expire_after_hours": "600"},
            "inference.node_pools.gpu.disruption.expire_after_hours: Input should be less than or equal to 504",
            id="expiry-beyond-auto-mode-maximum",
        ),
        pytest.param(
            {"inference.autoscaling.max_replicas": "9"},
            "autoscaling.max_replicas x vllm.gpus_per_replica (9) exceeds node_pools.gpu.gpu_limit (8)",
            id="more-gpus-than-the-pool-allows",
        ),
        pytest.param(
            {"inference.vllm.accelerator": "neuron"},
            "accelerator 'neuron' needs neuron_image",
            id="neuron-without-image",
        ),
        pytest.param(
            {"inference.vllm.model": "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct"},
            "inference.vllm.model: must be a Hugging Face model id like meta-llama/Llama-3.1-8B-Instruct (letters, "
            "digits, '._-', at most one '/'), not a URL or a path",
            id="model-as-a-url",
        ),
        pytest.param(
            {"inference.vllm.model": "meta llama"},
            "inference.vllm.model: must be a Hugging Face model id",
            id="model-with-a-space",
        ),
        pytest.param(
            {"gateway.router.timeout_seconds": "599"},
            "config: gateway.router.timeout_seconds (599) is shorter than inference.vllm.longest_request_seconds "
            "(600): the gateway would cut requests vLLM is sized to finish",
            id="gateway-timeout-below-the-longest-request",
        ),
        pytest.param(
            {"gateway.inbound_cidrs": '["not-a-cidr"]'},
            "gateway.inbound_cidrs.0: must be an IPv4 network in CIDR notation with its host bits zero, like "
            "10.0.0.0/16 (got 'not-a-cidr')",
            id="alb-inbound-not-a-cidr",
        ),
        pytest.param(
            {"inference.model_store.download_job": "true"},
            "download_job needs hf_token_secret_name",
            id="download-without-token-secret",
        ),
        pytest.param(
            {"inference.node_pools.gpu.disruption.expire_after_hours": "481"},
            "expire_after_hours (481) + termination_grace_period_hours (24) is 505 h, past Auto Mode's 21-day "
            "node lifetime (504 h)",
            id="expiry-plus-drain-beyond-auto-mode-maximum",
        ),
        pytest.param(
            {"inference.metrics.scrape_interval_seconds": "30"},
            "inference.metrics.scrape_interval_seconds: Input should be less than or equal to 10",
            id="scrape-too-slow-for-the-reaction-target",
        ),
    ],
)
def test_invalid_inference_values(overrides: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_for("dev", **overrides)
    assert expected in str(raised.value)


def test_the_tests_reference_config_has_the_projects_feature_flags() -> None:
    # The tests read tests/cdk.reference.json (the shipped cdk.json), so a deployment's own values in cdk.json
    # (accounts, regions, admin roles, the delivery settings, tuned environments) do not change what they prove. The
    # CDK feature flags and every other app-wide key decide what the same code synthesizes, so those must agree.
    live = cdk_json_context(ROOT / "cdk.json")
    reference = cdk_json_context(PROJECT_CDK_JSON)
    per_deployment = {"environments", "delivery"}
    assert {k: v for k, v in live.items() if k not in per_deployment} == {
        k: v for k, v in reference.items() if k not in per_deployment
    }, "cdk.json's app-wide context changed: copy the same change into tests/cdk.reference.json"
    assert set(reference["environments"]) == {"dev", "prod"}
    assert "delivery" not in reference  # the shipped default: no pipeline
