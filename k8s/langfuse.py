"""The Kubernetes objects of self-hosted LangFuse that are not in its Helm chart.

- `LangfuseConfigChart`: the SecretStore and the ExternalSecret that copy every LangFuse credential from
  Secrets Manager into one Secret, and the IngressClass of LangFuse's internal ALB.
- `LangfuseClickHouseChart`: ClickHouse and ClickHouse Keeper as the ClickHouse operator's custom resources.
  The LangFuse chart (2.0.0, templates/clickhouse/*.yaml) can render them too, but passes no security context,
  so the operator's defaults apply: root, and the capabilities IPC_LOCK, PERFMON and SYS_PTRACE
  (ClickHouse/clickhouse-operator internal/controller/{clickhouse,keeper}/templates.go), which Pod Security
  `baseline` already refuses. Rendered here they run as the images' clickhouse user under `restricted`.
- `LangfuseAppSecretChart`: a fix for an upgrade failure of chart 2.0.0 (see the class).

Only secret names and Secret keys appear here, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cdk8s
from cdk8s_plus_30 import k8s
from constructs import Construct

from k8s.crds import IngressClassParamsSpec, custom_resource, ingress_class_params
from k8s.external_secrets import RemoteValue, external_secret, secret_store
from k8s.gateway import ALB_CONTROLLER
from k8s.storage import DEFAULT_STORAGE_CLASS

CLICKHOUSE_API = "clickhouse.com/v1alpha1"
# The operator names the Service of a ClickHouseCluster `<name>-clickhouse-headless` (api/v1alpha1
# clickhousecluster_types.go SpecificName/HeadlessServiceName), the host the LangFuse chart itself would use.
CLICKHOUSE_NAME = "langfuse"
CLICKHOUSE_HOST = f"{CLICKHOUSE_NAME}-clickhouse-headless"
# The ClickHouse images LangFuse chart 2.0.0 runs (values.yaml clickhouse.cluster.image / keeper.image).
CLICKHOUSE_SERVER_IMAGE = ("clickhouse/clickhouse-server", "26.4")
CLICKHOUSE_KEEPER_IMAGE = ("clickhouse/clickhouse-keeper", "26.4")
# The `clickhouse` user of the official images, created with a fixed uid/gid of 101 for rootless containers
# (ClickHouse docker/server Dockerfiles); their entrypoints skip chown and gosu when started as non-root.
CLICKHOUSE_UID = 101

SECRET_STORE = "aws-secrets-manager"
CREDENTIALS_SECRET = "langfuse-credentials"
INGRESS_CLASS = "alb-langfuse"

# Keys of the credentials Secret (`langfuse-credentials`), read by the Helm values and the ClickHouse resource.
DATABASE_PASSWORD_KEY = "database-password"
REDIS_PASSWORD_KEY = "redis-password"
CLICKHOUSE_PASSWORD_KEY = "clickhouse-password"
SALT_KEY = "salt"
ENCRYPTION_KEY_KEY = "encryption-key"
NEXTAUTH_SECRET_KEY = "nextauth-secret"
INIT_PUBLIC_KEY_KEY = "init-public-key"
INIT_SECRET_KEY_KEY = "init-secret-key"
INIT_USER_PASSWORD_KEY = "init-user-password"


@dataclass(frozen=True)
class LangfuseSecretRefs:
    """The Secrets Manager secrets (ARN, JSON field) behind each key of the credentials Secret."""

    region: str
    database_password: tuple[str, str]
    redis_password: tuple[str, str]
    clickhouse_password: tuple[str, str]
    salt: tuple[str, str]
    encryption_key: tuple[str, str]
    nextauth_secret: tuple[str, str]
    gateway_public_key: tuple[str, str]
    gateway_secret_key: tuple[str, str]
    admin_password: tuple[str, str]

    def by_secret_key(self) -> dict[str, tuple[str, str]]:
        return {
            DATABASE_PASSWORD_KEY: self.database_password,
            REDIS_PASSWORD_KEY: self.redis_password,
            CLICKHOUSE_PASSWORD_KEY: self.clickhouse_password,
            SALT_KEY: self.salt,
            ENCRYPTION_KEY_KEY: self.encryption_key,
            NEXTAUTH_SECRET_KEY: self.nextauth_secret,
            INIT_PUBLIC_KEY_KEY: self.gateway_public_key,
            INIT_SECRET_KEY_KEY: self.gateway_secret_key,
            INIT_USER_PASSWORD_KEY: self.admin_password,
        }


def _template_name(secret_key: str) -> str:
    """An ESO template variable for a Secret key (`database-password` -> `databasepassword`)."""
    return secret_key.replace("-", "")


def _remote_values(refs: Mapping[str, tuple[str, str]]) -> list[RemoteValue]:
    return [RemoteValue(_template_name(key), arn, field) for key, (arn, field) in refs.items()]


class LangfuseConfigChart(cdk8s.Chart):
    """The credentials Secret (through External Secrets) and the IngressClass of the internal ALB."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        namespace: str,
        secrets: LangfuseSecretRefs,
        vpc_cidr: str,
        certificate_arn: str | None,
        labels: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id, labels=dict(labels))
        secret_store(self, "secret-store", name=SECRET_STORE, namespace=namespace, region=secrets.region)
        refs = secrets.by_secret_key()
        external_secret(
            self,
            "credentials",
            name=CREDENTIALS_SECRET,
            namespace=namespace,
            store=SECRET_STORE,
            values=_remote_values(refs),
            template={key: "{{ ." + _template_name(key) + " }}" for key in refs},
        )
        ingress_class_params(
            self,
            "ingress-class-params",
            name=INGRESS_CLASS,
            # Internal, and only from the VPC's own addresses: the UI and the OTLP endpoint are not public.
            spec=IngressClassParamsSpec(
                scheme="internal",
                certificate_arns=[certificate_arn] if certificate_arn else [],
                inbound_cidrs=[vpc_cidr],
            ),
        )
        k8s.KubeIngressClass(
            self,
            "ingress-class",
            metadata=k8s.ObjectMeta(name=INGRESS_CLASS),
            spec=k8s.IngressClassSpec(
                controller=ALB_CONTROLLER,
                parameters=k8s.IngressClassParametersReference(
                    api_group="eks.amazonaws.com", kind="IngressClassParams", name=INGRESS_CLASS
                ),
            ),
        )


@dataclass(frozen=True)
class ClickHouseSizing:
    storage_gib: int
    keeper_replicas: int


def clickhouse_pod_security() -> dict[str, Any]:
    """Pod level: the images' clickhouse user, which owns the data volume through fsGroup."""
    return {
        "runAsNonRoot": True,
        "runAsUser": CLICKHOUSE_UID,
        "runAsGroup": CLICKHOUSE_UID,
        "fsGroup": CLICKHOUSE_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def clickhouse_container_security() -> dict[str, Any]:
    """Container level, Pod Security `restricted`. `add: []` is deliberate: the operator fills in only the fields
    left empty from its defaults (controllerutil.ApplyDefault), and an absent `add` list would bring back
    IPC_LOCK, PERFMON and SYS_PTRACE, which ClickHouse uses only for optional diagnostics. readOnlyRootFilesystem
    is left unset: `restricted` does not require it, and the images' entrypoints are not checked for it."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"], "add": []},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _volume_claim(size_gib: int) -> dict[str, Any]:
    # gp3 encrypted with the platform's node-volume key (k8s/storage.py), bound in the pod's zone.
    return {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": DEFAULT_STORAGE_CLASS,
        "resources": {"requests": {"storage": f"{size_gib}Gi"}},
    }


# Console logging at `information`: the operator's default is `trace` into files of up to 1000M on the
# container's root filesystem (api/v1alpha1 WithDefaults), which would fill the node's ephemeral storage.
_LOGGER = {"logToFile": False, "level": "information"}
# On-demand capacity for the stateful pods: a Spot interruption of the only ClickHouse replica stops ingestion.
_ON_DEMAND = {"kubernetes.io/os": "linux", "karpenter.sh/capacity-type": "on-demand"}


class LangfuseClickHouseChart(cdk8s.Chart):
    """One ClickHouse server and its Keeper quorum, on encrypted EBS, under Pod Security `restricted`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        namespace: str,
        sizing: ClickHouseSizing,
        labels: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id, labels=dict(labels))
        self._keeper(namespace, sizing)
        self._server(namespace, sizing)

    def _keeper(self, namespace: str, sizing: ClickHouseSizing) -> None:
        pod: dict[str, Any] = {"securityContext": clickhouse_pod_security(), "nodeSelector": _ON_DEMAND}
        if sizing.keeper_replicas > 1:
            # The operator spreads replicas across zones when given the zone label (api/v1alpha1 common.go).
            pod["topologyZoneKey"] = "topology.kubernetes.io/zone"
        repository, tag = CLICKHOUSE_KEEPER_IMAGE
        custom_resource(
            self,
            "keeper",
            api_version=CLICKHOUSE_API,
            kind="KeeperCluster",
            name=CLICKHOUSE_NAME,
            namespace=namespace,
            spec={
                "replicas": sizing.keeper_replicas,
                "dataVolumeClaimSpec": _volume_claim(20),
                "containerTemplate": {
                    "image": {"repository": repository, "tag": tag},
                    # The Keeper sizing of chart 2.0.0 (values.yaml clickhouse.keeper.resources).
                    # Every key set: the operator adds any default key missing from the map (limits cpu "1", memory
                    # "1Gi"; ClickHouse/clickhouse-operator api/v1alpha1 WithDefaults, controllerutil
                    # applyDefaultRecursive), which under a larger request makes the StatefulSet invalid.
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    },
                    "securityContext": clickhouse_container_security(),
                },
                "podTemplate": pod,
                "settings": {"logger": _LOGGER},
            },
        )

    def _server(self, namespace: str, sizing: ClickHouseSizing) -> None:
        repository, tag = CLICKHOUSE_SERVER_IMAGE
        custom_resource(
            self,
            "server",
            api_version=CLICKHOUSE_API,
            kind="ClickHouseCluster",
            name=CLICKHOUSE_NAME,
            namespace=namespace,
            spec={
                "replicas": 1,
                "shards": 1,
                "keeperClusterRef": {"name": CLICKHOUSE_NAME},
                "dataVolumeClaimSpec": _volume_claim(sizing.storage_gib),
                "containerTemplate": {
                    "image": {"repository": repository, "tag": tag},
                    # LangFuse's minimum for ClickHouse: 2 CPU, 8 GiB (FACTS.md, "Tracing and durable metrics").
                    # The CPU limit is set (equal to the request, Guaranteed QoS): left out, the operator would add its
                    # default of 1 CPU under the 2 CPU request, which the API server refuses (see the Keeper's).
                    "resources": {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"cpu": "2", "memory": "8Gi"}},
                    "securityContext": clickhouse_container_security(),
                },
                "podTemplate": {"securityContext": clickhouse_pod_security(), "nodeSelector": _ON_DEMAND},
                "settings": {
                    # The `default` user's password is the one LangFuse connects with (chart 2.0.0 does the same in
                    # templates/clickhouse/cluster.yaml).
                    "defaultUserPassword": {"secret": {"name": CREDENTIALS_SECRET, "key": CLICKHOUSE_PASSWORD_KEY}},
                    "logger": _LOGGER,
                },
            },
        )


class LangfuseAppSecretChart(cdk8s.Chart):
    """Gives the chart's `<release>-app` Secret data, so that `helm upgrade` of chart 2.0.0 keeps working.

    Chart 2.0.0 always renders `<release>-app` (templates/langfuse-app-secret.yaml). When salt, encryption key
    and NextAuth secret all come from `secretKeyRef`, as here, that Secret is created with no data, and on every
    later upgrade the template's `lookup` indexes the missing `.data` and fails ("index of untyped nil"), which
    langfuse/langfuse-k8s#398 fixed after 2.0.0. Merging the same three values into it (External Secrets
    `creationPolicy: Merge`, after the release exists) gives the lookup data to keep. Drop this once the pinned
    chart includes #398. The pods never read this Secret: their environment names `langfuse-credentials`.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        namespace: str,
        release: str,
        secrets: LangfuseSecretRefs,
        labels: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id, labels=dict(labels))
        refs = secrets.by_secret_key()
        kept = {key: refs[key] for key in (SALT_KEY, ENCRYPTION_KEY_KEY, NEXTAUTH_SECRET_KEY)}
        merged = external_secret(
            self,
            "app-secret",
            name=f"{release}-app",
            namespace=namespace,
            store=SECRET_STORE,
            values=_remote_values(kept),
            template={key: "{{ ." + _template_name(key) + " }}" for key in kept},
        )
        # The one change from an ordinary ExternalSecret: write into the Secret Helm created, do not own it.
        merged.add_json_patch(cdk8s.JsonPatch.replace("/spec/target/creationPolicy", "Merge"))
