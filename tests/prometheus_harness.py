"""Checks PromQL with the real Prometheus tools: `promtool` and a local `prometheus` server.

- `check_expressions`: `promtool check rules` on one recording rule per expression.
- `run_rule_tests`: `promtool test rules` unit tests on synthetic series.
- `MetricsExporter`: a local /metrics endpoint that always answers in the classic text format, like vLLM.
- `running_prometheus`: a real `prometheus` on 127.0.0.1 scraping what the caller configures.

The tools come from `scripts/ensure-prometheus.sh`; without them every entry point raises
`PrometheusToolMissingError` naming that script. Rule, test and config files are written as JSON,
which is valid YAML, so no YAML library is needed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "CLASSIC_TEXT_CONTENT_TYPE",
    "ENSURE_SCRIPT",
    "MetricsExporter",
    "PromQLError",
    "PrometheusServer",
    "PrometheusStartError",
    "PrometheusToolMissingError",
    "RuleTestError",
    "check_expressions",
    "require_tool",
    "run_rule_tests",
    "running_prometheus",
    "self_signed_tls",
]

ENSURE_SCRIPT = "scripts/ensure-prometheus.sh"
CLASSIC_TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROMTOOL_TIMEOUT_S = 60.0

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_RULE_INDEX = re.compile(r'group "[^"]*", rule (\d+),')


class PrometheusToolMissingError(RuntimeError):
    """`promtool` or `prometheus` is not on PATH."""


class PromQLError(Exception):
    """promtool rejected an expression or rule; `output` is what promtool printed."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class RuleTestError(PromQLError):
    """`promtool test rules` reported failing unit tests (or could not load the rules)."""


class PrometheusStartError(RuntimeError):
    """The `prometheus` server exited early or did not become ready in time."""


def require_tool(name: str) -> str:
    """Absolute path of `name` ("promtool" or "prometheus") on PATH, else PrometheusToolMissingError."""
    path = shutil.which(name)
    if path is None:
        raise PrometheusToolMissingError(
            f"`{name}` is not on PATH; the PromQL tests need the real Prometheus tools. "
            f"Run `{ENSURE_SCRIPT}` (as root it installs Debian's `prometheus` package, which has both "
            "`promtool` and `prometheus`; otherwise it says how to get them)."
        )
    return path


def _json_default(value: object) -> object:
    """Lets callers pass any Mapping (e.g. MappingProxyType) or tuple/set where JSON wants dict/list."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} to a Prometheus config/rule file: {value!r}")


def _write_json(path: Path, document: Mapping[str, Any]) -> Path:
    """Writes `document` as JSON, which YAML parsers (promtool, prometheus) read as YAML."""
    path.write_text(json.dumps(document, indent=2, default=_json_default) + "\n", encoding="utf-8")
    return path


def _run_promtool(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(part.strip() for part in (proc.stdout, proc.stderr) if part.strip())


def check_expressions(exprs: Mapping[str, str]) -> None:
    """Check that every expression parses, with `promtool check rules`.

    Each item becomes a recording rule named by its key, so keys must be valid metric names.
    Raises PromQLError naming every invalid expression, with promtool's output.
    """
    if not exprs:
        return
    bad_names = [name for name in exprs if not _METRIC_NAME.match(name)]
    if bad_names:
        raise ValueError(f"keys must be valid metric names (used as recording-rule names): {bad_names}")
    names = list(exprs)
    rules = [{"record": name, "expr": exprs[name]} for name in names]
    with tempfile.TemporaryDirectory(prefix="promql-check-") as tmp:
        rules_file = _write_json(
            Path(tmp) / "expressions.rules.yml", {"groups": [{"name": "expressions", "rules": rules}]}
        )
        proc = _run_promtool(["check", "rules", rules_file.name], cwd=Path(tmp))
    if proc.returncode == 0:
        return
    output = _output(proc)
    flagged = sorted({int(index) for index in _RULE_INDEX.findall(output)})
    culprits = [f"  {names[i - 1]}: {exprs[names[i - 1]]}" for i in flagged if 0 < i <= len(names)]
    summary = "\n".join(culprits) if culprits else "  (promtool named no rule; see its output)"
    raise PromQLError(f"promtool rejected PromQL:\n{summary}\npromtool output:\n{output}", output)


def run_rule_tests(
    rules: Sequence[Mapping[str, Any]],
    tests: Sequence[Mapping[str, Any]],
    evaluation_interval: str = "15s",
) -> None:
    """Run `promtool test rules` on `rules` (recording and/or alerting rule entries) and `tests`.

    `tests` are promtool unit-test entries, as in its test file: `interval`, `input_series`,
    `promql_expr_test`, `alert_rule_test`, ... The rules go into one group evaluated every
    `evaluation_interval`. Raises RuleTestError with promtool's output if anything fails.
    """
    if not tests:
        raise ValueError("run_rule_tests needs at least one test")
    with tempfile.TemporaryDirectory(prefix="promql-test-") as tmp:
        rules_file = _write_json(
            Path(tmp) / "rules.yml",
            {"groups": [{"name": "rules_under_test", "interval": evaluation_interval, "rules": list(rules)}]},
        )
        test_file = _write_json(
            Path(tmp) / "tests.yml",
            {"rule_files": [rules_file.name], "evaluation_interval": evaluation_interval, "tests": list(tests)},
        )
        proc = _run_promtool(["test", "rules", test_file.name], cwd=Path(tmp))
    if proc.returncode != 0:
        output = _output(proc)
        raise RuleTestError(f"promtool test rules failed:\n{output}", output)


class MetricsExporter:
    """A /metrics endpoint on 127.0.0.1 (free port) serving `render()` on every scrape.

    It always answers in the classic Prometheus text format (CLASSIC_TEXT_CONTENT_TYPE) and ignores
    the Accept header, like vLLM, so names such as `vllm:num_requests_waiting` reach the scraper
    unchanged. `render` is called per request, so a test can change values between scrapes.
    With `tls` (e.g. from `self_signed_tls`) it serves HTTPS instead, like an exporter with a web config.
    """

    def __init__(self, render: Callable[[], str], *, tls: ssl.SSLContext | None = None) -> None:
        self._render = render
        self._tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._scrapes = 0
        self._accept_headers: list[str] = []

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("MetricsExporter is not running (use it as a context manager)")
        return int(self._server.server_address[1])

    @property
    def target(self) -> str:
        """`127.0.0.1:PORT`, for a static_configs target."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.target}/metrics"

    @property
    def scrape_count(self) -> int:
        """Number of GET /metrics requests answered so far."""
        with self._lock:
            return self._scrapes

    @property
    def accept_headers(self) -> list[str]:
        """The Accept header of each /metrics request (what the scraper asked for)."""
        with self._lock:
            return list(self._accept_headers)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        if urllib.parse.urlsplit(request.path).path != "/metrics":
            self._reply(request, 404, "not found; metrics are at /metrics\n")
            return
        with self._lock:
            self._scrapes += 1
            self._accept_headers.append(request.headers.get("Accept", ""))
        try:
            text = self._render()
        except Exception as exc:  # reported to the scraper, which shows it as the target's error
            self._reply(request, 500, f"render() failed: {exc!r}\n")
            return
        if text and not text.endswith("\n"):
            text += "\n"
        self._reply(request, 200, text)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, text: str) -> None:
        body = text.encode("utf-8")
        request.send_response(status)
        request.send_header("Content-Type", CLASSIC_TEXT_CONTENT_TYPE)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def __enter__(self) -> MetricsExporter:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                exporter._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self._tls is not None:
            # The handshake runs on the first read, in the request's own thread, not in accept().
            self._server.socket = self._tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="metrics-exporter", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None


def self_signed_tls(directory: Path, hostname: str = "localhost") -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for `hostname`, made by the `openssl` command
    (no Python package needed); key and certificate are written to `directory`, which the caller owns."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise PrometheusToolMissingError(
            "`openssl` is not on PATH; the HTTPS scrape tests need it for a test certificate"
        )
    key, cert = directory / "tls.key", directory / "tls.crt"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={hostname}",
            "-addext",
            f"subjectAltName=DNS:{hostname}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


# --- HTTP client: httpx when the venv has it, else urllib (never through a proxy: all local) ---


def _http_get(url: str, params: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET `url`; returns (status, body). Raises OSError-like errors when nothing answers."""
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    try:
        httpx: Any = importlib.import_module("httpx")
    except ImportError:
        httpx = None
    if httpx is not None:
        try:
            with httpx.Client(trust_env=False, timeout=timeout) as client:
                response = client.get(url)
                return int(response.status_code), bytes(response.content)
        except httpx.TransportError as exc:
            raise ConnectionError(str(exc)) from exc
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except urllib.error.URLError as exc:
        raise ConnectionError(str(exc.reason)) from exc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusServer:
    """A running `prometheus` process (from `running_prometheus`), with a small HTTP API client."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, workdir: Path) -> None:
        self.process = process
        self.url = url
        self.workdir = workdir
        self.config_file = workdir / "prometheus.yml"
        self.log_file = workdir / "prometheus.log"

    def log(self) -> str:
        """What the server has logged so far."""
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        status, body = _http_get(f"{self.url}{path}", params, timeout=10.0)
        try:
            payload: Any = json.loads(body)
        except ValueError as exc:
            raise RuntimeError(f"GET {path} -> HTTP {status}, not JSON: {body[:500]!r}") from exc
        if payload.get("status") != "success":
            message = f"{payload.get('errorType', 'error')}: {payload.get('error', body[:500])}"
            if payload.get("errorType") == "bad_data":
                raise PromQLError(f"Prometheus rejected the query: {message}", message)
            raise RuntimeError(f"GET {path} -> HTTP {status}: {message}")
        return payload["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query at the current time (or at the Unix time `at`); the API's `result` list for a vector.

        Each item is `{"metric": {...labels, "__name__": ...}, "value": [ts, "string value"]}`. A scalar or
        string result comes back as one item with empty `metric`. Raises PromQLError for a bad expression.
        """
        data = self._api("/api/v1/query", {"query": expr, **({"time": repr(at)} if at is not None else {})})
        result_type = data.get("resultType")
        if result_type in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def series(self, match: str, start: float, end: float) -> list[dict[str, str]]:
        """Label sets of the series `match` selects that have samples between the Unix times `start` and `end`
        (`/api/v1/series`)."""
        found: list[dict[str, str]] = self._api(
            "/api/v1/series", {"match[]": match, "start": repr(start), "end": repr(end)}
        )
        return found

    def rule_groups(self) -> list[dict[str, Any]]:
        """Loaded rule groups (`/api/v1/rules`): name, file, interval, lastEvaluation, and each rule's
        state ("inactive", "pending", "firing" for alerts), health, lastEvaluation, alerts."""
        groups: list[dict[str, Any]] = self._api("/api/v1/rules")["groups"]
        return groups

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (`/api/v1/alerts`): each with labels (alertname included), state ("pending" or
        "firing"), activeAt and value."""
        alerts: list[dict[str, Any]] = self._api("/api/v1/alerts")["alerts"]
        return alerts

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets (`/api/v1/targets`): scrapeUrl, health, lastError, labels, ..."""
        data = self._api("/api/v1/targets", {"state": "active"})
        active: list[dict[str, Any]] = data["activeTargets"]
        return active

    def wait_for_targets(self, timeout: float = 15.0, interval: float = 0.2) -> list[dict[str, Any]]:
        """Poll until there are active targets and every one has been scraped successfully (health "up").

        The first scrape comes about 5 s after /-/ready: Prometheus applies discovered targets on a
        ticker of at least 5 s. Raises TimeoutError with the targets' last errors.
        """
        deadline = time.monotonic() + timeout
        targets: list[dict[str, Any]] = []
        while True:
            targets = self.targets()
            if targets and all(t.get("health") == "up" for t in targets):
                return targets
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        summary = [{key: t.get(key) for key in ("scrapeUrl", "health", "lastError")} for t in targets]
        raise TimeoutError(f"after {timeout}s, not every scrape target is up: {summary}")

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 15.0,
        interval: float = 0.2,
    ) -> list[dict[str, Any]]:
        """Poll `query(expr)` until `predicate(result)` holds; return that result.

        Raises TimeoutError after `timeout` seconds, with the last result and the targets' health.
        """
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        try:
            targets = [
                {key: t.get(key) for key in ("scrapeUrl", "health", "lastError", "lastScrape")} for t in self.targets()
            ]
        except Exception as exc:  # only decorates the message
            targets = [{"error": repr(exc)}]
        raise TimeoutError(
            f"after {timeout}s, {expr!r} still did not satisfy the predicate; last result: {result}; targets: {targets}"
        )


def _wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
    """True once GET /-/ready answers 200; False if the process exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            status, _ = _http_get(f"{url}/-/ready", timeout=1.0)
            if status == 200:
                return True
        except (ConnectionError, OSError):
            pass
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


# Blocks of up to a day: the default of 2 h makes three days of history 36 blocks, which takes promtool
# several seconds more to write and Prometheus longer to open.
BACKFILL_MAX_BLOCK_DURATION = "24h"


def _create_blocks(openmetrics: str, source: Path, data_dir: Path) -> None:
    """`promtool tsdb create-blocks-from openmetrics` of `openmetrics` (written to `source`) into `data_dir`."""
    if not source.exists():
        source.write_text(openmetrics, encoding="utf-8")
    data_dir.mkdir(parents=True, exist_ok=True)
    args = ["tsdb", "create-blocks-from", "openmetrics", "--quiet"]
    args += [f"--max-block-duration={BACKFILL_MAX_BLOCK_DURATION}", str(source), str(data_dir)]
    proc = _run_promtool(args, cwd=source.parent)
    if proc.returncode != 0:
        raise PromQLError(
            f"promtool could not backfill {source} (exit {proc.returncode}):\n{_output(proc)}", _output(proc)
        )


@contextlib.contextmanager
def running_prometheus(
    scrape_configs: Sequence[Mapping[str, Any]],
    *,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    rule_files: Sequence[str | os.PathLike[str]] = (),
    extra_args: Sequence[str] = (),
    startup_timeout: float = 30.0,
    backfill: str | None = None,
) -> Iterator[PrometheusServer]:
    """Run the real `prometheus` on 127.0.0.1 (free port, temp config and TSDB) until the block ends.

    `scrape_configs` are full scrape_config entries (job_name, static_configs, metrics_path,
    honor_labels, ...), written to the config as given. `rule_files` are loaded with the global
    `evaluation_interval`. `extra_args` go to the command line (e.g. "--enable-feature=native-histograms").
    `backfill` is history for the TSDB: OpenMetrics text with a timestamp on every sample, ending in
    `# EOF`, turned into blocks in the empty data directory by Prometheus's own backfill
    (`promtool tsdb create-blocks-from openmetrics`) before the server starts, so rules and queries over
    windows of hours or days see data at once. Waits up to `startup_timeout` seconds for /-/ready, and
    always stops the process on exit.
    """
    binary = require_tool("prometheus")
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": [dict(entry) for entry in scrape_configs],
    }
    with tempfile.TemporaryDirectory(prefix="prometheus-") as tmp:
        workdir = Path(tmp)
        config_file = _write_json(workdir / "prometheus.yml", config)
        failures: list[str] = []
        for _attempt in range(3):  # a free port can be taken between probing and binding it
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            data_dir = workdir / f"data-{port}"
            if backfill is not None:
                _create_blocks(backfill, workdir / "backfill.om", data_dir)
            with (workdir / "prometheus.log").open("wb") as log:
                process = subprocess.Popen(
                    [
                        binary,
                        f"--config.file={config_file}",
                        f"--storage.tsdb.path={data_dir}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        *extra_args,
                    ],
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            server = PrometheusServer(process, url, workdir)
            try:
                if _wait_ready(process, url, startup_timeout):
                    yield server
                    return
                code = process.poll()
            finally:
                _stop(process)
            log_text = server.log()
            failures.append(f"exited with code {code}" if code is not None else f"not ready within {startup_timeout}s")
            if "address already in use" not in log_text:
                break
        raise PrometheusStartError(
            f"prometheus did not start ({'; '.join(failures)}); config:\n"
            f"{json.dumps(config, indent=2)}\nlog tail:\n{log_text[-4000:]}"
        )


def check_rule_file(rule_file: Path, *, lint_fatal: bool = True) -> str:
    """`promtool check rules [--lint-fatal] FILE` on a rule file as written (e.g. the synthesized
    `prometheus/alerting_rules.yml`); returns promtool's output, raises PromQLError if it fails (with
    --lint-fatal a lint finding such as a duplicate rule fails too)."""
    args = ["check", "rules", *(["--lint-fatal"] if lint_fatal else []), rule_file.name]
    proc = _run_promtool(args, cwd=rule_file.parent)
    if proc.returncode != 0:
        output = _output(proc)
        raise PromQLError(f"promtool check rules {rule_file} failed (exit {proc.returncode}):\n{output}", output)
    return _output(proc)


def run_rule_file_tests(
    rule_file: Path, tests: Sequence[Mapping[str, Any]], *, evaluation_interval: str = "1m"
) -> None:
    """`promtool test rules` with `tests` (promtool unit-test entries) against a copy of `rule_file`, used as
    is: the test file names it in `rule_files`, so the tests run exactly what Prometheus loads. Raises
    RuleTestError with promtool's output."""
    if not tests:
        raise ValueError("run_rule_file_tests needs at least one test")
    with tempfile.TemporaryDirectory(prefix="promtool-rules-") as tmp:
        workdir = Path(tmp)
        shutil.copyfile(rule_file, workdir / rule_file.name)
        document = {"rule_files": [rule_file.name], "evaluation_interval": evaluation_interval, "tests": list(tests)}
        _write_json(workdir / "tests.yml", document)
        proc = _run_promtool(["test", "rules", "tests.yml"], cwd=workdir)
    if proc.returncode != 0:
        output = _output(proc)
        raise RuleTestError(f"promtool test rules on {rule_file} failed (exit {proc.returncode}):\n{output}", output)
