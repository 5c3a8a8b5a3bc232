"""The LiteLLM proxy configuration, generated from typed settings.

One function, `litellm_config`, builds it for the cluster's ConfigMap and for the tests that run the
real proxy (with local addresses). Secrets never appear in it: the proxy reads them from its
environment (`os.environ/NAME`), which the secrets mechanism fills at run time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from k8s.tracing import LANGFUSE_CALLBACK
from platform_config.gateway import GatewaySettings

# How the proxy reaches its stores (cdk_constructs.gateway_stores creates them with these).
POSTGRES_PORT = 5432
VALKEY_PORT = 6379
DATABASE_NAME = "litellm"
DATABASE_USER = "litellm"
CACHE_USER = "litellm"

# Environment variables the proxy reads its secrets and endpoints from.
MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
DATABASE_URL_ENV = "DATABASE_URL"
# ElastiCache Serverless runs in cluster mode only. LiteLLM builds a cluster client (RedisClusterCache,
# whose batch reads use mget_nonatomic) when REDIS_CLUSTER_NODES names the startup nodes (litellm/_redis.py,
# router.py _create_redis_cache); with `redis_url` it builds a plain client whose multi-key reads fail with
# "Keys in request don't hash to the same slot" (measured against a Redis cluster in
# tests/test_gateway_pod_contract.py). Every redis client LiteLLM makes also reads REDIS_<KWARG> variables:
# REDIS_USERNAME names the RBAC user (the default user is disabled), REDIS_SSL turns on TLS (required).
REDIS_HOST_ENV = "REDIS_HOST"
REDIS_PORT_ENV = "REDIS_PORT"
REDIS_PASSWORD_ENV = "REDIS_PASSWORD"
REDIS_CLUSTER_NODES_ENV = "REDIS_CLUSTER_NODES"
REDIS_USERNAME_ENV = "REDIS_USERNAME"
REDIS_SSL_ENV = "REDIS_SSL"


@dataclass(frozen=True)
class Backend:
    """One OpenAI-compatible vLLM endpoint (in the cluster: the `vllm` Service's stable DNS name)."""

    api_base: str  # e.g. http://vllm.inference.svc.cluster.local:8000/v1


@dataclass(frozen=True)
class StateStores:
    """Which shared state the proxy uses: Redis for router state across replicas, Postgres for keys."""

    redis: bool
    database: bool


def litellm_config(
    settings: GatewaySettings,
    *,
    served_model_name: str,
    backends: Sequence[Backend],
    stores: StateStores,
    tracing: bool = False,
) -> dict[str, Any]:
    """The proxy's config.yaml as a dict; `tracing` adds the LangFuse callback (its host and keys come from the
    environment, see k8s/tracing.py)."""
    if not backends:
        raise ValueError("litellm_config needs at least one backend")
    router = settings.router
    group_sizes = Counter([served_model_name] * len(backends) + [extra.model_name for extra in settings.extra_models])

    def cooldown(model_name: str) -> dict[str, Any]:
        # A cooldown takes a deployment out of its group; in a group of one it locks the model out (429 "No
        # deployments available", or everything sent to the fallback) for the whole cooldown, even once the
        # backend is back. LiteLLM skips cooldown logic for a deployment whose model_info.cooldown_time is 0
        # (router.py deployment_callback_on_failure -> cooldown_handlers._should_run_cooldown_logic).
        return {"cooldown_time": 0} if group_sizes[model_name] == 1 else {}

    model_list: list[dict[str, Any]] = [
        {
            "model_name": served_model_name,
            "litellm_params": {
                # hosted_vllm/: vLLM's OpenAI-compatible server; the model id is the served name.
                "model": f"hosted_vllm/{served_model_name}",
                "api_base": backend.api_base,
                "timeout": router.timeout_seconds,
            },
            "model_info": {"id": f"{served_model_name}-{index}", **cooldown(served_model_name)},
        }
        for index, backend in enumerate(backends)
    ]
    model_list += [
        {
            "model_name": extra.model_name,
            "litellm_params": {"model": extra.litellm_model},
            "model_info": {"id": f"{extra.model_name}-0", **cooldown(extra.model_name)},
        }
        for extra in settings.extra_models
    ]
    # Groups of two or more deployments fail over: the first failure cools a deployment down so retries
    # avoid it (allowed_fails 0, see RouterSettings); groups of one are exempt above.
    router_settings: dict[str, Any] = {
        "routing_strategy": router.routing_strategy,
        "num_retries": router.num_retries,
        "timeout": router.timeout_seconds,
        "allowed_fails": router.allowed_fails,
        "cooldown_time": router.cooldown_seconds,
    }
    fallbacks = [extra.model_name for extra in settings.extra_models if extra.fallback_for_primary]
    if fallbacks:
        router_settings["fallbacks"] = [{served_model_name: fallbacks}]
    if stores.redis:
        # Cooldowns and rpm/tpm counters shared by every replica (FACTS.md). Host and port switch the router's
        # Redis on; REDIS_CLUSTER_NODES in the environment makes it a cluster client (see REDIS_HOST_ENV).
        router_settings.update(
            redis_host=f"os.environ/{REDIS_HOST_ENV}",
            redis_port=f"os.environ/{REDIS_PORT_ENV}",
            redis_password=f"os.environ/{REDIS_PASSWORD_ENV}",
        )
    # Both are LiteLLM custom loggers and run side by side: /metrics keeps counting with tracing on
    # (tests/test_gateway_tracing.py).
    callbacks = ["prometheus"] + ([LANGFUSE_CALLBACK] if tracing else [])
    general: dict[str, Any] = {"master_key": f"os.environ/{MASTER_KEY_ENV}"}
    if stores.database:
        general["database_url"] = f"os.environ/{DATABASE_URL_ENV}"
    return {
        "model_list": model_list,
        "router_settings": router_settings,
        "litellm_settings": {
            "callbacks": callbacks,
            "request_timeout": router.timeout_seconds,
            # No egress to the Hugging Face hub: a failed tokenizer download blocks the event loop on
            # every request and stalls liveness probes (FACTS.md, offline stall).
            "disable_hf_tokenizer_download": True,
        },
        "general_settings": general,
    }
