"""What the platform alerts on: SLOs with burn-rate alerts, and warnings on vLLM, the GPUs and the gateway."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from platform_config.base import SecretName, Settings, matching
from platform_config.gateway import CertificateArn

EmailAddress = Annotated[
    str, AfterValidator(matching(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address, like ops@example.com"))
]

# vLLM's TTFT histogram bucket bounds in seconds (vllm/v1/metrics/loggers.py, FACTS.md "Tracing and durable
# metrics"). The SLI counts requests in the bucket at the threshold, so the threshold must be a bound.
VLLM_TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip


class AlertSettings(Settings):
    """Prometheus alerting rules: two SLOs with multi-window burn-rate alerts, and warnings."""

    ttft_slo_seconds: float = Field(
        2.5, description="A request is good when its first token comes within this; one of vLLM's TTFT bucket bounds."
    )
    ttft_slo_objective: float = Field(
        0.99, gt=0.5, lt=1, description="Share of requests that must be good on TTFT (the TTFT SLO)."
    )
    availability_objective: float = Field(
        0.999,
        gt=0.5,
        lt=1,
        description="Share of gateway requests that do not fail: 5xx, timeout, no status (the availability SLO).",
    )
    kv_cache_usage: float = Field(0.9, gt=0, le=1, description="Warn when a replica's KV cache stays above this.")
    kv_cache_minutes: int = Field(10, ge=1, le=120, description="... for this long.")
    queue_backlog_per_replica: float = Field(
        20, gt=0, description="Warn when waiting requests per replica stay above this for 5 minutes."
    )
    preemptions_per_minute: float = Field(
        1, gt=0, description="Warn when vLLM preempts more sequences than this for 10 minutes (KV cache too small)."
    )
    gateway_5xx_ratio: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Warn when more than this share of gateway requests fail with a 5xx for 5 minutes.",
    )

    @field_validator("ttft_slo_seconds")
    @classmethod
    def _a_bucket_bound(cls, value: float) -> float:
        if value not in VLLM_TTFT_BUCKETS:
            bounds = ", ".join(f"{b:g}" for b in VLLM_TTFT_BUCKETS)
            raise ValueError(f"must be one of vLLM's TTFT histogram bucket bounds in seconds ({bounds})")
        return value


HttpsUrl = Annotated[
    str, AfterValidator(matching(r"https://[^\s/]+(/[^\s]*)?", "an https URL, like https://langfuse.example.com"))
]


def _half_acu_steps(value: float) -> float:
    # Aurora Serverless v2 capacity is set in steps of 0.5 ACU (Aurora User Guide, aurora-serverless-v2 capacity).
    if (value * 2) != int(value * 2):
        raise ValueError("must be a multiple of 0.5 ACU (Aurora Serverless v2 capacity steps)")
    return value


CacheNodeType = Annotated[
    str,
    AfterValidator(matching(r"cache\.[a-z0-9]+\.[a-z0-9]+", "an ElastiCache node type, like cache.t4g.small")),
]
Hostname = Annotated[
    str,
    AfterValidator(
        matching(
            r"([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
            "a DNS name in lowercase, like langfuse.internal.example.com",
        )
    ),
]


class SelfHostedTracingSettings(Settings):
    """LangFuse in this cluster (mode self-hosted): sizes of its stores and how people reach its UI."""

    admin_email: EmailAddress | None = Field(
        None,
        description="Email of the LangFuse admin user created at first start (its password is generated into "
        "Secrets Manager). Required: sign-up is off, so this user is the only way into the UI.",
    )
    database_min_acu: Annotated[float, AfterValidator(_half_acu_steps)] = Field(
        0.5, ge=0.5, le=256, description="Aurora Serverless v2 minimum ACUs of LangFuse's PostgreSQL (0.5 steps)."
    )
    database_max_acu: Annotated[float, AfterValidator(_half_acu_steps)] = Field(
        4, ge=1, le=256, description="Aurora Serverless v2 maximum ACUs of LangFuse's PostgreSQL (0.5 steps)."
    )
    cache_node_type: CacheNodeType = Field(
        "cache.t4g.small", description="ElastiCache for Valkey node type of LangFuse's queue and cache."
    )
    cache_replicas: int = Field(
        0, ge=0, le=5, description="Valkey read replicas; 1 or more turns on Multi-AZ with automatic failover."
    )
    clickhouse_storage_gib: int = Field(
        100, ge=20, le=16384, description="EBS gp3 volume size (GiB) of the ClickHouse server (traces, observations)."
    )
    keeper_replicas: int = Field(
        1, description="ClickHouse Keeper replicas: 1, or 3 or 5 for a quorum that survives losing a node."
    )
    hostname: Hostname | None = Field(
        None,
        description="DNS name people open the LangFuse UI at, pointed at the internal ALB (with certificate_arn). "
        "Without it the UI is reached with kubectl port-forward on http://localhost:3000.",
    )
    certificate_arn: CertificateArn | None = Field(
        None, description="ACM certificate for hostname: the internal ALB serves HTTPS on 443 with it."
    )

    @field_validator("keeper_replicas")
    @classmethod
    def _odd_quorum(cls, value: int) -> int:
        # Keeper is a Raft quorum: an even count adds a node without adding a tolerated failure.
        if value not in (1, 3, 5):
            raise ValueError("must be 1, 3 or 5 (an odd Raft quorum; 3 survives one lost node, 5 two)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SelfHostedTracingSettings:
        if self.database_min_acu > self.database_max_acu:
            raise ValueError(
                f"database_min_acu ({self.database_min_acu}) must not exceed database_max_acu ({self.database_max_acu})"
            )
        if (self.hostname is None) != (self.certificate_arn is None):
            raise ValueError(
                "hostname and certificate_arn are set together: the UI's login redirects go to https://<hostname>, "
                "which the internal ALB serves only with the certificate"
            )
        return self


class TracingSettings(Settings):
    """Where the gateway sends a trace of every request (LangFuse, over OTLP/HTTP)."""

    mode: Literal["off", "external", "self-hosted"] = Field(
        "off",
        description=(
            "off: no traces. external: a LangFuse you run elsewhere (host and keys below). self-hosted: LangFuse "
            "in this cluster with its own Aurora PostgreSQL, ElastiCache Valkey, S3 bucket and ClickHouse."
        ),
    )
    host: HttpsUrl | None = Field(None, description="external: the LangFuse base URL the gateway sends traces to.")
    keys_secret_name: SecretName | None = Field(
        None,
        description="external: Secrets Manager secret (created by you) with JSON fields public_key and secret_key.",
    )
    self_hosted: SelfHostedTracingSettings = Field(
        SelfHostedTracingSettings(), description="self-hosted: sizes of LangFuse's stores and its admin user."
    )

    @model_validator(mode="after")
    def _external_needs_host_and_keys(self) -> TracingSettings:
        if self.mode == "external" and not (self.host and self.keys_secret_name):
            raise ValueError("mode 'external' needs host and keys_secret_name")
        if self.mode != "external" and (self.host or self.keys_secret_name):
            raise ValueError(f"host and keys_secret_name apply to mode 'external' only, not {self.mode!r}")
        if self.mode != "self-hosted" and "self_hosted" in self.model_fields_set:
            raise ValueError(f"self_hosted applies to mode 'self-hosted' only, not {self.mode!r}")
        if self.mode == "self-hosted" and self.self_hosted.admin_email is None:
            raise ValueError(
                "mode 'self-hosted' needs self_hosted.admin_email: LangFuse's sign-up is off, so the admin user "
                "created at first start is the only way into its UI"
            )
        return self


class ManagedPrometheusSettings(Settings):
    """A durable copy of the metrics in Amazon Managed Service for Prometheus, and alert delivery from it.

    The in-cluster Prometheus stays the scaling path (AMP lags up to a minute behind it: FACTS.md); it
    remote-writes every series to an AMP workspace encrypted with its own key, where the same alerting
    rules run and AMP's alert manager sends alerts to the encrypted alarm topic.
    """

    enabled: bool = Field(
        False,
        description="Create the AMP workspace (own KMS key), remote-write to it and deliver its alerts to the "
        "alarm topic. Priced per sample ingested and stored (see the README).",
    )


class ObservabilitySettings(Settings):
    """Alerting on the in-cluster Prometheus; the CloudWatch dashboard and alarms and where alarms go."""

    alerts: AlertSettings = AlertSettings()
    tracing: TracingSettings = TracingSettings()
    managed_prometheus: ManagedPrometheusSettings = ManagedPrometheusSettings()
    alarm_email: EmailAddress | None = Field(
        None, description="Subscribe this address to the CloudWatch alarm topic (SNS asks it to confirm)."
    )
