"""The platform's namespaces, each with the Pod Security Standard it enforces."""

from __future__ import annotations

from collections.abc import Sequence

import cdk8s
import cdk8s_plus_30 as kplus
from constructs import Construct

from platform_config.model import NamespaceSettings, PlatformConfig

PSS_LABEL = "pod-security.kubernetes.io"


def platform_labels(config: PlatformConfig) -> dict[str, str]:
    """Labels on every object the platform's charts create."""
    return {"app.kubernetes.io/part-of": config.name, "app.kubernetes.io/managed-by": "cdk8s"}


def pod_security_labels(level: str, kubernetes_version: str) -> dict[str, str]:
    """Pod Security Admission labels: enforce `level`, and always audit and warn at `restricted` so
    anything short of it shows up in audit logs and kubectl output even where it is admitted.
    Versions are pinned to the cluster's so a control-plane upgrade cannot tighten policy unseen."""
    version = f"v{kubernetes_version}"
    return {
        f"{PSS_LABEL}/enforce": level,
        f"{PSS_LABEL}/enforce-version": version,
        f"{PSS_LABEL}/audit": "restricted",
        f"{PSS_LABEL}/audit-version": version,
        f"{PSS_LABEL}/warn": "restricted",
        f"{PSS_LABEL}/warn-version": version,
    }


class PlatformNamespaces(cdk8s.Chart):
    """One Namespace per configured entry; applied first, before any chart that uses them."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        namespaces: Sequence[NamespaceSettings],
        kubernetes_version: str,
        labels: dict[str, str],
    ) -> None:
        super().__init__(scope, id, labels=labels)
        self.namespaces = {
            ns.name: kplus.Namespace(
                self,
                ns.name,
                metadata=cdk8s.ApiObjectMetadata(
                    name=ns.name, labels=pod_security_labels(ns.pod_security, kubernetes_version)
                ),
            )
            for ns in namespaces
        }
