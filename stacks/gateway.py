"""The gateway tier: LiteLLM in front of vLLM, exposed through Auto Mode's built-in ALB."""

from __future__ import annotations

from typing import Any

import cdk8s
from aws_cdk import Stack
from constructs import Construct

from cdk_constructs.manifests import AppliedCharts
from cdk_constructs.pod_identity import PodIdentityRole
from k8s.gateway import GatewayChart, GatewayWiring
from k8s.namespaces import platform_labels
from k8s.vllm import PORT as VLLM_PORT
from platform_config import PlatformConfig
from stacks.data import INFERENCE_NAMESPACE
from stacks.foundation import FoundationStack
from stacks.observability import OBSERVABILITY_NAMESPACE, ObservabilityStack

GATEWAY_NAMESPACE = "gateway"
GATEWAY_SERVICE_ACCOUNT = "litellm"


class GatewayStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: PlatformConfig,
        foundation: FoundationStack,
        observability: ObservabilityStack,
        k8s_app: cdk8s.App,
        charts: AppliedCharts,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        cluster = foundation.cluster.interface
        self.identity = PodIdentityRole(
            self,
            "LiteLlmIdentity",
            cluster=cluster,
            namespace=GATEWAY_NAMESPACE,
            service_account=GATEWAY_SERVICE_ACCOUNT,
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
            ),
            labels=platform_labels(config),
        )
        charts.apply(self, "Gateway", cluster=cluster, chart=self.chart)
