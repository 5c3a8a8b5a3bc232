"""Every PromQL string in the synthesized ScaledObject, checked with promtool and unit-tested on
synthetic series: above its threshold each trigger asks for more replicas, below it does not."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Synthesized
from tests.prometheus_harness import PromQLError, RuleTestError, check_expressions, run_rule_tests

REPLICAS = 2  # the test fleet: two vLLM pods
PODS = ("vllm-0", "vllm-1")


def _triggers(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in synth.one("ScaledObject", "vllm")["spec"]["triggers"]}


def _scale_out_rule(trigger: dict[str, Any]) -> dict[str, Any]:
    """The HPA's decision for this trigger, in PromQL, around the trigger's exact query.

    AverageValue: the HPA divides the query's value by the replica count and compares it with the
    threshold; Value: it compares the value as is (Kubernetes HPA algorithm, external metrics).
    """
    query = trigger["metadata"]["query"]
    threshold = trigger["metadata"]["threshold"]
    if trigger["metricType"] == "AverageValue":
        expr = f"({query}) / {REPLICAS} > {threshold}"
    else:
        expr = f"({query}) > {threshold}"
    return {"alert": f"ScalesOut_{trigger['name'].replace('-', '_')}", "expr": expr}


def _series(model: str, *, high: bool) -> list[dict[str, str]]:
    """Two pods' worth of vLLM and DCGM series, all above or all below the default thresholds."""
    base = f'namespace="inference",model_name="{model}"'
    series: list[dict[str, str]] = []
    for pod in PODS:
        labels = f'{base},pod="{pod}"'
        series += [
            {"series": f"vllm:num_requests_waiting{{{labels}}}", "values": "8x20" if high else "2x20"},
            {"series": f"vllm:kv_cache_usage_perc{{{labels}}}", "values": "0.9x20" if high else "0.5x20"},
            # 15 s steps: 7500 tokens per step is 500 tok/s per pod; 1500 is 100 tok/s.
            {"series": f"vllm:generation_tokens_total{{{labels}}}", "values": "0+7500x20" if high else "0+1500x20"},
            {
                "series": f'DCGM_FI_DEV_GPU_UTIL{{namespace="inference",pod="{pod}"}}',
                "values": "95x20" if high else "50x20",
            },
        ]
        # Ten requests per step: slow ones land in (2.5, 5] s, fast ones under 0.5 s.
        buckets = (
            {"0.5": 0, "1.0": 0, "2.5": 1, "5.0": 10, "+Inf": 10}
            if high
            else {"0.5": 10, "1.0": 10, "2.5": 10, "5.0": 10, "+Inf": 10}
        )
        for le, step in buckets.items():
            series.append(
                {
                    "series": f'vllm:time_to_first_token_seconds_bucket{{{labels},le="{le}"}}',
                    "values": f"0+{step}x20",
                }
            )
    return series


def test_every_trigger_query_passes_promtool(each_env: Synthesized) -> None:
    triggers = _triggers(each_env)
    assert len(triggers) >= 4
    check_expressions({f"trigger:{name.replace('-', '_')}": t["metadata"]["query"] for name, t in triggers.items()})


def test_promtool_rejects_a_broken_query() -> None:
    with pytest.raises(PromQLError, match="broken"):
        check_expressions({"broken": "sum(rate(vllm:generation_tokens_total[1m])"})


def test_each_trigger_scales_above_its_threshold_and_not_below(synth_in: Any) -> None:
    synth = synth_in("dev", **{"inference.autoscaling.dcgm_gpu_utilization_trigger": "true"})
    triggers = _triggers(synth)
    assert set(triggers) == {"queue-depth", "kv-cache", "ttft-p95", "generation-tokens", "gpu-utilization"}
    rules = [_scale_out_rule(t) for t in triggers.values()]
    model = synth.config.inference.vllm.served_model_name
    alerts = [r["alert"] for r in rules]
    tests = [
        {
            "interval": "15s",
            "input_series": _series(model, high=True),
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": a, "exp_alerts": [{"exp_labels": {}}]} for a in alerts
            ],
        },
        {
            "interval": "15s",
            "input_series": _series(model, high=False),
            "alert_rule_test": [{"eval_time": "4m", "alertname": a, "exp_alerts": []} for a in alerts],
        },
    ]
    run_rule_tests(rules, tests)


def test_rule_test_fails_when_a_trigger_would_not_fire(dev: Synthesized) -> None:
    trigger = _triggers(dev)["queue-depth"]
    rule = _scale_out_rule(trigger)
    model = dev.config.inference.vllm.served_model_name
    low = {
        "interval": "15s",
        "input_series": _series(model, high=False),
        "alert_rule_test": [{"eval_time": "4m", "alertname": rule["alert"], "exp_alerts": [{"exp_labels": {}}]}],
    }
    with pytest.raises(RuleTestError):
        run_rule_tests([rule], [low])


def test_ttft_query_is_zero_without_traffic_not_nan(dev: Synthesized) -> None:
    query = _triggers(dev)["ttft-p95"]["metadata"]["query"]
    model = dev.config.inference.vllm.served_model_name
    labels = f'namespace="inference",model_name="{model}"'
    idle = [
        {
            "series": f'vllm:time_to_first_token_seconds_bucket{{{labels},le="{le}"}}',
            "values": "5x20",
        }
        for le in ("0.5", "+Inf")
    ]
    run_rule_tests(
        [{"record": "ttft:p95", "expr": query}],
        [
            {
                "interval": "15s",
                "input_series": idle,
                "promql_expr_test": [
                    {"expr": "ttft:p95", "eval_time": "4m", "exp_samples": [{"labels": "ttft:p95", "value": 0}]}
                ],
            }
        ],
    )
