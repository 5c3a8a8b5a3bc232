"""Third-party components from their official Helm charts, versions pinned.

Each chart is one class with its pinned version, the values that make it fit the platform (Pod
Security `restricted` where the component allows it, resources, PDBs) and the Pod Identity it needs.
Regenerate the version pins by checking each chart repository's index (`helm search repo <chart>`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import cdk8s
import cdk8s_plus_30 as kplus
from aws_cdk import Duration
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from cdk_constructs.cluster_addons import CLOUDWATCH_NAMESPACE
from cdk_constructs.pod_identity import PodIdentityRole
from k8s.metrics import DCGM_EXPORTER_APP, DCGM_EXPORTER_PORT, NODE_POOL_LABEL
from k8s.node_pools import CAPACITY_TYPE


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
    timeout: Duration | None = None,
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
        timeout=timeout or Duration.minutes(10),
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


def kube_state_metrics_values() -> dict[str, Any]:
    """The Prometheus chart's kube-state-metrics subchart (8.4.0, app v2.20.0, as chart 29.27.0 locks it):
    replica and node state for the autoscaling dashboard, scraped by `k8s.metrics.kube_state_metrics_scrape_job`."""
    return {
        "enabled": True,
        # Only the objects the dashboards read; the chart derives its ClusterRole from this list, so it
        # lists and watches these alone (its default list includes Secrets and ConfigMaps).
        "collectors": ["deployments", "horizontalpodautoscalers", "nodes"],
        # kube_node_labels carries no node label unless allowed (kube-state-metrics docs, cli-arguments.md).
        "metricLabelsAllowlist": [f"nodes=[{NODE_POOL_LABEL},{CAPACITY_TYPE}]"],
        "securityContext": {
            "enabled": True,
            "runAsUser": 65534,
            "runAsGroup": 65534,
            "fsGroup": 65534,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containerSecurityContext": RESTRICTED_CONTAINER,
        "resources": _resources("10m", "128Mi"),
        "nodeSelector": {"kubernetes.io/os": "linux"},
    }


class Prometheus(Construct):
    """The in-cluster Prometheus KEDA reads scaling signals from: the plain chart, our scrape jobs only.

    A single server with an EBS volume (`storage_class`); losing it for a restart costs a few minutes
    of local history, during which KEDA holds the fallback replica count. There is no durable copy yet
    (Amazon Managed Prometheus is planned as one, never as the scaling path: ARCHITECTURE decision 4).
    """

    RELEASE = "prometheus"
    SERVICE_PORT = 80
    # Named here (the chart's default is the same, <release>-server) because a Pod Identity association
    # names it: remote writes to Amazon Managed Service for Prometheus sign with this account's role.
    SERVICE_ACCOUNT = "prometheus-server"

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
        remote_write: list[dict[str, Any]] | None = None,
        pod_annotations: dict[str, str] | None = None,
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
            "kube-state-metrics": kube_state_metrics_values(),
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
                "remoteWrite": list(remote_write or []),
                "podAnnotations": dict(pod_annotations or {}),
            },
            "serviceAccounts": {"server": {"create": True, "name": self.SERVICE_ACCOUNT}},
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


@dataclass(frozen=True)
class DcgmField:
    """One line of dcgm-exporter's metrics CSV (`DCGM field, Prometheus type, help`) and who reads it."""

    name: str
    kind: str
    help: str
    read_by: str


# The exporter collects only what its CSV lists (the chart's `customMetrics` replaces the whole default
# list). CloudWatch's agent renames the first seven to Container Insights' `*_gpu_*` metrics (agent
# translator/translate/otel/processor/metricstransformprocessor: renameMapForDcgm); the add-on's own exporter
# lists the same fields and no XID (helm-charts templates/linux/dcgm-exporter-daemonset.yaml).
DCGM_FIELDS = (
    DcgmField("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "CloudWatch *_gpu_utilization; KEDA"),
    DcgmField(
        "DCGM_FI_DEV_FB_USED_PERCENT",
        "gauge",
        "Percentage used of Frame Buffer: Used/(Total - Reserved).",
        "CloudWatch *_gpu_memory_utilization",
    ),
    DcgmField("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "CloudWatch *_gpu_memory_used"),
    DcgmField("DCGM_FI_DEV_FB_TOTAL", "gauge", "Framebuffer memory total (in MiB).", "CloudWatch *_gpu_memory_total"),
    DcgmField("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "CloudWatch *_gpu_temperature"),
    DcgmField("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "CloudWatch *_gpu_power_draw"),
    DcgmField(
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "gauge",
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        "CloudWatch *_gpu_tensor_core_utilization",
    ),
    DcgmField("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", "Prometheus"),
    DcgmField("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", "Prometheus"),
    DcgmField("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", "alert GpuXidError"),
    # A label on every series, as in the add-on's list and the image's etc/default-counters.csv.
    DcgmField("DCGM_FI_DRIVER_VERSION", "label", "Driver Version.", "series label"),
)


METRICS_DIR = "/etc/dcgm-exporter/platform"


def _dcgm_metrics() -> str:
    """The exporter's metric list (its CSV format: field, Prometheus type, help)."""
    return "\n".join(f"{f.name}, {f.kind}, {f.help}" for f in DCGM_FIELDS) + "\n"


class DcgmExporter(Construct):
    """NVIDIA's DCGM exporter on NVIDIA GPU nodes only, in Kubernetes mode (each GPU's series carry the
    `namespace`/`pod`/`container` using it, from the kubelet's pod-resources socket): the one exporter per
    GPU node, read by Prometheus and, with `cloudwatch_agent`, by Container Insights.

    The add-on's own exporter stays off (ClusterAddons): two exporters on one GPU compete for its profiling
    interface (FACTS.md), and the add-on's collects a fixed list without XID errors. For Container Insights
    this exporter meets the add-on agent's contract instead (amazon-contributing/opentelemetry-collector-contrib,
    receiver/awscontainerinsightreceiver/internal/gpu/dcgmscraper_config.go): a Service in the agent's own
    namespace labelled `k8s-app=dcgm-exporter-service`, scraped over HTTPS and verified against the CA in the
    add-on's secret `amazon-cloudwatch-observability-agent-cert`, whose certificate names
    `dcgm-exporter-service.amazon-cloudwatch.svc` (helm-charts cloudwatch-agent-custom-resource.yaml). So the
    exporter runs in that namespace and serves that secret's certificate; AWS's own agent tests run a
    non-add-on exporter the same way (aws/amazon-cloudwatch-agent-test, terraform/eks/daemon/gpu/main.tf).
    """

    APP_NAME = DCGM_EXPORTER_APP
    PORT = DCGM_EXPORTER_PORT
    # The add-on agent's contract (see the class docstring).
    CLOUDWATCH_SERVICE = "dcgm-exporter-service"
    CLOUDWATCH_SERVICE_LABELS: ClassVar[Mapping[str, str]] = MappingProxyType({"k8s-app": "dcgm-exporter-service"})
    CLOUDWATCH_TLS_SECRET = "amazon-cloudwatch-observability-agent-cert"
    # The chart's selector labels with release and chart both named dcgm-exporter (templates/_helpers.tpl).
    POD_LABELS: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": APP_NAME}
    )

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        cluster: eks.ICluster,
        namespace: str,
        collect_interval_seconds: int,
        cloudwatch_agent: bool,
    ) -> None:
        super().__init__(scope, id)
        if cloudwatch_agent and namespace != CLOUDWATCH_NAMESPACE:
            raise ValueError(
                f"the DCGM exporter serves the CloudWatch agent only from the agent's namespace "
                f"{CLOUDWATCH_NAMESPACE!r} (the agent discovers it there and reads its CA there), not {namespace!r}"
            )
        self.namespace = namespace
        # HTTPS with the add-on's certificate, for the agent: the exporter then serves nothing over HTTP.
        self.tls = cloudwatch_agent
        self.values: dict[str, Any] = {
            "nodeSelector": {"eks.amazonaws.com/instance-gpu-manufacturer": "nvidia"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            # 4.6.0-4.8.3: the image the add-on ships (aws-observability/helm-charts values.yaml, chart 6.4.0); the
            # chart's 4.5.3-4.8.2 distroless image lacks libraries the profiling fields need (NVIDIA/dcgm-exporter
            # #700, fixed by #704 in 4.6.0-4.8.3).
            "image": {"tag": "4.6.0-4.8.3-distroless"},
            "extraEnv": [
                # Collect as often as Prometheus scrapes (the exporter's default is every 30 s).
                {"name": "DCGM_EXPORTER_INTERVAL", "value": str(collect_interval_seconds * 1000)},
                # The start-up check looks for libdcgm in the ld cache, which the distroless image does not build;
                # the library itself loads (NVIDIA/dcgm-exporter #612, #636, PR #724; flag in pkg/cmd/app.go).
                {"name": "DISABLE_STARTUP_VALIDATE", "value": "true"},
            ],
            "customMetrics": _dcgm_metrics(),
            # The chart mounts its metric list over one file with subPath, which SELinux-enforcing Bottlerocket
            # (Auto Mode) refuses ("not a directory", NVIDIA/dcgm-exporter #613): mount the ConfigMap as a
            # directory, as the add-on's operator does, and point -f at the file in it.
            "extraConfigMapVolumes": [
                {
                    "name": "exporter-metrics-volume",
                    "configMap": {
                        "name": "exporter-metrics-config-map",
                        "items": [{"key": "metrics", "path": "counters.csv"}],
                    },
                }
            ],
            "extraVolumeMounts": [{"name": "exporter-metrics-volume", "mountPath": METRICS_DIR}],
            "arguments": ["-f", f"{METRICS_DIR}/counters.csv"],
            # A new metric list changes only the ConfigMap: the checksum rolls the pods to read it.
            "podAnnotations": {"platform/metrics-checksum": hashlib.sha256(_dcgm_metrics().encode()).hexdigest()},
            "serviceMonitor": {"enabled": False},
            # Prometheus scrapes the pods; the agent gets the Service its contract names (below).
            "service": {"enable": False, "port": self.PORT},
            # The chart's default CPU limit (200m) survives a merge of values (CDK drops a null that would delete it),
            # so it is set: 500m, the add-on's own exporter's limit (aws-observability/helm-charts values.yaml).
            "resources": _resources("100m", "512Mi", cpu_limit="500m"),
            # The chart mounts the secret at /etc/dcgm-exporter/tls and serves its tls.crt/tls.key (templates/
            # web-config-configmap.yaml); the exporter's web config reads them on every connection
            # (prometheus/exporter-toolkit docs/web-configuration.md), so a renewed certificate needs no restart.
            "tlsServerConfig": {"enabled": True, "existingSecret": self.CLOUDWATCH_TLS_SECRET}
            if cloudwatch_agent
            else {"enabled": False},
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
        self.cloudwatch_service: eks.KubernetesManifest | None = None
        if cloudwatch_agent:
            self.cloudwatch_service = eks.KubernetesManifest(
                self, "CloudWatchAgentService", cluster=cluster, manifest=self.cloudwatch_agent_service()
            )

    def cloudwatch_agent_service(self) -> list[dict[str, Any]]:
        """The Service the agent discovers: `internalTrafficPolicy: Local`, as the add-on's own
        (amazon-cloudwatch-agent-operator internal/manifests/dcgmexporter/service.go), so each node's agent
        reaches its own node's exporter."""
        chart = cdk8s.Chart(cdk8s.App(), "dcgm-exporter-service")
        kplus.k8s.KubeService(
            chart,
            "service",
            metadata=kplus.k8s.ObjectMeta(
                name=self.CLOUDWATCH_SERVICE, namespace=self.namespace, labels=dict(self.CLOUDWATCH_SERVICE_LABELS)
            ),
            spec=kplus.k8s.ServiceSpec(
                type="ClusterIP",
                internal_traffic_policy="Local",
                selector=dict(self.POD_LABELS),
                ports=[
                    kplus.k8s.ServicePort(
                        name="metrics",
                        port=self.PORT,
                        target_port=kplus.k8s.IntOrString.from_number(self.PORT),
                        protocol="TCP",
                    )
                ],
            ),
        )
        return [dict(doc) for doc in chart.to_json()]


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
