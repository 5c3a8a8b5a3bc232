"""The PromQL harness works against the real promtool and prometheus, and fails when it should."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.prometheus_harness import (
    CLASSIC_TEXT_CONTENT_TYPE,
    ENSURE_SCRIPT,
    MetricsExporter,
    PrometheusServer,
    PrometheusStartError,
    PrometheusToolMissingError,
    PromQLError,
    RuleTestError,
    check_expressions,
    require_tool,
    run_rule_tests,
    running_prometheus,
)

WAITING = "vllm:num_requests_waiting"
TOKENS_RATE = "sum by (pod) (rate(vllm:generation_tokens_total[1m]))"


# --- promtool check rules ---


def test_check_expressions_accepts_valid_promql_with_colon_names() -> None:
    check_expressions({"pod:vllm_generation_tokens:rate1m": TOKENS_RATE, "queue_depth": WAITING})


def test_check_expressions_rejects_invalid_promql_naming_it() -> None:
    with pytest.raises(PromQLError) as excinfo:
        check_expressions({"good_one": TOKENS_RATE, "broken_rate": "sum(rate(x[5m])"})
    message = str(excinfo.value)
    assert "broken_rate: sum(rate(x[5m])" in message
    assert "unclosed left parenthesis" in message
    assert "good_one" not in message
    assert "broken_rate" in excinfo.value.output


def test_check_expressions_names_every_invalid_expression() -> None:
    with pytest.raises(PromQLError) as excinfo:
        check_expressions({"first_bad": "foo{", "fine": "up", "second_bad": "rate(x[5m]"})
    message = str(excinfo.value)
    assert "first_bad: foo{" in message
    assert "second_bad: rate(x[5m]" in message
    assert "fine:" not in message


def test_check_expressions_wants_metric_name_keys() -> None:
    with pytest.raises(ValueError, match="valid metric names"):
        check_expressions({"not a name": "up"})


# --- promtool test rules ---

RULES: list[dict[str, Any]] = [
    {"record": "pod:vllm_generation_tokens:rate1m", "expr": TOKENS_RATE},
    {
        "alert": "VllmQueueBacklog",
        "expr": f"max by (pod) ({WAITING}) > 5",
        "for": "1m",
        "labels": {"severity": "warning"},
    },
]


def rule_test(expected_rate: float, alert_expected: bool = True) -> dict[str, Any]:
    """150 tokens every 15 s (10/s) and a queue of 7 on pod a; the alert fires after 1m."""
    return {
        "interval": "15s",
        "input_series": [
            {"series": 'vllm:generation_tokens_total{pod="a"}', "values": "0+150x20"},
            {"series": f'{WAITING}{{pod="a"}}', "values": "7x20"},
        ],
        "promql_expr_test": [
            {
                "expr": "pod:vllm_generation_tokens:rate1m",
                "eval_time": "2m",
                "exp_samples": [{"labels": 'pod:vllm_generation_tokens:rate1m{pod="a"}', "value": expected_rate}],
            }
        ],
        "alert_rule_test": [
            {
                "alertname": "VllmQueueBacklog",
                "eval_time": "3m",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "pod": "a"}}] if alert_expected else [],
            }
        ],
    }


def test_run_rule_tests_passes_on_correct_expectations() -> None:
    run_rule_tests(RULES, [rule_test(expected_rate=10)])


def test_run_rule_tests_raises_on_wrong_expected_value() -> None:
    with pytest.raises(RuleTestError) as excinfo:
        run_rule_tests(RULES, [rule_test(expected_rate=11)])
    assert "pod:vllm_generation_tokens:rate1m" in excinfo.value.output
    assert "exp:" in str(excinfo.value)
    assert "got:" in str(excinfo.value)


def test_run_rule_tests_raises_on_wrong_alert_expectation() -> None:
    with pytest.raises(RuleTestError, match="VllmQueueBacklog"):
        run_rule_tests(RULES, [rule_test(expected_rate=10, alert_expected=False)])


def test_run_rule_tests_raises_on_invalid_rule() -> None:
    with pytest.raises(RuleTestError, match="unclosed left parenthesis"):
        run_rule_tests([{"record": "broken", "expr": "sum(rate(x[5m])"}], [rule_test(expected_rate=10)])


# --- missing tools ---


def test_missing_tools_name_the_ensure_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PrometheusToolMissingError, match=ENSURE_SCRIPT):
        require_tool("promtool")
    with pytest.raises(PrometheusToolMissingError, match="`promtool` is not on PATH"):
        check_expressions({"x": "up"})
    with pytest.raises(PrometheusToolMissingError, match="`prometheus` is not on PATH"), running_prometheus([]):
        pass


# --- the exporter alone ---


def test_exporter_serves_classic_text_whatever_the_accept_header() -> None:
    with MetricsExporter(lambda: f'{WAITING}{{model_name="m"}} 3') as exporter:
        request = urllib.request.Request(
            exporter.url, headers={"Accept": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=5) as response:
            assert response.headers["Content-Type"] == CLASSIC_TEXT_CONTENT_TYPE
            assert response.read().decode() == f'{WAITING}{{model_name="m"}} 3\n'
        assert exporter.scrape_count == 1
        assert exporter.accept_headers[0].startswith("application/openmetrics-text")


# --- a real prometheus scraping the exporter ---


@dataclass
class Scraped:
    prometheus: PrometheusServer
    exporter: MetricsExporter
    values: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """One prometheus for the module: its first scrape takes ~5 s after startup."""
    values = {"waiting": 7.0}
    rules = tmp_path_factory.mktemp("rules") / "rules.yml"
    rules.write_text(
        json.dumps(
            {
                "groups": [
                    {
                        "name": "g",
                        "rules": [{"record": "model:vllm_waiting:sum", "expr": f"sum by (model_name) ({WAITING})"}],
                    }
                ]
            }
        )
    )
    with MetricsExporter(
        lambda: f'# TYPE {WAITING} gauge\n{WAITING}{{model_name="m"}} {values["waiting"]:g}\n'
    ) as exporter:
        scrape_config = {
            "job_name": "vllm",
            "metrics_path": "/metrics",
            "honor_labels": True,
            "static_configs": [{"targets": [exporter.target], "labels": {"namespace": "inference"}}],
        }
        with running_prometheus([scrape_config], rule_files=[rules]) as prometheus:
            prometheus.wait_for_targets(timeout=20)
            yield Scraped(prometheus, exporter, values)


def single_value(result: list[dict[str, Any]]) -> float | None:
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_prometheus_scrapes_colon_metric_name_intact(scraped: Scraped) -> None:
    scraped.values["waiting"] = 7
    result = scraped.prometheus.wait_for(WAITING, lambda r: single_value(r) == 7, timeout=10)
    labels = result[0]["metric"]
    assert labels["__name__"] == WAITING
    assert labels["model_name"] == "m"
    assert labels["job"] == "vllm"
    assert labels["namespace"] == "inference"
    assert scraped.prometheus.query("vllm_num_requests_waiting") == []
    # Prometheus asked for OpenMetrics first and still got (and parsed) the classic format.
    assert scraped.exporter.accept_headers[0].startswith("application/openmetrics-text")


def test_prometheus_sees_changed_value_on_a_later_scrape(scraped: Scraped) -> None:
    scraped.values["waiting"] = 7
    scraped.prometheus.wait_for(WAITING, lambda r: single_value(r) == 7, timeout=10)
    scraped.values["waiting"] = 12
    scraped.prometheus.wait_for(WAITING, lambda r: single_value(r) == 12, timeout=10)


def test_prometheus_evaluates_rule_files(scraped: Scraped) -> None:
    scraped.values["waiting"] = 4
    result = scraped.prometheus.wait_for("model:vllm_waiting:sum", lambda r: single_value(r) == 4, timeout=10)
    assert result[0]["metric"] == {"__name__": "model:vllm_waiting:sum", "model_name": "m"}


def test_prometheus_query_rejects_invalid_promql(scraped: Scraped) -> None:
    with pytest.raises(PromQLError, match="parse error"):
        scraped.prometheus.query("sum(rate(x[5m])")


def test_prometheus_start_error_shows_its_log() -> None:
    with (
        pytest.raises(PrometheusStartError, match="exited with code") as excinfo,
        running_prometheus([{"job_name": "no-targets", "scrape_interval": "not-a-duration"}]),
    ):
        pass
    assert "not-a-duration" in str(excinfo.value)


def test_wait_for_times_out_with_context(scraped: Scraped) -> None:
    with pytest.raises(TimeoutError, match="vllm_never_there") as excinfo:
        scraped.prometheus.wait_for("vllm_never_there", bool, timeout=0.5)
    assert "health" in str(excinfo.value)
