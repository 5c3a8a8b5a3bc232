"""Which path from LiteLLM to the vLLM replicas: measured, with the real proxy and the real vLLM router.

Three paths, each in front of three streaming stub backends that keep connections open as vLLM does:

- `pooled` (LiteLLM's default): LiteLLM -> an L4 forwarder standing in for the vLLM Service (a backend per
  new TCP connection) -> stubs; the proxy reuses its pooled connections.
- `per-request` (the platform's choice): the same, with AIOHTTP_KEEPALIVE_TIMEOUT=0 as the synthesized
  Deployment sets it, so every request opens a connection and the Service picks a backend for it.
- `vllm-router`: LiteLLM -> vllm-router 0.1.17 (power_of_two, its worker list changed through its admin
  API as its Kubernetes discovery would) -> stubs.

For each path: (1) the floor: a backend added under steady load, its share in the next 10 s (an even split
is 0.33) and the requests a removed backend still received 1 s after removal; (2) load awareness: one
backend three times slower (0.6 s instead of 0.2 s), the share it receives and the end-to-end p50/p95.

    make bench-routing            # installs .venv-router (requirements-router.txt), then runs this
"""

from __future__ import annotations

import functools
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from k8s.gateway import KEEPALIVE_ENV  # noqa: E402
from tests.balancing_harness import DRAIN_S, run_scenario  # noqa: E402
from tests.conftest import synthesize  # noqa: E402
from tests.l4_forwarder import L4Forwarder  # noqa: E402
from tests.litellm_harness import ProxyServer, StubBackend, free_port, http_request, running_proxy  # noqa: E402

ROUTER = ROOT / ".venv-router" / "bin" / "vllm-router"
MODEL = "llama-3.1-8b-instruct"
SLOW_S, FAST_S = 0.6, 0.2
SLOW_RUN_S = 15.0
CLIENTS = 12

SetBackends = Callable[[Sequence[StubBackend]], None]


@functools.cache
def _config_map_text() -> str:
    synth = synthesize(Path(tempfile.mkdtemp(prefix="routing-bench-")), "dev")
    return str(synth.one("ConfigMap", "litellm")["data"]["config.yaml"])


def proxy_config(api_base: str) -> dict[str, Any]:
    """The synthesized ConfigMap's config, its vLLM deployment aimed at `api_base`, without stores."""
    config: dict[str, Any] = yaml.safe_load(_config_map_text())
    config["model_list"][0]["litellm_params"]["api_base"] = api_base
    config["router_settings"] = {k: v for k, v in config["router_settings"].items() if not k.startswith("redis_")}
    del config["general_settings"]["database_url"]
    return config


@contextmanager
def forwarder_path(stubs: list[StubBackend], env: dict[str, str]) -> Iterator[tuple[ProxyServer, SetBackends]]:
    with (
        L4Forwarder([s.port for s in stubs]) as forwarder,
        running_proxy(proxy_config(f"{forwarder.url}/v1"), master_key="sk-bench", env=env) as proxy,
    ):
        yield proxy, lambda backends: forwarder.set_backends([b.port for b in backends])


@contextmanager
def router_path(stubs: list[StubBackend]) -> Iterator[tuple[ProxyServer, SetBackends]]:
    if not ROUTER.exists():
        raise SystemExit(f"{ROUTER} is missing: run `make bench-routing` (installs requirements-router.txt)")
    port = free_port()
    urls = [f"http://127.0.0.1:{s.port}" for s in stubs]
    log = open(Path("/tmp") / f"vllm-router-{port}.log", "w")  # noqa: SIM115
    router = subprocess.Popen(
        [
            str(ROUTER),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--policy",
            "power_of_two",
            "--prometheus-port",
            str(free_port()),
            "--worker-urls",
            *urls,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http_request("GET", f"{base}/readiness", timeout=1).status == 200:
                    break
            except ConnectionError:
                time.sleep(0.2)
        current = set(urls)

        def set_backends(backends: Sequence[StubBackend]) -> None:
            wanted = {f"http://127.0.0.1:{b.port}" for b in backends}
            for url in sorted(wanted - current):
                http_request("POST", f"{base}/add_worker?url={url}", timeout=30)
            for url in sorted(current - wanted):
                http_request("POST", f"{base}/remove_worker?url={url}", timeout=30)
            current.clear()
            current.update(wanted)

        with running_proxy(proxy_config(f"{base}/v1"), master_key="sk-bench", env={KEEPALIVE_ENV: "0"}) as proxy:
            yield proxy, set_backends
    finally:
        router.terminate()
        router.wait(timeout=10)
        log.close()


def slow_backend_run(
    proxy: ProxyServer, set_backends: SetBackends, stubs: list[StubBackend]
) -> tuple[float, float, float]:
    """CLIENTS closed-loop streaming clients for SLOW_RUN_S over all three; stub 0 is the slow one."""
    set_backends(stubs)
    stop = threading.Event()
    latencies: list[float] = []
    start = time.monotonic()

    def client() -> None:
        while not stop.is_set():
            began = time.monotonic()
            if proxy.chat(MODEL, stream=True).status == 200:
                latencies.append(time.monotonic() - began)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(SLOW_RUN_S)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    counts = [len([t for t in s.arrivals() if t >= start]) for s in stubs]
    ordered = sorted(latencies)
    return counts[0] / max(1, sum(counts)), statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def main() -> int:
    rows = []
    paths: dict[str, Callable[[list[StubBackend]], Any]] = {
        "pooled (LiteLLM default)": lambda stubs: forwarder_path(stubs, {}),
        "per-request (chosen)": lambda stubs: forwarder_path(stubs, {KEEPALIVE_ENV: "0"}),
        "vllm-router power_of_two": router_path,
    }
    for name, path in paths.items():
        print(f"{name} ...", file=sys.stderr, flush=True)
        stubs = [StubBackend(name=f"s{i}", delay=FAST_S, keep_alive=True).start() for i in range(3)]
        try:
            with path(stubs) as (proxy, set_backends):
                run = run_scenario(proxy, set_backends, stubs, "steady")
                late = len([t for t in stubs[0].arrivals() if t > run.removed_at + DRAIN_S])
                stubs[0].delay = SLOW_S
                slow_share, p50, p95 = slow_backend_run(proxy, set_backends, stubs)
        finally:
            for stub in stubs:
                stub.stop()
        rows.append((name, run.new_backend_share(), late, slow_share, p50, p95))
    print(f"\n{CLIENTS} streaming clients; stubs {FAST_S * 1000:.0f} ms, the slow one {SLOW_S * 1000:.0f} ms")
    print(f"{'path':<28}{'new share 10 s':>16}{'late to removed':>17}{'slow share':>12}{'p50 ms':>9}{'p95 ms':>9}")
    for name, share, late, slow_share, p50, p95 in rows:
        print(f"{name:<28}{share:>16.2f}{late:>17}{slow_share:>12.2f}{p50 * 1000:>9.0f}{p95 * 1000:>9.0f}")
    print("(even split: share 0.33; random routing sends the slow stub 0.33)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
