"""What the platform alerts on: SLOs with burn-rate alerts, and warnings on vLLM, the GPUs and the gateway."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from platform_config.base import Settings, matching

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


class ObservabilitySettings(Settings):
    """Alerting on the in-cluster Prometheus; the CloudWatch dashboard and alarms and where alarms go."""

    alerts: AlertSettings = AlertSettings()
    alarm_email: EmailAddress | None = Field(
        None, description="Subscribe this address to the CloudWatch alarm topic (SNS asks it to confirm)."
    )
