"""What the autoscaler does while a load test runs: a timeline of replicas, HPA, nodes and vLLM's signals, and
the measured times from a threshold breach to the first token served by a replica that scaling added.

Everything is read from the cluster as it runs, not from this repository: the ScaledObject's own trigger queries
and thresholds (so "breach" means what KEDA means), the HPA KEDA made for it (`status.hpaName`), the Deployments'
replica counts, the nodes' NodePool and capacity-type labels (`karpenter.sh/nodepool`, `karpenter.sh/capacity-type`,
which Auto Mode sets as Karpenter does), and per-pod vLLM series from Prometheus.

The chain of times (each measured from the breach, at the sampling period's resolution):
1. breach: the first sample where a trigger's query returns more than its threshold (KEDA polls on its own
   interval and the HPA adds its 10% tolerance, so the reaction starts later still);
2. desired: the HPA's desired replicas rise above what they were before the breach;
3. ready: a vLLM pod that did not exist before the breach is Ready;
4. first token: Prometheus counts a first token (`vllm:time_to_first_token_seconds_count`) on that pod.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ops.errors import OpsError

NODE_POOL_LABEL = "karpenter.sh/nodepool"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
KEDA_GROUP, KEDA_VERSION = "keda.sh", "v1alpha1"
# Consecutive failed samples after which --watch-scaling gives up (and the load test with it).
MAX_FAILED_SAMPLES = 5
# Seconds a Kubernetes read may take before the sample fails (the default would wait for ever).
KUBE_TIMEOUT_S = 10.0
FIRST_TOKENS = "vllm:time_to_first_token_seconds_count"


class PrometheusQuery(Protocol):
    def __call__(self, expr: str) -> list[tuple[dict[str, str], float]]: ...


@dataclass(frozen=True)
class Trigger:
    name: str
    query: str
    threshold: float
    # KEDA's trigger `metricType`: AverageValue (its default) is compared per replica, Value as it is.
    metric_type: str = "AverageValue"

    def breached(self, value: float, replicas: int) -> bool:
        """Whether the HPA would see this value above the threshold: an AverageValue metric is divided by the
        current replicas (Kubernetes HPA algorithm; KEDA ScaledObject spec, triggers `metricType`)."""
        if math.isnan(value):
            return False
        per = value / max(replicas, 1) if self.metric_type == "AverageValue" else value
        return per > self.threshold


@dataclass
class Sample:
    at: float
    vllm_replicas: int
    vllm_ready: int
    gateway_replicas: int | None
    hpa_desired: int | None
    hpa_current: int | None
    nodes: dict[str, int]  # "<nodepool>/<capacity type>" -> count
    trigger_values: dict[str, float]
    ready_pods: list[str]
    first_tokens_by_pod: dict[str, float]
    error: str | None = None  # a sample that could not be read: why (the run goes on)


@dataclass
class ScalingTimes:
    """Seconds after the breach (None: did not happen while watching)."""

    breach_at: float | None = None
    desired_after_s: float | None = None
    ready_after_s: float | None = None
    first_token_after_s: float | None = None
    new_pod: str | None = None
    notes: list[str] = field(default_factory=list)


class ScalingWatcher:
    """Samples the scaling path; call `sample()` every few seconds while the load runs, then `times()`."""

    def __init__(
        self,
        *,
        apps: Any,
        core: Any,
        autoscaling: Any,
        custom: Any,
        prometheus: PrometheusQuery,
        namespace: str,
        deployment: str,
        scaled_object: str,
        gateway_namespace: str | None = None,
        gateway_deployment: str | None = None,
        clock: Any = time.time,
    ) -> None:
        self._apps, self._core, self._autoscaling, self._custom = apps, core, autoscaling, custom
        self._prometheus = prometheus
        self._namespace, self._deployment, self._scaled_object = namespace, deployment, scaled_object
        self._gateway = (gateway_namespace, gateway_deployment) if gateway_namespace and gateway_deployment else None
        self._clock = clock
        self.samples: list[Sample] = []
        self.triggers, self.hpa_name = self._read_scaled_object()

    def _read_scaled_object(self) -> tuple[list[Trigger], str | None]:
        obj = self._custom.get_namespaced_custom_object(
            KEDA_GROUP,
            KEDA_VERSION,
            self._namespace,
            "scaledobjects",
            self._scaled_object,
            _request_timeout=KUBE_TIMEOUT_S,
        )
        triggers = []
        for index, trigger in enumerate(obj["spec"].get("triggers", [])):
            metadata = trigger.get("metadata", {})
            if trigger.get("type") == "prometheus" and "query" in metadata and "threshold" in metadata:
                name = trigger.get("name") or metadata.get("metricName") or f"trigger-{index}"
                metric_type = trigger.get("metricType", "AverageValue")
                triggers.append(Trigger(name, metadata["query"], float(metadata["threshold"]), metric_type))
        if not triggers:
            raise OpsError(
                f"ScaledObject {self._namespace}/{self._scaled_object} has no Prometheus trigger with a query and "
                "threshold: nothing to measure a breach against"
            )
        # KEDA names the HPA in its status; until it has, its spec's name or KEDA's default keda-hpa-<name>.
        hpa = (
            obj.get("status", {}).get("hpaName")
            or obj["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("name")
            or f"keda-hpa-{self._scaled_object}"
        )
        return triggers, hpa

    def sample(self) -> Sample:
        at = self._clock()
        timeout = {"_request_timeout": KUBE_TIMEOUT_S}
        deployment = self._apps.read_namespaced_deployment(self._deployment, self._namespace, **timeout)
        gateway_replicas = None
        if self._gateway:
            namespace, name = self._gateway
            gateway = _absent_as_none(lambda: self._apps.read_namespaced_deployment(name, namespace, **timeout))
            gateway_replicas = None if gateway is None else gateway.status.ready_replicas or 0
        desired = current = None
        if self.hpa_name:
            hpa = self._autoscaling.read_namespaced_horizontal_pod_autoscaler(self.hpa_name, self._namespace, **timeout)
            desired, current = hpa.status.desired_replicas, hpa.status.current_replicas
        selector = ",".join(f"{k}={v}" for k, v in (deployment.spec.selector.match_labels or {}).items())
        pods = self._core.list_namespaced_pod(self._namespace, label_selector=selector, **timeout).items
        ready = sorted(
            pod.metadata.name
            for pod in pods
            if any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        )
        nodes = Counter(_pool_and_capacity(n.metadata.labels or {}) for n in self._core.list_node(**timeout).items)
        values = {}
        for trigger in self.triggers:
            result = self._prometheus(trigger.query)
            values[trigger.name] = result[0][1] if result else math.nan
        first_tokens = {
            labels.get("pod", "?"): value
            for labels, value in self._prometheus(f'sum by (pod) ({FIRST_TOKENS}{{namespace="{self._namespace}"}})')
        }
        sample = Sample(
            at=at,
            vllm_replicas=deployment.spec.replicas or 0,
            vllm_ready=deployment.status.ready_replicas or 0,
            gateway_replicas=gateway_replicas,
            hpa_desired=desired,
            hpa_current=current,
            nodes=dict(nodes),
            trigger_values=values,
            ready_pods=ready,
            first_tokens_by_pod=first_tokens,
        )
        self.samples.append(sample)
        return sample

    def record_failure(self, reason: str) -> None:
        """A sample that could not be taken, kept in the timeline with its reason."""
        self.samples.append(Sample(self._clock(), 0, 0, None, None, None, {}, {}, [], {}, error=reason))

    def times(self) -> ScalingTimes:
        return scaling_times(self.samples, self.triggers)

    def timeline(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.samples]


def _absent_as_none(read: Any) -> Any:
    """The object, or None when the API answers 404 (the gateway is optional)."""
    from kubernetes.client.exceptions import ApiException

    try:
        return read()
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def _pool_and_capacity(labels: dict[str, str]) -> str:
    return f"{labels.get(NODE_POOL_LABEL, '?')}/{labels.get(CAPACITY_TYPE_LABEL, '?')}"


def scaling_times(samples: list[Sample], triggers: list[Trigger]) -> ScalingTimes:
    """The chain breach -> HPA desired up -> new pod Ready -> its first token, from a timeline."""
    times = ScalingTimes()
    by_name = {t.name: t for t in triggers}

    def breached(sample: Sample) -> bool:
        replicas = sample.hpa_current if sample.hpa_current is not None else sample.vllm_ready
        return any(
            by_name[name].breached(value, replicas) for name, value in sample.trigger_values.items() if name in by_name
        )

    samples = [s for s in samples if s.error is None]
    breach = next((i for i, s in enumerate(samples) if breached(s)), None)
    if breach is None:
        times.notes.append("no trigger went above its threshold while watching")
        return times
    start = samples[breach]
    times.breach_at = start.at
    before_pods = set(samples[max(breach - 1, 0)].ready_pods) | set(start.ready_pods)
    before_desired = start.hpa_desired
    for sample in samples[breach:]:
        if (
            times.desired_after_s is None
            and sample.hpa_desired is not None
            and before_desired is not None
            and sample.hpa_desired > before_desired
        ):
            times.desired_after_s = sample.at - start.at
        new = [pod for pod in sample.ready_pods if pod not in before_pods]
        if times.ready_after_s is None and new:
            times.ready_after_s = sample.at - start.at
            times.new_pod = new[0]
        if times.new_pod and times.first_token_after_s is None and sample.first_tokens_by_pod.get(times.new_pod, 0) > 0:
            times.first_token_after_s = sample.at - start.at
    if before_desired is None:
        times.notes.append("the ScaledObject names no HPA yet: desired replicas were not read")
    return times


@dataclass
class LoadPoint:
    """The load generator's view at one tick, on the wall clock the samples use."""

    wall_time: float
    requests_per_s: float
    ttft_p50_ms: float | None


class ScalingObserver:
    """A load-test observer (ops.loadtest.runner.RunObserver) that samples the scaling path on every tick and
    adds the timeline, the measured times and a plot to the results (`extras["scaling"]`, `scaling.png`)."""

    def __init__(self, watcher: ScalingWatcher, *, interval_s: float, plot_path: Any | None = None) -> None:
        self.interval_s = interval_s
        self._watcher = watcher
        self._plot_path = plot_path
        self._load: list[LoadPoint] = []
        self._previous: tuple[float, int] | None = None
        self._failed_in_a_row = 0

    async def on_start(self, info: Any) -> None:
        await self._sample()

    async def _sample(self) -> None:
        """One sample; a failure (an API server or Prometheus hiccup, a timeout) is recorded and the load goes on,
        unless every one of the last MAX_FAILED_SAMPLES failed."""
        import asyncio

        try:
            await asyncio.to_thread(self._watcher.sample)
            self._failed_in_a_row = 0
        except Exception as error:
            self._failed_in_a_row += 1
            self._watcher.record_failure(str(error))
            if self._failed_in_a_row >= MAX_FAILED_SAMPLES:
                raise OpsError(
                    f"--watch-scaling: the last {MAX_FAILED_SAMPLES} samples of the cluster failed (last: {error})"
                ) from error

    async def on_tick(self, snapshot: Any) -> None:

        done = snapshot.succeeded + snapshot.failed
        rate = 0.0
        if self._previous is not None and snapshot.elapsed_s > self._previous[0]:
            rate = (done - self._previous[1]) / (snapshot.elapsed_s - self._previous[0])
        self._previous = (snapshot.elapsed_s, done)
        self._load.append(LoadPoint(snapshot.wall_time, rate, snapshot.recent_ttft_p50_ms))
        await self._sample()

    async def on_finish(self, result: Any) -> None:
        times = self._watcher.times()
        result.extras["scaling"] = {
            "triggers": [asdict(t) for t in self._watcher.triggers],
            "hpa": self._watcher.hpa_name,
            "times": asdict(times),
            "timeline": self._watcher.timeline(),
            "load": [asdict(point) for point in self._load],
        }
        if self._plot_path is not None:
            plot_scaling(self._watcher.samples, self._load, times, self._plot_path)
            result.files["scaling_plot"] = Path(self._plot_path).name


def plot_scaling(samples: list[Sample], load: list[LoadPoint], times: ScalingTimes, path: Any) -> None:
    """One time axis: completed requests per second, vLLM replicas (desired and Ready) and nodes, and TTFT p50,
    with the breach and each step of the chain marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = samples[0].at if samples else (load[0].wall_time if load else 0.0)
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    top.plot([p.wall_time - origin for p in load], [p.requests_per_s for p in load], label="completed req/s")
    top.set_ylabel("req/s")
    top.legend(loc="upper left")
    xs = [s.at - origin for s in samples]
    middle.step(xs, [s.hpa_desired or 0 for s in samples], where="post", label="HPA desired")
    middle.step(xs, [s.vllm_ready for s in samples], where="post", label="vLLM Ready")
    middle.step(xs, [sum(s.nodes.values()) for s in samples], where="post", label="nodes", linestyle=":")
    middle.set_ylabel("replicas / nodes")
    middle.legend(loc="upper left")
    bottom.plot(
        [p.wall_time - origin for p in load if p.ttft_p50_ms is not None],
        [p.ttft_p50_ms for p in load if p.ttft_p50_ms is not None],
        label="TTFT p50 (ms)",
    )
    bottom.set_ylabel("ms")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper left")
    if times.breach_at is not None:
        breach = times.breach_at - origin
        marks = {
            "breach": 0.0,
            "desired": times.desired_after_s,
            "Ready": times.ready_after_s,
            "first token": times.first_token_after_s,
        }
        for label, after in marks.items():
            if after is not None:
                for axis in (top, middle, bottom):
                    axis.axvline(breach + after, color="grey", linestyle="--", linewidth=0.8)
                middle.annotate(label, (breach + after, middle.get_ylim()[1]), rotation=90, va="top", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def prometheus_via(endpoint: Any) -> PrometheusQuery:
    """An instant query through an `ops.live` endpoint (the API server's service proxy to the in-cluster Prometheus,
    or a URL), as (labels, value) pairs."""

    def query(expr: str) -> list[tuple[dict[str, str], float]]:
        reply = endpoint.request("GET", "/api/v1/query", query={"query": expr})
        if reply.status != 200:
            raise OpsError(
                f"Prometheus ({endpoint.description}) answered HTTP {reply.status} to {expr!r}: {reply.text()}"
            )
        body = reply.json()
        return [(sample["metric"], float(sample["value"][1])) for sample in body["data"]["result"]]

    return query


def cluster_watcher(
    *,
    kubeconfig: Any | None,
    context: str | None,
    prometheus_url: str | None,
    timeout: float = 10.0,
) -> ScalingWatcher:
    """A watcher of the platform's vLLM Deployment, its ScaledObject and the gateway, on the kubeconfig's cluster;
    Prometheus through the API server's service proxy unless `prometheus_url` is given."""
    from kubernetes import client

    from ops import target
    from ops.live import UrlEndpoint, connect
    from platform_config import namespaces

    kube = connect(kubeconfig, context, timeout=timeout)
    kube.probe()
    endpoint = (
        UrlEndpoint(prometheus_url, timeout=timeout, option="--prometheus-url")
        if prometheus_url
        else kube.service(namespaces.OBSERVABILITY, target.PROMETHEUS_SERVICE, target.PROMETHEUS_SERVICE_PORT)
    )
    return ScalingWatcher(
        apps=client.AppsV1Api(kube.api_client),
        core=kube.core,
        autoscaling=client.AutoscalingV2Api(kube.api_client),
        custom=kube.custom,
        prometheus=prometheus_via(endpoint),
        namespace=namespaces.INFERENCE,
        deployment=target.VLLM,
        scaled_object=target.VLLM,
        gateway_namespace=namespaces.GATEWAY,
        gateway_deployment=target.LITELLM,
    )
