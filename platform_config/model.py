"""The platform's configuration model.

Every value a stack or construct uses is declared here with its type, default and allowed range, so
that a bad value stops synth before any construct is built. Defaults describe the `dev` environment;
`cdk.json` lists only what another environment changes.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError, model_validator

from platform_config import namespaces
from platform_config.base import Settings, matching
from platform_config.gateway import GatewaySettings
from platform_config.inference import InferenceSettings
from platform_config.observability import ObservabilitySettings

# EKS versions this platform accepts, with the end of standard support for each (awsdocs
# amazon-eks-user-guide kubernetes-versions.adoc, see ../shared/design/FACTS.md). A version past
# that date runs in extended support: control plane $0.60/h instead of $0.10/h.
KUBERNETES_STANDARD_SUPPORT_ENDS = {
    "1.33": "2026-07-29",
    "1.34": "2026-12-02",
    "1.35": "2027-03-27",
    "1.36": "2027-08-02",
}
KubernetesVersion = Literal["1.33", "1.34", "1.35", "1.36"]

# The only values CloudWatch Logs accepts for RetentionInDays (AWS::Logs::LogGroup reference).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

# Interface endpoints worth their hourly cost for an EKS Auto Mode data plane in private subnets:
# image pulls (ECR), Pod Identity / SDK credentials (STS), logs, and the EKS API itself.
InterfaceEndpoint = Literal[
    "ecr.api",
    "ecr.dkr",
    "sts",
    "logs",
    "eks",
    "eks-auth",
    "monitoring",
    "secretsmanager",
    "kms",
    "ssm",
    "ec2",
    "aps-workspaces",
]
PodSecurityLevel = Literal["restricted", "baseline", "privileged"]

# Kubernetes object names that become DNS labels (RFC 1123).
DnsLabel = Annotated[
    str,
    AfterValidator(
        matching(
            r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
            "a DNS label: up to 63 lowercase letters, digits and '-', starting with a letter, not ending with '-'",
        )
    ),
]
AccountId = Annotated[str, AfterValidator(matching(r"\d{12}", "a 12-digit AWS account id"))]
Region = Annotated[
    str, AfterValidator(matching(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d", "an AWS region name, like us-west-2"))
]
AvailabilityZone = Annotated[
    str,
    AfterValidator(
        matching(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d[a-z]", "an availability zone name, like us-west-2a")
    ),
]
VpcId = Annotated[
    str, AfterValidator(matching(r"vpc-[0-9a-f]{8}([0-9a-f]{9})?", "a VPC id, like vpc-0123456789abcdef0"))
]
SubnetId = Annotated[
    str, AfterValidator(matching(r"subnet-[0-9a-f]{8}([0-9a-f]{9})?", "a subnet id, like subnet-0123456789abcdef0"))
]
IamPrincipalArn = Annotated[
    str,
    AfterValidator(
        matching(
            r"arn:aws(-[a-z]+)*:iam::\d{12}:(role|user)/[A-Za-z0-9+=,.@_/-]{1,512}",
            "an IAM role or user ARN, like arn:aws:iam::123456789012:role/PlatformAdmins",
        )
    ),
]


# RFC 5737: addresses reserved for documentation, which no real client has.
_DOCUMENTATION_RANGES = tuple(
    ipaddress.IPv4Network(cidr) for cidr in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)


def _is_documentation_range(cidr: str) -> bool:
    network = ipaddress.IPv4Network(cidr)
    return any(network.subnet_of(documentation) for documentation in _DOCUMENTATION_RANGES)


# AWS tagging rules (Tagging AWS resources, "Tag naming limits and requirements"): at most 50 tags per
# resource, keys of 1-128 and values of 0-256 characters among letters, digits, spaces and _ . : / = + - @,
# and no key starting with "aws:". The platform always sets `project` and `environment`.
_TAG_TEXT = re.compile(r"[\w\s.:/=+\-@]*")
PLATFORM_TAGS = ("project", "environment")
MAX_TAGS = 50


def _aws_tags(tags: dict[str, str]) -> dict[str, str]:
    extra = [key for key in tags if key not in PLATFORM_TAGS]
    if len(extra) > MAX_TAGS - len(PLATFORM_TAGS):
        raise ValueError(
            f"lists {len(extra)} tags; AWS allows {MAX_TAGS} per resource and the platform sets "
            f"{len(PLATFORM_TAGS)} ({', '.join(PLATFORM_TAGS)}), so at most {MAX_TAGS - len(PLATFORM_TAGS)}"
        )
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or not _TAG_TEXT.fullmatch(key):
            raise ValueError(f"key {key!r} must be 1-128 letters, digits, spaces or _ . : / = + - @ (AWS tag rules)")
        if key.lower().startswith("aws:"):
            raise ValueError(f"key {key!r} starts with 'aws:', which AWS reserves for its own tags")
        if len(value) > 256 or not _TAG_TEXT.fullmatch(value):
            raise ValueError(
                f"value of {key!r} must be at most 256 letters, digits, spaces or _ . : / = + - @ (AWS tag rules)"
            )
    return tags


def _retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        raise ValueError(f"must be one of CloudWatch Logs' retention values {list(LOG_RETENTION_DAYS)}")
    return days


# RFC 1918: the address ranges for private networks (loopback, link-local and the like are "private" to
# Python's ipaddress but no VPC can use them).
_RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _private_cidr(cidr: str) -> str:
    try:
        network = ipaddress.IPv4Network(cidr, strict=True)
    except ValueError:
        network = None
    if network is None or not any(network.subnet_of(r) for r in _RFC1918) or not 16 <= network.prefixlen <= 20:
        raise ValueError(
            "must be a private (RFC 1918: within 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) IPv4 network "
            "with a prefix from /16 to /20, like 10.0.0.0/16"
        )
    return str(network)


def _allowlist_cidr(cidr: str) -> str:
    try:
        network = ipaddress.IPv4Network(cidr, strict=True)
    except ValueError:
        raise ValueError(
            "must be an IPv4 network in CIDR notation with its host bits zero, like 203.0.113.0/24"
        ) from None
    if network.prefixlen == 0:
        raise ValueError("0.0.0.0/0 opens the Kubernetes API to the internet; list the networks that need it")
    return str(network)


RetentionDays = Annotated[int, AfterValidator(_retention)]
VpcCidr = Annotated[str, AfterValidator(_private_cidr)]
AllowlistCidr = Annotated[str, AfterValidator(_allowlist_cidr)]


class VpcSettings(Settings):
    """The network: a new VPC (default) or an existing one named by id with its private subnets."""

    vpc_id: VpcId | None = Field(None, description="Use this existing VPC instead of creating one.")
    private_subnet_ids: tuple[SubnetId, ...] = Field(
        (), description="With vpc_id: the private subnets for nodes, one per availability zone."
    )
    cidr: VpcCidr = Field("10.0.0.0/16", description="CIDR of a new VPC.")
    max_azs: int = Field(2, ge=2, le=3, description="Availability zones a new VPC spans (2 or 3).")
    nat_gateways: int = Field(1, ge=1, le=3, description="NAT gateways; one per AZ survives an AZ outage.")
    interface_endpoints: tuple[InterfaceEndpoint, ...] = Field(
        (), description="Interface endpoints to create (each costs ~$0.01/h per AZ)."
    )
    flow_log_retention_days: RetentionDays = Field(
        90, description="Retention of the KMS-encrypted VPC flow log group (a CloudWatch Logs value)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> VpcSettings:
        if self.nat_gateways > self.max_azs:
            raise ValueError(f"nat_gateways ({self.nat_gateways}) must be at most max_azs ({self.max_azs})")
        if self.vpc_id and len(self.private_subnet_ids) < 2:
            raise ValueError("an existing vpc_id needs at least 2 private_subnet_ids in different AZs")
        if self.private_subnet_ids and not self.vpc_id:
            raise ValueError("private_subnet_ids are only used with an existing vpc_id")
        if len(set(self.interface_endpoints)) != len(self.interface_endpoints):
            raise ValueError("interface_endpoints lists a service twice")
        return self


class ClusterSettings(Settings):
    """The EKS Auto Mode cluster."""

    kubernetes_version: KubernetesVersion = Field(
        "1.35",
        description="EKS Kubernetes version. 1.35 is in standard support until 2027-03-27; 1.33 is "
        "accepted but billed at the extended-support rate (synth warns).",
    )
    endpoint_access: Literal["public_and_private", "private"] = Field(
        "public_and_private", description="API endpoint exposure; prod uses private."
    )
    public_access_cidrs: tuple[AllowlistCidr, ...] = Field(
        ("192.0.2.0/24",),
        description="Networks allowed to reach a public endpoint (the default is a documentation "
        "range that reaches nothing: set your own).",
    )
    admin_principal_arns: tuple[IamPrincipalArn, ...] = Field(
        (), description="IAM roles/users granted AmazonEKSClusterAdminPolicy through access entries."
    )
    control_plane_log_retention_days: RetentionDays = Field(
        90, description="Retention of the KMS-encrypted control-plane log group (a CloudWatch Logs value)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSettings:
        if self.endpoint_access == "public_and_private" and not self.public_access_cidrs:
            raise ValueError("a public endpoint needs at least one CIDR in public_access_cidrs")
        return self


# The oldest amazon-cloudwatch-observability release this platform's GPU metrics work with: its agent collects
# NVIDIA GPU metrics from v1.3.0-eksbuild.1 (CloudWatch User Guide, Container-Insights-metrics-enhanced-EKS,
# "NVIDIA GPU metrics"), and from chart 1.5 on (aws-observability/helm-charts, checked up to 6.4.0) it scrapes a
# Service labelled `k8s-app: dcgm-exporter-service` over TLS with the `amazon-cloudwatch-observability-agent-cert`
# secret, the contract the platform's DCGM exporter meets (cdk_constructs/helm.py DcgmExporter). The add-on's own
# exporter can be switched off (`dcgmExporter.enabled`, which the platform sets) only from chart 4.3.0 (helm-charts
# #190, commit 8de9850): an older one runs its exporter, a second DaemonSet named dcgm-exporter on every GPU node.
MIN_CONTAINER_INSIGHTS_VERSION = (4, 3, 0)
_EKS_ADDON_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)-eksbuild\.\d+")


def _container_insights_version(version: str | None) -> str | None:
    if version is None:
        return None
    match = _EKS_ADDON_VERSION.fullmatch(version)
    if match is None:
        raise ValueError("must be an EKS add-on version, like v4.8.0-eksbuild.1 (aws eks describe-addon-versions)")
    if tuple(int(part) for part in match.groups()) < MIN_CONTAINER_INSIGHTS_VERSION:
        raise ValueError(
            f"{version} is older than v4.3.0-eksbuild.1, the first release whose own DCGM exporter can be switched "
            "off (the platform runs one exporter per GPU node); pin v4.3.0-eksbuild.1 or later, or leave it unset"
        )
    return version


class AddonSettings(Settings):
    """EKS add-ons. A version of None lets EKS choose the default for the cluster's version."""

    metrics_server: bool = Field(True, description="Install the metrics-server EKS add-on.")
    metrics_server_version: str | None = Field(None, description="Pin its version (default: EKS's default).")
    container_insights: bool = Field(
        True, description="Install amazon-cloudwatch-observability (Container Insights, enhanced observability)."
    )
    container_insights_version: Annotated[str | None, AfterValidator(_container_insights_version)] = Field(
        None,
        description="Pin its version (default: EKS's default); v4.3.0-eksbuild.1 or later, whose own DCGM exporter "
        "can be switched off and whose agent reads GPU metrics from the platform's DCGM exporter "
        "(the add-on's own exporter is always off: one per GPU node).",
    )


class NamespaceSettings(Settings):
    """A namespace the platform owns, with the Pod Security Standard it enforces."""

    name: DnsLabel
    pod_security: PodSecurityLevel = "restricted"


def _default_namespaces(*, dcgm_exporter_here: bool = False) -> tuple[NamespaceSettings, ...]:
    return (
        NamespaceSettings(name=namespaces.INFERENCE),
        NamespaceSettings(name=namespaces.GATEWAY),
        NamespaceSettings(name=namespaces.KEDA),
        NamespaceSettings(name=namespaces.EXTERNAL_SECRETS),
        # The DCGM exporter runs here when Container Insights is off (otherwise in the add-on's namespace:
        # `dcgm_exporter_namespace`) and needs a host path and root, which only the `privileged` level admits;
        # then this namespace is `privileged` so the workloads' namespaces stay `restricted`.
        NamespaceSettings(
            name=namespaces.OBSERVABILITY, pod_security="privileged" if dcgm_exporter_here else "restricted"
        ),
    )


class PlatformConfig(Settings):
    """Everything one environment of the platform needs, validated."""

    env_name: DnsLabel = Field(description="Set by `-c env=NAME` (default dev): which cdk.json environment.")
    name: Annotated[
        str,
        AfterValidator(
            matching(
                r"[a-z][a-z0-9-]{1,18}[a-z0-9]",
                "3-20 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
            )
        ),
    ] = Field("genai", description="Prefix of every stack and resource name (3-20 chars, lowercase).")
    account: AccountId | None = Field(None, description="Pin the stacks to this account (with region).")
    region: Region | None = Field(None, description="Pin the stacks to this region (with account).")
    availability_zones: tuple[AvailabilityZone, ...] = Field(
        (), description="AZs to use when account/region are pinned (no lookups at synth time)."
    )
    production: bool = Field(False, description="Production rules: private API endpoint only, resources retained.")
    removal_policy: Literal["destroy", "retain"] = Field(
        "destroy", description="What happens to keys and log groups when the stack is deleted."
    )
    tags: Annotated[dict[str, str], AfterValidator(_aws_tags)] = Field(
        default_factory=dict,
        description="Extra tags on every resource (project and environment always set); AWS tag rules apply.",
    )
    vpc: VpcSettings = VpcSettings()
    cluster: ClusterSettings = ClusterSettings()
    addons: AddonSettings = AddonSettings()
    inference: InferenceSettings = InferenceSettings()
    gateway: GatewaySettings = GatewaySettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    namespaces: tuple[NamespaceSettings, ...] = Field(
        default_factory=_default_namespaces,
        description="Namespaces the platform creates, each {name, pod_security}; pod_security is "
        "restricted, baseline or privileged (enforced; audit and warn are always restricted).",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_namespaces_for_the_exporter(cls, data: Any) -> Any:
        """Without a `namespaces` list, `observability` is `privileged` only when the DCGM exporter runs there
        (Container Insights off); a value that is not a boolean is left for field validation to refuse."""
        if not isinstance(data, dict) or "namespaces" in data:
            return data
        addons = data.get("addons")
        insights: Any = True
        if isinstance(addons, AddonSettings):
            insights = addons.container_insights
        elif isinstance(addons, dict):
            insights = addons.get("container_insights", True)
        try:
            exporter_here = not TypeAdapter(bool).validate_python(insights)
        except ValidationError:
            return data
        return {**data, "namespaces": _default_namespaces(dcgm_exporter_here=exporter_here)}

    @model_validator(mode="after")
    def _consistent(self) -> PlatformConfig:
        if (self.account is None) != (self.region is None):
            raise ValueError("account and region are pinned together: set both or neither")
        if self.account is not None:
            if len(self.availability_zones) < self.vpc.max_azs:
                raise ValueError(
                    f"a pinned account/region needs availability_zones listing at least "
                    f"vpc.max_azs ({self.vpc.max_azs}) zones, so synth needs no AWS lookup"
                )
            foreign = [az for az in self.availability_zones if not az.startswith(str(self.region))]
            if foreign:
                raise ValueError(f"availability_zones {foreign} are not in region {self.region}")
        if self.vpc.vpc_id and len(self.availability_zones) < len(self.vpc.private_subnet_ids):
            raise ValueError("an existing VPC needs availability_zones, one per private subnet id")
        if self.production and self.cluster.endpoint_access != "private":
            raise ValueError("production requires cluster.endpoint_access 'private'")
        primary = self.inference.vllm.served_model_name
        for index, extra in enumerate(self.gateway.extra_models):
            if extra.model_name == primary:
                raise ValueError(
                    f"gateway.extra_models.{index}.model_name {primary!r} is the vLLM model's name "
                    "(inference.vllm.served_model_name): the gateway would shuffle requests between vLLM and "
                    f"{extra.litellm_model}; give it its own name and set fallback_for_primary to true to use "
                    "it only when vLLM fails"
                )
        names = [ns.name for ns in self.namespaces]
        if len(set(names)) != len(names):
            raise ValueError(f"namespaces lists a name twice: {names}")
        missing = [ns for ns in namespaces.PLATFORM if ns not in names]
        if missing:
            raise ValueError(
                f"namespaces leaves out {missing}, which the platform's workloads run in; list them too "
                "(you may add your own and change their pod_security)"
            )
        dcgm = self.dcgm_exporter_namespace
        for ns in self.namespaces:
            if ns.name == dcgm and ns.pod_security != "privileged":
                raise ValueError(
                    f"namespaces gives {dcgm!r} pod_security {ns.pod_security!r}, but the DCGM exporter runs there "
                    f"(addons.container_insights {self.addons.container_insights}) and only 'privileged' admits it "
                    "(root, SYS_ADMIN for profiling metrics, a host path to the kubelet's pod-resources socket): "
                    "Pod Security would refuse its pods, and nothing but the DaemonSet's events would say so"
                )
        reserved = [ns for ns in namespaces.TRACING if ns in names]
        if reserved:
            raise ValueError(
                f"namespaces lists {reserved}, which the tracing stack creates itself when "
                "observability.tracing.mode is 'self-hosted'; leave them out"
            )
        if self.observability.tracing.mode == "self-hosted" and not self.gateway.enabled:
            raise ValueError(
                "observability.tracing.mode 'self-hosted' needs gateway.enabled: LangFuse traces the gateway's "
                "requests, and its credentials reach the cluster through the gateway stack's External Secrets Operator"
            )
        if (
            self.observability.managed_prometheus.enabled
            and self.cluster.endpoint_access == "private"
            and "aps-workspaces" not in self.vpc.interface_endpoints
        ):
            raise ValueError(
                "observability.managed_prometheus.enabled is true on a private cluster (cluster.endpoint_access "
                f"'private') but vpc.interface_endpoints {list(self.vpc.interface_endpoints)} leaves out "
                "'aps-workspaces': add it, so remote writes to the workspace stay inside the VPC"
            )
        router_timeout = self.gateway.router.timeout_seconds
        longest = self.inference.vllm.longest_request_seconds
        if self.gateway.enabled and router_timeout < longest:
            raise ValueError(
                f"gateway.router.timeout_seconds ({router_timeout}) is shorter than "
                f"inference.vllm.longest_request_seconds ({longest}): the gateway would cut requests vLLM is "
                "sized to finish"
            )
        return self

    @property
    def dcgm_exporter_namespace(self) -> str:
        """Where the DCGM exporter runs: with Container Insights in the add-on's namespace, the only place its agent
        scrapes an exporter from (cdk_constructs/helm.py DcgmExporter), otherwise in `observability`."""
        return namespaces.CLOUDWATCH if self.addons.container_insights else namespaces.OBSERVABILITY

    @property
    def prefix(self) -> str:
        """`<name>-<env>`: the stem of every stack and resource name."""
        return f"{self.name}-{self.env_name}"

    def warnings(self, today: date | None = None) -> list[str]:
        """Valid but costly or risky choices, shown at synth."""
        found = []
        version = self.cluster.kubernetes_version
        if date.fromisoformat(KUBERNETES_STANDARD_SUPPORT_ENDS[version]) < (today or date.today()):
            found.append(
                f"cluster.kubernetes_version {version} left EKS standard support on "
                f"{KUBERNETES_STANDARD_SUPPORT_ENDS[version]}: the control plane is billed at the "
                "extended-support rate of $0.60/h instead of $0.10/h; upgrade to 1.35 or 1.36"
            )
        store = self.inference.model_store
        if not store.download_job:
            found.append(
                f"nothing fills the model bucket: vLLM streams {self.inference.vllm.model} from "
                f"s3://<ModelBucket>/{store.bucket_prefix}/{self.inference.vllm.model} and stays unready until the "
                "weights are there; copy them (aws s3 sync; Llama 3.1 is gated: accept its licence on Hugging "
                "Face first) or set inference.model_store.download_job with hf_token_secret_name"
            )
        if not self.cluster.admin_principal_arns:
            found.append(
                "cluster.admin_principal_arns is empty: no person gets an EKS access entry, so nobody can use "
                "kubectl on this cluster; list your admin role ARNs (keep personal values in cdk.context.json, "
                "see the README's Deploy section)"
            )
        if self.cluster.endpoint_access == "public_and_private" and all(
            _is_documentation_range(cidr) for cidr in self.cluster.public_access_cidrs
        ):
            found.append(
                f"cluster.public_access_cidrs {list(self.cluster.public_access_cidrs)} are documentation ranges "
                "(RFC 5737) that reach nothing: the public API endpoint admits nobody; list the networks you "
                "run kubectl from"
            )
        return found
