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
    ) -> None:
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
            ],
        )
