"""The LiteLLM proxy configuration, generated from typed settings.

One function, `litellm_config`, builds it for the cluster's ConfigMap and for the tests that run the
real proxy (with local addresses). Secrets never appear in it: the proxy reads them from its
environment (`os.environ/NAME`), which the secrets mechanism fills at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
# rediss://USER:PASSWORD@HOST:PORT: TLS (ElastiCache Serverless requires it) and the RBAC user, which a
# bare host/port/password would not name (it would authenticate as the disabled default user).
REDIS_URL_ENV = "REDIS_URL"


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
) -> dict[str, Any]:
    """The proxy's config.yaml as a dict."""
    if not backends:
        raise ValueError("litellm_config needs at least one backend")
    router = settings.router
    model_list: list[dict[str, Any]] = [
        {
            "model_name": served_model_name,
            "litellm_params": {
                # hosted_vllm/: vLLM's OpenAI-compatible server; the model id is the served name.
                "model": f"hosted_vllm/{served_model_name}",
                "api_base": backend.api_base,
                "timeout": router.timeout_seconds,
            },
            "model_info": {"id": f"{served_model_name}-{index}"},
        }
        for index, backend in enumerate(backends)
    ]
    model_list += [
        {"model_name": extra.model_name, "litellm_params": {"model": extra.litellm_model}}
        for extra in settings.extra_models
    ]
    router_settings: dict[str, Any] = {
        "routing_strategy": router.routing_strategy,
        "num_retries": router.num_retries,
        "timeout": router.timeout_seconds,
    }
    if len(model_list) > 1:
        router_settings.update(allowed_fails=router.allowed_fails, cooldown_time=router.cooldown_seconds)
    else:
        # With a single deployment (the vLLM Service) a cooldown locks the model out: after two failures
        # every request got 429 for cooldown_time, even once vLLM was back (tests/test_gateway_proxy.py).
        router_settings["disable_cooldowns"] = True
    fallbacks = [extra.model_name for extra in settings.extra_models if extra.fallback_for_primary]
    if fallbacks:
        router_settings["fallbacks"] = [{served_model_name: fallbacks}]
    if stores.redis:
        # Cooldowns and rpm/tpm counters shared by every replica (FACTS.md).
        router_settings["redis_url"] = f"os.environ/{REDIS_URL_ENV}"
    callbacks = ["prometheus"] + (["langfuse"] if settings.tracing else [])
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
