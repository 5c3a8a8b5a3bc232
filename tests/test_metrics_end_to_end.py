"""The synthesized alerting rules and dashboards end to end, offline: one real Prometheus on 127.0.0.1 scrapes test
exporters that answer as vLLM, LiteLLM, the DCGM exporter and kube-state-metrics do (tests/metrics_exporters.py),
with the synthesized scrape jobs, loads the synthesized `prometheus/alerting_rules.yml` as it is, and shows

- every alert of that file inactive while the platform is healthy, then active (pending, or firing where it has no
  `for:`) with the labels written here once its condition holds; a new alert without a scenario here fails;
- every dashboard query of the synthesized `grafana/*.json`, template variables filled in, returning the values
  computed here from what the exporters serve.

What had to change for offline use, and nothing else:
- Kubernetes pod discovery cannot run: each job discovers its targets from a file instead (`file_sd_configs`),
  targets carrying the `__meta_kubernetes_*` labels pod discovery would give the platform's pods, so the job's own
  relabelling runs unchanged. Emptying a file is a Deployment scaled to nothing.
- Scrape intervals drop to 1 s (the synthesized ones come from config) and every rule group is evaluated every
  second: the 3-day tickets' group's own `interval: 1m` becomes 1 s in a copy of the file that changes nothing
  else (kept, it would add up to two minutes to this test; that the group has its own interval is checked in
  tests/test_alert_rules.py).
- LiteLLM's bearer token is read from a file in the test's directory, not from the mounted Secret's path.

Windows of hours and days cannot fill in real time. The exporters' values are functions of time, so they can say
what they served over the three days before the test; that history goes into the TSDB before Prometheus starts,
through Prometheus's own backfill (`promtool tsdb create-blocks-from openmetrics`). Alerts with a long `for:` can
only reach `pending` here: that their `for:` then holds them back is shown by the promtool unit tests in
tests/test_alert_rules.py, which step through simulated time.

The scenario (numbers written here, thresholds from AlertSettings' defaults and tests/test_alert_rules.py):
1. Healthy, for three days and at the start: TTFT above 2.5 s for 0.1% of requests (SLO budget 1%), gateway
   failures 0.01% (budget 0.1%), queues of 3 per replica, KV caches at most 0.7, no preemption burst, no XID.
2. The incident: 3600 requests with a 3 s first token and 360 gateway 500s at once (enough to burn the 5 min to 6 h
   windows, not the 3-day one), queues of 24 per replica at max replicas, one KV cache at 0.97, 120 preemptions,
   XID 79 on one GPU, one DCGM exporter gone.
3. After the tickets' first evaluation (still inactive): 3000 more slow requests and 300 more 500s push the 3-day
   ratios over budget; then every vLLM, DCGM and LiteLLM target disappears (the ScrapeTargetAbsent alerts).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Synthesized, helm_values, resources_of
from tests.metrics_exporters import (
    LITELLM_LATENCY_BUCKETS,
    VLLM_INTER_TOKEN_BUCKETS,
    VLLM_REQUEST_LATENCY_BUCKETS,
    VLLM_TTFT_BUCKETS,
    CounterTrack,
    DcgmMetrics,
    Exporter,
    ExporterServer,
    Gpu,
    HistogramTrack,
    KubeStateMetrics,
    LitellmCaller,
    LitellmMetrics,
    ScrapedExporter,
    VllmMetrics,
    openmetrics_history,
)
from tests.prometheus_harness import PrometheusServer, running_prometheus, self_signed_tls

# --- the platform as deployed (written here, not read from the code under test) ----------------------------------

MODEL = "llama-3.1-8b-instruct"  # inference.vllm.served_model_name
INFERENCE, GATEWAY = "inference", "gateway"
VLLM_PODS = ("vllm-6d5f8b7c9-abcde", "vllm-6d5f8b7c9-fghij", "vllm-6d5f8b7c9-klmno", "vllm-6d5f8b7c9-pqrst")
GPU_NODES = tuple(f"ip-10-0-3-{11 + i}.us-west-2.compute.internal" for i in range(len(VLLM_PODS)))
DCGM_PODS = ("dcgm-exporter-2xk9p", "dcgm-exporter-7hq4d", "dcgm-exporter-c8m2v", "dcgm-exporter-w5n6t")
LITELLM_PODS = ("litellm-7f9c6d5b4-klmno", "litellm-7f9c6d5b4-pqrst")
KSM_POD = "prometheus-kube-state-metrics-6b8f7c9d5-x2v4q"
LITELLM_TOKEN = "sk-test-metrics-key"

# --- the scenario ------------------------------------------------------------------------------------------------

HISTORY_SECONDS = 3 * 86400 + 3600  # longer than the longest window (3 d)
SCRAPE = "1s"
# Per vLLM pod (index as VLLM_PODS): healthy gauges.
WAITING = (2.0, 3.0, 4.0, 3.0)  # 3 per replica: under the backlog (20) and the KEDA target (5)
RUNNING = (8.0, 10.0, 12.0, 10.0)
KV_CACHE = (0.55, 0.6, 0.7, 0.65)  # under 0.9
# Per vLLM pod, per second: tokens, prefix cache, requests by finish reason, preemptions.
GENERATION_TOKENS = (300.0, 250.0, 200.0, 250.0)
PROMPT_TOKENS = (900.0, 800.0, 700.0, 800.0)
PREFIX_QUERIES, PREFIX_HITS = (800.0, 700.0, 600.0, 700.0), (200.0, 175.0, 300.0, 175.0)
PREEMPTIONS = 0.001  # 0.24 a minute over four pods: under 1
# First tokens per pod and second, by latency: 0.5 requests/s, 0.1% slower than the 2.5 s SLO.
TTFT = {0.15: 0.2, 0.4: 0.2, 0.9: 0.08, 2.0: 0.0195, 3.0: 0.0005}
ITL_SHARES = {0.02: 0.4, 0.04: 0.4, 0.09: 0.14, 0.3: 0.06}  # of generated tokens
E2E = {4.0: 0.3, 8.0: 0.15, 12.0: 0.05}  # requests/s by end-to-end latency
# Per GPU (one per node and vLLM pod): utilisation %, memory copy %, framebuffer used MiB (of 23034).
GPU_UTIL, MEM_COPY, FB_USED, FB_TOTAL = (85, 90, 80, 88), (40, 45, 35, 42), (20000, 20500, 19800, 20100), 23034
# Per LiteLLM pod and second, by status: 1 request/s, 0.01% failures (budget 0.1%); 429s are the clients'.
GATEWAY_STATUS = {"200": 0.9899, "429": 0.01, "500": 0.0001}
GATEWAY_LATENCY = {0.8: 0.45, 1.5: 0.35, 3.0: 0.2}  # total, requests/s by seconds
BACKEND_LATENCY = {0.7: 0.45, 1.4: 0.35, 2.9: 0.2}
INPUT_TOKENS, OUTPUT_TOKENS = 400.0, 120.0  # per LiteLLM pod and second
# LiteLLM's exception_class label: the provider's prefix and the exception's class, "HTTPException" for the proxy's
# own 429s (PrometheusLogger._get_exception_class_name).
BACKEND_FAILED, RATE_LIMITED = "Hosted_vllm.InternalServerError", "HTTPException"
# The incident.
SLOW_TTFT, SLOW_BURST, TICKET_SLOW_BURST = 3.0, 900.0, 750.0  # per vLLM pod
FAILED_BURST, TICKET_FAILED_BURST = 180.0, 150.0  # 500s per LiteLLM pod
PREEMPTION_BURST = 30.0  # per vLLM pod: 120 over 5 min is 24 a minute
WAITING_INCIDENT = 24.0  # per replica: over 20, and growing
HOT_KV_POD, HOT_KV = 1, 0.97
XID_NODE, XID = 2, 79  # "GPU has fallen off the bus"
DOWN_DCGM = 3  # this node's exporter crashes
# kube-state-metrics: each KEDA-made HPA (KEDA names it keda-hpa-<ScaledObject>) and its Deployment:
# (desired, current, available, min, max) replicas.
HPAS = {
    (INFERENCE, "keda-hpa-vllm", "vllm"): (4, 4, 4, 1, 4),
    (GATEWAY, "keda-hpa-litellm", "litellm"): (2, 2, 2, 2, 6),
}
# Nodes by their `karpenter.sh/nodepool` and `karpenter.sh/capacity-type` labels.
NODES = {
    GPU_NODES[0]: ("gpu", "spot"),
    GPU_NODES[1]: ("gpu", "spot"),
    GPU_NODES[2]: ("gpu", "on-demand"),
    GPU_NODES[3]: ("gpu", "spot"),
    "i-0a1b2c3d4e5f60718": ("general-purpose", "on-demand"),
    "i-0f1e2d3c4b5a69788": ("system", "on-demand"),
}


@dataclass(frozen=True)
class Expected:
    """When an alert must be active and the labels it must carry (besides alertname)."""

    phase: str  # "incident", "ticket" or "targets gone"
    labels: Mapping[str, str]


@dataclass(frozen=True)
class Deployed:
    """What a scenario's labels depend on: each pod's scrape address and each job's namespace."""

    targets: Mapping[str, str]
    namespaces: Mapping[str, str]


WARNING = {"severity": "warning"}
TTFT_SLO = {"slo": "ttft-2.5s"}  # observability.alerts.ttft_slo_seconds 2.5
AVAILABILITY_SLO = {"slo": "availability"}
SCENARIOS: dict[str, Callable[[Deployed], Expected]] = {
    "VllmTtftBurnRateFast": lambda _: Expected("incident", {"severity": "page", **TTFT_SLO}),
    "VllmTtftBurnRateSlow": lambda _: Expected("incident", {"severity": "page", **TTFT_SLO}),
    "VllmTtftBurnRateTicket": lambda _: Expected("ticket", {"severity": "ticket", **TTFT_SLO}),
    "GatewayAvailabilityBurnRateFast": lambda _: Expected("incident", {"severity": "page", **AVAILABILITY_SLO}),
    "GatewayAvailabilityBurnRateSlow": lambda _: Expected("incident", {"severity": "page", **AVAILABILITY_SLO}),
    "GatewayAvailabilityBurnRateTicket": lambda _: Expected("ticket", {"severity": "ticket", **AVAILABILITY_SLO}),
    "VllmKvCacheHigh": lambda _: Expected("incident", {**WARNING, "pod": VLLM_PODS[HOT_KV_POD]}),
    "VllmQueueBacklog": lambda _: Expected("incident", WARNING),
    "VllmPreemptions": lambda _: Expected("incident", WARNING),
    "VllmAtMaxReplicasQueueGrowing": lambda _: Expected("incident", WARNING),
    "Gateway5xxRatio": lambda _: Expected("incident", WARNING),
    "GpuXidError": lambda _: Expected(
        "incident", {"severity": "critical", "Hostname": GPU_NODES[XID_NODE], "gpu": "0"}
    ),
    # The crashed exporter's `up`, labelled by the job's relabelling with its own pod and namespace.
    "ScrapeTargetDown": lambda d: Expected(
        "incident",
        {
            **WARNING,
            "job": "dcgm-exporter",
            "instance": d.targets[DCGM_PODS[DOWN_DCGM]],
            "namespace": d.namespaces["dcgm-exporter"],
            "pod": DCGM_PODS[DOWN_DCGM],
        },
    ),
    "ScrapeTargetAbsentVllm": lambda _: Expected("targets gone", {**WARNING, "job": "vllm"}),
    "ScrapeTargetAbsentDcgmExporter": lambda _: Expected("targets gone", {**WARNING, "job": "dcgm-exporter"}),
    "ScrapeTargetAbsentLitellm": lambda _: Expected("targets gone", {**WARNING, "job": "litellm"}),
}


# --- the deployment: exporters, discovery and Prometheus ---------------------------------------------------------


@dataclass
class Fleet:
    """The exporters of the scenario and their servers, by pod."""

    vllm: dict[str, VllmMetrics]
    dcgm: dict[str, DcgmMetrics]
    litellm: dict[str, LitellmMetrics]
    ksm: KubeStateMetrics
    servers: dict[str, ExporterServer]


def build_fleet(since: float) -> tuple[dict[str, VllmMetrics], dict[str, DcgmMetrics], dict[str, LitellmMetrics]]:
    vllm: dict[str, VllmMetrics] = {}
    for i, pod in enumerate(VLLM_PODS):
        m = VllmMetrics(model_name=MODEL, since=since)
        m.waiting.set(WAITING[i], at=since)
        m.running.set(RUNNING[i], at=since)
        m.kv_cache_usage.set(KV_CACHE[i], at=since)
        _rate(m.generation_tokens, GENERATION_TOKENS[i], since)
        _rate(m.prompt_tokens, PROMPT_TOKENS[i], since)
        _rate(m.prefix_cache_queries, PREFIX_QUERIES[i], since)
        _rate(m.prefix_cache_hits, PREFIX_HITS[i], since)
        _rate(m.preemptions, PREEMPTIONS, since)
        _rate(m.request_success["stop"], 0.45, since)
        _rate(m.request_success["length"], 0.05, since)
        _streams(m.ttft, TTFT)
        _streams(m.inter_token_latency, {v: share * GENERATION_TOKENS[i] for v, share in ITL_SHARES.items()})
        _streams(m.e2e_latency, E2E)
        vllm[pod] = m
    dcgm: dict[str, DcgmMetrics] = {}
    for i, pod in enumerate(DCGM_PODS):
        gpu = Gpu(
            index=0,
            uuid=f"GPU-5d6e1c3a-7b2f-4e8d-9a1c-{i:012d}",
            pci_bus_id="00000000:31:00.0",
            model_name="NVIDIA L4",
            pod=(INFERENCE, VLLM_PODS[i], "vllm", f"8f1d2c3b-4a5e-6f70-8192-{i:012d}"),
        )
        exporter = DcgmMetrics(hostname=GPU_NODES[i], driver_version="570.172.08", gpus=[gpu])
        exporter.fields["DCGM_FI_DEV_GPU_UTIL"][0].set(GPU_UTIL[i], at=since)
        exporter.fields["DCGM_FI_DEV_MEM_COPY_UTIL"][0].set(MEM_COPY[i], at=since)
        exporter.fields["DCGM_FI_DEV_FB_USED"][0].set(FB_USED[i], at=since)
        exporter.fields["DCGM_FI_DEV_FB_FREE"][0].set(FB_TOTAL - FB_USED[i], at=since)
        dcgm[pod] = exporter
    litellm: dict[str, LitellmMetrics] = {}
    for i, pod in enumerate(LITELLM_PODS):
        caller = LitellmCaller(
            requested_model=MODEL,
            model=f"hosted_vllm/{MODEL}",
            model_id=f"{MODEL}-0",
            api_provider="hosted_vllm",
            api_base="http://vllm.inference.svc.cluster.local:8000/v1",
            hashed_api_key="88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            client_ip=f"10.0.1.{57 + i}",
            user_agent="OpenAI/Python 1.54.0",
        )
        g = LitellmMetrics(caller=caller, since=since)
        for status, per_second in GATEWAY_STATUS.items():
            _rate(g.requests(status), per_second, since)
        _rate(g.failures("429", RATE_LIMITED), GATEWAY_STATUS["429"], since)
        _rate(g.failures("500", BACKEND_FAILED), GATEWAY_STATUS["500"], since)
        _streams(g.total_latency, GATEWAY_LATENCY)
        _streams(g.api_latency, BACKEND_LATENCY)
        _rate(g.input_tokens, INPUT_TOKENS, since)
        _rate(g.output_tokens, OUTPUT_TOKENS, since)
        litellm[pod] = g
    return vllm, dcgm, litellm


def kube_state_metrics() -> KubeStateMetrics:
    """kube-state-metrics v2.20's series for HPAs, Deployments and node labels (its docs, metrics/)."""
    ksm = KubeStateMetrics()
    for (namespace, hpa, deployment), (desired, current, available, low, high) in HPAS.items():
        labels = {"namespace": namespace, "horizontalpodautoscaler": hpa}
        ksm.gauge("kube_horizontalpodautoscaler_status_desired_replicas", labels, desired)
        ksm.gauge("kube_horizontalpodautoscaler_status_current_replicas", labels, current)
        ksm.gauge("kube_horizontalpodautoscaler_spec_min_replicas", labels, low)
        ksm.gauge("kube_horizontalpodautoscaler_spec_max_replicas", labels, high)
        ksm.gauge(
            "kube_deployment_status_replicas_available", {"namespace": namespace, "deployment": deployment}, available
        )
    for node, (pool, capacity) in NODES.items():
        # Only allow-listed node labels appear, as label_<name sanitised> (--metric-labels-allowlist).
        labels = {"node": node, "label_karpenter_sh_nodepool": pool, "label_karpenter_sh_capacity_type": capacity}
        ksm.gauge("kube_node_labels", labels, 1)
    return ksm


def _rate(counter: CounterTrack, per_second: float, since: float) -> None:
    counter.set_rate(per_second, at=since)


def _streams(histogram: HistogramTrack, per_second: Mapping[float, float]) -> None:
    for value, rate in per_second.items():
        histogram.stream(value, rate)


def _pod_meta(namespace: str, pod: str, app: tuple[str, str | None], port: tuple[str, int]) -> dict[str, str]:
    """The labels Kubernetes pod discovery gives a container port of a pod (Prometheus docs, kubernetes_sd_config):
    `app` is the pod's app.kubernetes.io/name and, for a Helm release, app.kubernetes.io/instance."""
    name, instance = app
    labels = {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": name,
        "__meta_kubernetes_pod_container_port_name": port[0],
        "__meta_kubernetes_pod_container_port_number": str(port[1]),
    }
    if instance is not None:
        labels["__meta_kubernetes_pod_label_app_kubernetes_io_instance"] = instance
    return labels


def synthesized_jobs(synth: Synthesized) -> dict[str, dict[str, Any]]:
    (chart,) = [
        r
        for r in resources_of(synth.stack_json("observability"), "Custom::AWSCDK-EKS-HelmChart").values()
        if r["Properties"]["Chart"] == "prometheus"
    ]
    jobs = helm_values(chart["Properties"]["Values"])["scrapeConfigs"]
    return {name: {"job_name": name, **job} for name, job in jobs.items() if job.get("enabled", True)}


def offline_job(job: Mapping[str, Any], sd_file: Path, token_file: Path) -> dict[str, Any]:
    """The synthesized job with only what offline use requires changed (see the module docstring)."""
    offline = {k: v for k, v in job.items() if k != "kubernetes_sd_configs"}
    offline["file_sd_configs"] = [{"files": [str(sd_file)], "refresh_interval": SCRAPE}]
    offline.update(scrape_interval=SCRAPE, scrape_timeout=SCRAPE)
    if "authorization" in offline:
        offline["authorization"] = {**offline["authorization"], "credentials_file": str(token_file)}
    return offline


def discovery_namespace(job: Mapping[str, Any]) -> str:
    (sd,) = job["kubernetes_sd_configs"]
    (namespace,) = sd["namespaces"]["names"]
    return str(namespace)


@dataclass
class Platform:
    prometheus: PrometheusServer
    fleet: Fleet
    rules: dict[str, dict[str, Any]]  # alert name -> rule, from the synthesized file
    sd_files: dict[str, Path]
    deployed: Deployed
    dashboards: dict[str, dict[str, Any]]  # file stem -> the synthesized dashboard JSON model
    healthy_at: float  # a moment of the healthy phase, every target scraped and windows full


@pytest.fixture(scope="module")
def platform(dev: Synthesized, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    workdir = tmp_path_factory.mktemp("metrics-e2e")
    synthesized = dev.outdir.parent / "prometheus" / "alerting_rules.yml"
    document = yaml.safe_load(synthesized.read_text(encoding="utf-8"))
    rules = {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}
    for group in document["groups"]:
        if "interval" in group:
            group["interval"] = SCRAPE
    rule_file = workdir / "alerting_rules.yml"
    rule_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    jobs = synthesized_jobs(dev)
    token_file = workdir / "litellm-token"
    token_file.write_text(LITELLM_TOKEN, encoding="utf-8")
    now = time.time()
    since = now - HISTORY_SECONDS
    vllm, dcgm, litellm = build_fleet(since)
    ksm = kube_state_metrics()
    with ExitStack() as stack:
        tls = self_signed_tls(workdir) if jobs["dcgm-exporter"].get("scheme") == "https" else None
        servers: dict[str, ExporterServer] = {}
        for pod, exporter in vllm.items():
            servers[pod] = stack.enter_context(ExporterServer(exporter, clock=time.time))
        for pod, dcgm_exporter in dcgm.items():
            servers[pod] = stack.enter_context(ExporterServer(dcgm_exporter, clock=time.time, tls=tls))
        for pod, gateway in litellm.items():
            servers[pod] = stack.enter_context(ExporterServer(gateway, clock=time.time, bearer_token=LITELLM_TOKEN))
        servers[KSM_POD] = stack.enter_context(ExporterServer(ksm, clock=time.time))
        fleet = Fleet(vllm, dcgm, litellm, ksm, servers)

        discovered = discovery(jobs, fleet)
        sd_files = {name: workdir / f"{name}.targets.json" for name in jobs}
        for name, groups in discovered.items():
            sd_files[name].write_text(json.dumps(groups), encoding="utf-8")
        history = openmetrics_history(scraped(jobs, fleet), history_times(now))
        prometheus = stack.enter_context(
            running_prometheus(
                [offline_job(job, sd_files[name], token_file) for name, job in jobs.items()],
                scrape_interval=SCRAPE,
                evaluation_interval=SCRAPE,
                rule_files=[rule_file],
                backfill=history,
            )
        )
        prometheus.wait_for_targets(timeout=30)
        healthy_at = wait_until_every_series_is_live(prometheus, now)
        deployed = Deployed(
            {pod: server.target for pod, server in servers.items()},
            {name: discovery_namespace(job) for name, job in jobs.items()},
        )
        dashboards = {
            path.stem: json.loads(path.read_text(encoding="utf-8"))
            for path in sorted((dev.outdir.parent / "grafana").glob("*.json"))
        }
        yield Platform(prometheus, fleet, rules, sd_files, deployed, dashboards, healthy_at)


def discovery(jobs: Mapping[str, Mapping[str, Any]], fleet: Fleet) -> dict[str, list[dict[str, Any]]]:
    """Each job's targets as pod discovery would find the platform's pods (file_sd_configs groups)."""
    # vLLM and LiteLLM are cdk8s Deployments (k8s/vllm.py, k8s/gateway.py); the DCGM exporter is NVIDIA's chart
    # released as dcgm-exporter, kube-state-metrics the Prometheus chart's subchart (release prometheus).
    pods_by_job: dict[str, list[tuple[str, tuple[str, str | None], tuple[str, int]]]] = {
        "vllm": [(pod, ("vllm", None), ("http", 8000)) for pod in fleet.vllm],
        "dcgm-exporter": [(pod, ("dcgm-exporter", "dcgm-exporter"), ("metrics", 9400)) for pod in fleet.dcgm],
        "litellm": [(pod, ("litellm", None), ("http", 4000)) for pod in fleet.litellm],
        "kube-state-metrics": [(KSM_POD, ("kube-state-metrics", "prometheus"), ("http", 8080))],
    }
    missing = set(jobs) - set(pods_by_job)
    assert not missing, f"no test exporter for the synthesized scrape jobs {sorted(missing)}"
    return {
        name: [
            {
                "targets": [fleet.servers[pod].target],
                "labels": _pod_meta(discovery_namespace(jobs[name]), pod, app, port),
            }
            for pod, app, port in pods_by_job[name]
        ]
        for name in jobs
    }


def scraped(jobs: Mapping[str, Mapping[str, Any]], fleet: Fleet) -> list[ScrapedExporter]:
    """The exporters with the target labels their jobs' relabelling gives them: `namespace` and `pod` of the
    scraped pod for vllm, dcgm-exporter and litellm (k8s/metrics.py `_pod_labels`), none for kube-state-metrics.
    If the jobs label differently, the history and the live series differ and `wait_until_every_series_is_live`
    says so."""
    by_job: dict[str, Mapping[str, Exporter]] = {
        "vllm": fleet.vllm,
        "dcgm-exporter": fleet.dcgm,
        "litellm": fleet.litellm,
        "kube-state-metrics": {KSM_POD: fleet.ksm},
    }
    result: list[ScrapedExporter] = []
    for name, job in jobs.items():
        honor = bool(job.get("honor_labels", False))
        namespace = discovery_namespace(job)
        for pod, exporter in by_job[name].items():
            labels = {"job": name, "instance": fleet.servers[pod].target}
            if name != "kube-state-metrics":
                labels.update(namespace=namespace, pod=pod)
            result.append(ScrapedExporter(exporter, labels, honor_labels=honor))
    return result


def history_times(now: float) -> list[float]:
    """Every 15 min over three days, every minute over the last hour, every second over the last 90 s: the
    last part lets a 1-minute rate at the start of the live phase see evenly spaced samples, as it would after
    a day of 1 s scrapes (rate() extrapolates to the window's edges only when samples reach them)."""
    coarse = [now - HISTORY_SECONDS + i * 900.0 for i in range(int((HISTORY_SECONDS - 3600) / 900))]
    minutes = [now - 3600 + i * 60.0 for i in range(59)]
    seconds = [now - 90 + i * 1.0 for i in range(90)]
    return coarse + minutes + seconds


def wait_until_every_series_is_live(prometheus: PrometheusServer, history_end: float) -> float:
    """Once every target has been scraped after the history ends, every series of the history must go on in
    the live scrapes, with the same name and labels: one that stops is labelled differently by the scrape than
    the history assumed. Returns the moment that holds."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(_time(t["lastScrape"]) > history_end + 1.5 for t in prometheus.targets()):
            break
        time.sleep(0.2)
    at = time.time()
    jobs = '{job=~"vllm|dcgm-exporter|litellm|kube-state-metrics"}'
    written = {_key(labels) for labels in prometheus.series(jobs, history_end - 60, history_end - 1)}
    live = {_key(labels) for labels in prometheus.series(jobs, history_end + 0.5, at)}
    assert written, "the backfill wrote nothing"
    orphans = sorted(written - live)
    assert orphans == [], f"{len(orphans)} history series the live scrapes do not continue: {orphans[:3]}"
    return at


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


# --- alerts --------------------------------------------------------------------------------------------------------


def _time(value: str) -> float:
    """An RFC 3339 time from the API (nanoseconds are cut to microseconds by fromisoformat)."""
    return 0.0 if value.startswith("0001-") else datetime.fromisoformat(value).timestamp()


def rule_states(prometheus: PrometheusServer) -> dict[str, dict[str, Any]]:
    return {
        rule["name"]: {**rule, "group": group["name"]}
        for group in prometheus.rule_groups()
        for rule in group["rules"]
        if rule["type"] == "alerting"
    }


def active(prometheus: PrometheusServer) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for alert in prometheus.alerts():
        labels = {k: v for k, v in alert["labels"].items() if k != "alertname"}
        found.setdefault(alert["labels"]["alertname"], []).append({"labels": labels, "state": alert["state"]})
    return found


def wait_for_evaluation(prometheus: PrometheusServer, names: Sequence[str], after: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = rule_states(prometheus)
        if all(_time(states[name]["lastEvaluation"]) > after for name in names):
            return
        if time.monotonic() > deadline:
            late = [name for name in names if _time(states[name]["lastEvaluation"]) <= after]
            raise TimeoutError(f"not evaluated within {timeout}s: {late}")
        time.sleep(0.25)


def assert_inactive_and_healthy(prometheus: PrometheusServer, names: Sequence[str]) -> None:
    states = rule_states(prometheus)
    problems = {
        name: (states[name]["state"], states[name]["health"], states[name].get("lastError", ""))
        for name in names
        if states[name]["state"] != "inactive" or states[name]["health"] != "ok"
    }
    assert problems == {}, f"alerts not inactive (or failing to evaluate) while healthy: {problems}"


def wait_until_active(
    prometheus: PrometheusServer,
    expected: Mapping[str, Mapping[str, str]],
    rules: Mapping[str, Mapping[str, Any]],
    timeout: float,
) -> dict[str, list[dict[str, Any]]]:
    """Until each alert of `expected` is active with exactly those labels; returns the active alerts then."""
    deadline = time.monotonic() + timeout
    while True:
        now_active = active(prometheus)
        if all([a["labels"] for a in now_active.get(name, [])] == [dict(labels)] for name, labels in expected.items()):
            break
        if time.monotonic() > deadline:
            missing = {
                name: {"expected": dict(labels), "active": now_active.get(name, [])}
                for name, labels in expected.items()
                if [a["labels"] for a in now_active.get(name, [])] != [dict(labels)]
            }
            raise AssertionError(f"after {timeout}s these alerts are not active as expected: {missing}")
        time.sleep(0.25)
    for name in expected:
        (alert,) = now_active[name]
        # No `for:` fires at once; a `for:` of minutes cannot have passed yet (promtool tests show it holding).
        assert alert["state"] == ("pending" if rules[name].get("for", "0m") not in ("0m", "0s") else "firing"), (
            name,
            alert,
        )
    return now_active


def test_every_alert_is_quiet_while_healthy_and_active_when_its_condition_holds(platform: Platform) -> None:
    prometheus, fleet, rules = platform.prometheus, platform.fleet, platform.rules
    deployed = platform.deployed
    unscripted = sorted(set(rules) - set(SCENARIOS))
    assert unscripted == [], f"alerts in the synthesized file without a scenario in this test: {unscripted}"
    expected_by_phase: dict[str, dict[str, Mapping[str, str]]] = {}
    for name in rules:
        expectation = SCENARIOS[name](deployed)
        expected_by_phase.setdefault(expectation.phase, {})[name] = expectation.labels
    tickets = sorted(name for name, rule in rules.items() if "[3d]" in rule["expr"])
    assert set(tickets) == set(expected_by_phase["ticket"])
    others = sorted(set(rules) - set(tickets))

    # 1. Healthy: every rule evaluated on scraped data, none active.
    wait_for_evaluation(prometheus, others, after=platform.healthy_at, timeout=10)
    assert_inactive_and_healthy(prometheus, others)
    assert active(prometheus) == {}

    # 2. The incident.
    at = time.time()
    for i, vllm in enumerate(fleet.vllm.values()):
        vllm.ttft.add(SLOW_TTFT, SLOW_BURST, at=at)
        vllm.preemptions.add(PREEMPTION_BURST, at=at)
        vllm.waiting.set(WAITING_INCIDENT, at=at)
        if i == HOT_KV_POD:
            vllm.kv_cache_usage.set(HOT_KV, at=at)
    for gateway in fleet.litellm.values():
        gateway.requests("500").add(FAILED_BURST, at=at)
        gateway.failures("500", BACKEND_FAILED).add(FAILED_BURST, at=at)
    list(fleet.dcgm.values())[XID_NODE].fields["DCGM_FI_DEV_XID_ERRORS"][0].set(XID, at=at)
    fleet.servers[DCGM_PODS[DOWN_DCGM]].go_down()
    # The subquery of VllmAtMaxReplicasQueueGrowing steps every 30 s: it sees the growth within 30 s.
    incident = wait_until_active(prometheus, expected_by_phase["incident"], rules, timeout=45)
    assert set(incident) == set(expected_by_phase["incident"]), f"unexpected alerts: {set(incident)}"

    # 3. The tickets: inactive when evaluated on three days of history and the incident's 6 h, then three days over
    # budget; at a later evaluation they fire.
    wait_for_evaluation(prometheus, tickets, after=time.time(), timeout=10)
    assert_inactive_and_healthy(prometheus, tickets)
    at = time.time()
    for vllm in fleet.vllm.values():
        vllm.ttft.add(SLOW_TTFT, TICKET_SLOW_BURST, at=at)
    for gateway in fleet.litellm.values():
        gateway.requests("500").add(TICKET_FAILED_BURST, at=at)
        gateway.failures("500", BACKEND_FAILED).add(TICKET_FAILED_BURST, at=at)
    # Once the burst is scraped, every vLLM, DCGM and LiteLLM pod goes away (ScrapeTargetAbsent*): their series
    # end, but the range selectors of the tickets' next evaluation still read them.
    slow = f'sum(vllm:time_to_first_token_seconds_bucket{{le="+Inf",namespace="{INFERENCE}"}})'
    prometheus.wait_for(slow, lambda r: bool(r) and float(r[0]["value"][1]) > total_slow_burst(fleet, at), timeout=10)
    for name in ("vllm", "dcgm-exporter", "litellm"):
        platform.sd_files[name].write_text("[]", encoding="utf-8")
    final = {**expected_by_phase["ticket"], **expected_by_phase["targets gone"]}
    wait_until_active(prometheus, final, rules, timeout=30)


def total_slow_burst(fleet: Fleet, at: float) -> float:
    """Observations of every vLLM pod's TTFT histogram up to `at`, the ticket burst included, minus a margin
    smaller than one burst: more than this means the burst was scraped."""
    return sum(m.ttft.buckets(at)[-1][1] for m in fleet.vllm.values()) - TICKET_SLOW_BURST / 2


# The thresholds the scenario must straddle (AlertSettings' defaults, as tests/test_alert_rules.py writes them):
# error budgets, burn factors and windows of the SRE workbook (FACTS.md), and the warnings' thresholds.
TTFT_BUDGET, AVAILABILITY_BUDGET = 0.01, 0.001
BURNS = {"fast": (14.4, 3600, 300), "slow": (6.0, 6 * 3600, 1800), "ticket": (1.0, 3 * 86400, 6 * 3600)}
QUEUE_BACKLOG, QUEUE_PER_REPLICA, MAX_REPLICAS, KV_HIGH, PREEMPTIONS_PER_MINUTE, GATEWAY_5XX = 20, 5, 4, 0.9, 1, 0.05


def window_ratio(bad_per_second: float, all_per_second: float, window: float, burst: float) -> float:
    """The error ratio over `window` seconds of steady traffic after `burst` bad requests that just happened."""
    return (bad_per_second * window + burst) / (all_per_second * window + burst)


def test_the_scenario_sits_on_the_intended_side_of_every_threshold() -> None:
    """The phases' numbers, by the alerts' arithmetic, with margins of at least 10%: healthy stays under every
    threshold; the incident burns both windows of the page alerts but not the tickets' 3 days; the ticket burst
    burns both of the tickets' windows too."""
    pods, gateways = len(VLLM_PODS), len(LITELLM_PODS)
    ttft = (
        pods * sum(rate for value, rate in TTFT.items() if value > 2.5),
        pods * sum(TTFT.values()),
        pods * SLOW_BURST,
        pods * (SLOW_BURST + TICKET_SLOW_BURST),
    )
    gateway = (
        gateways * GATEWAY_STATUS["500"],
        gateways * sum(GATEWAY_STATUS.values()),
        gateways * FAILED_BURST,
        gateways * (FAILED_BURST + TICKET_FAILED_BURST),
    )
    for budget, (bad, total, incident, with_ticket) in ((TTFT_BUDGET, ttft), (AVAILABILITY_BUDGET, gateway)):
        for name, (factor, long, short) in BURNS.items():
            limit = factor * budget
            for window in (long, short):
                assert window_ratio(bad, total, window, 0) < limit / 1.1, (budget, name, window)
                assert window_ratio(bad, total, window, with_ticket) > limit * 1.1, (budget, name, window)
                if name != "ticket":
                    assert window_ratio(bad, total, window, incident) > limit * 1.1, (budget, name, window)
            if name == "ticket":
                assert window_ratio(bad, total, long, incident) < limit / 1.1, (budget, name)
    assert sum(WAITING) / pods < QUEUE_PER_REPLICA / 1.1
    assert WAITING_INCIDENT > QUEUE_BACKLOG * 1.1
    assert pods >= MAX_REPLICAS
    assert max(KV_CACHE) < KV_HIGH / 1.1
    assert HOT_KV > KV_HIGH * 1.05
    assert pods * PREEMPTIONS * 60 < PREEMPTIONS_PER_MINUTE / 1.1
    assert pods * PREEMPTION_BURST / 5 > PREEMPTIONS_PER_MINUTE * 1.1  # the burst over the 5-minute window
    assert gateway[0] / gateway[1] < GATEWAY_5XX / 1.1
    assert window_ratio(*gateway[:2], 300, gateway[2]) > GATEWAY_5XX * 1.1


# --- dashboards -------------------------------------------------------------------------------------------------

# Grafana's $__rate_interval is max(4 x the data source's scrape interval, $__interval + scrape interval): 1m with
# Grafana's default scrape interval setting of 15 s (Grafana docs, "Prometheus template variables").
RATE_INTERVAL = "1m"
QUANTILES = {"A": 0.5, "B": 0.95, "C": 0.99}  # the latency panels' targets: p50, p95, p99
Result = dict[tuple[tuple[str, str], ...], float]  # label set -> value


def histogram_quantile(q: float, streams: Mapping[float, float], bounds: Sequence[float]) -> float:
    """Prometheus's `histogram_quantile` (promql/quantile.go, bucketQuantile) of a histogram whose observations
    arrive at `streams` (value -> per second): the rank's bucket found in the cumulative counts, then a linear
    interpolation between the bucket's lower bound (the previous upper bound) and its upper bound."""
    uppers = [*bounds, math.inf]
    cumulative = [sum(rate for value, rate in streams.items() if value <= le) for le in uppers]
    rank = q * cumulative[-1]
    # The test's numbers keep a rank off the bucket edges, where the rates' rounding would pick the bucket.
    assert all(abs(rank - c) > 1e-9 * cumulative[-1] for c in cumulative), (q, streams)
    b = next(i for i, c in enumerate(cumulative) if c >= rank)
    if b == len(uppers) - 1:
        return uppers[-2]
    start, below = (0.0, 0.0) if b == 0 else (uppers[b - 1], cumulative[b - 1])
    return start + (uppers[b] - start) * (rank - below) / (cumulative[b] - below)


def _sum_streams(*parts: Mapping[float, float]) -> dict[float, float]:
    total: dict[float, float] = {}
    for part in parts:
        for value, rate in part.items():
            total[value] = total.get(value, 0.0) + rate
    return total


def _one(value: float, **labels: str) -> Result:
    return {tuple(sorted(labels.items())): value}


def _by(label: str, values: Mapping[str, float]) -> Result:
    return {((label, key),): value for key, value in values.items()}


def _per_gpu(values: Sequence[float]) -> Result:
    return {(("Hostname", host), ("gpu", "0")): float(v) for host, v in zip(GPU_NODES, values, strict=True)}


def _quantile_panel(streams: Mapping[float, float], bounds: Sequence[float]) -> dict[str, Result]:
    return {ref: _one(histogram_quantile(q, streams, bounds)) for ref, q in QUANTILES.items()}


def _replicas(namespace: str, ksm_instance: str) -> dict[str, Result]:
    """The replica panel's raw kube-state-metrics series, with every label they are stored with."""
    ((hpa, deployment), (desired, current, available, low, high)) = next(
        (key[1:], values) for key, values in HPAS.items() if key[0] == namespace
    )
    base = {"job": "kube-state-metrics", "instance": ksm_instance, "namespace": namespace}
    of_hpa, of_deployment = {**base, "horizontalpodautoscaler": hpa}, {**base, "deployment": deployment}
    return {
        "A": _one(desired, **of_hpa),
        "B": _one(current, **of_hpa),
        "C": _one(available, **of_deployment),
        "D": _one(high, **of_hpa),
        "E": _one(low, **of_hpa),
    }


def expected_panels(deployed: Deployed) -> dict[tuple[str, str], dict[str, Result]]:
    """(dashboard, panel title) -> refId -> the result, computed from the scenario's healthy values."""
    pods = len(VLLM_PODS)
    ttft = _sum_streams(*[TTFT] * pods)
    itl = _sum_streams(*[{v: share * tokens for v, share in ITL_SHARES.items()} for tokens in GENERATION_TOKENS])
    e2e = _sum_streams(*[E2E] * pods)
    gateways = len(LITELLM_PODS)
    status = {code: rate * gateways for code, rate in GATEWAY_STATUS.items()}
    current_vllm = HPAS[(INFERENCE, "keda-hpa-vllm", "vllm")][1]
    nodes: dict[tuple[str, str], float] = {}
    for pool_capacity in NODES.values():
        nodes[pool_capacity] = nodes.get(pool_capacity, 0.0) + 1
    return {
        ("vllm", "Requests waiting (queue)"): {"A": _by("pod", dict(zip(VLLM_PODS, WAITING, strict=True)))},
        ("vllm", "Requests running"): {"A": _by("pod", dict(zip(VLLM_PODS, RUNNING, strict=True)))},
        ("vllm", "KV cache usage"): {"A": _by("pod", dict(zip(VLLM_PODS, KV_CACHE, strict=True)))},
        ("vllm", "Preemptions per second"): {"A": _by("pod", dict.fromkeys(VLLM_PODS, PREEMPTIONS))},
        ("vllm", "Time to first token"): _quantile_panel(ttft, VLLM_TTFT_BUCKETS),
        ("vllm", "Inter-token latency"): _quantile_panel(itl, VLLM_INTER_TOKEN_BUCKETS),
        ("vllm", "End-to-end request latency"): _quantile_panel(e2e, VLLM_REQUEST_LATENCY_BUCKETS),
        ("vllm", "Tokens per second"): {"A": _one(sum(GENERATION_TOKENS)), "B": _one(sum(PROMPT_TOKENS))},
        ("vllm", "Generation tokens per second by pod"): {
            "A": _by("pod", dict(zip(VLLM_PODS, GENERATION_TOKENS, strict=True)))
        },
        ("vllm", "Prefix cache hit ratio"): {"A": _one(sum(PREFIX_HITS) / sum(PREFIX_QUERIES))},
        ("gpu", "GPU utilisation"): {"A": _per_gpu(GPU_UTIL)},
        ("gpu", "GPU utilisation of vLLM pods"): {
            "A": _by("pod", dict(zip(VLLM_PODS, map(float, GPU_UTIL), strict=True)))
        },
        ("gpu", "Framebuffer memory used"): {"A": _per_gpu([used / FB_TOTAL for used in FB_USED])},
        ("gpu", "Framebuffer memory used (MiB)"): {"A": _per_gpu(FB_USED)},
        ("gpu", "Memory copy utilisation"): {"A": _per_gpu(MEM_COPY)},
        ("gpu", "Last XID error"): {"A": _per_gpu([0] * len(GPU_NODES))},
        ("gateway", "Requests per second by model"): {"A": _by("requested_model", {MODEL: sum(status.values())})},
        ("gateway", "Requests per second by status code"): {"A": _by("status_code", status)},
        ("gateway", "Error ratio"): {"A": _one(status["500"] / sum(status.values()))},
        ("gateway", "Failed requests per second"): {
            "A": {
                (("exception_class", RATE_LIMITED), ("requested_model", MODEL)): status["429"],
                (("exception_class", BACKEND_FAILED), ("requested_model", MODEL)): status["500"],
            }
        },
        ("gateway", "Request latency through the gateway"): _quantile_panel(
            _sum_streams(*[GATEWAY_LATENCY] * gateways), LITELLM_LATENCY_BUCKETS
        ),
        ("gateway", "Backend (LLM API) latency"): _quantile_panel(
            _sum_streams(*[BACKEND_LATENCY] * gateways), LITELLM_LATENCY_BUCKETS
        ),
        ("gateway", "Tokens per second"): {
            "A": _one(INPUT_TOKENS * gateways),
            "B": _one(OUTPUT_TOKENS * gateways),
        },
        ("gateway", "Deployment state"): {
            "A": {
                (
                    ("api_base", "http://vllm.inference.svc.cluster.local:8000/v1"),
                    ("litellm_model_name", f"hosted_vllm/{MODEL}"),
                ): 0.0
            }
        },
        ("autoscaling", "vLLM replicas: desired vs current"): _replicas(INFERENCE, deployed.targets[KSM_POD]),
        ("autoscaling", "LiteLLM replicas: desired vs current"): _replicas(GATEWAY, deployed.targets[KSM_POD]),
        ("autoscaling", "Queue per replica"): {"A": _one(sum(WAITING) / current_vllm)},
        ("autoscaling", "KV cache usage (fleet average)"): {"A": _one(sum(KV_CACHE) / pods)},
        ("autoscaling", "TTFT p95 (fleet)"): {"A": _one(histogram_quantile(0.95, ttft, VLLM_TTFT_BUCKETS))},
        ("autoscaling", "Generation tokens per second per replica"): {"A": _one(sum(GENERATION_TOKENS) / current_vllm)},
        ("autoscaling", "Nodes by NodePool and capacity type"): {
            "A": {
                (("label_karpenter_sh_capacity_type", capacity), ("label_karpenter_sh_nodepool", pool)): count
                for (pool, capacity), count in nodes.items()
            }
        },
    }


# What each template variable must list: the label values of the series its query names.
VARIABLE_VALUES = {("vllm", "pod"): set(VLLM_PODS), ("gpu", "gpu_node"): set(GPU_NODES)}


def _panels(panels: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_targets(dashboards: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, str, str, str]]:
    """(dashboard, panel title, refId, expr) of every query."""
    for name, model in dashboards.items():
        for panel in _panels(model["panels"]):
            for target in panel.get("targets", []):
                yield name, panel["title"], target["refId"], target["expr"]


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """The expression as Grafana sends it: each dashboard variable set to All (its `allValue`) and
    `$__rate_interval` to RATE_INTERVAL. A variable left over fails the test."""
    for name, value in {**variables, "__rate_interval": RATE_INTERVAL}.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in expr, f"a template variable this test does not fill in: {expr}"
    return expr


def all_values(model: Mapping[str, Any]) -> dict[str, str]:
    return {v["name"]: v["allValue"] for v in model.get("templating", {}).get("list", []) if v.get("type") == "query"}


def test_every_dashboard_query_returns_what_the_exporters_serve(platform: Platform) -> None:
    """Each query of the synthesized dashboards, at a moment of the healthy phase (so the alert scenario, which
    changes the values later, cannot disturb it), returns exactly the label sets and values computed here."""
    prometheus, dashboards = platform.prometheus, platform.dashboards
    assert set(dashboards) >= {"vllm", "gpu", "gateway", "autoscaling"}, sorted(dashboards)
    expected = expected_panels(platform.deployed)
    queried: set[tuple[str, str]] = set()
    mismatches: list[str] = []
    for name, title, ref, expr in dashboard_targets(dashboards):
        assert (name, title) in expected, f"no expected values in this test for {name} panel {title!r}: {expr}"
        assert ref in expected[(name, title)], f"no expected values for {name} {title!r} {ref}: {expr}"
        queried.add((name, title))
        query = substitute(expr, all_values(dashboards[name]))
        got: Result = {
            _key({k: v for k, v in r["metric"].items() if k != "__name__"}): float(r["value"][1])
            for r in prometheus.query(query, at=platform.healthy_at)
        }
        want = expected[(name, title)][ref]
        if set(got) != set(want) or any(got[k] != pytest.approx(v, rel=5e-3, abs=1e-9) for k, v in want.items()):
            mismatches.append(f"{name} {title!r} {ref}: {query}\n  got  {got}\n  want {want}")
    assert mismatches == [], "\n".join(mismatches)
    assert queried == set(expected), f"expected values for panels the dashboards lack: {set(expected) - queried}"


def test_every_dashboard_variable_lists_the_platforms_pods_and_nodes(platform: Platform) -> None:
    prometheus, dashboards = platform.prometheus, platform.dashboards
    found: dict[tuple[str, str], set[str]] = {}
    for name, model in dashboards.items():
        for variable in model.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["query"])
            assert match, f"{name} variable {variable['name']}: a query this test does not evaluate"
            series = prometheus.series(match.group(1), platform.healthy_at - 10, platform.healthy_at)
            found[(name, variable["name"])] = {labels[match.group(2)] for labels in series}
    assert found == VARIABLE_VALUES
