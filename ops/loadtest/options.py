"""The load test's options, checked before anything is sent: each refusal names the option, its value and
what is allowed (BadInputError, exit 2)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ops.errors import BadInputError
from ops.loadtest.results import Slo
from ops.loadtest.schedule import Arrivals, RateShape, Shape, rate_shape

MAX_DURATION_S = 7 * 24 * 3600
MAX_TOKENS = 1_000_000
MAX_CONNECTIONS = 100_000
DEFAULT_INPUT_TOKENS = 128
DEFAULT_OUTPUT_TOKENS = 64
DEFAULT_STEPS = 4
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Mode(StrEnum):
    OPEN = "open"  # requests due on an arrival schedule, whatever the server does
    CLOSED = "closed"  # a fixed number of slots, each sending when its previous request ends


@dataclass(frozen=True)
class Settings:
    """Validated options of one run."""

    base_url: str  # the OpenAI base URL, e.g. http://127.0.0.1:4000/v1
    model: str
    mode: Mode
    duration_s: float
    shape: RateShape | None  # open loop
    arrivals: Arrivals
    concurrency: int | None  # closed loop
    max_connections: int
    input_tokens: int
    output_tokens: int
    prompt_file: Path | None
    slo: Slo
    timeout_s: float
    window_s: float
    run_id: str
    user: str
    seed: int
    out_dir: Path

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def models_url(self) -> str:
        return f"{self.base_url}/models"


def _positive(option: str, value: float | None, unit: str, *, limit: float = math.inf) -> None:
    if value is not None and not (math.isfinite(value) and 0 < value <= limit):
        bound = "" if math.isinf(limit) else f" and at most {limit:g}"
        raise BadInputError(f"{option} {value:g} is not allowed: give a number of {unit} above 0{bound}")


def _whole(option: str, value: int | None, what: str, *, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise BadInputError(f"{option} {value} is not allowed: give a whole number of {what} from {low} to {high}")


def base_url(url: str) -> str:
    """The OpenAI base URL from --url: http(s), a host, no credentials; a bare host gets /v1."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInputError(
            f"--url {url!r} is not an http(s) URL with a host: give the gateway's OpenAI base URL, "
            "e.g. http://127.0.0.1:4000/v1"
        )
    if parts.username or parts.password:
        raise BadInputError("--url must not carry credentials: give the key with --api-key or GENAI_OPS_API_KEY")
    if parts.query or parts.fragment:
        raise BadInputError(f"--url {url!r} has a query or fragment: give the base URL only, e.g. http://host:4000/v1")
    try:
        _ = parts.port  # raises on a port out of range or not a number
    except ValueError:
        raise BadInputError(f"--url {url!r} has an invalid port: give a port from 1 to 65535") from None
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        path = path.removesuffix("/chat/completions")
    if not path:
        path = "/v1"  # vLLM serves only under /v1; LiteLLM serves both
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _shape(
    shape: Shape,
    *,
    rate: float,
    duration: float,
    base_rate: float | None,
    steps: int | None,
    spike_at: float | None,
    spike_seconds: float | None,
) -> RateShape:
    if shape is not Shape.STEP and steps is not None:
        raise BadInputError(f"--steps applies to --shape step, not --shape {shape.value}")
    if shape is not Shape.SPIKE and (spike_at is not None or spike_seconds is not None):
        raise BadInputError(f"--spike-at and --spike-seconds apply to --shape spike, not --shape {shape.value}")
    if shape is Shape.CONSTANT and base_rate is not None:
        raise BadInputError("--base-rate applies to --shape ramp, step or spike; a constant shape runs at --rate")
    if base_rate is not None and not (math.isfinite(base_rate) and base_rate >= 0):
        raise BadInputError(f"--base-rate {base_rate:g} is not allowed: give requests per second of 0 or more")
    base = base_rate or 0.0
    if shape is Shape.STEP:
        _whole("--steps", steps, "steps", low=2, high=1000)
    if shape is Shape.SPIKE:
        if spike_at is None or spike_seconds is None:
            raise BadInputError(
                "--shape spike needs --spike-at (seconds into the run) and --spike-seconds (its length)"
            )
        if not (math.isfinite(spike_at) and 0 <= spike_at < duration):
            raise BadInputError(
                f"--spike-at {spike_at:g} is not allowed: give seconds from 0 to below --duration {duration:g}"
            )
        _positive("--spike-seconds", spike_seconds, "seconds")
        if spike_at + spike_seconds > duration:
            raise BadInputError(
                f"--spike-at {spike_at:g} plus --spike-seconds {spike_seconds:g} ends after --duration {duration:g}: "
                "the spike must end within the run"
            )
        if rate <= base:
            raise BadInputError(f"--rate {rate:g} must be above --base-rate {base:g} for a spike")
    result = rate_shape(
        shape,
        rate=rate,
        duration=duration,
        base_rate=base,
        steps=steps or DEFAULT_STEPS,
        spike_at=spike_at or 0.0,
        spike_seconds=spike_seconds or 0.0,
    )
    if result.expected_requests < 1:
        raise BadInputError(
            f"--rate {rate:g} over --duration {duration:g} s schedules {result.expected_requests:.2f} requests: "
            "raise the rate or the duration so at least one is due"
        )
    return result


def validate(
    *,
    url: str,
    model: str,
    mode: Mode,
    rate: float | None,
    concurrency: int | None,
    duration: float,
    shape: Shape,
    arrivals: Arrivals,
    base_rate: float | None,
    steps: int | None,
    spike_at: float | None,
    spike_seconds: float | None,
    max_connections: int,
    input_tokens: int | None,
    output_tokens: int | None,
    prompts: Path | None,
    slo: Slo,
    timeout: float,
    window: float | None,
    run_id: str,
    user: str,
    seed: int,
    out: Path | None,
) -> Settings:
    """Every option checked together; the first problem found is raised as BadInputError."""
    base = base_url(url)
    if not model.strip():
        raise BadInputError("--model is empty: give the model name the gateway serves (see its /v1/models)")
    _positive("--duration", duration, "seconds", limit=MAX_DURATION_S)
    _positive("--rate", rate, "requests per second")
    _whole("--concurrency", concurrency, "slots", low=1, high=MAX_CONNECTIONS)
    _whole("--max-connections", max_connections, "connections", low=1, high=MAX_CONNECTIONS)
    _whole("--input-tokens", input_tokens, "tokens", low=1, high=MAX_TOKENS)
    _whole("--output-tokens", output_tokens, "tokens", low=1, high=MAX_TOKENS)
    _positive("--slo-ttft-ms", slo.ttft_ms, "milliseconds")
    _positive("--slo-tpot-ms", slo.tpot_ms, "milliseconds")
    _positive("--slo-e2e-ms", slo.e2e_ms, "milliseconds")
    _positive("--timeout", timeout, "seconds")
    _positive("--window", window, "seconds")
    if not _RUN_ID.match(run_id):
        raise BadInputError(
            f"--run-id {run_id!r} is not allowed: give 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    if not user.strip() or len(user) > 256:
        raise BadInputError(f"--user {user!r} is not allowed: give a non-empty name of at most 256 characters")
    if prompts is not None and input_tokens is not None:
        raise BadInputError("--input-tokens applies to synthetic prompts; with --prompts the file's prompts are sent")

    run_shape: RateShape | None = None
    if mode is Mode.OPEN:
        if concurrency is not None:
            raise BadInputError("--concurrency applies to --mode closed; an open-loop run is set by --rate")
        if rate is None:
            raise BadInputError("--mode open needs --rate (requests per second, above 0)")
        run_shape = _shape(
            shape,
            rate=rate,
            duration=duration,
            base_rate=base_rate,
            steps=steps,
            spike_at=spike_at,
            spike_seconds=spike_seconds,
        )
    else:
        if rate is not None:
            raise BadInputError("--rate applies to --mode open; a closed-loop run is set by --concurrency")
        if concurrency is None:
            raise BadInputError("--mode closed needs --concurrency (how many requests are kept in flight)")
        if shape is not Shape.CONSTANT or any(v is not None for v in (base_rate, steps, spike_at, spike_seconds)):
            raise BadInputError(
                f"--shape {shape.value} shapes an open-loop rate; --mode closed runs a fixed --concurrency"
            )

    out_dir = out if out is not None else Path("loadtest-results") / run_id
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"--out {out_dir} is a file: give a directory for the results")
    return Settings(
        base_url=base,
        model=model.strip(),
        mode=mode,
        duration_s=duration,
        shape=run_shape,
        arrivals=arrivals,
        concurrency=concurrency,
        max_connections=max_connections,
        input_tokens=input_tokens or DEFAULT_INPUT_TOKENS,
        output_tokens=output_tokens or DEFAULT_OUTPUT_TOKENS,
        prompt_file=prompts,
        slo=slo,
        timeout_s=timeout,
        window_s=window if window is not None else default_window(duration),
        run_id=run_id,
        user=user,
        seed=seed,
        out_dir=out_dir,
    )


def default_window(duration: float) -> float:
    """1 s windows, wider for long runs so the timeline has at most about 300 of them."""
    return float(max(1, math.ceil(duration / 300)))
