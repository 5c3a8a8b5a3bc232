"""A small fake Kubernetes API server on 127.0.0.1 for tests of code that uses the `kubernetes` client.

The real client (kubernetes 36.0.0) runs end to end against it: it loads the kubeconfig `write_kubeconfig` writes
(token auth over plain HTTP), sends its requests, and deserializes the answers into its own models. The server
holds the objects a test gives it, as the JSON a real API server returns (`kubectl get -o json` shapes: apiVersion,
kind, metadata, spec, status), and answers reads:

    GET /api/v1/<plural>                                    every object of a kind (cluster-scoped, or all namespaces)
    GET /api/v1/<plural>/<name>                             a cluster-scoped object (a Node, a Namespace)
    GET /api/v1/namespaces/<ns>/<plural>[/<name>]           namespaced objects
    GET /apis/<group>/<version>/...                         the same for API groups (apps/v1, policy/v1, keda.sh/...)
    GET /version                                            a version answer (clients probe it to test reachability)
    *   /api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/<path>   the API server's service proxy (below)

`labelSelector` (equality `a=b`, `a==b`, `a!=b`, existence `a`, `!a`) and `fieldSelector` (dotted paths with `=`
or `!=`, e.g. `spec.nodeName=n1`, `status.phase=Running`) filter lists, as the real server does. A kind is served
when the test added an object of it, declared it with `serve()`, or it is built in (core, apps, policy); any other
path answers 404 like a server without that CRD. Writes answer 405: the commands under test only read.

Service proxy: `proxy_service()` sends a Service's proxied requests to a local stub (its base URL). As on a real
server, the Service object must exist and the requested port (number or name) must be one of its `spec.ports`; the
`Authorization` header is dropped before forwarding (kube-apiserver deletes it once it has authenticated the
request: k8s.io/apiserver `pkg/endpoints/filters/authentication.go`), so a backend never sees the cluster token.
A Service without a registered target answers 503 ("no endpoints available"), as one without ready pods does.

Every request is recorded in `requests` (method, path, query) so a test can assert what was asked and that
nothing was written. `fail(prefix, status)` makes requests under a path answer an error Status (e.g. 403).

TLS: with `tls=(certificate file, key file)` the server speaks only HTTPS, with that certificate (e.g. one a test CA
issued for an EKS endpoint's host, tests/tls_identity.py), so the real client's certificate and server-name checks
run; `write_kubeconfig` then takes the CA, `tls-server-name` and `insecure-skip-tls-verify` to put in the context.
"""

from __future__ import annotations

import json
import secrets
import ssl
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import yaml

# Kinds every real API server serves without a CRD: (api path prefix, plural, namespaced).
BUILT_IN: tuple[tuple[str, str, bool], ...] = (
    ("/api/v1", "nodes", False),
    ("/api/v1", "namespaces", False),
    ("/api/v1", "pods", True),
    ("/api/v1", "services", True),
    ("/api/v1", "configmaps", True),
    ("/api/v1", "secrets", True),
    ("/api/v1", "serviceaccounts", True),
    ("/api/v1", "endpoints", True),
    ("/api/v1", "persistentvolumeclaims", True),
    ("/api/v1", "persistentvolumes", False),
    ("/apis/apps/v1", "deployments", True),
    ("/apis/apps/v1", "daemonsets", True),
    ("/apis/apps/v1", "statefulsets", True),
    ("/apis/policy/v1", "poddisruptionbudgets", True),
    ("/apis/autoscaling/v2", "horizontalpodautoscalers", True),
    ("/apis/networking.k8s.io/v1", "networkpolicies", True),
    ("/apis/networking.k8s.io/v1", "ingresses", True),
)
_IRREGULAR_PLURALS = {"Endpoints": "endpoints"}


def plural_of(kind: str) -> str:
    """The resource name of a kind, as the API server spells it (Ingress -> ingresses, NetworkPolicy ->
    networkpolicies, NodeClass -> nodeclasses)."""
    if kind in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[kind]
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def api_prefix(api_version: str) -> str:
    """`v1` -> /api/v1, `apps/v1` -> /apis/apps/v1."""
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # names in lower case


@dataclass(frozen=True)
class _Resource:
    prefix: str
    plural: str
    namespaced: bool
    api_version: str
    kind: str


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _field(obj: Mapping[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def _matches_labels(obj: Mapping[str, Any], selector: str) -> bool:
    labels: Mapping[str, str] = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif " in " in term or " notin " in term:
            raise ValueError(f"set-based selector {term!r} is not supported by the fake API server")
        elif term not in labels:
            return False
    return True


def _matches_fields(obj: Mapping[str, Any], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            path, value = term.split("!=", 1)
            if _field(obj, path) == value:
                return False
        else:
            path, value = term.replace("==", "=").split("=", 1)
            if _field(obj, path) != value:
                return False
    return True


class FakeKubeApi:
    """A fake API server holding `objects`; use as a context manager (it listens on 127.0.0.1 while open)."""

    # The shape of `GET /version` (k8s.io/apimachinery pkg/version Info; the client requires every field).
    VERSION: ClassVar[dict[str, str]] = {
        "major": "1",
        "minor": "35",
        "gitVersion": "v1.35.0-eks-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-28T00:00:00Z",
        "goVersion": "go1.25.5",
        "compiler": "gc",
        "platform": "linux/amd64",
    }

    def __init__(
        self,
        objects: Iterable[Mapping[str, Any]] = (),
        *,
        token: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.token = token or secrets.token_hex(16)
        self.tls = tls
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._resources: dict[tuple[str, str], _Resource] = {
            (prefix, plural): _Resource(
                prefix, plural, namespaced, prefix.removeprefix("/api/").removeprefix("/apis/"), ""
            )
            for prefix, plural, namespaced in BUILT_IN
        }
        self._proxies: dict[tuple[str, str], str] = {}
        self._failures: list[tuple[str, int, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add(*objects)

    # --- what the server holds -------------------------------------------------------------------------------
    def serve(self, api_version: str, kind: str, *, namespaced: bool = True) -> None:
        """Declare a kind served (an installed CRD) even while it has no object: lists answer empty, not 404."""
        prefix = api_prefix(api_version)
        self._resources[(prefix, plural_of(kind))] = _Resource(prefix, plural_of(kind), namespaced, api_version, kind)

    def add(self, *objects: Mapping[str, Any]) -> None:
        """Add (or replace, by namespace and name) objects in their real JSON shape."""
        with self._lock:
            for obj in objects:
                api_version, kind = obj["apiVersion"], obj["kind"]
                namespace = obj["metadata"].get("namespace")
                key = (api_prefix(api_version), plural_of(kind))
                known = self._resources.get(key)
                namespaced = known.namespaced if known else namespace is not None
                self._resources[key] = _Resource(key[0], key[1], namespaced, api_version, kind)
                items = self._objects.setdefault(key, [])
                items[:] = [o for o in items if not self._same(o, obj)]
                items.append(json.loads(json.dumps(obj)))

    def remove(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        key = (api_prefix(api_version), plural_of(kind))
        with self._lock:
            self._objects[key] = [
                o
                for o in self._objects.get(key, [])
                if not (o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace)
            ]

    def proxy_service(self, namespace: str, name: str, target_url: str) -> None:
        """Send the service proxy's requests for `namespace/name` to `target_url` (a local stub's base URL)."""
        self._proxies[(namespace, name)] = target_url.rstrip("/")

    def fail(self, path_prefix: str, status: int, message: str = "injected failure") -> None:
        """Answer every request whose path starts with `path_prefix` with an error Status."""
        self._failures.append((path_prefix, status, message))

    @staticmethod
    def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        return bool(
            a["metadata"]["name"] == b["metadata"]["name"]
            and a["metadata"].get("namespace") == b["metadata"].get("namespace")
        )

    # --- lifecycle ---------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first (use it as a context manager)"
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}"

    def start(self) -> FakeKubeApi:
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            # The handshake runs in the request's thread (on its first read), not in the accept loop.
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        # A short poll interval: shutdown() waits for the loop to notice, 0.5 s by default.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-kube-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def write_kubeconfig(
        self,
        path: Path,
        *,
        context: str = "fake",
        ca_data: str | None = None,
        tls_server_name: str | None = None,
        insecure: bool = False,
    ) -> Path:
        """A kubeconfig whose current context reaches this server with its bearer token (and, over TLS, the
        `certificate-authority-data`, `tls-server-name` and `insecure-skip-tls-verify` given)."""
        cluster: dict[str, Any] = {"server": self.url}
        if ca_data is not None:
            cluster["certificate-authority-data"] = ca_data
        if tls_server_name is not None:
            cluster["tls-server-name"] = tls_server_name
        if insecure:
            cluster["insecure-skip-tls-verify"] = True
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": context, "user": {"token": self.token}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def writes(self) -> list[RecordedRequest]:
        """Requests that would have changed a Kubernetes object (anything but GET, proxied requests aside)."""
        return [r for r in self.requests if r.method != "GET" and "/proxy/" not in r.path + "/"]

    # --- answering ---------------------------------------------------------------------------------------------
    def answer(
        self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request."""
        path = path.rstrip("/") or "/"  # the client asks for /version/
        self.requests.append(RecordedRequest(method, path, query, headers))
        if headers.get("authorization") != f"Bearer {self.token}":
            return self._json(401, _status(401, "Unauthorized", "Unauthorized"))
        for prefix, status, message in self._failures:
            if path.startswith(prefix):
                return self._json(status, _status(status, "Injected", message))
        if path == "/version":
            return self._json(200, self.VERSION)
        resource, namespace, name, subresource = self._parse(path)
        if resource is None:
            return self._json(404, _status(404, "NotFound", "the server could not find the requested resource"))
        if resource.plural == "services" and namespace and name and subresource and subresource[0] == "proxy":
            return self._proxy(method, namespace, name, "/" + "/".join(subresource[1:]), query, headers, body)
        if method != "GET":
            return self._json(405, _status(405, "MethodNotAllowed", f"the fake API server only reads ({method})"))
        if subresource and subresource != ["status"]:
            return self._json(404, _status(404, "NotFound", f"subresource {'/'.join(subresource)} is not served"))
        with self._lock:
            items = list(self._objects.get((resource.prefix, resource.plural), []))
        if namespace is not None:
            items = [o for o in items if o["metadata"].get("namespace") == namespace]
        if name is not None:
            found = [o for o in items if o["metadata"]["name"] == name]
            if not found:
                message = f'{resource.plural} "{name}" not found'
                return self._json(404, _status(404, "NotFound", message))
            return self._json(200, found[0])
        try:
            items = [
                o
                for o in items
                if _matches_labels(o, query.get("labelSelector", [""])[0])
                and _matches_fields(o, query.get("fieldSelector", [""])[0])
            ]
        except ValueError as error:
            return self._json(400, _status(400, "BadRequest", str(error)))
        kind = resource.kind or (items[0]["kind"] if items else "")
        return self._json(
            200,
            {
                "apiVersion": resource.api_version,
                "kind": f"{kind}List" if kind else "List",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            },
        )

    def _parse(self, path: str) -> tuple[_Resource | None, str | None, str | None, list[str]]:
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 2:
            prefix, rest = f"/api/{parts[1]}", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            prefix, rest = f"/apis/{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None, None, None, []
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return None, None, None, []
        resource = self._resources.get((prefix, rest[0]))
        if resource is None or (namespace is not None and not resource.namespaced):
            return None, None, None, []
        name = rest[1] if len(rest) > 1 else None
        return resource, namespace, name, rest[2:]

    def _proxy(
        self,
        method: str,
        namespace: str,
        name_and_port: str,
        path: str,
        query: Mapping[str, list[str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, str, bytes]:
        name, _, port = name_and_port.partition(":")
        with self._lock:
            services = [
                o
                for o in self._objects.get(("/api/v1", "services"), [])
                if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace
            ]
        if not services:
            return self._json(404, _status(404, "NotFound", f'services "{name}" not found'))
        ports = services[0].get("spec", {}).get("ports", [])
        if port and not any(port in (str(p.get("port")), p.get("name")) for p in ports):
            message = f'no service port "{port}" found for service "{name}"'
            return self._json(503, _status(503, "ServiceUnavailable", message))
        target = self._proxies.get((namespace, name))
        if target is None:
            message = f'no endpoints available for service "{name}"'
            return self._json(503, _status(503, "ServiceUnavailable", message))
        query_text = "&".join(f"{k}={quote(v, safe='')}" for k, values in query.items() for v in values)
        forwarded = {k: v for k, v in headers.items() if k not in ("authorization", "host", "content-length")}
        request = urllib.request.Request(
            f"{target}{path}" + (f"?{query_text}" if query_text else ""),
            data=body if method in ("POST", "PUT", "PATCH") else None,
            headers=forwarded,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.headers.get("Content-Type", ""), reply.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Content-Type", ""), error.read()
        except OSError as error:
            message = f"error trying to reach service: {error}"
            return self._json(503, _status(503, "ServiceUnavailable", message))

    @staticmethod
    def _json(status: int, payload: Mapping[str, Any]) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(payload).encode()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that refused the server's certificate ends the handshake: that is the test's point, not an
        error to print."""
        if not isinstance(sys.exc_info()[1], ssl.SSLError):
            super().handle_error(request, client_address)


def _handler_for(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY each answer waits ~40 ms for a delayed ACK.
        disable_nagle_algorithm = True

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, content_type, payload = api.answer(
                self.command, parts.path, parse_qs(parts.query, keep_blank_values=True), headers, body
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type or "application/octet-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
