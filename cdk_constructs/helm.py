"""Third-party components from their official Helm charts, versions pinned.

Each chart is one class with its pinned version, the values that make it fit the platform (Pod
Security `restricted` where the component allows it, resources, PDBs) and the Pod Identity it needs.
Regenerate the version pins by checking each chart repository's index (`helm search repo <chart>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_constructs.pod_identity import PodIdentityRole


@dataclass(frozen=True)
class ChartPin:
    repository: str
    chart: str
    version: str


# KEDA 2.20 is tested on Kubernetes 1.33-1.35 (keda-docs 2.20 operate/cluster.md); CRD schemas in
# ../shared/crd-schemas are from the same release (kedacore/keda v2.20.2).
KEDA = ChartPin("https://kedacore.github.io/charts", "keda", "2.20.2")
# The plain Prometheus chart: one server, no operator or CRDs (prometheus-community/helm-charts).
PROMETHEUS = ChartPin("https://prometheus-community.github.io/helm-charts", "prometheus", "29.27.0")
DCGM_EXPORTER = ChartPin("https://nvidia.github.io/dcgm-exporter/helm-charts", "dcgm-exporter", "4.8.2")

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _resources(cpu: str, memory: str, cpu_limit: str | None = None) -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"memory": memory, **({"cpu": cpu_limit} if cpu_limit else {})},
    }


def _helm(
    scope: Construct,
    id: str,
    *,
    cluster: eks.ICluster,
    pin: ChartPin,
    release: str,
    namespace: str,
    values: dict[str, Any],
) -> eks.HelmChart:
    return eks.HelmChart(
        scope,
        id,
        cluster=cluster,
        repository=pin.repository,
        chart=pin.chart,
        version=pin.version,
        release=release,
        namespace=namespace,
        # Namespaces (with their Pod Security labels) belong to the foundation's namespaces chart.
        create_namespace=False,
        values=values,
        wait=True,
        timeout=Duration.minutes(10),
    )


class Keda(Construct):
    """KEDA operator, metrics server and admission webhooks; the operator has a Pod Identity role
    (for AWS scalers, e.g. Amazon Managed Prometheus or SQS; the chart has no Pod Identity value,
    so the association is made here for its `keda-operator` service account)."""

    OPERATOR_SERVICE_ACCOUNT = "keda-operator"

    def __init__(self, scope: Construct, id: str, *, cluster: eks.ICluster, namespace: str) -> None:
        super().__init__(scope, id)
        self.namespace = namespace
        self.operator_identity = PodIdentityRole(
            self,
            "OperatorIdentity",
            cluster=cluster,
            namespace=namespace,
            service_account=self.OPERATOR_SERVICE_ACCOUNT,
        )
        components = ("operator", "metricServer", "webhooks")
        self.chart = _helm(
            self,
            "Chart",
            cluster=cluster,
            pin=KEDA,
            release="keda",
            namespace=namespace,
            values={
                # Two operators give a warm standby (only the leader works); one metrics server can
                # serve external.metrics.k8s.io at a time (keda-docs 2.20 operate/cluster.md).
                "operator": {"replicaCount": 2},
                "webhooks": {"replicaCount": 2},
                "metricsServer": {"replicaCount": 1},
                "resources": {
                    "operator": _resources("100m", "256Mi"),
                    "metricServer": _resources("100m", "256Mi"),
                    "webhooks": _resources("50m", "128Mi"),
                },
                "podDisruptionBudget": {c: {"maxUnavailable": 1} for c in components},
                "securityContext": dict.fromkeys(components, RESTRICTED_CONTAINER),
                "podSecurityContext": {
                    c: {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}} for c in components
                },
                "serviceAccount": {"operator": {"name": self.OPERATOR_SERVICE_ACCOUNT}},
                "nodeSelector": {"kubernetes.io/os": "linux"},
            },
        )


class Prometheus(Construct):
    """The in-cluster Prometheus KEDA reads scaling signals from: the plain chart, our scrape jobs only.

    A single server with an EBS volume (`storage_class`); losing it for a restart costs a few minutes
    of local history, during which KEDA holds the fallback replica count. There is no durable copy yet
    (Amazon Managed Prometheus is planned as one, never as the scaling path: ARCHITECTURE decision 4).
    """

    RELEASE = "prometheus"
    SERVICE_PORT = 80

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        namespace: str,
        scrape_jobs: list[dict[str, Any]],
        scrape_interval_seconds: int,
        retention_days: int,
        storage_gib: int,
        storage_class: str,
        secret_mounts: list[dict[str, Any]] | None = None,
        alerting_rule_groups: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.url = f"http://{self.RELEASE}-server.{namespace}.svc.cluster.local:{self.SERVICE_PORT}"
        # The chart's default jobs (API servers, nodes, cadvisor, annotated pods...) are turned off:
        # this server scrapes the scaling signals and itself, nothing else.
        default_jobs = (
            "kubernetes-api-servers",
            "kubernetes-nodes",
            "kubernetes-nodes-cadvisor",
            "kubernetes-service-endpoints",
            "kubernetes-service-endpoints-slow",
            "prometheus-pushgateway",
            "kubernetes-services",
            "kubernetes-pods",
            "kubernetes-pods-slow",
        )
        scrape_configs: dict[str, Any] = {job: {"enabled": False} for job in default_jobs}
        for job in scrape_jobs:
            scrape_configs[job["job_name"]] = {k: v for k, v in job.items() if k != "job_name"}
        self.values: dict[str, Any] = {
            "alertmanager": {"enabled": False},
            "kube-state-metrics": {"enabled": False},
            # node-exporter needs hostNetwork, hostPID and a hostPath of / (Pod Security privileged);
            # Container Insights already covers node metrics.
            "prometheus-node-exporter": {"enabled": False},
            "prometheus-pushgateway": {"enabled": False},
            "scrapeConfigs": scrape_configs,
            "server": {
                "global": {
                    "scrape_interval": f"{scrape_interval_seconds}s",
                    "scrape_timeout": f"{min(scrape_interval_seconds, 5)}s",
                    "evaluation_interval": f"{scrape_interval_seconds}s",
                },
                "retention": f"{retention_days}d",
                "persistentVolume": {"enabled": True, "size": f"{storage_gib}Gi", "storageClass": storage_class},
                "resources": _resources("250m", "2Gi"),
                "securityContext": {
                    "runAsUser": 65534,
                    "runAsGroup": 65534,
                    "fsGroup": 65534,
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containerSecurityContext": RESTRICTED_CONTAINER,
                "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "extraSecretMounts": list(secret_mounts or []),
            },
            "configmapReload": {"prometheus": {"containerSecurityContext": RESTRICTED_CONTAINER}},
            # The chart's server config lists /etc/config/alerting_rules.yml in rule_files; this fills it.
            "serverFiles": {"alerting_rules.yml": {"groups": list(alerting_rule_groups or [])}},
        }
        self.chart = _helm(
            self,
            "Chart",
            cluster=cluster,
            pin=PROMETHEUS,
            release=self.RELEASE,
            namespace=namespace,
            values=self.values,
        )


class DcgmExporter(Construct):
    """NVIDIA's DCGM exporter on GPU nodes only, in Kubernetes mode (pod attribution through the
    kubelet pod-resources socket). The CloudWatch add-on's own exporter is turned off so each GPU
    node runs exactly one (two compete for the profiling interface; FACTS.md)."""

    APP_NAME = "dcgm-exporter"
    PORT = 9400

    def __init__(
        self, scope: Construct, id: str, *, cluster: eks.ICluster, namespace: str, collect_interval_seconds: int
    ) -> None:
        super().__init__(scope, id)
        self.values: dict[str, Any] = {
            "nodeSelector": {"eks.amazonaws.com/instance-gpu-manufacturer": "nvidia"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            # Collect as often as Prometheus scrapes (the exporter's default is every 30 s).
            "extraEnv": [{"name": "DCGM_EXPORTER_INTERVAL", "value": str(collect_interval_seconds * 1000)}],
            "serviceMonitor": {"enabled": False},
            "service": {"enable": True, "port": self.PORT},
            "resources": _resources("100m", "512Mi"),
        }
        self.chart = _helm(
            self,
            "Chart",
            cluster=cluster,
            pin=DCGM_EXPORTER,
            release=self.APP_NAME,
            namespace=namespace,
            values=self.values,
        )


# External Secrets Operator 2.9.0 (external-secrets/external-secrets, deploy/charts/external-secrets):
# serves external-secrets.io/v1; its AWS provider uses the controller's own credentials (EKS Pod
# Identity) when a SecretStore names no auth (docs/provider/aws-access.md).
EXTERNAL_SECRETS = ChartPin("https://charts.external-secrets.io", "external-secrets", "2.9.0")


class ExternalSecrets(Construct):
    """External Secrets Operator: copies named Secrets Manager secrets into Kubernetes Secrets.

    Chosen over the Secrets Store CSI driver because LiteLLM reads its credentials from environment
    variables, which ESO fills from a plain Secret without a privileged node DaemonSet or a mounted
    volume, and it re-reads rotated values on its refresh interval.
    """

    SERVICE_ACCOUNT = "external-secrets"

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        namespace: str,
        readable_secret_arns: list[str],
        key_arn: str,
    ) -> None:
        super().__init__(scope, id)
        self.identity = PodIdentityRole(
            self,
            "ControllerIdentity",
            cluster=cluster,
            namespace=namespace,
            service_account=self.SERVICE_ACCOUNT,
            statements=[
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    resources=readable_secret_arns,
                ),
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key_arn]),
            ],
        )
        components = ("", "webhook", "certController")
        values: dict[str, Any] = {
            "installCRDs": True,
            "serviceAccount": {"name": self.SERVICE_ACCOUNT},
            "podDisruptionBudget": {"enabled": False},
        }
        for component in components:
            target = values if not component else values.setdefault(component, {})
            target["securityContext"] = {**RESTRICTED_CONTAINER, "runAsUser": 1000}
            target["podSecurityContext"] = {"enabled": True, "seccompProfile": {"type": "RuntimeDefault"}}
            target["resources"] = _resources("50m", "128Mi")
        self.chart = _helm(
            self,
            "Chart",
            cluster=cluster,
            pin=EXTERNAL_SECRETS,
            release="external-secrets",
            namespace=namespace,
            values=values,
        )


# Stakater Reloader 2.2.16 (app v1.4.21; stakater/Reloader deployments/kubernetes/chart/reloader). Restarts
# a workload when a Secret it names changes; watches only the namespaces it is given (Roles, no ClusterRole).
RELOADER = ChartPin("https://stakater.github.io/stakater-charts", "reloader", "2.2.16")


class Reloader(Construct):
    """Stakater Reloader: rolling restart of a Deployment when a Secret named in its
    `secret.reloader.stakater.com/reload` annotation changes.

    A process that reads a credential once at start (LiteLLM's DATABASE_URL) never sees a rotated value
    otherwise. `reloadStrategy: annotations` patches the pod template, so the restart is an ordinary rolling
    update under the Deployment's own surge and PDB; Reloader compares a hash of the Secret's data, so
    External Secrets' periodic refreshes restart nothing unless a value changed.
    """

    def __init__(
        self, scope: Construct, id: str, *, cluster: eks.ICluster, namespace: str, watched_namespaces: list[str]
    ) -> None:
        super().__init__(scope, id)
        self.values: dict[str, Any] = {
            "reloader": {
                "watchGlobally": False,
                "namespaces": list(watched_namespaces),
                "ignoreConfigMaps": True,
                "reloadStrategy": "annotations",
                "enableHA": True,
                "readOnlyRootFileSystem": True,
                "deployment": {
                    "replicas": 2,
                    # The chart's container context is empty, which Pod Security `restricted` refuses.
                    "containerSecurityContext": RESTRICTED_CONTAINER,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    # With limits set the chart derives GOMAXPROCS and GOMEMLIMIT from them.
                    "resources": _resources("10m", "128Mi", cpu_limit="100m"),
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                },
                "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
            }
        }
        self.chart = _helm(
            self,
            "Chart",
            cluster=cluster,
            pin=RELOADER,
            release="reloader",
            namespace=namespace,
            values=self.values,
        )
