"""The scaling timeline the load test records with --watch-scaling: the chain breach -> HPA desired up -> new pod
Ready -> first token on that pod, measured from samples (ops/scaling_watch.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.config import new_client_from_config

from ops.errors import OpsError
from ops.live import UrlEndpoint
from ops.scaling_watch import (
    LoadPoint,
    Sample,
    ScalingWatcher,
    Trigger,
    plot_scaling,
    prometheus_via,
    scaling_times,
)
from tests.fake_kube_api import FakeKubeApi
from tests.openai_stub import OpenAIStub
from tests.stub_http import StubHttp, StubRequest

SCRIPT = Path(sys.executable).parent / "genai-ops"
QUEUE = Trigger("queue", 'sum(vllm:num_requests_waiting{namespace="inference"}) / count(up{job="vllm"})', 5.0)


def _sample(
    at: float, queue: float, desired: int, ready: list[str], first_tokens: dict[str, float] | None = None
) -> Sample:
    return Sample(
        at=at,
        vllm_replicas=desired,
        vllm_ready=len(ready),
        gateway_replicas=2,
        hpa_desired=desired,
        hpa_current=len(ready),
        nodes={"gpu/on-demand": len(ready)},
        trigger_values={"queue": queue},
        ready_pods=ready,
        first_tokens_by_pod=first_tokens or {},
    )


def test_the_chain_is_measured_from_the_breach() -> None:
    samples = [
        _sample(100.0, 4.0, 1, ["vllm-a"]),
        _sample(105.0, 5.0, 1, ["vllm-a"]),  # at the threshold, not above it: no breach yet
        _sample(110.0, 5.5, 1, ["vllm-a"]),  # breach
        _sample(125.0, 7.0, 2, ["vllm-a"]),  # HPA wants 2
        _sample(200.0, 8.0, 2, ["vllm-a", "vllm-b"], {"vllm-a": 40.0}),  # vllm-b Ready
        _sample(205.0, 3.0, 2, ["vllm-a", "vllm-b"], {"vllm-a": 41.0, "vllm-b": 0.0}),
        _sample(210.0, 2.0, 2, ["vllm-a", "vllm-b"], {"vllm-a": 42.0, "vllm-b": 3.0}),  # its first tokens
    ]
    times = scaling_times(samples, [QUEUE])
    assert times.breach_at == 110.0
    assert times.desired_after_s == 15.0
    assert times.ready_after_s == 90.0
    assert times.new_pod == "vllm-b"
    assert times.first_token_after_s == 100.0


@pytest.mark.parametrize(
    ("metric_type", "total", "replicas", "breached"),
    [
        # AverageValue (KEDA's default, the queue and tokens triggers): the HPA compares total / replicas.
        ("AverageValue", 10.2, 2, True),  # 5.1 per replica
        ("AverageValue", 9.8, 2, False),  # 4.9 per replica, although the total is far above 5
        ("AverageValue", 5.1, 1, True),
        ("AverageValue", 4.9, 1, False),
        # Value (the KV cache and TTFT triggers): compared as it is, whatever the replicas.
        ("Value", 5.1, 2, True),
        ("Value", 4.9, 2, False),
    ],
)
def test_a_breach_is_what_the_hpa_compares(metric_type: str, total: float, replicas: int, breached: bool) -> None:
    trigger = Trigger("queue", QUEUE.query, 5.0, metric_type)
    assert trigger.breached(total, replicas) is breached
    pods = [f"vllm-{i}" for i in range(replicas)]
    times = scaling_times([_sample(100.0, total, replicas, pods)], [trigger])
    assert (times.breach_at == 100.0) is breached


def test_a_failed_sample_is_kept_and_skipped() -> None:
    failed = Sample(105.0, 0, 0, None, None, None, {}, {}, [], {}, error="HTTP 503")
    samples = [_sample(100.0, 4.0, 1, ["vllm-a"]), failed, _sample(110.0, 6.0, 1, ["vllm-a"])]
    assert scaling_times(samples, [QUEUE]).breach_at == 110.0


def test_no_breach_no_chain() -> None:
    samples = [_sample(100.0 + i, 4.99, 1, ["vllm-a"]) for i in range(5)]
    times = scaling_times(samples, [QUEUE])
    assert times.breach_at is None
    assert times.desired_after_s is None
    assert times.notes == ["no trigger went above its threshold while watching"]


def test_a_pod_ready_before_the_breach_is_not_a_new_one() -> None:
    samples = [
        _sample(100.0, 1.0, 2, ["vllm-a", "vllm-b"]),
        _sample(110.0, 12.0, 2, ["vllm-a", "vllm-b"], {"vllm-b": 5.0}),  # 6 per replica
        _sample(120.0, 12.0, 2, ["vllm-a", "vllm-b"], {"vllm-b": 9.0}),
    ]
    times = scaling_times(samples, [QUEUE])
    assert times.breach_at == 110.0
    assert times.ready_after_s is None
    assert times.first_token_after_s is None


# --- the watcher against the real kubernetes client, a fake API server and a Prometheus stub ----------------------

NS = "inference"
QUERY = 'sum(vllm:num_requests_waiting{namespace="inference"})'


def _deployment(replicas: int, ready: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vllm", "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "vllm"}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": "vllm"}}, "spec": {"containers": []}},
        },
        "status": {"replicas": replicas, "readyReplicas": ready},
    }


def _pod(name: str, ready: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/name": "vllm"}},
        "spec": {"containers": [{"name": "vllm", "image": "vllm"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def _hpa(desired: int, current: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-vllm", "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "vllm"},
            "minReplicas": 1,
            "maxReplicas": 4,
        },
        "status": {"desiredReplicas": desired, "currentReplicas": current},
    }


def _node(name: str, pool: str, capacity: str) -> dict[str, Any]:
    labels = {"karpenter.sh/nodepool": pool, "karpenter.sh/capacity-type": capacity}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {}}


SCALED_OBJECT = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "vllm", "namespace": NS},
    "spec": {
        "scaleTargetRef": {"name": "vllm"},
        "triggers": [
            {"type": "prometheus", "name": "queue", "metadata": {"query": QUERY, "threshold": "5"}},
            {"type": "cpu", "metadata": {"value": "80"}},
        ],
    },
    "status": {"hpaName": "keda-hpa-vllm"},
}


def test_the_watcher_reads_the_cluster_and_prometheus_as_it_runs(tmp_path: Path) -> None:
    state = {"queue": 2.0, "first_tokens": {"vllm-a": 10.0}}

    def query(request: StubRequest) -> tuple[int, Any]:
        expr = request.query["query"]
        if expr == QUERY:
            result = [{"metric": {}, "value": [0, str(state["queue"])]}]
        else:
            assert expr == 'sum by (pod) (vllm:time_to_first_token_seconds_count{namespace="inference"})', expr
            tokens = state["first_tokens"]
            assert isinstance(tokens, dict)
            result = [{"metric": {"pod": pod}, "value": [0, str(v)]} for pod, v in tokens.items()]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

    objects = [
        SCALED_OBJECT,
        _deployment(1, 1),
        _pod("vllm-a", True),
        _hpa(1, 1),
        _node("n1", "gpu", "on-demand"),
        _node("n2", "system", "on-demand"),
    ]
    clock = iter(float(t) for t in range(100, 200, 10))
    with FakeKubeApi(objects) as fake, StubHttp({("GET", "/api/v1/query"): query}) as prometheus:
        api = new_client_from_config(str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
        watcher = ScalingWatcher(
            apps=client.AppsV1Api(api),
            core=client.CoreV1Api(api),
            autoscaling=client.AutoscalingV2Api(api),
            custom=client.CustomObjectsApi(api),
            prometheus=prometheus_via(UrlEndpoint(prometheus.url, timeout=5.0, option="--prometheus-url")),
            namespace=NS,
            deployment="vllm",
            scaled_object="vllm",
            clock=lambda: next(clock),
        )
        # Only the Prometheus trigger, with the ScaledObject's own query and threshold; the HPA KEDA named.
        assert [(t.name, t.query, t.threshold, t.metric_type) for t in watcher.triggers] == [
            ("queue", QUERY, 5.0, "AverageValue")
        ]
        assert watcher.hpa_name == "keda-hpa-vllm"
        first = watcher.sample()  # t=100: calm
        assert first.nodes == {"gpu/on-demand": 1, "system/on-demand": 1}
        assert first.trigger_values == {"queue": 2.0}
        state["queue"] = 12.0
        watcher.sample()  # t=110: breach
        fake.add(_hpa(2, 1), _deployment(2, 1), _pod("vllm-b", False), _node("n3", "gpu", "spot"))
        watcher.sample()  # t=120: desired 2, new pod not Ready
        fake.add(_pod("vllm-b", True), _deployment(2, 2))
        watcher.sample()  # t=130: Ready
        state["first_tokens"] = {"vllm-a": 30.0, "vllm-b": 2.0}
        last = watcher.sample()  # t=140: its first tokens
        assert last.nodes == {"gpu/on-demand": 1, "gpu/spot": 1, "system/on-demand": 1}
        assert last.ready_pods == ["vllm-a", "vllm-b"]
        assert fake.writes() == []
    times = watcher.times()
    assert times.breach_at == 110.0
    assert (times.desired_after_s, times.ready_after_s, times.first_token_after_s) == (10.0, 20.0, 30.0)
    assert times.new_pod == "vllm-b"


def test_a_scaled_object_without_a_prometheus_trigger_is_one_clear_error(tmp_path: Path) -> None:
    cpu_only = {**SCALED_OBJECT, "spec": {"scaleTargetRef": {"name": "vllm"}, "triggers": [{"type": "cpu"}]}}
    with FakeKubeApi([cpu_only]) as fake:
        api = new_client_from_config(str(fake.write_kubeconfig(tmp_path / "kubeconfig")))
        with pytest.raises(OpsError, match="has no Prometheus trigger"):
            ScalingWatcher(
                apps=client.AppsV1Api(api),
                core=client.CoreV1Api(api),
                autoscaling=client.AutoscalingV2Api(api),
                custom=client.CustomObjectsApi(api),
                prometheus=prometheus_via(UrlEndpoint("http://127.0.0.1:9", timeout=1.0, option="--prometheus-url")),
                namespace=NS,
                deployment="vllm",
                scaled_object="vllm",
            )


def test_the_plot_is_written(tmp_path: Path) -> None:
    samples = [
        _sample(100.0, 2.0, 1, ["vllm-a"]),
        _sample(110.0, 8.0, 2, ["vllm-a"]),
        _sample(130.0, 3.0, 2, ["vllm-a", "vllm-b"], {"vllm-b": 1.0}),
    ]
    load = [LoadPoint(100.0 + i, 10.0 + i, 120.0) for i in range(30)]
    path = tmp_path / "scaling.png"
    plot_scaling(samples, load, scaling_times(samples, [QUEUE]), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loadtest_watch_scaling_records_the_chain_through_the_service_proxy(tmp_path: Path) -> None:
    """The console script with --watch-scaling: the fake cluster scales while the stub serves the load; Prometheus
    is reached through the API server's service proxy (observability/prometheus-server:80), as by default."""
    state: dict[str, Any] = {"queue": 12.0, "first_tokens": {"vllm-a": 10.0}}

    def query(request: StubRequest) -> tuple[int, Any]:
        expr = request.query["query"]
        if expr == QUERY:
            result = [{"metric": {}, "value": [0, str(state["queue"])]}]
        else:
            result = [{"metric": {"pod": p}, "value": [0, str(v)]} for p, v in state["first_tokens"].items()]
        return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}

    prometheus_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "prometheus-server", "namespace": "observability"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 9090}]},
    }
    objects = [SCALED_OBJECT, _deployment(1, 1), _pod("vllm-a", True), _hpa(1, 1), _node("n1", "gpu", "spot")]
    out = tmp_path / "results"
    with (
        FakeKubeApi([*objects, prometheus_service]) as fake,
        StubHttp({("GET", "/api/v1/query"): query}) as prometheus,
        OpenAIStub(ttft_s=0.01, itl_s=0.002) as stub,
    ):
        fake.proxy_service("observability", "prometheus-server", prometheus.url)
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")

        def scale_up() -> None:
            time.sleep(1.2)
            fake.add(_hpa(2, 1), _deployment(2, 1), _pod("vllm-b", False))
            time.sleep(1.2)
            fake.add(_pod("vllm-b", True), _deployment(2, 2))
            time.sleep(1.2)
            state["first_tokens"] = {"vllm-a": 30.0, "vllm-b": 1.0}

        scaler = threading.Thread(target=scale_up)
        scaler.start()
        args = ["loadtest", "--url", stub.base_url, "--model", "stub-model", "--rate", "20", "--duration", "5"]
        args += ["--output-tokens", "2", "--out", str(out), "--watch-scaling", "--kubeconfig", str(kubeconfig)]
        args += ["--watch-interval", "1"]
        result = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)
        scaler.join()
        assert fake.writes() == []
    assert result.returncode == 0, result.stderr
    assert "scaling: after the breach, HPA desired up +" in result.stdout
    document = json.loads((out / "results.json").read_text())
    scaling = document["extras"]["scaling"]
    assert scaling["hpa"] == "keda-hpa-vllm"
    assert scaling["triggers"] == [{"name": "queue", "query": QUERY, "threshold": 5.0, "metric_type": "AverageValue"}]
    times = scaling["times"]
    assert times["new_pod"] == "vllm-b"
    # Sampled every second: each step lands within a couple of samples of when the fake cluster took it.
    assert 0.5 <= times["desired_after_s"] <= 3.5
    assert times["desired_after_s"] <= times["ready_after_s"] <= times["first_token_after_s"] <= 6.5
    assert len(scaling["timeline"]) >= 5
    assert {"requests_per_s", "ttft_p50_ms", "wall_time"} <= set(scaling["load"][0])
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert document["files"]["scaling_plot"].endswith("scaling.png")


def test_watch_options_without_watch_scaling_are_refused() -> None:
    args = ["loadtest", "--url", "http://127.0.0.1:9/v1", "--model", "m", "--rate", "1", "--prometheus-url", "x"]
    result = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "apply to --watch-scaling only" in result.stderr


class _FlakyWatcher:
    """Stands in for ScalingWatcher: its samples fail as scripted (an API server or Prometheus hiccup)."""

    def __init__(self, fails: set[int]) -> None:
        self.triggers = [QUEUE]
        self.samples: list[Sample] = []
        self.fails = fails
        self.calls = 0

    def sample(self) -> Sample:
        self.calls += 1
        if self.calls in self.fails:
            raise OpsError("Prometheus answered HTTP 503")
        sample = _sample(float(self.calls), 1.0, 1, ["vllm-a"])
        self.samples.append(sample)
        return sample

    def record_failure(self, reason: str) -> None:
        self.samples.append(Sample(float(self.calls), 0, 0, None, None, None, {}, {}, [], {}, error=reason))


def test_a_failed_sample_does_not_end_the_load_test_but_a_run_of_them_does() -> None:
    import asyncio

    from ops.scaling_watch import MAX_FAILED_SAMPLES, ScalingObserver

    flaky = _FlakyWatcher(fails={2, 3})
    observer = ScalingObserver(cast(Any, flaky), interval_s=1.0)
    for _ in range(5):
        asyncio.run(observer._sample())
    assert [s.error for s in flaky.samples] == [
        None,
        "Prometheus answered HTTP 503",
        "Prometheus answered HTTP 503",
        None,
        None,
    ]

    broken = _FlakyWatcher(fails=set(range(1, 100)))
    observer = ScalingObserver(cast(Any, broken), interval_s=1.0)
    for _ in range(MAX_FAILED_SAMPLES - 1):
        asyncio.run(observer._sample())
    with pytest.raises(OpsError, match=f"the last {MAX_FAILED_SAMPLES} samples of the cluster failed"):
        asyncio.run(observer._sample())
