"""The live platform: the Kubernetes API (a client built from a kubeconfig) and HTTP to in-cluster Services.

In-cluster Services (Prometheus, LiteLLM) are reached either at a URL the person gives (`--prometheus-url`,
`--gateway-url`: a port-forward, or the internal ALB from inside the VPC) or through the API server's service proxy
(`/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/<path>`), which needs nothing but the kubeconfig. The API
server authenticates the proxied request and then drops its `Authorization` header (k8s.io/apiserver
`pkg/endpoints/filters/authentication.go`), so the gateway key travels in LiteLLM's own `x-litellm-api-key` header
(LiteLLM 1.102.1 `proxy/auth/user_api_key_auth.py`: read before `Authorization`, `Bearer ` prefix accepted), which
works on both paths.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ops.errors import BadInputError, OpsError, aws_error_code
from ops.target import MASTER_KEY_FIELD, MASTER_KEY_OUTPUT, AwsClients, stack_name
from platform_config import PlatformConfig

LITELLM_KEY_HEADER = "x-litellm-api-key"


class EndpointError(Exception):
    """An HTTP endpoint could not be reached (the message says which and why); a check reports it as failed."""


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self, limit: int = 300) -> str:
        text = self.body.decode("utf-8", "replace").strip()
        return text if len(text) <= limit else text[:limit] + "..."


class HttpEndpoint(Protocol):
    """An HTTP server a check talks to; `description` says how it is reached (for the evidence)."""

    description: str

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> HttpReply: ...


class UrlEndpoint:
    """A base URL reached directly (a port-forward, or the gateway's ALB from inside the VPC)."""

    def __init__(self, base_url: str, *, timeout: float, option: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadInputError(f"{option} {base_url!r} is not an http(s) URL; give one like http://localhost:4000")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.description = self.base_url

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> HttpReply:
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {**({"Content-Type": "application/json"} if data else {}), **(headers or {})}
        request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                return HttpReply(reply.status, reply.read())
        except urllib.error.HTTPError as error:
            return HttpReply(error.code, error.read())
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise EndpointError(f"cannot reach {self.base_url}: {reason}") from None


class Kube:
    """A Kubernetes API client for one kubeconfig context, with failures turned into one-line OpsErrors."""

    def __init__(self, api_client: Any, *, context: str, timeout: float) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.context = context
        self.timeout = timeout
        self.core = client.CoreV1Api(api_client)
        self.policy = client.PolicyV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    @property
    def host(self) -> str:
        host: str = self.api_client.configuration.host
        return host

    def probe(self) -> str:
        """The server's version, or an OpsError saying why the API cannot be used."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            version = client.VersionApi(self.api_client).get_code(_request_timeout=self.timeout)
        except ApiException as error:
            if error.status in (401, 403):
                raise OpsError(
                    f"the Kubernetes API at {self.host} refused the kubeconfig's credentials (HTTP {error.status}): "
                    "check that your IAM principal has an access entry (cluster.admin_principal_arns)"
                ) from None
            raise OpsError(f"the Kubernetes API at {self.host} answered HTTP {error.status}: {error.reason}") from None
        except Exception as error:
            if _is_tls_error(error):
                # The server did not prove it is the one the context's certificate authority (and tls-server-name)
                # name: through a tunnel, it is another cluster's API server or not an API server at all.
                raise OpsError(
                    f"the Kubernetes API at {self.host} (kubeconfig context {self.context!r}) failed TLS verification "
                    f"against the context's certificate authority: {_reason(error)}"
                ) from None
            if _is_connection_error(error):
                raise OpsError(
                    f"cannot reach the Kubernetes API at {self.host} (kubeconfig context {self.context!r}): "
                    f"{_reason(error)}; a private endpoint is reachable only from inside the VPC"
                ) from None
            raise
        return str(version.git_version)

    def service(self, namespace: str, name: str, port: int) -> ServiceProxyEndpoint:
        return ServiceProxyEndpoint(self, namespace, name, port)


class ServiceProxyEndpoint:
    """A Service reached through the API server's service proxy, with the kubeconfig's credentials."""

    def __init__(self, kube: Kube, namespace: str, name: str, port: int) -> None:
        self.kube = kube
        self.base_path = f"/api/v1/namespaces/{namespace}/services/{name}:{port}/proxy"
        self.description = f"service proxy {namespace}/{name}:{port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> HttpReply:
        from kubernetes.client.exceptions import ApiException

        all_headers = {"Accept": "application/json", **({"Content-Type": "application/json"} if body else {})}
        try:
            reply = self.kube.api_client.call_api(
                self.base_path + path,
                method,
                query_params=list((query or {}).items()),
                header_params={**all_headers, **(headers or {})},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=self.kube.timeout,
            )
        except ApiException as error:
            payload = error.body if isinstance(error.body, bytes) else str(error.body or error.reason).encode()
            return HttpReply(int(error.status or 0), payload)
        except Exception as error:
            if _is_connection_error(error):
                raise EndpointError(f"{self.description} (API server {self.kube.host}): {_reason(error)}") from None
            raise
        return HttpReply(int(reply.status), bytes(reply.data))


def _is_connection_error(error: BaseException) -> bool:
    import urllib3

    return isinstance(error, (urllib3.exceptions.HTTPError, OSError))


def _is_tls_error(error: BaseException) -> bool:
    """urllib3 wraps a failed handshake (ssl.SSLCertVerificationError) in its SSLError, inside a MaxRetryError."""
    import ssl

    import urllib3

    return isinstance(error, ssl.SSLError) or isinstance(getattr(error, "reason", None), urllib3.exceptions.SSLError)


def _reason(error: BaseException) -> str:
    """urllib3's `HTTPConnection(host=..., port=...): Failed to establish a new connection: [Errno 111] ...` (inside
    a MaxRetryError) without the connection object's repr."""
    reason = str(getattr(error, "reason", None) or error)
    return reason.split("): ", 1)[-1] if reason.startswith(("HTTPConnection(", "HTTPSConnection(")) else reason


def connect(kubeconfig: Path | None, context: str | None, *, timeout: float) -> Kube:
    """A client for `context` (default: the current one) of `kubeconfig` (default: $KUBECONFIG or ~/.kube/config)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    # No retry: an unreachable endpoint fails at once with one message, rather than after urllib3's default three
    # retries, each logged as a warning on stderr.
    configuration.retries = 0
    try:
        _, active = config.list_kube_config_contexts(config_file=str(kubeconfig) if kubeconfig else None)
        chosen = context or active["name"]
        config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except config.ConfigException as error:
        where = str(kubeconfig) if kubeconfig else "$KUBECONFIG or ~/.kube/config"
        fix = "write one with `aws eks update-kubeconfig --name <cluster>`"
        raise OpsError(f"cannot use the kubeconfig ({where}): {error}; {fix}", exit_code=2) from None
    except OSError as error:
        raise OpsError(f"cannot read the kubeconfig: {error}", exit_code=2) from None
    if not _has_credentials(configuration):
        raise OpsError(
            f"the kubeconfig context {chosen!r} gave no credentials: its user has no token or client certificate, "
            "or its exec command failed (for EKS, run the `aws eks get-token --cluster-name <cluster>` it names to "
            "see why: the AWS CLI on PATH, a valid session)"
        )
    return Kube(client.ApiClient(configuration), context=str(chosen), timeout=timeout)


def _has_credentials(configuration: Any) -> bool:
    """A token (static, or from an exec plugin such as `aws eks get-token`), a client certificate or a user name.

    The client logs a failed exec plugin and goes on without a token; its requests are then anonymous, and EKS
    answers /version even to those (system:public-info-viewer), so a probe would not notice."""
    api_key = configuration.api_key or {}
    return bool(
        api_key.get("BearerToken") or api_key.get("authorization") or configuration.cert_file or configuration.username
    )


def same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


# --- the kubeconfig reaches this cluster, and no other ---------------------------------------------------------------
TUNNEL_OPTION = "--tunnel"
TUNNEL_EXAMPLE = "https://127.0.0.1:8443"
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


def tunnel_url(value: str) -> str:
    """`--tunnel`'s value: the https URL (host and port, nothing else) a kubeconfig's server is set to when it is the
    local end of a tunnel to the cluster's endpoint. Plain http is refused: nothing could prove what answers."""
    parts = urllib.parse.urlsplit(value.strip())
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if (
        parts.scheme != "https"
        or not parts.hostname
        or not port_ok
        or parts.username is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise BadInputError(
            f"{TUNNEL_OPTION} {value!r} is not an https URL of a host and port; give the kubeconfig's server at the "
            f"local end of the tunnel, e.g. {TUNNEL_EXAMPLE}"
        )
    return value.strip().rstrip("/")


def _certificates(pem: bytes) -> frozenset[bytes]:
    """The DER bytes of each certificate in a PEM bundle, so line breaks and order do not matter."""
    found = set()
    for body in _PEM_CERTIFICATE.findall(pem):
        try:
            found.add(base64.b64decode(b"".join(body.split()), validate=True))
        except binascii.Error:
            continue
    return frozenset(found)


def _fingerprints(certificates: frozenset[bytes]) -> str:
    """Each certificate as the start of its SHA-256 fingerprint (of the DER bytes, as `openssl x509 -fingerprint`)."""
    return " and ".join(sorted(f"sha256:{hashlib.sha256(c).hexdigest()[:16]}" for c in certificates)) or "none"


def require_cluster(kube: Kube, cluster: Mapping[str, Any], *, region: str, tunnel: str | None) -> None:
    """Refuse a kubeconfig context that does not reach `cluster` (EKS DescribeCluster's `cluster`), before any request.

    The context's server must be the cluster's endpoint, so a context left on another cluster is not checked by
    mistake. With `tunnel` (`--tunnel URL`, e.g. SSM port forwarding to a private endpoint) the server may instead be
    that URL, provided the TLS handshake can only succeed with this cluster's API server:
    - the context trusts exactly the cluster's certificate authority (DescribeCluster `certificateAuthority.data`, a
      base64 PEM: what `aws eks update-kubeconfig` writes as `certificate-authority-data`, aws-cli
      `awscli/customizations/eks/update_kubeconfig.py` `get_cluster_entry`); every EKS cluster has its own CA;
    - TLS is verified (no `insecure-skip-tls-verify`);
    - `tls-server-name` is the endpoint's host, the name the API server's certificate carries. kubernetes 36.0.3
      copies the field into `Configuration.tls_server_name` (`config/kube_config.py` `_load_cluster_info`), and its
      REST client hands that to urllib3 as `server_hostname` (`client/rest.py`), which urllib3 2.x sends as SNI and
      checks the certificate against (`urllib3/connection.py` `_ssl_wrap_socket_and_match_hostname`).
    The handshake itself happens at the first request (`Kube.probe`).
    """
    endpoint = str(cluster.get("endpoint") or "")
    name = str(cluster.get("name") or "")
    if same_endpoint(kube.host, endpoint):
        return
    if tunnel is None:
        raise BadInputError(
            f"the kubeconfig context {kube.context!r} points at {kube.host}, not at the cluster {name} ({endpoint}); "
            f"run `aws eks update-kubeconfig --name {name} --region {region}` or pass --kube-context, or, when "
            f"{kube.host} is a tunnel to that endpoint, pass {TUNNEL_OPTION} {kube.host}"
        )
    where = f"{TUNNEL_OPTION} {tunnel}: the kubeconfig context {kube.context!r}"
    if not same_endpoint(kube.host, tunnel):
        raise BadInputError(
            f"{where} points at {kube.host}, neither that tunnel nor the cluster {name}'s endpoint ({endpoint}); "
            f"pass {TUNNEL_OPTION} with the context's server, or the --kube-context whose server is the tunnel"
        )
    configuration = kube.api_client.configuration
    host = (urllib.parse.urlsplit(endpoint).hostname or "").lower()
    if not configuration.verify_ssl:
        raise BadInputError(
            f"{where} sets insecure-skip-tls-verify, so nothing proves the tunnel reaches the cluster {name}; a "
            "tunnel is accepted only with TLS verified against the cluster's certificate authority, with "
            f"tls-server-name {host}"
        )
    server_name = str(configuration.tls_server_name or "")
    if server_name.lower().rstrip(".") != host:
        has = f"has tls-server-name {server_name!r}" if server_name else "has no tls-server-name"
        raise BadInputError(
            f"{where} {has}; a tunnel is accepted only with tls-server-name {host}, the host of the cluster {name}'s "
            f"endpoint (kubectl config set-cluster <its cluster> --tls-server-name {host})"
        )
    expected = _certificates(_decoded((cluster.get("certificateAuthority") or {}).get("data")))
    trusted = _trusted_certificates(configuration.ssl_ca_cert)
    if not expected or trusted != expected:
        has = (
            f"trusts the certificate {'authority' if len(trusted) == 1 else 'authorities'} {_fingerprints(trusted)}"
            if trusted
            else "names no certificate authority"
        )
        raise BadInputError(
            f"{where} {has}; a tunnel is accepted only when the context trusts exactly the cluster {name}'s CA, "
            f"{_fingerprints(expected)} (DescribeCluster certificateAuthority), as `aws eks update-kubeconfig --name "
            f"{name}` writes it into certificate-authority-data"
        )


def _decoded(data: Any) -> bytes:
    try:
        return base64.b64decode(str(data or ""), validate=True)
    except binascii.Error:
        return b""


def _trusted_certificates(ca_file: str | None) -> frozenset[bytes]:
    """The certificates in the CA file the client verifies the server with: the kubeconfig's `certificate-authority`,
    or the temporary file the client writes `certificate-authority-data` to (kubernetes 36.0.3 `FileOrData.as_file`).
    None means the system's trust store, which is not the cluster's CA."""
    if not ca_file:
        return frozenset()
    try:
        return _certificates(Path(ca_file).read_bytes())
    except OSError as error:
        raise OpsError(f"cannot read the kubeconfig's certificate authority {ca_file}: {error}", exit_code=2) from None


def stack_outputs(aws: AwsClients, stack: str) -> dict[str, str]:
    """A deployed stack's outputs (CloudFormation DescribeStacks), or an OpsError naming the stack."""
    from botocore.exceptions import ClientError

    try:
        stacks = aws.cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        raise OpsError(f"cannot read the stack {stack}: {error.response['Error'].get('Message', error)}") from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def gateway_master_key(aws: AwsClients, config: PlatformConfig) -> tuple[str, str]:
    """(`sk-<key>`, the secret's ARN): the LiteLLM master key, from the data stack's output and Secrets Manager.

    Raises OpsError naming the stack, output or secret that is missing; the key itself is never in a message.
    """
    from botocore.exceptions import ClientError

    stack = stack_name(config, "data")
    secret_arn = stack_outputs(aws, stack).get(MASTER_KEY_OUTPUT)
    if not secret_arn:
        raise OpsError(f"the stack {stack} has no output {MASTER_KEY_OUTPUT} (is gateway.enabled on?)")
    try:
        secret = aws.secretsmanager.get_secret_value(SecretId=secret_arn)
    except ClientError as error:
        raise OpsError(f"cannot read the secret {secret_arn} ({aws_error_code(error)})") from None
    try:
        key = json.loads(secret["SecretString"])[MASTER_KEY_FIELD]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise OpsError(f"the secret {secret_arn} holds no JSON field {MASTER_KEY_FIELD!r}") from None
    return f"sk-{key}", secret_arn


@dataclass(frozen=True)
class Completion:
    ok: bool
    status: int
    reply: str  # the model's text, or the server's error (with the key removed)
    completion_tokens: int | None
    seconds: float


def chat_completion(endpoint: HttpEndpoint, *, model: str, key: str, prompt: str = "Say hello.") -> Completion:
    """One non-streamed chat completion (POST /v1/chat/completions) with the gateway key."""
    started = time.perf_counter()
    reply = endpoint.request(
        "POST",
        "/v1/chat/completions",
        headers={LITELLM_KEY_HEADER: f"Bearer {key}"},
        body={"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 32},
    )
    seconds = time.perf_counter() - started
    text = reply.text().replace(key, "sk-***")
    if reply.status != 200:
        return Completion(False, reply.status, text, None, seconds)
    try:
        payload = reply.json()
        content = payload["choices"][0]["message"]["content"]
        tokens = (payload.get("usage") or {}).get("completion_tokens")
    except (ValueError, KeyError, IndexError, TypeError):
        return Completion(False, reply.status, f"not a chat completion: {text}", None, seconds)
    if not isinstance(content, str) or not content.strip():
        return Completion(False, reply.status, "the completion has no text", tokens, seconds)
    return Completion(True, reply.status, content.strip().replace(key, "sk-***"), tokens, seconds)
