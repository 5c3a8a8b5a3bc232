"""The inference tier: node pools, KEDA, the vLLM server with its ScaledObject, the model download Job."""

from __future__ import annotations

from typing import Any

import cdk8s
from aws_cdk import Stack
from constructs import Construct

from cdk_constructs.helm import Keda
from cdk_constructs.manifests import AppliedCharts
from k8s.inference import InferenceChart
from k8s.model_download import DownloadWiring, ModelDownloadJob
from k8s.namespaces import platform_labels
from k8s.node_pools import NodeClassInputs, NodePoolsChart
from k8s.vllm import VllmWiring
from platform_config import PlatformConfig, namespaces
from stacks.data import DOWNLOADER_SERVICE_ACCOUNT, INFERENCE_NAMESPACE, VLLM_SERVICE_ACCOUNT, DataStack
from stacks.foundation import FoundationStack
from stacks.observability import OBSERVABILITY_NAMESPACE, ObservabilityStack

KEDA_NAMESPACE = namespaces.KEDA
GATEWAY_NAMESPACE = namespaces.GATEWAY


class InferenceStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: PlatformConfig,
        foundation: FoundationStack,
        data: DataStack,
        observability: ObservabilityStack,
        k8s_app: cdk8s.App,
        charts: AppliedCharts,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        inference = config.inference
        cluster = foundation.cluster.interface
        labels = platform_labels(config)

        self.node_pools = NodePoolsChart(
            k8s_app,
            "node-pools",
            settings=inference.node_pools,
            inputs=NodeClassInputs(
                role_name=foundation.cluster.node_role_name,
                subnet_terms=foundation.network.node_subnet_terms,
                security_group_terms=foundation.cluster.security_group_terms,
                node_volume_key_arn=foundation.keys.node_volumes.key_arn,
            ),
            labels=labels,
        )
        node_pools = charts.apply(self, "NodePools", cluster=cluster, chart=self.node_pools)

        self.keda = Keda(self, "Keda", cluster=cluster, namespace=KEDA_NAMESPACE)

        self.inference = InferenceChart(
            k8s_app,
            "inference",
            vllm=inference.vllm,
            autoscaling=inference.autoscaling,
            wiring=VllmWiring(
                namespace=INFERENCE_NAMESPACE,
                service_account=VLLM_SERVICE_ACCOUNT,
                model_uri=data.model_store.model_uri(inference.vllm.model),
                aws_region=self.region,
                gateway_namespace=GATEWAY_NAMESPACE,
                metrics_namespace=OBSERVABILITY_NAMESPACE,
            ),
            prometheus_url=observability.prometheus.url,
            labels=labels,
        )
        server = charts.apply(self, "Inference", cluster=cluster, chart=self.inference)
        # KEDA's CRDs before the ScaledObject; GPU capacity defined before the server asks for it.
        server.node.add_dependency(self.keda.chart)
        server.node.add_dependency(node_pools)

        store = inference.model_store
        if store.download_job and store.hf_token_secret_name:
            self.download = cdk8s.Chart(k8s_app, "model-download", labels=labels)
            ModelDownloadJob(
                self.download,
                "job",
                wiring=DownloadWiring(
                    namespace=INFERENCE_NAMESPACE,
                    service_account=DOWNLOADER_SERVICE_ACCOUNT,
                    model=inference.vllm.model,
                    destination_uri=data.model_store.model_uri(inference.vllm.model),
                    hf_token_secret_name=store.hf_token_secret_name,
                    aws_region=self.region,
                    tools_image=store.tools_image,
                    python_image=inference.vllm.image,
                ),
                labels=labels,
            )
            download = charts.apply(self, "ModelDownload", cluster=cluster, chart=self.download)
            download.node.add_dependency(node_pools)
