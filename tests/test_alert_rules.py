"""The Prometheus alerting rules as synthesized (`<dist>/prometheus/alerting_rules.yml`), checked with promtool.

- `promtool check rules --lint-fatal` accepts the file of each environment, which holds exactly the alerts
  listed here (the gateway's only when the gateway is deployed), each with a severity and a summary.
- Every alert is unit-tested with `promtool test rules` on the synthesized file itself (copied, never
  rebuilt from its expressions), on synthetic series named and labelled as the exporters write them: it fires,
  with the labels written here, just above its threshold and once its `for:` has passed, and stays silent
  just below, before `for:` has passed, without traffic (NaN ratios) and on series it must not select.
- The SLO alerts are the SRE workbook's multiwindow burn-rate alerts (FACTS.md "Tracing and durable
  metrics"): two pages (14.4x over 1 h and 5 min, 6x over 6 h and 30 min) and a ticket (1x over 3 d and 6 h),
  each firing only while both its windows burn, not when only the short or only the long one does. The
  ticket's 3-day window is tested on series longer than 3 days, sampled every 10 minutes.
- The gateway's errors are the server's: a 5xx or a failure LiteLLM records without a status code
  (`status_code="None"`); 4xx (429 included) are the clients' and burn nothing.
- `observability.alerts.ttft_slo_seconds` must be a TTFT bucket bound, and moves the rule's `le` selector.

The expected names, labels and thresholds are written here, with their sources; they are never read from the
code under test. Only the annotations are copied from the rule file: promtool compares them too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s.alert_rules import alert_rule_groups
from k8s.autoscaling import MetricSelector
from platform_config import ConfigError
from tests.conftest import Synthesized, config_for, helm_values, resources_of, synthesize
from tests.prometheus_harness import PromQLError, RuleTestError, check_rule_file, run_rule_file_tests

# --- what the rules must be (written here on purpose) ------------------------------------------------------

TTFT_ALERTS = {"VllmTtftBurnRateFast", "VllmTtftBurnRateSlow", "VllmTtftBurnRateTicket"}
VLLM_ALERTS = {"VllmKvCacheHigh", "VllmQueueBacklog", "VllmPreemptions", "VllmAtMaxReplicasQueueGrowing"}
SCRAPE_ALERTS = {"ScrapeTargetDown", "ScrapeTargetAbsentVllm", "ScrapeTargetAbsentDcgmExporter"}
# Only with `gateway.enabled` (the default in dev and prod): the availability SLO, the gateway's warnings and
# the LiteLLM scrape target.
GATEWAY_ALERTS = {
    "GatewayAvailabilityBurnRateFast",
    "GatewayAvailabilityBurnRateSlow",
    "GatewayAvailabilityBurnRateTicket",
    "Gateway5xxRatio",
    "ScrapeTargetAbsentLitellm",
}
WITHOUT_GATEWAY = TTFT_ALERTS | VLLM_ALERTS | SCRAPE_ALERTS | {"GpuXidError"}
ALERTS_BY_ENV = {"dev": WITHOUT_GATEWAY | GATEWAY_ALERTS, "prod": WITHOUT_GATEWAY | GATEWAY_ALERTS}

# Severities. The SLO alerts page at 14.4x and at 6x and open a ticket at 1x (FACTS.md, the SRE workbook).
SEVERITIES = {
    "VllmTtftBurnRateFast": "page",
    "VllmTtftBurnRateSlow": "page",
    "VllmTtftBurnRateTicket": "ticket",
    "GatewayAvailabilityBurnRateFast": "page",
    "GatewayAvailabilityBurnRateSlow": "page",
    "GatewayAvailabilityBurnRateTicket": "ticket",
    "GpuXidError": "critical",  # a GPU fault, not a capacity warning
    **dict.fromkeys(VLLM_ALERTS | SCRAPE_ALERTS, "warning"),
    **dict.fromkeys({"Gateway5xxRatio", "ScrapeTargetAbsentLitellm"}, "warning"),
}

# Label values the rules select on: the inference namespace (platform_config.namespaces, the vLLM scrape job's
# `namespace` label), the served model (inference.vllm.served_model_name, not overridden in cdk.json), the scrape
# jobs' names (k8s/metrics.py job_name).
NAMESPACE = "inference"
MODEL = "llama-3.1-8b-instruct"
GATEWAY_NAMESPACE = "gateway"
OBSERVABILITY_NAMESPACE = "observability"
OTHER_MODEL = "some-other-model"  # decoys: series the rules must leave out
OTHER_NAMESPACE = "batch"

# SLOs: AlertSettings.ttft_slo_seconds / ttft_slo_objective / availability_objective defaults.
TTFT_SLO = "ttft-2.5s"  # the `slo` label: a first token within 2.5 s (a vLLM TTFT bucket bound)
TTFT_BUDGET = 0.01  # 1 - 0.99
AVAILABILITY_BUDGET = 0.001  # 1 - 0.999
# FACTS.md "Tracing and durable metrics" (Google SRE workbook): page at 14.4x over 1 h and 5 min (fast) and at
# 6x over 6 h and 30 min (slow); open a ticket at 1x over 3 d and 6 h.
BURN_FACTORS = {"fast": 14.4, "slow": 6.0, "ticket": 1.0}
# Fleet error ratios just above and just below each burn threshold (14.4 x 0.01 = 0.144, 6 x 0.01 = 0.06, ...).
TTFT_RATIOS = {"fast": (0.146, 0.142), "slow": (0.061, 0.059), "ticket": (0.0101, 0.0099)}
AVAILABILITY_RATIOS = {"fast": (0.0146, 0.0142), "slow": (0.0061, 0.0059), "ticket": (0.00101, 0.00099)}

# Warnings: AlertSettings defaults (their field descriptions give the `for:` durations) and the vLLM autoscaling
# defaults (InferenceSettings.autoscaling; cdk.json's prod overrides only min/fallback replicas).
KV_CACHE_USAGE, KV_CACHE_MINUTES = 0.9, 10  # "stays above this" ... "for this long"
QUEUE_BACKLOG_PER_REPLICA = 20.0  # "for 5 minutes"
PREEMPTIONS_PER_MINUTE = 1.0  # "for 10 minutes"
GATEWAY_5XX_RATIO = 0.05  # "for 5 minutes"
MAX_REPLICAS = 4  # autoscaling.max_replicas
QUEUE_DEPTH_PER_REPLICA = 5.0  # autoscaling.queue_depth_per_replica (FACTS.md: production-stack 5, llm-d 5)
# Values just above and just below.
KV_ABOVE, KV_BELOW = 0.91, 0.89
QUEUE_ABOVE, QUEUE_BELOW = (21.0, 20.0), (20.0, 19.0)  # two replicas: 20.5 and 19.5 waiting per replica
PREEMPT_ABOVE, PREEMPT_BELOW = (0.6, 0.5), (0.5, 0.4)  # two replicas, per minute: 1.1 and 0.9 in all
GATEWAY_5XX_ABOVE, GATEWAY_5XX_BELOW = 0.051, 0.049
# Per replica at the start of the growth; the queue then grows by QUEUE_GROWTH per replica and minute (30 min).
QUEUE_GROWING_ABOVE, QUEUE_GROWING_BELOW, QUEUE_GROWTH = 5.05, 4.8, 0.005

# vLLM's TTFT bucket bounds in seconds (vllm/v1/metrics/loggers.py; FACTS.md "Tracing and durable metrics").
TTFT_BUCKET_BOUNDS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip

VLLM_PODS = ("vllm-6d5f8b7c9-abcde", "vllm-6d5f8b7c9-fghij", "vllm-6d5f8b7c9-klmno", "vllm-6d5f8b7c9-pqrst")
GATEWAY_PODS = ("litellm-7f9c6d5b4-klmno", "litellm-7f9c6d5b4-pqrst")

# --- synthetic series ---------------------------------------------------------------------------------------

Labels = Mapping[str, str]
Series = dict[str, str]
STEP = "1m"  # input series have one sample a minute (unless a case says otherwise), rules run every minute
# The ticket's series: 73 hours (longer than its 3-day window), one sample every 10 minutes.
COARSE_STEP, STEPS_PER_HOUR = "10m", 6


def _num(value: float) -> str:
    """Exactly the float (repr round-trips), so promtool's values are the ones computed here."""
    return repr(float(value))


def _series(name: str, labels: Labels, values: str) -> Series:
    return {"series": name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "values": values}


def gauge(*phases: tuple[int, float]) -> str:
    """(minutes, value) after one another from 0 m, one sample a minute; the last value is also sampled at the end."""
    return ramp(*[(minutes, value, 0.0) for minutes, value in phases])


def ramp(*phases: tuple[int, float, float]) -> str:
    """(minutes, start, change per minute) after one another, like `gauge`."""
    parts = []
    for index, (minutes, start, slope) in enumerate(phases):
        repeats = minutes if index == len(phases) - 1 else minutes - 1
        sign = "-" if slope < 0 else "+"
        parts.append(f"{_num(start)}{sign}{_num(abs(slope))}x{repeats}")
    return " ".join(parts)


def counter(*phases: tuple[int, float], start: float = 0.0) -> str:
    """A counter from `start` at 0 m growing by `per_minute` for `minutes`, phase after phase (with a coarser
    input interval, read "step" for "minute").

    promtool expands `a+bxn` by adding b n times; each phase starts from the previous phase's last value computed
    the same way, so the counter never goes down by a rounding error (which rate() would take for a reset).
    """
    parts, last = [_num(start)], float(start)
    for minutes, per_minute in phases:
        step = float(per_minute)
        value = last + step
        parts.append(f"{_num(value)}+{_num(step)}x{minutes - 1}")
        for _ in range(minutes - 1):
            value += step
        last = value
    return " ".join(parts)


def _vllm(name: str, pod: str, values: str, *, namespace: str = NAMESPACE, model: str = MODEL, **extra: str) -> Series:
    """What vLLM writes (model_name, engine) plus what the vllm scrape job adds (job, instance, namespace, pod)."""
    address = f"10.0.3.{11 + VLLM_PODS.index(pod) if pod in VLLM_PODS else 99}:8000"
    labels = {"job": "vllm", "instance": address, "namespace": namespace, "pod": pod}
    return _series(name, {**labels, "model_name": model, "engine": "0", **extra}, values)


def _vllm_decoys(name: str, values: str, **extra: str) -> list[Series]:
    """The same metric for another model in the namespace and for this model in another namespace."""
    return [
        _vllm(name, "other-5c4b3a2f1-zzzzz", values, model=OTHER_MODEL, **extra),
        _vllm(name, VLLM_PODS[0], values, namespace=OTHER_NAMESPACE, **extra),
    ]


# TTFT: 3000 requests a step (a minute, or 10 for the ticket's series), 2000 on the first pod and 1000 on the
# second. Slow requests (in (2.5, 5] s, just over the SLO) are all on the first pod, so a rule averaging per-pod
# ratios or taking the worst pod would differ from the fleet-wide ratio the SLO is about.
TTFT_PER_STEP = (2000.0, 1000.0)


def ttft_series(*phases: tuple[int, float | None]) -> list[Series]:
    """(steps, fleet share of requests slower than 2.5 s), or None for no requests at all."""
    per_pod: list[dict[str, list[tuple[int, float]]]] = [{}, {}]
    total = sum(TTFT_PER_STEP)
    for minutes, ratio in phases:
        slow_left = 0.0 if ratio is None else ratio * total
        for pod_index, requests in enumerate(TTFT_PER_STEP):
            n = 0.0 if ratio is None else requests
            slow = min(slow_left, n)
            slow_left -= slow
            good = n - slow
            increments = {"0.5": good * 0.5, "1.0": good * 0.8, "2.5": good, "5.0": n, "+Inf": n, "count": n}
            for key, per_minute in increments.items():
                per_pod[pod_index].setdefault(key, []).append((minutes, per_minute))
        assert slow_left == 0, f"ratio {ratio} is more than the first pod can hold"
    series: list[Series] = []
    for pod, phases_by_key in zip(VLLM_PODS, per_pod, strict=False):
        for key, key_phases in phases_by_key.items():
            if key == "count":
                series.append(_vllm("vllm:time_to_first_token_seconds_count", pod, counter(*key_phases)))
            else:
                series.append(_vllm("vllm:time_to_first_token_seconds_bucket", pod, counter(*key_phases), le=key))
    minutes = sum(m for m, _ in phases)
    for le in ("0.5", "1.0", "2.5", "5.0", "+Inf"):
        all_slow = counter((minutes, 0.0 if float(le) <= 2.5 else 1000.0))
        series += _vllm_decoys("vllm:time_to_first_token_seconds_bucket", all_slow, le=le)
    series += _vllm_decoys("vllm:time_to_first_token_seconds_count", counter((minutes, 1000.0)))
    return series


# Gateway: 10000 requests a step, 6000 on the first LiteLLM pod (which answers every failure and 4xx) and 4000 on
# the second. LiteLLM labels `litellm_proxy_total_requests_metric_total` with status_code (FACTS.md, LiteLLM
# integrations/prometheus.py); the litellm scrape job adds job, instance, namespace and pod.
GATEWAY_PER_STEP = (6000.0, 4000.0)
# How the server-side failures and the clients' errors split over status codes. LiteLLM 1.102 writes the
# exception's status code, and the string "None" when it has none (str(None) in async_post_call_failure_hook);
# it skips 401s (invalid keys), so those never reach the metric.
SERVER_ERRORS = {"500": 2 / 3, "503": 1 / 3}
NO_STATUS = {"None": 1.0}
CLIENT_ERRORS = {"429": 0.5, "400": 0.25, "404": 0.25}


def _gateway_labels(pod: str) -> dict[str, str]:
    return {
        "job": "litellm",
        "instance": f"10.0.2.{21 + GATEWAY_PODS.index(pod)}:4000",
        "namespace": GATEWAY_NAMESPACE,
        "pod": pod,
        "requested_model": MODEL,
        "model_id": f"{MODEL}-0",
        "api_provider": "hosted_vllm",
        "route": "/chat/completions",
        "hashed_api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "client_ip": "10.0.1.57",
        "user_agent": "OpenAI/Python 1.54.0",
    }


def gateway_series(
    *phases: tuple[int, float | None, float],
    failures: Mapping[str, float] = SERVER_ERRORS,
    rejections: Mapping[str, float] = CLIENT_ERRORS,
) -> list[Series]:
    """(steps, fleet share of server-side failures, fleet share of 4xx), or a failure share of None for no requests
    at all. `failures` and `rejections` split each share over status codes."""
    total = sum(GATEWAY_PER_STEP)
    first: dict[str, list[tuple[int, float]]] = {code: [] for code in ("200", *rejections, *failures)}
    second: list[tuple[int, float]] = []
    for minutes, server_errors, client_errors in phases:
        idle = server_errors is None
        errors = 0.0 if server_errors is None else server_errors * total
        rejected = 0.0 if idle else client_errors * total
        ok = 0.0 if idle else GATEWAY_PER_STEP[0] - errors - rejected
        assert ok >= 0, "the first pod cannot answer that many errors"
        split = {
            "200": ok,
            **{code: rejected * share for code, share in rejections.items()},
            **{code: errors * share for code, share in failures.items()},
        }
        for code, per_step in split.items():
            first[code].append((minutes, per_step))
        second.append((minutes, 0.0 if idle else GATEWAY_PER_STEP[1]))
    name = "litellm_proxy_total_requests_metric_total"
    series = [
        _series(name, {**_gateway_labels(GATEWAY_PODS[0]), "status_code": code}, counter(*code_phases))
        for code, code_phases in first.items()
    ]
    series.append(_series(name, {**_gateway_labels(GATEWAY_PODS[1]), "status_code": "200"}, counter(*second)))
    return series


# --- unit-test cases ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """At `at`, alert `alert` is firing with exactly these label sets (beyond alertname); none: it is silent."""

    at: str
    alert: str
    firing: Sequence[Labels] = ()


@dataclass(frozen=True)
class Case:
    name: str
    series: Sequence[Series]
    expect: Sequence[Expect] = field(default_factory=tuple)
    interval: str = STEP  # the input series' step


def _both(at: str, alerts: Sequence[str], firing: Mapping[str, Sequence[Labels]]) -> list[Expect]:
    return [Expect(at, alert, firing.get(alert, ())) for alert in alerts]


def _burn_alerts(prefix: str, slo: str) -> dict[str, Labels]:
    """The fast and slow pages and the ticket of one SLO, with the labels they fire with."""
    page, ticket = {"severity": "page", "slo": slo}, {"severity": "ticket", "slo": slo}
    return {f"{prefix}BurnRateFast": page, f"{prefix}BurnRateSlow": page, f"{prefix}BurnRateTicket": ticket}


def _burn_cases(
    prefix: str,
    slo: str,
    budget: float,
    ratios: Mapping[str, tuple[float, float]],
    build: Callable[..., list[Series]],
) -> list[Case]:
    """The three burn-rate alerts of one SLO on series of 400 minutes (longer than the 6 h window).

    `build(*phases)` takes (minutes, error ratio or None for no requests) phases. The ticket's 3 d window then
    holds the whole series (400 minutes): here it burns whenever the series as a whole does. Its 3 days are
    tested on longer series (`_ticket_cases`).
    """
    labels = _burn_alerts(prefix, slo)
    alerts = tuple(labels)
    fast, slow, ticket = alerts

    def firing(*names: str) -> dict[str, list[Labels]]:
        return {name: [labels[name]] for name in names}

    fast_above, fast_below = ratios["fast"]
    slow_above, slow_below = ratios["slow"]
    # An incident burning 30x the budget: in (18x, 36x), so that 10 bad minutes make the short windows of the
    # pages burn (30 m: > 6x) and not the long ones nor the ticket's 6 h window (< 1x) (below).
    burst = 30 * budget
    end = "400m"
    return [
        # Steady error ratios, so both windows of each alert see the same ratio.
        Case("just above 14.4x", build((400, fast_above)), _both(end, alerts, firing(fast, slow, ticket))),
        Case("just below 14.4x, above 6x", build((400, fast_below)), _both(end, alerts, firing(slow, ticket))),
        Case("just above 6x", build((400, slow_above)), _both(end, alerts, firing(slow, ticket))),
        Case("just below 6x, above 1x", build((400, slow_below)), _both(end, alerts, firing(ticket))),
        # Only the short windows burn: 10 bad minutes after a clean history. 5 m: 30x, 1 h: 5x (< 14.4x);
        # 30 m: 10x, 6 h: 0.83x (< 6x, and < 1x for the ticket, whose short window it is).
        Case("only the short windows burn", build((390, 0.0), (10, burst)), _both(end, alerts, {})),
        # Only the long windows burn: at 370 m all three fire. 5 clean minutes later the fast page's 5 m window
        # is clean and it has resolved while the slow page (30 m: 25x) still fires; 20 minutes later (30 m: 10x)
        # too; after 30 clean minutes both pages' short windows are clean while their long ones still burn
        # (1 h: 15x, 6 h: 27.5x), and both have resolved. The ticket's short window is 6 h: it still fires.
        Case(
            "only the long windows burn",
            build((370, burst), (30, 0.0)),
            [
                *_both("370m", alerts, firing(fast, slow, ticket)),
                *_both("375m", alerts, firing(slow, ticket)),
                *_both("390m", alerts, firing(slow, ticket)),
                *_both(end, alerts, firing(ticket)),
            ],
        ),
        # A new burst 50 minutes after an 80-minute incident: the fast page's 1 h window (5x) no longer sees the
        # old incident, so it stays silent; the slow page's 6 h window (7.5x) does, and its 30 m window burns
        # (10x); the ticket's 6 h window too (7.5x > 1x).
        Case(
            "a new burst after an older incident",
            build((260, 0.0), (80, burst), (50, 0.0), (10, burst)),
            _both(end, alerts, firing(slow, ticket)),
        ),
        # No requests: every ratio is 0/0 (NaN), which compares false.
        Case("no traffic at all", build((400, None)), _both(end, alerts, {})),
        # Traffic that burned for hours and then stopped an hour ago: the pages' short windows are NaN and they
        # stay silent; the ticket's 6 h window still holds the burn (30x), so the ticket stays open.
        Case("traffic stopped after burning", build((340, burst), (60, None)), _both(end, alerts, firing(ticket))),
    ]


def _ticket_cases(
    prefix: str,
    slo: str,
    budget: float,
    ratios: Mapping[str, tuple[float, float]],
    build: Callable[..., list[Series]],
) -> list[Case]:
    """The ticket (1x over 3 d and 6 h) on series of 73 hours, one sample every 10 minutes, so that its 3-day
    window is full. At that step the fast page's 5 m window holds a single sample: only the ticket is checked.

    `build(*phases)` takes (10-minute steps, error ratio) phases. At 73 h the 3 d window holds 1 h to 73 h and
    the 6 h window 67 h to 73 h.
    """
    ticket = f"{prefix}BurnRateTicket"
    fires = [{"severity": "ticket", "slo": slo}]
    above, below = ratios["ticket"]
    hours = STEPS_PER_HOUR
    return [
        Case("just above 1x for 73 h", build((73 * hours, above)), [Expect("73h", ticket, fires)], COARSE_STEP),
        Case("just below 1x for 73 h", build((73 * hours, below)), [Expect("73h", ticket)], COARSE_STEP),
        # Just above for 67 h, then just below: it fires while both windows burn, and resolves once the 6 h
        # window holds only the last 6 hours (0.99x) although the 3 d one still burns (66 h x 1.01 + 6 h x 0.99
        # over 72 h: 1.0083x).
        Case(
            "3 d just above, 6 h just below",
            build((67 * hours, above), (6 * hours, below)),
            [Expect("67h", ticket, fires), Expect("73h", ticket)],
            COARSE_STEP,
        ),
        # The reverse: the last 6 hours burn (1.01x), the 3 d window does not (0.9917x).
        Case(
            "6 h just above, 3 d just below",
            build((67 * hours, below), (6 * hours, above)),
            [Expect("67h", ticket), Expect("73h", ticket)],
            COARSE_STEP,
        ),
        # The long window is 3 days, not shorter: a burn (1.5x) 2 to 3 days ago keeps it above 1x (24 h x 1.5 +
        # 42 h x 0.9 + 6 h x 1.01 over 72 h: 1.109x), although the last 2 days alone are below (0.914x).
        Case(
            "a burn 2 to 3 days ago keeps the 3 d window burning",
            build((25 * hours, 1.5 * budget), (42 * hours, 0.9 * budget), (6 * hours, above)),
            [Expect("73h", ticket, fires)],
            COARSE_STEP,
        ),
        # ... and not longer: an incident (30x) in the first hour, more than 3 days before 73 h, is forgotten
        # (0.9917x; over all 73 hours it would be 1.389x).
        Case(
            "an incident more than 3 days ago is forgotten",
            build((1 * hours, 30 * budget), (66 * hours, below), (6 * hours, above)),
            [Expect("73h", ticket)],
            COARSE_STEP,
        ),
    ]


def ttft_burn_rate_cases() -> list[Case]:
    return _burn_cases("VllmTtft", TTFT_SLO, TTFT_BUDGET, TTFT_RATIOS, ttft_series)


def ttft_ticket_cases() -> list[Case]:
    return _ticket_cases("VllmTtft", TTFT_SLO, TTFT_BUDGET, TTFT_RATIOS, ttft_series)


def _gateway_build(*phases: tuple[int, float | None]) -> list[Series]:
    """The availability SLO's series: (steps, share of failures), with 5% of 4xx all along."""
    return gateway_series(*[(steps, ratio, 0.05) for steps, ratio in phases])


def gateway_burn_rate_cases() -> list[Case]:
    cases = _burn_cases("GatewayAvailability", "availability", AVAILABILITY_BUDGET, AVAILABILITY_RATIOS, _gateway_build)
    labels = _burn_alerts("GatewayAvailability", "availability")
    alerts = tuple(labels)
    every = {name: [alert_labels] for name, alert_labels in labels.items()}
    # 4xx are the clients' errors, not the gateway's: half the requests refused (429, 400, 404) burns nothing.
    cases.append(Case("only 4xx", gateway_series((400, 0.0, 0.5)), _both("400m", alerts, {})))
    # A failure LiteLLM records without a status code (status_code="None") is the gateway's: half the failures
    # 503 and half "None", together just above 14.4x (each half alone 7.3x), fire the fast page too.
    half = {"503": 0.5, "None": 0.5}
    above = AVAILABILITY_RATIOS["fast"][0]
    cases.append(
        Case(
            "5xx and failures without a status code, just above 14.4x",
            gateway_series((400, above, 0.05), failures=half),
            _both("400m", alerts, every),
        )
    )
    return cases


def gateway_ticket_cases() -> list[Case]:
    return _ticket_cases(
        "GatewayAvailability", "availability", AVAILABILITY_BUDGET, AVAILABILITY_RATIOS, _gateway_build
    )


WARNING = {"severity": "warning"}


def kv_cache_cases() -> list[Case]:
    name = "vllm:kv_cache_usage_perc"
    decoys = _vllm_decoys(name, gauge((40, 1.0)))
    # The first pod goes just above the threshold at 20 m; the second stays just below. Pending 9 min: silent.
    above = [
        _vllm(name, VLLM_PODS[0], gauge((20, 0.5), (20, KV_ABOVE))),
        _vllm(name, VLLM_PODS[1], gauge((40, KV_BELOW))),
    ]
    pod = [{"pod": VLLM_PODS[0], **WARNING}]
    # A one-minute dip at 25 m restarts the `for:` clock: firing only from 36 m.
    dip = [_vllm(name, VLLM_PODS[0], gauge((20, 0.5), (5, KV_ABOVE), (1, 0.5), (14, KV_ABOVE)))]
    below = [_vllm(name, pod_name, gauge((40, KV_BELOW))) for pod_name in VLLM_PODS[:2]]
    alert = "VllmKvCacheHigh"
    return [
        Case(
            "one replica just above",
            above + decoys,
            [Expect("29m", alert), Expect("30m", alert, pod), Expect("40m", alert, pod)],
        ),
        Case("a dip restarts the clock", dip + decoys, [Expect("35m", alert), Expect("36m", alert, pod)]),
        Case("both just below", below + decoys, [Expect("40m", alert)]),
    ]


def _waiting(pods: Sequence[str], values: Sequence[str]) -> list[Series]:
    return [_vllm("vllm:num_requests_waiting", pod, v) for pod, v in zip(pods, values, strict=True)]


def queue_backlog_cases() -> list[Case]:
    # Decoy queues of 100 (another model; this model in another namespace): counted, the "below" case would
    # average 60 waiting per replica.
    decoys = _vllm_decoys("vllm:num_requests_waiting", gauge((30, 100.0)))
    alert = "VllmQueueBacklog"

    def fleet(values: tuple[float, float]) -> list[Series]:
        return _waiting(VLLM_PODS[:2], [gauge((10, 2.0), (20, v)) for v in values]) + decoys

    return [
        Case(
            "just above per replica from 10 m",
            fleet(QUEUE_ABOVE),
            [Expect("14m", alert), Expect("15m", alert, [WARNING]), Expect("30m", alert, [WARNING])],
        ),
        Case("just below per replica", fleet(QUEUE_BELOW), [Expect("30m", alert)]),
    ]


def preemption_cases() -> list[Case]:
    name = "vllm:num_preemptions_total"
    decoys = _vllm_decoys(name, counter((40, 10.0)))
    alert = "VllmPreemptions"

    def fleet(per_minute: tuple[float, float]) -> list[Series]:
        return [
            _vllm(name, pod, counter((10, 0.0), (30, rate))) for pod, rate in zip(VLLM_PODS, per_minute, strict=False)
        ] + decoys

    # Preemptions start at 10 m; the 5 m rate is above 1/min from 15 m, so the alert fires from 25 m.
    return [
        Case(
            "just above per minute",
            fleet(PREEMPT_ABOVE),
            [Expect("24m", alert), Expect("25m", alert, [WARNING]), Expect("40m", alert, [WARNING])],
        ),
        Case("just below per minute", fleet(PREEMPT_BELOW), [Expect("40m", alert)]),
    ]


def at_max_replicas_cases() -> list[Case]:
    alert = "VllmAtMaxReplicasQueueGrowing"
    # Decoy replicas (another model; this model in another namespace) with growing queues: counted, they would
    # make three replicas five.
    decoys = _vllm_decoys("vllm:num_requests_waiting", ramp((40, 50.0, 1.0)))

    def fleet(replicas: int, start: float, slope: float = QUEUE_GROWTH) -> list[Series]:
        values = [ramp((10, 2.0, 0.0), (30, start, slope))] * replicas
        return _waiting(VLLM_PODS[:replicas], values) + decoys

    flat = _waiting(VLLM_PODS, [gauge((40, 8.0))] * MAX_REPLICAS) + decoys
    shrinking = _waiting(VLLM_PODS, [ramp((40, 8.0, -0.05))] * MAX_REPLICAS) + decoys
    return [
        # From 10 m, 4 replicas at just over 5 waiting each and growing: firing 5 minutes later.
        Case(
            "at max replicas, just above the scaling threshold, growing",
            fleet(MAX_REPLICAS, QUEUE_GROWING_ABOVE),
            [Expect("14m", alert), Expect("15m", alert, [WARNING]), Expect("35m", alert, [WARNING])],
        ),
        Case("one replica short of max", fleet(MAX_REPLICAS - 1, QUEUE_GROWING_ABOVE), [Expect("35m", alert)]),
        Case("just below the scaling threshold", fleet(MAX_REPLICAS, QUEUE_GROWING_BELOW), [Expect("35m", alert)]),
        Case("high but flat", flat, [Expect("35m", alert)]),
        Case("high but shrinking", shrinking, [Expect("35m", alert)]),
    ]


def _dcgm_labels(gpu: str, *, job: str = "dcgm-exporter") -> dict[str, str]:
    """dcgm-exporter's labels in Kubernetes mode (gpu, UUID, device, modelName, Hostname, the GPU's pod) plus the
    dcgm-exporter scrape job's job and instance (honor_labels keeps the exporter's namespace/pod)."""
    return {
        "job": job,
        "instance": "10.0.3.7:9400",
        "gpu": gpu,
        "UUID": f"GPU-3f9c1a2e-8d4b-4c6f-9e21-5b7a0c1d2e{gpu}f",
        "device": f"nvidia{gpu}",
        "modelName": "NVIDIA L4",
        "Hostname": "ip-10-0-3-7.ec2.internal",
        "DCGM_FI_DRIVER_VERSION": "570.172.08",
        "namespace": NAMESPACE,
        "pod": VLLM_PODS[int(gpu)],
        "container": "vllm",
    }


def gpu_xid_cases() -> list[Case]:
    name, alert = "DCGM_FI_DEV_XID_ERRORS", "GpuXidError"
    # Another exporter's copy (not the platform's job) reporting an XID must not page.
    decoy = _series(name, _dcgm_labels("0", job="other-dcgm"), gauge((20, 43.0)))
    xid = [
        _series(name, _dcgm_labels("0"), gauge((10, 0.0), (10, 79.0))),
        _series(name, _dcgm_labels("1"), gauge((20, 0.0))),
    ]
    quiet = [_series(name, _dcgm_labels(gpu), gauge((20, 0.0))) for gpu in ("0", "1")]
    critical = [{"Hostname": "ip-10-0-3-7.ec2.internal", "gpu": "0", "severity": "critical"}]
    return [
        # XID 79 (GPU fallen off the bus) on GPU 0 at 10 m: no `for:`, it fires at once.
        Case("XID 79 on one GPU", [*xid, decoy], [Expect("9m", alert), Expect("10m", alert, critical)]),
        Case("no XID", [*quiet, decoy], [Expect("20m", alert)]),
    ]


def _up(job: str, values: str) -> Series:
    return _series("up", _target(job), values)


def _target(job: str) -> dict[str, str]:
    """An `up` series' labels: job and instance, plus the namespace and pod the scrape jobs add."""
    instance, namespace, pod = {
        "vllm": ("10.0.3.11:8000", NAMESPACE, VLLM_PODS[0]),
        "dcgm-exporter": ("10.0.3.7:9400", OBSERVABILITY_NAMESPACE, "dcgm-exporter-x7k2p"),
        "litellm": ("10.0.2.21:4000", GATEWAY_NAMESPACE, GATEWAY_PODS[0]),
    }[job]
    return {"job": job, "instance": instance, "namespace": namespace, "pod": pod}


def scrape_target_down_cases(*, gateway: bool = True) -> list[Case]:
    alert = "ScrapeTargetDown"
    series = [
        _up("vllm", gauge((10, 1.0), (20, 0.0))),
        _up("dcgm-exporter", gauge((30, 1.0))),
        _up("litellm", gauge((20, 1.0), (10, 0.0))),
        # Not a platform target.
        _series("up", {"job": "prometheus", "instance": "localhost:9090"}, gauge((30, 0.0))),
    ]
    vllm_down = {**_target("vllm"), **WARNING}
    litellm_down = [{**_target("litellm"), **WARNING}] if gateway else []
    flapping = [_up("vllm", gauge((10, 1.0), (2, 0.0), (18, 1.0))), _up("dcgm-exporter", gauge((30, 1.0)))]
    return [
        Case(
            "vllm down from 10 m, litellm from 20 m",
            series,
            [Expect("11m", alert), Expect("12m", alert, [vllm_down]), Expect("22m", alert, [vllm_down, *litellm_down])],
        ),
        # Two failed scrapes in a row: shorter than `for: 2m`.
        Case("down for two minutes only", flapping, [Expect(at, alert) for at in ("11m", "12m", "13m")]),
    ]


def scrape_target_absent_cases() -> list[Case]:
    jobs = {
        "vllm": "ScrapeTargetAbsentVllm",
        "dcgm-exporter": "ScrapeTargetAbsentDcgmExporter",
        "litellm": "ScrapeTargetAbsentLitellm",
    }
    cases = []
    for job, alert in jobs.items():
        others = [_up(other, gauge((20, 1.0))) for other in jobs if other != job]
        cases.append(
            Case(
                f"no {job} target",
                others,
                [
                    Expect("4m", alert),
                    Expect("5m", alert, [{"job": job, **WARNING}]),
                    *[Expect("20m", jobs[other]) for other in jobs if other != job],
                ],
            )
        )
    # A target that is down is not absent (ScrapeTargetDown covers it).
    every = [_up(job, gauge((20, 0.0))) for job in jobs]
    cases.append(Case("every target present, all down", every, [Expect("20m", alert) for alert in jobs.values()]))
    return cases


def gateway_5xx_cases() -> list[Case]:
    alert = "Gateway5xxRatio"
    # 5% of 4xx (429, 400, 404) all along (in the denominator, not errors); failures start after 20 m. The 5 m
    # rate is above the threshold from 25 m (a window full of failures), so the alert fires from 30 m.
    fires = [Expect("29m", alert), Expect("30m", alert, [WARNING]), Expect("40m", alert, [WARNING])]
    return [
        Case("just above from 20 m", gateway_series((20, 0.0, 0.05), (20, GATEWAY_5XX_ABOVE, 0.05)), fires),
        Case("just below", gateway_series((20, 0.0, 0.05), (20, GATEWAY_5XX_BELOW, 0.05)), [Expect("40m", alert)]),
        # Failures LiteLLM records without a status code (status_code="None") count as the gateway's.
        Case(
            "failures without a status code, just above from 20 m",
            gateway_series((20, 0.0, 0.05), (20, GATEWAY_5XX_ABOVE, 0.05), failures=NO_STATUS),
            fires,
        ),
        Case(
            "failures without a status code, just below",
            gateway_series((20, 0.0, 0.05), (20, GATEWAY_5XX_BELOW, 0.05), failures=NO_STATUS),
            [Expect("40m", alert)],
        ),
        Case("4xx only (429, 400, 404)", gateway_series((40, 0.0, 0.5)), [Expect("40m", alert)]),
        Case("no traffic", gateway_series((40, None, 0.0)), [Expect("40m", alert)]),
    ]


CASES: dict[str, Callable[[], list[Case]]] = {
    "ttft-burn-rate": ttft_burn_rate_cases,
    "ttft-burn-rate-ticket": ttft_ticket_cases,
    "gateway-burn-rate": gateway_burn_rate_cases,
    "gateway-burn-rate-ticket": gateway_ticket_cases,
    "kv-cache": kv_cache_cases,
    "queue-backlog": queue_backlog_cases,
    "preemptions": preemption_cases,
    "at-max-replicas-queue-growing": at_max_replicas_cases,
    "gpu-xid": gpu_xid_cases,
    "scrape-target-down": scrape_target_down_cases,
    "scrape-target-absent": scrape_target_absent_cases,
    "gateway-5xx": gateway_5xx_cases,
}
# The burn-rate alerts have no `for:`: evaluating them every 5 minutes instead of every minute checks the same
# instants (all at multiples of 5 m) five times faster over their 400-minute series, and every hour the same
# instants (67 h, 73 h) over the ticket's 73-hour series.
EVALUATION_INTERVALS = {
    "ttft-burn-rate": "5m",
    "gateway-burn-rate": "5m",
    "ttft-burn-rate-ticket": "1h",
    "gateway-burn-rate-ticket": "1h",
}


# --- promtool plumbing ----------------------------------------------------------------------------------------


def rule_file(synth: Synthesized) -> Path:
    """Where app.py's synth wrote the environment's rules (tests.conftest.synthesize: <tmp>/prometheus/)."""
    return synth.outdir.parent / "prometheus" / "alerting_rules.yml"


def rules_by_alert(path: Path) -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    by_alert = {rule["alert"]: rule for rule in rules}
    assert len(by_alert) == len(rules), f"an alert name appears twice: {[r['alert'] for r in rules]}"
    return by_alert


def promtool_tests(cases: Sequence[Case], rules: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """promtool unit-test groups. promtool compares annotations too, so those of the firing alert come from the
    rule file (they are static text); the labels are the ones written in the cases."""
    tests = []
    for case in cases:
        checks = [
            {
                "eval_time": expect.at,
                "alertname": expect.alert,
                "exp_alerts": [
                    {"exp_labels": dict(labels), "exp_annotations": dict(rules[expect.alert]["annotations"])}
                    for labels in expect.firing
                ],
            }
            for expect in case.expect
        ]
        tests.append(
            {"name": case.name, "interval": case.interval, "input_series": list(case.series), "alert_rule_test": checks}
        )
    return tests


def run_cases(path: Path, cases: Sequence[Case], evaluation_interval: str = STEP) -> None:
    run_rule_file_tests(path, promtool_tests(cases, rules_by_alert(path)), evaluation_interval=evaluation_interval)


@pytest.fixture(scope="module")
def no_gateway(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """dev with `gateway.enabled=false`: the one extra synth of this file."""
    return synthesize(tmp_path_factory.mktemp("no-gateway"), "dev", **{"gateway.enabled": "false"})


def _synth(request: pytest.FixtureRequest, name: str) -> Synthesized:
    synth: Synthesized = request.getfixturevalue(name.replace("-", "_"))
    return synth


# --- the rule file ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "prod", "no-gateway"])
def test_promtool_check_rules_lint_fatal_accepts_the_file(env: str, request: pytest.FixtureRequest) -> None:
    path = rule_file(_synth(request, env))
    output = check_rule_file(path, lint_fatal=True)
    expected = len(WITHOUT_GATEWAY) if env == "no-gateway" else len(ALERTS_BY_ENV[env])
    assert f"SUCCESS: {expected} rules found" in output, output


def test_lint_fatal_fails_on_a_duplicate_rule(dev: Synthesized, tmp_path: Path) -> None:
    """The check can fail: the same rule twice is a lint finding, fatal with --lint-fatal."""
    document = yaml.safe_load(rule_file(dev).read_text(encoding="utf-8"))
    document["groups"][0]["rules"].append(document["groups"][0]["rules"][0])
    broken = tmp_path / "alerting_rules.yml"
    broken.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(PromQLError, match="duplicate"):
        check_rule_file(broken, lint_fatal=True)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_environment_has_exactly_the_expected_alerts(env: str, request: pytest.FixtureRequest) -> None:
    rules = rules_by_alert(rule_file(_synth(request, env)))
    assert set(rules) == ALERTS_BY_ENV[env]


def test_without_the_gateway_its_alerts_are_absent(no_gateway: Synthesized) -> None:
    rules = rules_by_alert(rule_file(no_gateway))
    assert set(rules) == WITHOUT_GATEWAY
    assert not set(rules) & GATEWAY_ALERTS
    # ... and the LiteLLM job is no longer one ScrapeTargetDown watches (unit-tested below too).
    assert "litellm" not in rules["ScrapeTargetDown"]["expr"]


@pytest.mark.parametrize("env", ["dev", "prod", "no-gateway"])
def test_every_rule_has_a_severity_and_a_summary(env: str, request: pytest.FixtureRequest) -> None:
    for name, rule in rules_by_alert(rule_file(_synth(request, env))).items():
        assert rule["labels"]["severity"] == SEVERITIES[name], name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_file_is_what_the_prometheus_chart_loads(env: str, request: pytest.FixtureRequest) -> None:
    """The reviewed file, the stack's groups and the chart's `serverFiles.alerting_rules.yml` are the same rules."""
    synth = _synth(request, env)
    groups = yaml.safe_load(rule_file(synth).read_text(encoding="utf-8"))["groups"]
    assert groups == synth.platform.observability.alerting_rule_groups
    (chart,) = [
        r
        for r in resources_of(synth.stack_json("observability"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "prometheus"
    ]
    values = helm_values(chart["Properties"]["Values"])
    assert values["serverFiles"]["alerting_rules.yml"] == {"groups": groups}


# --- every alert on synthetic series ----------------------------------------------------------------------------


def test_every_alert_is_seen_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for build in CASES.values():
        for case in build():
            for expect in case.expect:
                (firing if expect.firing else silent).add(expect.alert)
    assert firing == silent == ALERTS_BY_ENV["dev"]


def test_burn_ratios_and_thresholds_sit_either_side() -> None:
    """The designed values bracket the thresholds written above, by small margins."""
    for budget, ratios in ((TTFT_BUDGET, TTFT_RATIOS), (AVAILABILITY_BUDGET, AVAILABILITY_RATIOS)):
        assert set(ratios) == set(BURN_FACTORS)
        for window, factor in BURN_FACTORS.items():
            above, below = ratios[window]
            assert below < factor * budget < above
            assert above / (factor * budget) < 1.02
            assert below / (factor * budget) > 0.98
    assert KV_BELOW < KV_CACHE_USAGE < KV_ABOVE
    assert sum(QUEUE_BELOW) / 2 < QUEUE_BACKLOG_PER_REPLICA < sum(QUEUE_ABOVE) / 2
    assert sum(PREEMPT_BELOW) < PREEMPTIONS_PER_MINUTE < sum(PREEMPT_ABOVE)
    assert GATEWAY_5XX_BELOW < GATEWAY_5XX_RATIO < GATEWAY_5XX_ABOVE
    assert QUEUE_GROWING_BELOW + QUEUE_GROWTH * 30 < QUEUE_DEPTH_PER_REPLICA < QUEUE_GROWING_ABOVE


@pytest.mark.parametrize("cases", CASES, ids=str)
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_alert_fires_above_and_stays_silent_below(cases: str, env: str, request: pytest.FixtureRequest) -> None:
    run_cases(rule_file(_synth(request, env)), CASES[cases](), EVALUATION_INTERVALS.get(cases, STEP))


def test_without_the_gateway_a_litellm_target_down_does_not_alert(no_gateway: Synthesized) -> None:
    run_cases(rule_file(no_gateway), scrape_target_down_cases(gateway=False))


def test_a_unit_test_fails_when_the_alert_does_not_fire(dev: Synthesized) -> None:
    """The unit tests can fail: expecting the KV-cache alert on the just-below series is reported by promtool."""
    below = next(case for case in kv_cache_cases() if case.name == "both just below")
    wrong = Case(below.name, below.series, [Expect("40m", "VllmKvCacheHigh", [{"pod": VLLM_PODS[0], **WARNING}])])
    with pytest.raises(RuleTestError, match="VllmKvCacheHigh"):
        run_cases(rule_file(dev), [wrong])


# --- configuration -----------------------------------------------------------------------------------------------


def _numbers(text: str) -> list[float]:
    return [float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", text)]


def test_a_ttft_slo_off_the_bucket_bounds_is_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        config_for("dev", **{"observability.alerts.ttft_slo_seconds": "2.0"})
    (line,) = [line for line in str(raised.value).splitlines() if "observability.alerts.ttft_slo_seconds" in line]
    numbers = _numbers(line)
    bounds = list(TTFT_BUCKET_BOUNDS)
    # The sentence lists every bound, in order (and the rejected value).
    assert any(numbers[i : i + len(bounds)] == bounds for i in range(len(numbers))), line
    assert "bucket" in line, line
    assert "2.0" in line, line


def _ttft_le_values(seconds: str) -> set[str]:
    config = config_for("dev", **{"observability.alerts.ttft_slo_seconds": seconds})
    groups = alert_rule_groups(
        config.observability.alerts,
        MetricSelector(namespace=NAMESPACE, model_name=MODEL, pod_prefix="vllm"),
        max_replicas=MAX_REPLICAS,
        queue_threshold=QUEUE_DEPTH_PER_REPLICA,
        gateway=True,
    )
    exprs = [rule["expr"] for group in groups for rule in group["rules"] if rule["alert"] in TTFT_ALERTS]
    assert len(exprs) == 3
    return {le for expr in exprs for le in re.findall(r'le="([^"]*)"', expr)}


@pytest.mark.parametrize(("seconds", "le"), [("1.0", "1.0"), ("1", "1.0"), ("2.5", "2.5"), ("0.25", "0.25")])
def test_a_ttft_slo_on_a_bucket_bound_sets_the_le_selector(seconds: str, le: str) -> None:
    """`le` as prometheus_client writes it (and Prometheus 3 normalises it): 1.0, not 1."""
    assert _ttft_le_values(seconds) == {le}


# --- the SRE workbook's windows and severities --------------------------------------------------------------------


def _windows(expr: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(re.findall(r"\[(\d+[smhd])\]", expr)))


def _factors(expr: str) -> tuple[float, ...]:
    """The burn factors an expression compares with (`> 14.4 * 0.01`)."""
    return tuple(dict.fromkeys(float(f) for f in re.findall(r">\s*(\d+(?:\.\d+)?)\s*\*", expr)))


def test_burn_rate_severities_follow_the_sre_workbook(dev: Synthesized) -> None:
    """Page at 14.4x over 1 h and 5 min and at 6x over 6 h and 30 min, open a ticket at 1x over 3 d and 6 h."""
    rules = rules_by_alert(rule_file(dev))
    for prefix in ("VllmTtft", "GatewayAvailability"):
        severity_by_windows = {
            _windows(rule["expr"]): rule["labels"]["severity"]
            for name, rule in rules.items()
            if name.startswith(prefix)
        }
        assert severity_by_windows == {("1h", "5m"): "page", ("6h", "30m"): "page", ("3d", "6h"): "ticket"}
        factor_by_windows = {
            _windows(rule["expr"]): _factors(rule["expr"]) for name, rule in rules.items() if name.startswith(prefix)
        }
        assert factor_by_windows == {("1h", "5m"): (14.4,), ("6h", "30m"): (6.0,), ("3d", "6h"): (1.0,)}


def test_prometheus_keeps_at_least_the_longest_alert_window() -> None:
    # The SLO ticket alerts read 3 days of history; a shorter retention would silently shorten them.
    with pytest.raises(ConfigError, match=r"inference\.metrics\.retention_days"):
        config_for("dev", **{"inference.metrics.retention_days": "2"})
    assert config_for("dev", **{"inference.metrics.retention_days": "3"}).inference.metrics.retention_days == 3


def test_gateway_errors_are_server_side_failures_of_the_litellm_job(dev: Synthesized) -> None:
    rules = {r["alert"]: r for g in dev.platform.observability.alerting_rule_groups for r in g["rules"]}
    expr = rules["Gateway5xxRatio"]["expr"]
    # 5xx, LiteLLM's 408 for a backend timeout, and failures it records without a status; other 4xx are
    # the client's. Only the gateway's own scrape job counts.
    assert 'status_code=~"5..|408|None"' in expr
    assert expr.count('job="litellm"') == 2


def test_three_day_tickets_are_evaluated_apart_and_once_a_minute(dev: Synthesized) -> None:
    # A 3-day rate reads many samples; in the page alerts' group (evaluated every scrape interval, rules one
    # after another) it could make the group miss iterations and delay the pages.
    groups = {g["name"]: g for g in dev.platform.observability.alerting_rule_groups}
    tickets = groups["slo-tickets"]
    assert tickets["interval"] == "1m"
    assert {r["labels"]["severity"] for r in tickets["rules"]} == {"ticket"}
    assert all("[3d]" in r["expr"] for r in tickets["rules"])
    assert not any("[3d]" in r["expr"] for name, g in groups.items() if name != "slo-tickets" for r in g["rules"])
