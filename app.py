#!/usr/bin/env python3
"""Builds the platform from one validated config, applies the compliance packs, and synthesizes.

`cdk synth` runs this file. It also writes every cdk8s chart as plain YAML under `dist/k8s/` and the
compliance report to `dist/compliance-report.md` (the `dist_dir` context key moves both).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import cdk8s
import yaml

from cdk_constructs.manifests import AppliedCharts
from compliance.audit import ComplianceAudit, ComplianceError, audit
from compliance.nag import apply_nag_packs, apply_platform_checks, plugin_names
from compliance.platform_checks import rules_for
from compliance.report import checkov_skips, render_report, resource_types, write_report
from dashboards.grafana import grafana_dashboards
from platform_config import ConfigError, DeliverySettings, PlatformConfig, load_config, load_delivery_settings
from stacks.data import DataStack
from stacks.foundation import FoundationStack
from stacks.gateway import GatewayStack
from stacks.inference import InferenceStack
from stacks.observability import ObservabilityStack
from stacks.tracing import TracingStack


@dataclass
class Platform:
    config: PlatformConfig
    # The App (`cdk deploy --all`) or a Stage of the delivery pipeline: where the stacks live.
    app: cdk.App | cdk.Stage
    k8s_app: cdk8s.App
    charts: AppliedCharts
    foundation: FoundationStack
    data: DataStack
    observability: ObservabilityStack
    inference: InferenceStack
    gateway: GatewayStack | None
    tracing: TracingStack | None = None
    # With the delivery pipeline: the stack of the build that runs `genai-ops verify` after each deploy.
    verification: cdk.Stack | None = None

    @property
    def stacks(self) -> list[cdk.Stack]:
        optional = [stack for stack in (self.gateway, self.tracing, self.verification) if stack]
        return [self.foundation, self.data, self.observability, self.inference, *optional]


def build_platform(app: cdk.App | cdk.Stage, config: PlatformConfig, manifests_dir: Path) -> Platform:
    """Every stack of one environment, on an app (or a pipeline's Stage) whose config has already been validated.

    Each stack's name is `<prefix>-<name>` whether it sits on the App or in a Stage (a Stage would otherwise name it
    `<Stage>-<id>`), so `cdk deploy --all` and the pipeline deploy the same stacks and genai-ops finds them.
    """
    pin_availability_zones(app, config)
    k8s_app = cdk8s.App(outdir=str(manifests_dir), yaml_output_type=cdk8s.YamlOutputType.FILE_PER_CHART)
    env = cdk.Environment(account=config.account, region=config.region) if config.account else None
    common: dict[str, Any] = {"env": env, "termination_protection": config.production}
    charts = AppliedCharts()
    foundation = FoundationStack(
        app,
        f"{config.prefix}-foundation",
        stack_name=f"{config.prefix}-foundation",
        config=config,
        k8s_app=k8s_app,
        description=f"{config.name} GenAI platform ({config.env_name}): network, keys, EKS Auto Mode cluster",
        **common,
    )
    charts.record(foundation.namespaces, foundation)
    charts.record(foundation.storage, foundation)
    charts.record(foundation.features, foundation)
    data = DataStack(
        app,
        f"{config.prefix}-data",
        stack_name=f"{config.prefix}-data",
        config=config,
        foundation=foundation,
        description=f"{config.name} GenAI platform ({config.env_name}): model bucket and its access",
        **common,
    )
    observability = ObservabilityStack(
        app,
        f"{config.prefix}-observability",
        stack_name=f"{config.prefix}-observability",
        config=config,
        foundation=foundation,
        data=data,
        description=f"{config.name} GenAI platform ({config.env_name}): Prometheus, DCGM exporter, CloudWatch",
        **common,
    )
    inference = InferenceStack(
        app,
        f"{config.prefix}-inference",
        stack_name=f"{config.prefix}-inference",
        config=config,
        foundation=foundation,
        data=data,
        observability=observability,
        k8s_app=k8s_app,
        charts=charts,
        description=f"{config.name} GenAI platform ({config.env_name}): node pools, KEDA, vLLM",
        **common,
    )
    # Deployment order: the scaling signal path exists before the ScaledObject that reads it.
    inference.add_stack_dependency(observability)
    gateway = None
    if config.gateway.enabled:
        gateway = GatewayStack(
            app,
            f"{config.prefix}-gateway",
            stack_name=f"{config.prefix}-gateway",
            config=config,
            foundation=foundation,
            observability=observability,
            data=data,
            k8s_app=k8s_app,
            charts=charts,
            langfuse_keys=data.langfuse_gateway_keys.secret if data.langfuse_gateway_keys else None,
            description=f"{config.name} GenAI platform ({config.env_name}): LiteLLM gateway",
            **common,
        )
        gateway.add_stack_dependency(inference)
    tracing = None
    if config.observability.tracing.mode == "self-hosted":
        assert gateway is not None, "config validation requires the gateway for self-hosted tracing"
        tracing = TracingStack(
            app,
            f"{config.prefix}-tracing",
            stack_name=f"{config.prefix}-tracing",
            config=config,
            foundation=foundation,
            data=data,
            external_secrets=gateway.external_secrets,
            k8s_app=k8s_app,
            charts=charts,
            description=f"{config.name} GenAI platform ({config.env_name}): self-hosted LangFuse tracing",
            **common,
        )
        # After the gateway: its External Secrets Operator brings LangFuse's credentials into the cluster.
        tracing.add_stack_dependency(gateway)
    platform = Platform(config, app, k8s_app, charts, foundation, data, observability, inference, gateway, tracing)
    # Once, on the stack that holds the cluster the warnings are about.
    for warning in config.warnings():
        cdk.Annotations.of(foundation).add_warning_v2("platform:config", warning)
    tags = {"project": config.name, "environment": config.env_name, **config.tags}
    for key, value in tags.items():
        # On the App or the Stage: tags added to an App do not reach the stacks inside a Stage.
        cdk.Tags.of(app).add(key, value)
    # The platform's own checks see this environment's templates with its production flag (a Stage's plugins see
    # only that Stage's stacks). cdk-nag's packs are registered once on the App: a pack registered on the App and
    # on a Stage reports every finding twice, and the App's packs already check every Stage's stacks.
    if isinstance(app, cdk.App):
        apply_nag_packs(app)
    apply_platform_checks(app, production=config.production)
    return platform


def pin_availability_zones(app: cdk.App | cdk.Stage, config: PlatformConfig) -> None:
    """A stack pinned to an account/region asks for its AZs through a context lookup, which needs AWS
    credentials at synth. Pre-filling that context key from config keeps synth offline."""
    if config.account and config.region:
        key = f"availability-zones:account={config.account}:region={config.region}"
        app.node.set_context(key, list(config.availability_zones))


def write_manifests(platform: Platform, manifests_dir: Path) -> None:
    """Replace the YAML under manifests_dir with this synth's charts (no stale charts left behind).

    Values known only at deploy time (a key ARN, a bucket name) are tokens in a chart; in the files
    they are shown as the CloudFormation expression the applying stack resolves them to.
    """
    if manifests_dir.exists():
        shutil.rmtree(manifests_dir)
    platform.k8s_app.synth()
    for chart, stack in platform.charts.entries:
        path = manifests_dir / f"{chart.node.id}.k8s.yaml"
        text = path.read_text(encoding="utf-8")
        path.write_text(manifest_header(platform.config, stack) + render_deploy_time_values(text, stack), "utf-8")


class _BlockStrings(yaml.SafeDumper):
    """Multi-line strings (PromQL with `and`) as YAML block literals, as a person would write them."""


_BlockStrings.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def write_alerting_rules(platform: Platform, directory: Path) -> Path:
    """The Prometheus rule file the observability stack loads, for review and for promtool."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "alerting_rules.yml"
    header = (
        f"# Environment {platform.config.env_name}: the alerting rules the in-cluster Prometheus loads (Helm value\n"
        f"# serverFiles.alerting_rules.yml of the stack {platform.observability.stack_name}).\n"
    )
    body = yaml.dump(
        {"groups": platform.observability.alerting_rule_groups}, Dumper=_BlockStrings, sort_keys=False, width=120
    )
    path.write_text(header + body, encoding="utf-8")
    return path


def write_dashboards(platform: Platform, directory: Path) -> list[Path]:
    """The Grafana dashboards (dashboards/grafana.py) as JSON models to import, one file each; the folder is
    replaced so a dashboard the config no longer builds (the gateway's, when it is off) leaves no stale file."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    paths = []
    for name, model in grafana_dashboards(platform.config).items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(model, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def manifest_header(config: PlatformConfig, stack: cdk.Stack) -> str:
    """What a file in dist/k8s/ is: a review copy of one chart for one environment, not something to apply."""
    return (
        f"# Environment {config.env_name} ({config.prefix}), applied by the stack {stack.stack_name} through\n"
        "# `cdk deploy`. A review artifact: values shown as <deploy-time {...}> are CloudFormation expressions\n"
        "# resolved at deploy time, so this file cannot be applied with kubectl as it is.\n"
    )


_TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")


def render_deploy_time_values(text: str, stack: cdk.Stack) -> str:
    """Replace each token with `<deploy-time EXPRESSION>`, the CloudFormation expression `stack` gives it."""

    def expression(match: re.Match[str]) -> str:
        return "<deploy-time " + json.dumps(stack.resolve(match.group(0)), separators=(",", ":")) + ">"

    return _TOKEN.sub(expression, text)


def synthesize(platform: Platform, dist: Path) -> ComplianceAudit:
    """Synthesize the cloud assembly, check its acknowledgments, then write dist/k8s and the report.

    Raises ComplianceError (before anything is written to `dist`) when an acknowledgment is stale or
    misplaced; the assembly CDK wrote stays for inspection, its validation report included.
    """
    assembly_dir = Path(platform.app.synth().directory)
    findings = audit(platform.app, assembly_dir, plugin_names())
    findings.check()
    write_environment(platform, findings, assembly_dir, dist)
    return findings


def write_environment(platform: Platform, findings: ComplianceAudit, assembly_dir: Path, out: Path) -> None:
    """One environment's review files under `out`: manifests, alerting rules, dashboards, compliance report.

    `assembly_dir` holds the environment's templates (the cloud assembly, or a Stage's nested assembly).
    """
    write_manifests(platform, out / "k8s")
    write_alerting_rules(platform, out / "prometheus")
    write_dashboards(platform, out / "grafana")
    report = render_report(
        platform.config.env_name,
        findings,
        [stack.node.path for stack in platform.stacks],
        rules_for(platform.config.production),
        checkov_skips(assembly_dir),
        resource_types(assembly_dir),
    )
    write_report(out / "compliance-report.md", report)


@dataclass
class Delivery:
    """The pipeline stack and the environments it deploys, one Stage each, in order."""

    settings: DeliverySettings
    stack: cdk.Stack
    platforms: list[Platform]
    # Per environment, the role the pipeline starts its verify build with; deployed before the pipeline stack.
    access: Sequence[cdk.Stack]


def build_delivery(app: cdk.App, context: Mapping[str, Any], dist: Path) -> Delivery | None:
    """With `delivery.pipeline` on: the pipeline stack, and each listed environment in a Stage it deploys.

    Raises ConfigError (before anything is built) for bad delivery settings, an environment cdk.json does not
    define, or one without an explicit account and region (the pipeline deploys across environments).
    """
    settings = load_delivery_settings(context)
    if not settings.pipeline:
        return None
    configs = [load_config({**context, "env": env}) for env in settings.environments]
    unpinned = [config.env_name for config in configs if not (config.account and config.region)]
    if unpinned:
        raise ConfigError(
            f"delivery.environments: {', '.join(unpinned)} set no account and region; the pipeline deploys each "
            "environment to an explicit one: set `account` and `region` in its cdk.json environment"
        )
    # Imported here: `cdk deploy --all` without the pipeline needs none of it.
    from cdk_constructs.pipeline_identity import PipelineIdentity
    from stacks.delivery import DeliveryStack
    from stacks.verification import VerificationStack, VerifyAccessStack

    identity = PipelineIdentity.of(settings, configs[0].name)
    stack = DeliveryStack(
        app,
        identity.stack_name,
        settings=settings,
        identity=identity,
        environments=configs,
        env=cdk.Environment(account=identity.account, region=identity.region),
        termination_protection=any(config.production for config in configs),
        description=f"{configs[0].name} GenAI platform: the delivery pipeline ({' -> '.join(settings.environments)})",
    )
    platforms, access = [], []
    for config in configs:
        environment = cdk.Environment(account=config.account, region=config.region)
        access.append(
            VerifyAccessStack(
                app,
                f"{config.prefix}-verify-access",
                stack_name=f"{config.prefix}-verify-access",
                config=config,
                identity=identity,
                env=environment,
                description=f"{config.name} GenAI platform ({config.env_name}): the role the pipeline starts the "
                "verify build with",
            )
        )
        # CodePipeline refuses a pipeline whose role cannot assume an action's role: it must exist first.
        stack.add_dependency(access[-1])
        stage = cdk.Stage(app, config.env_name, env=environment)
        platform = build_platform(stage, config, dist / config.env_name / "k8s")
        platform.verification = VerificationStack(
            stage,
            f"{config.prefix}-verify",
            stack_name=f"{config.prefix}-verify",
            config=config,
            platform=platform,
            identity=identity,
            env=cdk.Environment(account=config.account, region=config.region),
            termination_protection=config.production,
            description=f"{config.name} GenAI platform ({config.env_name}): the pipeline's post-deploy verification",
        )
        stack.add_environment(stage, config, platform.verification)
        platforms.append(platform)
    stack.finish()
    apply_nag_packs(app)
    return Delivery(settings, stack, platforms, access)


def synthesize_delivery(delivery: Delivery, app: cdk.App, dist: Path) -> ComplianceAudit:
    """Synthesize the pipeline and every Stage once; each environment's files and report go to dist/<env>/."""
    assembly_dir = Path(app.synth().directory)
    findings = audit(app, assembly_dir, plugin_names())
    findings.check()
    for platform in delivery.platforms:
        stage = platform.app
        assert isinstance(stage, cdk.Stage)
        write_environment(
            platform, findings.within(stage.node.path), Path(str(stage.outdir)), dist / platform.config.env_name
        )
    # The App's own stacks: the pipeline and each environment's verify-access stack.
    top = [delivery.stack, *delivery.access]
    scoped = [findings.within(stack.node.path) for stack in top]
    report = render_report(
        "delivery pipeline",
        ComplianceAudit(
            failed=[f for audit_ in scoped for f in audit_.failed],
            acknowledged=[f for audit_ in scoped for f in audit_.acknowledged],
            acknowledgments=[a for audit_ in scoped for a in audit_.acknowledgments],
        ),
        [stack.node.path for stack in top],
        (),
        [
            skip
            for skip in checkov_skips(assembly_dir)
            if any(skip.template.startswith(f"{stack.artifact_id}.") for stack in top)
        ],
        resource_types(assembly_dir),
    )
    write_report(dist / "delivery" / "compliance-report.md", report)
    return findings


def main() -> int:
    app = cdk.App()
    context = app.node.get_all_context()
    dist = Path(str(app.node.try_get_context("dist_dir") or "dist"))
    try:
        delivery = build_delivery(app, context, dist)
        config = None if delivery else load_config(context)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        if delivery:
            synthesize_delivery(delivery, app, dist)
        else:
            assert config is not None
            synthesize(build_platform(app, config, dist / "k8s"), dist)
    except ComplianceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
