#!/usr/bin/env python3
"""Builds the platform from one validated config, applies the compliance packs, and synthesizes.

`cdk synth` runs this file. It also writes every cdk8s chart as plain YAML under `dist/k8s/` and the
compliance report to `dist/compliance-report.md` (the `dist_dir` context key moves both).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import cdk8s

from compliance.nag import apply_compliance
from compliance.report import write_report
from platform_config import ConfigError, PlatformConfig, load_config
from stacks.foundation import FoundationStack


@dataclass
class Platform:
    config: PlatformConfig
    app: cdk.App
    k8s_app: cdk8s.App
    foundation: FoundationStack


def build_platform(app: cdk.App, config: PlatformConfig, manifests_dir: Path) -> Platform:
    """Every stack of one environment, on an app whose config has already been validated."""
    pin_availability_zones(app, config)
    k8s_app = cdk8s.App(outdir=str(manifests_dir), yaml_output_type=cdk8s.YamlOutputType.FILE_PER_CHART)
    env = cdk.Environment(account=config.account, region=config.region) if config.account else None
    foundation = FoundationStack(
        app,
        f"{config.prefix}-foundation",
        config=config,
        k8s_app=k8s_app,
        env=env,
        description=f"{config.name} GenAI platform ({config.env_name}): network, keys, EKS Auto Mode cluster",
        termination_protection=config.production,
    )
    for stack in (foundation,):
        for warning in config.warnings():
            cdk.Annotations.of(stack).add_warning_v2("platform:config", warning)
    tags = {"project": config.name, "environment": config.env_name, **config.tags}
    for key, value in tags.items():
        cdk.Tags.of(app).add(key, value)
    apply_compliance(app, production=config.production)
    return Platform(config=config, app=app, k8s_app=k8s_app, foundation=foundation)


def pin_availability_zones(app: cdk.App, config: PlatformConfig) -> None:
    """A stack pinned to an account/region asks for its AZs through a context lookup, which needs AWS
    credentials at synth. Pre-filling that context key from config keeps synth offline."""
    if config.account and config.region:
        key = f"availability-zones:account={config.account}:region={config.region}"
        app.node.set_context(key, list(config.availability_zones))


def write_manifests(k8s_app: cdk8s.App, manifests_dir: Path) -> None:
    """Replace the YAML under manifests_dir with this synth's charts (no stale charts left behind)."""
    if manifests_dir.exists():
        shutil.rmtree(manifests_dir)
    k8s_app.synth()


def main() -> int:
    app = cdk.App()
    try:
        config = load_config(app.node.get_all_context())
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for warning in config.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    dist = Path(str(app.node.try_get_context("dist_dir") or "dist"))
    platform = build_platform(app, config, dist / "k8s")
    app.synth()
    write_manifests(platform.k8s_app, dist / "k8s")
    write_report(app, config.env_name, dist / "compliance-report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
