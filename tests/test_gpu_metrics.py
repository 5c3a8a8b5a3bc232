"""GPU metrics in Prometheus and in CloudWatch Container Insights from one DCGM exporter per GPU node.

The facts below are written here from their sources, not taken from the code under test:

- The add-on's CloudWatch agent scrapes a DCGM exporter only through a Service of its own namespace labelled
  `k8s-app=dcgm-exporter-service`, over HTTPS, verifying the certificate against the CA in
  /etc/amazon-cloudwatch-observability-agent-cert/tls-ca.crt (amazon-contributing/opentelemetry-collector-contrib,
  receiver/awscontainerinsightreceiver/internal/gpu/dcgmscraper_config.go: kubernetes.RoleService,
  IncludeOwnNamespace, Scheme "https", InsecureSkipVerify false). The add-on mounts that CA from the secret
  `amazon-cloudwatch-observability-agent-cert`, whose certificate names `dcgm-exporter-service` and
  `dcgm-exporter-service.amazon-cloudwatch.svc` (aws-observability/helm-charts, charts/amazon-cloudwatch-observability
  templates/linux/cloudwatch-agent-custom-resource.yaml, the same from chart 1.5 to 6.4.0); Prometheus service
  discovery addresses a Service as `<name>.<namespace>.svc:<port>`.
- The agent renames seven DCGM fields to Container Insights metrics, each as `container_`, `pod_` and `node_`
  (aws/amazon-cloudwatch-agent, translator/translate/otel/processor/metricstransformprocessor/translator.go,
  renameMapForDcgm), published under the dimension sets of translator/translate/otel/exporter/awsemf/kubernetes.go
  (getGPUMetricDeclarations), as the CloudWatch User Guide lists them (Container-Insights-metrics-enhanced-EKS,
  "NVIDIA GPU metrics").
- The add-on renders its own DcgmExporter only `if .Values.dcgmExporter.enabled`
  (templates/linux/dcgm-exporter-daemonset.yaml); NVIDIA's chart runs its exporter as a DaemonSet whose pods carry
  `app.kubernetes.io/name` (the chart's name) and `app.kubernetes.io/instance` (the release)
  (NVIDIA/dcgm-exporter 4.5.3-4.8.2, deployment/templates/_helpers.tpl and daemonset.yaml).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import kubernetes_validate
import pytest
from aws_cdk.assertions import Template

from tests.conftest import Synthesized, config_for, helm_values, resources_of
from tests.prometheus_harness import MetricsExporter, running_prometheus, self_signed_tls

AGENT_NAMESPACE = "amazon-cloudwatch"
AGENT_TLS_SECRET = "amazon-cloudwatch-observability-agent-cert"
AGENT_SERVICE = "dcgm-exporter-service"
AGENT_SERVICE_LABELS = {"k8s-app": "dcgm-exporter-service"}
EXPORTER_PORT = 9400  # dcgm-exporter's default listener (chart values service.port / address ":9400")
NVIDIA_CHART = ("https://nvidia.github.io/dcgm-exporter/helm-charts", "dcgm-exporter", "4.8.2")

CLOUDWATCH_RENAMES = {
    "DCGM_FI_DEV_GPU_UTIL": "gpu_utilization",
    "DCGM_FI_DEV_FB_USED_PERCENT": "gpu_memory_utilization",
    "DCGM_FI_DEV_FB_USED": "gpu_memory_used",
    "DCGM_FI_DEV_FB_TOTAL": "gpu_memory_total",
    "DCGM_FI_DEV_GPU_TEMP": "gpu_temperature",
    "DCGM_FI_DEV_POWER_USAGE": "gpu_power_draw",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "gpu_tensor_core_utilization",
}
GPU_DIMENSION_SETS = {
    "container": [
        {"ClusterName"},
        {"ClusterName", "Namespace", "PodName", "ContainerName"},
        {"ClusterName", "Namespace", "PodName", "FullPodName", "ContainerName"},
        {"ClusterName", "Namespace", "PodName", "FullPodName", "ContainerName", "GpuDevice"},
    ],
    "pod": [
        {"ClusterName"},
        {"ClusterName", "Namespace"},
        {"ClusterName", "Namespace", "Service"},
        {"ClusterName", "Namespace", "PodName"},
        {"ClusterName", "Namespace", "PodName", "FullPodName"},
        {"ClusterName", "Namespace", "PodName", "FullPodName", "GpuDevice"},
    ],
    "node": [
        {"ClusterName"},
        {"ClusterName", "NodeName", "InstanceId"},
        {"ClusterName", "NodeName", "InstanceId", "InstanceType", "GpuDevice"},
    ],
}
PUBLISHED_GPU_METRICS = {
    f"{level}_{name}": level for level in GPU_DIMENSION_SETS for name in CLOUDWATCH_RENAMES.values()
}
GPU_METRIC = re.compile(r"^(container|pod|node)_gpu_")


def _all_templates(synth: Synthesized) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in synth.template_files()]


def _helm_charts(synth: Synthesized) -> list[dict[str, Any]]:
    return [
        chart["Properties"]
        for template in _all_templates(synth)
        for chart in resources_of(template, "Custom::AWSCDK-EKS-HelmChart").values()
    ]


def _dcgm_chart(synth: Synthesized) -> dict[str, Any]:
    (chart,) = [c for c in _helm_charts(synth) if "dcgm" in c["Chart"]]
    return chart


def _deploy_time_text(value: Any) -> str:
    """A template string with every deploy-time part (a reference, a stack output...) shown as `<token>`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and list(value) == ["Fn::Join"]:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_deploy_time_text(part) for part in parts)
    return "<token>"


def _applied_objects(synth: Synthesized) -> Iterator[dict[str, Any]]:
    """Every Kubernetes object the stacks apply with a KubernetesManifest (cdk8s charts and single manifests)."""
    for template in _all_templates(synth):
        for resource in resources_of(template, "Custom::AWSCDK-EKS-KubernetesResource").values():
            yield from json.loads(_deploy_time_text(resource["Properties"]["Manifest"]))


def _scrape_job(synth: Synthesized, name: str) -> dict[str, Any]:
    (prometheus,) = [c for c in _helm_charts(synth) if c["Chart"] == "prometheus"]
    job: dict[str, Any] = helm_values(prometheus["Values"])["scrapeConfigs"][name]
    return job


def _csv_fields(custom_metrics: str) -> dict[str, str]:
    """dcgm-exporter's metrics CSV: `DCGM field, Prometheus type, help`, `#` starts a comment."""
    fields = {}
    for line in custom_metrics.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, kind, _help = (part.strip() for part in line.split(",", 2))
            fields[name] = kind
    return fields


# --- one exporter per GPU node -------------------------------------------------------------------------------


def test_exactly_one_dcgm_exporter_runs_on_each_nvidia_gpu_node(dev: Synthesized) -> None:
    chart = _dcgm_chart(dev)  # the only DCGM chart of any stack
    assert (chart["Repository"], chart["Chart"], chart["Version"]) == NVIDIA_CHART
    values = helm_values(chart["Values"])
    # Scheduled on NVIDIA nodes, tolerating the taint the gpu pool puts on them.
    assert values["nodeSelector"] == {"eks.amazonaws.com/instance-gpu-manufacturer": "nvidia"}
    (taint,) = dev.one("NodePool", "gpu")["spec"]["template"]["spec"]["taints"]
    assert {"key": taint["key"], "operator": "Exists", "effect": taint["effect"]} in values["tolerations"]
    # The add-on's own exporter is not rendered.
    (addon,) = [
        a["Properties"]
        for a in resources_of(dev.template_json(), "AWS::EKS::Addon").values()
        if a["Properties"]["AddonName"] == "amazon-cloudwatch-observability"
    ]
    assert json.loads(addon["ConfigurationValues"])["dcgmExporter"]["enabled"] is False
    # Nothing else deploys an exporter: no add-on DcgmExporter resource and no DaemonSet running a DCGM image.
    applied = [*dev.documents(), *_applied_objects(dev)]
    assert [o for o in applied if o["kind"] == "DcgmExporter"] == []
    daemon_sets = [o for o in applied if o["kind"] == "DaemonSet"]
    images = [c["image"] for d in daemon_sets for c in d["spec"]["template"]["spec"]["containers"]]
    assert [image for image in images if "dcgm" in image] == []


def test_exporter_meets_the_cloudwatch_agents_contract(dev: Synthesized) -> None:
    chart = _dcgm_chart(dev)
    values = helm_values(chart["Values"])
    assert chart["Namespace"] == AGENT_NAMESPACE
    assert values["tlsServerConfig"] == {"enabled": True, "existingSecret": AGENT_TLS_SECRET}
    # The chart's own Service is off: the agent's Service below is the only one.
    assert values["service"]["enable"] is False
    (service,) = [o for o in _applied_objects(dev) if o["kind"] == "Service" and o["metadata"]["name"] == AGENT_SERVICE]
    kubernetes_validate.validate(service, dev.config.cluster.kubernetes_version, strict=True)
    assert service["metadata"]["namespace"] == AGENT_NAMESPACE
    assert AGENT_SERVICE_LABELS.items() <= service["metadata"]["labels"].items()
    spec = service["spec"]
    # Each node's agent reaches its own node's exporter, as with the add-on's Service (operator
    # internal/manifests/dcgmexporter/service.go: ServiceInternalTrafficPolicyLocal).
    assert spec["internalTrafficPolicy"] == "Local"
    assert spec["ports"] == [{"name": "metrics", "port": EXPORTER_PORT, "protocol": "TCP", "targetPort": EXPORTER_PORT}]
    pod_labels = {"app.kubernetes.io/name": chart["Chart"], "app.kubernetes.io/instance": chart["Release"]}
    assert spec["selector"] == pod_labels


def test_exporter_collects_what_container_insights_the_alerts_and_keda_read(dev: Synthesized) -> None:
    values = helm_values(_dcgm_chart(dev)["Values"])
    fields = _csv_fields(values["customMetrics"])
    assert set(fields.values()) <= {"gauge", "counter", "label"}
    for field in CLOUDWATCH_RENAMES:
        assert fields.get(field) == "gauge", field
    # The XID alert (FACTS.md: a gauge holding the last XID code) and every DCGM field a rule or trigger reads.
    assert fields.get("DCGM_FI_DEV_XID_ERRORS") == "gauge"
    (prometheus,) = [c for c in _helm_charts(dev) if c["Chart"] == "prometheus"]
    rules = json.dumps(helm_values(prometheus["Values"])["serverFiles"])
    queries = json.dumps([t["metadata"]["query"] for t in dev.one("ScaledObject", "vllm")["spec"]["triggers"]])
    read = set(re.findall(r"DCGM_FI_[A-Z_]+", rules + queries))
    assert "DCGM_FI_DEV_XID_ERRORS" in read
    assert read <= set(fields)
    # Collected as often as Prometheus scrapes.
    interval_ms = int(_scrape_job(dev, "dcgm-exporter")["scrape_interval"].removesuffix("s")) * 1000
    assert {"name": "DCGM_EXPORTER_INTERVAL", "value": str(interval_ms)} in values["extraEnv"]


def test_exporter_starts_on_bottlerocket_and_rolls_when_its_metric_list_changes(dev: Synthesized) -> None:
    """Upstream start-up failures on EKS Bottlerocket, which Auto Mode nodes run: a ConfigMap mounted over a single
    file with subPath is refused under SELinux ("not a directory", NVIDIA/dcgm-exporter #613); the distroless
    image's start-up check cannot find libdcgm in an ld cache it lacks (#612, #636; DISABLE_STARTUP_VALIDATE in
    pkg/cmd/app.go at 4.5.3-4.8.2); the 4.5.3-4.8.2 distroless image misses profiling libraries (#700, fixed in
    4.6.0-4.8.3, the image the add-on itself ships)."""
    values = helm_values(_dcgm_chart(dev)["Values"])
    mounts = values["extraVolumeMounts"]
    assert [m for m in mounts if "subPath" in m] == []
    # The metric list the chart renders (ConfigMap exporter-metrics-config-map, key `metrics`) is what -f reads.
    (volume,) = values["extraConfigMapVolumes"]
    assert volume["configMap"]["name"] == "exporter-metrics-config-map"
    (item,) = volume["configMap"]["items"]
    assert item["key"] == "metrics"
    (mount,) = [m for m in mounts if m["name"] == volume["name"]]
    flag, path = values["arguments"]
    assert flag == "-f"
    assert path == f"{mount['mountPath']}/{item['path']}"
    assert {"name": "DISABLE_STARTUP_VALIDATE", "value": "true"} in values["extraEnv"]
    assert values["image"]["tag"] == "4.6.0-4.8.3-distroless"
    # Not the chart's 200m CPU limit, which merges in unless set: the add-on's exporter's 500m.
    assert values["resources"]["limits"] == {"memory": "512Mi", "cpu": "500m"}
    # A new list changes only the ConfigMap; the pod template's checksum of it rolls the pods.
    checksum = hashlib.sha256(values["customMetrics"].encode()).hexdigest()
    assert values["podAnnotations"] == {"platform/metrics-checksum": checksum}


def test_exporter_namespace_admits_the_exporter(dev: Synthesized) -> None:
    """The platform does not label the add-on's namespace (EKS ships no Pod Security restriction: EKS User Guide,
    pod-security-policy; the add-on's own agent there uses hostNetwork and host paths, which only `privileged`
    admits), and config refuses a level below `privileged` wherever the exporter runs."""
    assert AGENT_NAMESPACE not in {doc["metadata"]["name"] for doc in dev.find("Namespace")}
    platform = ["inference", "gateway", "keda", "external-secrets", "observability"]

    def listing(**levels: str) -> str:
        return json.dumps([{"name": n, "pod_security": levels.get(n, "restricted")} for n in platform])

    without_insights = {"addons.container_insights": "false"}
    with pytest.raises(ValueError, match=r"'observability' pod_security 'restricted'.*only 'privileged' admits it"):
        config_for("dev", **without_insights, namespaces=listing())
    assert config_for("dev", **without_insights, namespaces=listing(observability="privileged"))
    with_agent_namespace = [*json.loads(listing()), {"name": AGENT_NAMESPACE, "pod_security": "baseline"}]
    with pytest.raises(ValueError, match="'amazon-cloudwatch' pod_security 'baseline'"):
        config_for("dev", namespaces=json.dumps(with_agent_namespace))
    # With Container Insights the exporter is not in `observability`, which may then be restricted.
    assert config_for("dev", namespaces=listing()).dcgm_exporter_namespace == AGENT_NAMESPACE
    # Without a list, `observability` is privileged exactly when the exporter runs there.
    defaults = {ns.name: ns.pod_security for ns in config_for("dev").namespaces}
    assert defaults["observability"] == "restricted"
    defaults = {ns.name: ns.pod_security for ns in config_for("dev", **without_insights).namespaces}
    assert defaults["observability"] == "privileged"


@pytest.mark.parametrize(
    ("version", "error"),
    [
        # The dcgmExporter.enabled switch exists from chart 4.3.0 (aws-observability/helm-charts #190).
        ("v4.2.1-eksbuild.1", "older than v4.3.0-eksbuild.1"),
        ("4.8.0", "must be an EKS add-on version"),
        ("v4.3.0-eksbuild.1", None),
        ("v4.8.0-eksbuild.2", None),
    ],
)
def test_pinned_add_on_version_must_scrape_the_platforms_exporter(version: str, error: str | None) -> None:
    if error is None:
        assert config_for("dev", **{"addons.container_insights_version": version}).addons.container_insights_version
    else:
        with pytest.raises(ValueError, match=f"addons.container_insights_version.*{error}"):
            config_for("dev", **{"addons.container_insights_version": version})


# --- Prometheus ----------------------------------------------------------------------------------------------


def _dcgm_exposition() -> str:
    """dcgm-exporter in Kubernetes mode: GPU 0 held by a vLLM pod (its namespace/pod/container), GPU 1 idle."""
    base = 'gpu="{gpu}",UUID="GPU-{gpu}",device="nvidia{gpu}",modelName="NVIDIA L4",Hostname="ip-10-0-3-7"'
    held = base.format(gpu=0) + ',container="vllm",namespace="inference",pod="vllm-0"'
    idle = base.format(gpu=1)
    lines = [
        "# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.",
        "# TYPE DCGM_FI_DEV_XID_ERRORS gauge",
    ]
    lines += [f"DCGM_FI_DEV_XID_ERRORS{{{held}}} 79", f"DCGM_FI_DEV_XID_ERRORS{{{idle}}} 0"]
    return "\n".join(lines) + "\n"


def _discovered(pod: str) -> dict[str, str]:
    """What Kubernetes pod discovery reports for an exporter pod of NVIDIA's chart in the agent's namespace."""
    return {
        "__meta_kubernetes_namespace": AGENT_NAMESPACE,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "dcgm-exporter",
        "__meta_kubernetes_pod_label_app_kubernetes_io_instance": "dcgm-exporter",
        "__meta_kubernetes_pod_container_port_name": "metrics",
        "__meta_kubernetes_pod_container_port_number": str(EXPORTER_PORT),
    }


def test_prometheus_scrapes_the_exporter_over_https_and_keeps_the_gpus_pod(dev: Synthesized, tmp_path: Path) -> None:
    """A real Prometheus runs the synthesized job (discovery replaced by static targets carrying the same
    `__meta_kubernetes_*` labels): it reaches an exporter serving TLS with a certificate it cannot verify, would
    fail on one serving plain HTTP, and keeps the GPU's pod as `namespace`/`pod` (not `exported_*`)."""
    job = _scrape_job(dev, "dcgm-exporter")
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": [AGENT_NAMESPACE]}}]
    assert job["scheme"] == "https"
    assert job["tls_config"] == {"insecure_skip_verify": True}
    assert job["honor_labels"] is True
    static = {k: v for k, v in job.items() if k != "kubernetes_sd_configs"}
    static.update(job_name="dcgm-exporter", scrape_interval="1s", scrape_timeout="1s")
    with ExitStack() as stack:
        tls = stack.enter_context(MetricsExporter(_dcgm_exposition, tls=self_signed_tls(tmp_path, AGENT_SERVICE)))
        plain = stack.enter_context(MetricsExporter(_dcgm_exposition))
        static["static_configs"] = [
            {"targets": [tls.target], "labels": _discovered("dcgm-exporter-tls01")},
            {"targets": [plain.target], "labels": _discovered("dcgm-exporter-http1")},
        ]
        prometheus = stack.enter_context(running_prometheus([static]))
        prometheus.wait_for('up{pod="dcgm-exporter-tls01"} == 1', bool, timeout=30)
        prometheus.wait_for('up{pod="dcgm-exporter-http1"} == 0', bool, timeout=15)
        held = prometheus.wait_for('DCGM_FI_DEV_XID_ERRORS{gpu="0"}', bool, timeout=15)
        (down,) = [t for t in prometheus.targets() if t["labels"]["pod"] == "dcgm-exporter-http1"]
    assert [r["metric"]["pod"] for r in held] == ["vllm-0"]
    assert held[0]["metric"]["namespace"] == "inference"
    assert held[0]["metric"]["container"] == "vllm"
    assert held[0]["value"][1] == "79"
    assert not any(label.startswith("exported_") for label in held[0]["metric"])
    assert down["health"] == "down"
    assert "does not look like a TLS handshake" in down["lastError"]  # Go crypto/tls on a plain-HTTP answer


# --- CloudWatch ----------------------------------------------------------------------------------------------


def _dashboard_metrics(template: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """(namespace, metric, dimensions, options) of every metric on the dashboards of a template. A widget's
    metric is `[namespace, name, dim1, value1, ..., {options}]` (CloudWatch dashboard body structure)."""
    found = []
    for resource in resources_of(template, "AWS::CloudWatch::Dashboard").values():
        body = json.loads(_deploy_time_text(resource["Properties"]["DashboardBody"]))
        for widget in body["widgets"]:
            for entry in widget["properties"].get("metrics", []):
                options = entry[-1] if isinstance(entry[-1], dict) else {}
                parts = entry[:-1] if options else entry
                if not parts:  # a metric math expression: all in its options
                    continue
                namespace, name, *pairs = parts
                found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)), options))
    return found


def _gpu_alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    alarms = []
    for alarm in resources_of(template, "AWS::CloudWatch::Alarm").values():
        stats = [m["MetricStat"] for m in alarm["Properties"].get("Metrics", []) if "MetricStat" in m]
        names = [s["Metric"]["MetricName"] for s in stats] + [alarm["Properties"].get("MetricName", "")]
        if any(GPU_METRIC.match(name) for name in names):
            alarms.append(alarm["Properties"])
    return alarms


def test_cloudwatch_gpu_widgets_use_container_insights_names_and_dimensions(dev: Synthesized) -> None:
    gpu = [m for m in _dashboard_metrics(dev.stack_json("observability")) if GPU_METRIC.match(m[1])]
    assert {name for _, name, _, _ in gpu} >= {"node_gpu_utilization", "pod_gpu_utilization"}
    for namespace, name, dimensions, _ in gpu:
        assert namespace == "ContainerInsights", name
        assert name in PUBLISHED_GPU_METRICS, f"{name} is not a Container Insights GPU metric"
        assert set(dimensions) in GPU_DIMENSION_SETS[PUBLISHED_GPU_METRICS[name]], (name, dimensions)
        assert dimensions["ClusterName"] == dev.config.prefix
        if "Namespace" in dimensions:
            assert dimensions["Namespace"] == "inference"


def test_gpu_telemetry_alarm_fires_when_no_gpu_metric_reaches_cloudwatch(dev: Synthesized) -> None:
    """vLLM always holds a GPU (min_replicas >= 1), so five minutes without a node_gpu_utilization sample means the
    exporter or the agent's scrape of it is broken: below 1 sample (none) alarms, 1 or more does not, and no data
    at all counts as breaching."""
    template = dev.stack_json("observability")
    (alarm,) = _gpu_alarms(template)
    ((query,),) = [[m for m in alarm["Metrics"] if m.get("ReturnData", True)]]
    stat = query["MetricStat"]
    assert stat["Metric"] == {
        "Namespace": "ContainerInsights",
        "MetricName": "node_gpu_utilization",
        "Dimensions": [{"Name": "ClusterName", "Value": dev.config.prefix}],
    }
    assert (stat["Stat"], stat["Period"]) == ("SampleCount", 300)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "breaching"
    (topic,) = resources_of(template, "AWS::SNS::Topic")
    assert alarm["AlarmActions"] == [{"Ref": topic}]


def test_no_gpu_widgets_or_alarm_without_gpu_metrics() -> None:
    """Neuron instead of NVIDIA, or no Container Insights: nothing to show, and an alarm would always fire."""
    from cdk_constructs.cloudwatch_monitoring import CloudWatchMonitoring

    app = cdk.App()
    stack = cdk.Stack(app, "Monitoring")
    CloudWatchMonitoring(
        stack,
        "CloudWatch",
        prefix="genai-test",
        cluster_name="genai-test",
        database=None,
        cache_name=None,
        alarm_email=None,
        removal_policy=cdk.RemovalPolicy.DESTROY,
        gpu_namespace=None,
    )
    template = dict(Template.from_stack(stack).to_json())
    assert [m for m in _dashboard_metrics(template) if GPU_METRIC.match(m[1])] == []
    assert _gpu_alarms(template) == []
    assert _dashboard_metrics(template), "the dashboard itself is still there"
