"""vLLM autoscaling: one KEDA ScaledObject (which owns its HPA) on vLLM's own signals.

Each query returns one number for the whole Deployment. `AverageValue` triggers return a total that
the HPA divides by the replica count (queue depth, tokens/s); `Value` triggers return a fleet-wide
figure compared as is (KV-cache use averaged over replicas, p95 TTFT). KEDA 2.18+ supports a fallback
with both types (kedacore/keda-docs#1606).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from constructs import Construct

from k8s.crds import PrometheusTrigger, ScaledObjectSpec, ScalingPolicy, ScalingRules, scaled_object
from platform_config.inference import VllmAutoscalingSettings

# HPA controller sync period: 15 s by default, an EKS cluster setting we leave unchanged (FACTS.md).
HPA_SYNC_PERIOD_SECONDS = 15
# Window of rate() and histogram rates: four scrapes at 5-10 s, enough for rate() to be defined.
RATE_WINDOW = "1m"
FALLBACK_FAILURE_THRESHOLD = 3
# Latency budget of one Prometheus query through KEDA's metrics adapter (bounded by KEDA's timeout).
QUERY_SECONDS = 1
# Requirement from the inference issue: queue breach to HPA request within 30 s in the worst case.
REACTION_TARGET_SECONDS = 30


@dataclass(frozen=True)
class MetricSelector:
    """Which series belong to this Deployment."""

    namespace: str
    model_name: str
    pod_prefix: str

    def vllm(self) -> str:
        return f'namespace="{self.namespace}",model_name="{self.model_name}"'

    def dcgm(self) -> str:
        return f'namespace="{self.namespace}",pod=~"{self.pod_prefix}-.+"'


def trigger_queries(selector: MetricSelector) -> dict[str, str]:
    """The PromQL of every trigger, by trigger name (also what the tests evaluate)."""
    v = selector.vllm()
    return {
        "queue-depth": f"sum(vllm:num_requests_waiting{{{v}}})",
        "kv-cache": f"avg(vllm:kv_cache_usage_perc{{{v}}})",
        # Fleet-wide p95 from the summed histogram; NaN without traffic, so map that to 0.
        "ttft-p95": (
            f"(histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{{{v}}}"
            f"[{RATE_WINDOW}]))) >= 0) or vector(0)"
        ),
        "generation-tokens": f"sum(rate(vllm:generation_tokens_total{{{v}}}[{RATE_WINDOW}]))",
        "gpu-utilization": f"avg(DCGM_FI_DEV_GPU_UTIL{{{selector.dcgm()}}})",
    }


def vllm_triggers(
    settings: VllmAutoscalingSettings, selector: MetricSelector, prometheus_url: str
) -> list[PrometheusTrigger]:
    queries = trigger_queries(selector)
    triggers = [
        PrometheusTrigger("queue-depth", prometheus_url, queries["queue-depth"], settings.queue_depth_per_replica),
        PrometheusTrigger("kv-cache", prometheus_url, queries["kv-cache"], settings.kv_cache_usage, "Value"),
        PrometheusTrigger("ttft-p95", prometheus_url, queries["ttft-p95"], settings.ttft_p95_seconds, "Value"),
        PrometheusTrigger(
            "generation-tokens",
            prometheus_url,
            queries["generation-tokens"],
            settings.generation_tokens_per_second_per_replica,
        ),
    ]
    if settings.dcgm_gpu_utilization_trigger:
        # Opt-in only: GPU utilisation is ~100% whenever any batch runs, whatever the load (FACTS.md).
        triggers.append(
            PrometheusTrigger(
                "gpu-utilization",
                prometheus_url,
                queries["gpu-utilization"],
                settings.dcgm_gpu_utilization_percent,
                "Value",
            )
        )
    return triggers


def vllm_scaled_object(
    scope: Construct,
    id: str,
    *,
    deployment: str,
    namespace: str,
    settings: VllmAutoscalingSettings,
    selector: MetricSelector,
    prometheus_url: str,
) -> None:
    scaled_object(
        scope,
        id,
        name=deployment,
        namespace=namespace,
        spec=ScaledObjectSpec(
            deployment=deployment,
            min_replicas=settings.min_replicas,
            max_replicas=settings.max_replicas,
            polling_interval_seconds=settings.polling_interval_seconds,
            # Only used to scale to zero, which min_replicas >= 1 rules out; kept equal to scale-down.
            cooldown_period_seconds=settings.scale_down_stabilization_seconds,
            fallback_replicas=settings.fallback_replicas,
            fallback_failure_threshold=FALLBACK_FAILURE_THRESHOLD,
            # Fast up: no stabilization (the HPA would wait for the lowest recommendation of the
            # window), up to N pods or +100% per period, whichever adds more.
            scale_up=ScalingRules(
                stabilization_window_seconds=0,
                policies=[
                    ScalingPolicy("Pods", settings.scale_up_pods_per_period, settings.scale_up_period_seconds),
                    ScalingPolicy("Percent", 100, settings.scale_up_period_seconds),
                ],
            ),
            # Slow down: a replica goes only after load stayed low for longer than a cold start.
            scale_down=ScalingRules(
                stabilization_window_seconds=settings.scale_down_stabilization_seconds,
                policies=[
                    ScalingPolicy("Pods", settings.scale_down_pods_per_period, settings.scale_down_period_seconds)
                ],
                select_policy="Min",
            ),
            triggers=vllm_triggers(settings, selector, prometheus_url),
        ),
    )


@dataclass(frozen=True)
class ReactionBound:
    """Worst case from a queue-depth breach to the HPA asking for a new replica, and its parts."""

    scrape_interval: int
    metric_read: int
    hpa_sync: int
    up_stabilization: int
    query: int

    @property
    def total(self) -> int:
        return self.scrape_interval + self.metric_read + self.hpa_sync + self.up_stabilization + self.query


def queue_reaction_bound(scaled_object_manifest: Mapping[str, Any], scrape_interval_seconds: int) -> ReactionBound:
    """Compute the bound from a synthesized ScaledObject and the vLLM scrape interval.

    - The breach becomes visible to Prometheus at the next scrape: up to one interval. The queue
      query is an instant gauge (no rate window), so nothing else delays it in Prometheus.
    - The HPA reads KEDA's external metric once per sync period (15 s). With `useCachedMetrics`
      false (the default), KEDA's metrics server queries Prometheus at that moment; with it true,
      the value can be one polling interval old (KEDA docs, ScaledObject spec, triggers).
    - The scale-up stabilization window delays a scale-up by up to its length (HPA algorithm:
      the lowest recommendation in the window wins).
    """
    spec = scaled_object_manifest["spec"]
    (queue,) = [t for t in spec["triggers"] if t.get("name") == "queue-depth"]
    cached = bool(queue.get("useCachedMetrics", False))
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    return ReactionBound(
        scrape_interval=scrape_interval_seconds,
        metric_read=int(spec["pollingInterval"]) if cached else 0,
        hpa_sync=HPA_SYNC_PERIOD_SECONDS,
        up_stabilization=int(behavior["scaleUp"]["stabilizationWindowSeconds"]),
        query=QUERY_SECONDS,
    )
