"""Prometheus alerting rules: SLO burn rates and the platform's warnings, as rule groups for Prometheus.

SLO alerts follow the Google SRE workbook's multiwindow, multi-burn-rate alerts (FACTS.md): page when the
error budget burns 14.4 times too fast over both 1 h and 5 min, or 6 times over both 6 h and 30 min; open
a ticket at 1 time over both 3 days and 6 h. The long window proves the burn is real, the short one that
it is still going on (and lets the alert resolve soon after it stops). With no traffic a ratio is NaN and
nothing fires.

The rules load into the in-cluster Prometheus (the chart's `serverFiles`), which evaluates them; `make
synth` also writes them to `dist/prometheus/alerting_rules.yml` for review and `promtool`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from k8s.autoscaling import MetricSelector
from k8s.metrics import DCGM_JOB, LITELLM_JOB, VLLM_JOB
from platform_config.observability import AlertSettings

TTFT_BUCKET = "vllm:time_to_first_token_seconds_bucket"
TTFT_COUNT = "vllm:time_to_first_token_seconds_count"
GATEWAY_REQUESTS = "litellm_proxy_total_requests_metric_total"
TICKET_EVALUATION_INTERVAL = "1m"
# Window of the warnings' rates: long enough to smooth single scrapes, short enough to clear soon.
WARNING_WINDOW = "5m"


@dataclass(frozen=True)
class BurnRateWindow:
    name: str
    severity: str
    long: str
    short: str
    factor: float


# Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate alerts (FACTS.md).
BURN_RATE_WINDOWS = (
    BurnRateWindow("Fast", "page", "1h", "5m", 14.4),
    BurnRateWindow("Slow", "page", "6h", "30m", 6.0),
    BurnRateWindow("Ticket", "ticket", "3d", "6h", 1.0),
)


def prometheus_le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it in `le` (Python's repr of the float: 2.5, 1.0, 0.001)."""
    return repr(float(bound))


def ttft_error_ratio(selector: MetricSelector, threshold_seconds: float, window: str) -> str:
    """Share of requests whose first token took longer than the threshold, over `window`."""
    v = selector.vllm()
    good = f'sum(rate({TTFT_BUCKET}{{{v},le="{prometheus_le(threshold_seconds)}"}}[{window}]))'
    return f"(1 - {good} / sum(rate({TTFT_COUNT}{{{v}}}[{window}])))"


def gateway_error_ratio(window: str) -> str:
    """Share of gateway requests that failed on the platform's side, over `window`: a 5xx, a timeout (LiteLLM
    reports a backend timeout as 408) or a failure LiteLLM records without a status (`status_code="None"`).
    Other 4xx are the client's."""
    requests = f'{GATEWAY_REQUESTS}{{job="{LITELLM_JOB}"'
    errors = f'sum(rate({requests},status_code=~"5..|408|None"}}[{window}]))'
    return f"({errors} / sum(rate({requests}}}[{window}])))"


def _burn_rate_alerts(name: str, slo: str, objective: float, ratio: Any) -> list[dict[str, Any]]:
    budget = round(1 - objective, 6)
    return [
        {
            "alert": f"{name}BurnRate{window.name}",
            "expr": f"{ratio(window.long)} > {window.factor} * {budget}\n"
            f"and\n{ratio(window.short)} > {window.factor} * {budget}",
            "labels": {"severity": window.severity, "slo": slo},
            "annotations": {
                "summary": f"The {slo} SLO's error budget is burning at {window.factor:g}x its sustainable rate",
                "description": f"Over {window.long} and {window.short} the error ratio is above {window.factor:g} "
                f"times the budget ({budget:g}) of the {objective:g} objective.",
            },
        }
        for window in BURN_RATE_WINDOWS
    ]


def alert_rule_groups(
    settings: AlertSettings, selector: MetricSelector, *, max_replicas: int, queue_threshold: float, gateway: bool
) -> list[dict[str, Any]]:
    """The rule groups for Prometheus: `slo` (burn rates) and `platform` (warnings)."""
    v = selector.vllm()
    slo = _burn_rate_alerts(
        "VllmTtft",
        f"ttft-{settings.ttft_slo_seconds:g}s",
        settings.ttft_slo_objective,
        lambda w: ttft_error_ratio(selector, settings.ttft_slo_seconds, w),
    )
    if gateway:
        slo += _burn_rate_alerts(
            "GatewayAvailability", "availability", settings.availability_objective, gateway_error_ratio
        )
    waiting = f"vllm:num_requests_waiting{{{v}}}"
    warnings: list[dict[str, Any]] = [
        _warning(
            "VllmKvCacheHigh",
            f"max by (pod) (vllm:kv_cache_usage_perc{{{v}}}) > {settings.kv_cache_usage}",
            f"{settings.kv_cache_minutes}m",
            "A vLLM replica's KV cache has stayed nearly full",
            "Requests queue or get preempted; add replicas or shorten max-model-len.",
        ),
        _warning(
            "VllmQueueBacklog",
            f"sum({waiting}) / count({waiting}) > {settings.queue_backlog_per_replica}",
            "5m",
            "Requests wait in vLLM's queue faster than scaling clears them",
            "Waiting requests per replica have stayed high for 5 minutes.",
        ),
        _warning(
            "VllmPreemptions",
            f"sum(rate(vllm:num_preemptions_total{{{v}}}[{WARNING_WINDOW}])) * 60 > {settings.preemptions_per_minute}",
            "10m",
            "vLLM keeps preempting sequences",
            "The KV cache is too small for the batch: sequences are evicted and recomputed.",
        ),
        _warning(
            "VllmAtMaxReplicasQueueGrowing",
            f"count({waiting}) >= {max_replicas}\nand\nsum({waiting}) / count({waiting}) > {queue_threshold}\n"
            f"and\nderiv(sum({waiting})[10m:30s]) > 0",
            "5m",
            "vLLM runs at its maximum replicas and its queue still grows",
            "Raise inference.autoscaling.max_replicas (and the GPU pool's limit) or shed load at the gateway.",
        ),
        _warning(
            "GpuXidError",
            f'max by (Hostname, gpu) (DCGM_FI_DEV_XID_ERRORS{{job="{DCGM_JOB}"}}) > 0',
            "0m",
            "A GPU reported an XID error",
            "DCGM_FI_DEV_XID_ERRORS holds the last XID code; look it up in NVIDIA's XID catalogue.",
            severity="critical",
        ),
    ]
    jobs = [VLLM_JOB, DCGM_JOB, *([LITELLM_JOB] if gateway else [])]
    warnings.append(
        _warning(
            "ScrapeTargetDown",
            f'up{{job=~"{"|".join(jobs)}"}} == 0',
            "2m",
            "Prometheus cannot scrape a target the platform depends on",
            "Scaling and alerts on this target's signals are blind while it is down.",
        )
    )
    for job in jobs:
        warnings.append(
            _warning(
                f"ScrapeTargetAbsent{''.join(p.capitalize() for p in job.split('-'))}",
                f'absent(up{{job="{job}"}})',
                "5m",
                f"Prometheus has no {job} target at all",
                "Service discovery finds nothing to scrape: the pods are gone or their labels changed.",
            )
        )
    if gateway:
        warnings += [
            _warning(
                "Gateway5xxRatio",
                f"{gateway_error_ratio(WARNING_WINDOW)} > {settings.gateway_5xx_ratio}",
                "5m",
                "The gateway fails too many requests (5xx, timeouts, failures without a status)",
                f"More than {settings.gateway_5xx_ratio:g} of requests failed over 5 minutes.",
            ),
        ]
    # The 3-day ticket windows read many samples and change slowly: their own group, evaluated once a
    # minute, so they never delay the page alerts (rules of a group run one after another).
    tickets = [rule for rule in slo if rule["labels"]["severity"] == "ticket"]
    pages = [rule for rule in slo if rule["labels"]["severity"] != "ticket"]
    return [
        {"name": "slo", "rules": pages},
        {"name": "slo-tickets", "interval": TICKET_EVALUATION_INTERVAL, "rules": tickets},
        {"name": "platform", "rules": warnings},
    ]


def _warning(
    name: str, expr: str, for_: str, summary: str, description: str, *, severity: str = "warning"
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }
