"""What a run measured: HdrHistogram percentiles, rates, goodput against SLOs, a timeline; JSON and CSV files.

Latencies are recorded in microseconds into HdrHistograms (1 us to 1 h, 3 significant digits: a value is
within 0.1% of what was measured) and reported in milliseconds. Percentiles follow HdrHistogram's rule: the
p-th percentile is the smallest recorded value that at least p% of the values do not exceed.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from ops.loadtest.client import RequestRecord

PERCENTILES = (50, 90, 95, 99)
_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000  # one hour
_SIGNIFICANT_DIGITS = 3


def _histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIGNIFICANT_DIGITS)


def _us(seconds: float) -> int:
    return min(_HIGHEST_US, max(_LOWEST_US, round(seconds * 1e6)))


@dataclass(frozen=True)
class Slo:
    """Per-request service level objectives (milliseconds); None where not given."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    @property
    def given(self) -> bool:
        return any(value is not None for value in (self.ttft_ms, self.tpot_ms, self.e2e_ms))

    def met_by(self, record: RequestRecord) -> bool:
        """A successful request within every given objective (a one-token reply has no TPOT to miss).

        Compared at microsecond resolution, the resolution latencies are recorded at.
        """
        if not record.ok:
            return False
        checks = ((self.ttft_ms, record.ttft), (self.tpot_ms, record.tpot), (self.e2e_ms, record.e2e))
        return all(limit is None or value is None or round(value * 1000, 3) <= limit for limit, value in checks)

    def as_dict(self) -> dict[str, float]:
        pairs = {"ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms, "e2e_ms": self.e2e_ms}
        return {key: value for key, value in pairs.items() if value is not None}


class Recorder:
    """Collects finished requests and inter-token gaps while a run goes on."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.ttft = _histogram()
        self.itl = _histogram()
        self.tpot = _histogram()
        self.e2e = _histogram()
        self.send_lag = _histogram()
        self.completed = 0
        self.failed = 0
        self.output_tokens = 0
        self._recent_ttft: list[float] = []

    def itl_gap(self, seconds: float) -> None:
        self.itl.record_value(_us(seconds))

    def finished(self, record: RequestRecord) -> None:
        self.records.append(record)
        if record.send_lag is not None:
            self.send_lag.record_value(_us(max(0.0, record.send_lag)))
        if not record.ok:
            self.failed += 1
            return
        self.completed += 1
        self.output_tokens += record.output_tokens
        for histogram, value in ((self.ttft, record.ttft), (self.tpot, record.tpot), (self.e2e, record.e2e)):
            if value is not None:
                histogram.record_value(_us(value))
        if record.ttft is not None:
            self._recent_ttft.append(record.ttft)

    def take_recent_ttft(self) -> list[float]:
        """TTFTs (s) of the requests that finished since the last call (for progress and observers)."""
        recent, self._recent_ttft = self._recent_ttft, []
        return recent


def latency_summary(histogram: HdrHistogram) -> dict[str, float | int | None]:
    """count, mean, min, p50..p99 and max in milliseconds (None without values)."""
    count = histogram.get_total_count()
    if count == 0:
        return {"count": 0, "mean": None, "min": None, **{f"p{p}": None for p in PERCENTILES}, "max": None}
    return {
        "count": count,
        "mean": round(histogram.get_mean_value() / 1000, 3),
        "min": round(histogram.get_min_value() / 1000, 3),
        **{f"p{p}": round(histogram.get_value_at_percentile(p) / 1000, 3) for p in PERCENTILES},
        "max": round(histogram.get_max_value() / 1000, 3),
    }


def error_kind(message: str) -> str:
    """`HTTP 503: busy` -> `HTTP 503`; `timeout after 5 s` -> `timeout after 5 s`."""
    return message.split(":", 1)[0]


@dataclass
class RunResult:
    """A finished run: its settings, what it recorded, and room for observers' own sections."""

    run_id: str
    started_at: str
    config: dict[str, Any]
    recorder: Recorder
    start: float  # perf_counter of schedule time 0
    duration_s: float  # the configured run length
    scheduled: int
    stopped_early: bool = False
    target_rate: Callable[[float], float] | None = None  # open loop: schedule.RateShape.rate_at
    window_s: float = 1.0
    extras: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def records(self) -> list[RequestRecord]:
        return self.recorder.records

    @property
    def measured_s(self) -> float:
        """From schedule time 0 to the last request's end (the span rates are computed over)."""
        ends = [r.end for r in self.records if r.end is not None]
        return max(1e-9, (max(ends) - self.start) if ends else self.duration_s)

    def summary(self, slo: Slo) -> dict[str, Any]:
        recorder = self.recorder
        span = self.measured_s
        good = sum(1 for record in self.records if slo.met_by(record)) if slo.given else None
        errors = Counter(error_kind(r.error) for r in self.records if r.error is not None)
        ok = [r for r in self.records if r.ok]
        return {
            "requests": {
                "scheduled": self.scheduled,
                "sent": sum(1 for r in self.records if r.sent is not None),
                "succeeded": recorder.completed,
                "failed": recorder.failed,
            },
            "measured_s": round(span, 3),
            "request_rate": {
                "offered": round(self.scheduled / self.duration_s, 3),
                "achieved": round(recorder.completed / span, 3),
            },
            "output_tokens": recorder.output_tokens,
            "output_tokens_per_s": round(recorder.output_tokens / span, 3),
            "tokens_from_usage": round(sum(r.tokens_from_usage for r in ok) / len(ok), 3) if ok else None,
            "latency_ms": {
                "ttft": latency_summary(recorder.ttft),
                "itl": latency_summary(recorder.itl),
                "tpot": latency_summary(recorder.tpot),
                "e2e": latency_summary(recorder.e2e),
                "send_lag": latency_summary(recorder.send_lag),
            },
            "goodput": None
            if good is None
            else {
                "slo": slo.as_dict(),
                "requests": good,
                "requests_per_s": round(good / span, 3),
                "fraction": round(good / len(self.records), 4) if self.records else None,
            },
            "errors": dict(errors.most_common()),
        }

    def timeline(self) -> list[dict[str, Any]]:
        """Per window: target rate, requests due, finished, failed, output tokens, latency percentiles.

        Latencies are placed in the window of the request's scheduled time (when the load was offered);
        completions, failures and tokens in the window of the request's end.
        """
        windows = max(1, math.ceil(max(self.duration_s, self.measured_s) / self.window_s - 1e-9))
        due: list[list[RequestRecord]] = [[] for _ in range(windows)]
        ended: list[list[RequestRecord]] = [[] for _ in range(windows)]
        for record in self.records:
            due[self._window(record.scheduled, windows)].append(record)
            if record.end is not None:
                ended[self._window(record.end, windows)].append(record)
        rows = []
        for k in range(windows):
            t = k * self.window_s
            ok_due = [r for r in due[k] if r.ok]
            row: dict[str, Any] = {
                "t_s": round(t, 3),
                "target_rate": None if self.target_rate is None else round(self.target_rate(t), 3),
                "scheduled": len(due[k]),
                "succeeded": sum(1 for r in ended[k] if r.ok),
                "failed": sum(1 for r in ended[k] if not r.ok),
                "output_tokens": sum(r.output_tokens for r in ended[k] if r.ok),
            }
            for name, values in (
                ("ttft", [r.ttft for r in ok_due]),
                ("tpot", [r.tpot for r in ok_due]),
                ("e2e", [r.e2e for r in ok_due]),
            ):
                row.update(_percentiles_ms(name, [v for v in values if v is not None]))
            rows.append(row)
        return rows

    def _window(self, t: float, windows: int) -> int:
        return min(windows - 1, max(0, int((t - self.start) // self.window_s)))

    def document(self, slo: Slo) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "stopped_early": self.stopped_early,
            "config": self.config,
            "summary": self.summary(slo),
            "timeline": self.timeline(),
            "files": self.files,
            "extras": self.extras,
        }


def _percentiles_ms(name: str, seconds: Sequence[float]) -> dict[str, float | None]:
    if not seconds:
        return {f"{name}_p{p}_ms": None for p in (50, 90, 99)}
    # "inverted_cdf": the smallest value with at least p% at or below it, the rule HdrHistogram follows.
    values = np.percentile(np.asarray(seconds) * 1000, (50, 90, 99), method="inverted_cdf")
    return {f"{name}_p{p}_ms": round(float(v), 3) for p, v in zip((50, 90, 99), values, strict=True)}


REQUEST_COLUMNS = (
    "index",
    "scheduled_s",
    "sent_s",
    "send_lag_ms",
    "ttft_ms",
    "tpot_ms",
    "max_itl_ms",
    "e2e_ms",
    "output_tokens",
    "tokens_from_usage",
    "prompt_tokens",
    "status",
    "error",
)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.3f}"


def _offset(value: float | None, start: float) -> str:
    return "" if value is None else f"{value - start:.6f}"


def request_rows(result: RunResult) -> Iterable[list[Any]]:
    for r in sorted(result.records, key=lambda record: record.index):
        yield [
            r.index,
            _offset(r.scheduled, result.start),
            _offset(r.sent, result.start),
            _ms(r.send_lag),
            _ms(r.ttft),
            _ms(r.tpot),
            _ms(r.max_itl) if r.content_chunks > 1 else "",
            _ms(r.e2e),
            r.output_tokens,
            r.tokens_from_usage,
            "" if r.prompt_tokens is None else r.prompt_tokens,
            r.status,
            r.error or "",
        ]


def write_results(result: RunResult, slo: Slo, directory: Path) -> dict[str, Any]:
    """results.json, requests.csv (one row per request) and timeline.csv into `directory`; the JSON document."""
    directory.mkdir(parents=True, exist_ok=True)
    result.files.update(
        {"results": "results.json", "requests": "requests.csv", "timeline": "timeline.csv"},
    )
    document = result.document(slo)
    with (directory / "requests.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(REQUEST_COLUMNS)
        writer.writerows(request_rows(result))
    timeline = document["timeline"]
    with (directory / "timeline.csv").open("w", newline="", encoding="utf-8") as handle:
        rows = csv.DictWriter(handle, fieldnames=list(timeline[0]) if timeline else ["t_s"])
        rows.writeheader()
        rows.writerows({k: "" if v is None else v for k, v in row.items()} for row in timeline)
    (directory / "results.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return document
