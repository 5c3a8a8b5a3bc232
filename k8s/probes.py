"""HTTP probes on a container's named `http` port."""

from __future__ import annotations

from cdk8s_plus_30 import k8s


def http_probe(path: str, *, period: int, failures: int, timeout: int = 3) -> k8s.Probe:
    return k8s.Probe(
        http_get=k8s.HttpGetAction(path=path, port=k8s.IntOrString.from_string("http")),
        period_seconds=period,
        failure_threshold=failures,
        timeout_seconds=timeout,
    )
