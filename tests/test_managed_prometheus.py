"""Amazon Managed Service for Prometheus (on in prod by cdk.json, off in dev): an encrypted workspace, the
in-cluster Prometheus remote-writing to it through Pod Identity, the same alerting rules, and its alert
manager delivering to the encrypted alarm topic.

Expected values come from the AMP User Guide: the remote-write path `api/v1/remote_write` under the
workspace's endpoint (AMP-onboard-ingest-metrics-remote-write), SigV4 with the region, the alert manager
definition as an Alertmanager file under `alertmanager_config` with an `sns_configs` receiver
(AMP-alertmanager-config), and the topic policy for `aps.amazonaws.com` limited by source account and
workspace ARN (AMP-alertmanager-receiver-AMPpermission).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from platform_config import ConfigError
from tests.conftest import Synthesized, cfn_text, config_for, helm_values, only, resources_of
from tests.prometheus_harness import check_rule_file, require_tool

NAMESPACE = "observability"  # where the platform runs Prometheus (platform_config/namespaces.py)
JOBS = ("vllm", "dcgm-exporter", "litellm", "kube-state-metrics")  # the platform's scrape jobs (README)


def _observability(synth: Synthesized) -> dict[str, Any]:
    return synth.stack_json("observability")


def _prometheus_chart(template: dict[str, Any]) -> dict[str, Any]:
    charts = resources_of(template, "Custom::AWSCDK-EKS-HelmChart")
    (logical_id,) = [lid for lid, r in charts.items() if r["Properties"]["Chart"] == "prometheus"]
    return {"id": logical_id, **charts[logical_id]}


def _workspace(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = resources_of(template, "AWS::APS::Workspace").items()
    return logical_id, resource["Properties"]


def test_dev_has_no_workspace_and_no_remote_write(dev: Synthesized) -> None:
    for path in dev.template_files():
        assert "AWS::APS::" not in path.read_text()
    values = helm_values(_prometheus_chart(_observability(dev))["Properties"]["Values"])
    assert values["server"]["remoteWrite"] == []
    assert values["server"]["podAnnotations"] == {}


def test_workspace_is_encrypted_with_its_own_rotating_key(prod: Synthesized) -> None:
    template = _observability(prod)
    _, workspace = _workspace(template)
    key_id = workspace["KmsKeyArn"]["Fn::GetAtt"][0]
    key = template["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    # No other resource of the stack is encrypted with it (its alias aside).
    users = [
        lid
        for lid, r in template["Resources"].items()
        if key_id in str(r.get("Properties")) and lid != key_id and r["Type"] != "AWS::KMS::Alias"
    ]
    workspace_id, _ = _workspace(template)
    assert users == [workspace_id]


def test_rule_groups_namespace_holds_the_synthesized_alerting_rules(prod: Synthesized, tmp_path: Path) -> None:
    rules = only(resources_of(_observability(prod), "AWS::APS::RuleGroupsNamespace"))["Properties"]
    data = yaml.safe_load(rules["Data"])
    reviewed = yaml.safe_load((prod.outdir.parent / "prometheus" / "alerting_rules.yml").read_text())
    assert data == reviewed
    rule_file = tmp_path / "amp-rules.yml"
    rule_file.write_text(rules["Data"])
    check_rule_file(rule_file)


def _alert_manager_config(prod: Synthesized) -> tuple[str, dict[str, Any]]:
    _, workspace = _workspace(_observability(prod))
    # The topic ARN and region are deploy-time values; give them concrete ones a real deploy would have.
    text = (
        cfn_text(workspace["AlertManagerDefinition"])
        .replace("<Ref AWS::Region>", "us-west-2")
        .replace("<Ref CloudWatchAlarmTopic522900F4>", "arn:aws:sns:us-west-2:123456789012:genai-prod-alarms")
    )
    definition = yaml.safe_load(text)
    assert set(definition) == {"alertmanager_config"}
    config: str = definition["alertmanager_config"]
    return config, yaml.safe_load(config)


def test_alert_manager_definition_passes_amtool(prod: Synthesized, tmp_path: Path) -> None:
    config, _ = _alert_manager_config(prod)
    path = tmp_path / "alertmanager.yml"
    path.write_text(config)
    result = subprocess.run(
        [require_tool("amtool"), "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_goes_to_the_encrypted_alarm_topic(prod: Synthesized) -> None:
    template = _observability(prod)
    _, config = _alert_manager_config(prod)
    (receiver,) = config["receivers"]
    assert config["route"]["receiver"] == receiver["name"]
    assert "routes" not in config["route"]
    (sns,) = receiver["sns_configs"]
    assert sns["topic_arn"] == "arn:aws:sns:us-west-2:123456789012:genai-prod-alarms"
    assert sns["sigv4"] == {"region": "us-west-2"}
    topic = template["Resources"]["CloudWatchAlarmTopic522900F4"]
    assert topic["Type"] == "AWS::SNS::Topic"
    assert "KmsMasterKeyId" in topic["Properties"]


def test_alert_manager_may_publish_to_the_topic_and_use_its_key(prod: Synthesized) -> None:
    template = _observability(prod)
    workspace_id, _ = _workspace(template)
    policy = only(resources_of(template, "AWS::SNS::TopicPolicy"))["Properties"]["PolicyDocument"]
    (statement,) = [s for s in policy["Statement"] if s.get("Principal") == {"Service": "aps.amazonaws.com"}]
    assert sorted(statement["Action"]) == ["sns:GetTopicAttributes", "sns:Publish"]
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": [workspace_id, "Arn"]}
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    topic = template["Resources"]["CloudWatchAlarmTopic522900F4"]["Properties"]
    topic_key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = template["Resources"][topic_key_id]["Properties"]["KeyPolicy"]["Statement"]
    (key_statement,) = [s for s in key_policy if s.get("Principal") == {"Service": "aps.amazonaws.com"}]
    assert sorted(key_statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    # As in the AMP guide's example: no condition that SNS's KMS call on AMP's behalf might not carry.
    assert "Condition" not in key_statement


def test_prometheus_remote_writes_to_the_workspace_with_sigv4(prod: Synthesized) -> None:
    template = _observability(prod)
    workspace_id, _ = _workspace(template)
    values = helm_values(_prometheus_chart(template)["Properties"]["Values"])
    (remote_write,) = values["server"]["remoteWrite"]
    assert remote_write["url"] == f"<{workspace_id}.PrometheusEndpoint>api/v1/remote_write"
    assert remote_write["sigv4"] == {"region": "<Ref AWS::Region>"}


def _rendered_prometheus_config(values: dict[str, Any], workspace_id: str) -> dict[str, Any]:
    """The part of prometheus.yml the chart renders from `server.remoteWrite` (templates/cm.yaml), with the
    workspace endpoint and region a real deploy would resolve to."""
    text = json.dumps({"remote_write": values["server"]["remoteWrite"]})
    text = text.replace(
        f"<{workspace_id}.PrometheusEndpoint>", "https://aps-workspaces.us-west-2.amazonaws.com/workspaces/ws-1/"
    ).replace("<Ref AWS::Region>", "us-west-2")
    config: dict[str, Any] = json.loads(text)
    return config


def test_remote_write_config_passes_promtool(prod: Synthesized, tmp_path: Path) -> None:
    template = _observability(prod)
    workspace_id, _ = _workspace(template)
    values = helm_values(_prometheus_chart(template)["Properties"]["Values"])
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(_rendered_prometheus_config(values, workspace_id)))
    result = subprocess.run(
        [require_tool("promtool"), "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _dropped(relabel_configs: list[dict[str, Any]], name: str, job: str) -> bool:
    labels = {"__name__": name, "job": job}
    for rule in relabel_configs:
        value = ";".join(labels[label] for label in rule["source_labels"])
        if rule["action"] == "drop" and re.fullmatch(rule["regex"], value):
            return True
    return False


def test_remote_write_keeps_every_series_a_workspace_rule_reads(prod: Synthesized) -> None:
    """The workspace evaluates the rules on what Prometheus sends it: a dropped series would silence a rule."""
    template = _observability(prod)
    values = helm_values(_prometheus_chart(template)["Properties"]["Values"])
    (remote_write,) = values["server"]["remoteWrite"]
    relabel = remote_write["write_relabel_configs"]
    data = only(resources_of(template, "AWS::APS::RuleGroupsNamespace"))["Properties"]["Data"]
    exprs = [rule["expr"] for group in yaml.safe_load(data)["groups"] for rule in group["rules"]]
    read = {(name, job) for expr in exprs for name in re.findall(r"([a-zA-Z_:][\w:]*)\{", expr) for job in JOBS}
    assert {name for name, _ in read} >= {"vllm:num_requests_waiting", "up", "DCGM_FI_DEV_XID_ERRORS"}
    assert [pair for pair in read if _dropped(relabel, *pair)] == []
    # ... while the in-cluster alert state and runtime series stay home (AMP bills per sample).
    for name, job in [("ALERTS", "vllm"), ("ALERTS_FOR_STATE", "vllm"), ("go_goroutines", "dcgm-exporter"),
                      ("process_cpu_seconds_total", "litellm"), ("python_gc_objects_collected_total", "vllm"),
                      ("prometheus_tsdb_head_series", "prometheus")]:  # fmt: skip
        assert _dropped(relabel, name, job), name


def test_server_pods_are_recreated_when_the_remote_write_identity_changes(prod: Synthesized) -> None:
    """Prometheus stops at start when SigV4 finds no credentials, and a pod created before its Pod Identity
    association never gets any: the pod template names the role and workspace so that a change rolls it."""
    template = _observability(prod)
    workspace_id, _ = _workspace(template)
    values = helm_values(_prometheus_chart(template)["Properties"]["Values"])
    (association,) = [
        r["Properties"]
        for r in resources_of(template, "AWS::EKS::PodIdentityAssociation").values()
        if r["Properties"]["ServiceAccount"] == "prometheus-server"
    ]
    role_id = association["RoleArn"]["Fn::GetAtt"][0]
    annotations = set(values["server"]["podAnnotations"].values())
    assert annotations == {f"<{role_id}.Arn>", f"<{workspace_id}.Arn>"}


def test_remote_write_identity_is_the_prometheus_service_accounts_and_can_only_remote_write(
    prod: Synthesized,
) -> None:
    template = _observability(prod)
    workspace_id, _ = _workspace(template)
    chart = _prometheus_chart(template)
    values = helm_values(chart["Properties"]["Values"])
    associations = [
        (lid, r["Properties"])
        for lid, r in resources_of(template, "AWS::EKS::PodIdentityAssociation").items()
        if r["Properties"]["ServiceAccount"] == values["serviceAccounts"]["server"]["name"]
    ]
    ((association_id, association),) = associations
    assert association["Namespace"] == chart["Properties"]["Namespace"] == NAMESPACE
    assert values["serviceAccounts"]["server"]["create"] is True
    # The server's pods start only after the association exists, or they get no credentials.
    assert association_id in chart["DependsOn"]
    role_id = association["RoleArn"]["Fn::GetAtt"][0]
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in resources_of(template, "AWS::IAM::ManagedPolicy").values()
        if {"Ref": role_id} in r["Properties"].get("Roles", [])
    ]
    assert policies == [
        [{"Action": "aps:RemoteWrite", "Effect": "Allow", "Resource": {"Fn::GetAtt": [workspace_id, "Arn"]}}]
    ]


def test_prod_vpc_has_the_aps_workspaces_endpoint(prod: Synthesized) -> None:
    endpoints = resources_of(prod.stack_json("foundation"), "AWS::EC2::VPCEndpoint").values()
    services = [cfn_text(e["Properties"]["ServiceName"]) for e in endpoints]
    assert "com.amazonaws.<Ref AWS::Region>.aps-workspaces" in services


def test_a_private_cluster_without_the_endpoint_is_refused() -> None:
    prod = config_for("prod")
    without = [e for e in prod.vpc.interface_endpoints if e != "aps-workspaces"]
    with pytest.raises(ConfigError) as raised:
        config_for("prod", **{"vpc.interface_endpoints": without})
    message = str(raised.value)
    assert "observability.managed_prometheus.enabled" in message
    assert "'aps-workspaces'" in message
    # The same VPC is fine once the workspace is off, and a public cluster needs no endpoint.
    config_for("prod", **{"vpc.interface_endpoints": without, "observability.managed_prometheus.enabled": False})
    config_for("dev", **{"observability.managed_prometheus.enabled": True})
