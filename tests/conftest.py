"""Shared fixtures. Every app synth goes through the jsii runtime (~5-10 s on 2 cores), so each
environment is synthesized once per session and many tests assert on it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import cdk8s
import pytest
import yaml
from aws_cdk.assertions import Template

from app import Platform, build_platform
from app import synthesize as synthesize_platform
from compliance.audit import ComplianceAudit
from platform_config import PlatformConfig, cdk_json_context, load_config

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
ROOT = Path(__file__).resolve().parent.parent
# The configuration the tests prove things about: the project's cdk.json as shipped. A deployment's own values
# (accounts, regions, admin roles, networks, the delivery settings) go into the project's cdk.json, which the
# delivery pipeline runs `make test` against; the tests read this copy so those values do not change what they
# prove (tests/test_config.py checks the copy still agrees with cdk.json on everything else).
PROJECT_CDK_JSON = ROOT / "tests" / "cdk.reference.json"


def context_for(env: str = "dev", **overrides: Any) -> dict[str, Any]:
    """The shipped cdk.json's context plus `-c` style overrides, as `cdk synth` would hand it to the app."""
    return {**cdk_json_context(PROJECT_CDK_JSON), "env": env, **overrides}


def config_for(env: str = "dev", **overrides: Any) -> PlatformConfig:
    return load_config(context_for(env, **overrides))


@dataclass
class Synthesized:
    platform: Platform
    outdir: Path
    template: Template
    manifests_dir: Path
    audit: ComplianceAudit

    @property
    def config(self) -> PlatformConfig:
        return self.platform.config

    def template_json(self) -> dict[str, Any]:
        return dict(self.template.to_json())

    def stack_json(self, stack: str) -> dict[str, Any]:
        """The synthesized template of one stack: foundation, data, observability or inference."""
        path = self.outdir / f"{self.config.prefix}-{stack}.template.json"
        template: dict[str, Any] = json.loads(path.read_text())
        return template

    def documents(self) -> list[dict[str, Any]]:
        """Every object of every chart written to the manifests folder."""
        docs: list[dict[str, Any]] = []
        for path in sorted(self.manifests_dir.glob("*.yaml")):
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
        return docs

    def find(self, kind: str, name: str | None = None) -> list[dict[str, Any]]:
        return [d for d in self.documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        (doc,) = self.find(kind, name)
        return doc

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))

    def cloud_assembly_manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.outdir / "manifest.json").read_text())
        return manifest


def synthesize(tmp: Path, env: str = "dev", **overrides: Any) -> Synthesized:
    """Build and synthesize one environment exactly as app.py does, into `tmp`."""
    context = context_for(env, **overrides)
    # The CDK CLI turns construct-path metadata on; tests find resources by path, so do the same.
    app = cdk.App(context={**context, "aws:cdk:enable-path-metadata": True}, outdir=str(tmp / "cdk.out"))
    platform = build_platform(app, load_config(context), tmp / "k8s")
    audit = synthesize_platform(platform, tmp)
    template = Template.from_stack(platform.foundation)
    return Synthesized(platform, tmp / "cdk.out", template, tmp / "k8s", audit)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("dev"), "dev")


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("prod"), "prod")


@pytest.fixture(scope="session", params=["dev", "prod"])
def each_env(request: pytest.FixtureRequest, dev: Synthesized, prod: Synthesized) -> Synthesized:
    return {"dev": dev, "prod": prod}[request.param]


def cfn_text(value: Any) -> str:
    """A template string value with deploy-time parts shown as placeholders: `Fn::Join` joined, `Ref X` as
    `<Ref X>`, `Fn::GetAtt [X, A]` as `<X.A>`, so a Helm chart's `Values` (JSON holding a workspace URL or
    key ARN) can be parsed and compared."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(cfn_text(part) for part in parts)
        if function == "Ref":
            return f"<Ref {argument}>"
        if function == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
        if function == "Fn::GetStackOutput":
            return f"<{cfn_text(argument['StackName'])}.{argument['OutputName']}>"
        if function == "Fn::ImportValue":
            return f"<import {cfn_text(argument)}>"
    raise ValueError(f"not a string expression this helper renders: {value!r}")


def helm_values(values: Any) -> dict[str, Any]:
    """The values of a `Custom::AWSCDK-EKS-HelmChart`, parsed (see `cfn_text`)."""
    parsed: dict[str, Any] = json.loads(cfn_text(values))
    return parsed


def resources_of(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def only(items: dict[str, Any]) -> Any:
    assert len(items) == 1, f"expected exactly one, found {sorted(items)}"
    return next(iter(items.values()))


@pytest.fixture
def synth_in(tmp_path: Path) -> Callable[..., Synthesized]:
    """Synthesize a one-off variant (costs a jsii synth: use sparingly)."""
    return lambda env="dev", **overrides: synthesize(tmp_path, env, **overrides)


def download_job_documents(token_secret: str = "genai/hf-token") -> list[dict[str, Any]]:
    """The model download Job as the inference stack wires it (stacks/inference.py), rendered by cdk8s alone:
    dev creates no Job, and a full synth with one costs half a minute."""
    import cdk8s

    from k8s.model_download import DownloadWiring, ModelDownloadJob

    config = config_for(
        "dev",
        **{"inference.model_store.download_job": "true", "inference.model_store.hf_token_secret_name": token_secret},
    )
    chart = cdk8s.Chart(cdk8s.App(), "model-download")
    ModelDownloadJob(
        chart,
        "download",
        wiring=DownloadWiring(
            namespace="inference",
            service_account="model-downloader",
            model=config.inference.vllm.model,
            destination_uri="s3://bucket/models/meta-llama/Llama-3.1-8B-Instruct",
            hf_token_secret_name=token_secret,
            aws_region="us-west-2",
            tools_image=config.inference.model_store.tools_image,
            python_image=config.inference.vllm.image,
        ),
        labels={},
    )
    return [dict(doc) for doc in chart.to_json()]


def gateway_chart_documents(**overrides: Any) -> list[dict[str, Any]]:
    """The gateway chart alone for dev's config with `overrides`, wired as stacks/gateway.py wires it (deploy-time
    values replaced by stand-ins): for a gateway configuration the session's synths do not use."""
    from k8s.gateway import GatewayChart, GatewaySecrets, GatewayWiring

    chart = GatewayChart(
        cdk8s.App(),
        "gateway",
        settings=config_for("dev", **overrides).gateway,
        wiring=GatewayWiring(
            namespace="gateway",
            service_account="litellm",
            served_model_name="llama-3.1-8b-instruct",
            vllm_url="http://vllm.inference.svc.cluster.local:8000/v1",
            vllm_namespace="inference",
            metrics_namespace="observability",
            prometheus_url="http://prometheus-server.observability.svc.cluster.local:80",
            vpc_cidr="10.0.0.0/16",
            secrets=GatewaySecrets(
                region="us-west-2",
                master_key_arn="arn:master",
                salt_key_arn="arn:salt",
                database_secret_arn="arn:db",
                database_host="db.example",
                cache_secret_arn="arn:cache",
                cache_host="cache.example",
            ),
        ),
        labels={},
    )
    return [dict(doc) for doc in chart.to_json()]
