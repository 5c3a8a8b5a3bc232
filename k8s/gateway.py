"""The LiteLLM gateway: ConfigMap, Deployment, Service, ServiceAccount, PDB, NetworkPolicy, the ALB
Ingress (EKS Auto Mode's built-in load balancing) and its ScaledObject."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import cdk8s
import yaml
from cdk8s_plus_30 import k8s
from constructs import Construct

from k8s.crds import (
    CpuTrigger,
    IngressClassParamsSpec,
    PrometheusTrigger,
    ScaledObjectSpec,
    ScalingPolicy,
    ScalingRules,
    ingress_class_params,
    scaled_object,
)
from k8s.external_secrets import RemoteValue, external_secret, secret_store
from k8s.gateway_config import (
    CACHE_USER,
    DATABASE_NAME,
    DATABASE_URL_ENV,
    MASTER_KEY_ENV,
    POSTGRES_PORT,
    REDIS_CLUSTER_NODES_ENV,
    REDIS_HOST_ENV,
    REDIS_PASSWORD_ENV,
    REDIS_PORT_ENV,
    REDIS_SSL_ENV,
    REDIS_USERNAME_ENV,
    VALKEY_PORT,
    Backend,
    StateStores,
    litellm_config,
)
from k8s.metrics import LITELLM_TOKEN_SECRET
from k8s.network_policies import default_deny, dns_egress, https_egress, namespace_peer, pod_identity_egress, port
from k8s.pod_security import restricted_container, restricted_pod, runtime_identity_env
from k8s.probes import http_probe
from k8s.tracing import (
    HTTPS_PORT,
    LANGFUSE_ENVIRONMENT_ENV,
    LANGFUSE_HOST_ENV,
    LANGFUSE_KEYS_PUBLIC_FIELD,
    LANGFUSE_KEYS_SECRET_FIELD,
    LANGFUSE_PUBLIC_KEY_ENV,
    LANGFUSE_PUBLIC_KEY_SECRET_KEY,
    LANGFUSE_SECRET_KEY_ENV,
    LANGFUSE_SECRET_KEY_SECRET_KEY,
    OTEL_ENVIRONMENT_ENV,
    LangfuseTarget,
)
from platform_config.gateway import GatewaySettings

PORT = 4000
NAME = "litellm"
INGRESS_CLASS = "alb-gateway"
# Auto Mode's built-in ALB controller (EKS User Guide, auto-configure-alb).
ALB_CONTROLLER = "eks.amazonaws.com/alb"
# The Kubernetes Secret the secrets mechanism fills from Secrets Manager (never written by CDK).
SECRET_NAME = "litellm"
# How often External Secrets re-reads Secrets Manager: bounds how long after an RDS password rotation new
# database connections still use the old password (plus one rolling restart by Reloader).
SECRET_REFRESH = "5m"
# Stakater Reloader rolls the Deployment when this Secret's data changes (its annotation, README "Usage").
RELOAD_ON_SECRET_ANNOTATION = "secret.reloader.stakater.com/reload"
# LiteLLM writes a baseline migration here on a database with a schema but no migration history; its
# package dir is on the read-only root (LiteLLM docs, prod "read-only file system"; litellm_proxy_extras/utils.py).
MIGRATION_DIR = "/var/lib/litellm/migrations"
# LiteLLM bounds its readiness DB check at 4 s (health_endpoints DB_READINESS_PROBE_DEADLINE_SECONDS): the
# probe must wait longer, or a slow but successful check counts as a failure.
READINESS_TIMEOUT_SECONDS = 5
KEEPALIVE_ENV = "AIOHTTP_KEEPALIVE_TIMEOUT"
# On a new database the proxy applies every migration before it listens (proxy_cli.py), and LiteLLM gives
# `prisma migrate deploy` 600 s (prisma_toolchain.py); a startup probe that gave up sooner would kill a
# replica mid-migration on a 0.5 ACU Aurora and leave it crash-looping.
STARTUP_PROBE_SECONDS = 600
REQUESTS_METRIC = "litellm_proxy_total_requests_metric_total"
CHECKOV_SKIPS = {
    "CKV_K8S_35": "LiteLLM reads its master key and database and Redis credentials only from environment "
    "variables named in its config (os.environ references); the values come from a Secret at run time",
}


@dataclass(frozen=True)
class GatewaySecrets:
    """Where the gateway's credentials live (ARNs and endpoints; no values)."""

    region: str
    master_key_arn: str
    salt_key_arn: str
    database_secret_arn: str
    database_host: str
    cache_secret_arn: str
    cache_host: str


@dataclass(frozen=True)
class GatewayWiring:
    namespace: str
    service_account: str
    served_model_name: str
    vllm_url: str  # http://vllm.inference.svc.cluster.local:8000/v1
    vllm_namespace: str
    metrics_namespace: str
    prometheus_url: str
    vpc_cidr: str
    secrets: GatewaySecrets
    tracing: LangfuseTarget | None = None  # where traces go; None: tracing off


def tracing_env(target: LangfuseTarget) -> list[k8s.EnvVar]:
    """What LiteLLM's `langfuse_otel` callback reads: the host and environment as values, the keys from the
    gateway's Secret (never in the manifest)."""

    def from_secret(name: str, key: str) -> k8s.EnvVar:
        return k8s.EnvVar(
            name=name, value_from=k8s.EnvVarSource(secret_key_ref=k8s.SecretKeySelector(name=SECRET_NAME, key=key))
        )

    return [
        k8s.EnvVar(name=LANGFUSE_HOST_ENV, value=target.host),
        from_secret(LANGFUSE_PUBLIC_KEY_ENV, LANGFUSE_PUBLIC_KEY_SECRET_KEY),
        from_secret(LANGFUSE_SECRET_KEY_ENV, LANGFUSE_SECRET_KEY_SECRET_KEY),
        k8s.EnvVar(name=LANGFUSE_ENVIRONMENT_ENV, value=target.environment),
        k8s.EnvVar(name=OTEL_ENVIRONMENT_ENV, value=target.environment),
    ]


def trace_egress(target: LangfuseTarget) -> list[k8s.NetworkPolicyEgressRule]:
    """Egress to LangFuse beyond `https_egress` (port 443 to any address, which already covers an external
    host on the default port): an external host's other port, or the in-cluster web pods on theirs."""
    if target.peer is None:
        return [] if target.port == HTTPS_PORT else [k8s.NetworkPolicyEgressRule(ports=[port(target.port)])]
    rule = k8s.NetworkPolicyEgressRule(
        to=[
            k8s.NetworkPolicyPeer(
                namespace_selector=k8s.LabelSelector(
                    match_labels={"kubernetes.io/metadata.name": target.peer.namespace}
                ),
                pod_selector=k8s.LabelSelector(match_labels=dict(target.peer.pod_labels)),
            )
        ],
        ports=[port(target.port)],
    )
    return [rule]


class GatewayChart(cdk8s.Chart):
    def __init__(
        self, scope: Construct, id: str, *, settings: GatewaySettings, wiring: GatewayWiring, labels: Mapping[str, str]
    ) -> None:
        super().__init__(scope, id, labels=dict(labels))
        selector = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "gateway"}
        all_labels = {**labels, **selector}
        ns = wiring.namespace

        def meta(name: str = NAME, **extra: object) -> k8s.ObjectMeta:
            return k8s.ObjectMeta(name=name, namespace=ns, labels=all_labels, **extra)  # type: ignore[arg-type]

        config_text = yaml.safe_dump(
            litellm_config(
                settings,
                served_model_name=wiring.served_model_name,
                backends=[Backend(wiring.vllm_url)],
                stores=StateStores(redis=True, database=True),
                tracing=wiring.tracing is not None,
            ),
            sort_keys=False,
        )
        k8s.KubeConfigMap(self, "config", metadata=meta(), data={"config.yaml": config_text})
        k8s.KubeServiceAccount(
            self, "service-account", metadata=meta(wiring.service_account), automount_service_account_token=False
        )
        default_deny(self, "default-deny", namespace=ns)
        self._secret(wiring)

        def secret_env(name: str, key: str) -> k8s.EnvVar:
            return k8s.EnvVar(
                name=name, value_from=k8s.EnvVarSource(secret_key_ref=k8s.SecretKeySelector(name=SECRET_NAME, key=key))
            )

        timeout = settings.router.timeout_seconds
        cache_host = wiring.secrets.cache_host
        container = k8s.Container(
            name="litellm",
            image=settings.image,
            image_pull_policy="IfNotPresent",
            args=["--config", "/etc/litellm/config.yaml", "--port", str(PORT), "--num_workers", "1"],
            ports=[k8s.ContainerPort(name="http", container_port=PORT, protocol="TCP")],
            env=[
                # Offline start: the bundled cost map, and no Hugging Face hub calls (FACTS.md).
                k8s.EnvVar(name="LITELLM_LOCAL_MODEL_COST_MAP", value="True"),
                k8s.EnvVar(name="HF_HUB_OFFLINE", value="1"),
                *runtime_identity_env(home="/tmp"),
                k8s.EnvVar(name="LITELLM_MIGRATION_DIR", value=MIGRATION_DIR),
                # One TCP connection per request to vLLM. The vLLM Service balances connections, not requests:
                # with LiteLLM's pooled keep-alive connections a new replica got no request at all and a removed
                # one kept getting them (tests/test_gateway_balancing.py). LiteLLM reads this at import
                # (litellm/constants.py) for its aiohttp transport's connector.
                k8s.EnvVar(name=KEEPALIVE_ENV, value="0"),
                # The Prisma CLI (migrations at start) sends usage data and checks for updates unless this is
                # set (Prisma docs, environment variables reference, CHECKPOINT_DISABLE).
                k8s.EnvVar(name="CHECKPOINT_DISABLE", value="1"),
                secret_env(MASTER_KEY_ENV, "master-key"),
                # Encrypts credentials LiteLLM stores in its database (LiteLLM production guide); without it
                # they are encrypted with the master key. Never rotated: stored values would become unreadable.
                secret_env("LITELLM_SALT_KEY", "salt-key"),
                secret_env(DATABASE_URL_ENV, "database-url"),
                k8s.EnvVar(name=REDIS_HOST_ENV, value=cache_host),
                k8s.EnvVar(name=REDIS_PORT_ENV, value=str(VALKEY_PORT)),
                k8s.EnvVar(name=REDIS_CLUSTER_NODES_ENV, value=f'[{{"host": "{cache_host}", "port": {VALKEY_PORT}}}]'),
                k8s.EnvVar(name=REDIS_USERNAME_ENV, value=CACHE_USER),
                k8s.EnvVar(name=REDIS_SSL_ENV, value="True"),
                secret_env(REDIS_PASSWORD_ENV, "redis-password"),
                *(tracing_env(wiring.tracing) if wiring.tracing else []),
            ],
            resources=k8s.ResourceRequirements(
                requests={"cpu": k8s.Quantity.from_string("1"), "memory": k8s.Quantity.from_string("1Gi")},
                limits={"cpu": k8s.Quantity.from_string("2"), "memory": k8s.Quantity.from_string("2Gi")},
            ),
            # Never /health: it calls every model (FACTS.md).
            startup_probe=http_probe(
                "/health/readiness",
                period=5,
                failures=STARTUP_PROBE_SECONDS // 5,
                timeout=READINESS_TIMEOUT_SECONDS,
            ),
            readiness_probe=http_probe("/health/readiness", period=5, failures=3, timeout=READINESS_TIMEOUT_SECONDS),
            liveness_probe=http_probe("/health/liveliness", period=10, failures=3),
            lifecycle=k8s.Lifecycle(pre_stop=k8s.LifecycleHandler(sleep=k8s.SleepAction(seconds=10))),
            security_context=restricted_container(),
            volume_mounts=[
                k8s.VolumeMount(name="config", mount_path="/etc/litellm", read_only=True),
                k8s.VolumeMount(name="tmp", mount_path="/tmp"),
                k8s.VolumeMount(name="migrations", mount_path=MIGRATION_DIR),
            ],
        )
        k8s.KubeDeployment(
            self,
            "deployment",
            metadata=meta(
                annotations={
                    **{f"checkov.io/skip{i}": f"{c}={why}" for i, (c, why) in enumerate(CHECKOV_SKIPS.items(), 1)},
                    # The proxy reads its credentials once, at start: a rotated database password reaches it
                    # through a rolling restart when External Secrets updates the Secret.
                    RELOAD_ON_SECRET_ANNOTATION: SECRET_NAME,
                }
            ),
            spec=k8s.DeploymentSpec(
                selector=k8s.LabelSelector(match_labels=selector),
                template=k8s.PodTemplateSpec(
                    # A config change rolls the pods: the proxy reads its config only at start.
                    metadata=k8s.ObjectMeta(
                        labels=all_labels,
                        annotations={"platform.genai/config-sha256": hashlib.sha256(config_text.encode()).hexdigest()},
                    ),
                    spec=k8s.PodSpec(
                        service_account_name=wiring.service_account,
                        automount_service_account_token=False,
                        termination_grace_period_seconds=10 + timeout + 30,
                        security_context=restricted_pod(),
                        containers=[container],
                        volumes=[
                            k8s.Volume(name="config", config_map=k8s.ConfigMapVolumeSource(name=NAME)),
                            k8s.Volume(
                                name="tmp",
                                empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("1Gi")),
                            ),
                            k8s.Volume(
                                name="migrations",
                                empty_dir=k8s.EmptyDirVolumeSource(size_limit=k8s.Quantity.from_string("64Mi")),
                            ),
                        ],
                        node_selector={"platform.genai/pool": "cpu"},
                        topology_spread_constraints=[
                            k8s.TopologySpreadConstraint(
                                max_skew=1,
                                topology_key="topology.kubernetes.io/zone",
                                when_unsatisfiable="ScheduleAnyway",
                                label_selector=k8s.LabelSelector(match_labels=selector),
                            )
                        ],
                    ),
                ),
            ),
        )
        k8s.KubeService(
            self,
            "service",
            metadata=meta(),
            spec=k8s.ServiceSpec(
                type="ClusterIP",
                selector=selector,
                ports=[k8s.ServicePort(name="http", port=80, target_port=k8s.IntOrString.from_string("http"))],
            ),
        )
        k8s.KubePodDisruptionBudget(
            self,
            "pdb",
            metadata=meta(),
            spec=k8s.PodDisruptionBudgetSpec(
                min_available=k8s.IntOrString.from_number(1), selector=k8s.LabelSelector(match_labels=selector)
            ),
        )
        ingress_class_params(
            self,
            "ingress-class-params",
            name=INGRESS_CLASS,
            spec=IngressClassParamsSpec(
                scheme=settings.ingress_scheme,
                certificate_arns=[settings.certificate_arn] if settings.certificate_arn else [],
                inbound_cidrs=settings.inbound_cidrs,
            ),
        )
        k8s.KubeIngressClass(
            self,
            "ingress-class",
            metadata=k8s.ObjectMeta(name=INGRESS_CLASS, labels=all_labels),
            spec=k8s.IngressClassSpec(
                controller=ALB_CONTROLLER,
                parameters=k8s.IngressClassParametersReference(
                    api_group="eks.amazonaws.com", kind="IngressClassParams", name=INGRESS_CLASS
                ),
            ),
        )
        k8s.KubeIngress(
            self,
            "ingress",
            metadata=meta(
                annotations={
                    # Route to pod IPs (no NodePort hop) and health-check the readiness endpoint.
                    "alb.ingress.kubernetes.io/target-type": "ip",
                    "alb.ingress.kubernetes.io/healthcheck-path": "/health/readiness",
                    **(
                        {"alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS":443}]'}
                        if settings.certificate_arn
                        else {}
                    ),
                }
            ),
            spec=k8s.IngressSpec(
                ingress_class_name=INGRESS_CLASS,
                rules=[
                    k8s.IngressRule(
                        http=k8s.HttpIngressRuleValue(
                            paths=[
                                k8s.HttpIngressPath(
                                    path="/",
                                    path_type="Prefix",
                                    backend=k8s.IngressBackend(
                                        service=k8s.IngressServiceBackend(
                                            name=NAME, port=k8s.ServiceBackendPort(name="http")
                                        )
                                    ),
                                )
                            ]
                        )
                    )
                ],
            ),
        )
        k8s.KubeNetworkPolicy(
            self,
            "network-policy",
            metadata=meta(),
            spec=k8s.NetworkPolicySpec(
                pod_selector=k8s.LabelSelector(match_labels=selector),
                policy_types=["Ingress", "Egress"],
                ingress=[
                    # The ALB sends from its addresses in the VPC (IP targets).
                    k8s.NetworkPolicyIngressRule(
                        from_=[k8s.NetworkPolicyPeer(ip_block=k8s.IpBlock(cidr=wiring.vpc_cidr))], ports=[port(PORT)]
                    ),
                    k8s.NetworkPolicyIngressRule(from_=[namespace_peer(wiring.metrics_namespace)], ports=[port(PORT)]),
                ],
                egress=[
                    dns_egress(),
                    k8s.NetworkPolicyEgressRule(
                        to=[
                            k8s.NetworkPolicyPeer(
                                namespace_selector=k8s.LabelSelector(
                                    match_labels={"kubernetes.io/metadata.name": wiring.vllm_namespace}
                                ),
                                pod_selector=k8s.LabelSelector(match_labels={"app.kubernetes.io/name": "vllm"}),
                            )
                        ],
                        ports=[port(8000)],
                    ),
                    # Aurora PostgreSQL and ElastiCache in the VPC's private subnets.
                    k8s.NetworkPolicyEgressRule(
                        to=[k8s.NetworkPolicyPeer(ip_block=k8s.IpBlock(cidr=wiring.vpc_cidr))],
                        ports=[port(5432), port(6379)],
                    ),
                    https_egress(),
                    pod_identity_egress(),
                    *(trace_egress(wiring.tracing) if wiring.tracing else []),
                ],
            ),
        )
        autoscaling = settings.autoscaling
        scaled_object(
            self,
            "scaledobject",
            name=NAME,
            namespace=ns,
            spec=ScaledObjectSpec(
                deployment=NAME,
                min_replicas=autoscaling.min_replicas,
                max_replicas=autoscaling.max_replicas,
                polling_interval_seconds=15,
                cooldown_period_seconds=300,
                fallback_replicas=autoscaling.min_replicas,
                fallback_failure_threshold=3,
                scale_up=ScalingRules(0, [ScalingPolicy("Percent", 100, 30), ScalingPolicy("Pods", 2, 30)]),
                scale_down=ScalingRules(300, [ScalingPolicy("Pods", 1, 60)], select_policy="Min"),
                triggers=[
                    PrometheusTrigger(
                        "request-rate",
                        wiring.prometheus_url,
                        # Model requests only: the counter also counts /metrics scrapes and other routes.
                        f'sum(rate({REQUESTS_METRIC}{{namespace="{ns}",requested_model!=""}}[1m]))',
                        autoscaling.requests_per_second_per_replica,
                    ),
                    CpuTrigger(autoscaling.cpu_utilization_percent),
                ],
            ),
        )

    def _secret(self, wiring: GatewayWiring) -> None:
        """The Kubernetes Secret the proxy reads, built by External Secrets from Secrets Manager, and
        the key Prometheus scrapes /metrics with, in its own namespace."""
        secrets = wiring.secrets
        secret_store(
            self,
            "metrics-secret-store",
            name="aws-secrets-manager",
            namespace=wiring.metrics_namespace,
            region=secrets.region,
        )
        external_secret(
            self,
            "metrics-external-secret",
            name=LITELLM_TOKEN_SECRET,
            namespace=wiring.metrics_namespace,
            store="aws-secrets-manager",
            values=[RemoteValue("masterkey", secrets.master_key_arn, "key")],
            template={"token": "sk-{{ .masterkey }}"},
        )
        secret_store(
            self, "secret-store", name="aws-secrets-manager", namespace=wiring.namespace, region=secrets.region
        )
        langfuse_values, langfuse_template = [], {}
        if wiring.tracing:
            keys = wiring.tracing.keys_secret_arn
            langfuse_values = [
                RemoteValue("langfusepublic", keys, LANGFUSE_KEYS_PUBLIC_FIELD),
                RemoteValue("langfusesecret", keys, LANGFUSE_KEYS_SECRET_FIELD),
            ]
            langfuse_template = {
                LANGFUSE_PUBLIC_KEY_SECRET_KEY: "{{ .langfusepublic }}",
                LANGFUSE_SECRET_KEY_SECRET_KEY: "{{ .langfusesecret }}",
            }
        external_secret(
            self,
            "external-secret",
            name=SECRET_NAME,
            namespace=wiring.namespace,
            store="aws-secrets-manager",
            values=[
                RemoteValue("masterkey", secrets.master_key_arn, "key"),
                RemoteValue("saltkey", secrets.salt_key_arn, "key"),
                RemoteValue("dbuser", secrets.database_secret_arn, "username"),
                RemoteValue("dbpassword", secrets.database_secret_arn, "password"),
                RemoteValue("cachepassword", secrets.cache_secret_arn, "password"),
                *langfuse_values,
            ],
            refresh=SECRET_REFRESH,
            template={
                **langfuse_template,
                # LiteLLM master keys start with sk-.
                "master-key": "sk-{{ .masterkey }}",
                "salt-key": "{{ .saltkey }}",
                "database-url": "postgresql://{{ .dbuser }}:{{ .dbpassword | urlquery }}@"
                + f"{secrets.database_host}:{POSTGRES_PORT}/{DATABASE_NAME}?sslmode=require",
                "redis-password": "{{ .cachepassword }}",
            },
        )
