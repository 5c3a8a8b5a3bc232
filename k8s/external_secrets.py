"""External Secrets objects: a SecretStore on AWS Secrets Manager and the ExternalSecret that builds
the gateway's Kubernetes Secret. Only secret *names* and templates appear here, never values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cdk8s
from constructs import Construct

from k8s.crds import custom_resource

API_VERSION = "external-secrets.io/v1"


@dataclass(frozen=True)
class RemoteValue:
    """One JSON field of one Secrets Manager secret, named `key` inside the template."""

    key: str
    secret_arn: str
    json_field: str


def secret_store(scope: Construct, id: str, *, name: str, namespace: str, region: str) -> cdk8s.ApiObject:
    # No `auth`: the controller's own Pod Identity credentials are used (ESO docs, aws-access.md).
    return custom_resource(
        scope,
        id,
        api_version=API_VERSION,
        kind="SecretStore",
        name=name,
        namespace=namespace,
        spec={"provider": {"aws": {"service": "SecretsManager", "region": region}}},
    )


def external_secret(
    scope: Construct,
    id: str,
    *,
    name: str,
    namespace: str,
    store: str,
    values: Sequence[RemoteValue],
    template: Mapping[str, str],
    refresh: str = "1h",
) -> cdk8s.ApiObject:
    """A Kubernetes Secret `name` whose keys are `template` (Go templates over the remote values)."""
    return custom_resource(
        scope,
        id,
        api_version=API_VERSION,
        kind="ExternalSecret",
        name=name,
        namespace=namespace,
        spec={
            "refreshInterval": refresh,
            "secretStoreRef": {"kind": "SecretStore", "name": store},
            "target": {
                "name": name,
                "creationPolicy": "Owner",
                "template": {"engineVersion": "v2", "data": dict(template)},
            },
            "data": [
                {"secretKey": v.key, "remoteRef": {"key": v.secret_arn, "property": v.json_field}} for v in values
            ],
        },
    )
