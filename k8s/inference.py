"""The inference chart: a default-deny policy for the namespace, the vLLM server and its ScaledObject."""

from __future__ import annotations

from collections.abc import Mapping

import cdk8s
from constructs import Construct

from k8s.autoscaling import MetricSelector, vllm_scaled_object
from k8s.network_policies import default_deny
from k8s.vllm import VllmServer, VllmWiring
from platform_config.inference import VllmAutoscalingSettings, VllmSettings

VLLM_NAME = "vllm"


def vllm_metric_selector(namespace: str, served_model_name: str) -> MetricSelector:
    """The series of the vLLM Deployment: what its ScaledObject scales on and its alerts watch."""
    return MetricSelector(namespace=namespace, model_name=served_model_name, pod_prefix=VLLM_NAME)


class InferenceChart(cdk8s.Chart):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vllm: VllmSettings,
        autoscaling: VllmAutoscalingSettings,
        wiring: VllmWiring,
        prometheus_url: str,
        labels: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id, labels=dict(labels))
        default_deny(self, "default-deny", namespace=wiring.namespace)
        self.server = VllmServer(self, "vllm", name=VLLM_NAME, settings=vllm, wiring=wiring, labels=labels)
        vllm_scaled_object(
            self,
            "vllm-scaledobject",
            deployment=VLLM_NAME,
            namespace=wiring.namespace,
            settings=autoscaling,
            selector=vllm_metric_selector(wiring.namespace, vllm.served_model_name),
            prometheus_url=prometheus_url,
        )
