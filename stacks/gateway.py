"""The gateway tier: LiteLLM in front of vLLM, exposed through Auto Mode's built-in ALB."""

from __future__ import annotations

from typing import Any

import cdk8s
from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.helm import ExternalSecrets, Reloader
from cdk_constructs.manifests import AppliedCharts
from cdk_constructs.pod_identity import PodIdentityRole, named_secret_policy_arn
from k8s.gateway import GatewayChart, GatewaySecrets, GatewayWiring
from k8s.namespaces import platform_labels
from k8s.tracing import LangfuseTarget
from k8s.vllm import PORT as VLLM_PORT
from platform_config import PlatformConfig, namespaces
from stacks.data import INFERENCE_NAMESPACE, DataStack
from stacks.foundation import FoundationStack
from stacks.observability import OBSERVABILITY_NAMESPACE, ObservabilityStack

GATEWAY_NAMESPACE = namespaces.GATEWAY
GATEWAY_SERVICE_ACCOUNT = "litellm"
EXTERNAL_SECRETS_NAMESPACE = namespaces.EXTERNAL_SECRETS


class GatewayStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: PlatformConfig,
        foundation: FoundationStack,
        observability: ObservabilityStack,
        data: DataStack,
        k8s_app: cdk8s.App,
        charts: AppliedCharts,
        langfuse_keys: secretsmanager.ISecret | None = None,
        **kwargs: Any,
    ) -> None:
        """`langfuse_keys`: the in-cluster LangFuse's project keys (the data stack's secret, JSON fields
        public_key and secret_key); needed with observability.tracing.mode 'self-hosted' only."""
        super().__init__(scope, id, **kwargs)
        cluster = foundation.cluster.interface
        # Bedrock models among the extra deployments are called with the proxy's Pod Identity.
        bedrock_models = [
            m.litellm_model.removeprefix("bedrock/")
            for m in config.gateway.extra_models
            if m.litellm_model.startswith("bedrock/")
        ]
        self.identity = PodIdentityRole(
            self,
            "LiteLlmIdentity",
            cluster=cluster,
            namespace=GATEWAY_NAMESPACE,
            service_account=GATEWAY_SERVICE_ACCOUNT,
            statements=[
                iam.PolicyStatement(
                    actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                    resources=[
                        f"arn:{self.partition}:bedrock:{self.region}::foundation-model/{m}" for m in bedrock_models
                    ],
                )
            ]
            if bedrock_models
            else [],
        )
        stores = data.gateway_stores
        assert stores is not None, "the data stack creates the gateway's stores when the gateway is enabled"
        tracing, tracing_secret_arns = self._langfuse_target(config, langfuse_keys)
        self.external_secrets = ExternalSecrets(
            self,
            "ExternalSecrets",
            cluster=cluster,
            namespace=EXTERNAL_SECRETS_NAMESPACE,
            readable_secret_arns=[
                stores.master_key_secret.secret_arn,
                stores.salt_key_secret.secret_arn,
                stores.database_secret_arn,
                stores.cache_secret.secret_arn,
                *tracing_secret_arns,
            ],
            key_arn=foundation.keys.data.key_arn,
        )
        self.chart = GatewayChart(
            k8s_app,
            "gateway",
            settings=config.gateway,
            wiring=GatewayWiring(
                namespace=GATEWAY_NAMESPACE,
                service_account=GATEWAY_SERVICE_ACCOUNT,
                served_model_name=config.inference.vllm.served_model_name,
                vllm_url=f"http://vllm.{INFERENCE_NAMESPACE}.svc.cluster.local:{VLLM_PORT}/v1",
                vllm_namespace=INFERENCE_NAMESPACE,
                metrics_namespace=OBSERVABILITY_NAMESPACE,
                prometheus_url=observability.prometheus.url,
                vpc_cidr=config.vpc.cidr,
                secrets=GatewaySecrets(
                    region=self.region,
                    master_key_arn=stores.master_key_secret.secret_arn,
                    salt_key_arn=stores.salt_key_secret.secret_arn,
                    database_secret_arn=stores.database_secret_arn,
                    database_host=stores.database_host,
                    cache_secret_arn=stores.cache_secret.secret_arn,
                    cache_host=stores.cache_host,
                ),
                tracing=tracing,
            ),
            labels=platform_labels(config),
        )
        # Rolls the proxy when External Secrets updates its Secret (a rotated database password).
        self.reloader = Reloader(
            self,
            "Reloader",
            cluster=cluster,
            namespace=EXTERNAL_SECRETS_NAMESPACE,
            watched_namespaces=[GATEWAY_NAMESPACE],
        )
        manifest = charts.apply(self, "Gateway", cluster=cluster, chart=self.chart)
        CfnOutput(
            self,
            "GatewayAddressCommand",
            value=f"kubectl -n {GATEWAY_NAMESPACE} get ingress litellm "
            "-o jsonpath='{.status.loadBalancer.ingress[0].hostname}'",
            description="Prints the gateway's ALB address once the Ingress is provisioned",
        )
        # The SecretStore and ExternalSecret need the operator's CRDs first.
        manifest.node.add_dependency(self.external_secrets.chart)
        manifest.node.add_dependency(self.reloader.chart)

    def _langfuse_target(
        self, config: PlatformConfig, self_hosted_keys: secretsmanager.ISecret | None
    ) -> tuple[LangfuseTarget | None, list[str]]:
        """Where the gateway's traces go (observability.tracing), and the ARN patterns of the keys secret that
        External Secrets must be allowed to read."""
        tracing = config.observability.tracing
        if tracing.mode == "off":
            return None, []
        if tracing.mode == "external":
            # Both set: TracingSettings refuses mode external without them.
            assert tracing.host is not None
            assert tracing.keys_secret_name is not None
            keys = secretsmanager.Secret.from_secret_name_v2(self, "LangfuseKeys", tracing.keys_secret_name)
            target = LangfuseTarget.external(
                host=tracing.host, keys_secret_arn=keys.secret_arn, environment=config.env_name
            )
            return target, [named_secret_policy_arn(keys.secret_arn)]
        if self_hosted_keys is None:
            raise ValueError(
                "observability.tracing.mode 'self-hosted' needs the in-cluster LangFuse's keys secret: pass the "
                "data stack's langfuse_gateway_keys secret to GatewayStack(langfuse_keys=...)"
            )
        target = LangfuseTarget.in_cluster(keys_secret_arn=self_hosted_keys.secret_arn, environment=config.env_name)
        # A secret imported by name has no full ARN; IAM then needs the random-suffix pattern.
        full_arn = self_hosted_keys.secret_full_arn
        return target, [full_arn if full_arn else named_secret_policy_arn(self_hosted_keys.secret_arn)]
