"""Prometheus scrape jobs for the scaling signals: vLLM pods and the DCGM exporter.

The same job definitions go into the Prometheus Helm values and into the integration test, so the
test scrapes with the interval and label handling the cluster uses.
"""

from __future__ import annotations

from typing import Any

VLLM_JOB = "vllm"
DCGM_JOB = "dcgm-exporter"


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


def dcgm_scrape_job(*, namespace: str, scrape_interval_seconds: int) -> dict[str, Any]:
    """The DCGM exporter labels each GPU series with the pod using the GPU (its Kubernetes mode).
    `honor_labels` keeps those `namespace`/`pod` labels instead of renaming them `exported_*` when
    they clash with the exporter pod's own target labels (NVIDIA/dcgm-exporter #85, #379)."""
    return {
        "job_name": DCGM_JOB,
        "scrape_interval": f"{scrape_interval_seconds}s",
        "scrape_timeout": f"{min(scrape_interval_seconds, 5)}s",
        "honor_labels": True,
        "metrics_path": "/metrics",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                "regex": "dcgm-exporter",
                "action": "keep",
            },
            {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": "9400", "action": "keep"},
            *_pod_labels(),
        ],
    }


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
