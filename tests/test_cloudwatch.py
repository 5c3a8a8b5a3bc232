"""The CloudWatch side: dashboard and alarms (cdk-monitoring-constructs) notifying an encrypted SNS topic."""

from __future__ import annotations

import json
from typing import Any

import pytest

from platform_config import ConfigError
from tests.conftest import Synthesized, cfn_text, config_for, resources_of


def _observability(synth: Synthesized) -> dict[str, Any]:
    return synth.stack_json("observability")


def test_alarms_watch_the_cluster_database_and_cache_and_notify_the_topic(dev: Synthesized) -> None:
    template = _observability(dev)
    (topic_id,) = resources_of(template, "AWS::SNS::Topic")
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    names = {a["Properties"]["AlarmName"] for a in alarms}
    assert names == {
        "genai-dev-Cluster-FailedNodes-Warning",
        # tests/test_gpu_metrics.py holds this one.
        "genai-dev-Gpus-GpuTelemetryMissing-Warning",
        "genai-dev-GatewayDatabase-CPU-Usage-Warning",
        "genai-dev-GatewayCache-Throttle-Rate-Warning",
    }
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    by_name = {a["Properties"]["AlarmName"]: a["Properties"] for a in alarms}
    failed_nodes = by_name["genai-dev-Cluster-FailedNodes-Warning"]
    assert (failed_nodes["Namespace"], failed_nodes["MetricName"]) == ("ContainerInsights", "cluster_failed_node_count")
    assert failed_nodes["Dimensions"] == [{"Name": "ClusterName", "Value": "genai-dev"}]
    assert (failed_nodes["Threshold"], failed_nodes["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    cpu = by_name["genai-dev-GatewayDatabase-CPU-Usage-Warning"]
    assert cpu["Threshold"] == 90
    assert cpu["Metrics"][0]["MetricStat"]["Metric"]["MetricName"] == "CPUUtilization"
    throttling = json.dumps(by_name["genai-dev-GatewayCache-Throttle-Rate-Warning"]["Metrics"])
    assert '"clusterId"' in throttling
    assert '"genai-dev-litellm"' in throttling


def test_the_alarm_topic_is_encrypted_with_its_own_key_and_tls_only(dev: Synthesized) -> None:
    template = _observability(dev)
    (topic,) = resources_of(template, "AWS::SNS::Topic").values()
    (key_id, key), *_ = resources_of(template, "AWS::KMS::Key").items()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    (policy,) = resources_of(template, "AWS::SNS::TopicPolicy").values()
    deny = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert [s["Condition"] for s in deny] == [{"Bool": {"aws:SecureTransport": "false"}}]


def test_the_dashboard_shows_container_insights_for_this_cluster(dev: Synthesized) -> None:
    (dashboard,) = resources_of(_observability(dev), "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in ("node_cpu_utilization", "node_memory_utilization", "pod_cpu_utilization"):
        assert metric in body
    assert "genai-dev" in body


def test_without_the_gateway_only_the_cluster_alarm_remains_and_email_subscribes(synth_in: Any) -> None:
    synth = synth_in("dev", **{"gateway.enabled": "false", "observability.alarm_email": "ops@example.com"})
    template = _observability(synth)
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    assert {a["Properties"]["AlarmName"] for a in alarms} == {
        "genai-dev-Cluster-FailedNodes-Warning",
        "genai-dev-Gpus-GpuTelemetryMissing-Warning",
    }
    (subscription,) = resources_of(template, "AWS::SNS::Subscription").values()
    assert (subscription["Properties"]["Protocol"], subscription["Properties"]["Endpoint"]) == (
        "email",
        "ops@example.com",
    )


def test_alarm_email_subscribes_and_a_malformed_one_is_refused() -> None:
    assert config_for("dev", **{"observability.alarm_email": "ops@example.com"}).observability.alarm_email
    with pytest.raises(ConfigError, match=r"observability\.alarm_email.*an email address"):
        config_for("dev", **{"observability.alarm_email": "not-an-address"})


def test_the_dashboard_shows_container_restarts_per_namespace_and_the_alarm_topics_deliveries(
    dev: Synthesized,
) -> None:
    """Restarts: Container Insights publishes `pod_number_of_container_restarts` per pod only ({ClusterName,
    Namespace, PodName}, CloudWatch User Guide, Container-Insights-metrics-EKS), so each namespace is a SEARCH
    over that dimension set. The topic: SNS's own NumberOfNotificationsFailed (SNS developer guide, metrics)."""
    (dashboard,) = resources_of(_observability(dev), "AWS::CloudWatch::Dashboard").values()
    body = json.loads(cfn_text(dashboard["Properties"]["DashboardBody"]))
    expressions = [
        entry["expression"]
        for widget in body["widgets"]
        for row in widget.get("properties", {}).get("metrics", [])
        for entry in row
        if isinstance(entry, dict) and "expression" in entry
    ]
    for namespace in ("inference", "gateway"):
        assert (
            "SUM(SEARCH('{ContainerInsights,ClusterName,Namespace,PodName} "
            'MetricName="pod_number_of_container_restarts" ClusterName="genai-dev" '
            f"Namespace=\"{namespace}\"', 'Maximum', 300))"
        ) in expressions
    metric_names = {
        entry
        for widget in body["widgets"]
        for row in widget.get("properties", {}).get("metrics", [])
        for entry in row
        if isinstance(entry, str)
    }
    assert "NumberOfNotificationsFailed" in metric_names
