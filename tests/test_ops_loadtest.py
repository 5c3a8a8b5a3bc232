"""`genai-ops loadtest` against a local streaming stub (tests/openai_stub.py) with injected TTFT and token pacing.

Expected values are the stub's injected times and counts worked out here from the rate shapes, not values
computed by the module under test. Runs that time anything serve the stub on the load generator's own event
loop: on a busy shared machine, handing over to another process or thread at every token adds jitter that
is the machine's, not the client's.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import math
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from ops.cli import app, run
from ops.errors import BadInputError
from ops.loadtest.client import Endpoint, RequestRecord
from ops.loadtest.options import base_url
from ops.loadtest.prompts import read_prompt_file, synthetic_prompts
from ops.loadtest.results import RunResult, Slo
from ops.loadtest.runner import ClosedLoop, OpenLoop, RunInfo, Snapshot, run_load
from ops.loadtest.schedule import Arrivals, Shape, arrival_times, counts_per_window, rate_shape
from tests.openai_stub import OpenAIStub

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "genai-ops"
MODEL = "stub-model"


# --- runs on the test's event loop -------------------------------------------------------------------


def endpoint(url: str, *, run_id: str = "test-run") -> Endpoint:
    return Endpoint(
        chat_url=f"{url}/chat/completions",
        model=MODEL,
        headers={"Content-Type": "application/json"},
        run_id=run_id,
        user="tester",
        tag_metadata=True,
        ignore_eos=True,
        timeout_s=30,
    )


def run_against(
    stub: OpenAIStub, plan: Callable[[], OpenLoop | ClosedLoop], *, output_tokens: int, observers: tuple[Any, ...] = ()
) -> RunResult:
    """A run with the stub served on the same event loop (no thread or process handover to wait for)."""

    async def main() -> RunResult:
        async with stub.serving():
            prompts = synthetic_prompts(input_tokens=32, output_tokens=output_tokens)
            return await run_load(
                run_id="test-run",
                config={},
                plan=plan(),
                endpoint=endpoint(stub.base_url),
                prompts=prompts,
                observers=observers,
            )

    return asyncio.run(main())


def open_loop(rate: float, duration: float, *, max_connections: int = 100) -> Callable[[], OpenLoop]:
    shape = rate_shape(Shape.CONSTANT, rate=rate, duration=duration)
    return lambda: OpenLoop(
        shape=shape, arrivals=arrival_times(shape, Arrivals.CONSTANT), max_connections=max_connections
    )


# --- accuracy ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("ttft_ms", "itl_ms"), [(20.0, 5.0), (45.0, 12.0)])
def test_measured_ttft_and_itl_match_the_injected_values_at_light_load(ttft_ms: float, itl_ms: float) -> None:
    stub = OpenAIStub(ttft_s=ttft_ms / 1000, itl_s=itl_ms / 1000)
    result = run_against(stub, open_loop(rate=20, duration=1.5), output_tokens=6)
    summary = result.summary(Slo())
    assert summary["requests"] == {"scheduled": 30, "sent": 30, "succeeded": 30, "failed": 0}
    latency = summary["latency_ms"]
    assert abs(latency["ttft"]["p50"] - ttft_ms) <= 2.0, latency["ttft"]
    assert abs(latency["itl"]["p50"] - itl_ms) <= 2.0, latency["itl"]
    assert abs(latency["tpot"]["p50"] - itl_ms) <= 2.0, latency["tpot"]
    # End to end: the first token, then five more one interval apart.
    assert abs(latency["e2e"]["p50"] - (ttft_ms + 5 * itl_ms)) <= 3.0, latency["e2e"]
    assert summary["output_tokens"] == 30 * 6


# --- the scheduled-time rule -----------------------------------------------------------------------------


class StallAt:
    """An observer that stalls the stub once, at `at` seconds into the run, and keeps every snapshot."""

    interval_s = 0.25

    def __init__(self, stub: OpenAIStub, at: float, seconds: float) -> None:
        self.stub, self.at, self.seconds = stub, at, seconds
        self.stalled = False
        self.started: list[RunInfo] = []
        self.snapshots: list[Snapshot] = []
        self.finished: list[RunResult] = []

    async def on_start(self, info: RunInfo) -> None:
        self.started.append(info)

    async def on_tick(self, snapshot: Snapshot) -> None:
        if not self.stalled and snapshot.elapsed_s >= self.at:
            self.stalled = True
            self.stub.stall(self.seconds)
        self.snapshots.append(snapshot)

    async def on_finish(self, result: RunResult) -> None:
        self.finished.append(result)
        result.extras["stall"] = {"at_s": self.at, "seconds": self.seconds}


def test_a_stall_shows_from_the_scheduled_time_and_hides_from_the_send_time() -> None:
    # 100 req/s for 3 s through 8 connections (like a closed-loop tool with 8 users); the stub stops
    # answering for 1 s at t = 1 s. About 100 requests are due during the stall.
    stub = OpenAIStub(ttft_s=0.01, itl_s=0.002)
    observer = StallAt(stub, at=1.0, seconds=1.0)
    result = run_against(stub, open_loop(100, 3, max_connections=8), output_tokens=4, observers=(observer,))
    ok = [r for r in result.records if r.ok]
    assert len(ok) == 300
    from_schedule = [r.ttft for r in ok if r.ttft is not None]
    from_send = [r.first_token - r.sent for r in ok if r.first_token is not None and r.sent is not None]
    # From the scheduled time: every request due in the stall's first half waited at least half a second.
    assert sum(1 for t in from_schedule if t > 0.5) >= 40
    assert statistics.quantiles(from_schedule, n=10)[-1] > 0.5  # p90
    # From the send time, as a tool that sends only when a connection is free measures it: at most the
    # 8 requests in flight when the stall began show it; the rest waited in the client, unseen.
    assert sum(1 for t in from_send if t > 0.5) <= 8
    assert statistics.quantiles(from_send, n=10)[-1] < 0.05
    # The seam: started once, ticked every 0.25 s through the run, finished with the result.
    assert len(observer.started) == 1
    assert observer.finished == [result]
    assert 10 <= len(observer.snapshots) <= 16
    assert [s.due for s in observer.snapshots] == sorted(s.due for s in observer.snapshots)
    assert result.document(Slo())["extras"] == {"stall": {"at_s": 1.0, "seconds": 1.0}}


# --- arrival schedules -------------------------------------------------------------------------------


def test_constant_arrivals_at_a_constant_rate_are_evenly_spaced() -> None:
    times = list(arrival_times(rate_shape(Shape.CONSTANT, rate=50, duration=2), Arrivals.CONSTANT))
    assert len(times) == 100
    assert all(math.isclose(b - a, 0.02, abs_tol=1e-9) for a, b in itertools.pairwise(times))


@pytest.mark.parametrize(
    ("shape", "params", "window", "expected"),
    [
        # 0 -> 100 req/s over 2 s: Λ(t) = 25 t², so arrivals k = 0..99 at Λ = k fall 7, 18, 32, 43 per 0.5 s.
        (Shape.RAMP, {"rate": 100, "duration": 2}, 0.5, [7, 18, 32, 43]),
        # four plateaus from 0 up to 40 req/s, 1 s each: 10, 20, 30, 40.
        (Shape.STEP, {"rate": 40, "duration": 4, "steps": 4}, 1.0, [10, 20, 30, 40]),
        # two plateaus from 10 up to 30 req/s.
        (Shape.STEP, {"rate": 30, "duration": 2, "steps": 2, "base_rate": 10}, 1.0, [20, 30]),
        # 10 req/s with 100 req/s from 1.0 to 1.5 s.
        (
            Shape.SPIKE,
            {"rate": 100, "duration": 3, "base_rate": 10, "spike_at": 1.0, "spike_seconds": 0.5},
            0.5,
            [5, 5, 50, 5, 5, 5],
        ),
    ],
)
def test_each_shape_schedules_the_counts_its_rate_gives(
    shape: Shape, params: dict[str, Any], window: float, expected: list[int]
) -> None:
    times = list(arrival_times(rate_shape(shape, **params), Arrivals.CONSTANT))
    assert counts_per_window(times, window, params["duration"]) == expected


def test_poisson_arrivals_have_the_rate_and_exponential_gaps() -> None:
    times = list(arrival_times(rate_shape(Shape.CONSTANT, rate=200, duration=20), Arrivals.POISSON, seed=7))
    assert abs(len(times) - 4000) <= 3 * math.sqrt(4000)  # Poisson: variance = mean
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert statistics.mean(gaps) == pytest.approx(0.005, rel=0.05)
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, abs=0.05)  # exponential: CV 1
    assert times == list(arrival_times(rate_shape(Shape.CONSTANT, rate=200, duration=20), Arrivals.POISSON, seed=7))
    assert times != list(arrival_times(rate_shape(Shape.CONSTANT, rate=200, duration=20), Arrivals.POISSON, seed=8))


def test_poisson_arrivals_follow_a_ramp() -> None:
    # 0 -> 100 req/s over 20 s: 250 expected in the first half, 750 in the second.
    times = list(arrival_times(rate_shape(Shape.RAMP, rate=100, duration=20), Arrivals.POISSON, seed=3))
    first, second = counts_per_window(times, 10, 20)
    assert abs(first - 250) <= 3 * math.sqrt(250)
    assert abs(second - 750) <= 3 * math.sqrt(750)


def test_a_closed_loop_keeps_its_concurrency_and_times_from_the_free_slot() -> None:
    stub = OpenAIStub(ttft_s=0.02, itl_s=0.005)
    result = run_against(stub, lambda: ClosedLoop(concurrency=4, duration_s=1.0), output_tokens=4)
    assert stub.most_open_streams == 4
    # Each request takes about 20 + 3 x 5 = 35 ms, so 4 slots finish about 4 / 0.035 = 114 in a second.
    assert 80 <= len(result.records) <= 125
    by_end = sorted(result.records, key=lambda r: r.scheduled)
    # A slot's next request is due when its previous one ended: nothing waits unseen before it is sent.
    lags = [r.send_lag for r in by_end if r.send_lag is not None]
    assert statistics.median(lags) < 0.005


# --- results: tokens, goodput, files, request contents --------------------------------------------------


def test_output_tokens_are_counted_from_chunks_when_the_server_sends_no_usage() -> None:
    stub = OpenAIStub(ttft_s=0.005, itl_s=0.001, honour_usage=False)
    result = run_against(stub, open_loop(rate=40, duration=0.5), output_tokens=7)
    summary = result.summary(Slo())
    assert summary["requests"]["succeeded"] == 20
    assert summary["output_tokens"] == 20 * 7
    assert summary["tokens_from_usage"] == 0.0


def _record(ttft: float, last_token: float, tokens: int, end: float, error: str | None = None) -> RequestRecord:
    return RequestRecord(
        index=0, scheduled=100.0, sent=100.0, first_token=100.0 + ttft, last_token=100.0 + last_token,
        end=100.0 + end, usage_tokens=tokens, error=error,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("record", "met"),
    [
        (_record(ttft=0.200, last_token=0.290, tokens=10, end=0.300), True),  # TTFT at the limit, TPOT 10 ms
        (_record(ttft=0.2005, last_token=0.290, tokens=10, end=0.300), False),  # TTFT just over 200 ms
        (_record(ttft=0.100, last_token=0.1905, tokens=10, end=0.300), False),  # TPOT 10.06 ms, just over 10
        (_record(ttft=0.100, last_token=0.100, tokens=1, end=0.300), True),  # one token: no TPOT to miss
        (_record(ttft=0.100, last_token=0.190, tokens=10, end=0.300, error="HTTP 500"), False),
    ],
)
def test_goodput_counts_requests_within_every_slo(record: RequestRecord, met: bool) -> None:
    assert Slo(ttft_ms=200, tpot_ms=10).met_by(record) is met


def _console(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=timeout)


def test_a_run_through_the_console_script_writes_json_csv_and_a_plot(tmp_path: Path) -> None:
    out = tmp_path / "results"
    with OpenAIStub(ttft_s=0.02, itl_s=0.005) as stub:
        # 50 req/s, constant arrivals, 2 s: 100 requests of 4 tokens.
        args = ["loadtest", "--url", stub.base_url, "--model", MODEL, "--rate", "50", "--duration", "2"]
        args += ["--arrivals", "constant", "--output-tokens", "4", "--run-id", "run-42", "--out", str(out)]
        args += ["--slo-ttft-ms", "500", "--api-key", "sk-secret-key"]
        result = _console(args)
        bodies = stub.bodies()
    assert result.returncode == 0, result.stderr
    assert "sk-secret-key" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr

    document = json.loads((out / "results.json").read_text())
    assert document["run_id"] == "run-42"
    assert "sk-secret-key" not in (out / "results.json").read_text()
    assert document["config"]["api_key"] == "set"
    summary = document["summary"]
    assert summary["requests"] == {"scheduled": 100, "sent": 100, "succeeded": 100, "failed": 0}
    assert summary["output_tokens"] == 400
    assert summary["tokens_from_usage"] == 1.0
    assert summary["request_rate"]["offered"] == 50.0
    assert 45 <= summary["request_rate"]["achieved"] <= 50.5
    assert summary["goodput"]["requests"] == 100
    assert set(summary["latency_ms"]) == {"ttft", "itl", "tpot", "e2e", "send_lag"}
    assert set(summary["latency_ms"]["ttft"]) == {"count", "mean", "min", "p50", "p90", "p95", "p99", "max"}
    assert document["files"] == {
        "plot": "loadtest.png",
        "results": "results.json",
        "requests": "requests.csv",
        "timeline": "timeline.csv",
    }

    with (out / "requests.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 100
    assert {row["status"] for row in rows} == {"200"}
    assert {row["error"] for row in rows} == {""}
    assert all(abs(float(row["ttft_ms"]) - 20) < 15 for row in rows)
    assert [int(row["index"]) for row in rows] == list(range(100))
    with (out / "timeline.csv").open() as handle:
        timeline = list(csv.DictReader(handle))
    assert [float(row["t_s"]) for row in timeline[:2]] == [0.0, 1.0]
    assert [int(row["scheduled"]) for row in timeline[:2]] == [50, 50]
    assert float(timeline[0]["target_rate"]) == 50.0

    with Image.open(out / "loadtest.png") as image:
        image.load()
        assert image.format == "PNG"
        assert image.size == (720, 640)

    # What reached the server: streamed with usage, the vLLM length hints, the run id for LiteLLM's tracing.
    assert len(bodies) == 100
    body = bodies[0]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["ignore_eos"], body["min_tokens"]) == (4, True, 4)
    assert body["metadata"] == {"tags": ["run-42"], "trace_metadata": {"run_id": "run-42"}}
    assert body["user"] == "genai-ops-loadtest"
    assert len({b["messages"][0]["content"].split(".")[0] for b in bodies}) == 100  # a unique head per request


def test_ctrl_c_stops_the_run_and_still_writes_the_results(tmp_path: Path) -> None:
    out = tmp_path / "stopped"
    with OpenAIStub(ttft_s=0.02, itl_s=0.005) as stub:
        args = [str(SCRIPT), "loadtest", "--url", stub.base_url, "--model", MODEL, "--rate", "20"]
        args += ["--duration", "60", "--output-tokens", "200", "--out", str(out)]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while stub.requests < 30 and time.monotonic() < deadline:  # 1.5 s in: the first ones have finished
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    document = json.loads((out / "results.json").read_text())
    assert document["stopped_early"] is True
    requests = document["summary"]["requests"]
    assert 30 <= requests["scheduled"] < 60 * 20
    assert requests["succeeded"] >= 1
    # Each request streams for about 1 s (200 tokens, 5 ms apart): the ones in flight were cancelled.
    assert document["summary"]["errors"] == {"cancelled": requests["failed"]}
    assert requests["failed"] >= 1
    assert "stopped early" in stdout


def test_help_lists_the_options() -> None:
    result = _console(["loadtest", "--help"])
    assert result.returncode == 0
    for option in ("--rate", "--concurrency", "--shape", "--arrivals", "--prompts", "--slo-ttft-ms", "--out"):
        assert option in result.stdout


# --- bad input -----------------------------------------------------------------------------------------

URL = "http://127.0.0.1:9/v1"  # the discard port: nothing answers there


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "-1"], "--rate -1 is not allowed"),
        (["--rate", "10", "--duration", "0"], "--duration 0 is not allowed"),
    ],
)
def test_bad_input_through_the_console_script_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = _console(["loadtest", "--url", URL, "--model", MODEL, *args])
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_malformed_prompt_file_is_named_with_its_line(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "hello"}\n\n{"prompt": "unterminated\n')
    result = _console(["loadtest", "--url", URL, "--model", MODEL, "--rate", "1", "--prompts", str(prompts)])
    assert result.returncode == 2
    assert f"{prompts}:3: not JSON" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_an_unreachable_endpoint_is_one_message() -> None:
    result = _console(["loadtest", "--url", "http://127.0.0.1:9/v1", "--model", MODEL, "--rate", "1"])
    assert result.returncode == 1
    assert "cannot reach http://127.0.0.1:9/v1 (connection refused)" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "ftp://host/v1", "--rate", "1"], "--url 'ftp://host/v1' is not an http(s) URL"),
        (["--url", "http://user:pw@host/v1", "--rate", "1"], "--url must not carry credentials"),
        (["--url", URL, "--rate", "inf"], "--rate inf is not allowed"),
        (["--url", URL], "--mode open needs --rate"),
        (["--url", URL, "--mode", "closed"], "--mode closed needs --concurrency"),
        (["--url", URL, "--mode", "closed", "--concurrency", "0"], "--concurrency 0 is not allowed"),
        (["--url", URL, "--mode", "closed", "--concurrency", "2", "--shape", "ramp"], "--mode closed runs a fixed"),
        (["--url", URL, "--rate", "1", "--concurrency", "2"], "--concurrency applies to --mode closed"),
        (["--url", URL, "--rate", "0.5", "--duration", "1"], "schedules 0.50 requests"),
        (["--url", URL, "--rate", "5", "--shape", "spike"], "--shape spike needs --spike-at"),
        (
            ["--url", URL, "--rate", "5", "--shape", "spike", "--spike-at", "50", "--spike-seconds", "20"],
            "the spike must end within the run",
        ),
        (
            [
                "--url",
                URL,
                "--rate",
                "5",
                "--shape",
                "spike",
                "--spike-at",
                "1",
                "--spike-seconds",
                "1",
                "--base-rate",
                "9",
            ],
            "--rate 5 must be above --base-rate 9",
        ),
        (["--url", URL, "--rate", "5", "--shape", "step", "--steps", "1"], "--steps 1 is not allowed"),
        (["--url", URL, "--rate", "5", "--steps", "3"], "--steps applies to --shape step"),
        (["--url", URL, "--rate", "5", "--base-rate", "1"], "--base-rate applies to --shape ramp"),
        (["--url", URL, "--rate", "5", "--shape", "ramp", "--base-rate", "-2"], "--base-rate -2 is not allowed"),
        (["--url", URL, "--rate", "5", "--slo-ttft-ms", "0"], "--slo-ttft-ms 0 is not allowed"),
        (["--url", URL, "--rate", "5", "--output-tokens", "0"], "--output-tokens 0 is not allowed"),
        (["--url", URL, "--rate", "5", "--run-id", "a/b"], "--run-id 'a/b' is not allowed"),
        (["--url", URL, "--rate", "5", "--prompts", "/no/such/file.jsonl"], "--prompts /no/such/file.jsonl is not"),
    ],
)
def test_bad_options_are_refused_with_a_sentence(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(lambda: app(["loadtest", "--model", MODEL, *args], standalone_mode=True)) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert message in err
    assert err.startswith("error: ")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", ":1: each line must be a JSON object, not list"),
        ('{"text": "hi"}', ":1: needs a non-empty 'prompt' string or a 'messages' list"),
        ('{"messages": []}', ":1: 'messages' must be a non-empty list"),
        ('{"messages": [{"role": "robot", "content": "x"}]}', ":1: message 1 has role 'robot'"),
        ('{"messages": [{"role": "user"}]}', ":1: message 1 needs 'content'"),
        ('{"prompt": "hi", "max_tokens": 0}', ":1: 'max_tokens' is 0"),
        ('{"prompt": "hi", "max_tokens": true}', ":1: 'max_tokens' is True"),
    ],
)
def test_prompt_file_lines_are_checked(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(BadInputError) as caught:
        read_prompt_file(path, output_tokens=8)
    assert f"{path}{message}" in str(caught.value)


def test_a_prompt_file_gives_messages_and_per_line_lengths(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prompt": "hi"}\n\n'
        '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}], "max_tokens": 3}\n'
    )
    first, second = read_prompt_file(path, output_tokens=8)
    assert first.messages == ({"role": "user", "content": "hi"},)
    assert first.max_tokens == 8
    assert [m["role"] for m in second.messages] == ["system", "user"]
    assert second.max_tokens == 3


def test_a_model_the_endpoint_does_not_serve_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with OpenAIStub() as stub:
        code = run(
            lambda: app(["loadtest", "--url", stub.base_url, "--model", "other", "--rate", "1"], standalone_mode=True)
        )
    assert code == 2
    assert f"--model other is not served at {stub.base_url}; it serves: stub-model" in " ".join(
        capsys.readouterr().err.split()
    )


class RefusingStub(OpenAIStub):
    """Answers GET /v1/models as LiteLLM without a database answers a key it cannot check (FACTS.md)."""

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "No connected db."}}, status=400)


def test_an_endpoint_that_refuses_the_model_list_is_one_message(capsys: pytest.CaptureFixture[str]) -> None:
    with RefusingStub() as stub:
        code = run(
            lambda: app(["loadtest", "--url", stub.base_url, "--model", MODEL, "--rate", "1"], standalone_mode=True)
        )
        sent = stub.requests
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"{stub.base_url} answered GET /models with HTTP 400:" in err
    assert "No connected db." in err
    assert sent == 0


def test_an_out_directory_that_cannot_be_made_is_refused_before_the_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with OpenAIStub() as stub:
        args = ["loadtest", "--url", stub.base_url, "--model", MODEL, "--rate", "5", "--out", str(blocker / "results")]
        code = run(lambda: app(args, standalone_mode=True))
        sent = stub.requests
    assert code == 2
    assert f"--out {blocker / 'results'} cannot be created" in " ".join(capsys.readouterr().err.split())
    assert sent == 0
    args = ["loadtest", "--url", URL, "--model", MODEL, "--rate", "5", "--out", str(blocker)]
    assert run(lambda: app(args, standalone_mode=True)) == 2
    assert f"--out {blocker} is a file" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://127.0.0.1:4000", "http://127.0.0.1:4000/v1"),
        ("http://127.0.0.1:4000/", "http://127.0.0.1:4000/v1"),
        ("https://gw.example/v1/", "https://gw.example/v1"),
        ("http://gw:4000/v1/chat/completions", "http://gw:4000/v1"),
    ],
)
def test_the_base_url_is_normalised(url: str, base: str) -> None:
    assert base_url(url) == base
