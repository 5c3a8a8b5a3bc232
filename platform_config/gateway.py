"""Settings of the gateway tier: the LiteLLM proxy in front of vLLM.

Supply-chain rules come from FACTS.md (LiteLLM section) and are enforced here, before anything is
synthesized: a proxy version with a known advisory never reaches a manifest.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from platform_config.base import DigestPinnedImage, Settings, matching

# First release with the fixes for CVE-2026-42208 (SQL injection, CVSS 9.3) and CVE-2026-42271 (RCE).
MINIMUM_SAFE_VERSION = (1, 83, 7)
# PyPI litellm 1.82.7 and 1.82.8 were trojaned on 24 Mar 2026 (BerriAI/litellm#24518).
TROJANED_VERSIONS = {(1, 82, 7), (1, 82, 8)}
# 1.107.x was reported compromised on 2026-10-21 and is absent from PyPI.
COMPROMISED_MINOR = (1, 107)

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def version_advisory(version: tuple[int, int, int]) -> str | None:
    """Why a LiteLLM version must not run, or None when no known advisory applies."""
    text = ".".join(map(str, version))
    if version in TROJANED_VERSIONS:
        return f"LiteLLM {text} was trojaned on PyPI on 24 Mar 2026 (BerriAI/litellm#24518)"
    if version[:2] == COMPROMISED_MINOR:
        return f"LiteLLM {text}: the 1.107.x releases were reported compromised on 2026-10-21 and pulled from PyPI"
    if version < MINIMUM_SAFE_VERSION:
        return (
            f"LiteLLM {text} is older than 1.83.7, which fixes CVE-2026-42208 (SQL injection, CVSS 9.3) "
            "and CVE-2026-42271 (remote code execution)"
        )
    return None


def _safe_version(value: str) -> str:
    match = _VERSION.match(value)
    if not match:
        raise ValueError("must be a release version MAJOR.MINOR.PATCH, e.g. 1.106.2")
    version = (int(match[1]), int(match[2]), int(match[3]))
    advisory = version_advisory(version)
    if advisory:
        raise ValueError(f"{advisory}; use 1.83.7 or later and not 1.107.x (1.102.1 is the tested release)")
    return value


LiteLlmVersion = Annotated[str, AfterValidator(_safe_version)]
ModelName = Annotated[
    str,
    AfterValidator(
        matching(
            r"[a-zA-Z0-9][a-zA-Z0-9._/:-]{0,127}",
            "up to 128 letters, digits and '._/:-', starting with a letter or digit",
        )
    ),
]
CertificateArn = Annotated[
    str,
    AfterValidator(
        matching(
            r"arn:aws(-[a-z]+)*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}",
            "an ACM certificate ARN, like arn:aws:acm:us-west-2:123456789012:certificate/<uuid>",
        )
    ),
]


def _ipv4_cidr(value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError:
        raise ValueError("must be an IPv4 network in CIDR notation with its host bits zero, like 10.0.0.0/16") from None


Ipv4Cidr = Annotated[str, AfterValidator(_ipv4_cidr)]
RoutingStrategy = Literal["simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing-v2"]


class ExtraModel(Settings):
    """Another deployment behind the gateway, e.g. a Bedrock model as fallback (credentials by Pod Identity)."""

    model_name: ModelName = Field(description="Name clients request.")
    litellm_model: ModelName = Field(description="LiteLLM provider/model, e.g. bedrock/anthropic.claude-...")
    fallback_for_primary: bool = Field(False, description="Use it when the vLLM deployment fails.")


class RouterSettings(Settings):
    # simple-shuffle: least-busy counts in-flight requests per proxy process, so with several replicas
    # it sees a fraction of the load (BerriAI/litellm#39322, #37622; FACTS.md).
    routing_strategy: RoutingStrategy = Field("simple-shuffle", description="How a request picks a deployment.")
    num_retries: int = Field(2, ge=0, le=10, description="Retries on another deployment after a failure.")
    # LiteLLM counts a failure (and decides on a cooldown) only on a request's first attempt, and its
    # retries may pick the dead deployment again: with allowed_fails 1, 8 of 44 backend kills lost a
    # request in tests/test_gateway_proxy.py; with 0, none of 47 did. (FACTS.md reports no loss with 1.)
    allowed_fails: int = Field(
        0, ge=0, le=100, description="Failures before a deployment cools down (with two or more deployments)."
    )
    cooldown_seconds: int = Field(30, ge=1, le=3600, description="How long a failing deployment gets no traffic.")
    timeout_seconds: int = Field(
        600, ge=10, le=3600, description="Request timeout; at least the longest request vLLM is sized for."
    )


class GatewayAutoscalingSettings(Settings):
    min_replicas: int = Field(2, ge=2, description="Replicas that stay up (two for availability).")
    max_replicas: int = Field(6, ge=2)
    # One proxy worker is CPU-bound at 20-40 streamed req/s per core (FACTS.md); scale at the low end.
    requests_per_second_per_replica: float = Field(20, gt=0, description="Request rate per replica.")
    cpu_utilization_percent: int = Field(70, gt=0, le=100, description="CPU utilisation target.")

    @model_validator(mode="after")
    def _bounds(self) -> GatewayAutoscalingSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) must be less than or equal to max_replicas ({self.max_replicas})"
            )
        return self


def _half_acu_step(value: float) -> float:
    # Aurora Serverless v2 capacity is set in steps of 0.5 ACU (Aurora User Guide, aurora-serverless-v2 capacity).
    if (value * 2) != int(value * 2):
        raise ValueError("must be a multiple of 0.5 ACU (Aurora Serverless v2 capacity steps)")
    return value


def _no_auto_pause(value: float) -> float:
    if value < 0.5:
        raise ValueError(
            "must be at least 0.5 ACU: at 0 Aurora would pause, which LiteLLM's open connections prevent, and a "
            "resume (about 15 s) outlasts LiteLLM's readiness check, taking every gateway replica out at once"
        )
    return value


class GatewayStoreSettings(Settings):
    # Not 0 (auto-pause): LiteLLM holds Prisma's connection pool open and writes to the database every
    # ~10 s (spend batches) and 60 s (worker heartbeat), and Aurora pauses only with no user connection
    # open (Aurora User Guide, aurora-serverless-v2-auto-pause), so 0 would never pause while the gateway
    # runs; if it did, a ~15 s resume outlasts LiteLLM's 4 s readiness deadline and every replica turns
    # unready at once. 0.5 ACU is the smallest running capacity.
    database_min_acu: Annotated[float, AfterValidator(_half_acu_step), AfterValidator(_no_auto_pause)] = Field(
        0.5,
        le=256,
        description="Aurora Serverless v2 minimum ACUs (0.5 steps; 0, auto-pause, is refused: LiteLLM's open "
        "connections keep the database from pausing).",
    )
    database_max_acu: Annotated[float, AfterValidator(_half_acu_step)] = Field(
        4, ge=1, le=256, description="Aurora Serverless v2 maximum ACUs (0.5 steps)."
    )
    cache_max_storage_gb: int = Field(5, ge=1, le=5000, description="ElastiCache Serverless data storage cap (GB).")
    cache_max_ecpu_per_second: int = Field(
        5000, ge=1000, le=15_000_000, description="ElastiCache Serverless ECPU/s cap (a cost cap)."
    )

    @model_validator(mode="after")
    def _bounds(self) -> GatewayStoreSettings:
        if self.database_min_acu > self.database_max_acu:
            raise ValueError(
                f"database_min_acu ({self.database_min_acu}) must not exceed database_max_acu ({self.database_max_acu})"
            )
        return self


class GatewaySettings(Settings):
    enabled: bool = Field(True, description="Deploy the gateway tier.")
    litellm_version: LiteLlmVersion = Field("1.102.1", description="LiteLLM proxy release the image carries.")
    # The official multi-platform image of release 1.102.1 (ghcr.io/berriai/litellm, tags 1.102.1 and
    # v1.102.1), the same release the tests run as the real proxy (requirements-litellm.txt).
    image: DigestPinnedImage = Field(
        "ghcr.io/berriai/litellm:v1.102.1@sha256:87f34979b9f8cb274fac90ca8a4fdda07d8480de22755562a26adeb95ce20d02",
        description="LiteLLM proxy image of that release, pinned by digest.",
    )
    router: RouterSettings = RouterSettings()
    stores: GatewayStoreSettings = GatewayStoreSettings()
    autoscaling: GatewayAutoscalingSettings = GatewayAutoscalingSettings()
    extra_models: tuple[ExtraModel, ...] = Field((), description="Further deployments, e.g. Bedrock fallbacks.")
    ingress_scheme: Literal["internal", "internet-facing"] = Field(
        "internal", description="ALB scheme; internal keeps the gateway inside the VPC."
    )
    certificate_arn: CertificateArn | None = Field(
        None,
        description="ACM certificate for HTTPS on the ALB (HTTP only without one).",
    )
    inbound_cidrs: tuple[Ipv4Cidr, ...] = Field((), description="Networks allowed to reach the ALB (default: any).")

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySettings:
        if self.ingress_scheme == "internet-facing" and not self.certificate_arn:
            raise ValueError("an internet-facing gateway needs certificate_arn (no plain HTTP on the internet)")
        names = [m.model_name for m in self.extra_models]
        if len(set(names)) != len(names):
            raise ValueError(f"extra_models lists a model_name twice: {names}")
        if f"{self.litellm_version}@" not in self.image and f"{self.litellm_version}-" not in self.image:
            raise ValueError(f"image {self.image!r} is not tagged with litellm_version {self.litellm_version}")
        return self
