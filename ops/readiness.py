"""`genai-ops readiness`: the production-readiness checklist, each item pass, fail or needs a person, with evidence.

The items are read offline from what `make synth ENV=<env>` wrote: the CloudFormation templates and the cloud
assembly manifest in `cdk.out/`, the Kubernetes manifests in `dist/k8s/` and `dist/compliance-report.md`. So a
checklist can be run before anything is deployed, and a failing item names the config key that changes it.
`--live` adds `genai-ops verify`'s checks of the running cluster. Some items no file or API can settle (a model
licence, a quota request, who answers the pager): they say so and what a person has to confirm.

A dev synth fails the items only production settings meet (private endpoint, termination protection, retained data,
two replicas, no Spot GPUs...), each saying which setting prod uses instead.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from ops import verify as verify_command
from ops.checks import (
    CheckResult,
    Verdict,
    any_failed,
    fails,
    for_a_person,
    passes,
    passes_if,
    render_json,
    render_table,
    skipped,
)
from ops.errors import BadInputError, OpsError
from ops.live import tunnel_url
from ops.target import accelerator_pool, load_platform_config
from ops.verify import (
    CdkJsonOption,
    EnvOption,
    GatewayUrlOption,
    JsonOption,
    KubeconfigOption,
    KubeContextOption,
    OverrideOption,
    PrometheusUrlOption,
    RegionOption,
    TimeoutOption,
    TunnelOption,
    open_target,
    run_checks,
)
from platform_config import PlatformConfig

# Deletion policies that keep a resource's data when its stack is deleted (CloudFormation User Guide,
# aws-attribute-deletionpolicy).
KEEPS_DATA = {"Retain", "RetainExceptOnCreate", "Snapshot"}
# What holds data the platform cannot recreate: keys (their ciphertext would be lost), audit and flow logs, the
# buckets, generated secrets, durable metrics, the gateway's database (a final snapshot is enough).
STATEFUL_TYPES = (
    "AWS::KMS::Key",
    "AWS::Logs::LogGroup",
    "AWS::S3::Bucket",
    "AWS::SecretsManager::Secret",
    "AWS::APS::Workspace",
    "AWS::RDS::DBCluster",
)
# CDK's kubectl provider keeps its Lambda's logs in its own groups, deleted with the cluster in every environment
# (README, Teardown): they are not the platform's data.
CDK_PROVIDER_PATH = "/KubectlProvider/"
CAPACITY_TYPE = "karpenter.sh/capacity-type"
# A year: PCI DSS 10.5.1 keeps audit logs at least twelve months; prod's config sets 365 days.
LOG_RETENTION_DAYS = 365


@dataclass(frozen=True)
class Resource:
    stack: str
    logical_id: str
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.body["Type"])

    @property
    def props(self) -> dict[str, Any]:
        props: dict[str, Any] = self.body.get("Properties", {})
        return props

    @property
    def path(self) -> str:
        return str(self.body.get("Metadata", {}).get("aws:cdk:path", self.logical_id))


@dataclass
class Synth:
    """One environment's synthesized artifacts."""

    env: str
    prefix: str
    templates: dict[str, dict[str, Any]]  # stack name -> template
    termination_protection: dict[str, bool]
    documents: list[dict[str, Any]]  # every object under dist/k8s
    report: str | None  # dist/compliance-report.md

    def resources(self, resource_type: str) -> list[Resource]:
        return [
            Resource(stack, logical_id, body)
            for stack, template in self.templates.items()
            for logical_id, body in template.get("Resources", {}).items()
            if body.get("Type") == resource_type
        ]

    def objects(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        return [d for d in self.documents if d.get("kind") == kind and name in (None, d["metadata"].get("name"))]


def load_synth(config: PlatformConfig, cdk_out: Path, dist: Path) -> Synth:
    """The artifacts of `config`'s environment, or one message when they are missing or another environment's."""
    prefix, env = config.prefix, config.env_name
    hint = f"run `make synth ENV={env}` first (or pass the --cdk-out/--dist it wrote)"
    manifest_path = cdk_out / "manifest.json"
    if not manifest_path.is_file():
        raise BadInputError(f"--cdk-out {cdk_out}: no cloud assembly (manifest.json) there; {hint}")
    artifacts = json.loads(manifest_path.read_text(encoding="utf-8")).get("artifacts", {})
    stacks = {name: a for name, a in artifacts.items() if a.get("type") == "aws:cloudformation:stack"}
    ours = {name: a for name, a in stacks.items() if name.startswith(f"{prefix}-")}
    if f"{prefix}-foundation" not in ours:
        held = ", ".join(sorted(stacks)) or "no stacks"
        raise BadInputError(f"--cdk-out {cdk_out} holds {held}, not the stacks of {prefix}; {hint}")
    templates = {
        name: json.loads((cdk_out / a["properties"]["templateFile"]).read_text(encoding="utf-8"))
        for name, a in ours.items()
    }
    protection = {name: bool(a["properties"].get("terminationProtection")) for name, a in ours.items()}
    manifests = sorted((dist / "k8s").glob("*.yaml"))
    if not manifests:
        raise BadInputError(f"--dist {dist}: no Kubernetes manifests in {dist / 'k8s'}; {hint}")
    documents: list[dict[str, Any]] = []
    for path in manifests:
        text = path.read_text(encoding="utf-8")
        # app.py manifest_header: "# Environment <env> (<prefix>), applied by the stack ..."
        if not text.startswith(f"# Environment {env} ({prefix})"):
            first = text.splitlines()[0] if text else "(empty)"
            raise BadInputError(f"--dist {dist}: {path.name} is not {prefix}'s ({first!r}); {hint}")
        documents.extend(d for d in yaml.safe_load_all(text) if d)
    report_path = dist / "compliance-report.md"
    report = report_path.read_text(encoding="utf-8") if report_path.is_file() else None
    if report is not None and not report.startswith(f"# Compliance report: environment `{env}`"):
        raise BadInputError(f"--dist {dist}: compliance-report.md is another environment's; {hint}")
    return Synth(env, prefix, templates, protection, documents, report)


def _containers(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = document.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else spec
    if document.get("kind") == "CronJob":
        pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


class Checklist:
    """The readiness items, each a method; `items()` lists them in the order they are reported."""

    def __init__(self, synth: Synth, config: PlatformConfig) -> None:
        self.s = synth
        self.config = config

    def items(self) -> list[tuple[str, Callable[[], Verdict]]]:
        items = [
            ("API endpoint private", self.private_endpoint),
            ("termination protection", self.termination_protection),
            ("data kept when a stack is deleted", self.data_retained),
            ("database protected, with a reader", self.database),
            ("a NAT gateway per availability zone", self.nat_per_zone),
            ("logs kept a year", self.log_retention),
            ("alarms reach a person by email", self.alarm_email),
            ("durable metrics and alerting (AMP)", self.managed_prometheus),
            ("PodDisruptionBudgets for vLLM and LiteLLM", self.pdbs),
            ("at least 2 replicas of vLLM and LiteLLM", self.replicas),
            ("GPU nodes On-Demand only (no Spot)", self.no_spot_accelerators),
            ("container images pinned by digest", self.images_by_digest),
            ("Helm charts pinned by version", self.helm_versions),
            ("compliance report: 0 failed findings", self.compliance),
            ("a person can reach the cluster", self.admin_access),
            ("gateway serves HTTPS", self.gateway_tls),
        ]
        return items + self.person_items()

    def run(self) -> list[CheckResult]:
        results = []
        for name, check in self.items():
            results.append(check().named(name))
        return results

    # --- CloudFormation -------------------------------------------------------------------------------------------
    def private_endpoint(self) -> Verdict:
        (cluster,) = self.s.resources("AWS::EKS::Cluster")
        vpc = cluster.props.get("ResourcesVpcConfig", {})
        # EKS's defaults when a field is absent: public access on, private off (EKS API VpcConfigRequest).
        public, private = vpc.get("EndpointPublicAccess", True), vpc.get("EndpointPrivateAccess", False)
        if public:
            cidrs = ", ".join(vpc.get("PublicAccessCidrs", ["0.0.0.0/0"]))
            return fails(
                f"EndpointPublicAccess true (from {cidrs}): the Kubernetes API answers outside the VPC; "
                "prod sets cluster.endpoint_access=private",
            )
        return passes_if(private is True, f"EndpointPublicAccess false, EndpointPrivateAccess {private}")

    def termination_protection(self) -> Verdict:
        unprotected = sorted(name for name, on in self.s.termination_protection.items() if not on)
        if unprotected:
            return fails(
                f"off for {', '.join(unprotected)}: a `cdk destroy` deletes them at once; prod turns it on "
                "(config production: true)",
            )
        return passes(f"on for {', '.join(sorted(self.s.termination_protection))}")

    def data_retained(self) -> Verdict:
        kept: Counter[str] = Counter()
        deleted: Counter[str] = Counter()
        for resource_type in STATEFUL_TYPES:
            for resource in self.s.resources(resource_type):
                if resource_type == "AWS::Logs::LogGroup" and CDK_PROVIDER_PATH in resource.path:
                    continue
                policy = resource.body.get("DeletionPolicy", "Delete")
                short = resource_type.split("::", 1)[1]
                if policy in KEEPS_DATA:
                    kept[f"{short} ({policy})"] += 1
                else:
                    deleted[short] += 1
        summary = ", ".join(f"{n} {what}" for what, n in sorted(kept.items()))
        if deleted:
            gone = ", ".join(f"{n} {what}" for what, n in sorted(deleted.items()))
            return fails(
                f"deleted with their stack: {gone}; prod sets removal_policy=retain (kept: {summary or 'nothing'})",
            )
        return passes(f"kept: {summary}")

    def database(self) -> Verdict:
        clusters = self.s.resources("AWS::RDS::DBCluster")
        if not clusters:
            return skipped("no Aurora cluster (gateway.enabled is false)")
        (db,) = clusters
        instances = len(self.s.resources("AWS::RDS::DBInstance"))
        protection = db.props.get("DeletionProtection") is True
        backups = db.props.get("BackupRetentionPeriod", 1)
        evidence = (
            f"DeletionProtection {protection}, {instances} instance{'s' if instances != 1 else ''}, "
            f"backups kept {backups} days"
        )
        if not protection or instances < 2:
            return fails(
                f"{evidence}: one instance means a failover waits for a new writer; prod sets production: true "
                "(deletion protection and a reader in another zone)",
            )
        return passes(evidence)

    def nat_per_zone(self) -> Verdict:
        subnets = [
            s
            for s in self.s.resources("AWS::EC2::Subnet")
            if any(t.get("Key") == "kubernetes.io/role/internal-elb" for t in s.props.get("Tags", []))
        ]
        if not subnets:
            return for_a_person(
                "an existing VPC (vpc.vpc_id): check that each of its private subnets routes through a NAT gateway "
                "in its own zone",
            )
        nats = len(self.s.resources("AWS::EC2::NatGateway"))
        evidence = f"{nats} NAT gateway{'s' if nats != 1 else ''} for {len(subnets)} private subnets"
        if nats < len(subnets):
            return fails(
                f"{evidence}: an outage of a NAT's zone cuts the others' egress (ECR, STS, Secrets Manager without "
                "interface endpoints); prod sets vpc.nat_gateways to vpc.max_azs",
            )
        return passes(evidence)

    def log_retention(self) -> Verdict:
        short = []
        groups = [g for g in self.s.resources("AWS::Logs::LogGroup") if CDK_PROVIDER_PATH not in g.path]
        for group in groups:
            days = group.props.get("RetentionInDays")
            if days is not None and days < LOG_RETENTION_DAYS:
                short.append(f"{group.path.removesuffix('/Resource')} {days} days")
        if short:
            return fails(
                f"{'; '.join(short)}: audit trails are kept at least a year (PCI DSS 10.5.1); prod sets "
                "cluster.control_plane_log_retention_days and vpc.flow_log_retention_days to 365",
            )
        return passes(f"{len(groups)} log groups kept {LOG_RETENTION_DAYS} days or more")

    def alarm_email(self) -> Verdict:
        alarms = self.s.resources("AWS::CloudWatch::Alarm")
        notifying = [a for a in alarms if a.props.get("AlarmActions")]
        emails = [
            s.props.get("Endpoint", "")
            for s in self.s.resources("AWS::SNS::Subscription")
            if s.props.get("Protocol") == "email"
        ]
        evidence = f"{len(notifying)} of {len(alarms)} alarms notify the alarm topic"
        if not emails:
            return fails(
                f"{evidence}, which has no email subscription: nobody hears of an alarm; set "
                "observability.alarm_email (and confirm the subscription from the mail AWS sends)",
            )
        return passes_if(bool(notifying), f"{evidence}, subscribed by {', '.join(emails)} (confirm the mail)")

    def managed_prometheus(self) -> Verdict:
        workspaces = self.s.resources("AWS::APS::Workspace")
        rules = self.s.resources("AWS::APS::RuleGroupsNamespace")
        if not workspaces:
            return fails(
                f"no workspace: metrics live only on the in-cluster Prometheus volume "
                f"({self.config.inference.metrics.retention_days} days) and alerts fire nowhere a person sees; "
                "prod sets observability.managed_prometheus.enabled",
            )
        return passes_if(bool(rules), f"{len(workspaces)} workspace, {len(rules)} rule groups namespace")

    # --- dist/k8s -------------------------------------------------------------------------------------------------
    def _workloads(self) -> list[tuple[str, str]]:
        gateway = [("gateway", "litellm")] if self.s.objects("Deployment", "litellm") else []
        return [("inference", "vllm"), *gateway]

    def pdbs(self) -> Verdict:
        parts, missing = [], []
        for namespace, name in self._workloads():
            found = [
                p for p in self.s.objects("PodDisruptionBudget", name) if p["metadata"].get("namespace") == namespace
            ]
            if not found:
                missing.append(f"{namespace}/{name}")
                continue
            spec = found[0]["spec"]
            rule = (
                f"minAvailable {spec['minAvailable']}"
                if "minAvailable" in spec
                else f"maxUnavailable {spec.get('maxUnavailable')}"
            )
            parts.append(f"{namespace}/{name} {rule}")
        if missing:
            return fails(f"no PodDisruptionBudget for {', '.join(missing)}")
        return passes("; ".join(parts))

    def replicas(self) -> Verdict:
        low, parts = [], []
        for namespace, name in self._workloads():
            found = [s for s in self.s.objects("ScaledObject", name) if s["metadata"].get("namespace") == namespace]
            minimum = found[0]["spec"].get("minReplicaCount", 0) if found else None
            parts.append(f"{namespace}/{name} minReplicaCount {minimum}")
            if minimum is None or minimum < 2:
                low.append(name)
        if low:
            return fails(
                f"{'; '.join(parts)}: one replica means a node drain or crash takes the model away for a cold start "
                "(minutes); prod sets inference.autoscaling.min_replicas 2",
            )
        return passes("; ".join(parts))

    def no_spot_accelerators(self) -> Verdict:
        pool = accelerator_pool(self.config)
        found = self.s.objects("NodePool", pool)
        if not found:
            return fails(f"no NodePool {pool} in the manifests")
        requirements = found[0]["spec"]["template"]["spec"].get("requirements", [])
        types = next(
            (r.get("values", []) for r in requirements if r.get("key") == CAPACITY_TYPE), ["spot", "on-demand"]
        )
        evidence = f"NodePool {pool} {CAPACITY_TYPE} {types}"
        if "spot" in types:
            return fails(
                f"{evidence}: Spot takes a node back with two minutes' notice and LiteLLM does not retry a stream "
                f"cut mid-flight (FACTS.md); prod sets inference.node_pools.{pool}.capacity_types [on-demand]",
            )
        return passes(evidence)

    def images_by_digest(self) -> Verdict:
        images: dict[str, str] = {}
        for document in self.s.documents:
            for container in _containers(document):
                images[str(container.get("image"))] = f"{document['kind']}/{document['metadata']['name']}"
        loose = sorted(f"{image} ({owner})" for image, owner in images.items() if "@sha256:" not in image)
        if loose:
            return fails(f"by tag only: {'; '.join(loose)}")
        return passes(f"{len(images)} images, each @sha256: {', '.join(sorted(images))}")

    def helm_versions(self) -> Verdict:
        charts = self.s.resources("Custom::AWSCDK-EKS-HelmChart")
        loose = [c.props.get("Chart", c.logical_id) for c in charts if not c.props.get("Version")]
        listed = ", ".join(sorted(f"{c.props.get('Chart')} {c.props.get('Version')}" for c in charts))
        if loose:
            return fails(f"no version for {', '.join(loose)}: each deploy may install a newer chart")
        return passes(f"{listed} (their own images come by the charts' tags)")

    def compliance(self) -> Verdict:
        if self.s.report is None:
            return fails("no dist/compliance-report.md: run `make synth`")
        # compliance/report.py: "## Failed findings (N)" and the platform checks' "failed on ..." outcomes.
        failed_count = re.search(r"^## Failed findings \((\d+)\)", self.s.report, re.MULTILINE)
        acknowledged = re.search(r"^## Acknowledged findings \((\d+)\)", self.s.report, re.MULTILINE)
        platform_failed = re.findall(r"^\| `(Platform-[^`]+)` \|.*\| failed on", self.s.report, re.MULTILINE)
        if failed_count is None:
            return fails("the report has no 'Failed findings' section: regenerate it with `make synth`")
        n = int(failed_count.group(1))
        evidence = (
            f"{n} failed findings, {acknowledged.group(1) if acknowledged else '?'} acknowledged with reasons; "
            f"platform checks failed: {', '.join(platform_failed) or 'none'}"
        )
        return passes_if(n == 0 and not platform_failed, evidence)

    def admin_access(self) -> Verdict:
        # The kubectl provider's own entry names its role with Fn::GetAtt; a person's role ARN is a literal.
        people = [
            str(e.props["PrincipalArn"])
            for e in self.s.resources("AWS::EKS::AccessEntry")
            if isinstance(e.props.get("PrincipalArn"), str)
        ]
        if not people:
            return fails(
                "no access entry for a person (only CDK's kubectl provider has one): nobody can run kubectl; set "
                "cluster.admin_principal_arns",
            )
        return passes(f"cluster admins: {', '.join(people)}")

    def gateway_tls(self) -> Verdict:
        ingresses = self.s.objects("Ingress", "litellm")
        if not ingresses:
            return skipped("no gateway Ingress (gateway.enabled is false)")
        annotations = ingresses[0]["metadata"].get("annotations", {})
        ports = annotations.get("alb.ingress.kubernetes.io/listen-ports", '[{"HTTP": 80}]')
        if "HTTPS" not in ports:
            return fails(
                f"the ALB listens on {ports}: clients send the gateway key across the VPC in clear; set "
                "gateway.certificate_arn",
            )
        return passes(f"the ALB listens on {ports}")

    # --- what only a person can settle ----------------------------------------------------------------------------
    def person_items(self) -> list[tuple[str, Callable[[], Verdict]]]:
        vllm = self.config.inference.vllm
        scaling = self.config.inference.autoscaling
        gpu = self.config.inference.node_pools.gpu
        pool = accelerator_pool(self.config)
        families = ", ".join(gpu.instance_families) if pool == "gpu" else "Neuron"
        # The EC2 quota names for G instances (Neuron inf/trn have their own, e.g. 'Running On-Demand Inf instances').
        quotas = "'Running On-Demand G and VT instances'" if pool == "gpu" else "the Inf/Trn instance quotas"
        if pool == "gpu" and "spot" in gpu.capacity_types:
            quotas += ", 'All G and VT Spot Instance Requests'"

        def person(text: str) -> Callable[[], Verdict]:
            return lambda: for_a_person(text)

        items = [
            (
                "model licence and weights",
                person(
                    f"accept {vllm.model}'s licence for your use, and put the weights in the model bucket "
                    "(README: From `cdk deploy` to a first completion)"
                ),
            ),
            (
                "accelerator quota for the maximum scale",
                person(
                    f"up to {scaling.max_replicas} replicas x {vllm.gpus_per_replica} accelerator on {families}: check "
                    f"the region's EC2 quotas (Service Quotas, in vCPUs: {quotas}) cover it, plus a node being replaced"
                ),
            ),
            (
                "load test at the expected peak",
                person(
                    "run `genai-ops loadtest` at the peak rate through the gateway and judge TTFT p95 against "
                    f"{self.config.observability.alerts.ttft_slo_seconds} s and the scale-up time"
                ),
            ),
            (
                "someone answers the alarms",
                person("who reads the alarm topic's mail, at what hours, and what they do first (a runbook)"),
            ),
            (
                "restore drill",
                person("restore the gateway's Aurora cluster from a snapshot or a point in time once, and time it"),
            ),
            (
                "who holds cluster admin",
                person(
                    "review cluster.admin_principal_arns: "
                    + (", ".join(self.config.cluster.admin_principal_arns) or "(none configured)")
                ),
            ),
        ]
        if self.config.observability.tracing.mode != "off":
            items.append(
                (
                    "prompts and completions in traces",
                    person(
                        f"tracing ({self.config.observability.tracing.mode}) sends every prompt and completion to "
                        "LangFuse: confirm the data may go there and who can read it"
                    ),
                )
            )
        return items


def live_items(config: PlatformConfig, *, region: str | None, **reach: Any) -> list[CheckResult]:
    """`verify`'s checks as readiness items, or one failed item saying why the cluster could not be checked."""
    try:
        # Looked up at call time, so tests that hand verify Stubber-backed clients hand them to readiness too.
        target = open_target(config, verify_command.make_aws_clients(region), **reach)
    except OpsError as error:
        return [fails(str(error)).named("live: cluster reachable")]
    return [CheckResult(f"live: {r.name}", r.status, r.evidence) for r in run_checks(target)]


def readiness(
    env: EnvOption = "dev",
    overrides: OverrideOption = None,
    cdk_json: CdkJsonOption = Path("cdk.json"),
    cdk_out: Annotated[Path, typer.Option("--cdk-out", help="The cloud assembly `make synth` wrote.")] = Path(
        "cdk.out"
    ),
    dist: Annotated[Path, typer.Option("--dist", help="Where `make synth` wrote manifests and the report.")] = Path(
        "dist"
    ),
    live: Annotated[bool, typer.Option("--live", help="Also run `genai-ops verify`'s checks on the cluster.")] = False,
    region: RegionOption = None,
    kubeconfig: KubeconfigOption = None,
    kube_context: KubeContextOption = None,
    tunnel: TunnelOption = None,
    prometheus_url: PrometheusUrlOption = None,
    gateway_url: GatewayUrlOption = None,
    timeout: TimeoutOption = 15.0,
    json_output: JsonOption = False,
) -> None:
    """The production-readiness checklist: each item pass, fail or needs a person, with evidence.

    Read from the synthesized templates and manifests (`make synth ENV=...`), plus verify's checks of the live
    cluster with --live. Exits 1 when an item fails.
    """
    config = load_platform_config(env, overrides or [], cdk_json)
    # A malformed --tunnel is bad input (exit 2), not a live item that failed.
    tunnel = tunnel_url(tunnel) if tunnel is not None else None
    synth = load_synth(config, cdk_out, dist)
    results = Checklist(synth, config).run()
    if live:
        results += live_items(
            config,
            region=region,
            kubeconfig=kubeconfig,
            kube_context=kube_context,
            prometheus_url=prometheus_url,
            gateway_url=gateway_url,
            timeout=timeout,
            tunnel=tunnel,
        )
    if json_output:
        typer.echo(render_json("readiness", results, env=config.env_name, live=live))
    else:
        title = f"genai-ops readiness: {config.prefix} ({'synth and live cluster' if live else 'synth'})"
        render_table(Console(highlight=False), title, results)
        if not live:
            Console(highlight=False).print("Live checks not run: add --live to run `genai-ops verify`'s checks too.")
    if any_failed(results):
        raise typer.Exit(1)
