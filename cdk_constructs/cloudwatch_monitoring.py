"""CloudWatch dashboard and alarms for the AWS side of the platform, built with cdk-monitoring-constructs.

The EKS cluster through Container Insights (the amazon-cloudwatch-observability add-on publishes these
metrics), the gateway's Aurora cluster and ElastiCache Serverless cache. Alarms notify an SNS topic
encrypted with its own customer key, which CloudWatch is allowed to use (CloudWatch User Guide,
"Amazon SNS topic encrypted with a customer managed key": the key policy must let cloudwatch.amazonaws.com
call kms:Decrypt and kms:GenerateDataKey*), optionally with an email subscription.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from cdk_monitoring_constructs import (
    AlarmFactoryDefaults,
    CustomMetricGroup,
    CustomMetricWithAlarm,
    CustomThreshold,
    DefaultDashboardFactory,
    ElastiCacheServerlessMonitoring,
    MaxThrottleRateThreshold,
    MonitoringFacade,
    SnsAlarmActionStrategy,
    UsageThreshold,
)
from constructs import Construct

CONTAINER_INSIGHTS = "ContainerInsights"


class CloudWatchMonitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        cluster_name: str,
        database: rds.IDatabaseCluster | None,
        cache_name: str | None,
        alarm_email: str | None,
        removal_policy: RemovalPolicy,
        gpu_namespace: str | None = None,
    ) -> None:
        """`gpu_namespace`: the namespace whose pods use the cluster's NVIDIA GPUs, for the GPU section; None
        when the platform runs no NVIDIA GPUs or Container Insights is off (no GPU metrics to show)."""
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "AlarmTopicKey",
            alias=f"alias/{prefix}/alarms",
            description=f"{prefix}: the CloudWatch alarm topic",
            enable_key_rotation=True,
            pending_window=Duration.days(7 if removal_policy == RemovalPolicy.DESTROY else 30),
            removal_policy=removal_policy,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        self.topic = sns.Topic(
            self, "AlarmTopic", display_name=f"{prefix} platform alarms", master_key=self.key, enforce_ssl=True
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsInThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self.facade = MonitoringFacade(
            self,
            "Facade",
            alarm_factory_defaults=AlarmFactoryDefaults(
                actions_enabled=True,
                alarm_name_prefix=prefix,
                action=SnsAlarmActionStrategy(on_alarm_topic=self.topic),
                datapoints_to_alarm=3,
                evaluation_periods=5,
            ),
            dashboard_factory=DefaultDashboardFactory(
                self,
                "Dashboards",
                dashboard_name_prefix=prefix,
                create_dashboard=True,
                create_summary_dashboard=False,
                create_alarm_dashboard=False,
            ),
        )
        self.facade.add_large_header(f"{prefix}: GenAI inference platform")
        self._container_insights(cluster_name)
        if gpu_namespace is not None:
            self._gpus(cluster_name, gpu_namespace)
        # Published and failed deliveries of the alarm topic itself. A failure alarm would notify the failing
        # topic, so it is left to the dashboard and the console.
        self.facade.monitor_sns_topic(
            topic=self.topic, human_readable_name="Alarm topic (SNS)", alarm_friendly_name="AlarmTopic"
        )
        if database is not None:
            self.facade.monitor_aurora_cluster(
                cluster=database,
                human_readable_name="Gateway database (Aurora)",
                alarm_friendly_name="GatewayDatabase",
                add_cpu_usage_alarm={"Warning": UsageThreshold(max_usage_percent=90)},
            )
        if cache_name is not None:
            self.facade.add_segment(
                ElastiCacheServerlessMonitoring(
                    self.facade,
                    cluster_id=cache_name,
                    human_readable_name="Gateway cache (ElastiCache Serverless)",
                    alarm_friendly_name="GatewayCache",
                    add_throttle_rate_alarm={"Warning": MaxThrottleRateThreshold(max_throttle_rate_percent=1)},
                )
            )

    def _container_insights(self, cluster_name: str) -> None:
        def metric(name: str, statistic: str = "Average", **dimensions: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=CONTAINER_INSIGHTS,
                metric_name=name,
                dimensions_map={"ClusterName": cluster_name, **dimensions},
                statistic=statistic,
                period=Duration.minutes(1),
            )

        def restarts(namespace: str) -> cloudwatch.MathExpression:
            # Container Insights publishes restarts only by {ClusterName, Namespace, PodName}, PodName being the
            # workload's name (CloudWatch User Guide, Container-Insights-metrics-EKS; FullPodName names the pod), so
            # a namespace's total is a search over its workloads. A
            # dashboard can show a search; an alarm cannot, so restarts are watched here, not alarmed.
            return cloudwatch.MathExpression(
                expression=(
                    f"SUM(SEARCH('{{{CONTAINER_INSIGHTS},ClusterName,Namespace,PodName}} "
                    f'MetricName="pod_number_of_container_restarts" ClusterName="{cluster_name}" '
                    f"Namespace=\"{namespace}\"', 'Maximum', 300))"
                ),
                label=namespace,
                period=Duration.minutes(5),
                using_metrics={},
            )

        self.facade.monitor_custom(
            alarm_friendly_name="Cluster",
            human_readable_name=f"EKS cluster {cluster_name} (Container Insights)",
            metric_groups=[
                CustomMetricGroup(
                    title="Node CPU and memory (%)",
                    metrics=[metric("node_cpu_utilization"), metric("node_memory_utilization")],
                ),
                CustomMetricGroup(
                    title="Failed nodes",
                    metrics=[
                        CustomMetricWithAlarm(
                            metric=metric("cluster_failed_node_count", "Maximum"),
                            alarm_friendly_name="FailedNodes",
                            add_alarm={
                                "Warning": CustomThreshold(
                                    threshold=0,
                                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                                )
                            },
                        )
                    ],
                ),
                CustomMetricGroup(
                    title="Pod CPU by namespace (%)",
                    metrics=[metric("pod_cpu_utilization", Namespace=ns) for ns in ("inference", "gateway")],
                ),
                CustomMetricGroup(
                    title="Container restarts by namespace (summed over its workloads)",
                    metrics=[restarts(ns) for ns in ("inference", "gateway")],
                ),
            ],
        )

    def _gpus(self, cluster_name: str, namespace: str) -> None:
        """Container Insights' NVIDIA GPU metrics, which the CloudWatch agent derives from the platform's DCGM
        exporter. Names and dimension sets as the agent publishes them (aws/amazon-cloudwatch-agent,
        translator/translate/otel/exporter/awsemf/kubernetes.go, getGPUMetricDeclarations; CloudWatch User Guide,
        Container-Insights-metrics-enhanced-EKS, "NVIDIA GPU metrics"): `node_gpu_*` by {ClusterName},
        `pod_gpu_*` by {ClusterName, Namespace}. The agent collects them once a minute."""

        def metric(name: str, label: str, statistic: str = "Average", **dimensions: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=CONTAINER_INSIGHTS,
                metric_name=name,
                dimensions_map={"ClusterName": cluster_name, **dimensions},
                statistic=statistic,
                period=Duration.minutes(1),
                label=label,
            )

        # At least one vLLM replica always runs (autoscaling.min_replicas >= 1), so a GPU node always does too:
        # five minutes without a single GPU sample means the exporter or the agent's scrape of it is broken
        # (the agent's contract with the exporter is not a documented API; README, "GPU metrics").
        samples = cloudwatch.Metric(
            namespace=CONTAINER_INSIGHTS,
            metric_name="node_gpu_utilization",
            dimensions_map={"ClusterName": cluster_name},
            statistic="SampleCount",
            period=Duration.minutes(5),
            label="GPU samples per 5 minutes",
        )
        self.facade.monitor_custom(
            alarm_friendly_name="Gpus",
            human_readable_name=f"NVIDIA GPUs of {cluster_name} (Container Insights, from the DCGM exporter)",
            metric_groups=[
                CustomMetricGroup(
                    title="GPU utilisation (%)",
                    metrics=[
                        metric("node_gpu_utilization", "All GPUs"),
                        metric("pod_gpu_utilization", f"Pods of {namespace}", Namespace=namespace),
                    ],
                ),
                CustomMetricGroup(
                    title="GPU memory used (%)",
                    metrics=[
                        metric("node_gpu_memory_utilization", "All GPUs"),
                        metric("pod_gpu_memory_utilization", f"Pods of {namespace}", Namespace=namespace),
                    ],
                ),
                CustomMetricGroup(
                    title="GPU temperature (C, hottest) and power (W)",
                    metrics=[
                        metric("node_gpu_temperature", "Temperature", "Maximum"),
                        metric("node_gpu_power_draw", "Power draw"),
                    ],
                ),
                CustomMetricGroup(
                    title="GPU telemetry",
                    metrics=[
                        CustomMetricWithAlarm(
                            metric=samples,
                            alarm_friendly_name="GpuTelemetryMissing",
                            add_alarm={
                                "Warning": CustomThreshold(
                                    threshold=1,
                                    comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                                    treat_missing_data_override=cloudwatch.TreatMissingData.BREACHING,
                                    additional_description="No NVIDIA GPU metrics reach Container Insights although "
                                    "vLLM always holds a GPU: check the dcgm-exporter pods and Service in the "
                                    "amazon-cloudwatch namespace and the cloudwatch-agent logs.",
                                )
                            },
                        )
                    ],
                ),
            ],
        )
