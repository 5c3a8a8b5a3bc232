"""The scaling signal path end to end, offline: a real Prometheus on 127.0.0.1 scrapes test exporters
that speak vLLM's and DCGM's exposition format, with the scrape jobs synthesized into the Prometheus
Helm values, and evaluates the exact query strings of the synthesized ScaledObject."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.conftest import Synthesized, helm_values, resources_of
from tests.prometheus_harness import MetricsExporter, PrometheusServer, running_prometheus, self_signed_tls

# What each test pod reports: (waiting requests, KV-cache use, output tokens/s, GPU utilisation %).
PODS = {"vllm-0": (7, 0.5, 300.0, 85.0), "vllm-1": (3, 0.7, 100.0, None)}
# TTFT observations per second and pod, cumulative by bucket: p95 lands at 1 + 1.5 * 0.5 = 1.75 s.
TTFT_BUCKETS_PER_SECOND = {"0.1": 0, "0.5": 5, "1.0": 9, "2.5": 10, "5.0": 10, "+Inf": 10}


def vllm_exposition(model: str, pod: str, started: float) -> Callable[[], str]:
    waiting, kv, tokens_per_s, _ = PODS[pod]

    def render() -> str:
        elapsed = time.monotonic() - started
        labels = f'engine="0",model_name="{model}"'
        lines = [
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{labels}}} {float(waiting)}",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{labels}}} {kv}",
            "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
            "# TYPE vllm:generation_tokens_total counter",
            f"vllm:generation_tokens_total{{{labels}}} {tokens_per_s * elapsed}",
            "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.",
            "# TYPE vllm:time_to_first_token_seconds histogram",
        ]
        for le, per_second in TTFT_BUCKETS_PER_SECOND.items():
            lines.append(f'vllm:time_to_first_token_seconds_bucket{{{labels},le="{le}"}} {per_second * elapsed}')
        lines += [
            f"vllm:time_to_first_token_seconds_count{{{labels}}} {10 * elapsed}",
            f"vllm:time_to_first_token_seconds_sum{{{labels}}} {12.0 * elapsed}",
        ]
        return "\n".join(lines) + "\n"

    return render


def dcgm_exposition() -> str:
    """Kubernetes mode: each GPU series carries the namespace and pod of the pod using that GPU."""
    lines = ["# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).", "# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]
    for gpu, (pod, (*_, util)) in enumerate(PODS.items()):
        if util is not None:
            lines.append(
                f'DCGM_FI_DEV_GPU_UTIL{{gpu="{gpu}",UUID="GPU-{gpu}",modelName="NVIDIA L4",'
                f'namespace="inference",pod="{pod}",container="vllm"}} {util}'
            )
    return "\n".join(lines) + "\n"


def as_static_job(job: dict[str, Any], targets: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """The synthesized job with Kubernetes discovery replaced by static targets that carry the same
    `__meta_kubernetes_*` labels discovery would set, so the job's own relabelling runs unchanged.
    Intervals drop to 1 s to keep the test short."""
    static = {k: v for k, v in job.items() if k != "kubernetes_sd_configs"}
    static.update(scrape_interval="1s", scrape_timeout="1s")
    static["static_configs"] = [{"targets": [target], "labels": labels} for target, labels in targets]
    return static


def meta(namespace: str, pod: str, app: str, port_name: str, port: str, instance: str = "") -> dict[str, str]:
    return {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
        "__meta_kubernetes_pod_label_app_kubernetes_io_instance": instance,
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_container_port_number": port,
    }


@pytest.fixture(scope="module")
def scaling_path(
    dev: Synthesized, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PrometheusServer, dict[str, str]]]:
    (chart,) = [
        r
        for r in resources_of(dev.stack_json("observability"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "prometheus"
    ]
    jobs = {
        name: {"job_name": name, **job}
        for name, job in helm_values(chart["Properties"]["Values"])["scrapeConfigs"].items()
        if job.get("enabled", True)
    }
    queries = {t["name"]: t["metadata"]["query"] for t in dev.one("ScaledObject", "vllm")["spec"]["triggers"]}
    model = dev.config.inference.vllm.served_model_name
    started = time.monotonic()
    with ExitStack() as stack:
        vllm = {pod: stack.enter_context(MetricsExporter(vllm_exposition(model, pod, started))) for pod in PODS}
        # The DCGM exporter serves HTTPS (the CloudWatch add-on's certificate, test_gpu_metrics.py).
        dcgm = stack.enter_context(
            MetricsExporter(dcgm_exposition, tls=self_signed_tls(tmp_path_factory.mktemp("dcgm-tls")))
        )
        scrape_configs = [
            as_static_job(
                jobs["vllm"],
                [(exporter.target, meta("inference", pod, "vllm", "http", "8000")) for pod, exporter in vllm.items()]
                # A pod of another app in the namespace: the job's relabelling must drop it.
                + [(dcgm.target, meta("inference", "other-0", "other", "http", "8000"))],
            ),
            as_static_job(
                jobs["dcgm-exporter"],
                [
                    (
                        dcgm.target,
                        meta(
                            "amazon-cloudwatch", "dcgm-exporter-x1", "dcgm-exporter", "metrics", "9400", "dcgm-exporter"
                        ),
                    )
                ],
            ),
        ]
        prometheus = stack.enter_context(running_prometheus(scrape_configs))
        # rate() over the 1m window needs two samples of every counter.
        prometheus.wait_for(queries["generation-tokens"], lambda r: bool(r) and float(r[0]["value"][1]) > 0, timeout=40)
        yield prometheus, queries


def _value(prometheus: PrometheusServer, query: str) -> float:
    result = prometheus.query(query)
    assert len(result) == 1, f"{query} returned {result}"
    return float(result[0]["value"][1])


def test_queue_depth_sums_both_pods(scaling_path: tuple[PrometheusServer, dict[str, str]]) -> None:
    prometheus, queries = scaling_path
    assert _value(prometheus, queries["queue-depth"]) == 10


def test_kv_cache_is_averaged_over_replicas(scaling_path: tuple[PrometheusServer, dict[str, str]]) -> None:
    prometheus, queries = scaling_path
    assert _value(prometheus, queries["kv-cache"]) == pytest.approx(0.6)


def test_generation_tokens_per_second(scaling_path: tuple[PrometheusServer, dict[str, str]]) -> None:
    """rate() divides the increase by the whole 1m window, so the figure is right once a minute of
    samples exists; this test waits for that (the slowest in the suite, about a minute)."""
    prometheus, queries = scaling_path
    result = prometheus.wait_for(
        queries["generation-tokens"], lambda r: bool(r) and abs(float(r[0]["value"][1]) - 400) < 20, timeout=120
    )
    assert float(result[0]["value"][1]) == pytest.approx(400, rel=0.05)


def test_ttft_p95_from_the_summed_histogram(scaling_path: tuple[PrometheusServer, dict[str, str]]) -> None:
    prometheus, queries = scaling_path
    assert _value(prometheus, queries["ttft-p95"]) == pytest.approx(1.75, abs=0.05)


def test_dcgm_series_keep_the_gpu_pods_labels(
    scaling_path: tuple[PrometheusServer, dict[str, str]], dev: Synthesized
) -> None:
    from k8s.autoscaling import MetricSelector, trigger_queries

    prometheus, _ = scaling_path
    selector = MetricSelector(namespace="inference", model_name="unused", pod_prefix="vllm")
    query = trigger_queries(selector)["gpu-utilization"]
    assert _value(prometheus, query) == 85
    assert prometheus.query('DCGM_FI_DEV_GPU_UTIL{exported_pod!=""}') == []


def test_relabelling_keeps_only_the_servers_pods(scaling_path: tuple[PrometheusServer, dict[str, str]]) -> None:
    prometheus, _ = scaling_path
    pods = {r["metric"]["pod"] for r in prometheus.query('up{job="vllm"}')}
    assert pods == set(PODS)
    names = {r["metric"]["__name__"] for r in prometheus.query('{__name__=~"vllm:.+"}')}
    assert "vllm:num_requests_waiting" in names
