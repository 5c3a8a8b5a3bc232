"""The scaling signal path: an in-cluster Prometheus and NVIDIA's DCGM exporter (official charts)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from cdk_constructs.cloudwatch_monitoring import CloudWatchMonitoring
from cdk_constructs.helm import DcgmExporter, Prometheus
from cdk_constructs.managed_prometheus import ManagedPrometheus
from k8s.alert_rules import alert_rule_groups
from k8s.inference import VLLM_NAME, vllm_metric_selector
from k8s.metrics import (
    LITELLM_TOKEN_DIR,
    LITELLM_TOKEN_SECRET,
    dcgm_scrape_job,
    kube_state_metrics_scrape_job,
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
        # One DCGM exporter per GPU node feeds Prometheus and, with the add-on, Container Insights; for the
        # add-on's agent it runs in the agent's namespace and serves TLS (README, "GPU metrics").
        dcgm_for_cloudwatch = config.addons.container_insights
        dcgm_namespace = config.dcgm_exporter_namespace
        self.scrape_jobs = [
            vllm_scrape_job(
                namespace=INFERENCE_NAMESPACE,
                app_name=VLLM_NAME,
                scrape_interval_seconds=metrics.scrape_interval_seconds,
            ),
            dcgm_scrape_job(
                namespace=dcgm_namespace,
                scrape_interval_seconds=metrics.scrape_interval_seconds,
                https=dcgm_for_cloudwatch,
            ),
            # Replica and node state for the autoscaling dashboard (the chart's kube-state-metrics subchart).
            kube_state_metrics_scrape_job(
                namespace=OBSERVABILITY_NAMESPACE, scrape_interval_seconds=metrics.scrape_interval_seconds
            ),
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
        stores = data.gateway_stores
        removal_policy = RemovalPolicy.RETAIN if config.removal_policy == "retain" else RemovalPolicy.DESTROY
        self.cloudwatch = CloudWatchMonitoring(
            self,
            "CloudWatch",
            prefix=config.prefix,
            cluster_name=config.prefix,
            database=stores.database if stores else None,
            cache_name=stores.cache.serverless_cache_name if stores else None,
            alarm_email=config.observability.alarm_email,
            removal_policy=removal_policy,
            gpu_namespace=INFERENCE_NAMESPACE
            if dcgm_for_cloudwatch and config.inference.vllm.accelerator == "nvidia"
            else None,
        )
        self.managed_prometheus: ManagedPrometheus | None = None
        if config.observability.managed_prometheus.enabled:
            self.managed_prometheus = ManagedPrometheus(
                self,
                "ManagedPrometheus",
                prefix=config.prefix,
                cluster=cluster,
                namespace=OBSERVABILITY_NAMESPACE,
                service_account=Prometheus.SERVICE_ACCOUNT,
                rule_groups=self.alerting_rule_groups,
                alarm_topic=self.cloudwatch.topic,
                alarm_key=self.cloudwatch.key,
                removal_policy=removal_policy,
            )
            CfnOutput(
                self,
                "ManagedPrometheusQueryUrl",
                value=self.managed_prometheus.workspace.attr_prometheus_endpoint,
                description="Amazon Managed Service for Prometheus endpoint (query with SigV4, service 'aps').",
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
            remote_write=[self.managed_prometheus.remote_write()] if self.managed_prometheus else None,
            pod_annotations=self.managed_prometheus.pod_annotations() if self.managed_prometheus else None,
        )
        if self.managed_prometheus:
            # Pod Identity hands credentials only to pods started after their association exists.
            self.prometheus.chart.node.add_dependency(self.managed_prometheus.remote_write_identity)
        self.dcgm = DcgmExporter(
            self,
            "DcgmExporter",
            cluster=cluster,
            namespace=dcgm_namespace,
            collect_interval_seconds=metrics.scrape_interval_seconds,
            cloudwatch_agent=dcgm_for_cloudwatch,
        )
