"""Where the gateway sends its traces: a LangFuse OTLP endpoint and the Secrets Manager secret with its keys.

This module is the seam between the gateway and whatever runs LangFuse. In mode `external` the gateway
stack builds a `LangfuseTarget` from `observability.tracing` (host and secret name from config); in mode
`self-hosted` the tracing stack deploys LangFuse in the cluster and hands the gateway its keys secret, and
the target points at the in-cluster web Service (`LangfuseTarget.in_cluster`). Every name both sides must
agree on is a `LANGFUSE_*` constant here.

What the tracing stack provides for the gateway (mode self-hosted):
- LangFuse's chart released as "langfuse" in namespace LANGFUSE_NAMESPACE, without nameOverride or
  fullnameOverride, so the web Service, port and pod labels are the ones below;
- a Secrets Manager secret with JSON fields LANGFUSE_KEYS_PUBLIC_FIELD and LANGFUSE_KEYS_SECRET_FIELD (the
  project keys LangFuse is initialised with), given to `GatewayStack(langfuse_keys=...)`. The data stack
  makes it (under the data key), so the gateway's Secret can be built on its first deploy although the
  tracing stack deploys after the gateway (it uses the gateway's External Secrets Operator);
- ingress to the web pods on LANGFUSE_WEB_PORT from the gateway namespace, if its namespace denies by default.

LiteLLM's `langfuse_otel` callback (LiteLLM 1.102.1, litellm/integrations/langfuse/langfuse_otel.py) needs
no LangFuse SDK: it exports OTLP/HTTP protobuf to `{host}/api/public/otel/v1/traces` (the `/v1/traces` is
appended by OpenTelemetry._normalize_otel_endpoint) with `Authorization: Basic base64(public:secret)` and
`x-langfuse-ingestion-version: 4`, one trace per request (tests/test_gateway_tracing.py runs it). LangFuse
v4.4.0 (chart 2.0.0's app) serves that route over HTTP, protobuf or JSON, ingestion versions up to 4
(langfuse/langfuse web/src/pages/api/public/otel/v1/traces/index.ts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from platform_config import namespaces

# The LiteLLM callback (litellm_settings.callbacks). Not `langfuse`: that one imports the LangFuse SDK.
LANGFUSE_CALLBACK = "langfuse_otel"

# Environment variables LiteLLM 1.102.1 reads for it (langfuse_otel.py `_get_langfuse_otel_host`, which
# prefers LANGFUSE_OTEL_HOST over LANGFUSE_HOST, and `_create_open_telemetry_config_from_langfuse_env`).
LANGFUSE_HOST_ENV = "LANGFUSE_OTEL_HOST"
LANGFUSE_PUBLIC_KEY_ENV = "LANGFUSE_PUBLIC_KEY"
LANGFUSE_SECRET_KEY_ENV = "LANGFUSE_SECRET_KEY"
# Files every span under a LangFuse environment (span attribute `langfuse.environment`,
# `_set_langfuse_specific_attributes`); LiteLLM's own resource attribute `deployment.environment` comes from
# OTEL_ENVIRONMENT_NAME (integrations/opentelemetry.py OpenTelemetryConfig, default "production").
LANGFUSE_ENVIRONMENT_ENV = "LANGFUSE_TRACING_ENVIRONMENT"
OTEL_ENVIRONMENT_ENV = "OTEL_ENVIRONMENT_NAME"

# The Secrets Manager secret holding a LangFuse project's API keys: a JSON object with these two fields.
# external: created by the user; self-hosted: created by the tracing stack, which also gives the project
# these keys (LangFuse's LANGFUSE_INIT_PROJECT_PUBLIC_KEY / _SECRET_KEY headless initialisation).
LANGFUSE_KEYS_PUBLIC_FIELD = "public_key"
LANGFUSE_KEYS_SECRET_FIELD = "secret_key"
# Keys of the gateway's Kubernetes Secret (built by External Secrets) that carry them.
LANGFUSE_PUBLIC_KEY_SECRET_KEY = "langfuse-public-key"
LANGFUSE_SECRET_KEY_SECRET_KEY = "langfuse-secret-key"

# The in-cluster LangFuse (self-hosted), as the official chart langfuse/langfuse-k8s 2.0.0 names it with the
# release name "langfuse": the web Service is `<fullname>-web` (templates/web/service.yaml; fullname is the
# release name when it contains the chart name), its port and the pod's containerPort are both
# `langfuse.web.service.port`, 3000 (values.yaml, templates/web/deployment.yaml), and the web pods carry the
# selector labels below (templates/_helpers.tpl langfuse.selectorLabels, plus the component label).
LANGFUSE_NAMESPACE = namespaces.LANGFUSE
LANGFUSE_WEB_SERVICE = "langfuse-web"
LANGFUSE_WEB_PORT = 3000
LANGFUSE_WEB_POD_LABELS = {"app.kubernetes.io/name": "langfuse", "app.kubernetes.io/component": "web"}

HTTPS_PORT = 443


def in_cluster_langfuse_host(namespace: str = LANGFUSE_NAMESPACE) -> str:
    """The base URL of the in-cluster LangFuse web Service (plain HTTP inside the cluster)."""
    return f"http://{LANGFUSE_WEB_SERVICE}.{namespace}.svc.cluster.local:{LANGFUSE_WEB_PORT}"


@dataclass(frozen=True)
class InClusterPeer:
    """The pods the gateway's traces go to when LangFuse runs in the cluster (a NetworkPolicy peer)."""

    namespace: str
    pod_labels: dict[str, str] = field(default_factory=lambda: dict(LANGFUSE_WEB_POD_LABELS))


@dataclass(frozen=True)
class LangfuseTarget:
    """A LangFuse the gateway traces to.

    host: base URL; LiteLLM appends /api/public/otel/v1/traces.
    keys_secret_arn: the Secrets Manager secret with JSON fields `public_key` and `secret_key` (a full ARN, or
        the partial ARN of a secret imported by name).
    environment: the LangFuse environment the traces are filed under (the platform's env name).
    port: the TCP port the host listens on, for the gateway's egress NetworkPolicy.
    peer: the in-cluster pods behind the host, or None for a host outside the cluster (any address).
    """

    host: str
    keys_secret_arn: str
    environment: str
    port: int
    peer: InClusterPeer | None = None

    @classmethod
    def external(cls, *, host: str, keys_secret_arn: str, environment: str) -> LangfuseTarget:
        """A LangFuse outside the cluster, reached over HTTPS (its port from the URL, 443 by default)."""
        return cls(
            host=host,
            keys_secret_arn=keys_secret_arn,
            environment=environment,
            port=urlsplit(host).port or HTTPS_PORT,
        )

    @classmethod
    def in_cluster(
        cls, *, keys_secret_arn: str, environment: str, namespace: str = LANGFUSE_NAMESPACE
    ) -> LangfuseTarget:
        """The LangFuse the tracing stack runs in `namespace` (self-hosted mode)."""
        return cls(
            host=in_cluster_langfuse_host(namespace),
            keys_secret_arn=keys_secret_arn,
            environment=environment,
            port=LANGFUSE_WEB_PORT,
            peer=InClusterPeer(namespace),
        )
