"""`genai-ops loadtest`: the command line of the load test (options, the endpoint check, progress, output)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ops.errors import BadInputError, OpsError
from ops.loadtest.client import Endpoint, connect_failure
from ops.loadtest.options import Mode, Settings, validate
from ops.loadtest.prompts import Prompt, cycled, read_prompt_file, synthetic_prompts
from ops.loadtest.results import RunResult, Slo, write_results
from ops.loadtest.runner import ClosedLoop, OpenLoop, RunInfo, RunObserver, Snapshot, run_load
from ops.loadtest.schedule import Arrivals, Shape, arrival_times
from ops.scaling_watch import ScalingObserver, cluster_watcher

SCALING_PLOT = "scaling.png"

PREFLIGHT_TIMEOUT_S = 10.0
PLOT_FILE = "loadtest.png"


def default_run_id() -> str:
    return f"lt-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


class ProgressBar:
    """A RunObserver that draws the run's progress on stderr (rich), twice a second."""

    interval_s = 0.5

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("load", total=1.0, status="starting")

    async def on_start(self, info: RunInfo) -> None:
        self._progress.update(self._task, total=info.duration_s, description=info.run_id)
        self._progress.start()

    async def on_tick(self, snapshot: Snapshot) -> None:
        load = (
            f"target {snapshot.target_rate:.1f} req/s"
            if snapshot.target_rate is not None
            else f"{snapshot.concurrency} slots"
        )
        ttft = "" if snapshot.recent_ttft_p50_ms is None else f"  TTFT p50 {snapshot.recent_ttft_p50_ms:.0f} ms"
        status = (
            f"{load}  due {snapshot.due}  in flight {snapshot.in_flight}  ok {snapshot.succeeded}  "
            f"failed {snapshot.failed}{ttft}"
        )
        self._progress.update(self._task, completed=snapshot.elapsed_s, status=status)

    async def on_finish(self, result: RunResult) -> None:
        recorder = result.recorder
        status = f"done: {result.scheduled} due, {recorder.completed} ok, {recorder.failed} failed"
        self._progress.update(self._task, completed=result.duration_s, status=status)
        self._progress.stop()


async def preflight(settings: Settings, headers: dict[str, str]) -> None:
    """One GET of /models: the endpoint answers, takes the key, and serves the model (when it lists models)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PREFLIGHT_TIMEOUT_S)) as session,
            session.get(settings.models_url, headers=headers) as response,
        ):
            status = response.status
            body = await response.json(content_type=None) if status == 200 else await response.text()
    except aiohttp.ClientConnectorError as error:
        raise OpsError(
            f"cannot reach {settings.base_url} ({connect_failure(error)}): check --url and that the gateway is "
            "reachable from here (a port-forward, or run inside the VPC)"
        ) from None
    except TimeoutError:
        raise OpsError(
            f"{settings.base_url} did not answer GET /models within {PREFLIGHT_TIMEOUT_S:g} s: check --url"
        ) from None
    except (aiohttp.ClientError, ValueError) as error:
        raise OpsError(f"{settings.base_url} did not answer as an OpenAI-compatible server: {error}") from None
    if status in (401, 403):
        raise OpsError(
            f"{settings.base_url} refused the API key (HTTP {status}): pass the gateway key with --api-key or "
            "GENAI_OPS_API_KEY"
        )
    if status >= 400 and status != 404:  # 404: a server without /models; the run finds out what else it lacks
        excerpt = " ".join(str(body).split())[:200]
        raise OpsError(f"{settings.base_url} answered GET /models with HTTP {status}: {excerpt}")
    served = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)] if isinstance(body, dict) else []
    if served and settings.model not in served:
        raise BadInputError(
            f"--model {settings.model} is not served at {settings.base_url}; it serves: {', '.join(map(str, served))}"
        )


def _prompts(settings: Settings) -> Iterator[Prompt]:
    if settings.prompt_file is not None:
        return cycled(read_prompt_file(settings.prompt_file, output_tokens=settings.output_tokens))
    return synthetic_prompts(
        input_tokens=settings.input_tokens, output_tokens=settings.output_tokens, seed=settings.seed
    )


def run_config(settings: Settings, *, api_key_set: bool, ignore_eos: bool, tag_metadata: bool) -> dict[str, Any]:
    """The settings as recorded in results.json (never the key itself)."""
    config: dict[str, Any] = {
        "url": settings.base_url,
        "model": settings.model,
        "mode": settings.mode.value,
        "duration_s": settings.duration_s,
        "timeout_s": settings.timeout_s,
        "window_s": settings.window_s,
        "seed": settings.seed,
        "user": settings.user,
        "api_key": "set" if api_key_set else "not set",
        "ignore_eos": ignore_eos,
        "metadata": tag_metadata,
        "prompts": str(settings.prompt_file) if settings.prompt_file else "synthetic",
        "output_tokens": settings.output_tokens,
        "slo": settings.slo.as_dict(),
    }
    if settings.prompt_file is None:
        config["input_tokens"] = settings.input_tokens
    if settings.shape is not None:
        config["arrivals"] = settings.arrivals.value
        config["max_connections"] = settings.max_connections
        config["shape"] = [
            {"start_s": s.start, "end_s": s.end, "start_rate": s.start_rate, "end_rate": s.end_rate}
            for s in settings.shape.segments
        ]
        config["expected_requests"] = round(settings.shape.expected_requests, 3)
    else:
        config["concurrency"] = settings.concurrency
    return config


def summary_table(document: dict[str, Any]) -> Table:
    summary = document["summary"]
    table = Table(title=f"loadtest {document['run_id']}", show_header=True)
    table.add_column("metric")
    for p in ("p50", "p90", "p95", "p99", "max"):
        table.add_column(p, justify="right")
    for name, label in (
        ("ttft", "TTFT ms"),
        ("itl", "ITL ms"),
        ("tpot", "TPOT ms"),
        ("e2e", "end-to-end ms"),
        ("send_lag", "send lag ms"),
    ):
        values = summary["latency_ms"][name]
        table.add_row(
            label, *("-" if values[p] is None else f"{values[p]:.1f}" for p in ("p50", "p90", "p95", "p99", "max"))
        )
    return table


def summary_lines(document: dict[str, Any]) -> list[str]:
    s = document["summary"]
    requests, rates = s["requests"], s["request_rate"]
    lines = [
        f"requests: {requests['scheduled']} due, {requests['succeeded']} succeeded, {requests['failed']} failed "
        f"over {s['measured_s']:.1f} s",
        f"rate: offered {rates['offered']:.2f} req/s, achieved {rates['achieved']:.2f} req/s; "
        f"output {s['output_tokens_per_s']:.1f} tokens/s",
    ]
    if s["goodput"] is not None:
        goodput = s["goodput"]
        slo = ", ".join(f"{k.removesuffix('_ms').upper()} <= {v:g} ms" for k, v in goodput["slo"].items())
        lines.append(f"goodput: {goodput['requests_per_s']:.2f} req/s ({goodput['fraction']:.1%}) within {slo}")
    if s["errors"]:
        lines.append("errors: " + ", ".join(f"{kind} x{count}" for kind, count in s["errors"].items()))
    if document["stopped_early"]:
        lines.append("stopped early (SIGINT): the requests in flight were cancelled and count as failed")
    scaling = document.get("extras", {}).get("scaling")
    if scaling:
        times = scaling["times"]

        def after(key: str) -> str:
            return "not seen" if times[key] is None else f"+{times[key]:.0f} s"

        if times["breach_at"] is None:
            lines.append("scaling: no trigger went above its threshold")
        else:
            lines.append(
                f"scaling: after the breach, HPA desired up {after('desired_after_s')}, new pod Ready "
                f"{after('ready_after_s')}, its first token {after('first_token_after_s')}"
            )
    return lines


def loadtest(
    url: Annotated[str, typer.Option(help="OpenAI base URL of LiteLLM or vLLM, e.g. http://127.0.0.1:4000/v1.")],
    model: Annotated[str, typer.Option(help="Model name as the endpoint serves it (its /v1/models).")],
    mode: Annotated[
        Mode, typer.Option(help="open: requests due on a schedule; closed: fixed concurrency.")
    ] = Mode.OPEN,
    rate: Annotated[
        float | None, typer.Option(help="Open loop: requests per second (the peak for ramp/step/spike).")
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Closed loop: requests kept in flight.")] = None,
    duration: Annotated[float, typer.Option(help="Seconds during which requests are sent.")] = 60.0,
    shape: Annotated[Shape, typer.Option(help="How the open-loop rate changes over the run.")] = Shape.CONSTANT,
    arrivals: Annotated[
        Arrivals, typer.Option(help="Open loop: evenly spaced or Poisson arrivals.")
    ] = Arrivals.POISSON,
    base_rate: Annotated[
        float | None,
        typer.Option(help="ramp: the starting rate; step: the rate the steps climb from; spike: the rate around it."),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="step: equal plateaus from --base-rate up to --rate (default 4).")
    ] = None,
    spike_at: Annotated[float | None, typer.Option(help="spike: seconds into the run when it starts.")] = None,
    spike_seconds: Annotated[float | None, typer.Option(help="spike: how long it lasts.")] = None,
    max_connections: Annotated[int, typer.Option(help="Open loop: connection pool size.")] = 1000,
    input_tokens: Annotated[int | None, typer.Option(help="Synthetic prompt length in tokens (default 128).")] = None,
    output_tokens: Annotated[int | None, typer.Option(help="max_tokens of each request (default 64).")] = None,
    prompts: Annotated[
        Path | None, typer.Option(help='JSONL file of prompts ({"prompt": ...} or {"messages": [...]}).')
    ] = None,
    ignore_eos: Annotated[
        bool, typer.Option(help="Send vLLM's ignore_eos and min_tokens so every reply is max_tokens long.")
    ] = True,
    metadata: Annotated[
        bool, typer.Option(help="Tag requests with the run id in `metadata` (LiteLLM tracing); off for vLLM direct.")
    ] = True,
    slo_ttft_ms: Annotated[float | None, typer.Option(help="Goodput: time to first token objective.")] = None,
    slo_tpot_ms: Annotated[float | None, typer.Option(help="Goodput: time per output token objective.")] = None,
    slo_e2e_ms: Annotated[float | None, typer.Option(help="Goodput: end-to-end latency objective.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds one request may take.")] = 600.0,
    window: Annotated[
        float | None, typer.Option(help="Seconds per timeline/plot window (default 1, wider for long runs).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="GENAI_OPS_API_KEY", help="Bearer key (the gateway's sk-...); never printed.")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Run id in request metadata and file names (default generated).")
    ] = None,
    user: Annotated[
        str, typer.Option(help="OpenAI `user` field of every request (the trace's user).")
    ] = "genai-ops-loadtest",
    seed: Annotated[int, typer.Option(help="Seed of Poisson arrivals and synthetic prompts.")] = 1,
    out: Annotated[Path | None, typer.Option(help="Results directory (default loadtest-results/<run id>).")] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print results.json to stdout instead of a table.")
    ] = False,
    watch_scaling: Annotated[
        bool,
        typer.Option(
            help="Sample vLLM/LiteLLM replicas, the ScaledObject's HPA, nodes by pool and capacity type and vLLM's "
            "signals while the load runs; adds the timeline, breach->first-token times and scaling.png."
        ),
    ] = False,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="--watch-scaling: kubeconfig (default $KUBECONFIG or ~/.kube/config).")
    ] = None,
    context: Annotated[str | None, typer.Option(help="--watch-scaling: kubeconfig context (default current).")] = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option(help="--watch-scaling: Prometheus base URL (default: the API server's service proxy)."),
    ] = None,
    watch_interval: Annotated[float, typer.Option(help="--watch-scaling: seconds between samples.")] = 5.0,
) -> None:
    """Load-test an OpenAI-compatible endpoint with streamed chat completions.

    Every latency is measured from the request's scheduled send time (open loop: its arrival time;
    closed loop: when its slot became free), so queueing in the client or the server cannot hide.
    Writes results.json, requests.csv, timeline.csv and loadtest.png to --out.
    """
    settings = validate(
        url=url,
        model=model,
        mode=mode,
        rate=rate,
        concurrency=concurrency,
        duration=duration,
        shape=shape,
        arrivals=arrivals,
        base_rate=base_rate,
        steps=steps,
        spike_at=spike_at,
        spike_seconds=spike_seconds,
        max_connections=max_connections,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        prompts=prompts,
        slo=Slo(ttft_ms=slo_ttft_ms, tpot_ms=slo_tpot_ms, e2e_ms=slo_e2e_ms),
        timeout=timeout,
        window=window,
        run_id=run_id or default_run_id(),
        user=user,
        seed=seed,
        out=out,
    )
    prompt_source = _prompts(settings)  # a bad prompt file is refused before anything is sent
    if not watch_scaling and (kubeconfig or context or prometheus_url):
        raise BadInputError("--kubeconfig, --context and --prometheus-url apply to --watch-scaling only: add it")
    if watch_scaling and not 1.0 <= watch_interval <= 60.0:
        raise BadInputError(f"--watch-interval {watch_interval} is not allowed: give 1 to 60 seconds")
    # The cluster is checked before any load is sent: a wrong kubeconfig fails at once.
    watcher = (
        cluster_watcher(kubeconfig=kubeconfig, context=context, prometheus_url=prometheus_url)
        if watch_scaling
        else None
    )
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    endpoint = Endpoint(
        chat_url=settings.chat_url,
        model=settings.model,
        headers=headers,
        run_id=settings.run_id,
        user=settings.user,
        tag_metadata=metadata,
        ignore_eos=ignore_eos,
        timeout_s=settings.timeout_s,
    )
    config = run_config(settings, api_key_set=bool(api_key), ignore_eos=ignore_eos, tag_metadata=metadata)
    stderr = Console(stderr=True, highlight=False)
    observers: list[RunObserver] = [ProgressBar(stderr)]
    if watcher is not None:
        observers.append(ScalingObserver(watcher, interval_s=watch_interval, plot_path=settings.out_dir / SCALING_PLOT))
    result = asyncio.run(_run(settings, endpoint, headers, prompt_source, config, observers))

    from ops.loadtest.plots import plot_run  # matplotlib loads in about a second: only when a run needs it

    result.files["plot"] = PLOT_FILE
    document = write_results(result, settings.slo, settings.out_dir)
    plot_run(
        document["timeline"],
        settings.out_dir / PLOT_FILE,
        window_s=settings.window_s,
        title=f"loadtest {settings.run_id}",
    )

    stdout = Console(highlight=False)
    if json_output:
        stdout.out(json.dumps(document, indent=2), highlight=False)
    else:
        stdout.print(summary_table(document))
        for line in summary_lines(document):
            stdout.print(line)
        stdout.print(f"results: {settings.out_dir}/ ({', '.join(document['files'].values())})")
    if result.recorder.completed == 0 and result.records:
        first = next(r.error for r in result.records if r.error)
        raise OpsError(f"no request succeeded (first error: {first}); results are in {settings.out_dir}")


async def _run(
    settings: Settings,
    endpoint: Endpoint,
    headers: dict[str, str],
    prompts: Iterator[Prompt],
    config: dict[str, Any],
    observers: list[RunObserver],
) -> RunResult:
    await preflight(settings, headers)
    try:  # before any load is sent (and where observers may write their own files)
        settings.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInputError(
            f"--out {settings.out_dir} cannot be created ({error.strerror}): give a writable directory"
        ) from None
    plan: OpenLoop | ClosedLoop
    if settings.shape is not None:
        plan = OpenLoop(
            shape=settings.shape,
            arrivals=arrival_times(settings.shape, settings.arrivals, seed=settings.seed),
            max_connections=settings.max_connections,
        )
    else:
        assert settings.concurrency is not None  # validate() requires it for a closed loop
        plan = ClosedLoop(concurrency=settings.concurrency, duration_s=settings.duration_s)
    return await run_load(
        run_id=settings.run_id,
        config=config,
        plan=plan,
        endpoint=endpoint,
        prompts=prompts,
        observers=observers,
        window_s=settings.window_s,
    )
