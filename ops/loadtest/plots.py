"""One PNG of a run on one time axis: latency percentiles, throughput against the target, errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI

import matplotlib.pyplot as plt


def _series(timeline: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float("nan") if row[key] is None else float(row[key]) for row in timeline]


def plot_run(timeline: Sequence[dict[str, Any]], path: Path, *, window_s: float, title: str) -> Path:
    """Three panels sharing the time axis (seconds since the run started), written to `path`."""
    t = [row["t_s"] for row in timeline]
    end = t[-1] + window_s if t else window_s
    figure, (latency, throughput, errors) = plt.subplots(3, 1, figsize=(9, 8), sharex=True, layout="constrained")
    figure.suptitle(title)

    for key, label, style in (
        ("ttft_p50_ms", "TTFT p50", "-"),
        ("ttft_p90_ms", "TTFT p90", "--"),
        ("ttft_p99_ms", "TTFT p99", ":"),
        ("tpot_p50_ms", "TPOT p50", "-"),
        ("e2e_p99_ms", "end-to-end p99", "-."),
    ):
        latency.plot(t, _series(timeline, key), style, label=label, drawstyle="steps-post")
    latency.set_ylabel("ms, from scheduled time")
    latency.set_yscale("log")
    latency.legend(loc="upper left", fontsize="small", ncols=3)
    latency.grid(True, which="both", alpha=0.3)

    rate = [row["succeeded"] / window_s for row in timeline]
    throughput.plot(t, rate, label="succeeded req/s", drawstyle="steps-post")
    if any(row["target_rate"] is not None for row in timeline):
        throughput.plot(t, _series(timeline, "target_rate"), "--", label="target req/s", drawstyle="steps-post")
    throughput.set_ylabel("requests/s")
    tokens = throughput.twinx()
    tokens.plot(
        t, [row["output_tokens"] / window_s for row in timeline], color="tab:green", alpha=0.6, drawstyle="steps-post"
    )
    tokens.set_ylabel("output tokens/s", color="tab:green")
    throughput.legend(loc="upper left", fontsize="small")
    throughput.grid(True, alpha=0.3)

    failed = [row["failed"] for row in timeline]
    errors.bar(t, failed, width=window_s, align="edge", color="tab:red")
    errors.set_ylim(0, max([1, *failed]) * 1.1)
    errors.set_xlim(0, end)
    errors.set_ylabel(f"failed per {window_s:g} s")
    errors.set_xlabel("seconds since the run started")
    errors.grid(True, alpha=0.3)

    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
