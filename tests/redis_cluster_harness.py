"""A real Redis cluster on 127.0.0.1, shaped like the gateway's ElastiCache Serverless cache.

Three primaries (cluster mode, as ElastiCache Serverless always is), TLS only with a throwaway CA, the
`default` user disabled and the proxy's user created with the access string the synthesized
`AWS::ElastiCache::User` carries. An `admin` user (never given to the proxy) creates the cluster and lets
tests read what the proxy stored.

Needs Debian's `redis-server` and `redis-cli` (7.x, built with TLS) and `openssl`; `scripts/ensure-sandbox.sh`
installs them. Without them `RedisToolsMissingError` names what is missing.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ADMIN_USER = "admin"
NODES = 3
START_TIMEOUT_S = 20.0


class RedisToolsMissingError(RuntimeError):
    """redis-server, redis-cli or openssl is not on PATH."""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_cluster_port(taken: list[int]) -> int:
    """A free port whose cluster-bus port (port + 10000, Redis's rule) is free and valid too."""
    for _ in range(1000):
        port = random.randint(20000, 45000)
        if port not in taken and _port_free(port) and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis cluster node")


def _require_tools() -> None:
    missing = [tool for tool in ("redis-server", "redis-cli", "openssl") if shutil.which(tool) is None]
    if missing:
        raise RedisToolsMissingError(
            f"{', '.join(missing)} not on PATH: run scripts/ensure-sandbox.sh (as root it installs Debian's "
            "redis-server and openssl)"
        )


def _make_certificates(directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it (the cluster's TLS and its bus)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    for name in ("server.key", "ca.crt", "server.crt"):
        (directory / name).chmod(0o644)


@dataclass
class RedisCluster:
    """A running cluster (from `running_redis_cluster`)."""

    directory: Path
    ports: list[int]
    user: str
    password: str
    admin_password: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    def cli(self, port: int, *args: str) -> str:
        """redis-cli as the admin user over TLS; returns its stdout."""
        result = subprocess.run(
            [
                "redis-cli",
                "--tls",
                "--cacert",
                str(self.ca_file),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--user",
                ADMIN_USER,
                "--pass",
                self.admin_password,
                "--no-auth-warning",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout

    def keys(self) -> dict[int, list[str]]:
        """Every key on every node, by node port (a key lives on the node owning its slot)."""
        return {port: self.cli(port, "--scan").split() for port in self.ports}

    def all_keys(self) -> list[str]:
        return sorted(key for keys in self.keys().values() for key in keys)


def _node_config(port: int, directory: Path, user_acl: str, admin_password: str) -> str:
    return "\n".join(
        [
            "port 0",
            f"tls-port {port}",
            "bind 127.0.0.1",
            f"dir {directory}",
            f"cluster-config-file nodes-{port}.conf",
            "cluster-enabled yes",
            "tls-cluster yes",
            "tls-replication yes",
            f"tls-cert-file {directory / 'server.crt'}",
            f"tls-key-file {directory / 'server.key'}",
            f"tls-ca-cert-file {directory / 'ca.crt'}",
            "tls-auth-clients no",
            'save ""',
            "appendonly no",
            # As on the ElastiCache cache: the default user can do nothing.
            "user default off -@all",
            f"user {ADMIN_USER} on >{admin_password} ~* &* +@all",
            user_acl,
            f"masteruser {ADMIN_USER}",
            f"masterauth {admin_password}",
            "",
        ]
    )


@contextlib.contextmanager
def running_redis_cluster(*, user: str, password: str, access_string: str) -> Iterator[RedisCluster]:
    """Three TLS primaries in cluster mode with `user` created as `user <name> <access_string> >password`."""
    _require_tools()
    with tempfile.TemporaryDirectory(prefix="redis-cluster-") as tmp:
        directory = Path(tmp)
        directory.chmod(0o755)
        _make_certificates(directory)
        admin_password = "admin-" + password
        ports: list[int] = []
        for _ in range(NODES):
            ports.append(_free_cluster_port(ports))
        cluster = RedisCluster(directory, ports, user, password, admin_password)
        # ElastiCache access strings start with on/off; the password goes in as a `>` rule.
        acl = f"user {user} {access_string} >{password}"
        try:
            for port in cluster.ports:
                conf = directory / f"redis-{port}.conf"
                conf.write_text(_node_config(port, directory, acl, admin_password))
                log = (directory / f"redis-{port}.log").open("wb")
                cluster.processes.append(
                    subprocess.Popen(["redis-server", str(conf)], stdout=log, stderr=subprocess.STDOUT)
                )
            _wait_listening(cluster)
            nodes = [f"127.0.0.1:{port}" for port in cluster.ports]
            created = subprocess.run(
                [
                    "redis-cli",
                    "--tls",
                    "--cacert",
                    str(cluster.ca_file),
                    "--user",
                    ADMIN_USER,
                    "--pass",
                    admin_password,
                    "--no-auth-warning",
                    "--cluster",
                    "create",
                    *nodes,
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
            _wait_cluster_ok(cluster)
            yield cluster
        finally:
            for process in cluster.processes:
                process.terminate()
            for process in cluster.processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


def _wait_listening(cluster: RedisCluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for port in cluster.ports:
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not start; see {cluster.directory}")
            time.sleep(0.1)


def _wait_cluster_ok(cluster: RedisCluster) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while "cluster_state:ok" not in cluster.cli(cluster.ports[0], "cluster", "info"):
        if time.monotonic() > deadline:
            raise RuntimeError("the Redis cluster did not reach cluster_state:ok")
        time.sleep(0.2)
