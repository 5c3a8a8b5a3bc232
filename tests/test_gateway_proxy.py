"""The generated LiteLLM config, run by the real proxy (LiteLLM 1.102.1 from `.venv-litellm`).

One proxy serves most of the module, in front of two local OpenAI-compatible stubs standing in for vLLM
(one model group of two deployments). The config comes from `k8s.gateway_config.litellm_config` with the
dev environment's gateway settings; only the router's cooldown (30 s) is shortened (FAILOVER_OVERRIDES),
so the recovery test does not wait half a minute. The single-deployment and extra-model tests run their
own proxies with the real 30 s setting, where a cooldown lock-out would show.

Needs `make .venv-litellm/.installed` (requirements-litellm.txt); without it every test fails with
`LiteLlmVenvMissingError` naming that target.
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from k8s.gateway_config import Backend, StateStores, litellm_config
from platform_config.gateway import GatewaySettings
from tests.conftest import Synthesized, config_for
from tests.litellm_harness import (
    HttpResponse,
    LiteLlmConfigError,
    ProxyServer,
    StubBackend,
    metric_samples,
    parse_sse,
    running_proxy,
    validate_config,
)

# Prometheus metric families the proxy exports (classic text format, as Prometheus stores them).
# The gateway's ScaledObject queries REQUESTS_METRIC; both carry the label `requested_model`.
REQUESTS_METRIC = "litellm_proxy_total_requests_metric_total"
FAILED_REQUESTS_METRIC = "litellm_proxy_failed_requests_metric_total"
# Per-deployment router metrics, labelled `model_id` (the config's model_info.id, `<model>-<index>`).
DEPLOYMENT_FAILURES_METRIC = "litellm_deployment_failure_responses_total"
DEPLOYMENT_COOLDOWNS_METRIC = "litellm_deployment_cooled_down_total"

MODEL = config_for("dev").inference.vllm.served_model_name
COOLDOWN_S = 4
# LiteLLM 1.106.2 counts a deployment's failure (allowed_fails) and decides on its cooldown only for a
# request's first attempt; its retries pick among all deployments not in cooldown, the dead one included.
# With allowed_fails 1 (the dev settings) the first requests after a backend dies are retried at random
# and one is lost when every attempt lands on the dead backend: measured 8 of 44 kill events with
# num_retries 2 and 2 of 15 with num_retries 3. With allowed_fails 0 the first failure cools the dead
# backend down before the retry is routed: none lost in 47 kill events.
FAILOVER_OVERRIDES: dict[str, Any] = {"cooldown_seconds": COOLDOWN_S}
CHAT_ROUTE = "/v1/chat/completions"


def gateway_settings() -> GatewaySettings:
    settings = config_for("dev").gateway
    return settings.model_copy(update={"router": settings.router.model_copy(update=FAILOVER_OVERRIDES)})


def generated_config(backends: list[StubBackend], stores: StateStores | None = None) -> dict[str, Any]:
    return litellm_config(
        gateway_settings(),
        served_model_name=MODEL,
        backends=[Backend(api_base=f"http://127.0.0.1:{stub.port}/v1") for stub in backends],
        stores=stores or StateStores(redis=False, database=False),
    )


@pytest.fixture(scope="module")
def backends() -> Iterator[list[StubBackend]]:
    with StubBackend(name="stub-0") as first, StubBackend(name="stub-1") as second:
        yield [first, second]


@pytest.fixture(scope="module")
def config(backends: list[StubBackend]) -> dict[str, Any]:
    return generated_config(backends)


@pytest.fixture(scope="module")
def proxy(config: dict[str, Any]) -> Iterator[ProxyServer]:
    with running_proxy(config, master_key=f"sk-test-{secrets.token_urlsafe(16)}") as server:
        yield server


@pytest.fixture
def both_up(backends: list[StubBackend]) -> list[StubBackend]:
    for stub in backends:
        stub.start()
    return backends


def completions(backends: list[StubBackend]) -> list[int]:
    return [stub.completions for stub in backends]


def chat_many(proxy: ProxyServer, count: int, *, stream: bool = False, workers: int = 4) -> list[HttpResponse]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda _: proxy.chat(MODEL, stream=stream), range(count)))


def metrics(proxy: ProxyServer) -> str:
    response = proxy.request("GET", "/metrics")
    assert response.status == 200, response.text[:500]
    return response.text


def deployment_value(text: str, metric: str, model_id: str) -> float:
    return sum(value for labels, value in metric_samples(text, metric) if labels.get("model_id") == model_id)


# --- the config, checked by LiteLLM itself ---------------------------------------------------------


@pytest.mark.parametrize(
    "stores",
    [StateStores(redis=False, database=False), StateStores(redis=True, database=True)],
    ids=["local", "cluster-stores"],
)
def test_litellm_accepts_the_generated_config(backends: list[StubBackend], stores: StateStores) -> None:
    # cluster-stores: Redis and the database as `os.environ/...` references, as in the ConfigMap.
    validate_config(generated_config(backends, stores))


def test_litellm_rejects_an_unknown_routing_strategy(config: dict[str, Any]) -> None:
    broken = copy.deepcopy(config)
    broken["router_settings"]["routing_strategy"] = "fastest"
    with pytest.raises(LiteLlmConfigError, match=r"Invalid routing_strategy: 'fastest'"):
        validate_config(broken)


# --- routing -------------------------------------------------------------------------------------------


def test_requests_with_the_key_reach_both_backends(proxy: ProxyServer, both_up: list[StubBackend]) -> None:
    before = completions(both_up)
    responses = chat_many(proxy, 16)
    assert [r.status for r in responses] == [200] * 16, [r.text[:300] for r in responses if r.status != 200]
    assert all(r.json()["choices"][0]["message"]["content"].startswith("Hello from stub-") for r in responses)
    served = [after - start for after, start in zip(completions(both_up), before, strict=True)]
    assert sum(served) == 16
    assert all(n > 0 for n in served), f"simple-shuffle sent every request to one backend: {served}"


def test_streamed_requests_reach_both_backends(proxy: ProxyServer, both_up: list[StubBackend]) -> None:
    before = completions(both_up)
    responses = chat_many(proxy, 16, stream=True)
    for response in responses:
        assert response.status == 200, response.text[:300]
        assert response.headers.get("content-type", "").startswith("text/event-stream")
        events = parse_sse(response.body)
        assert events[-1] == "[DONE]"
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"])
        assert "from stub-" in text
    served = [after - start for after, start in zip(completions(both_up), before, strict=True)]
    assert sum(served) == 16
    assert all(n > 0 for n in served), f"simple-shuffle sent every stream to one backend: {served}"


# --- authentication ---------------------------------------------------------------------------------


def test_a_request_without_the_key_gets_401(proxy: ProxyServer, both_up: list[StubBackend]) -> None:
    """401 needs the `prisma` Python package in the proxy's venv (requirements-litellm.txt), even without a
    database: without it the auth path fails on `import prisma` and the proxy answers 500."""
    before = completions(both_up)
    response = proxy.chat(MODEL, authorized=False)
    assert response.status == 401, response.text[:500]
    assert response.json()["error"]["type"] == "auth_error"
    assert completions(both_up) == before


def test_a_wrong_key_gets_400_without_a_database(proxy: ProxyServer, both_up: list[StubBackend]) -> None:
    """A key other than the master key is looked up as a virtual key, which needs the database: without
    one (these tests, StateStores(database=False)) LiteLLM answers 400 "No connected db." rather than 401.
    In the cluster the database is configured and a wrong key gets 401."""
    before = completions(both_up)
    response = proxy.request(
        "POST",
        CHAT_ROUTE,
        json_body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        authorized=False,
        headers={"Authorization": "Bearer sk-not-the-master-key"},
    )
    assert response.status == 400, response.text[:500]
    assert response.json()["error"]["type"] == "no_db_connection"
    assert completions(both_up) == before


# --- probes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health/readiness", "/health/liveliness"])
def test_probes_answer_200_without_calling_the_backends(
    proxy: ProxyServer, both_up: list[StubBackend], path: str
) -> None:
    before = [stub.request_count for stub in both_up]
    for _ in range(5):
        response = proxy.request("GET", path, authorized=False, timeout=5)
        assert response.status == 200, response.text[:300]
    assert [stub.request_count for stub in both_up] == before


# --- metrics for the autoscaler ---------------------------------------------------------------------


def test_metrics_the_autoscaler_queries_exist(proxy: ProxyServer, both_up: list[StubBackend]) -> None:
    assert proxy.request("GET", "/metrics", authorized=False).status == 401, "/metrics should need the key"
    assert all(r.status == 200 for r in chat_many(proxy, 3))
    assert proxy.chat(MODEL, authorized=False).status == 401  # one failed request
    text = metrics(proxy)

    assert f"# TYPE {REQUESTS_METRIC} counter" in text
    assert f"# TYPE {FAILED_REQUESTS_METRIC} counter" in text
    served = [
        value
        for labels, value in metric_samples(text, REQUESTS_METRIC)
        if (labels.get("requested_model"), labels.get("route"), labels.get("status_code")) == (MODEL, CHAT_ROUTE, "200")
    ]
    assert sum(served) >= 3, metric_samples(text, REQUESTS_METRIC)
    failed = metric_samples(text, FAILED_REQUESTS_METRIC)
    assert any(labels.get("requested_model") == MODEL and value >= 1 for labels, value in failed), failed
    assert all("requested_model" in labels for labels, _ in failed)


def test_the_scaled_object_queries_the_metric_the_proxy_exports() -> None:
    from k8s.gateway import REQUESTS_METRIC as SCALED_OBJECT_METRIC

    assert SCALED_OBJECT_METRIC == REQUESTS_METRIC


# --- failover, cooldown, recovery --------------------------------------------------------------------


def test_a_killed_backend_loses_no_request_and_gets_traffic_after_cooldown(
    proxy: ProxyServer, both_up: list[StubBackend]
) -> None:
    """Kill one of two backends under load: every request still succeeds (retried on the survivor), the
    dead deployment is cooled down (the proxy counts few failed attempts on it), and once it is back on
    the same port it gets traffic again only after the cooldown.

    Cooldown is keyed by the deployment's `model_info.id` (`<model>-1` here), not by its address, and
    ends by time alone (no health check); the failure counter behind `allowed_fails` also lives for
    `cooldown_time`. Retries exclude a failed deployment only for non-retryable statuses (a refused
    connection is a retryable 500), so only a cooldown keeps them off the dead backend: hence
    `allowed_fails: 0` (FAILOVER_OVERRIDES).
    """
    survivor, victim = both_up
    victim_id = f"{MODEL}-1"
    baseline = metrics(proxy)
    survivor_before = survivor.completions

    victim.stop()
    killed_at = time.monotonic()
    statuses = [proxy.chat(MODEL, stream=i % 2 == 1).status for i in range(10)]
    for _ in range(4):
        statuses += [r.status for r in chat_many(proxy, 5, workers=5)]
    down_for = time.monotonic() - killed_at
    assert statuses == [200] * 30, f"lost requests: {statuses}"
    assert survivor.completions - survivor_before == 30

    during = metrics(proxy)
    cooldowns = deployment_value(during, DEPLOYMENT_COOLDOWNS_METRIC, victim_id) - deployment_value(
        baseline, DEPLOYMENT_COOLDOWNS_METRIC, victim_id
    )
    failed_attempts = deployment_value(during, DEPLOYMENT_FAILURES_METRIC, victim_id) - deployment_value(
        baseline, DEPLOYMENT_FAILURES_METRIC, victim_id
    )
    assert cooldowns >= 1, f"{victim_id} was never cooled down (down for {down_for:.1f} s)"
    assert failed_attempts <= 5, f"{failed_attempts} attempts hit the dead backend out of 30 requests"

    victim.start()
    restarted_at = time.monotonic()
    victim_before = victim.completions
    # A cooldown began after the kill, so it lasts at least until killed_at + COOLDOWN_S.
    in_cooldown_until = killed_at + COOLDOWN_S - 0.3
    sent_in_cooldown = 0
    while time.monotonic() < in_cooldown_until and sent_in_cooldown < 400:
        assert proxy.chat(MODEL).status == 200
        sent_in_cooldown += 1
        time.sleep(0.02)
    if time.monotonic() < killed_at + COOLDOWN_S:
        assert victim.completions == victim_before, "the restarted backend got traffic while cooling down"

    deadline = killed_at + COOLDOWN_S + 20
    returned_at = None
    for _ in range(200):
        assert proxy.chat(MODEL).status == 200
        if victim.completions > victim_before:
            returned_at = time.monotonic()
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert returned_at is not None, f"no traffic reached the restarted backend within {COOLDOWN_S + 20} s"
    assert returned_at - killed_at >= COOLDOWN_S - 0.3
    print(
        f"down phase {down_for:.1f} s, {failed_attempts:.0f} failed attempts on {victim_id}; "
        f"restarted after {restarted_at - killed_at:.1f} s ({sent_in_cooldown} requests during cooldown); "
        f"traffic back {returned_at - killed_at:.1f} s after the kill (cooldown {COOLDOWN_S} s)"
    )


# --- the cluster's shape: one backend (the vLLM Service) ---------------------------------------------


def test_single_backend_recovers_at_once_without_a_cooldown_lockout() -> None:
    """In the cluster LiteLLM has one deployment, the vLLM Service. A cooldown there would lock the model
    out for cooldown_time (30 s here, the real setting) after a failure: 429 "No deployments available" even
    after vLLM came back. The generated config exempts a group of one from cooldowns."""
    with StubBackend(name="only") as only:
        config = litellm_config(
            config_for("dev").gateway,  # the real settings, cooldown 30 s
            served_model_name=MODEL,
            backends=[Backend(api_base=f"http://127.0.0.1:{only.port}/v1")],
            stores=StateStores(redis=False, database=False),
        )
        assert config["model_list"][0]["model_info"]["cooldown_time"] == 0
        assert config["router_settings"]["cooldown_time"] == 30
        with running_proxy(config, master_key=f"sk-test-{secrets.token_urlsafe(16)}") as server:
            assert server.chat(MODEL).status == 200
            only.stop()
            failed = [server.chat(MODEL).status for _ in range(3)]
            assert all(status >= 500 for status in failed), failed
            only.start()
            assert server.chat(MODEL).status == 200  # well inside the 30 s a cooldown would last


@pytest.mark.parametrize("fallback", [False, True], ids=["extra-model", "extra-model-as-fallback"])
def test_an_extra_model_never_locks_the_vllm_model_out(fallback: bool) -> None:
    """With an extra model (a Bedrock model in the cluster; a stub here) the vLLM group still has one
    deployment. Killing and restoring vLLM must never give 429 once it is healthy, and with a fallback no
    request may go on to the fallback once vLLM answers again. Real settings: a 30 s cooldown would show."""
    extra = json.dumps(
        [{"model_name": "extra", "litellm_model": "hosted_vllm/extra", "fallback_for_primary": fallback}]
    )
    settings = config_for("dev", **{"gateway.extra_models": extra}).gateway
    with StubBackend(name="vllm") as vllm, StubBackend(name="extra") as extra_stub:
        config = litellm_config(
            settings,
            served_model_name=MODEL,
            backends=[Backend(api_base=vllm.base_url)],
            stores=StateStores(redis=False, database=False),
        )
        (extra_deployment,) = [m for m in config["model_list"] if m["model_name"] == "extra"]
        extra_deployment["litellm_params"]["api_base"] = extra_stub.base_url
        with running_proxy(config, master_key=f"sk-test-{secrets.token_urlsafe(16)}") as server:
            assert server.chat(MODEL).status == 200
            vllm.stop()
            down = [server.chat(MODEL) for _ in range(4)]
            if fallback:
                assert [r.status for r in down] == [200] * 4, [r.text[:200] for r in down]
                assert all("from extra" in r.json()["choices"][0]["message"]["content"] for r in down)
            else:
                assert all(r.status >= 500 and r.status != 429 for r in down), [r.status for r in down]
            vllm.start()
            before, extra_before = vllm.completions, extra_stub.completions
            back = [server.chat(MODEL) for _ in range(10)]
            assert [r.status for r in back] == [200] * 10, [r.text[:200] for r in back]
            assert vllm.completions - before == 10
            assert extra_stub.completions == extra_before
            assert server.chat("extra").status == 200  # the extra model itself still answers


def test_litellm_accepts_the_config_map_of_the_synthesized_gateway(dev: Synthesized) -> None:
    """The exact config the cluster's ConfigMap carries (one vLLM Service, Redis, Postgres)."""
    import yaml

    validate_config(yaml.safe_load(dev.one("ConfigMap", "litellm")["data"]["config.yaml"]))
