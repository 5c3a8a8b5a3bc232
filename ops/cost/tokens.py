"""Cost per 1M output tokens from a load test's measured throughput.

Reads the `results.json` that `genai-ops loadtest` writes (ops/loadtest/results.py: `summary.output_tokens`, the
tokens of succeeded requests, over `summary.measured_s`, from schedule time 0 to the last request's end, the span
that file's own rates use), or a minimal file of your own with top-level `output_tokens` and `duration_s`.

cost per 1M = hourly cost of the replicas that served the run / (output tokens per second x 3600) x 1e6; with
FACTS.md's figures (one g6.xlarge at $0.8048/h, an L4 saturated at 513 output tok/s) that is ~$0.44.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.cost.capacity import nodes_for
from ops.cost.estimate import SECONDS_PER_HOUR
from ops.cost.prices import Entry, Missing, Price
from ops.errors import BadInputError


@dataclass(frozen=True)
class Throughput:
    output_tokens: int
    seconds: float
    fields: str  # which fields of the file were read

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.seconds


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def read_throughput(path: Path) -> Throughput:
    """The output tokens and the seconds they took, or BadInputError naming the file and what it lacks."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise BadInputError(f"--loadtest {path}: cannot be read ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise BadInputError(f"--loadtest {path}: not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(document, dict):
        raise BadInputError(f"--loadtest {path}: expected a JSON object, got {type(document).__name__}")
    summary = document.get("summary")
    if isinstance(summary, dict) and "output_tokens" in summary and "measured_s" in summary:
        tokens, seconds, fields = summary["output_tokens"], summary["measured_s"], "summary.output_tokens/measured_s"
    elif "output_tokens" in document and "duration_s" in document:
        tokens, seconds, fields = document["output_tokens"], document["duration_s"], "output_tokens/duration_s"
    else:
        raise BadInputError(
            f"--loadtest {path}: needs summary.output_tokens and summary.measured_s (a `genai-ops loadtest` "
            "results.json) or top-level output_tokens and duration_s"
        )
    count, span = _number(tokens), _number(seconds)
    if count is None or count < 0 or count != int(count):
        raise BadInputError(f"--loadtest {path}: output tokens {tokens!r} is not a whole number of tokens >= 0")
    if span is None or span <= 0:
        raise BadInputError(f"--loadtest {path}: duration {seconds!r} is not a number of seconds above 0")
    if count == 0:
        raise BadInputError(f"--loadtest {path}: the run produced no output tokens; no cost per token to derive")
    return Throughput(int(count), span, fields)


@dataclass(frozen=True)
class TokenCost:
    """USD per 1M output tokens for one pricing of the serving nodes, or why it cannot be computed."""

    label: str
    usd_per_million: float | None
    reason: str = ""


def cost_per_million(
    label: str, throughput: Throughput, replicas: int, replicas_per_node: int, hourly: list[Entry]
) -> TokenCost:
    """The nodes' hourly price (the sum of `hourly` per node) spread over the tokens they produced per hour."""
    missing = [entry for entry in hourly if isinstance(entry, Missing)]
    if missing:
        return TokenCost(label, None, "; ".join(m.reason for m in missing))
    per_node = sum(entry.usd for entry in hourly if isinstance(entry, Price))
    # Whole nodes are billed, even when the last one holds fewer replicas than it could.
    fleet_per_hour = per_node * nodes_for(replicas, replicas_per_node)
    tokens_per_hour = throughput.tokens_per_second * SECONDS_PER_HOUR
    return TokenCost(label, fleet_per_hour / tokens_per_hour * 1e6)
