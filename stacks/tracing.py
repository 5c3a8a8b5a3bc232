"""Self-hosted tracing: LangFuse v4 in the cluster, with its own Aurora, Valkey, S3 bucket and ClickHouse.

Built only when `observability.tracing.mode` is `self-hosted`. Its lifecycle is its own: traces can be dropped
and redeployed without touching the gateway. It deploys after the gateway stack, whose External Secrets
Operator copies LangFuse's credentials into the cluster. The project keys LangFuse starts with and the gateway
sends traces with come from the data stack (`DataStack.langfuse_gateway_keys`), which both stacks follow, and
the gateway finds LangFuse's web Service by its in-cluster name (`in_cluster_url`).

Deployment order inside the stack: namespaces; credentials and IngressClass; cert-manager; the ClickHouse
operator; ClickHouse and Keeper; LangFuse; the fix-up of the chart's own app Secret.
"""

from __future__ import annotations

from typing import Any

import cdk8s
from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_constructs.helm import ExternalSecrets
from cdk_constructs.langfuse import (
    RELEASE,
    SERVICE_ACCOUNT,
    WEB_PORT,
    WEB_SERVICE,
    CertManager,
    ClickHouseOperator,
    Langfuse,
    LangfuseWiring,
    in_cluster_url,
)
from cdk_constructs.langfuse_stores import (
    CACHE_USER,
    DATABASE_NAME,
    DATABASE_USER,
    VALKEY_PORT,
    GeneratedSecret,
    LangfuseStores,
    gateway_keys_secret_name,
)
from cdk_constructs.manifests import AppliedCharts
from cdk_constructs.pod_identity import PodIdentityRole
from compliance.acknowledgments import acknowledge
from k8s.langfuse import (
    ClickHouseSizing,
    LangfuseAppSecretChart,
    LangfuseClickHouseChart,
    LangfuseConfigChart,
    LangfuseSecretRefs,
)
from k8s.namespaces import PlatformNamespaces, platform_labels
from platform_config import PlatformConfig, namespaces
from platform_config.model import NamespaceSettings
from stacks.data import DataStack
from stacks.foundation import FoundationStack

LANGFUSE_NAMESPACE = namespaces.LANGFUSE

__all__ = ["LANGFUSE_NAMESPACE", "TracingStack", "gateway_keys_secret_name", "in_cluster_url"]


def _ref(generated: GeneratedSecret) -> tuple[str, str]:
    return (generated.secret.secret_arn, generated.field)


class TracingStack(Stack):
    """Composes LangFuse's stores, identities, Helm releases and manifests.

    For the gateway: `keys_secret` (JSON public_key, secret_key; its name is `keys_secret_name`) and `url`,
    LangFuse's in-cluster base URL (OTLP at `<url>/api/public/otel`).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: PlatformConfig,
        foundation: FoundationStack,
        data: DataStack,
        external_secrets: ExternalSecrets,
        k8s_app: cdk8s.App,
        charts: AppliedCharts,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        settings = config.observability.tracing.self_hosted
        assert settings.admin_email is not None, "config validation requires admin_email in mode self-hosted"
        cluster = foundation.cluster.interface
        labels = platform_labels(config)

        gateway_keys = data.langfuse_gateway_keys
        assert gateway_keys is not None, "the data stack makes the keys in mode self-hosted"
        self.stores = LangfuseStores(
            self,
            "Stores",
            prefix=config.prefix,
            settings=settings,
            vpc=foundation.network.vpc,
            clients=foundation.cluster.cluster.cluster_security_group,
            production=config.production,
            gateway_keys=gateway_keys,
        )
        stores = self.stores
        self.keys_secret = stores.gateway_keys.secret
        self.keys_secret_name = gateway_keys_secret_name(config.prefix)
        self.url = in_cluster_url(LANGFUSE_NAMESPACE)

        self.identity = PodIdentityRole(
            self,
            "LangfuseIdentity",
            cluster=cluster,
            namespace=LANGFUSE_NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            statements=stores.bucket_statements(),
        )
        bucket_id = self.get_logical_id(stores.bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            self.identity.node.find_child("Policy"),
            f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/*]",
            "Objects of LangFuse's own bucket only; their keys are event, media and export IDs LangFuse makes up "
            "at run time.",
        )
        # The controller's role lives with the operator in the gateway stack; this adds what it may read here.
        self.secrets_access = iam.ManagedPolicy(
            self,
            "ExternalSecretsReadLangfuse",
            description="External Secrets Operator: read LangFuse's credentials",
            roles=[external_secrets.identity.role],
            statements=[
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=[secret.secret_arn for secret in stores.secrets],
                ),
                # LangFuse's own key, for the seven secrets under it. The gateway keys (also read above) are under
                # the data key, which the operator already decrypts for the gateway: do not swap this for that.
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[stores.key.key_arn]),
            ],
        )

        secret_refs = LangfuseSecretRefs(
            region=self.region,
            database_password=_ref(stores.database_password),
            redis_password=_ref(stores.cache_password),
            clickhouse_password=_ref(stores.clickhouse_password),
            salt=_ref(stores.salt),
            encryption_key=_ref(stores.encryption_key),
            nextauth_secret=_ref(stores.nextauth_secret),
            gateway_public_key=(stores.gateway_keys.secret.secret_arn, "public_key"),
            gateway_secret_key=_ref(stores.gateway_keys),
            admin_password=_ref(stores.admin_password),
        )
        namespaces_chart = PlatformNamespaces(
            k8s_app,
            "tracing-namespaces",
            namespaces=[NamespaceSettings(name=name) for name in namespaces.TRACING],
            kubernetes_version=config.cluster.kubernetes_version,
            labels=labels,
        )
        namespaces_manifest = charts.apply(self, "Namespaces", cluster=cluster, chart=namespaces_chart)
        config_chart = LangfuseConfigChart(
            k8s_app,
            "langfuse-config",
            namespace=LANGFUSE_NAMESPACE,
            secrets=secret_refs,
            vpc_cidr=config.vpc.cidr,
            certificate_arn=settings.certificate_arn,
            labels=labels,
        )
        config_manifest = charts.apply(self, "LangfuseConfig", cluster=cluster, chart=config_chart)
        config_manifest.node.add_dependency(namespaces_manifest, self.secrets_access)

        self.cert_manager = CertManager(self, "CertManager", cluster=cluster, namespace=namespaces.CERT_MANAGER)
        self.cert_manager.chart.node.add_dependency(namespaces_manifest)
        self.clickhouse_operator = ClickHouseOperator(
            self, "ClickHouseOperator", cluster=cluster, namespace=namespaces.CLICKHOUSE_OPERATOR
        )
        # Its webhooks ask cert-manager for certificates: cert-manager and its CRDs first.
        self.clickhouse_operator.chart.node.add_dependency(self.cert_manager.chart)

        clickhouse_chart = LangfuseClickHouseChart(
            k8s_app,
            "langfuse-clickhouse",
            namespace=LANGFUSE_NAMESPACE,
            sizing=ClickHouseSizing(
                storage_gib=settings.clickhouse_storage_gib, keeper_replicas=settings.keeper_replicas
            ),
            labels=labels,
        )
        clickhouse_manifest = charts.apply(self, "LangfuseClickHouse", cluster=cluster, chart=clickhouse_chart)
        # The operator's CRDs and webhooks, and the password Secret the ClickHouse resource names.
        clickhouse_manifest.node.add_dependency(self.clickhouse_operator.chart, config_manifest)

        self.langfuse = Langfuse(
            self,
            "Langfuse",
            cluster=cluster,
            wiring=LangfuseWiring(
                namespace=LANGFUSE_NAMESPACE,
                region=self.region,
                database_host=stores.database_host,
                database_name=DATABASE_NAME,
                database_user=DATABASE_USER,
                cache_host=stores.cache_host,
                cache_port=VALKEY_PORT,
                cache_user=CACHE_USER,
                bucket=stores.bucket.bucket_name,
                key_arn=stores.key.key_arn,
                organization=config.name,
                admin_email=settings.admin_email,
                hostname=settings.hostname,
                https=settings.certificate_arn is not None,
                replicas=2 if config.production else 1,
            ),
        )
        # Stores, credentials, ClickHouse and the pods' Pod Identity exist before the first pod starts.
        assert self.identity.association is not None
        self.langfuse.chart.node.add_dependency(
            clickhouse_manifest, config_manifest, self.identity.association, stores.database, stores.cache
        )
        app_secret_chart = LangfuseAppSecretChart(
            k8s_app,
            "langfuse-app-secret",
            namespace=LANGFUSE_NAMESPACE,
            release=RELEASE,
            secrets=secret_refs,
            labels=labels,
        )
        app_secret_manifest = charts.apply(self, "LangfuseAppSecret", cluster=cluster, chart=app_secret_chart)
        # Merges into the Secret the release creates.
        app_secret_manifest.node.add_dependency(self.langfuse.chart)
        self._outputs(config.prefix, settings.hostname)

    def _outputs(self, prefix: str, hostname: str | None) -> None:
        CfnOutput(
            self,
            "LangfuseKeysSecretName",
            value=self.keys_secret_name,
            description="Secrets Manager secret with the LangFuse project keys the gateway sends traces with",
        )
        CfnOutput(self, "LangfuseInClusterUrl", value=self.url, description="LangFuse's base URL inside the cluster")
        CfnOutput(
            self,
            "LangfuseAdminPasswordSecret",
            value=self.stores.admin_password.secret.secret_arn,
            description="Secrets Manager secret with the LangFuse admin user's password (field: password)",
        )
        CfnOutput(
            self,
            "LangfuseUiCommand",
            value=f"https://{hostname}"
            if hostname
            else f"kubectl -n {LANGFUSE_NAMESPACE} port-forward svc/{WEB_SERVICE} {WEB_PORT}:{WEB_PORT}"
            f"  # then open http://localhost:{WEB_PORT}",
            description=f"{prefix}: how to open the LangFuse UI",
        )
