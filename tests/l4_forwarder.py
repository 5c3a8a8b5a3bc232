"""An L4 forwarder on 127.0.0.1 that does what a Kubernetes ClusterIP Service does to TCP.

kube-proxy picks a backend when a connection opens and keeps every byte of that connection on it
(iptables/IPVS load-balance connections, not HTTP requests); a backend removed from the endpoint list
gets no new connection, while connections already open to it stay up until either side closes them. This
forwarder does the same with a backend list the test changes at run time, so a client that keeps its
connections open (an HTTP connection pool) shows the pinning that a Service would give it.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections.abc import Iterator
from types import TracebackType


class L4Forwarder:
    """Listens on 127.0.0.1; each accepted connection goes to one backend port chosen at random."""

    def __init__(self, backends: list[int]) -> None:
        self._backends = list(backends)
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = int(self._server.getsockname()[1])
        self._closing = False
        self._connections = 0
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept_loop, name=f"l4-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return self._connections

    def set_backends(self, backends: list[int]) -> None:
        """Replace the endpoint list: new connections pick from it; open ones stay where they are."""
        with self._lock:
            self._backends = list(backends)

    def start(self) -> L4Forwarder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> L4Forwarder:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._connections += 1
                backend = random.choice(self._backends) if self._backends else None
            if backend is None:
                client.close()
                continue
            threading.Thread(target=self._connect, args=(client, backend), daemon=True).start()

    def _connect(self, client: socket.socket, backend: int) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", backend), timeout=5)
        except OSError:
            client.close()  # like a connection to a pod that is gone: refused, the client sees a reset
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._sockets.update((client, upstream))
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            for chunk in _chunks(source):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(sink)


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    while True:
        data = sock.recv(65536)
        if not data:
            return
        yield data
