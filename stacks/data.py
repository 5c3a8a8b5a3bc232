"""Data: the model bucket and the identities allowed to read or fill it.

Its lifecycle is longer than the workloads' (weights outlive any deployment of the server) and
shorter than the foundation's.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.gateway_stores import GatewayStores
from cdk_constructs.langfuse_stores import GeneratedSecret, langfuse_gateway_keys
from cdk_constructs.model_store import ModelStore
from cdk_constructs.pod_identity import PodIdentityRole, named_secret_policy_arn
from compliance.acknowledgments import acknowledge
from platform_config import PlatformConfig, namespaces
from stacks.foundation import FoundationStack

INFERENCE_NAMESPACE = namespaces.INFERENCE
VLLM_SERVICE_ACCOUNT = "vllm"
DOWNLOADER_SERVICE_ACCOUNT = "model-downloader"


class DataStack(Stack):
    def __init__(
        self, scope: Construct, id: str, *, config: PlatformConfig, foundation: FoundationStack, **kwargs: Any
    ) -> None:
        super().__init__(scope, id, **kwargs)
        settings = config.inference.model_store
        cluster = foundation.cluster.interface
        self.model_store = ModelStore(self, "ModelStore", key=foundation.keys.data, prefix=settings.bucket_prefix)

        CfnOutput(
            self, "ModelBucket", value=self.model_store.bucket.bucket_name, description="S3 bucket of model weights"
        )
        CfnOutput(
            self,
            "ModelUri",
            value=self.model_store.model_uri(config.inference.vllm.model),
            description="Where vLLM streams the model from (aws s3 sync the weights here)",
        )
        self.vllm_identity = PodIdentityRole(
            self,
            "VllmIdentity",
            cluster=cluster,
            namespace=INFERENCE_NAMESPACE,
            service_account=VLLM_SERVICE_ACCOUNT,
            statements=self.model_store.read_statements(),
        )
        self._acknowledge_prefix_wildcard(self.vllm_identity)

        self.gateway_stores: GatewayStores | None = None
        if config.gateway.enabled:
            self.gateway_stores = GatewayStores(
                self,
                "GatewayStores",
                prefix=config.prefix,
                settings=config.gateway.stores,
                vpc=foundation.network.vpc,
                clients=foundation.cluster.cluster.cluster_security_group,
                key=foundation.keys.data,
                production=config.production,
            )

        # Self-hosted tracing: the project keys LangFuse starts with and the gateway sends traces with. Here, not in
        # the tracing stack, because that stack deploys after the gateway (it needs the gateway's External Secrets
        # Operator) while the gateway's Secret needs the keys from its first deploy.
        self.langfuse_gateway_keys: GeneratedSecret | None = None
        if config.observability.tracing.mode == "self-hosted":
            self.langfuse_gateway_keys = langfuse_gateway_keys(
                self, prefix=config.prefix, key=foundation.keys.data, production=config.production
            )

        if self.gateway_stores:
            CfnOutput(
                self,
                "GatewayMasterKeySecret",
                value=self.gateway_stores.master_key_secret.secret_arn,
                description="Secrets Manager secret holding the LiteLLM master key (field: key; clients send sk-<key>)",
            )
        self.downloader_identity: PodIdentityRole | None = None
        if settings.download_job and settings.hf_token_secret_name:
            # The secret is created and filled by an operator (`aws secretsmanager create-secret`); the
            # platform only names it, so its value never passes through CloudFormation.
            token = secretsmanager.Secret.from_secret_name_v2(self, "HfToken", settings.hf_token_secret_name)
            self.downloader_identity = PodIdentityRole(
                self,
                "DownloaderIdentity",
                cluster=cluster,
                namespace=INFERENCE_NAMESPACE,
                service_account=DOWNLOADER_SERVICE_ACCOUNT,
                statements=[
                    *self.model_store.write_statements(),
                    iam.PolicyStatement(
                        actions=["secretsmanager:GetSecretValue"], resources=[named_secret_policy_arn(token.secret_arn)]
                    ),
                ],
            )
            self._acknowledge_prefix_wildcard(self.downloader_identity)

    def _acknowledge_prefix_wildcard(self, identity: PodIdentityRole) -> None:
        bucket = self.get_logical_id(self.model_store.bucket.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            identity.node.find_child("Policy"),
            f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/{self.model_store.prefix}/*]",
            "Object access is limited to the model prefix of the model bucket; object names are the "
            "model's files, unknown until download.",
        )
