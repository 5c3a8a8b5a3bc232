"""How fast `genai-ops loadtest` can drive a streaming server, next to guidellm and aiperf on the same stub.

Each run gets a fresh OpenAI-compatible stub in its own process (tests/openai_stub.py: first token 20 ms
after a request arrives, then a token every 5 ms; 16 output tokens; 128-token prompts), so the stub has a
core and the load generator the other; at light load the stub keeps its deadlines precisely (it busy-waits
the last millisecond), under load with plain asyncio timers (up to a millisecond late, reported by the
stub). For each tool it prints:

- the client's overhead on time to first token at light load (10 req/s): its TTFT p50 minus the 20 ms
  the stub injects (for ours also minus how late the stub itself wrote the first token, from the stub's
  own clock);
- the highest open-loop rate (constant arrivals, 10 s per level) it sustains: achieved request rate
  within 5% of the target, TTFT p50 within 10 ms of the injected 20 ms, no error. Levels go up until two
  in a row fail; a level that fails is tried once more (`--tries`), since on a shared machine another
  process's burst of work can starve one run.

guidellm and aiperf run from their own venvs (`make bench-loadtest` installs them: requirements-guidellm.txt,
requirements-aiperf.txt). Offline, both need a tokenizer they can load without the Hugging Face Hub: the
script trains a small byte-level BPE one with the `tokenizers` package from their venv. A tool that is
not installed, or fails, is reported with the reason, and the others still run.

    .venv/bin/python benchmarks/loadtest_client.py [--duration 10] [--rates 250 500 ...] [--tools ours guidellm aiperf]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ops.loadtest.client import Endpoint  # noqa: E402
from ops.loadtest.prompts import FILLER_WORDS, synthetic_prompts  # noqa: E402
from ops.loadtest.results import Slo  # noqa: E402
from ops.loadtest.runner import OpenLoop, run_load  # noqa: E402
from ops.loadtest.schedule import Arrivals, Shape, arrival_times, rate_shape  # noqa: E402

TTFT_MS = 20.0
ITL_MS = 5.0
INPUT_TOKENS = 128
OUTPUT_TOKENS = 16
LIGHT_RATE = 10.0
RATE_TOLERANCE = 0.05
TTFT_TOLERANCE_MS = 10.0
MODEL = "stub-model"
VENVS = {"guidellm": ROOT / ".venv-guidellm", "aiperf": ROOT / ".venv-aiperf"}
TOOL_TIMEOUT_S = 240.0  # startup (tens of seconds for these tools) plus the run
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Loopback only: never through an HTTP proxy.
_ENV = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}


@dataclass
class Level:
    """One run of one tool at one rate, as that tool reports it."""

    target: float
    achieved: float | None = None
    ttft_p50_ms: float | None = None
    itl_p50_ms: float | None = None
    errors: int | None = None
    stub_core_share: float | None = None  # stub CPU seconds per second of load
    stub_first_token_late_ms: float | None = None
    failure: str | None = None

    @property
    def sustained(self) -> bool:
        return (
            self.failure is None
            and self.achieved is not None
            and abs(self.achieved - self.target) <= RATE_TOLERANCE * self.target
            and self.ttft_p50_ms is not None
            and abs(self.ttft_p50_ms - TTFT_MS) <= TTFT_TOLERANCE_MS
            and self.errors == 0
        )


class ToolUnavailableError(Exception):
    """The tool cannot run here; the message says why."""


# --- the stub -----------------------------------------------------------------------------------------


@dataclass
class Stub:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime

    def first_token_late_ms(self) -> float | None:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url.removesuffix("/v1") + "/stub/stats", timeout=5) as response:
            late = json.loads(response.read())["first_token_lateness_p50_ms"]
            return None if late is None else float(late)


@contextmanager
def stub(*, precise: bool) -> Iterator[Stub]:
    args = [sys.executable, "-m", "tests.openai_stub", "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS)]
    args += [] if precise else ["--coarse"]
    process = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_ENV)
    try:
        assert process.stdout is not None
        port = json.loads(process.stdout.readline())["port"]
        yield Stub(url=f"http://127.0.0.1:{port}/v1", pid=process.pid)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measured(run: Callable[[Stub, float, float], Level], rate: float, duration: float) -> Level:
    # Light load: the stub meets its deadlines to a fraction of a millisecond by keeping busy near them. Under
    # load that busy wait would take CPU from the client on two cores; plain timers are up to 1 ms late.
    with stub(precise=rate <= LIGHT_RATE) as server:
        before = server.cpu_seconds()
        level = run(server, rate, duration)
        level.stub_core_share = (server.cpu_seconds() - before) / duration
        level.stub_first_token_late_ms = server.first_token_late_ms()
    return level


# --- the tools ------------------------------------------------------------------------------------------


def ours(server: Stub, rate: float, duration: float) -> Level:
    endpoint = Endpoint(
        chat_url=f"{server.url}/chat/completions",
        model=MODEL,
        headers={"Content-Type": "application/json"},
        run_id="bench",
        user="bench",
        tag_metadata=True,
        ignore_eos=True,
        timeout_s=60,
    )
    shape = rate_shape(Shape.CONSTANT, rate=rate, duration=duration)
    plan = OpenLoop(shape=shape, arrivals=arrival_times(shape, Arrivals.CONSTANT), max_connections=1000)
    prompts = synthetic_prompts(input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS)
    result = asyncio.run(run_load(run_id="bench", config={}, plan=plan, endpoint=endpoint, prompts=prompts))
    summary = result.summary(Slo())
    return Level(
        target=rate,
        achieved=summary["request_rate"]["achieved"],
        ttft_p50_ms=summary["latency_ms"]["ttft"]["p50"],
        itl_p50_ms=summary["latency_ms"]["itl"]["p50"],
        errors=summary["requests"]["failed"],
    )


def _run_tool(args: Sequence[str], workdir: Path, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(
            args, cwd=workdir, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env or _ENV, check=False
        )
    except subprocess.TimeoutExpired:
        raise ToolUnavailableError(f"did not finish within {TOOL_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        tail = " | ".join(line.strip() for line in (done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ToolUnavailableError(f"exit {done.returncode}: {tail[:400]}")


def guidellm(tokenizer: Path) -> Callable[[Stub, float, float], Level]:
    binary = VENVS["guidellm"] / "bin" / "guidellm"

    def run(server: Stub, rate: float, duration: float) -> Level:
        with tempfile.TemporaryDirectory() as work:
            out = Path(work) / "guidellm.json"
            _run_tool(
                [
                    str(binary),
                    "run",
                    "--backend",
                    f"kind=openai_http,target={server.url.removesuffix('/v1')},request_format=/v1/chat/completions",
                    "--profile",
                    f"kind=constant,rate={rate:g}",
                    "--constraint",
                    f"kind=max_duration,seconds={duration:g}",
                    "--data",
                    f"kind=synthetic_text,prompt_tokens={INPUT_TOKENS},output_tokens={OUTPUT_TOKENS}",
                    "--tokenizer",
                    f"kind=huggingface_auto,model={tokenizer}",
                    "--output",
                    f"kind=json,path={out}",
                    "--disable-console",
                ],
                Path(work),
                env={**_ENV, "HF_HUB_OFFLINE": "1"},
            )
            metrics = json.loads(out.read_text())["benchmarks"][0]["metrics"]
        return Level(
            target=rate,
            achieved=metrics["requests_per_second"]["successful"]["mean"],
            ttft_p50_ms=metrics["time_to_first_token_ms"]["successful"]["median"],
            itl_p50_ms=metrics["inter_token_latency_ms"]["successful"]["median"],
            errors=int(metrics["request_totals"]["errored"]),
        )

    return run


def aiperf(tokenizer: Path) -> Callable[[Stub, float, float], Level]:
    binary = VENVS["aiperf"] / "bin" / "aiperf"

    def run(server: Stub, rate: float, duration: float) -> Level:
        with tempfile.TemporaryDirectory() as work:
            _run_tool(
                [
                    str(binary),
                    "profile",
                    "--model",
                    MODEL,
                    "--url",
                    server.url.removesuffix("/v1"),
                    "--endpoint-type",
                    "chat",
                    "--streaming",
                    "--request-rate",
                    f"{rate:g}",
                    "--arrival-pattern",
                    "constant",
                    "--benchmark-duration",
                    f"{duration:g}",
                    "--prompt-input-tokens-mean",
                    str(INPUT_TOKENS),
                    "--prompt-input-tokens-stddev",
                    "0",
                    "--prompt-output-tokens-mean",
                    str(OUTPUT_TOKENS),
                    "--prompt-output-tokens-stddev",
                    "0",
                    "--tokenizer",
                    str(tokenizer),
                    "--output-artifact-dir",
                    work,
                    "--ui-type",
                    "none",
                    "--no-server-metrics",
                    "--no-gpu-telemetry",
                    # Output tokens from the stream's usage: the local tokenizer splits the stub's "tok " in two.
                    "--use-server-token-count",
                ],
                Path(work),
            )
            report = json.loads((Path(work) / "profile_export_aiperf.json").read_text())
        errors = sum(int(entry.get("count", 0)) for entry in report.get("error_summary") or [])
        return Level(
            target=rate,
            achieved=report["request_throughput"]["avg"],
            ttft_p50_ms=report["time_to_first_token"]["p50"],
            itl_p50_ms=report["inter_token_latency"]["p50"],
            errors=errors,
        )

    return run


# Trains a byte-level BPE tokenizer (every string encodes) and saves it where transformers' AutoTokenizer
# loads it from a path, so neither tool reaches for the Hugging Face Hub.
_TOKENIZER_SCRIPT = """
import random, sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
words = sys.argv[2].split()
draw = random.Random(1)
corpus = [" ".join(draw.choice(words) for _ in range(40)) for _ in range(2000)]
tokenizer = Tokenizer(models.BPE())
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<s>", "</s>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tokenizer.train_from_iterator(corpus, trainer)
PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>").save_pretrained(sys.argv[1])
"""


def local_tokenizer(directory: Path) -> Path:
    """A tokenizer directory trained with the first tool venv that has `tokenizers` and `transformers`."""
    for venv in VENVS.values():
        python = venv / "bin" / "python"
        if python.exists():
            done = subprocess.run(
                [str(python), "-c", _TOKENIZER_SCRIPT, str(directory), " ".join(FILLER_WORDS)],
                capture_output=True,
                text=True,
                check=False,
                env=_ENV,
            )
            if done.returncode == 0:
                return directory
    raise ToolUnavailableError("no tool venv could build a local tokenizer")


def tool_version(name: str) -> str:
    python = VENVS[name] / "bin" / "python"
    if not (VENVS[name] / ".installed").exists() or not python.exists():
        raise ToolUnavailableError(
            f"not installed ({VENVS[name].name}/.installed missing: `make {VENVS[name].name}/.installed` "
            "installs it and shows why it fails, e.g. no access to PyPI)"
        )
    done = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version('{name}'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ToolUnavailableError(f"installed but does not import: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


# --- the ladder and the report ------------------------------------------------------------------------


def attempt(run: Callable[[Stub, float, float], Level], rate: float, duration: float) -> Level:
    try:
        return measured(run, rate, duration)
    except ToolUnavailableError as error:
        return Level(target=rate, failure=str(error))


def ladder(
    run: Callable[[Stub, float, float], Level], rates: Sequence[float], duration: float, tries: int
) -> list[Level]:
    """Levels from the lowest rate up, until two in a row fail; a level gets `tries` tries to pass."""
    levels: list[Level] = []
    failures_in_a_row = 0
    for rate in rates:
        for _ in range(tries):
            level = attempt(run, rate, duration)
            print("   ", describe(level), flush=True)
            if level.sustained or level.failure is not None:
                break
        levels.append(level)
        failures_in_a_row = 0 if level.sustained else failures_in_a_row + 1
        if failures_in_a_row == 2:
            break
    return levels


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def describe(level: Level) -> str:
    if level.failure is not None:
        return f"{level.target:g} req/s: failed: {level.failure}"
    verdict = "sustained" if level.sustained else "not sustained"
    return (
        f"{level.target:g} req/s: achieved {_fmt(level.achieved)}, TTFT p50 {_fmt(level.ttft_p50_ms, '.2f')} ms, "
        f"ITL p50 {_fmt(level.itl_p50_ms, '.2f')} ms, errors {level.errors}, stub {_fmt(level.stub_core_share, '.0%')} "
        f"of a core: {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    parser.add_argument("--rates", type=float, nargs="+", default=[250, 500, 750, 1000, 1250, 1500, 1750, 2000])
    parser.add_argument("--tools", nargs="+", default=["ours", "guidellm", "aiperf"])
    parser.add_argument(
        "--tries", type=int, default=2, help="tries per level (a shared machine's other load can fail one run)"
    )
    args = parser.parse_args(argv)

    print(
        f"stub: first token {TTFT_MS:g} ms after arrival, then one token every {ITL_MS:g} ms; {INPUT_TOKENS}-token "
        f"prompts, {OUTPUT_TOKENS} output tokens; constant arrivals, {args.duration:g} s per level; "
        f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start"
    )
    rows: list[tuple[str, str, Level | None, float | None, str]] = []
    with tempfile.TemporaryDirectory() as work:
        tokenizer: Path | None = None
        for name in args.tools:
            run: Callable[[Stub, float, float], Level]
            try:
                if name == "ours":
                    version, run = "genai-ops loadtest", ours
                else:
                    version = f"{name} {tool_version(name)}"
                    tokenizer = tokenizer or local_tokenizer(Path(work) / "tokenizer")
                    run = guidellm(tokenizer) if name == "guidellm" else aiperf(tokenizer)
            except ToolUnavailableError as error:
                print(f"{name}: not run: {error}", flush=True)
                rows.append((name, name, None, None, f"not run: {error}"))
                continue
            print(f"{version}:", flush=True)
            light = attempt(run, LIGHT_RATE, args.duration)
            print("    light load:", describe(light), flush=True)
            levels = ladder(run, args.rates, args.duration, args.tries)
            best = max((level.target for level in levels if level.sustained), default=None)
            rows.append((name, version, light, best, ""))

    print()
    print("| client | TTFT p50 at 10 req/s (ms) | overhead p50 (ms) | highest sustained open-loop rate (req/s) |")
    print("|---|---|---|---|")
    for _name, version, at_light_load, best, note in rows:
        if at_light_load is None or at_light_load.failure is not None:
            reason = note or (at_light_load.failure if at_light_load is not None else "")
            print(f"| {version} | - | - | {reason} |")
            continue
        ttft = at_light_load.ttft_p50_ms
        overhead = None if ttft is None else ttft - TTFT_MS
        # At the top of the ladder the stub, on its one core, may be what stops it going higher.
        ceiling = "" if best is None or best < max(args.rates) else ">= "
        print(f"| {version} | {_fmt(ttft, '.2f')} | {_fmt(overhead, '.2f')} | {ceiling}{_fmt(best, 'g')} |")
    ours_light = next((measured_light for name, _, measured_light, _, _ in rows if name == "ours"), None)
    if (
        ours_light is not None
        and ours_light.ttft_p50_ms is not None
        and ours_light.stub_first_token_late_ms is not None
    ):
        overhead = ours_light.ttft_p50_ms - TTFT_MS
        late = ours_light.stub_first_token_late_ms
        print(
            f"\ngenai-ops loadtest at light load: of its {overhead:.2f} ms over the injected TTFT, {late:.2f} ms is "
            f"the stub's timer (p50 of how late it wrote first tokens) and {overhead - late:.2f} ms the HTTP handling "
            "of client and stub on loopback"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
