"""Load and backend changes for the balancing tests and the routing benchmark.

`run_scenario` drives streaming chat completions through a proxy with one of three load shapes while
the backend list behind it changes: two backends, a third added after ADD_AFTER_S, the first removed
WINDOW_S later. `set_backends` is how the list changes: an L4 forwarder's endpoint list (what a Service's
endpoints do) or a router's worker list. Stubs record when each request arrived, so the result says
which backend served what, and when.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tests.litellm_harness import ProxyServer, StubBackend

MODEL = "llama-3.1-8b-instruct"
# A stub answers a stream in 0.2 s: slow enough that 8 clients keep every backend busy, fast enough that a
# 10 s window holds hundreds of requests on this 2-core machine.
STUB_DELAY_S = 0.2
ADD_AFTER_S = 4.0
WINDOW_S = 10.0
# What the issue asks of a new backend within the window: 40% of an even split's share.
MIN_SHARE_OF_EVEN = 0.4
# Requests already dispatched when the endpoint went away may still land in this time.
DRAIN_S = 1.0


@dataclass
class Run:
    added_at: float
    removed_at: float
    stubs: list[StubBackend]
    responses: list[int]

    def arrivals(self, index: int, start: float, end: float) -> int:
        return len([t for t in self.stubs[index].arrivals() if start <= t <= end])

    def new_backend_share(self) -> float:
        window = [self.arrivals(i, self.added_at, self.added_at + WINDOW_S) for i in range(3)]
        return window[2] / max(1, sum(window))


def closed_loop(proxy: ProxyServer, stop: threading.Event, responses: list[int], clients: Callable[[], int]) -> None:
    """`clients()` concurrent streaming clients, each sending its next request when the last one ends."""
    active: list[threading.Thread] = []

    def client(index: int) -> None:
        while not stop.is_set() and index < clients():
            responses.append(proxy.chat(MODEL, stream=True).status)

    while not stop.is_set():
        while len(active) < clients():
            thread = threading.Thread(target=client, args=(len(active),), daemon=True)
            thread.start()
            active.append(thread)
        time.sleep(0.1)
    for thread in active:
        thread.join(timeout=30)


def open_loop_bursts(proxy: ProxyServer, stop: threading.Event, responses: list[int]) -> None:
    """Poisson arrivals at 15 req/s, with a burst of 12 at once every 2 s, each request on its own thread."""
    rng = random.Random(7)
    threads: list[threading.Thread] = []

    def send() -> None:
        responses.append(proxy.chat(MODEL, stream=True).status)

    next_burst = time.monotonic() + 2
    while not stop.is_set():
        count = 12 if time.monotonic() >= next_burst else 1
        if count > 1:
            next_burst += 2
        for _ in range(count):
            threads.append(threading.Thread(target=send, daemon=True))
            threads[-1].start()
        time.sleep(rng.expovariate(15))
    for thread in threads:
        thread.join(timeout=30)


def run_scenario(
    proxy: ProxyServer, set_backends: Callable[[Sequence[StubBackend]], None], stubs: list[StubBackend], load: str
) -> Run:
    """Two backends; the third is added after ADD_AFTER_S; after the window the first is removed."""
    set_backends([stubs[0], stubs[1]])
    stop = threading.Event()
    responses: list[int] = []
    started = time.monotonic()
    if load == "steady":
        target: Callable[[], None] = lambda: closed_loop(proxy, stop, responses, lambda: 8)  # noqa: E731
    elif load == "ramp":
        # 2 clients, one more every 1.5 s up to 12: new connections open while the list changes.
        target = lambda: closed_loop(  # noqa: E731
            proxy, stop, responses, lambda: min(12, 2 + int((time.monotonic() - started) / 1.5))
        )
    else:
        target = lambda: open_loop_bursts(proxy, stop, responses)  # noqa: E731
    driver = threading.Thread(target=target, daemon=True)
    driver.start()
    time.sleep(ADD_AFTER_S)
    added_at = time.monotonic()
    set_backends(stubs)
    time.sleep(WINDOW_S)
    removed_at = time.monotonic()
    set_backends([stubs[1], stubs[2]])
    time.sleep(DRAIN_S + 4)
    stop.set()
    driver.join(timeout=60)
    return Run(added_at, removed_at, stubs, responses)
