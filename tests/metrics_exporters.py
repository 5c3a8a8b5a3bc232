"""Test exporters that answer /metrics as the platform's metric sources do, with values a test controls over time.

- `VllmMetrics`: vLLM 0.11's V1 engine (`vllm/v1/metrics/loggers.py`, PrometheusStatLogger): prometheus_client
  metrics with the labels `model_name` and `engine`, the real histogram bounds, served in the classic text
  format whatever the scraper asks for (vLLM's /metrics route is prometheus-fastapi-instrumentator's `expose`,
  which calls `generate_latest`), so names keep their `vllm:` prefix (FACTS.md, vLLM metrics).
- `LitellmMetrics`: LiteLLM 1.102's Prometheus callback (`litellm/integrations/prometheus.py`, label lists in
  `litellm/types/integrations/prometheus.py`). Its /metrics negotiates the format with prometheus_client's
  `choose_encoder` (`litellm/integrations/prometheus_metrics_endpoint.py`), so Prometheus gets OpenMetrics.
- `DcgmMetrics`: NVIDIA's dcgm-exporter 4.8.2 (`internal/pkg/rendermetrics/render_metrics.go`): its own text
  template, `gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`, `Hostname`, the driver version label, then
  the pod attribution of Kubernetes mode (`container`, `namespace`, `pod`, `pod_uid`;
  `internal/pkg/transformation/kubernetes.go`) and, on the XID field, `err_code` and `err_msg`.
- `KubeStateMetrics`: kube-state-metrics' series for HPAs, Deployments and node labels, in the classic text format.

Values are functions of wall-clock time (`CounterTrack`, `GaugeTrack`, `HistogramTrack`), so an exporter can
also say what it would have served at any past moment: `openmetrics_history` writes that as OpenMetrics for
Prometheus's backfill (`promtool tsdb create-blocks-from openmetrics`), with the labels the scrape adds.
`ExporterServer` serves one exporter on 127.0.0.1, optionally behind a bearer token (LiteLLM's /metrics needs
the master key), and can go down like a crashed pod.
"""

from __future__ import annotations

import math
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

CLASSIC_TEXT = "text/plain; version=0.0.4; charset=utf-8"

# vLLM 0.11 bucket bounds (vllm/v1/metrics/loggers.py).
VLLM_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
VLLM_INTER_TOKEN_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
VLLM_REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
# LiteLLM's LATENCY_BUCKETS (litellm/types/integrations/prometheus.py), +Inf included there.
LITELLM_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 420.0, 600.0,
)  # fmt: skip


# --- values over time ------------------------------------------------------------------------------------------


class CounterTrack:
    """A counter that has grown at a rate (per second) since `since`, with the rate changed and amounts added
    at chosen moments. The value at any time is exact arithmetic, so history and live scrapes agree."""

    def __init__(self, per_second: float, *, since: float) -> None:
        self._rates: tuple[tuple[float, float], ...] = ((since, per_second),)
        self._jumps: tuple[tuple[float, float], ...] = ()

    def at(self, t: float) -> float:
        rates, jumps = self._rates, self._jumps  # replaced, never mutated: safe to read from the server threads
        total = 0.0
        for index, (start, per_second) in enumerate(rates):
            end = rates[index + 1][0] if index + 1 < len(rates) else math.inf
            if t > start:
                total += per_second * (min(t, end) - start)
        return total + sum(amount for when, amount in jumps if when <= t)

    def set_rate(self, per_second: float, *, at: float) -> None:
        self._rates = (*self._rates, (at, per_second))

    def add(self, amount: float, *, at: float) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        self._jumps = (*self._jumps, (at, amount))


class GaugeTrack:
    """A gauge holding a value, changed at chosen moments."""

    def __init__(self, value: float) -> None:
        self._values: tuple[tuple[float, float], ...] = ((-math.inf, value),)

    def at(self, t: float) -> float:
        return next(value for when, value in reversed(self._values) if when <= t)

    def set(self, value: float, *, at: float) -> None:
        self._values = (*self._values, (at, value))


class HistogramTrack:
    """A histogram fed by streams of observations of one value each: `stream(0.4, 2.0)` observes 0.4 twice a
    second; `add(3.0, 100, at=t)` observes 3.0 a hundred times at `t`. Buckets, count and sum follow exactly."""

    def __init__(self, bounds: Sequence[float], *, since: float) -> None:
        self.bounds = tuple(bounds)
        self._since = since
        self._streams: dict[float, CounterTrack] = {}

    def _counter(self, value: float) -> CounterTrack:
        if value not in self._streams:
            self._streams = {**self._streams, value: CounterTrack(0.0, since=self._since)}
        return self._streams[value]

    def stream(self, value: float, per_second: float, *, at: float | None = None) -> None:
        self._counter(value).set_rate(per_second, at=self._since if at is None else at)

    def add(self, value: float, count: float, *, at: float) -> None:
        self._counter(value).add(count, at=at)

    def buckets(self, t: float) -> list[tuple[float, float]]:
        """Cumulative counts by upper bound, +Inf last."""
        streams = self._streams
        return [(le, sum(c.at(t) for value, c in streams.items() if value <= le)) for le in (*self.bounds, math.inf)]

    def sum(self, t: float) -> float:
        return sum(value * c.at(t) for value, c in self._streams.items())


# --- exporters --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


class Exporter(Protocol):
    def render(self, accept: str, t: float) -> tuple[str, bytes]:
        """(Content-Type, body) of a scrape at time `t` that sent this Accept header."""
        ...

    def samples(self, t: float) -> list[Sample]:
        """What a scrape at time `t` would ingest, before the target's labels are added."""
        ...


def _float_label(bound: float) -> str:
    """A bucket bound as prometheus_client writes it in `le`."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


@dataclass
class _Family:
    kind: str  # counter, gauge or histogram
    name: str  # as registered: counters without `_total`
    help: str
    labelnames: tuple[str, ...]
    series: dict[tuple[str, ...], CounterTrack | GaugeTrack | HistogramTrack] = field(default_factory=dict)

    def metric(self, t: float, created: float) -> Metric:
        family: Metric
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.help, labels=self.labelnames)
            for values, track in self.series.items():
                assert isinstance(track, CounterTrack)
                family.add_metric(list(values), track.at(t), created=created)
        elif self.kind == "gauge":
            family = GaugeMetricFamily(self.name, self.help, labels=self.labelnames)
            for values, track in self.series.items():
                assert isinstance(track, GaugeTrack)
                family.add_metric(list(values), track.at(t))
        else:
            family = HistogramMetricFamily(self.name, self.help, labels=self.labelnames)
            for values, track in self.series.items():
                assert isinstance(track, HistogramTrack)
                buckets = [(_float_label(le), count) for le, count in track.buckets(t)]
                family.add_metric(list(values), buckets=buckets, sum_value=track.sum(t))
                # prometheus_client's own Histogram writes `_created` too.
                family.add_sample(f"{self.name}_created", dict(zip(self.labelnames, values, strict=True)), created)
        return family


class _PrometheusClientExporter:
    """Metric families rendered by prometheus_client, as the Python servers do."""

    negotiates = False  # True: the format follows the Accept header (choose_encoder); False: classic text always

    def __init__(self, *, since: float) -> None:
        self.since = since
        self._families: list[_Family] = []

    def _family(self, kind: str, name: str, help_text: str, labelnames: Sequence[str]) -> _Family:
        family = _Family(kind, name, help_text, tuple(labelnames))
        self._families.append(family)
        return family

    def _metrics(self, t: float) -> list[Metric]:
        return [family.metric(t, self.since) for family in self._families if family.series]

    def render(self, accept: str, t: float) -> tuple[str, bytes]:
        registry = _Snapshot(self._metrics(t))
        if self.negotiates:
            encoder, content_type = choose_encoder(accept)
            return content_type, encoder(registry)
        return CONTENT_TYPE_LATEST, generate_latest(registry)

    def samples(self, t: float) -> list[Sample]:
        return [Sample(s.name, s.labels, s.value) for m in self._metrics(t) for s in m.samples]


@dataclass(frozen=True)
class _Snapshot:
    """What prometheus_client's encoders need of a registry: `collect()`."""

    metrics: list[Metric]

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


class VllmMetrics(_PrometheusClientExporter):
    """One vLLM pod (one engine, index 0) serving `model_name`."""

    def __init__(self, *, model_name: str, since: float) -> None:
        super().__init__(since=since)
        labels = ("model_name", "engine")
        key = (model_name, "0")

        def gauge(name: str, help_text: str) -> GaugeTrack:
            track = GaugeTrack(0.0)
            self._family("gauge", name, help_text, labels).series[key] = track
            return track

        def counter(name: str, help_text: str) -> CounterTrack:
            track = CounterTrack(0.0, since=since)
            self._family("counter", name, help_text, labels).series[key] = track
            return track

        def histogram(name: str, help_text: str, bounds: Sequence[float]) -> HistogramTrack:
            track = HistogramTrack(bounds, since=since)
            self._family("histogram", name, help_text, labels).series[key] = track
            return track

        self.running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self.waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        self.kv_cache_usage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        self.prefix_cache_queries = counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."
        )
        self.prefix_cache_hits = counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."
        )
        self.preemptions = counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.")
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        success = self._family(
            "counter", "vllm:request_success", "Count of successfully processed requests.", (*labels, "finished_reason")
        )
        self.request_success = {reason: CounterTrack(0.0, since=since) for reason in ("stop", "length", "abort")}
        for reason, track in self.request_success.items():
            success.series[(*key, reason)] = track
        self.ttft = histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", VLLM_TTFT_BUCKETS
        )
        self.inter_token_latency = histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", VLLM_INTER_TOKEN_BUCKETS
        )
        self.e2e_latency = histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            VLLM_REQUEST_LATENCY_BUCKETS,
        )


# LiteLLM's label lists (PrometheusMetricLabels in litellm/types/integrations/prometheus.py, 1.102.1).
_LITELLM_REQUEST_LABELS = (
    "end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user", "status_code",
    "user_email", "route", "client_ip", "user_agent", "model_id", "api_provider",
)  # fmt: skip
_LITELLM_FAILED_LABELS = (
    "end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user", "user_email",
    "exception_status", "exception_class", "route", "client_ip", "user_agent", "model_id", "api_provider",
)  # fmt: skip
_LITELLM_LATENCY_LABELS = (
    "end_user", "hashed_api_key", "api_key_alias", "requested_model", "team", "team_alias", "user", "model",
    "model_id", "api_provider", "service_tier",
)  # fmt: skip
_LITELLM_TOKEN_LABELS = (
    "end_user", "hashed_api_key", "api_key_alias", "model", "team", "team_alias", "user", "user_email",
    "requested_model", "model_id", "api_provider",
)  # fmt: skip
_LITELLM_DEPLOYMENT_LABELS = ("litellm_model_name", "model_id", "api_base", "api_provider")


@dataclass(frozen=True)
class LitellmCaller:
    """Who a request came from and where it went, as LiteLLM labels it (unset labels are empty strings)."""

    requested_model: str
    model: str  # the deployment's litellm_params.model
    model_id: str
    api_provider: str
    api_base: str
    hashed_api_key: str
    client_ip: str
    user_agent: str
    route: str = "/chat/completions"

    def values(self, labelnames: Sequence[str], **extra: str) -> tuple[str, ...]:
        known = {
            "requested_model": self.requested_model,
            "model": self.model,
            "litellm_model_name": self.model,
            "model_id": self.model_id,
            "api_provider": self.api_provider,
            "api_base": self.api_base,
            "hashed_api_key": self.hashed_api_key,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "route": self.route,
            **extra,
        }
        return tuple(known.get(name, "") for name in labelnames)


class LitellmMetrics(_PrometheusClientExporter):
    """One LiteLLM proxy pod, for one caller and one backend deployment."""

    negotiates = True

    def __init__(self, *, caller: LitellmCaller, since: float) -> None:
        super().__init__(since=since)
        self.caller = caller
        self._requests = self._family(
            "counter", "litellm_proxy_total_requests_metric", "Total number of requests made to the proxy server",
            _LITELLM_REQUEST_LABELS,
        )  # fmt: skip
        self._failures = self._family(
            "counter", "litellm_proxy_failed_requests_metric",
            "Total number of failed responses from proxy - the client did not get a success response from litellm "
            "proxy", _LITELLM_FAILED_LABELS,
        )  # fmt: skip
        self._requests_by_status: dict[str, CounterTrack] = {}
        self._failures_by_status: dict[str, CounterTrack] = {}
        self.total_latency = self._histogram(
            "litellm_request_total_latency_metric", "Total latency (seconds) for a request to LiteLLM"
        )
        self.api_latency = self._histogram(
            "litellm_llm_api_latency_metric", "Total latency (seconds) for a models LLM API call"
        )
        self.input_tokens = self._tokens(
            "litellm_input_tokens_metric", "Total number of input tokens from LLM requests"
        )
        self.output_tokens = self._tokens(
            "litellm_output_tokens_metric", "Total number of output tokens from LLM requests"
        )
        self.deployment_state = GaugeTrack(0.0)
        self._family(
            "gauge", "litellm_deployment_state", "LLM Deployment Analytics - The state of the deployment: 0 = healthy, "
            "1 = partial outage, 2 = complete outage", _LITELLM_DEPLOYMENT_LABELS,
        ).series[caller.values(_LITELLM_DEPLOYMENT_LABELS)] = self.deployment_state  # fmt: skip

    def _histogram(self, name: str, help_text: str) -> HistogramTrack:
        track = HistogramTrack(LITELLM_LATENCY_BUCKETS, since=self.since)
        family = self._family("histogram", name, help_text, _LITELLM_LATENCY_LABELS)
        family.series[self.caller.values(_LITELLM_LATENCY_LABELS)] = track
        return track

    def _tokens(self, name: str, help_text: str) -> CounterTrack:
        track = CounterTrack(0.0, since=self.since)
        self._family("counter", name, help_text, _LITELLM_TOKEN_LABELS).series[
            self.caller.values(_LITELLM_TOKEN_LABELS)
        ] = track
        return track

    def requests(self, status_code: str) -> CounterTrack:
        """Requests answered with `status_code` (LiteLLM counts failures here too, with their status)."""
        if status_code not in self._requests_by_status:
            track = CounterTrack(0.0, since=self.since)
            self._requests_by_status[status_code] = track
            self._requests.series[self.caller.values(_LITELLM_REQUEST_LABELS, status_code=status_code)] = track
        return self._requests_by_status[status_code]

    def failures(self, status_code: str, exception_class: str) -> CounterTrack:
        """Failed requests as `litellm_proxy_failed_requests_metric` counts them."""
        if status_code not in self._failures_by_status:
            track = CounterTrack(0.0, since=self.since)
            self._failures_by_status[status_code] = track
            values = self.caller.values(
                _LITELLM_FAILED_LABELS, exception_status=status_code, exception_class=exception_class
            )
            self._failures.series[values] = track
        return self._failures_by_status[status_code]


@dataclass(frozen=True)
class Gpu:
    """One GPU as dcgm-exporter describes it, and the pod holding it (Kubernetes mode), if any."""

    index: int
    uuid: str
    pci_bus_id: str
    model_name: str
    pod: tuple[str, str, str, str] | None = None  # (namespace, pod, container, pod_uid)


# dcgm-exporter's default counters (etc/default-counters.csv at 4.5.3-4.8.2): field, help.
DCGM_FIELDS = {
    "DCGM_FI_DEV_GPU_UTIL": "GPU utilization (in %).",
    "DCGM_FI_DEV_MEM_COPY_UTIL": "Memory utilization (in %).",
    "DCGM_FI_DEV_FB_FREE": "Framebuffer memory free (in MiB).",
    "DCGM_FI_DEV_FB_USED": "Framebuffer memory used (in MiB).",
    "DCGM_FI_DEV_XID_ERRORS": "Value of the last XID error encountered.",
}
# dcgm-exporter's xidErrCodeToText (internal/pkg/collector/xid_errors.go), for the XIDs a test uses.
XID_MESSAGES = {0: "No Error", 79: "GPU has fallen off the bus"}


class DcgmMetrics:
    """One node's dcgm-exporter (Kubernetes mode, pod attribution on). Values are whole numbers, as DCGM's
    integer fields print."""

    def __init__(self, *, hostname: str, driver_version: str, gpus: Sequence[Gpu]) -> None:
        self.hostname = hostname
        self.driver_version = driver_version
        self.gpus = tuple(gpus)
        self.fields = {name: {gpu.index: GaugeTrack(0.0) for gpu in gpus} for name in DCGM_FIELDS}

    def _rows(self, t: float) -> Iterator[tuple[str, list[tuple[str, str]], float]]:
        for name in DCGM_FIELDS:
            for gpu in self.gpus:
                value = self.fields[name][gpu.index].at(t)
                labels = [
                    ("gpu", str(gpu.index)),
                    ("UUID", gpu.uuid),
                    ("pci_bus_id", gpu.pci_bus_id),
                    ("device", f"nvidia{gpu.index}"),
                    ("modelName", gpu.model_name),
                    ("Hostname", self.hostname),
                    ("DCGM_FI_DRIVER_VERSION", self.driver_version),
                ]
                attributes: dict[str, str] = {}
                if name == "DCGM_FI_DEV_XID_ERRORS":
                    attributes["err_code"] = str(int(value))
                    attributes["err_msg"] = XID_MESSAGES.get(int(value), "Unknown Error")
                if gpu.pod is not None:
                    namespace, pod, container, uid = gpu.pod
                    attributes.update(container=container, namespace=namespace, pod=pod, pod_uid=uid)
                labels += sorted(attributes.items())  # Go templates range over maps in key order
                yield name, labels, value

    def render(self, accept: str, t: float) -> tuple[str, bytes]:
        lines: list[str] = []
        current = ""
        for name, labels, value in self._rows(t):
            if name != current:
                lines += [f"# HELP {name} {DCGM_FIELDS[name]}", f"# TYPE {name} gauge"]
                current = name
            rendered = ",".join(f'{k}="{v}"' for k, v in labels)
            lines.append(f"{name}{{{rendered}}} {int(value)}")
        return CLASSIC_TEXT, ("\n".join(lines) + "\n").encode()

    def samples(self, t: float) -> list[Sample]:
        return [Sample(name, dict(labels), float(int(value))) for name, labels, value in self._rows(t)]


class KubeStateMetrics:
    """kube-state-metrics' text output for the series a test sets: `gauge(name, labels)` adds one."""

    def __init__(self) -> None:
        self._series: dict[str, dict[tuple[tuple[str, str], ...], GaugeTrack]] = {}

    def gauge(self, name: str, labels: Mapping[str, str], value: float) -> GaugeTrack:
        track = GaugeTrack(value)
        self._series.setdefault(name, {})[tuple(labels.items())] = track
        return track

    def samples(self, t: float) -> list[Sample]:
        return [
            Sample(name, dict(labels), track.at(t))
            for name, series in self._series.items()
            for labels, track in series.items()
        ]

    def render(self, accept: str, t: float) -> tuple[str, bytes]:
        lines: list[str] = []
        for name, series in self._series.items():
            lines.append(f"# TYPE {name} gauge")
            for labels, track in series.items():
                rendered = ",".join(f'{k}="{v}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {track.at(t):g}")
        return CLASSIC_TEXT, ("\n".join(lines) + "\n").encode()


# --- serving ------------------------------------------------------------------------------------------------------


class ExporterServer:
    """Serves an exporter's /metrics on 127.0.0.1 (free port) until the block ends, or until `go_down()`
    (connection refused from then on, like a pod that crashed). With `bearer_token`, a request without
    `Authorization: Bearer <token>` gets 401, as LiteLLM answers without the master key. With `tls` (e.g.
    `prometheus_harness.self_signed_tls`) it serves HTTPS."""

    def __init__(
        self,
        exporter: Exporter,
        *,
        clock: Callable[[], float],
        bearer_token: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.exporter = exporter
        self._clock = clock
        self._token = bearer_token
        self._tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.scrapes = 0
        self.refused = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._port}"

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        if request.path.split("?")[0] != "/metrics":
            self._reply(request, 404, "text/plain", b"not found\n")
            return
        if self._token is not None and request.headers.get("Authorization", "") != f"Bearer {self._token}":
            self.refused += 1
            self._reply(request, 401, "application/json", b'{"error": "Authentication Error"}\n')
            return
        self.scrapes += 1
        content_type, body = self.exporter.render(request.headers.get("Accept", ""), self._clock())
        self._reply(request, 200, content_type, body)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def __enter__(self) -> ExporterServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self._tls is not None:
            # The handshake runs on the first read, in the request's thread, not in accept().
            self._server.socket = self._tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="exporter", daemon=True
        )
        self._thread.start()
        return self

    def go_down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.go_down()


# --- history for the backfill ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScrapedExporter:
    """An exporter with the target labels its scrape job gives it (job, instance and what relabelling sets)."""

    exporter: Exporter
    target_labels: Mapping[str, str]
    honor_labels: bool = False


def scraped_labels(sample: Sample, target: ScrapedExporter) -> dict[str, str]:
    """The labels a scraped sample is stored with (Prometheus configuration reference, `honor_labels`): the
    target's labels added to the sample's; on a clash the sample's value wins with `honor_labels`, else the
    sample's label is kept as `exported_<name>`. Labels with an empty value are not stored."""
    labels = dict(sample.labels)
    for name, value in target.target_labels.items():
        if name in labels and not target.honor_labels:
            labels[f"exported_{name}"] = labels.pop(name)
        if name not in labels or not target.honor_labels:
            labels[name] = value
    return {name: value for name, value in labels.items() if value != ""}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics_history(targets: Iterable[ScrapedExporter], times: Sequence[float]) -> str:
    """What `targets` would have served at each of `times`, as OpenMetrics with timestamps, every series in time
    order, for `promtool tsdb create-blocks-from openmetrics`. `_created` series are left out: they are the
    process start time, a constant nothing reads over a window."""
    series: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]] = {}
    for target in targets:
        for t in times:
            for sample in target.exporter.samples(t):
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sorted(scraped_labels(sample, target).items())))
                series.setdefault(key, []).append((t, sample.value))
    lines: list[str] = []
    for (name, labels), points in sorted(series.items()):
        rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        lines += [f"{name}{{{rendered}}} {value!r} {t:.3f}" for t, value in points]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"
