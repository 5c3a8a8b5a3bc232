"""How the synthesized LiteLLM Deployment is wired to what it needs: its config file, its stores, the secret
fields External Secrets copies, the Service and Ingress in front of it, and its drain.

Each test reads the session's dev synth (manifests and the data stack's template); expected values are
written here with their reasons, never imported from the code under test.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.conftest import Synthesized

# The ConfigMap key and the path the proxy is told to read (README, Gateway tier).
CONFIG_PATH = "/etc/litellm/config.yaml"
PROXY_PORT = 4000
# The data stack's router timeout default (600 s), the proxy's preStop sleep (10 s) and 30 s to shut down.
ROUTER_TIMEOUT_SECONDS = 600
PRE_STOP_SECONDS = 10
# Fields of a secret RDS manages for a cluster's master user (Aurora User Guide, rds-secrets-manager).
RDS_MASTER_USER_SECRET_FIELDS = {"username", "password"}


def _pod(synth: Synthesized) -> dict[str, Any]:
    pod: dict[str, Any] = synth.one("Deployment", "litellm")["spec"]["template"]["spec"]
    return pod


def _container(synth: Synthesized) -> dict[str, Any]:
    (container,) = _pod(synth)["containers"]
    return dict(container)


def _env(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container(synth)["env"]}


def _deploy_time(value: str) -> dict[str, Any]:
    """`<deploy-time {...}>`, the way dist/k8s shows a CloudFormation expression, as that expression."""
    assert value.startswith("<deploy-time "), value
    assert value.endswith(">"), value
    expression: dict[str, Any] = json.loads(value.removeprefix("<deploy-time ").removesuffix(">"))
    return expression


def _data_resource(synth: Synthesized, value: str) -> tuple[dict[str, Any], str | None]:
    """The data-stack resource a deploy-time value names, and the attribute it reads (None for a Ref)."""
    output = _deploy_time(value)["Fn::GetStackOutput"]
    data = synth.stack_json("data")
    assert output["StackName"] == f"{synth.config.prefix}-data"
    source = data["Outputs"][output["OutputName"]]["Value"]
    if "Ref" in source:
        return data["Resources"][source["Ref"]], None
    logical_id, attribute = source["Fn::GetAtt"]
    return data["Resources"][logical_id], attribute


def test_the_proxy_starts_on_the_generated_config_and_its_port(dev: Synthesized) -> None:
    """Without `--config` LiteLLM starts with no model at all: every request would fail."""
    container = _container(dev)
    assert container["args"] == ["--config", CONFIG_PATH, "--port", str(PROXY_PORT), "--num_workers", "1"]
    assert container["ports"] == [{"name": "http", "containerPort": PROXY_PORT, "protocol": "TCP"}]
    directory, file_name = CONFIG_PATH.rsplit("/", 1)
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    (volume,) = [v for v in _pod(dev)["volumes"] if v["name"] == mount["name"]]
    config_map = dev.one("ConfigMap", volume["configMap"]["name"])
    assert config_map["metadata"]["namespace"] == "gateway"
    assert "model_list" in yaml.safe_load(config_map["data"][file_name])


def test_each_request_to_vllm_opens_its_own_connection(dev: Synthesized) -> None:
    """The vLLM Service balances connections, not requests: with LiteLLM's pooled keep-alive connections a new
    replica got no request and a removed one kept getting them (tests/test_gateway_balancing.py)."""
    assert _env(dev)["AIOHTTP_KEEPALIVE_TIMEOUT"] == {"name": "AIOHTTP_KEEPALIVE_TIMEOUT", "value": "0"}


def test_the_proxy_finds_the_serverless_cache_at_its_endpoint(dev: Synthesized) -> None:
    env = _env(dev)
    host = env["REDIS_HOST"]["value"]
    cache, attribute = _data_resource(dev, host)
    assert cache["Type"] == "AWS::ElastiCache::ServerlessCache"
    assert attribute == "Endpoint.Address"
    # ElastiCache Serverless (Valkey) listens on 6379; the cluster client starts from the same host.
    assert env["REDIS_PORT"]["value"] == "6379"
    assert env["REDIS_CLUSTER_NODES"]["value"] == f'[{{"host": "{host}", "port": 6379}}]'


def test_each_secret_value_is_read_from_a_field_its_secret_holds(dev: Synthesized) -> None:
    """A remoteRef without `property` copies the secret's whole JSON document into the key: the proxy would
    start with a master key, a salt key and passwords that match nothing."""
    for external in dev.find("ExternalSecret"):
        for item in external["spec"]["data"]:
            secret, attribute = _data_resource(dev, item["remoteRef"]["key"])
            if attribute == "MasterUserSecret.SecretArn":
                assert secret["Type"] == "AWS::RDS::DBCluster"
                fields = RDS_MASTER_USER_SECRET_FIELDS
            else:
                assert (secret["Type"], attribute) == ("AWS::SecretsManager::Secret", None)
                generated = secret["Properties"]["GenerateSecretString"]
                fields = {generated["GenerateStringKey"], *json.loads(generated["SecretStringTemplate"])}
            where = f"{external['metadata']['namespace']}/{external['metadata']['name']}: {item['secretKey']}"
            assert item["remoteRef"].get("property") in fields, where
    # The database user and its password come from the one secret RDS rotates.
    remote = {d["secretKey"]: d["remoteRef"] for d in dev.one("ExternalSecret", "litellm")["spec"]["data"]}
    assert remote["dbuser"]["key"] == remote["dbpassword"]["key"]
    assert (remote["dbuser"]["property"], remote["dbpassword"]["property"]) == ("username", "password")


def test_the_service_and_the_ingress_reach_the_proxy_port(dev: Synthesized) -> None:
    service = dev.one("Service", "litellm")["spec"]
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert service["selector"] == dev.one("Deployment", "litellm")["spec"]["selector"]["matchLabels"]
    ports = {p["name"]: p["containerPort"] for p in _container(dev)["ports"]}
    assert ports[service["ports"][0]["targetPort"]] == PROXY_PORT
    (rule,) = dev.one("Ingress", "litellm")["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    assert backend["name"] == "litellm"
    assert backend["port"]["name"] in {p["name"] for p in service["ports"]}


def test_a_draining_proxy_leaves_the_service_then_finishes_its_longest_request(dev: Synthesized) -> None:
    """preStop sleeps until the endpoint is gone from the Service and the ALB; the grace period then covers the
    longest request the router allows, plus 30 s to shut down. An unready proxy (its database check failing)
    is out of the Service after three failed checks five seconds apart."""
    container = _container(dev)
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": PRE_STOP_SECONDS}}
    assert _pod(dev)["terminationGracePeriodSeconds"] == PRE_STOP_SECONDS + ROUTER_TIMEOUT_SECONDS + 30
    readiness = container["readinessProbe"]
    assert (readiness["periodSeconds"], readiness["failureThreshold"]) == (5, 3)
    assert readiness["httpGet"] == {"path": "/health/readiness", "port": "http"}


def test_each_external_secret_reads_through_a_secret_store_of_its_namespace(dev: Synthesized) -> None:
    """An ExternalSecret without a store name (the CRD does not require one) never syncs: External Secrets
    cannot tell which provider to read, and the proxy's Secret is never created."""
    stores = {(s["metadata"]["namespace"], s["metadata"]["name"]): s["spec"] for s in dev.find("SecretStore")}
    externals = dev.find("ExternalSecret")
    assert {e["metadata"]["namespace"] for e in externals} == {"gateway", "observability"}
    for external in externals:
        namespace = external["metadata"]["namespace"]
        reference = external["spec"]["secretStoreRef"]
        assert reference.get("kind", "SecretStore") == "SecretStore"
        store = stores[(namespace, reference["name"])]
        assert store["provider"]["aws"]["service"] == "SecretsManager"
