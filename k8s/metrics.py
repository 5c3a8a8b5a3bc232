"""Prometheus scrape jobs: vLLM pods, the DCGM exporter, LiteLLM and kube-state-metrics.

The same job definitions go into the Prometheus Helm values and into the integration test, so the
test scrapes with the interval and label handling the cluster uses.
"""

from __future__ import annotations

import re
from typing import Any

VLLM_JOB = "vllm"
DCGM_JOB = "dcgm-exporter"
# NVIDIA's chart release (cdk_constructs/helm.py DcgmExporter) and the port it listens on.
DCGM_EXPORTER_APP = "dcgm-exporter"
DCGM_EXPORTER_PORT = 9400


def _pod_labels() -> list[dict[str, Any]]:
    """Keep the pod's namespace and name as `namespace` and `pod`, the labels the queries select on."""
    return [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    ]


def vllm_scrape_job(*, namespace: str, app_name: str, scrape_interval_seconds: int) -> dict[str, Any]:
    """vLLM serves Prometheus text on its API port at /metrics; scrape only the server's pods."""
    return {
        "job_name": VLLM_JOB,
        "scrape_interval": f"{scrape_interval_seconds}s",
        "scrape_timeout": f"{min(scrape_interval_seconds, 5)}s",
        "metrics_path": "/metrics",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                "regex": app_name,
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http", "action": "keep"},
            *_pod_labels(),
        ],
    }


def dcgm_scrape_job(*, namespace: str, scrape_interval_seconds: int, https: bool) -> dict[str, Any]:
    """The DCGM exporter labels each GPU series with the pod using the GPU (its Kubernetes mode).
    `honor_labels` keeps those `namespace`/`pod` labels instead of renaming them `exported_*` when
    they clash with the exporter pod's own target labels (NVIDIA/dcgm-exporter #85, #379).

    Only NVIDIA's chart release is kept (pod labels name and instance `dcgm-exporter`, templates/_helpers.tpl):
    in the CloudWatch add-on's namespace an add-on exporter would carry instance
    `amazon-cloudwatch.dcgm-exporter` (amazon-cloudwatch-agent-operator manifestutils.SelectorLabels).

    `https`: the exporter serves the CloudWatch add-on's certificate (cdk_constructs/helm.py DcgmExporter). Its CA
    lives in a Secret of the add-on's namespace, which a pod in another namespace cannot mount, so the scrape is
    encrypted but does not verify the server: no weaker than the plain-HTTP scrapes of vLLM and LiteLLM, and the
    series carry no secrets.
    """
    job: dict[str, Any] = {
        "job_name": DCGM_JOB,
        "scrape_interval": f"{scrape_interval_seconds}s",
        "scrape_timeout": f"{min(scrape_interval_seconds, 5)}s",
        "honor_labels": True,
        "metrics_path": "/metrics",
        "scheme": "https" if https else "http",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                "regex": DCGM_EXPORTER_APP,
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
                "regex": DCGM_EXPORTER_APP,
                "action": "keep",
            },
            {
                "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                "regex": str(DCGM_EXPORTER_PORT),
                "action": "keep",
            },
            *_pod_labels(),
        ],
    }
    if https:
        job["tls_config"] = {"insecure_skip_verify": True}
    return job


LITELLM_JOB = "litellm"
# Where the Prometheus server finds the key it scrapes LiteLLM's /metrics with (the proxy requires it).
LITELLM_TOKEN_SECRET = "litellm-metrics"
LITELLM_TOKEN_DIR = "/etc/secrets/litellm-metrics"


def litellm_scrape_job(*, namespace: str, scrape_interval_seconds: int) -> dict[str, Any]:
    """LiteLLM's /metrics needs the master key; it is read from a file the secrets path keeps current."""
    return {
        "job_name": LITELLM_JOB,
        "scrape_interval": f"{scrape_interval_seconds}s",
        "scrape_timeout": f"{min(scrape_interval_seconds, 5)}s",
        "metrics_path": "/metrics",
        "authorization": {"type": "Bearer", "credentials_file": f"{LITELLM_TOKEN_DIR}/token"},
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                "regex": "litellm",
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http", "action": "keep"},
            *_pod_labels(),
        ],
    }


KUBE_STATE_METRICS_JOB = "kube-state-metrics"
# The NodePool that launched a node: a label Karpenter (and so EKS Auto Mode) puts on every node it launches
# (kubernetes-sigs/karpenter, pkg/apis/v1/labels.go, NodePoolLabelKey).
NODE_POOL_LABEL = "karpenter.sh/nodepool"
_INVALID_LABEL_CHARACTER = re.compile(r"[^a-zA-Z0-9_]")


def kube_state_metrics_label(kubernetes_label: str) -> str:
    """The Prometheus label kube-state-metrics gives a Kubernetes label: `label_` and the key with every
    character outside [a-zA-Z0-9_] replaced by `_` (kube-state-metrics v2.20.0, internal/store/utils.go,
    SanitizeLabelName): `karpenter.sh/nodepool` becomes `label_karpenter_sh_nodepool`."""
    return "label_" + _INVALID_LABEL_CHARACTER.sub("_", kubernetes_label)


def kube_state_metrics_scrape_job(*, namespace: str, scrape_interval_seconds: int) -> dict[str, Any]:
    """kube-state-metrics (the Prometheus chart's subchart) serves object state on its `http` port.
    `honor_labels` keeps the labels it exports (`namespace`, `deployment`, `node`...) as they are, and no
    target labels are added: they would name kube-state-metrics' own pod, not the object a series is about."""
    return {
        "job_name": KUBE_STATE_METRICS_JOB,
        "scrape_interval": f"{scrape_interval_seconds}s",
        "scrape_timeout": f"{min(scrape_interval_seconds, 5)}s",
        "honor_labels": True,
        "metrics_path": "/metrics",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                "regex": "kube-state-metrics",
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http", "action": "keep"},
        ],
    }
