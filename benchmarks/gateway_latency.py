"""How much latency the LiteLLM gateway adds, and how many requests per second one proxy worker serves.

Starts two OpenAI-compatible stub backends (tests/litellm_harness.py's StubBackend, in a child process
so they do not share this process's GIL with the load generator) and the real LiteLLM proxy from
.venv-litellm three times: with the project's generated config (k8s.gateway_config.litellm_config, dev
settings: prometheus callback, master key, retries, cooldowns) and the Deployment's connection setting
(a new connection to vLLM per request), with the same config on LiteLLM's pooled connections, and with
LiteLLM's defaults (a minimal model_list with the same two deployments and nothing else, so no key
check). At each concurrency level it sends the same bounded number of non-streaming chat completions
straight to the stubs and then through the proxy, and reports the proxy's added latency (p50 and p95 of
the proxy round trip minus the same percentile of the direct round trip) and the proxy's requests per
second.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio (stdlib only: the project venv
has no httpx), one connection per simulated client. Everything listens on 127.0.0.1; every level is
bounded in requests and time.

    .venv/bin/python benchmarks/gateway_latency.py [--requests 400] [--concurrency 1 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from k8s.gateway import KEEPALIVE_ENV  # noqa: E402
from k8s.gateway_config import Backend, StateStores, litellm_config  # noqa: E402
from platform_config import cdk_json_context, load_config  # noqa: E402
from tests.litellm_harness import ProxyServer, running_proxy  # noqa: E402

LEVEL_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 60.0
WARMUP_REQUESTS = 30

_STUB_PROCESS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.litellm_harness import StubBackend
stubs = [StubBackend(name=f"stub-{i}", delay=float(sys.argv[2])).start() for i in range(2)]
print(json.dumps([s.port for s in stubs]), flush=True)
sys.stdin.read()  # until the parent closes our stdin
for s in stubs:
    s.stop()
"""


@dataclass(frozen=True)
class Target:
    """Where one simulated client sends its requests."""

    port: int
    path: str
    headers: dict[str, str]


@dataclass
class LevelResult:
    latencies: list[float]
    errors: int
    wall: float

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall > 0 else 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Reads one HTTP/1.1 response; returns (status, whether the server will close the connection)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()
        return status, True
    return status, headers.get("connection", "").lower() == "close"


async def _client(target: Target, body: bytes, take: Callable[[], bool], result: LevelResult) -> None:
    request_head = (
        f"POST {target.path} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\nContent-Type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in target.headers.items())
        + f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        while take():
            start = time.perf_counter()
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
                writer.write(request_head + body)
                await writer.drain()
                status, closing = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT_S)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError, IndexError):
                status, closing = 0, True
            if status == 200:
                result.latencies.append(time.perf_counter() - start)
            else:
                result.errors += 1
            if closing and writer is not None:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _run_level(targets: Sequence[Target], requests: int, model: str) -> LevelResult:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello."}]}).encode()
    remaining = [requests]

    def take() -> bool:
        if remaining[0] <= 0:
            return False
        remaining[0] -= 1
        return True

    result = LevelResult(latencies=[], errors=0, wall=0.0)
    start = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(_client(t, body, take, result) for t in targets)),
        LEVEL_TIMEOUT_S,
    )
    result.wall = time.perf_counter() - start
    return result


def run_level(targets: Sequence[Target], requests: int, model: str) -> LevelResult:
    return asyncio.run(_run_level(targets, requests, model))


def direct_targets(stub_ports: Sequence[int], clients: int) -> list[Target]:
    return [Target(stub_ports[i % len(stub_ports)], "/v1/chat/completions", {}) for i in range(clients)]


def proxy_targets(proxy: ProxyServer, clients: int) -> list[Target]:
    return [Target(proxy.port, "/v1/chat/completions", proxy.auth_headers()) for _ in range(clients)]


def configs(model: str, stub_ports: Sequence[int]) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """Each config with the environment the proxy runs with."""
    settings = load_config({**cdk_json_context(ROOT / "cdk.json"), "env": "dev"}).gateway
    backends = [Backend(api_base=f"http://127.0.0.1:{port}/v1") for port in stub_ports]
    project = litellm_config(
        settings, served_model_name=model, backends=backends, stores=StateStores(redis=False, database=False)
    )
    defaults = {
        "model_list": [
            {"model_name": model, "litellm_params": {"model": f"hosted_vllm/{model}", "api_base": b.api_base}}
            for b in backends
        ]
    }
    # The gateway's Deployment opens a connection per request to vLLM (k8s/gateway.py, KEEPALIVE_ENV); the
    # same config with LiteLLM's pooled connections shows what that costs.
    return {
        "project config": (project, {KEEPALIVE_ENV: "0"}),
        "project, pooled conns": (project, {}),
        "LiteLLM defaults": (defaults, {}),
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level (default 400)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 16, 64], help="concurrent clients (default 1 16 64)"
    )
    parser.add_argument("--delay", type=float, default=0.005, help="stub backend delay per request, seconds")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.requests > 5000 or any(c < 1 or c > 256 for c in args.concurrency):
        parser.error("--requests must be 1..5000 and --concurrency 1..256")

    model = load_config({**cdk_json_context(ROOT / "cdk.json"), "env": "dev"}).inference.vllm.served_model_name
    stubs = subprocess.Popen(
        [sys.executable, "-c", _STUB_PROCESS, str(ROOT), str(args.delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    rows: list[list[str]] = []
    try:
        assert stubs.stdout is not None
        stub_ports: list[int] = json.loads(stubs.stdout.readline())
        for name, (config, env) in configs(model, stub_ports).items():
            print(f"{name}: starting the proxy ...", file=sys.stderr, flush=True)
            with running_proxy(config, master_key=f"sk-bench-{secrets.token_urlsafe(12)}", env=env) as proxy:
                print(f"  ready in {proxy.started_in:.1f} s", file=sys.stderr, flush=True)
                run_level(proxy_targets(proxy, 4), WARMUP_REQUESTS, model)
                for clients in args.concurrency:
                    direct = run_level(direct_targets(stub_ports, clients), args.requests, model)
                    through = run_level(proxy_targets(proxy, clients), args.requests, model)
                    print(
                        f"  {clients} clients: {through.rate:.1f} req/s, {through.errors} errors",
                        file=sys.stderr,
                        flush=True,
                    )
                    rows.append(
                        [
                            name,
                            str(clients),
                            str(args.requests),
                            str(through.errors + direct.errors),
                            _ms(direct.percentile(0.5)),
                            _ms(direct.percentile(0.95)),
                            _ms(through.percentile(0.5)),
                            _ms(through.percentile(0.95)),
                            _ms(through.percentile(0.5) - direct.percentile(0.5)),
                            _ms(through.percentile(0.95) - direct.percentile(0.95)),
                            f"{through.rate:.1f}",
                            f"{direct.rate:.0f}",
                        ]
                    )
    finally:
        if stubs.stdin is not None:
            stubs.stdin.close()
        try:
            stubs.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stubs.kill()
            stubs.wait(timeout=10)

    print()
    print(
        f"LiteLLM proxy (1 worker) in front of 2 stub backends ({args.delay * 1000:g} ms each), "
        f"non-streaming chat completions, times in ms"
    )
    print_table(
        rows,
        [
            "config",
            "clients",
            "requests",
            "errors",
            "direct p50",
            "direct p95",
            "proxy p50",
            "proxy p95",
            "added p50",
            "added p95",
            "proxy req/s",
            "direct req/s",
        ],
    )
    if any(r[3] != "0" for r in rows):
        print("\nsome requests failed: see the errors column", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
