"""Grafana dashboards for the platform, built with Grafana's foundation SDK from the platform config.

`make synth` writes each dashboard's JSON model to `dist/grafana/<name>.json` (app.py, `write_dashboards`):
`vllm.json`, `gpu.json`, `autoscaling.json` and, with the gateway enabled, `gateway.json`. Import them into
Grafana 11.6 or later (the SDK build is for 11.6) with a Prometheus data source that reads the in-cluster
Prometheus or its durable copy. Dashboard uids are `<prefix>-<name>`, so environments do not collide.

Every query reuses the names the platform scrapes and scales on: the vLLM selector of
`k8s.inference.vllm_metric_selector`, the scrape jobs of `k8s.metrics`, the namespaces of
`platform_config.namespaces` and the KEDA triggers' own PromQL (`k8s.autoscaling.trigger_queries`).

Template variables (`templating.list` of each dashboard):
- `datasource` (every dashboard): the Prometheus data source; every panel and target names `${datasource}`.
- `pod` (vllm): the vLLM pods, multi-select, All = `.+`; queries select `pod=~"$pod"`.
- `gpu_node` (gpu): the DCGM exporter's `Hostname`, multi-select, All = `.+`; queries select
  `Hostname=~"$gpu_node"`.
Queries also use Grafana's built-in `$__rate_interval` as their rate window. To evaluate a target outside
Grafana, replace `$__rate_interval` with a duration (e.g. `1m`) and `$pod` / `$gpu_node` with a value or `.+`.
Every target has an `expr` and a `refId` (A, B, ... within its panel).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import stat, statetimeline, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    StackingConfig,
    VizLegendOptions,
)
from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable, Row
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig as Thresholds
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    BigValueColorMode,
    BigValueGraphMode,
    GraphThresholdsStyleMode,
    LegendDisplayMode,
    LegendPlacement,
    StackingMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)

from k8s.alert_rules import GATEWAY_REQUESTS, gateway_error_ratio
from k8s.autoscaling import MetricSelector, trigger_queries
from k8s.gateway import NAME as LITELLM_NAME
from k8s.inference import VLLM_NAME, vllm_metric_selector
from k8s.metrics import DCGM_JOB, KUBE_STATE_METRICS_JOB, LITELLM_JOB, NODE_POOL_LABEL, kube_state_metrics_label
from k8s.node_pools import CAPACITY_TYPE
from platform_config import PlatformConfig, namespaces

# Grafana's rate window: at least four scrape intervals of the data source (Grafana docs, "$__rate_interval").
RATE_WINDOW = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# Grafana's dashboard JSON model: a uid has at most 40 characters.
MAX_UID_LENGTH = 40
FULL_WIDTH = 24
HALF_WIDTH = 12
PANEL_HEIGHT = 8


def keda_hpa_name(scaled_object: str) -> str:
    """The HPA KEDA creates for a ScaledObject: the platform names it so in the ScaledObject's
    `advanced.horizontalPodAutoscalerConfig.name` (k8s/crds.py `scaled_object`), as KEDA does by default."""
    return f"keda-hpa-{scaled_object}"


@dataclass(frozen=True)
class Series:
    """One query of a panel and the legend of its series (`{{label}}` is Grafana's label template)."""

    expr: str
    legend: str


def fleet_quantile(quantile: float, buckets: str, selector: str) -> str:
    """A quantile over every matching series: the buckets of all pods summed by `le`, then interpolated."""
    return f"histogram_quantile({quantile}, sum by (le) (rate({buckets}{{{selector}}}[{RATE_WINDOW}])))"


def _quantiles(buckets: str, selector: str) -> list[Series]:
    return [Series(fleet_quantile(q, buckets, selector), f"p{round(q * 100)}") for q in QUANTILES]


def _uid(prefix: str, name: str) -> str:
    uid = f"{prefix}-{name}"
    if len(uid) <= MAX_UID_LENGTH:
        return uid
    digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
    return f"{uid[: MAX_UID_LENGTH - len(digest) - 1]}-{digest}"


def _targets(series: Sequence[Series]) -> list[Builder[variants.Dataquery]]:
    return [
        Dataquery().expr(s.expr).legend_format(s.legend).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
        for i, s in enumerate(series)
    ]


def _thresholds(line: float | None) -> Thresholds:
    steps = [Threshold(value=None, color="green")]
    if line is not None:
        steps.append(Threshold(value=line, color="red"))
    return Thresholds().mode(ThresholdsMode.ABSOLUTE).steps(steps)


def _timeseries(
    title: str,
    description: str,
    unit: str,
    series: Sequence[Series],
    *,
    line: float | None = None,
    max_value: float | None = None,
    stacked: bool = False,
    width: int = HALF_WIDTH,
) -> timeseries.Panel:
    """A time series panel; `line` draws a dashed threshold (a scaling or alert threshold from config)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(series))
        .unit(unit)
        .min(0)
        .height(PANEL_HEIGHT)
        .span(width)
        .legend(
            VizLegendOptions().show_legend(True).display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
        )
        .thresholds(_thresholds(line))
        .thresholds_style(
            GraphThresholdsStyleConfig().mode(
                GraphThresholdsStyleMode.OFF if line is None else GraphThresholdsStyleMode.DASHED
            )
        )
    )
    if max_value is not None:
        panel = panel.max(max_value)
    if stacked:
        panel = panel.stacking(StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(30)
    return panel


def _dashboard(config: PlatformConfig, name: str, title: str, description: str) -> Dashboard:
    return (
        Dashboard(f"{title} ({config.prefix})")
        .uid(_uid(config.prefix, name))
        .description(description)
        .tags(["genai-platform", config.prefix])
        .time("now-3h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )


def _label_variable(name: str, label: str, series_selector: str, label_name: str) -> QueryVariable:
    """A multi-select variable listing the values of `label_name` on the series `series_selector` selects."""
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({series_selector}, {label_name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".+")
    )


def vllm_selector(config: PlatformConfig) -> MetricSelector:
    return vllm_metric_selector(namespaces.INFERENCE, config.inference.vllm.served_model_name)


def vllm_dashboard(config: PlatformConfig) -> Dashboard:
    """Load (queue, running, KV cache), latency (TTFT, inter-token, end to end) and throughput of vLLM."""
    base = vllm_selector(config).vllm()
    v = f'{base},pod=~"$pod"'
    scaling = config.inference.autoscaling
    alerts = config.observability.alerts
    return (
        _dashboard(config, "vllm", "vLLM", f"vLLM serving {config.inference.vllm.served_model_name}.")
        .with_variable(_label_variable("pod", "vLLM pod", f"vllm:num_requests_running{{{base}}}", "pod"))
        .with_row(Row("Load"))
        .with_panel(
            _timeseries(
                "Requests waiting (queue)",
                "Requests queued in each replica; the dashed line is the per-replica queue KEDA scales out at.",
                "short",
                [Series(f"sum by (pod) (vllm:num_requests_waiting{{{v}}})", "{{pod}}")],
                line=scaling.queue_depth_per_replica,
            )
        )
        .with_panel(
            _timeseries(
                "Requests running",
                "Sequences in each replica's running batch.",
                "short",
                [Series(f"sum by (pod) (vllm:num_requests_running{{{v}}})", "{{pod}}")],
            )
        )
        .with_panel(
            _timeseries(
                "KV cache usage",
                "Share of each replica's KV cache in use; the dashed line is the fleet average KEDA scales out at.",
                "percentunit",
                [Series(f"max by (pod) (vllm:kv_cache_usage_perc{{{v}}})", "{{pod}}")],
                line=scaling.kv_cache_usage,
                max_value=1,
            )
        )
        .with_panel(
            _timeseries(
                "Preemptions per second",
                "Sequences evicted from the KV cache and recomputed: the cache is too small for the batch.",
                "short",
                [Series(f"sum by (pod) (rate(vllm:num_preemptions_total{{{v}}}[{RATE_WINDOW}]))", "{{pod}}")],
            )
        )
        .with_row(Row("Latency"))
        .with_panel(
            _timeseries(
                "Time to first token",
                f"Fleet percentiles; the dashed line is the TTFT SLO threshold ({alerts.ttft_slo_seconds:g} s).",
                "s",
                _quantiles("vllm:time_to_first_token_seconds_bucket", v),
                line=alerts.ttft_slo_seconds,
            )
        )
        .with_panel(
            _timeseries(
                "Inter-token latency",
                "Fleet percentiles of the time between two output tokens of a sequence.",
                "s",
                _quantiles("vllm:inter_token_latency_seconds_bucket", v),
            )
        )
        .with_panel(
            _timeseries(
                "End-to-end request latency",
                "Fleet percentiles of a request's time in vLLM, queue included.",
                "s",
                _quantiles("vllm:e2e_request_latency_seconds_bucket", v),
                width=FULL_WIDTH,
            )
        )
        .with_row(Row("Throughput"))
        .with_panel(
            _timeseries(
                "Tokens per second",
                "Output (generation) and input (prompt) tokens processed by the selected pods.",
                "short",
                [
                    Series(f"sum(rate(vllm:generation_tokens_total{{{v}}}[{RATE_WINDOW}]))", "generation"),
                    Series(f"sum(rate(vllm:prompt_tokens_total{{{v}}}[{RATE_WINDOW}]))", "prompt"),
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Generation tokens per second by pod",
                "The dashed line is the per-replica rate KEDA scales out at.",
                "short",
                [Series(f"sum by (pod) (rate(vllm:generation_tokens_total{{{v}}}[{RATE_WINDOW}]))", "{{pod}}")],
                line=scaling.generation_tokens_per_second_per_replica,
            )
        )
        .with_panel(
            _timeseries(
                "Prefix cache hit ratio",
                "Share of prompt tokens found in the prefix cache.",
                "percentunit",
                [
                    Series(
                        f"sum(rate(vllm:prefix_cache_hits_total{{{v}}}[{RATE_WINDOW}])) / "
                        f"sum(rate(vllm:prefix_cache_queries_total{{{v}}}[{RATE_WINDOW}]))",
                        "hit ratio",
                    )
                ],
                max_value=1,
                width=FULL_WIDTH,
            )
        )
    )


def gpu_dashboard(config: PlatformConfig) -> Dashboard:
    """NVIDIA GPUs as the DCGM exporter reports them (DCGM field names: FACTS.md, GPU metrics)."""
    base = f'job="{DCGM_JOB}"'
    g = f'{base},Hostname=~"$gpu_node"'
    per_gpu = "Hostname, gpu"
    legend = "{{Hostname}} GPU {{gpu}}"
    used = f"sum by ({per_gpu}) (DCGM_FI_DEV_FB_USED{{{g}}})"
    free = f"sum by ({per_gpu}) (DCGM_FI_DEV_FB_FREE{{{g}}})"
    scaling = config.inference.autoscaling
    xid = (
        stat.Panel()
        .title("Last XID error")
        .description("The last XID code each GPU reported (0: none); look codes up in NVIDIA's XID catalogue.")
        .datasource(DATASOURCE)
        .targets(_targets([Series(f"max by ({per_gpu}) (DCGM_FI_DEV_XID_ERRORS{{{g}}})", legend)]))
        .thresholds(_thresholds(1))
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .color_mode(BigValueColorMode.BACKGROUND)
        .graph_mode(BigValueGraphMode.NONE)
        .height(PANEL_HEIGHT)
        .span(FULL_WIDTH)
    )
    return (
        _dashboard(config, "gpu", "GPUs", "NVIDIA GPUs of the platform's nodes (DCGM exporter).")
        .with_variable(_label_variable("gpu_node", "GPU node", f"DCGM_FI_DEV_GPU_UTIL{{{base}}}", "Hostname"))
        .with_panel(
            _timeseries(
                "GPU utilisation",
                "Busy whenever any batch runs, whatever the load: a health signal, not a measure of headroom.",
                "percent",
                [Series(f"avg by ({per_gpu}) (DCGM_FI_DEV_GPU_UTIL{{{g}}})", legend)],
                max_value=100,
            )
        )
        .with_panel(
            _timeseries(
                "GPU utilisation of vLLM pods",
                "The GPUs the vLLM pods hold; the dashed line is the opt-in KEDA trigger's threshold.",
                "percent",
                [Series(f"avg by (pod) (DCGM_FI_DEV_GPU_UTIL{{{vllm_selector(config).dcgm()}}})", "{{pod}}")],
                line=scaling.dcgm_gpu_utilization_percent if scaling.dcgm_gpu_utilization_trigger else None,
                max_value=100,
            )
        )
        .with_panel(
            _timeseries(
                "Framebuffer memory used",
                "Share of each GPU's memory in use (vLLM reserves most of it for the KV cache at start).",
                "percentunit",
                [Series(f"{used} / ({used} + {free})", legend)],
                max_value=1,
            )
        )
        .with_panel(
            _timeseries(
                "Framebuffer memory used (MiB)",
                "DCGM reports framebuffer memory in MiB.",
                "mbytes",
                [Series(used, legend)],
            )
        )
        .with_panel(
            _timeseries(
                "Memory copy utilisation",
                "Share of time the GPU's memory was being read or written.",
                "percent",
                [Series(f"avg by ({per_gpu}) (DCGM_FI_DEV_MEM_COPY_UTIL{{{g}}})", legend)],
                max_value=100,
                width=FULL_WIDTH,
            )
        )
        .with_panel(xid)
    )


def gateway_dashboard(config: PlatformConfig) -> Dashboard:
    """LiteLLM: request rate, failures, latency, tokens and the state of each deployment behind it."""
    job = f'job="{LITELLM_JOB}"'
    alerts = config.observability.alerts
    states = ValueMap(
        {
            "0": ValueMappingResult(text="healthy", color="green"),
            "1": ValueMappingResult(text="partial outage", color="orange"),
            "2": ValueMappingResult(text="down", color="red"),
        }
    )
    state = f"max by (litellm_model_name, api_base) (litellm_deployment_state{{{job}}})"
    deployment_state = (
        statetimeline.Panel()
        .title("Deployment state")
        .description("LiteLLM's view of each backend deployment: 0 healthy, 1 partial outage, 2 down.")
        .datasource(DATASOURCE)
        .targets(_targets([Series(state, "{{litellm_model_name}} {{api_base}}")]))
        .mappings([states])
        .height(PANEL_HEIGHT)
        .span(FULL_WIDTH)
    )
    return (
        _dashboard(config, "gateway", "LiteLLM gateway", "Requests through the LiteLLM gateway.")
        .with_row(Row("Traffic"))
        .with_panel(
            _timeseries(
                "Requests per second by model",
                "Model requests (other routes, such as /metrics, have no requested model).",
                "reqps",
                [
                    Series(
                        "sum by (requested_model) "
                        f'(rate({GATEWAY_REQUESTS}{{{job},requested_model!=""}}[{RATE_WINDOW}]))',
                        "{{requested_model}}",
                    )
                ],
            )
        )
        .with_panel(
            _timeseries(
                "Requests per second by status code",
                "Every request the proxy answered, by HTTP status.",
                "reqps",
                [
                    Series(
                        f"sum by (status_code) (rate({GATEWAY_REQUESTS}{{{job}}}[{RATE_WINDOW}]))",
                        "{{status_code}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_row(Row("Failures"))
        .with_panel(
            _timeseries(
                "Error ratio",
                "Share of requests that failed on the platform's side (5xx, timeouts, failures without a status); "
                "the dashed line is the warning threshold.",
                "percentunit",
                [Series(gateway_error_ratio(RATE_WINDOW), "error ratio")],
                line=alerts.gateway_5xx_ratio,
            )
        )
        .with_panel(
            _timeseries(
                "Failed requests per second",
                "Failures LiteLLM recorded, by model and exception class.",
                "reqps",
                [
                    Series(
                        "sum by (requested_model, exception_class) "
                        f"(rate(litellm_proxy_failed_requests_metric_total{{{job}}}[{RATE_WINDOW}]))",
                        "{{requested_model}} {{exception_class}}",
                    )
                ],
            )
        )
        .with_row(Row("Latency"))
        .with_panel(
            _timeseries(
                "Request latency through the gateway",
                "Fleet percentiles of a request's whole time in LiteLLM, the backend call included.",
                "s",
                _quantiles("litellm_request_total_latency_metric_bucket", job),
            )
        )
        .with_panel(
            _timeseries(
                "Backend (LLM API) latency",
                "Fleet percentiles of LiteLLM's calls to the backends.",
                "s",
                _quantiles("litellm_llm_api_latency_metric_bucket", job),
            )
        )
        .with_row(Row("Tokens and deployments"))
        .with_panel(
            _timeseries(
                "Tokens per second",
                "Input and output tokens of the requests through the gateway.",
                "short",
                [
                    Series(f"sum(rate(litellm_input_tokens_metric_total{{{job}}}[{RATE_WINDOW}]))", "input"),
                    Series(f"sum(rate(litellm_output_tokens_metric_total{{{job}}}[{RATE_WINDOW}]))", "output"),
                ],
                width=FULL_WIDTH,
            )
        )
        .with_panel(deployment_state)
    )


def _replicas(namespace: str, deployment: str, scaled_object: str) -> list[Series]:
    """Desired (the HPA's decision) vs current (the HPA's view) vs available (Ready pods) and the bounds."""
    objects = f'job="{KUBE_STATE_METRICS_JOB}",namespace="{namespace}"'
    hpa = f'{objects},horizontalpodautoscaler="{keda_hpa_name(scaled_object)}"'
    pods = f'{objects},deployment="{deployment}"'
    return [
        Series(f"kube_horizontalpodautoscaler_status_desired_replicas{{{hpa}}}", "desired"),
        Series(f"kube_horizontalpodautoscaler_status_current_replicas{{{hpa}}}", "current"),
        Series(f"kube_deployment_status_replicas_available{{{pods}}}", "available"),
        Series(f"kube_horizontalpodautoscaler_spec_max_replicas{{{hpa}}}", "max"),
        Series(f"kube_horizontalpodautoscaler_spec_min_replicas{{{hpa}}}", "min"),
    ]


def autoscaling_dashboard(config: PlatformConfig) -> Dashboard:
    """What KEDA reads, what the HPAs decide, and the nodes Auto Mode runs, by NodePool and capacity type."""
    scaling = config.inference.autoscaling
    queries = trigger_queries(vllm_selector(config))
    current = (
        f'kube_horizontalpodautoscaler_status_current_replicas{{job="{KUBE_STATE_METRICS_JOB}",'
        f'namespace="{namespaces.INFERENCE}",horizontalpodautoscaler="{keda_hpa_name(VLLM_NAME)}"}}'
    )
    pool = kube_state_metrics_label(NODE_POOL_LABEL)
    capacity = kube_state_metrics_label(CAPACITY_TYPE)
    dashboard = (
        _dashboard(config, "autoscaling", "Autoscaling", "KEDA's signals, the HPAs' replicas and the nodes.")
        .with_row(Row("Replicas"))
        .with_panel(
            _timeseries(
                "vLLM replicas: desired vs current",
                "Desired is the HPA's decision; available lags it by a cold start (node, image, weights).",
                "short",
                _replicas(namespaces.INFERENCE, VLLM_NAME, VLLM_NAME),
                width=FULL_WIDTH if not config.gateway.enabled else HALF_WIDTH,
            )
        )
    )
    if config.gateway.enabled:
        dashboard = dashboard.with_panel(
            _timeseries(
                "LiteLLM replicas: desired vs current",
                "Desired is the HPA's decision; available counts Ready proxy pods.",
                "short",
                _replicas(namespaces.GATEWAY, LITELLM_NAME, LITELLM_NAME),
            )
        )
    return (
        dashboard.with_row(Row("vLLM scaling signals (the KEDA triggers' own queries)"))
        .with_panel(
            _timeseries(
                "Queue per replica",
                "Waiting requests divided by current replicas, against the trigger's per-replica target.",
                "short",
                [Series(f"{queries['queue-depth']} / scalar({current})", "waiting per replica")],
                line=scaling.queue_depth_per_replica,
            )
        )
        .with_panel(
            _timeseries(
                "KV cache usage (fleet average)",
                "Against the trigger's target.",
                "percentunit",
                [Series(queries["kv-cache"], "KV cache")],
                line=scaling.kv_cache_usage,
                max_value=1,
            )
        )
        .with_panel(
            _timeseries(
                "TTFT p95 (fleet)",
                "Against the trigger's target.",
                "s",
                [Series(queries["ttft-p95"], "p95")],
                line=scaling.ttft_p95_seconds,
            )
        )
        .with_panel(
            _timeseries(
                "Generation tokens per second per replica",
                "Output tokens/s divided by current replicas, against the trigger's per-replica target.",
                "short",
                [Series(f"{queries['generation-tokens']} / scalar({current})", "tokens/s per replica")],
                line=scaling.generation_tokens_per_second_per_replica,
            )
        )
        .with_row(Row("Nodes"))
        .with_panel(
            _timeseries(
                "Nodes by NodePool and capacity type",
                "Every node, by the Auto Mode NodePool that launched it and Spot or On-Demand.",
                "short",
                [
                    Series(
                        f'count by ({pool}, {capacity}) (kube_node_labels{{job="{KUBE_STATE_METRICS_JOB}"}})',
                        f"{{{{{pool}}}}} {{{{{capacity}}}}}",
                    )
                ],
                stacked=True,
                width=FULL_WIDTH,
            )
        )
    )


def grafana_dashboards(config: PlatformConfig) -> dict[str, dict[str, Any]]:
    """Each dashboard's JSON model, by file name stem (`dist/grafana/<name>.json`)."""
    builders = {
        "vllm": vllm_dashboard(config),
        "gpu": gpu_dashboard(config),
        **({"gateway": gateway_dashboard(config)} if config.gateway.enabled else {}),
        "autoscaling": autoscaling_dashboard(config),
    }
    encoder = JSONEncoder(sort_keys=True)
    return {name: json.loads(encoder.encode(builder.build())) for name, builder in builders.items()}
