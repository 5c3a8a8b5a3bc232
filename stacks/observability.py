"""The scaling signal path: an in-cluster Prometheus and NVIDIA's DCGM exporter (official charts)."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy, Stack
from constructs import Construct

from cdk_constructs.cloudwatch_monitoring import CloudWatchMonitoring
from cdk_constructs.helm import DcgmExporter, Prometheus
from k8s.alert_rules import alert_rule_groups
from k8s.inference import VLLM_NAME, vllm_metric_selector
from k8s.metrics import (
    LITELLM_TOKEN_DIR,
    LITELLM_TOKEN_SECRET,
    dcgm_scrape_job,
    litellm_scrape_job,
    vllm_scrape_job,
)
from k8s.storage import DEFAULT_STORAGE_CLASS
from platform_config import PlatformConfig, namespaces
from stacks.data import DataStack
from stacks.foundation import FoundationStack

OBSERVABILITY_NAMESPACE = namespaces.OBSERVABILITY
INFERENCE_NAMESPACE = namespaces.INFERENCE
GATEWAY_NAMESPACE = namespaces.GATEWAY


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: PlatformConfig,
        foundation: FoundationStack,
        data: DataStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        metrics = config.inference.metrics
        cluster = foundation.cluster.interface
        self.scrape_jobs = [
            vllm_scrape_job(
                namespace=INFERENCE_NAMESPACE,
                app_name=VLLM_NAME,
                scrape_interval_seconds=metrics.scrape_interval_seconds,
            ),
            dcgm_scrape_job(namespace=OBSERVABILITY_NAMESPACE, scrape_interval_seconds=metrics.scrape_interval_seconds),
        ]
        secret_mounts: list[dict[str, Any]] = []
        if config.gateway.enabled:
            self.scrape_jobs.append(
                litellm_scrape_job(namespace=GATEWAY_NAMESPACE, scrape_interval_seconds=metrics.scrape_interval_seconds)
            )
            # Optional: the gateway stack (deployed after this one) creates the Secret; until then the
            # LiteLLM job fails to authenticate while every other job scrapes normally.
            secret_mounts.append(
                {
                    "name": LITELLM_TOKEN_SECRET,
                    "mountPath": LITELLM_TOKEN_DIR,
                    "secretName": LITELLM_TOKEN_SECRET,
                    "readOnly": True,
                    "optional": True,
                }
            )
        autoscaling = config.inference.autoscaling
        self.alerting_rule_groups = alert_rule_groups(
            config.observability.alerts,
            vllm_metric_selector(INFERENCE_NAMESPACE, config.inference.vllm.served_model_name),
            max_replicas=autoscaling.max_replicas,
            queue_threshold=autoscaling.queue_depth_per_replica,
            gateway=config.gateway.enabled,
        )
        self.prometheus = Prometheus(
            self,
            "Prometheus",
            cluster=cluster,
            namespace=OBSERVABILITY_NAMESPACE,
            scrape_jobs=self.scrape_jobs,
            scrape_interval_seconds=metrics.scrape_interval_seconds,
            retention_days=metrics.retention_days,
            storage_gib=metrics.storage_gib,
            storage_class=DEFAULT_STORAGE_CLASS,
            secret_mounts=secret_mounts,
            alerting_rule_groups=self.alerting_rule_groups,
        )
        self.dcgm = DcgmExporter(
            self,
            "DcgmExporter",
            cluster=cluster,
            namespace=OBSERVABILITY_NAMESPACE,
            collect_interval_seconds=metrics.scrape_interval_seconds,
        )
        stores = data.gateway_stores
        self.cloudwatch = CloudWatchMonitoring(
            self,
            "CloudWatch",
            prefix=config.prefix,
            cluster_name=config.prefix,
            database=stores.database if stores else None,
            cache_name=stores.cache.serverless_cache_name if stores else None,
            alarm_email=config.observability.alarm_email,
            removal_policy=RemovalPolicy.RETAIN if config.removal_policy == "retain" else RemovalPolicy.DESTROY,
        )
