"""The run loop: one aiohttp session, open-loop arrivals or closed-loop slots, observers called on a clock.

Open loop: requests are due at the arrival schedule's times (schedule.py) whatever the server does; each is
started as its own task when due, so a slow server means more requests in flight, never fewer sent.
Closed loop: `concurrency` slots, each sending its next request as soon as its previous one ends; a request
is due when its slot became free.

Observers (`RunObserver`) are the seam for watching something else while the load runs (the progress bar
is one; a watcher of the autoscaler is meant to be another): `on_start` once, `on_tick` every `interval_s`
seconds on the run's clock with a `Snapshot` of the load so far, `on_finish` with the `RunResult` before
its files are written, so an observer may add its own section to `result.extras` (results.json "extras").
They run on the load generator's event loop: return quickly, and do blocking work (a Kubernetes or
Prometheus call) with `await asyncio.to_thread(...)`. An exception from an observer ends the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import resource
import signal
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from ops.loadtest.client import Endpoint, RequestRecord, stream_chat, trace_config
from ops.loadtest.prompts import Prompt
from ops.loadtest.results import Recorder, RunResult
from ops.loadtest.schedule import RateShape

# Seconds between setting up and the first request being due, so the first arrivals are not late by setup.
START_LEAD_S = 0.05
# Sleeps longer than this wait on the stop event instead, so Ctrl-C ends a slow schedule promptly.
_STOP_POLL_S = 0.25
# The last stretch before a request is due is spent yielding to the event loop rather than in a timer.
_SPIN_S = 0.001
_FD_HEADROOM = 64


@dataclass(frozen=True)
class Snapshot:
    """The load at one tick (counts are since the start of the run)."""

    elapsed_s: float  # seconds since schedule time 0
    wall_time: float  # time.time() at the tick, to line the run up with other clocks (Kubernetes events)
    target_rate: float | None  # req/s due now (open loop), else None
    concurrency: int | None  # slots (closed loop), else None
    due: int  # requests whose scheduled time has come
    in_flight: int
    succeeded: int
    failed: int
    output_tokens: int
    recent_ttft_p50_ms: float | None  # over requests that finished since the previous tick


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    start_wall_time: float  # time.time() of schedule time 0
    duration_s: float


class RunObserver(Protocol):
    """Something that watches a run; see the module docstring for when each method is called."""

    interval_s: float

    async def on_start(self, info: RunInfo) -> None: ...

    async def on_tick(self, snapshot: Snapshot) -> None: ...

    async def on_finish(self, result: RunResult) -> None: ...


@dataclass(frozen=True)
class OpenLoop:
    shape: RateShape
    arrivals: Iterable[float]  # seconds from time 0, ascending (schedule.arrival_times)
    max_connections: int


@dataclass(frozen=True)
class ClosedLoop:
    concurrency: int
    duration_s: float


def raise_open_file_limit(connections: int) -> None:
    """Lift the soft limit on open files towards the hard one so `connections` sockets fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + _FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))


class _Run:
    def __init__(
        self,
        endpoint: Endpoint,
        prompts: Iterator[Prompt],
        observers: Sequence[RunObserver],
        session: aiohttp.ClientSession,
    ) -> None:
        self.endpoint = endpoint
        self.prompts = prompts
        self.observers = observers
        self.session = session
        self.recorder = Recorder()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stop = asyncio.Event()
        self.index = itertools.count()
        self.due = 0
        self.start = 0.0

    async def send(self, scheduled: float) -> RequestRecord:
        record = RequestRecord(index=next(self.index), scheduled=scheduled)
        self.due += 1
        try:
            await stream_chat(self.session, self.endpoint, next(self.prompts), record, self.recorder.itl_gap)
        except asyncio.CancelledError:
            record.error = "cancelled: the run was stopped"
            record.end = time.perf_counter()
            self.recorder.finished(record)
            raise
        self.recorder.finished(record)
        return record

    def launch(self, scheduled: float) -> None:
        task = asyncio.create_task(self.send(scheduled))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def sleep_until(self, due: float) -> None:
        """Return at `due` (perf_counter), or early when the run is stopped.

        The event loop's timers wake up to a millisecond late (epoll waits in whole milliseconds, rounded
        up), and that lateness would count against every request's latency: sleep until a millisecond
        before, then yield to the loop until the time has come.
        """
        delay = due - time.perf_counter() - _SPIN_S
        if delay >= _STOP_POLL_S:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), delay)
        elif delay > 0:
            await asyncio.sleep(delay)
        while time.perf_counter() < due and not self.stop.is_set():
            await asyncio.sleep(0)

    async def open_loop(self, plan: OpenLoop) -> None:
        for offset in plan.arrivals:
            due = self.start + offset
            await self.sleep_until(due)
            if self.stop.is_set():
                return
            self.launch(due)

    async def closed_loop(self, plan: ClosedLoop) -> None:
        end = self.start + plan.duration_s

        async def slot() -> None:
            scheduled = self.start
            while scheduled < end and not self.stop.is_set():
                await self.send(scheduled)
                scheduled = time.perf_counter()  # the slot is free: the next request is due now

        await self.sleep_until(self.start)
        slots = [asyncio.create_task(slot()) for _ in range(plan.concurrency)]
        for task in slots:
            self.tasks.add(task)  # cancelled with the requests on stop
            task.add_done_callback(self.tasks.discard)
        await asyncio.gather(*slots, return_exceptions=True)

    def snapshot(self, plan: OpenLoop | ClosedLoop) -> Snapshot:
        elapsed = time.perf_counter() - self.start
        recent = self.recorder.take_recent_ttft()
        return Snapshot(
            elapsed_s=elapsed,
            wall_time=time.time(),
            target_rate=plan.shape.rate_at(elapsed) if isinstance(plan, OpenLoop) else None,
            concurrency=plan.concurrency if isinstance(plan, ClosedLoop) else None,
            due=self.due,
            in_flight=self.due - len(self.recorder.records),
            succeeded=self.recorder.completed,
            failed=self.recorder.failed,
            output_tokens=self.recorder.output_tokens,
            recent_ttft_p50_ms=statistics.median(recent) * 1000 if recent else None,
        )

    async def ticker(self, observer: RunObserver, plan: OpenLoop | ClosedLoop) -> None:
        for k in itertools.count(1):
            await asyncio.sleep(max(0.0, self.start + k * observer.interval_s - time.perf_counter()))
            await observer.on_tick(self.snapshot(plan))


async def run_load(
    *,
    run_id: str,
    config: dict[str, Any],
    plan: OpenLoop | ClosedLoop,
    endpoint: Endpoint,
    prompts: Iterator[Prompt],
    observers: Sequence[RunObserver] = (),
    window_s: float = 1.0,
) -> RunResult:
    """Run the load to the end of its schedule (or until SIGINT), wait for every request, return the result."""
    connections = plan.max_connections if isinstance(plan, OpenLoop) else plan.concurrency
    duration = plan.shape.duration if isinstance(plan, OpenLoop) else plan.duration_s
    raise_open_file_limit(connections)
    connector = aiohttp.TCPConnector(limit=connections, ttl_dns_cache=300)
    async with aiohttp.ClientSession(
        connector=connector, trace_configs=[trace_config()], timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        run = _Run(endpoint, prompts, observers, session)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread: no handler
            loop.add_signal_handler(signal.SIGINT, run.stop.set)
        run.start = time.perf_counter() + START_LEAD_S
        start_wall_time = time.time() + (run.start - time.perf_counter())
        info = RunInfo(run_id=run_id, start_wall_time=start_wall_time, duration_s=duration)
        for observer in observers:
            await observer.on_start(info)
        tickers = [asyncio.create_task(run.ticker(observer, plan)) for observer in observers]
        try:
            load = run.open_loop(plan) if isinstance(plan, OpenLoop) else run.closed_loop(plan)
            await _until_first(load, tickers)
            in_flight = list(run.tasks)
            while in_flight and not run.stop.is_set():
                await _until_first(asyncio.wait(in_flight), tickers, stop=run.stop)
                in_flight = [task for task in in_flight if not task.done()]
            for task in list(run.tasks):
                task.cancel()
            await asyncio.gather(*run.tasks, return_exceptions=True)
        finally:
            for ticker in tickers:
                ticker.cancel()
            await asyncio.gather(*tickers, return_exceptions=True)
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
        result = RunResult(
            run_id=run_id,
            started_at=datetime.fromtimestamp(start_wall_time, UTC).isoformat(timespec="milliseconds"),
            config=config,
            recorder=run.recorder,
            start=run.start,
            duration_s=duration,
            scheduled=run.due,
            stopped_early=run.stop.is_set(),
            target_rate=plan.shape.rate_at if isinstance(plan, OpenLoop) else None,
            window_s=window_s,
        )
        for observer in observers:
            await observer.on_finish(result)
        return result


async def _until_first(work: Any, tickers: Sequence[asyncio.Task[None]], stop: asyncio.Event | None = None) -> None:
    """Await `work`, but end early if an observer's ticker fails (re-raising its error) or `stop` is set."""
    main = asyncio.ensure_future(work)
    watched: set[asyncio.Future[Any]] = {main, *tickers}
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    if stopper is not None:
        watched.add(stopper)
    try:
        while True:
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for ticker in tickers:
                failure = ticker.exception() if ticker in done and not ticker.cancelled() else None
                if failure is not None:
                    main.cancel()
                    raise failure
            if main in done or (stopper is not None and stopper in done):
                return
            watched -= done
    finally:
        if stopper is not None:
            stopper.cancel()
        if not main.done():
            main.cancel()
