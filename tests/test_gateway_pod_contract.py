"""The real LiteLLM proxy under the synthesized pod's contract, against a real Redis cluster.

The Deployment `gateway/litellm` as synthesized: its UID and GID, only its environment, a read-only root
with only its emptyDir volumes writable, its ConfigMap's config (the vLLM address swapped for a local
stub), its container args. The Secret's values are test values; deploy-time endpoints point at a Redis
cluster on 127.0.0.1 with TLS, the default user off and the proxy's user made with the synthesized
ElastiCache access string, as ElastiCache Serverless (cluster mode only) is.

Not reproduced: the database. With DATABASE_URL set LiteLLM starts Prisma's query engine, a binary it
downloads from Prisma's servers when missing (the official image carries it; FACTS.md); no registry this
machine reaches ships it, so DATABASE_URL is left out and `general_settings.database_url` removed.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Synthesized, resources_of
from tests.litellm_harness import LITELLM_VENV, ProxyServer, StubBackend, parse_sse, running_sandboxed_proxy
from tests.pod_contract import ContractError, Sandbox, pod_contract
from tests.redis_cluster_harness import RedisCluster, running_redis_cluster

MODEL = "llama-3.1-8b-instruct"
NO_DATABASE = "Prisma's query engine cannot be downloaded here (see the module docstring)"
# What a client multi-key command on the wrong kind of client reports (redis-py, against a cluster).
CLUSTER_ERRORS = ("hash to the same slot", "CROSSSLOT", "MOVED", "NOPERM", "WRONGPASS", "NOAUTH")


@pytest.fixture(scope="module")
def cache_user(dev: Synthesized) -> dict[str, Any]:
    """The proxy's ElastiCache user as synthesized (the access string the cluster must enforce)."""
    users = resources_of(dev.stack_json("data"), "AWS::ElastiCache::User")
    (user,) = [u["Properties"] for u in users.values() if u["Properties"]["UserName"] == "litellm"]
    return dict(user)


@pytest.fixture(scope="module")
def redis_cluster(cache_user: dict[str, Any]) -> Iterator[RedisCluster]:
    with running_redis_cluster(
        user=cache_user["UserName"], password=secrets.token_hex(16), access_string=cache_user["AccessString"]
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def vllm_stub() -> Iterator[StubBackend]:
    with StubBackend(name="vllm") as stub:
        yield stub


def pod_config(dev: Synthesized, stub: StubBackend) -> dict[str, Any]:
    """The ConfigMap's config with the vLLM Service address replaced by the stub's, and no database."""
    config: dict[str, Any] = yaml.safe_load(dev.one("ConfigMap", "litellm")["data"]["config.yaml"])
    (deployment,) = config["model_list"]
    assert deployment["litellm_params"]["api_base"] == "http://vllm.inference.svc.cluster.local:8000/v1"
    deployment["litellm_params"]["api_base"] = stub.base_url
    del config["general_settings"]["database_url"]  # NO_DATABASE
    return config


# Where the sandbox sees the local cluster's CA (the host's /tmp is replaced by the pod's emptyDir).
CA_DIR = "/etc/test-redis-ca"


def contract(dev: Synthesized, cluster: RedisCluster, config_dir: Path, master_key: str) -> Sandbox:
    sandbox = pod_contract(
        dev.one("Deployment", "litellm"),
        "litellm",
        secrets={
            "litellm": {
                "master-key": master_key,
                "salt-key": secrets.token_hex(16),
                "redis-password": cluster.password,
            }
        },
        deploy_time_values={
            "REDIS_HOST": "127.0.0.1",
            "REDIS_CLUSTER_NODES": json.dumps([{"host": "127.0.0.1", "port": cluster.ports[0]}]),
        },
        config_map_dirs={"litellm": config_dir},
        omit_env={"DATABASE_URL": NO_DATABASE},
        # The image's PATH, and the CA of the local cluster where ElastiCache's is in the image's trust store.
        extra_env={"PATH": f"{LITELLM_VENV}/bin:/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE": f"{CA_DIR}/ca.crt"},
    )
    return dataclasses.replace(sandbox, read_only_binds={**sandbox.read_only_binds, CA_DIR: cluster.directory})


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o644)
    return directory


@pytest.fixture(scope="module")
def pod_proxy(
    dev: Synthesized, redis_cluster: RedisCluster, vllm_stub: StubBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ProxyServer]:
    config_dir = write_config(tmp_path_factory.mktemp("configmap") / "litellm", pod_config(dev, vllm_stub))
    master_key = f"sk-{secrets.token_hex(16)}"
    sandbox = contract(dev, redis_cluster, config_dir, master_key)
    (container,) = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    with running_sandboxed_proxy(sandbox, container["args"], master_key=master_key) as server:
        yield server


def test_the_contract_is_the_synthesized_pod(dev: Synthesized, redis_cluster: RedisCluster, tmp_path: Path) -> None:
    sandbox = contract(dev, redis_cluster, tmp_path, "sk-test")
    pod = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]
    assert (sandbox.uid, sandbox.gid) == (10001, 10001)
    assert sandbox.read_only_root is True
    assert set(sandbox.writable_paths) == {"/tmp", "/var/lib/litellm/migrations"}
    assert sandbox.read_only_binds == {"/etc/litellm": tmp_path, CA_DIR: redis_cluster.directory}
    assert "DATABASE_URL" not in sandbox.env
    assert sandbox.env["REDIS_SSL"] == "True"
    assert len(pod["containers"]) == 1


def test_a_missing_secret_key_or_endpoint_is_refused(dev: Synthesized, tmp_path: Path) -> None:
    deployment = dev.one("Deployment", "litellm")
    with pytest.raises(ContractError, match="Secret litellm key master-key"):
        pod_contract(deployment, "litellm", secrets={"litellm": {}}, deploy_time_values={}, config_map_dirs={})
    every_key = {"litellm": dict.fromkeys(("master-key", "salt-key", "database-url", "redis-password"), "x")}
    with pytest.raises(ContractError, match="env REDIS_HOST holds a deploy-time value"):
        pod_contract(deployment, "litellm", secrets=every_key, deploy_time_values={}, config_map_dirs={})


def test_the_proxy_serves_under_the_pod_contract(pod_proxy: ProxyServer, vllm_stub: StubBackend) -> None:
    before = vllm_stub.completions
    assert pod_proxy.chat(MODEL).status == 200
    streamed = pod_proxy.chat(MODEL, stream=True)
    assert streamed.status == 200
    assert parse_sse(streamed.body)[-1] == "[DONE]"
    assert vllm_stub.completions - before == 2
    assert pod_proxy.request("GET", "/health/readiness", authorized=False).status == 200
    log = pod_proxy.log()
    for symptom in ("Read-only file system", "getpwuid", "Permission denied", "Traceback"):
        assert symptom not in log, f"{symptom!r} in the proxy's log:\n{log[-3000:]}"


def test_router_state_goes_to_the_redis_cluster_without_cluster_errors(
    pod_proxy: ProxyServer, redis_cluster: RedisCluster
) -> None:
    for _ in range(6):
        assert pod_proxy.chat(MODEL).status == 200
    # Usage counters shared by the replicas (rate limits), written over TLS as the synthesized ACL user.
    assert redis_cluster.all_keys(), "the proxy wrote nothing to the Redis cluster"
    log = pod_proxy.log()
    errors = [line for line in log.splitlines() if any(e in line for e in CLUSTER_ERRORS)]
    assert errors == [], "\n".join(errors[:10])


def test_a_plain_client_on_the_cluster_would_fail_multi_key_reads(
    dev: Synthesized, redis_cluster: RedisCluster, vllm_stub: StubBackend, tmp_path: Path
) -> None:
    """The check above can fail: LiteLLM's non-cluster client (what `redis_url` configures) on the same
    cluster logs cross-slot errors on its batch reads and pipelines."""
    config = pod_config(dev, vllm_stub)
    for key in ("redis_host", "redis_port", "redis_password"):
        config["router_settings"].pop(key)
    config["router_settings"]["redis_url"] = "os.environ/REDIS_URL"
    master_key = f"sk-{secrets.token_hex(16)}"
    sandbox = contract(dev, redis_cluster, write_config(tmp_path / "litellm", config), master_key)
    url = f"rediss://{redis_cluster.user}:{redis_cluster.password}@127.0.0.1:{redis_cluster.ports[0]}"
    env = {k: v for k, v in sandbox.env.items() if k != "REDIS_CLUSTER_NODES"} | {"REDIS_URL": url}
    plain = Sandbox(sandbox.uid, sandbox.gid, env, sandbox.writable_paths, sandbox.read_only_binds)
    (container,) = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    with running_sandboxed_proxy(plain, container["args"], master_key=master_key) as server:
        for _ in range(6):
            server.chat(MODEL)
        log = server.log()
    assert any(e in log for e in CLUSTER_ERRORS), log[-3000:]
