"""When each request of an open-loop run is due: a rate shape over time, then arrival times drawn from it.

A shape is a list of `Segment`s, each with a rate that changes linearly from `start_rate` to `end_rate`
(req/s) over its span. The expected number of arrivals up to time t is the integral of the rate,
Λ(t); arrivals are placed where Λ crosses whole numbers:

- `constant` arrivals: the k-th arrival at Λ⁻¹(k), k = 0, 1, 2, ... (evenly spaced at a constant rate);
- `poisson` arrivals: at Λ⁻¹(S_k), where S_k are the partial sums of unit-mean exponential draws (the
  time-rescaling construction of a non-homogeneous Poisson process), seeded so a run can be repeated.

Either way a run of `duration` seconds at a constant 100 req/s schedules 100 x duration requests (the
constant ones exactly, the Poisson ones on average).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Shape(StrEnum):
    """How the target rate changes over the run."""

    CONSTANT = "constant"  # --rate throughout
    RAMP = "ramp"  # linearly from --base-rate to --rate over the whole run
    STEP = "step"  # --steps equal plateaus from --base-rate up to --rate
    SPIKE = "spike"  # --base-rate, with --rate from --spike-at for --spike-seconds


class Arrivals(StrEnum):
    """How requests are spread around the target rate."""

    CONSTANT = "constant"
    POISSON = "poisson"


@dataclass(frozen=True)
class Segment:
    """A span of the run, [start, end) seconds, whose rate goes linearly from start_rate to end_rate."""

    start: float
    end: float
    start_rate: float
    end_rate: float

    @property
    def length(self) -> float:
        return self.end - self.start

    @property
    def expected(self) -> float:
        """Expected arrivals in the segment: the area under its rate."""
        return (self.start_rate + self.end_rate) / 2 * self.length

    def rate_at(self, t: float) -> float:
        return self.start_rate + (self.end_rate - self.start_rate) * (t - self.start) / self.length

    def time_of(self, area: float) -> float:
        """The time in this segment by which `area` (0 <= area <= expected) arrivals are expected."""
        slope = (self.end_rate - self.start_rate) / self.length
        if abs(slope) < 1e-12:
            return self.start + area / self.start_rate
        # start_rate * tau + slope / 2 * tau^2 = area, the root within [0, length].
        root = math.sqrt(max(0.0, self.start_rate**2 + 2 * slope * area))
        return self.start + (root - self.start_rate) / slope


@dataclass(frozen=True)
class RateShape:
    """The target rate of an open-loop run over `duration` seconds."""

    segments: tuple[Segment, ...]

    @property
    def duration(self) -> float:
        return self.segments[-1].end

    @property
    def expected_requests(self) -> float:
        return sum(segment.expected for segment in self.segments)

    def rate_at(self, t: float) -> float:
        """The target rate (req/s) at `t` seconds into the run (0 outside it)."""
        for segment in self.segments:
            if segment.start <= t < segment.end:
                return segment.rate_at(t)
        return 0.0

    def time_of(self, area: float) -> float | None:
        """When Λ(t) reaches `area`, or None if it does not within the run."""
        for segment in self.segments:
            if area <= segment.expected:
                if segment.expected == 0:
                    if area == 0:
                        return segment.start
                    continue
                return segment.time_of(area)
            area -= segment.expected
        return None


def rate_shape(
    shape: Shape,
    *,
    rate: float,
    duration: float,
    base_rate: float = 0.0,
    steps: int = 1,
    spike_at: float = 0.0,
    spike_seconds: float = 0.0,
) -> RateShape:
    """The segments of `shape` (parameters validated by the command, see options.py)."""
    if shape is Shape.CONSTANT:
        return RateShape((Segment(0.0, duration, rate, rate),))
    if shape is Shape.RAMP:
        return RateShape((Segment(0.0, duration, base_rate, rate),))
    if shape is Shape.STEP:
        width = duration / steps
        plateaus = [base_rate + (rate - base_rate) * (k + 1) / steps for k in range(steps)]
        return RateShape(tuple(Segment(k * width, (k + 1) * width, level, level) for k, level in enumerate(plateaus)))
    spike_end = spike_at + spike_seconds
    parts = [
        Segment(0.0, spike_at, base_rate, base_rate),
        Segment(spike_at, spike_end, rate, rate),
        Segment(spike_end, duration, base_rate, base_rate),
    ]
    return RateShape(tuple(part for part in parts if part.length > 0))


def arrival_times(shape: RateShape, arrivals: Arrivals, *, seed: int = 1) -> Iterator[float]:
    """Seconds from the run's start at which requests are due, in order, all before `shape.duration`."""
    draw = random.Random(seed)
    poisson = arrivals is Arrivals.POISSON
    area = draw.expovariate(1.0) if poisson else 0.0
    while True:
        t = shape.time_of(area)
        if t is None or t >= shape.duration:
            return
        yield t
        area += draw.expovariate(1.0) if poisson else 1.0


def counts_per_window(times: Sequence[float], window: float, duration: float) -> list[int]:
    """How many of `times` fall in each `window`-second slice of [0, duration)."""
    counts = [0] * max(1, math.ceil(duration / window - 1e-9))
    for t in times:
        counts[min(len(counts) - 1, int(t // window))] += 1
    return counts
