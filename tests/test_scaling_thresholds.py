"""Every autoscaling threshold at its boundary: just above it the trigger scales out, just below it does not.

`tests/test_promql.py` probes far above and far below each threshold; here the synthetic series put the
HPA's view of each trigger 5% above and 5% below its threshold, so a threshold moved by 10% fails.

How the HPA reads a KEDA trigger (Kubernetes HPA algorithm, external metrics): for `AverageValue` it divides
the query's value by the replica count and compares that with the threshold; for `Value` it compares the
query's value as is. The scale-out rule below wraps each synthesized query, exactly as synthesized, in that
comparison for a fleet of two replicas. (The HPA's default 10% tolerance is not modelled: this pins the
thresholds, not the controller.)

The expected thresholds are written here, with their sources; they are never read from the code under test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Synthesized, synthesize
from tests.prometheus_harness import RuleTestError, run_rule_tests

REPLICAS = 2  # the test fleet: two vLLM pods, two LiteLLM pods (the gateway's minimum)
ABOVE = 1.05  # the HPA's per-replica value, as a share of the threshold, in the "scales" case
BELOW = 0.95  # ... and in the "does not scale" case
PERTURBATION = 0.10  # a threshold moved this much must make the boundary test fail
STEP_SECONDS = 15  # promtool's input interval and the rule group's evaluation interval
STEPS = 20  # "x20": 21 samples, 0 s to 5 m
# rate(...[1m]) is evaluated only where its window is full of 15 s samples (from 1 m on): at 2 m and 4 m.
EVAL_TIMES = ("2m", "4m")

# --- expected thresholds (written here on purpose) ---------------------------------------------------------

# vLLM's ScaledObject with the defaults (dev overrides none of them): name -> (metricType, threshold).
VLLM_THRESHOLDS: dict[str, tuple[str, float]] = {
    # FACTS.md "Autoscaling facts": production-stack scales on `vllm:num_requests_waiting` 5, llm-d queues at 5;
    # per replica, so AverageValue.
    "queue-depth": ("AverageValue", 5.0),
    # FACTS.md "Autoscaling facts": llm-d's KV-cache threshold 0.8; a fleet average, so Value.
    "kv-cache": ("Value", 0.8),
    # README config table, `inference.autoscaling.ttft_p95_seconds`: p95 time to first token 2.0 s, the product
    # target for interactive chat; a fleet-wide p95, so Value.
    "ttft-p95": ("Value", 2.0),
    # FACTS.md "Capacity and cost": an L4 sustains 513 output tok/s on Llama-3.1-8B (arc53/llm-price-compass);
    # the field scales at ~80% of that, 400 tok/s per replica, so AverageValue.
    "generation-tokens": ("AverageValue", 400.0),
}
# Only with `inference.autoscaling.dcgm_gpu_utilization_trigger=true` (off by default: FACTS.md "GPU metrics",
# utilisation sits near 100% whenever any batch runs). README config table,
# `inference.autoscaling.dcgm_gpu_utilization_percent`: 90 (no external source is cited for the number).
GPU_THRESHOLD: tuple[str, float] = ("Value", 90.0)
# The gateway's ScaledObject. FACTS.md "LiteLLM metrics and behaviour": one proxy worker is CPU-bound at roughly
# 20-40 streamed req/s per core; `gateway.autoscaling.requests_per_second_per_replica` scales at the low end, 20.
REQUEST_RATE_THRESHOLD: tuple[str, float] = ("AverageValue", 20.0)
# README config table, `gateway.autoscaling.cpu_utilization_percent`: 70 (KEDA's cpu trigger, not PromQL).
GATEWAY_CPU_PERCENT = 70

# vLLM's TTFT histogram buckets (vllm/v1/metrics/loggers.py, `vllm:time_to_first_token_seconds`; FACTS.md
# "SLO" line), as prometheus_client writes `le`. 2.0 s is not a bound: it lies in the (1.0, 2.5] bucket, where
# histogram_quantile interpolates linearly.
TTFT_BUCKETS = (
    "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75", "1.0",
    "2.5", "5.0", "7.5", "10.0", "20.0", "40.0", "80.0", "160.0", "640.0", "2560.0", "+Inf",
)  # fmt: skip

VLLM_PODS = ("vllm-6d5f8b7c9-abcde", "vllm-6d5f8b7c9-fghij")
GATEWAY_PODS = ("litellm-7f9c6d5b4-klmno", "litellm-7f9c6d5b4-pqrst")
OTHER_MODEL = "some-other-model"
OTHER_NAMESPACE = "batch"


# --- the boundary cases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """Label values the synthesized queries select on."""

    vllm_namespace: str
    model: str
    gateway_namespace: str


Series = list[dict[str, str]]


def _gauge(name: str, labels: str, value: float) -> dict[str, str]:
    return {"series": f"{name}{{{labels}}}", "values": f"{value!r}x{STEPS}"}


def _counter(name: str, labels: str, per_step: float) -> dict[str, str]:
    """A counter growing by `per_step` every 15 s: its rate over any full window is per_step / 15."""
    return {"series": f"{name}{{{labels}}}", "values": f"0+{per_step!r}x{STEPS}"}


def _vllm_labels(where: Where, pod: str, *, namespace: str | None = None, model: str | None = None) -> str:
    return f'namespace="{namespace or where.vllm_namespace}",model_name="{model or where.model}",pod="{pod}"'


def _vllm_decoys(where: Where) -> list[str]:
    """Label sets the vLLM queries must leave out: another model here, this model in another namespace."""
    return [
        _vllm_labels(where, "other-5c4b3a2f1-zzzzz", model=OTHER_MODEL),
        _vllm_labels(where, VLLM_PODS[0], namespace=OTHER_NAMESPACE),
    ]


def _queue_series(where: Where, pods: tuple[float, float]) -> Series:
    name = "vllm:num_requests_waiting"
    decoys = [_gauge(name, labels, 50) for labels in _vllm_decoys(where)]
    return [_gauge(name, _vllm_labels(where, pod), v) for pod, v in zip(VLLM_PODS, pods, strict=True)] + decoys


def _kv_series(where: Where, pods: tuple[float, float]) -> Series:
    name = "vllm:kv_cache_usage_perc"
    decoys = [_gauge(name, labels, 1.0) for labels in _vllm_decoys(where)]
    return [_gauge(name, _vllm_labels(where, pod), v) for pod, v in zip(VLLM_PODS, pods, strict=True)] + decoys


def _tokens_series(where: Where, pods: tuple[float, float]) -> Series:
    name = "vllm:generation_tokens_total"
    decoys = [_counter(name, labels, 3000 * STEP_SECONDS) for labels in _vllm_decoys(where)]
    return [
        _counter(name, _vllm_labels(where, pod), v * STEP_SECONDS) for pod, v in zip(VLLM_PODS, pods, strict=True)
    ] + decoys


def _gpu_series(where: Where, pods: tuple[float, float]) -> Series:
    name = "DCGM_FI_DEV_GPU_UTIL"
    # The DCGM query must leave out a GPU no pod holds (empty labels), another pod's GPU in the namespace and a
    # vLLM-named pod's GPU in another namespace.
    decoys = [
        _gauge(name, 'gpu="2",namespace="",pod=""', 0),
        _gauge(name, f'gpu="3",namespace="{where.vllm_namespace}",pod="other-5c4b3a2f1-zzzzz"', 0),
        _gauge(name, f'gpu="4",namespace="{OTHER_NAMESPACE}",pod="{VLLM_PODS[0]}"', 0),
    ]
    return [
        _gauge(name, f'gpu="{i}",namespace="{where.vllm_namespace}",pod="{pod}"', v)
        for i, (pod, v) in enumerate(zip(VLLM_PODS, pods, strict=True))
    ] + decoys


def _request_series(where: Where, pods: tuple[float, float]) -> Series:
    name = "litellm_proxy_total_requests_metric_total"
    here, model = f'namespace="{where.gateway_namespace}"', f'requested_model="{where.model}"'
    ok = 'route="/chat/completions",status_code="200"'
    decoys = [
        # Not a model request (e.g. /metrics): the query keeps only series with a requested_model.
        _counter(name, f'{here},pod="{GATEWAY_PODS[0]}",route="/metrics"', 40 * STEP_SECONDS),
        _counter(name, f'namespace="{OTHER_NAMESPACE}",pod="{GATEWAY_PODS[0]}",{model},{ok}', 40 * STEP_SECONDS),
    ]
    return [
        _counter(name, f'{here},pod="{pod}",{model},{ok}', v * STEP_SECONDS)
        for pod, v in zip(GATEWAY_PODS, pods, strict=True)
    ] + decoys


# TTFT, fleet-wide cumulative bucket counts per 15 s step (100 requests a step). The 95th of 100 lies in
# (1.0, 2.5]: p95 = 1.0 + 1.5 * (95 - count(le=1.0)) / (count(le=2.5) - count(le=1.0)).
#   2.1 s: 1.0 + 1.5 * (95 - 84) / (99 - 84) = 1.0 + 1.5 * 11/15
#   1.9 s: 1.0 + 1.5 * (95 - 89) / (99 - 89) = 1.0 + 1.5 * 6/10
# The rate window only scales every bucket by the same factor, which the quantile ignores.
TTFT_STEP_COUNTS: dict[float, dict[str, int]] = {
    2.1: {"0.1": 5, "0.25": 20, "0.5": 50, "0.75": 70, "1.0": 84, "2.5": 99},
    1.9: {"0.1": 5, "0.25": 20, "0.5": 55, "0.75": 75, "1.0": 89, "2.5": 99},
}
TTFT_REQUESTS_PER_STEP = 100


def _ttft_cumulative(p95: float) -> dict[str, int]:
    """Every vLLM bucket's cumulative count per step for the design giving `p95`."""
    design = TTFT_STEP_COUNTS[p95]
    counts: dict[str, int] = {}
    running = 0
    for le in TTFT_BUCKETS:
        running = design.get(le, running if float(le) <= 1.0 else TTFT_REQUESTS_PER_STEP)
        counts[le] = running
    return counts


def _interpolated_p95(counts: dict[str, int]) -> float:
    """histogram_quantile(0.95, ...) on cumulative counts, by hand: linear within the bucket holding the rank."""
    rank = 0.95 * counts["+Inf"]
    lower, below = 0.0, 0
    for le in TTFT_BUCKETS:
        if counts[le] >= rank:
            return lower + (float(le) - lower) * (rank - below) / (counts[le] - below)
        lower, below = float(le), counts[le]
    raise AssertionError("rank beyond +Inf")


def _ttft_series(where: Where, p95: float) -> Series:
    name = "vllm:time_to_first_token_seconds_bucket"
    series: Series = []
    for le, fleet in _ttft_cumulative(p95).items():
        # Split unevenly between the pods (3/5 and 2/5, each still cumulative): the query sums them by `le`.
        first = fleet * 3 // 5
        for pod, count in zip(VLLM_PODS, (first, fleet - first), strict=True):
            series.append(_counter(name, f'{_vllm_labels(where, pod)},le="{le}"', count))
        # Decoys: every request slow, in (5, 7.5].
        for labels in _vllm_decoys(where):
            slow = 0 if float(le) <= 5.0 else 50
            series.append(_counter(name, f'{labels},le="{le}"', slow))
    return series


@dataclass(frozen=True)
class Boundary:
    """One trigger: which ScaledObject has it, and series putting its HPA value just above and just below.

    `above`/`below` are the two pods' values in the metric's unit (a gauge's value, a counter's rate per second);
    for `ttft-p95` they are the fleet p95 in seconds.
    """

    trigger: str
    scaled_object: str
    expected: tuple[str, float]
    above: tuple[float, float]
    below: tuple[float, float]
    series: Callable[[Where, tuple[float, float]], Series]


def _ttft(where: Where, values: tuple[float, float]) -> Series:
    return _ttft_series(where, values[0])


BOUNDARIES = (
    # 2 x 5.25 = 10.5 waiting (5% above 5 per replica); 2 x 4.75 = 9.5 (5% below).
    Boundary("queue-depth", "vllm", VLLM_THRESHOLDS["queue-depth"], (5.75, 4.75), (5.25, 4.25), _queue_series),
    # Fleet average 0.84 and 0.76.
    Boundary("kv-cache", "vllm", VLLM_THRESHOLDS["kv-cache"], (0.88, 0.80), (0.80, 0.72), _kv_series),
    # Fleet p95 2.1 s and 1.9 s.
    Boundary("ttft-p95", "vllm", VLLM_THRESHOLDS["ttft-p95"], (2.1, 2.1), (1.9, 1.9), _ttft),
    # 840 tok/s (420 per replica) and 760 tok/s (380 per replica); below, one pod alone is above 400.
    Boundary(
        "generation-tokens",
        "vllm",
        VLLM_THRESHOLDS["generation-tokens"],
        (460, 380),
        (420, 340),
        _tokens_series,
    ),
    # Average GPU utilisation 94.5% and 85.5%.
    Boundary("gpu-utilization", "vllm", GPU_THRESHOLD, (99, 90), (90, 81), _gpu_series),
    # 42 req/s (21 per replica) and 38 req/s (19 per replica).
    Boundary("request-rate", "litellm", REQUEST_RATE_THRESHOLD, (23, 19), (21, 17), _request_series),
)


def _hpa_value(boundary: Boundary, values: tuple[float, float]) -> float:
    """What the HPA compares with the threshold, computed here from the designed series."""
    if boundary.trigger == "ttft-p95":
        return _interpolated_p95(_ttft_cumulative(values[0]))
    if boundary.expected[0] == "AverageValue":
        return sum(values) / REPLICAS  # the query sums the pods; the HPA divides by the replica count
    return sum(values) / len(values)  # the query averages the pods (or GPUs)


# --- synthesized objects ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dcgm(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """dev with the opt-in GPU trigger: the one extra synth of this file."""
    return synthesize(
        tmp_path_factory.mktemp("dcgm"), "dev", **{"inference.autoscaling.dcgm_gpu_utilization_trigger": "true"}
    )


def _triggers(synth: Synthesized, scaled_object: str) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in synth.one("ScaledObject", scaled_object)["spec"]["triggers"]}


def _types_and_thresholds(triggers: dict[str, dict[str, Any]]) -> dict[str, tuple[str, float]]:
    return {
        name: (t["metricType"], float(t["metadata"]["threshold" if t["type"] == "prometheus" else "value"]))
        for name, t in triggers.items()
    }


def _where(dev: Synthesized) -> Where:
    return Where(
        vllm_namespace=dev.one("ScaledObject", "vllm")["metadata"]["namespace"],
        model=dev.config.inference.vllm.served_model_name,
        gateway_namespace=dev.one("ScaledObject", "litellm")["metadata"]["namespace"],
    )


def _trigger(boundary: Boundary, dev: Synthesized, dcgm: Synthesized) -> dict[str, Any]:
    synth = dcgm if boundary.trigger == "gpu-utilization" else dev
    return _triggers(synth, boundary.scaled_object)[boundary.trigger]


def test_scaled_objects_carry_exactly_the_expected_thresholds(dev: Synthesized, dcgm: Synthesized) -> None:
    assert _types_and_thresholds(_triggers(dev, "vllm")) == VLLM_THRESHOLDS
    assert _types_and_thresholds(_triggers(dcgm, "vllm")) == {**VLLM_THRESHOLDS, "gpu-utilization": GPU_THRESHOLD}
    assert _types_and_thresholds(_triggers(dev, "litellm")) == {
        "request-rate": REQUEST_RATE_THRESHOLD,
        "cpu": ("Utilization", GATEWAY_CPU_PERCENT),
    }
    # Turning the GPU trigger on changes nothing else.
    dev_triggers = _triggers(dev, "vllm")
    assert {name: t for name, t in _triggers(dcgm, "vllm").items() if name != "gpu-utilization"} == dev_triggers


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=lambda b: b.trigger)
def test_designed_series_sit_five_percent_either_side(boundary: Boundary) -> None:
    threshold = boundary.expected[1]
    assert _hpa_value(boundary, boundary.above) == pytest.approx(threshold * ABOVE)
    assert _hpa_value(boundary, boundary.below) == pytest.approx(threshold * BELOW)


# --- promtool rules -----------------------------------------------------------------------------------------


def _alert(kind: str, trigger: str) -> str:
    return f"{kind}_{trigger.replace('-', '_')}"


def _hpa_expr(trigger: dict[str, Any]) -> str:
    """The synthesized query, as synthesized, turned into the value the HPA compares with the threshold."""
    query = trigger["metadata"]["query"]
    return f"({query}) / {REPLICAS}" if trigger["metricType"] == "AverageValue" else f"({query})"


def _rules(trigger: dict[str, Any], boundary: Boundary, threshold: str) -> list[dict[str, str]]:
    """The HPA's scale-out decision at `threshold`, and two checks that the series sit where they were designed."""
    value = _hpa_expr(trigger)
    expected = boundary.expected[1]
    return [
        {"alert": _alert("ScalesOut", boundary.trigger), "expr": f"{value} > {threshold}"},
        {"alert": _alert("NearAbove", boundary.trigger), "expr": f"abs({value} / {expected} - {ABOVE}) < 0.001"},
        {"alert": _alert("NearBelow", boundary.trigger), "expr": f"abs({value} / {expected} - {BELOW}) < 0.001"},
    ]


def _unit_test(series: Series, firing: Sequence[str], silent: Sequence[str]) -> dict[str, Any]:
    checks = [
        {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": {}}] if name in firing else []}
        for at in EVAL_TIMES
        for name in (*firing, *silent)
    ]
    return {"interval": f"{STEP_SECONDS}s", "input_series": series, "alert_rule_test": checks}


def _above_test(boundary: Boundary, where: Where) -> dict[str, Any]:
    t = boundary.trigger
    return _unit_test(
        boundary.series(where, boundary.above),
        firing=[_alert("ScalesOut", t), _alert("NearAbove", t)],
        silent=[_alert("NearBelow", t)],
    )


def _below_test(boundary: Boundary, where: Where) -> dict[str, Any]:
    t = boundary.trigger
    return _unit_test(
        boundary.series(where, boundary.below),
        firing=[_alert("NearBelow", t)],
        silent=[_alert("ScalesOut", t), _alert("NearAbove", t)],
    )


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=lambda b: b.trigger)
def test_just_above_scales_and_just_below_does_not(boundary: Boundary, dev: Synthesized, dcgm: Synthesized) -> None:
    trigger = _trigger(boundary, dev, dcgm)
    where = _where(dev)
    rules = _rules(trigger, boundary, trigger["metadata"]["threshold"])
    run_rule_tests(rules, [_above_test(boundary, where), _below_test(boundary, where)], f"{STEP_SECONDS}s")


@pytest.mark.parametrize("direction", ["raised", "lowered"])
@pytest.mark.parametrize("boundary", BOUNDARIES, ids=lambda b: b.trigger)
def test_a_threshold_moved_by_ten_percent_fails_the_boundary_test(
    boundary: Boundary, direction: str, dev: Synthesized, dcgm: Synthesized
) -> None:
    """The boundary test can fail: with the rule's threshold (not the code's) raised 10%, the series 5% above no
    longer scale out; lowered 10%, the series 5% below do."""
    trigger = _trigger(boundary, dev, dcgm)
    where = _where(dev)
    threshold = float(trigger["metadata"]["threshold"])
    if direction == "raised":
        moved, test = threshold * (1 + PERTURBATION), _above_test(boundary, where)
    else:
        moved, test = threshold * (1 - PERTURBATION), _below_test(boundary, where)
    rules = _rules(trigger, boundary, repr(round(moved, 9)))
    with pytest.raises(RuleTestError) as raised:
        run_rule_tests(rules, [test], f"{STEP_SECONDS}s")
    # It failed on the scale-out decision, not on the series' placement or a load error.
    scales_out = _alert("ScalesOut", boundary.trigger)
    assert f"alertname: {scales_out}" in raised.value.output, raised.value.output
    assert "NearAbove" not in raised.value.output, raised.value.output
    assert "NearBelow" not in raised.value.output, raised.value.output
