"""Every vLLM replica gets traffic: the real LiteLLM proxy in front of a kube-proxy stand-in.

In the cluster LiteLLM reaches vLLM through one ClusterIP Service, which balances TCP connections, not
requests. Here the proxy's single vLLM deployment points at an L4 forwarder on 127.0.0.1 that picks a
backend per new connection from a list the test changes while load runs (tests/l4_forwarder.py); the
backends are stubs that keep streaming connections open as vLLM does and record when each request
arrived. The proxy runs with the synthesized Deployment's connection setting (AIOHTTP_KEEPALIVE_TIMEOUT)
and the synthesized router settings.

The floor (issue: per-request balancing): a backend added under load gets, within 10 s, at least 40% of
an even split's share; a backend removed gets no request once the requests already sent have landed (1 s);
under steady closed-loop load, bursty open-loop arrivals and a ramp. A control run with LiteLLM's default
(pooled) connections shows the check failing: the added backend gets nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import yaml

from tests.balancing_harness import DRAIN_S, MIN_SHARE_OF_EVEN, STUB_DELAY_S, WINDOW_S, run_scenario
from tests.conftest import Synthesized
from tests.l4_forwarder import L4Forwarder
from tests.litellm_harness import ProxyServer, StubBackend, running_proxy


def endpoints(forwarder: L4Forwarder) -> Any:
    def set_backends(backends: Sequence[StubBackend]) -> None:
        forwarder.set_backends([stub.port for stub in backends])

    return set_backends


@pytest.fixture(scope="module")
def stubs() -> Iterator[list[StubBackend]]:
    started = [StubBackend(name=f"vllm-{i}", delay=STUB_DELAY_S, keep_alive=True).start() for i in range(3)]
    yield started
    for stub in started:
        stub.stop()


def synthesized_proxy(dev: Synthesized, forwarder: L4Forwarder, *, use_synthesized_connection_setting: bool) -> Any:
    """The ConfigMap's config (its one vLLM deployment aimed at the forwarder, no stores) and, unless this
    is the control run, the Deployment's AIOHTTP_KEEPALIVE_TIMEOUT."""
    config: dict[str, Any] = yaml.safe_load(dev.one("ConfigMap", "litellm")["data"]["config.yaml"])
    (deployment,) = config["model_list"]
    deployment["litellm_params"]["api_base"] = f"{forwarder.url}/v1"
    config["router_settings"] = {k: v for k, v in config["router_settings"].items() if not k.startswith("redis_")}
    del config["general_settings"]["database_url"]
    (container,) = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if e["name"] == "AIOHTTP_KEEPALIVE_TIMEOUT"}
    return running_proxy(
        config, master_key=f"sk-{secrets.token_hex(8)}", env=env if use_synthesized_connection_setting else {}
    )


@pytest.fixture(scope="module")
def forwarder(stubs: list[StubBackend]) -> Iterator[L4Forwarder]:
    with L4Forwarder([stubs[0].port, stubs[1].port]) as started:
        yield started


@pytest.fixture(scope="module")
def proxy(dev: Synthesized, forwarder: L4Forwarder) -> Iterator[ProxyServer]:
    with synthesized_proxy(dev, forwarder, use_synthesized_connection_setting=True) as server:
        yield server


def test_the_deployment_opens_a_connection_per_request(dev: Synthesized) -> None:
    (container,) = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AIOHTTP_KEEPALIVE_TIMEOUT"] == "0"


@pytest.mark.parametrize("load", ["steady", "bursty", "ramp"])
def test_a_new_replica_gets_its_share_and_a_removed_one_nothing(
    proxy: ProxyServer, forwarder: L4Forwarder, stubs: list[StubBackend], load: str
) -> None:
    run = run_scenario(proxy, endpoints(forwarder), stubs, load)
    assert run.responses, "no request completed"
    assert set(run.responses) == {200}, f"failed requests: {[s for s in run.responses if s != 200][:10]}"
    share = run.new_backend_share()
    print(
        f"{load}: new backend's share in {WINDOW_S:.0f} s: {share:.2f} (even split 0.33), {len(run.responses)} requests"
    )
    assert share >= MIN_SHARE_OF_EVEN / 3, f"the added backend got {share:.2f} of requests (even split: 0.33)"
    late = [t for t in stubs[0].arrivals() if t > run.removed_at + DRAIN_S]
    assert late == [], f"{len(late)} requests reached the removed backend after its endpoint went away"


def test_pooled_connections_starve_a_new_replica(
    dev: Synthesized, stubs: list[StubBackend], forwarder: L4Forwarder
) -> None:
    """Control: LiteLLM's default keep-alive pool, same load. The checks above fail: the new backend gets
    (almost) nothing and the removed one keeps getting requests over its open connections."""
    with synthesized_proxy(dev, forwarder, use_synthesized_connection_setting=False) as server:
        run = run_scenario(server, endpoints(forwarder), stubs, "steady")
    assert run.new_backend_share() < MIN_SHARE_OF_EVEN / 3
    assert [t for t in stubs[0].arrivals() if t > run.removed_at + DRAIN_S]
