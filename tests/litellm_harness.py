"""Runs the real LiteLLM proxy (from its own venv) against local OpenAI-compatible stubs.

- `validate_config`: LiteLLM's own config model and Router, in the LiteLLM venv, on a config dict.
- `StubBackend`: an OpenAI-compatible server on 127.0.0.1 (stdlib only) that can be stopped and
  restarted on the same port, to test failover, cooldown and recovery.
- `running_proxy`: the real `litellm` proxy on 127.0.0.1, ready when `/health/readiness` answers.
- `http_request`: a small urllib client that never goes through an HTTP proxy.

This module runs in the project venv; LiteLLM runs in `.venv-litellm` (its dependencies clash with
the project's pins), built by `make .venv-litellm/.installed` from requirements-litellm.txt. Without
that venv every entry point raises `LiteLlmVenvMissingError` naming the target.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.pod_contract import Sandbox

__all__ = [
    "LITELLM_VENV",
    "MAKE_TARGET",
    "HttpResponse",
    "LiteLlmConfigError",
    "LiteLlmVenvMissingError",
    "ProxyServer",
    "ProxyStartError",
    "StubBackend",
    "free_port",
    "http_request",
    "litellm_python",
    "metric_samples",
    "parse_sse",
    "proxy_environment",
    "running_proxy",
    "running_sandboxed_proxy",
    "validate_config",
]

ROOT = Path(__file__).resolve().parent.parent
LITELLM_VENV = ROOT / ".venv-litellm"
MAKE_TARGET = ".venv-litellm/.installed"
VALIDATE_TIMEOUT_S = 120.0
# LiteLLM 1.106.2 waits for in-flight work before exiting on SIGTERM (> 8 s measured, FACTS.md).
STOP_TIMEOUT_S = 15.0

_PROXY_ENV_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
# Read by the proxy from its environment even when the config does not mention them.
_STATE_ENV_VARS = ("DATABASE_URL", "DIRECT_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_URL")
_ENV_REFERENCE = "os.environ/"


class LiteLlmVenvMissingError(RuntimeError):
    """`.venv-litellm` (the real proxy's venv) has not been built."""


class LiteLlmConfigError(ValueError):
    """LiteLLM rejected a config; the message is LiteLLM's."""


class ProxyStartError(RuntimeError):
    """The proxy exited early or did not become ready in time; the message carries its log tail."""


# --- the LiteLLM venv -----------------------------------------------------------------------------


def litellm_python(venv: Path = LITELLM_VENV) -> Path:
    """The LiteLLM venv's python; LiteLlmVenvMissingError (naming the Makefile target) when absent."""
    python = venv / "bin" / "python"
    if not (python.is_file() and (venv / "bin" / "litellm").is_file()):
        raise LiteLlmVenvMissingError(
            f"the LiteLLM venv {venv} is missing or incomplete; build it with `make {MAKE_TARGET}` "
            "(python3 -m venv .venv-litellm && .venv-litellm/bin/python -m pip install -r requirements-litellm.txt)"
        )
    return python


def proxy_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment LiteLLM runs with here: offline (bundled cost map, no Hugging Face hub), no HTTP
    proxy, and none of the caller's database or Redis settings, which LiteLLM would pick up by itself."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_ENV_VARS and k not in _STATE_ENV_VARS}
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        LITELLM_DONT_SHOW_FEEDBACK_BOX="true",
    )
    env.update(extra or {})
    return env


def _env_references(value: Any) -> set[str]:
    """Names of every `os.environ/NAME` reference anywhere in a config."""
    if isinstance(value, str):
        return {value[len(_ENV_REFERENCE) :]} if value.startswith(_ENV_REFERENCE) else set()
    if isinstance(value, Mapping):
        return set().union(*(_env_references(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(_env_references(v) for v in value)) if value else set()
    return set()


_VALIDATE_SCRIPT = r"""
import json, sys, traceback
config = json.load(sys.stdin)
try:
    import litellm
    from litellm.proxy._types import ConfigYAML
    ConfigYAML(**config)
    router_settings = {k: v for k, v in (config.get("router_settings") or {}).items() if not k.startswith("redis_")}
    litellm.Router(model_list=config.get("model_list") or [], **router_settings)
except Exception as exc:
    print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}))
else:
    print(json.dumps({"ok": True}))
"""


def validate_config(config: Mapping[str, Any]) -> None:
    """Check a proxy config with LiteLLM itself, in the LiteLLM venv.

    `litellm.proxy._types.ConfigYAML(**config)` checks the document's shape; `litellm.Router(model_list=...,
    **router_settings)` (without the `redis_*` keys, so no Redis is contacted) catches unknown router
    settings and bad routing strategies. `os.environ/NAME` references are accepted: any such variable
    that is not set gets a placeholder value in the subprocess. Raises LiteLlmConfigError with LiteLLM's
    message on failure.
    """
    python = litellm_python()
    placeholders = {name: f"placeholder-{name.lower()}" for name in _env_references(config)}
    env = proxy_environment({**placeholders, **{k: v for k, v in os.environ.items() if k in placeholders}})
    try:
        proc = subprocess.run(
            [str(python), "-c", _VALIDATE_SCRIPT],
            input=json.dumps(config),
            capture_output=True,
            text=True,
            env=env,
            timeout=VALIDATE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LiteLlmConfigError(f"validating the config with LiteLLM took more than {VALIDATE_TIMEOUT_S} s") from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise LiteLlmConfigError(
            f"the LiteLLM validator failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}\n{proc.stdout[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    if not result["ok"]:
        raise LiteLlmConfigError(str(result["error"]))


# --- HTTP client ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> HttpResponse:
    """One HTTP request, never through an HTTP proxy; HTTP error statuses are returned, not raised.

    Raises ConnectionError when nothing answers (refused, reset, timed out).
    """
    data = None if json_body is None else json.dumps(json_body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    start = time.perf_counter()
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = response.read()
            return HttpResponse(int(response.status), dict(response.headers), body, time.perf_counter() - start)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return HttpResponse(int(exc.code), dict(exc.headers), body, time.perf_counter() - start)
    except (urllib.error.URLError, OSError) as exc:
        raise ConnectionError(f"{method} {url}: {exc}") from exc


def parse_sse(body: bytes) -> list[Any]:
    """The `data:` payloads of a server-sent-event stream: parsed JSON, or the string "[DONE]"."""
    events: list[Any] = []
    for line in body.decode("utf-8", errors="replace").splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[len("data:") :].strip()
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples named exactly `name` in a Prometheus text exposition, as (labels, value) pairs."""
    samples: list[tuple[dict[str, str], float]] = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        labels = {m["key"]: m["value"] for m in _LABEL.finditer(match["labels"] or "")}
        samples.append((labels, float(match["value"])))
    return samples


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- stub backend -----------------------------------------------------------------------------------


class _StubServer(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: with dozens of clients connecting at once, dropped SYNs
    # are retried after 1 s and show up as 1 s latencies.
    request_queue_size = 256
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class StubBackend:
    """An OpenAI-compatible server on 127.0.0.1 standing in for vLLM.

    Serves `GET /v1/models` and `POST /v1/chat/completions` (JSON, or SSE chunks ending with
    `data: [DONE]` when the request has `"stream": true`), each after `delay` seconds. Counts requests
    per path, thread-safely. `stop()` closes the listening socket and every open connection (like a
    killed pod: new connections are refused); `start()` brings it back on the same port.
    """

    CHAT_PATH = "/v1/chat/completions"
    MODELS_PATH = "/v1/models"

    def __init__(
        self, *, name: str = "stub", delay: float = 0.005, port: int = 0, chunks: int = 3, keep_alive: bool = False
    ) -> None:
        self.name = name
        self.delay = delay
        self.chunks = chunks
        # vLLM (uvicorn) keeps a streaming connection open after the stream (chunked encoding); by default
        # this stub closes it, which would hide a client's connection reuse.
        self.keep_alive = keep_alive
        self._port = port
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._arrivals: list[float] = []
        self._connections: set[socket.socket] = set()
        self._server: _StubServer | None = None
        self._thread: threading.Thread | None = None

    # -- counters
    def count(self, path: str | None = None) -> int:
        """Requests received for `path` (any method), or for every path when None."""
        with self._lock:
            return sum(self._counts.values()) if path is None else self._counts.get(path, 0)

    @property
    def completions(self) -> int:
        """Chat completion requests received (streaming and not)."""
        return self.count(self.CHAT_PATH)

    @property
    def request_count(self) -> int:
        """Requests received on any path."""
        return self.count()

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    # -- addresses
    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("StubBackend has no port yet (start it, or use it as a context manager)")
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. http://127.0.0.1:PORT/v1 (a LiteLLM api_base)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- lifecycle
    def start(self) -> StubBackend:
        """Listen (again) on the same port; the first start picks a free port unless one was given."""
        if self._server is not None:
            return self
        self._server = _StubServer(("127.0.0.1", self._port), self._handler_class())
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"stub-{self.name}-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection; the port is kept for `start()`."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StubBackend:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- HTTP
    def _record(self, path: str) -> None:
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            if path == self.CHAT_PATH:
                self._arrivals.append(time.monotonic())

    def arrivals(self) -> list[float]:
        """`time.monotonic()` of every chat completion request received, in order."""
        with self._lock:
            return list(self._arrivals)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _completion(self, model: str, prompt_tokens: int) -> dict[str, Any]:
        text = f"Hello from {self.name}."
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": self.name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"},
            ],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": prompt_tokens + 5},
        }

    def _chunks(self, model: str, prompt_tokens: int) -> Iterator[dict[str, Any]]:
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": self.name,
        }
        words = [f"word{i} " for i in range(self.chunks - 1)] + [f"from {self.name}."]
        for i, word in enumerate(words):
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": word}
            yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(words), "total_tokens": prompt_tokens + 3}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every keep-alive response.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                stub._track(self.connection, add=True)

            def finish(self) -> None:
                stub._track(self.connection, add=False)
                with contextlib.suppress(OSError):
                    super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                stub._record(path)
                if path == "/health":  # vLLM's health endpoint (probes, routers' health checks)
                    self._json(200, {})
                elif path == StubBackend.MODELS_PATH:
                    created = int(time.time())
                    model = {"id": stub.name, "object": "model", "created": created, "owned_by": "stub"}
                    self._json(200, {"object": "list", "data": [model]})
                else:
                    self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                stub._record(path)
                if path != StubBackend.CHAT_PATH:
                    self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
                    return
                try:
                    request = json.loads(raw or b"{}")
                except ValueError:
                    self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
                    return
                model = str(request.get("model", "stub-model"))
                prompt_tokens = max(1, len(json.dumps(request.get("messages", []))) // 4)
                if stub.delay > 0:
                    time.sleep(stub.delay)
                if not request.get("stream"):
                    self._json(200, stub._completion(model, prompt_tokens))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                if stub.keep_alive:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                events = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in stub._chunks(model, prompt_tokens)]
                for event in [*events, b"data: [DONE]\n\n"]:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event) if stub.keep_alive else event)
                    self.wfile.flush()
                if stub.keep_alive:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()

        return Handler


# --- the proxy ----------------------------------------------------------------------------------------


@dataclass
class ProxyServer:
    """A running LiteLLM proxy (from `running_proxy`)."""

    process: subprocess.Popen[bytes]
    url: str
    master_key: str
    workdir: Path
    config_file: Path
    log_file: Path
    started_in: float = 0.0
    stopped_in: float | None = field(default=None)
    _kept_log: str | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        """What the proxy has written to stdout and stderr so far (kept after it stopped)."""
        if self._kept_log is not None:
            return self._kept_log
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        authorized: bool = True,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> HttpResponse:
        """An HTTP request to the proxy, with the master key unless `authorized` is False."""
        all_headers = {**(self.auth_headers() if authorized else {}), **(headers or {})}
        return http_request(method, f"{self.url}{path}", json_body=json_body, headers=all_headers, timeout=timeout)

    def chat(self, model: str, *, stream: bool = False, authorized: bool = True, timeout: float = 60.0) -> HttpResponse:
        """POST /v1/chat/completions with one short user message."""
        body = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "stream": stream}
        return self.request("POST", "/v1/chat/completions", json_body=body, authorized=authorized, timeout=timeout)


def _log_tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the proxy's process group, then SIGKILL it after `timeout` seconds."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # Children (if any) that outlived the leader.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_proxy(
    config: Mapping[str, Any],
    *,
    master_key: str,
    port: int | None = None,
    timeout: float = 90,
    env: Mapping[str, str] | None = None,
    stop_timeout: float = STOP_TIMEOUT_S,
) -> Iterator[ProxyServer]:
    """Run the real LiteLLM proxy on 127.0.0.1 with `config` until the block ends.

    The config is written as JSON (valid YAML) to a temporary directory; the proxy runs with one worker,
    `LITELLM_MASTER_KEY=master_key`, offline settings (`proxy_environment`) and `env` on top. Waits at most
    `timeout` seconds for `GET /health/readiness` to answer 200 (ProxyStartError with the log otherwise).
    On exit: SIGTERM (the proxy drains in-flight requests first), SIGKILL after `stop_timeout` seconds, and
    the directory is removed; `log()` still answers afterwards.
    """
    litellm_python()
    litellm = LITELLM_VENV / "bin" / "litellm"
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="litellm-proxy-") as tmp:
        workdir = Path(tmp)
        config_file = workdir / "config.yaml"
        config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        proc_env = proxy_environment({"LITELLM_MASTER_KEY": master_key, "HOME": str(workdir), **(env or {})})
        args = [str(litellm), "--config", str(config_file), "--host", "127.0.0.1", "--port", str(port)]
        args += ["--num_workers", "1"]
        with _serving(args, proc_env, workdir, config_file, master_key, port, timeout, stop_timeout) as server:
            yield server


@contextlib.contextmanager
def running_sandboxed_proxy(
    sandbox: Sandbox,
    container_args: Sequence[str],
    *,
    master_key: str,
    timeout: float = 90,
    stop_timeout: float = STOP_TIMEOUT_S,
) -> Iterator[ProxyServer]:
    """The real proxy run as the pod would run it: `sandbox` (tests/pod_contract.py) gives its UID, its
    environment only, a read-only root and the pod's volumes; `container_args` are the container's own
    (`--config` pointing into the ConfigMap mount), with `--port` moved to a free port on 127.0.0.1."""
    litellm_python()
    port = free_port()
    args = list(container_args)
    if "--port" in args:
        del args[args.index("--port") : args.index("--port") + 2]
    argv = [str(LITELLM_VENV / "bin" / "litellm"), *args, "--host", "127.0.0.1", "--port", str(port)]
    # The venv stands in for the image's files: bound read-only at its own path, also when the checkout
    # lies under /tmp, which the pod's emptyDir replaces.
    sandbox = dataclasses.replace(sandbox, read_only_binds={**sandbox.read_only_binds, str(LITELLM_VENV): LITELLM_VENV})
    config_file = Path(args[args.index("--config") + 1]) if "--config" in args else Path("/")
    with tempfile.TemporaryDirectory(prefix="litellm-pod-") as tmp:
        # bwrap itself gets only PATH: the sandbox sets the process's environment (--clearenv, --setenv).
        host_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        with _serving(
            sandbox.wrap(argv), host_env, Path(tmp), config_file, master_key, port, timeout, stop_timeout
        ) as server:
            yield server


@contextlib.contextmanager
def _serving(
    argv: list[str],
    env: dict[str, str],
    workdir: Path,
    config_file: Path,
    master_key: str,
    port: int,
    timeout: float,
    stop_timeout: float,
) -> Iterator[ProxyServer]:
    """Start `argv` (a proxy on 127.0.0.1:`port`), wait until it is ready, stop it when the block ends."""
    log_file = workdir / "proxy.log"
    start = time.monotonic()
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ProxyServer(process, f"http://127.0.0.1:{port}", master_key, workdir, config_file, log_file)
    try:
        _wait_ready(server, timeout)
        server.started_in = time.monotonic() - start
        yield server
    finally:
        stop_start = time.monotonic()
        _stop(process, stop_timeout)
        server.stopped_in = time.monotonic() - stop_start
        server._kept_log = server.log()


def _wait_ready(server: ProxyServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise ProxyStartError(
                f"the LiteLLM proxy exited with code {server.process.returncode} before it was ready; "
                f"log:\n{_log_tail(server.log_file)}"
            )
        try:
            if http_request("GET", f"{server.url}/health/readiness", timeout=2.0).status == 200:
                return
        except ConnectionError:
            pass
        if time.monotonic() >= deadline:
            raise ProxyStartError(
                f"the LiteLLM proxy was not ready within {timeout} s; log:\n{_log_tail(server.log_file)}"
            )
        time.sleep(0.25)
