"""Which pods each synthesized Prometheus scrape job scrapes, and the labels its series get.

The jobs use Kubernetes pod discovery: one target per container port of every pod in the job's namespaces,
described by `__meta_kubernetes_*` labels, then filtered and labelled by `relabel_configs`. The relabelling
below follows the Prometheus configuration reference (`<relabel_config>`: source labels joined with `;`,
an anchored regex defaulting to `(.*)`, action `replace` by default with replacement `$1`; `keep` drops a
target whose joined value does not match; labels starting with `__` are dropped after relabelling).
The discovered pods are written here from what the platform runs in each namespace.
"""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import Synthesized, helm_values, resources_of

Target = dict[str, str]


def _pod_target(
    namespace: str, pod: str, app: str, port: tuple[str, int] | None, instance: str | None = None
) -> Target:
    """A target as Kubernetes pod discovery describes it (Prometheus docs, kubernetes_sd_config, role pod)."""
    labels = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
    }
    if instance is not None:
        labels["__meta_kubernetes_pod_label_app_kubernetes_io_instance"] = instance
    if port is not None:
        labels["__meta_kubernetes_pod_container_port_name"] = port[0]
        labels["__meta_kubernetes_pod_container_port_number"] = str(port[1])
    return labels


DISCOVERED = {
    "inference": [
        _pod_target("inference", "vllm-7d9f-abcde", "vllm", ("http", 8000)),
        # The download Job's pods declare no port: discovery still yields one target per pod.
        _pod_target("inference", "model-download-1a2b-xyz", "model-download", None),
    ],
    # NVIDIA's exporter runs in the CloudWatch add-on's namespace (test_gpu_metrics.py); its pods carry the chart's
    # name and instance labels (dcgm-exporter chart 4.8.2, templates/_helpers.tpl, release dcgm-exporter).
    "amazon-cloudwatch": [
        _pod_target("amazon-cloudwatch", "dcgm-exporter-q8r7s", "dcgm-exporter", ("metrics", 9400), "dcgm-exporter"),
        _pod_target("amazon-cloudwatch", "dcgm-exporter-q8r7s", "dcgm-exporter", ("debug", 5555), "dcgm-exporter"),
        # The add-on's own exporter, were it ever turned on: same name, instance `<namespace>.<name>`
        # (amazon-cloudwatch-agent-operator, internal/manifests/manifestutils/labels.go SelectorLabels).
        _pod_target(
            "amazon-cloudwatch",
            "dcgm-exporter-addon-k2x9p",
            "dcgm-exporter",
            ("metrics", 9400),
            "amazon-cloudwatch.dcgm-exporter",
        ),
        # The add-on's agent and anything else in the namespace that happens to expose 9400.
        _pod_target("amazon-cloudwatch", "cloudwatch-agent-7xk2d", "cloudwatch-agent", ("metrics", 9400)),
    ],
    "observability": [
        _pod_target("observability", "prometheus-server-0", "prometheus", ("http", 9090)),
        _pod_target("observability", "other-exporter-abc", "other-exporter", ("metrics", 9400)),
        # kube-state-metrics 2.20 (chart 8.4.0): object metrics on `http` (8080), its own on `metrics` (8081).
        _pod_target("observability", "prometheus-kube-state-metrics-6b8c-tu", "kube-state-metrics", ("http", 8080)),
        _pod_target("observability", "prometheus-kube-state-metrics-6b8c-tu", "kube-state-metrics", ("metrics", 8081)),
    ],
    "gateway": [
        _pod_target("gateway", "litellm-5c6d-fghij", "litellm", ("http", 4000)),
        _pod_target("gateway", "litellm-5c6d-fghij", "litellm", ("debug", 9000)),
    ],
}
# (job, the pods it must scrape: (pod, port)) for every other discovered target of its namespace dropped.
EXPECTED = {
    "vllm": {("vllm-7d9f-abcde", "8000")},
    "dcgm-exporter": {("dcgm-exporter-q8r7s", "9400")},
    "litellm": {("litellm-5c6d-fghij", "4000")},
    "kube-state-metrics": {("prometheus-kube-state-metrics-6b8c-tu", "8080")},
}


def relabel(target: Target, configs: list[dict[str, Any]]) -> Target | None:
    labels = dict(target)
    for config in configs:
        value = config.get("separator", ";").join(labels.get(name, "") for name in config.get("source_labels", []))
        match = re.fullmatch(config.get("regex", "(.*)"), value)
        action = config.get("action", "replace")
        if action == "keep":
            if match is None:
                return None
        elif action == "replace":
            if match is not None:
                labels[config["target_label"]] = match.expand(config.get("replacement", "$1").replace("$", "\\"))
        else:
            raise AssertionError(f"relabel action {action} is not modelled here")
    return {name: value for name, value in labels.items() if not name.startswith("__")}


def _scrape_jobs(synth: Synthesized) -> dict[str, dict[str, Any]]:
    (chart,) = [
        r
        for r in resources_of(synth.stack_json("observability"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "prometheus"
    ]
    jobs = helm_values(chart["Properties"]["Values"])["scrapeConfigs"]
    return {name: job for name, job in jobs.items() if job.get("enabled", True)}


def _scraped(job: dict[str, Any]) -> dict[tuple[str, str], Target]:
    (discovery,) = job["kubernetes_sd_configs"]
    assert discovery["role"] == "pod"
    kept = {}
    for namespace in discovery["namespaces"]["names"]:
        for target in DISCOVERED[namespace]:
            labels = relabel(target, job.get("relabel_configs", []))
            if labels is not None:
                port = target.get("__meta_kubernetes_pod_container_port_number", "")
                kept[(target["__meta_kubernetes_pod_name"], port)] = labels
    return kept


def test_each_job_scrapes_only_its_servers_metrics_port(dev: Synthesized) -> None:
    jobs = _scrape_jobs(dev)
    assert set(jobs) == set(EXPECTED)
    for name, job in jobs.items():
        assert set(_scraped(job)) == EXPECTED[name], name


def test_scraped_series_carry_the_namespace_and_pod_the_scaling_queries_select_on(dev: Synthesized) -> None:
    """KEDA's queries select `namespace="..."`; a series without that label is never counted, and the
    Deployment would not scale on it. The DCGM exporter labels its own series (honor_labels)."""
    jobs = _scrape_jobs(dev)
    for name, namespace in (("vllm", "inference"), ("litellm", "gateway")):
        (labels,) = _scraped(jobs[name]).values()
        pod = next(t["__meta_kubernetes_pod_name"] for t in DISCOVERED[namespace])
        assert labels == {"namespace": namespace, "pod": pod}, name
    for deployment, namespace in (("vllm", "inference"), ("litellm", "gateway")):
        for trigger in dev.one("ScaledObject", deployment)["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                assert f'namespace="{namespace}"' in trigger["metadata"]["query"], trigger["name"]
