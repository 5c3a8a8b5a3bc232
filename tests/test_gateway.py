"""The gateway tier's manifests and config (LiteLLM proxy behaviour is proven in test_gateway_proxy.py)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from platform_config import ConfigError
from tests.checkov_runner import run_checkov
from tests.conftest import Synthesized, config_for, helm_values
from tests.crd_schemas import is_custom, validate_custom_resource


@pytest.fixture(scope="module")
def gateway(dev: Synthesized) -> Synthesized:
    return dev


def test_gateway_can_be_left_out(synth_in: Any) -> None:
    synth = synth_in("dev", **{"gateway.enabled": "false"})
    assert synth.platform.gateway is None
    assert synth.find("Deployment", "litellm") == []


def test_gateway_manifests_are_valid(gateway: Synthesized) -> None:
    docs = [
        d for d in gateway.documents() if d["metadata"].get("namespace") == "gateway" or d["kind"].startswith("Ingress")
    ]
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "Ingress",
        "IngressClass",
        "IngressClassParams",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ScaledObject",
        "ConfigMap",
        "ServiceAccount",
    } <= kinds
    for doc in docs:
        if is_custom(doc):
            validate_custom_resource(doc)
        else:
            kubernetes_validate.validate(doc, "1.35", strict=True)
    report = run_checkov(gateway.manifests_dir)
    assert report.failed == [], report.describe()


def test_probes_never_use_the_model_calling_health_endpoint(gateway: Synthesized) -> None:
    (container,) = gateway.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["image"].startswith("ghcr.io/berriai/litellm:v1.102.1@sha256:")
    env = {e["name"]: e for e in container["env"]}
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"]["value"] == "True"
    assert "value" not in env["LITELLM_MASTER_KEY"]  # from a Secret, never inline


def test_config_map_holds_the_generated_config(gateway: Synthesized) -> None:
    config: dict[str, Any] = yaml.safe_load(gateway.one("ConfigMap", "litellm")["data"]["config.yaml"])
    (deployment,) = config["model_list"]
    assert deployment["litellm_params"]["api_base"] == "http://vllm.inference.svc.cluster.local:8000/v1"
    assert config["router_settings"]["num_retries"] == 2
    assert config["general_settings"] == {
        "master_key": "os.environ/LITELLM_MASTER_KEY",
        "database_url": "os.environ/DATABASE_URL",
    }
    assert config["litellm_settings"]["disable_hf_tokenizer_download"] is True


def test_internal_alb_through_auto_mode_ingress_class(gateway: Synthesized) -> None:
    ingress_class = gateway.one("IngressClass", "alb-gateway")
    assert ingress_class["spec"]["controller"] == "eks.amazonaws.com/alb"
    assert gateway.one("IngressClassParams", "alb-gateway")["spec"]["scheme"] == "internal"
    assert gateway.one("Ingress", "litellm")["spec"]["ingressClassName"] == "alb-gateway"


def test_gateway_scales_on_request_rate_and_cpu(gateway: Synthesized) -> None:
    spec = gateway.one("ScaledObject", "litellm")["spec"]
    assert spec["minReplicaCount"] == 2
    triggers = {t["name"]: t for t in spec["triggers"]}
    # LiteLLM's request counter as Prometheus stores it (FACTS.md; tests/test_gateway_proxy.py scrapes it).
    assert "litellm_proxy_total_requests_metric_total" in triggers["request-rate"]["metadata"]["query"]
    assert triggers["cpu"] == {"type": "cpu", "name": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
    # Up fast (double or +2 pods every 30 s, no stabilization), down one pod a minute after 5 quiet minutes.
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"] == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 30},
            {"type": "Pods", "value": 2, "periodSeconds": 30},
        ],
    }
    assert (behavior["scaleDown"]["stabilizationWindowSeconds"], behavior["scaleDown"]["selectPolicy"]) == (300, "Min")
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]


@pytest.mark.parametrize(
    ("version", "advisory"),
    [
        ("1.82.7", "trojaned on PyPI on 24 Mar 2026 (BerriAI/litellm#24518)"),
        ("1.82.8", "trojaned on PyPI on 24 Mar 2026 (BerriAI/litellm#24518)"),
        ("1.83.6", "CVE-2026-42208 (SQL injection, CVSS 9.3) and CVE-2026-42271"),
        ("1.107.0", "the 1.107.x releases were reported compromised on 2026-10-21"),
        ("1.107.5", "the 1.107.x releases were reported compromised on 2026-10-21"),
    ],
)
def test_forbidden_litellm_versions_name_their_advisory(version: str, advisory: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_for("dev", **{"gateway.litellm_version": version})
    assert f"gateway.litellm_version: LiteLLM {version}" in str(raised.value)
    assert advisory in str(raised.value)


def test_accepted_versions() -> None:
    image = "ghcr.io/berriai/litellm:v{}@sha256:" + "0" * 64
    for version in ("1.83.7", "1.106.2", "1.108.0"):
        overrides = {"gateway.litellm_version": version, "gateway.image": image.format(version)}
        assert config_for("dev", **overrides).gateway.litellm_version == version


def test_image_must_carry_the_configured_version() -> None:
    with pytest.raises(ConfigError, match=r"is not tagged with litellm_version 1\.102\.1"):
        config_for("dev", **{"gateway.image": "ghcr.io/berriai/litellm:v1.110.2@sha256:" + "0" * 64})


# --- state ------------------------------------------------------------------------------------------


def _data(synth: Synthesized) -> dict[str, Any]:
    return synth.stack_json("data")


def test_aurora_serverless_v2_encrypted_tls_private_with_managed_password(dev: Synthesized, prod: Synthesized) -> None:
    from tests.conftest import only, resources_of

    cluster = only(resources_of(_data(dev), "AWS::RDS::DBCluster"))["Properties"]
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["StorageEncrypted"] is True
    assert "KmsKeyId" in cluster
    assert cluster["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in cluster
    # Never 0 (auto-pause): LiteLLM's open connections keep Aurora awake, and a resume fails readiness.
    assert cluster["ServerlessV2ScalingConfiguration"]["MinCapacity"] == 0.5
    assert "SecondsUntilAutoPause" not in cluster["ServerlessV2ScalingConfiguration"]
    prod_cluster = only(resources_of(_data(prod), "AWS::RDS::DBCluster"))["Properties"]
    assert prod_cluster["ServerlessV2ScalingConfiguration"]["MinCapacity"] == 0.5
    assert prod_cluster["DeletionProtection"] is True
    params = only(resources_of(_data(dev), "AWS::RDS::DBClusterParameterGroup"))["Properties"]["Parameters"]
    assert params["rds.force_ssl"] == "1"
    assert len(resources_of(_data(prod), "AWS::RDS::DBInstance")) == 2  # writer and a reader in another AZ


def _ingress_rules(template: dict[str, Any], description_part: str) -> list[dict[str, Any]]:
    from tests.conftest import resources_of

    groups = [
        g
        for g in resources_of(template, "AWS::EC2::SecurityGroup").values()
        if description_part in g["Properties"]["GroupDescription"]
    ]
    assert len(groups) == 1
    rules: list[dict[str, Any]] = groups[0]["Properties"].get("SecurityGroupIngress", [])
    rules += [r["Properties"] for r in resources_of(template, "AWS::EC2::SecurityGroupIngress").values()]
    return rules


def test_stores_are_reachable_only_from_the_cluster(dev: Synthesized) -> None:
    from tests.conftest import resources_of

    data = _data(dev)
    for port in (5432, 6379):
        rules = [r for r in _ingress_rules(data, f"port {port}") if r.get("FromPort") == port]
        assert rules, port
        for rule in rules:
            assert "CidrIp" not in rule
            assert "SourceSecurityGroupId" in rule
    cache = next(iter(resources_of(data, "AWS::ElastiCache::ServerlessCache").values()))["Properties"]
    assert cache["Engine"] == "valkey"
    assert "KmsKeyId" in cache
    users = {
        u["Properties"]["UserName"]: u["Properties"] for u in resources_of(data, "AWS::ElastiCache::User").values()
    }
    assert users["default"]["AccessString"].startswith("off")
    assert users["litellm"]["AuthenticationMode"]["Type"] == "password"


def test_proxy_secret_is_built_by_external_secrets_from_secrets_manager(dev: Synthesized) -> None:
    (store,) = [s for s in dev.find("SecretStore", "aws-secrets-manager") if s["metadata"]["namespace"] == "gateway"]
    assert store["spec"]["provider"]["aws"]["service"] == "SecretsManager"
    assert "auth" not in store["spec"]["provider"]["aws"]  # the controller's Pod Identity
    external = dev.one("ExternalSecret", "litellm")["spec"]
    assert external["target"]["name"] == "litellm"
    assert set(external["target"]["template"]["data"]) == {"master-key", "salt-key", "database-url", "redis-password"}
    assert external["refreshInterval"] == "5m"
    (container,) = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    referenced = {e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert referenced == set(external["target"]["template"]["data"])
    env = {e["name"]: e for e in container["env"]}
    # The salt key is a secret of its own, not the master key (LiteLLM production guide).
    assert env["LITELLM_SALT_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "salt-key"
    remote = {d["secretKey"]: d["remoteRef"]["key"] for d in external["data"]}
    assert remote["saltkey"] != remote["masterkey"]


def test_proxy_uses_a_tls_cluster_client_for_elasticache_serverless(dev: Synthesized) -> None:
    """ElastiCache Serverless is cluster mode only: REDIS_CLUSTER_NODES makes LiteLLM build its cluster
    client, REDIS_SSL turns TLS on, REDIS_USERNAME names the RBAC user (proved with a real cluster in
    test_gateway_pod_contract.py)."""
    (container,) = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDIS_SSL"]["value"] == "True"
    assert env["REDIS_USERNAME"]["value"] == "litellm"
    nodes = env["REDIS_CLUSTER_NODES"]["value"]
    assert nodes.startswith('[{"host": "<deploy-time ')
    assert "CacheFA329FB1EndpointAddress" in nodes
    assert nodes.endswith(', "port": 6379}]')
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "litellm", "key": "redis-password"}
    config: dict[str, Any] = yaml.safe_load(dev.one("ConfigMap", "litellm")["data"]["config.yaml"])
    assert "redis_url" not in config["router_settings"]
    assert config["router_settings"]["redis_host"] == "os.environ/REDIS_HOST"


def test_read_only_root_has_a_writable_migration_dir_and_a_patient_readiness_probe(dev: Synthesized) -> None:
    pod = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[env["LITELLM_MIGRATION_DIR"]]]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # LiteLLM gives its readiness DB check up to 4 s (DB_READINESS_PROBE_DEADLINE_SECONDS).
    assert container["readinessProbe"]["timeoutSeconds"] == 5
    assert container["startupProbe"]["timeoutSeconds"] == 5
    # First-boot migrations run before the proxy listens; LiteLLM allows them 600 s.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_reloader_restarts_the_proxy_when_its_secret_changes(dev: Synthesized) -> None:

    from tests.conftest import resources_of

    deployment = dev.one("Deployment", "litellm")
    assert deployment["metadata"]["annotations"]["secret.reloader.stakater.com/reload"] == "litellm"
    (chart,) = [
        r["Properties"]
        for r in resources_of(dev.stack_json("gateway"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "reloader"
    ]
    assert chart["Repository"] == "https://stakater.github.io/stakater-charts"
    assert chart["Version"] == "2.2.16"
    values = helm_values(chart["Values"])["reloader"]
    assert values["watchGlobally"] is False
    assert values["namespaces"] == ["gateway"]
    assert values["reloadStrategy"] == "annotations"
    container = values["deployment"]["containerSecurityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["runAsNonRoot"] is True
    assert container["readOnlyRootFilesystem"] is True


def test_external_secrets_controller_reads_only_the_gateway_secrets(dev: Synthesized) -> None:
    from tests.conftest import resources_of

    gateway = dev.stack_json("gateway")
    associations = {
        a["Properties"]["ServiceAccount"]: a["Properties"]
        for a in resources_of(gateway, "AWS::EKS::PodIdentityAssociation").values()
    }
    assert associations["external-secrets"]["Namespace"] == "external-secrets"
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources_of(gateway, "AWS::IAM::ManagedPolicy").values()
    ]
    (statements,) = policies
    (read,) = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert len(read["Resource"]) == 4  # master key, salt key, database password, cache password
    assert "*" not in str(read["Resource"])


def test_prometheus_scrapes_litellm_with_the_key_from_external_secrets(dev: Synthesized) -> None:

    from tests.conftest import resources_of

    (chart,) = [
        r
        for r in resources_of(dev.stack_json("observability"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "prometheus"
    ]
    values = helm_values(chart["Properties"]["Values"])
    job = values["scrapeConfigs"]["litellm"]
    (mount,) = values["server"]["extraSecretMounts"]
    assert job["authorization"]["credentials_file"] == f"{mount['mountPath']}/token"
    assert mount["optional"] is True
    token = dev.one("ExternalSecret", mount["secretName"])
    assert token["metadata"]["namespace"] == "observability"
    assert token["spec"]["target"]["template"]["data"] == {"token": "sk-{{ .masterkey }}"}


def test_tracing_and_a_bedrock_fallback(synth_in: Any) -> None:
    import json

    from tests.conftest import resources_of

    model = "anthropic.claude-3-5-sonnet-20240620-v1:0"
    synth = synth_in(
        "dev",
        **{
            "observability.tracing.mode": "external",
            # A port other than 443: the gateway's egress policy must open it (tests/test_gateway_tracing.py runs
            # the proxy against a local LangFuse stand-in; this synth checks the wiring through the stack).
            "observability.tracing.host": "https://langfuse.example.com:8443",
            "observability.tracing.keys_secret_name": "genai/langfuse",
            "gateway.extra_models": json.dumps(
                [{"model_name": "claude", "litellm_model": f"bedrock/{model}", "fallback_for_primary": True}]
            ),
        },
    )
    config: dict[str, Any] = yaml.safe_load(synth.one("ConfigMap", "litellm")["data"]["config.yaml"])
    # langfuse_otel: LiteLLM's OTLP exporter to LangFuse, no LangFuse SDK (k8s/tracing.py).
    assert config["litellm_settings"]["callbacks"] == ["prometheus", "langfuse_otel"]
    assert config["router_settings"]["fallbacks"] == [{"llama-3.1-8b-instruct": ["claude"]}]
    # Each group has one deployment: neither may be cooled down (locked out) after a failure.
    assert config["router_settings"]["allowed_fails"] == 0
    assert [m["model_info"]["cooldown_time"] for m in config["model_list"]] == [0, 0]
    (container,) = synth.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["LANGFUSE_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "litellm", "key": "langfuse-secret-key"}
    assert env["LANGFUSE_PUBLIC_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "litellm", "key": "langfuse-public-key"}
    assert env["LANGFUSE_OTEL_HOST"]["value"] == "https://langfuse.example.com:8443"
    assert env["LANGFUSE_TRACING_ENVIRONMENT"]["value"] == "dev"
    external = synth.one("ExternalSecret", "litellm")["spec"]
    # Both fields of one secret (the README's keys secret format).
    keys = [d["remoteRef"] for d in external["data"] if d["remoteRef"]["property"] in ("public_key", "secret_key")]
    assert sorted(ref["property"] for ref in keys) == ["public_key", "secret_key"]
    assert keys[0]["key"] == keys[1]["key"]
    egress = synth.one("NetworkPolicy", "litellm")["spec"]["egress"]
    assert {"ports": [{"port": 8443, "protocol": "TCP"}]} in egress
    gateway = synth.stack_json("gateway")
    text = json.dumps(resources_of(gateway, "AWS::IAM::ManagedPolicy"))
    assert f"foundation-model/{model}" in text
    assert "secret:genai/langfuse-??????" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "gateway.stores.database_min_acu: must be at least 0.5 ACU: at 0 Aurora would pause"),
        ("0.3", "gateway.stores.database_min_acu: must be a multiple of 0.5 ACU"),
    ],
)
def test_aurora_minimum_is_a_running_capacity(value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        config_for("dev", **{"gateway.stores.database_min_acu": value})
    assert config_for("dev", **{"gateway.stores.database_min_acu": "0.5"}).gateway.stores.database_min_acu == 0.5
    assert config_for("dev", **{"gateway.stores.database_min_acu": "1.5"}).gateway.stores.database_min_acu == 1.5


def test_an_extra_model_may_not_take_the_vllm_model_name() -> None:
    import json

    clash = json.dumps([{"model_name": "llama-3.1-8b-instruct", "litellm_model": "bedrock/meta.llama3-1-8b"}])
    with pytest.raises(ConfigError) as raised:
        config_for("dev", **{"gateway.extra_models": clash})
    assert (
        "gateway.extra_models.0.model_name 'llama-3.1-8b-instruct' is the vLLM model's name "
        "(inference.vllm.served_model_name): the gateway would shuffle requests between vLLM and "
        "bedrock/meta.llama3-1-8b; give it its own name and set fallback_for_primary to true"
    ) in str(raised.value)
