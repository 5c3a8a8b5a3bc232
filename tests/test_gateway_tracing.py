"""The gateway sends a LangFuse trace of every request (observability.tracing), proven with the real proxy.

One real LiteLLM proxy (1.102.1, from `.venv-litellm`) runs with tracing in mode `external`: its config is
`litellm_config` with the gateway's settings (the ConfigMap's `litellm_settings`, checked equal below) in
front of a stub vLLM, and its environment is the LangFuse part of the Deployment's env, rendered by cdk8s
alone, with the key references resolved the way External Secrets resolves them: from a Secrets Manager JSON
object through the ExternalSecret's template into the Kubernetes Secret. The host points at an OTLP/HTTP
sink on 127.0.0.1 (tests/otlp_sink.py) that plays LangFuse. The proxy serves streamed and non-streamed
requests carrying session and run metadata; the sink shows what LangFuse would receive.

Only in the test: OTEL_BSP_SCHEDULE_DELAY (OpenTelemetry SDK environment variable, default 5000 ms) is
shortened so the batch span processor exports within a fraction of a second.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import cdk8s
import pytest
import yaml

from k8s.gateway import GatewayChart, GatewaySecrets, GatewayWiring
from k8s.gateway_config import Backend, StateStores, litellm_config
from k8s.tracing import LangfuseTarget
from platform_config import ConfigError, PlatformConfig, namespaces
from tests.conftest import Synthesized, config_for
from tests.litellm_harness import HttpResponse, StubBackend, metric_samples, running_proxy
from tests.otlp_sink import PROTOBUF, OtlpSink, ReceivedRequest, ReceivedSpan

EXTERNAL = {
    "observability.tracing.mode": "external",
    "observability.tracing.host": "https://langfuse.example.com",
    "observability.tracing.keys_secret_name": "genai/langfuse",
}
KEYS_ARN = "arn:aws:secretsmanager:us-west-2:123456789012:secret:genai/langfuse"
PUBLIC_KEY = f"pk-lf-{secrets.token_hex(8)}"
SECRET_KEY = f"sk-lf-{secrets.token_hex(8)}"
# LangFuse's OTLP endpoint is {host}/api/public/otel (LangFuse docs, "OpenTelemetry"; LiteLLM docs,
# langfuse_otel_integration); an OTLP/HTTP exporter posts traces to its /v1/traces.
TRACES_PATH = "/api/public/otel/v1/traces"
# LiteLLM 1.102.1 langfuse_otel.py LANGFUSE_INGESTION_VERSION_HEADER / LANGFUSE_INGESTION_VERSION: selects
# LangFuse's v4 ingestion path.
INGESTION_HEADER = ("x-langfuse-ingestion-version", "4")
# What LiteLLM 1.102.1 reads for the callback (langfuse_otel.py; OTEL_ENVIRONMENT_NAME in opentelemetry.py).
LANGFUSE_ENV = {
    "LANGFUSE_OTEL_HOST",
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "LANGFUSE_TRACING_ENVIRONMENT",
    "OTEL_ENVIRONMENT_NAME",
}
# The keys secret's JSON fields: what the README tells users to create.
KEYS_JSON = {"public_key": PUBLIC_KEY, "secret_key": SECRET_KEY}
# The web Service of the official chart langfuse/langfuse-k8s 2.0.0 with release name "langfuse": `<release>-web`
# on langfuse.web.service.port 3000, which is also the pod's containerPort.
IN_CLUSTER_HOST = "http://langfuse-web.langfuse.svc.cluster.local:3000"

RUN_ID = f"run-{secrets.token_hex(4)}"
USER = "user-7"


@dataclass(frozen=True)
class Call:
    generation: str
    session: str
    stream: bool


# Three sessions of two requests each, one streamed and one not: one trace per request, even in a session.
CALLS = [Call(f"request-{i}", f"session-{i // 2}", stream=i % 2 == 1) for i in range(6)]


def external_config() -> PlatformConfig:
    return config_for("dev", **EXTERNAL)


def gateway_documents(config: PlatformConfig, tracing: LangfuseTarget | None) -> list[dict[str, Any]]:
    """The gateway chart as stacks/gateway.py wires it, rendered by cdk8s alone (placeholder ARNs and hosts)."""
    chart = GatewayChart(
        cdk8s.App(),
        "gateway",
        settings=config.gateway,
        wiring=GatewayWiring(
            namespace="gateway",
            service_account="litellm",
            served_model_name=config.inference.vllm.served_model_name,
            vllm_url="http://vllm.inference.svc.cluster.local:8000/v1",
            vllm_namespace="inference",
            metrics_namespace="observability",
            prometheus_url="http://prometheus-server.observability.svc.cluster.local",
            vpc_cidr=config.vpc.cidr,
            secrets=GatewaySecrets(
                region="us-west-2",
                master_key_arn="arn:aws:secretsmanager:us-west-2:123456789012:secret:master-AbCdEf",
                salt_key_arn="arn:aws:secretsmanager:us-west-2:123456789012:secret:salt-AbCdEf",
                database_secret_arn="arn:aws:secretsmanager:us-west-2:123456789012:secret:db-AbCdEf",
                database_host="db.example.internal",
                cache_secret_arn="arn:aws:secretsmanager:us-west-2:123456789012:secret:cache-AbCdEf",
                cache_host="cache.example.internal",
            ),
            tracing=tracing,
        ),
        labels={},
    )
    return [dict(doc) for doc in chart.to_json()]


def one(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container_env(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (container,) = one(documents, "Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    env: list[dict[str, Any]] = container["env"]
    return env


_REFERENCE = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def secret_data(external_secret: Mapping[str, Any], remote: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The Kubernetes Secret External Secrets would write, for the templates that are plain `{{ .name }}`
    substitutions of values found in `remote` (secret ARN -> its JSON object); the rest are left out."""
    spec = external_secret["spec"]
    values = {
        item["secretKey"]: remote[item["remoteRef"]["key"]][item["remoteRef"]["property"]]
        for item in spec["data"]
        if item["remoteRef"]["key"] in remote
    }
    data = {}
    for key, template in spec["target"]["template"]["data"].items():
        names = _REFERENCE.findall(template)
        if names and all(name in values for name in names) and "|" not in template:
            data[key] = _REFERENCE.sub(lambda match: values[match[1]], template)
    return data


def langfuse_environment(documents: list[dict[str, Any]], remote: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The Deployment's LANGFUSE_*/OTEL_* variables with their values, Secret references resolved."""
    external_secret = one(documents, "ExternalSecret", "litellm")
    data = secret_data(external_secret, remote)
    env = {}
    for item in container_env(documents):
        if not item["name"].startswith(("LANGFUSE_", "OTEL_")):
            continue
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            reference = item["valueFrom"]["secretKeyRef"]
            assert reference["name"] == external_secret["spec"]["target"]["name"]
            env[item["name"]] = data[reference["key"]]
    return env


# --- the real proxy --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """What one traced proxy run produced."""

    responses: list[HttpResponse]
    exports: list[ReceivedRequest]
    spans: list[ReceivedSpan]
    metrics: str
    environment: dict[str, str]


def _body(model: str, call: Call) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": f"Say hello ({call.generation})."}],
        "stream": call.stream,
        "user": USER,
        "metadata": {
            "session_id": call.session,
            "generation_name": call.generation,
            "trace_name": "tracing-test",
            "tags": ["tracing-test", RUN_ID],
            "trace_metadata": {"run_id": RUN_ID},
        },
    }


def _roots(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    return [span for span in spans if not span.parent_span_id]


@pytest.fixture(scope="module")
def exchange() -> Iterator[Exchange]:
    config = external_config()
    model = config.inference.vllm.served_model_name
    with OtlpSink() as sink, StubBackend(name="vllm") as stub:
        target = LangfuseTarget.external(host=sink.url, keys_secret_arn=KEYS_ARN, environment=config.env_name)
        documents = gateway_documents(config, target)
        environment = langfuse_environment(documents, {KEYS_ARN: KEYS_JSON})
        proxy_config = litellm_config(
            config.gateway,
            served_model_name=model,
            backends=[Backend(stub.base_url)],
            stores=StateStores(redis=False, database=False),
            tracing=True,
        )
        deployed = yaml.safe_load(one(documents, "ConfigMap", "litellm")["data"]["config.yaml"])
        assert proxy_config["litellm_settings"] == deployed["litellm_settings"]
        env = {**environment, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with running_proxy(proxy_config, master_key=f"sk-test-{secrets.token_urlsafe(16)}", env=env) as proxy:
            responses = [proxy.request("POST", "/v1/chat/completions", json_body=_body(model, call)) for call in CALLS]
            expected = {call.generation for call in CALLS}
            sink.wait_for(
                lambda spans: {r.attributes.get("langfuse.generation.name") for r in _roots(spans)} >= expected,
                timeout=30,
            )
            metrics = proxy.request("GET", "/metrics").text
            # Anything still queued (a duplicate, a late span) arrives within a few schedule delays.
            sink.wait_for(lambda _: False, timeout=1.0)
        yield Exchange(responses, sink.requests(), sink.spans(), metrics, environment)


def test_every_request_succeeds_with_tracing_on(exchange: Exchange) -> None:
    assert [r.status for r in exchange.responses] == [200] * len(CALLS), [r.text[:200] for r in exchange.responses]
    streamed = [r for r, call in zip(exchange.responses, CALLS, strict=True) if call.stream]
    assert all(r.text.rstrip().endswith("data: [DONE]") for r in streamed)


def test_exports_reach_langfuse_otlp_endpoint_with_the_project_keys(exchange: Exchange) -> None:
    assert exchange.exports, "the proxy exported nothing"
    basic = base64.b64encode(f"{PUBLIC_KEY}:{SECRET_KEY}".encode()).decode()
    for export in exchange.exports:
        assert export.path == TRACES_PATH
        assert export.headers["content-type"] == PROTOBUF
        assert export.headers["authorization"] == f"Basic {basic}"
        assert export.headers[INGESTION_HEADER[0]] == INGESTION_HEADER[1]


def test_one_trace_per_request(exchange: Exchange) -> None:
    roots = _roots(exchange.spans)
    assert len(roots) == len(CALLS), [(r.name, r.attributes.get("langfuse.generation.name")) for r in roots]
    # Each request's generation name is on exactly one root span, and the roots have distinct trace ids.
    assert Counter(r.attributes["langfuse.generation.name"] for r in roots) == Counter(c.generation for c in CALLS)
    assert len({r.trace_id for r in roots}) == len(CALLS)
    # Every other span belongs to one of those traces (no stray trace per request).
    assert {span.trace_id for span in exchange.spans} == {r.trace_id for r in roots}
    # metadata.generation_name also names the span (LangFuse's observation name).
    assert {r.name for r in roots} == {c.generation for c in CALLS}


def test_session_and_run_metadata_become_trace_attributes(exchange: Exchange) -> None:
    by_generation = {r.attributes["langfuse.generation.name"]: r for r in _roots(exchange.spans)}
    sessions: dict[str, set[str]] = defaultdict(set)
    for call in CALLS:
        attributes = by_generation[call.generation].attributes
        assert attributes["session.id"] == call.session
        assert attributes["user.id"] == USER
        assert json.loads(attributes["langfuse.trace.metadata"]) == {"run_id": RUN_ID}
        assert json.loads(attributes["langfuse.trace.tags"]) == ["tracing-test", RUN_ID]
        assert attributes["langfuse.trace.name"] == "tracing-test"
        assert attributes["langfuse.environment"] == "dev"
        assert attributes["langfuse.observation.type"] == "generation"
        sessions[call.session].add(by_generation[call.generation].trace_id)
    # A session groups its requests in LangFuse; each request keeps its own trace.
    assert {session: len(traces) for session, traces in sessions.items()} == {f"session-{i}": 2 for i in range(3)}


def test_prometheus_callback_still_counts_every_request(exchange: Exchange) -> None:
    model = external_config().inference.vllm.served_model_name
    samples = metric_samples(exchange.metrics, "litellm_proxy_total_requests_metric_total")
    assert sum(value for labels, value in samples if labels.get("requested_model") == model) == len(CALLS)


def test_the_proxy_ran_with_the_deployments_langfuse_environment(exchange: Exchange) -> None:
    assert set(exchange.environment) == LANGFUSE_ENV
    assert exchange.environment["LANGFUSE_PUBLIC_KEY"] == PUBLIC_KEY
    assert exchange.environment["LANGFUSE_SECRET_KEY"] == SECRET_KEY
    assert exchange.environment["LANGFUSE_TRACING_ENVIRONMENT"] == "dev"


# --- the manifests ------------------------------------------------------------------------------------------


def test_keys_reach_the_pod_only_through_the_external_secret() -> None:
    config = external_config()
    target = LangfuseTarget.external(
        host="https://langfuse.example.com", keys_secret_arn=KEYS_ARN, environment=config.env_name
    )
    documents = gateway_documents(config, target)
    env = {item["name"]: item for item in container_env(documents)}
    assert set(env) >= LANGFUSE_ENV
    for name in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "litellm"
    assert env["LANGFUSE_OTEL_HOST"]["value"] == "https://langfuse.example.com"
    refs = [item["remoteRef"] for item in one(documents, "ExternalSecret", "litellm")["spec"]["data"]]
    assert {"key": KEYS_ARN, "property": "public_key"} in refs
    assert {"key": KEYS_ARN, "property": "secret_key"} in refs
    config_text = one(documents, "ConfigMap", "litellm")["data"]["config.yaml"]
    assert yaml.safe_load(config_text)["litellm_settings"]["callbacks"] == ["prometheus", "langfuse_otel"]
    assert "LANGFUSE" not in config_text


def test_in_cluster_langfuse_is_reached_on_its_web_pods_only() -> None:
    config = config_for("dev")
    target = LangfuseTarget.in_cluster(keys_secret_arn=KEYS_ARN, environment=config.env_name)
    documents = gateway_documents(config, target)
    env = {item["name"]: item for item in container_env(documents)}
    assert env["LANGFUSE_OTEL_HOST"]["value"] == IN_CLUSTER_HOST
    egress = one(documents, "NetworkPolicy", "litellm")["spec"]["egress"]
    to_langfuse = [rule for rule in egress if any(p.get("port") == 3000 for p in rule.get("ports", []))]
    assert to_langfuse == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "langfuse"}},
                    "podSelector": {
                        "matchLabels": {"app.kubernetes.io/name": "langfuse", "app.kubernetes.io/component": "web"}
                    },
                }
            ],
            "ports": [{"port": 3000, "protocol": "TCP"}],
        }
    ]


def test_the_tracing_stack_serves_langfuse_where_the_gateway_sends() -> None:
    """Both sides of the seam name the same Service: the LangFuse release the tracing stack installs, and the
    in-cluster host the gateway traces to."""
    from cdk_constructs.langfuse import RELEASE, in_cluster_url

    assert RELEASE == "langfuse"  # fullname = release: the chart's pod labels and Service name follow it
    assert in_cluster_url(namespaces.LANGFUSE) == IN_CLUSTER_HOST
    assert LangfuseTarget.in_cluster(keys_secret_arn=KEYS_ARN, environment="dev").host == IN_CLUSTER_HOST


def test_external_langfuse_on_443_needs_no_rule_beyond_https() -> None:
    config = external_config()
    without = one(gateway_documents(config, None), "NetworkPolicy", "litellm")["spec"]["egress"]
    target = LangfuseTarget.external(
        host="https://langfuse.example.com", keys_secret_arn=KEYS_ARN, environment=config.env_name
    )
    with_tracing = one(gateway_documents(config, target), "NetworkPolicy", "litellm")["spec"]["egress"]
    assert with_tracing == without
    assert {"ports": [{"port": 443, "protocol": "TCP"}]} in without


def test_tracing_off_synthesizes_no_callback_no_langfuse_env_and_no_key_access(dev: Synthesized) -> None:
    assert dev.config.observability.tracing.mode == "off"
    config = yaml.safe_load(dev.one("ConfigMap", "litellm")["data"]["config.yaml"])
    assert config["litellm_settings"]["callbacks"] == ["prometheus"]
    (container,) = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    assert [e["name"] for e in container["env"] if e["name"].startswith(("LANGFUSE", "OTEL"))] == []
    external = dev.one("ExternalSecret", "litellm")
    assert not [k for k in external["spec"]["target"]["template"]["data"] if "langfuse" in k]
    assert "angfuse" not in json.dumps(dev.stack_json("gateway"))


# --- config -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"observability.tracing.mode": "on"},
            "observability.tracing.mode: Input should be 'off', 'external' or 'self-hosted' (got 'on')",
        ),
        (
            {"observability.tracing.mode": "external", "observability.tracing.keys_secret_name": "genai/langfuse"},
            "observability.tracing: mode 'external' needs host and keys_secret_name",
        ),
        (
            {"observability.tracing.mode": "external", "observability.tracing.host": "https://langfuse.example.com"},
            "observability.tracing: mode 'external' needs host and keys_secret_name",
        ),
        (
            {**EXTERNAL, "observability.tracing.host": "http://langfuse.example.com"},
            "observability.tracing.host: must be an https URL, like https://langfuse.example.com "
            "(got 'http://langfuse.example.com')",
        ),
        (
            {"observability.tracing.host": "https://langfuse.example.com"},
            "observability.tracing: host and keys_secret_name apply to mode 'external' only, not 'off'",
        ),
        (
            {"observability.tracing.keys_secret_name": "genai/langfuse"},
            "observability.tracing: host and keys_secret_name apply to mode 'external' only, not 'off'",
        ),
        ({"gateway.tracing": "true"}, "gateway.tracing: unknown key"),
    ],
)
def test_tracing_settings_refuse_what_cannot_work(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_for("dev", **overrides)
    assert message in str(raised.value)


def test_external_tracing_settings_are_accepted() -> None:
    tracing = external_config().observability.tracing
    assert (tracing.mode, tracing.host, tracing.keys_secret_name) == (
        "external",
        "https://langfuse.example.com",
        "genai/langfuse",
    )
    assert config_for("dev").observability.tracing.mode == "off"


def test_external_target_takes_the_port_from_the_host() -> None:
    assert (
        LangfuseTarget.external(host="https://lf.example.com", keys_secret_arn=KEYS_ARN, environment="dev").port == 443
    )
    assert (
        LangfuseTarget.external(host="https://lf.example.com:8443", keys_secret_arn=KEYS_ARN, environment="dev").port
        == 8443
    )
