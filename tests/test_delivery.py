"""The delivery pipeline (`-c delivery.pipeline=true`): one synth of the pipeline stack with dev and prod Stages, dev
in the pipeline's account and prod in another, exactly as app.py's `build_delivery` and `synthesize_delivery` do."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from app import build_delivery, synthesize_delivery
from cdk_constructs.pipeline_identity import PipelineIdentity
from compliance.audit import ComplianceAudit
from platform_config import ConfigError, load_config, load_delivery_settings
from stacks.delivery import DeliveryStack, package_json_pin
from tests.checkov_runner import run_checkov
from tests.conftest import ROOT, Synthesized, context_for, only, resources_of

PIPELINE_ACCOUNT = "111111111111"
PROD_ACCOUNT = "222222222222"
REGION = "us-west-2"
CONNECTION = f"arn:aws:codeconnections:{REGION}:{PIPELINE_ACCOUNT}:connection/0123abcd-0123-4567-89ab-0123456789ab"
PIPELINE_STACK = "genai-delivery"
ENVIRONMENTS = ("dev", "prod")
# The README's checks and the pipeline-on synth, in this order (README "make test"; issue 12).
PIPELINE_SYNTH = 'make synth ARGS="-c delivery.pipeline=true"'


def _pinned(settings: dict[str, Any], account: str, zones: int) -> dict[str, Any]:
    return {
        **settings,
        "account": account,
        "region": REGION,
        "availability_zones": [f"{REGION}{z}" for z in "abc"[:zones]],
    }


def delivery_context(*, platforms: dict[str, dict[str, Any]] | None = None, **delivery: Any) -> dict[str, Any]:
    """cdk.json's context with dev pinned to the pipeline's account, prod to another, and the pipeline on;
    `platforms` replaces cdk.json's environments, `delivery` overrides delivery settings."""
    base = context_for("dev")
    defined = base["environments"]
    pinned = {
        "dev": _pinned(defined["dev"], PIPELINE_ACCOUNT, 2),
        # prod's cdk.json settings ask for 3 AZs (vpc.max_azs).
        "prod": _pinned(defined["prod"], PROD_ACCOUNT, 3),
    }
    settings = {
        "pipeline": True,
        "connection_arn": CONNECTION,
        "repository": "acme/genai-platform",
        "branch": "main",
        "account": PIPELINE_ACCOUNT,
        "region": REGION,
        **delivery,
    }
    return {**base, "environments": pinned if platforms is None else platforms, "delivery": settings}


@dataclass
class PipelineSynth:
    outdir: Path
    dist: Path
    audit: ComplianceAudit

    @property
    def template(self) -> dict[str, Any]:
        template: dict[str, Any] = json.loads((self.outdir / f"{PIPELINE_STACK}.template.json").read_text())
        return template

    def stage_manifest(self, env: str) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.outdir / f"assembly-{env}" / "manifest.json").read_text())
        return manifest

    def pipeline(self) -> dict[str, Any]:
        pipeline: dict[str, Any] = only(resources_of(self.template, "AWS::CodePipeline::Pipeline"))["Properties"]
        return pipeline

    def stage(self, name: str) -> list[dict[str, Any]]:
        (stage,) = [s for s in self.pipeline()["Stages"] if s["Name"] == name]
        actions: list[dict[str, Any]] = stage["Actions"]
        return actions

    def resource(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return resource


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> PipelineSynth:
    tmp = tmp_path_factory.mktemp("delivery")
    context = delivery_context()
    app = cdk.App(context={**context, "aws:cdk:enable-path-metadata": True}, outdir=str(tmp / "cdk.out"))
    built = build_delivery(app, context, tmp / "dist")
    assert built is not None
    # Raises if cdk-nag reports an unacknowledged error, or an acknowledgment is stale or misplaced.
    audit = synthesize_delivery(built, app, tmp / "dist")
    return PipelineSynth(tmp / "cdk.out", tmp / "dist", audit)


def _provider(action: dict[str, Any]) -> str:
    return str(action["ActionTypeId"]["Provider"])


def _cloudformation(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in actions if _provider(a) == "CloudFormation"]


def _executes(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in _cloudformation(actions) if a["Configuration"]["ActionMode"] == "CHANGE_SET_EXECUTE"]


def _approvals(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in actions if a["ActionTypeId"]["Category"] == "Approval"]


def _codebuild(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in actions if _provider(a) == "CodeBuild"]


# --- order: stages, approval, verification ---------------------------------------------------------------------


def test_stages_run_source_build_self_update_assets_then_each_environment_in_order(delivery: PipelineSynth) -> None:
    names = [stage["Name"] for stage in delivery.pipeline()["Stages"]]
    # Assets appears only when the app has file assets (the platform's Lambda bundles): then between the two.
    assert [n for n in names if n != "Assets"] == ["Source", "Build", "UpdatePipeline", "dev", "prod"]
    if "Assets" in names:
        assert names.index("Assets") == names.index("UpdatePipeline") + 1


def test_prod_cannot_deploy_before_its_approval(delivery: PipelineSynth) -> None:
    actions = delivery.stage("prod")
    (approval,) = _approvals(actions)
    assert approval["ActionTypeId"]["Provider"] == "Manual"
    assert _cloudformation(actions)
    # CodePipeline starts an action only after every action of a lower RunOrder in its stage succeeded (CodePipeline
    # User Guide, pipeline structure reference).
    assert approval["RunOrder"] < min(a["RunOrder"] for a in _cloudformation(actions))


def test_dev_is_not_production_and_waits_for_no_approval(delivery: PipelineSynth) -> None:
    assert _approvals(delivery.stage("dev")) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_verification_runs_after_every_deploy_of_its_environment(delivery: PipelineSynth, env: str) -> None:
    actions = delivery.stage(env)
    (verify,) = _codebuild(actions)
    assert _executes(actions)
    assert verify["RunOrder"] > max(a["RunOrder"] for a in _executes(actions))
    account = {"dev": PIPELINE_ACCOUNT, "prod": PROD_ACCOUNT}[env]
    # By name and ARN in the environment's account, never a reference across the Stage.
    assert verify["Configuration"]["ProjectName"] == f"genai-{env}-verify"
    assert verify["RoleArn"] == f"arn:aws:iam::{account}:role/genai-{env}-verify-action"
    # The repository, which holds genai-ops; a cross-account CodeBuild action may have no outputs (aws-cdk#4169).
    (source,) = delivery.stage("Source")
    assert [i["Name"] for i in verify["InputArtifacts"]] == [o["Name"] for o in source["OutputArtifacts"]]
    assert "OutputArtifacts" not in verify or verify["OutputArtifacts"] == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_deployed_stack_is_named_prefix_dash_name(delivery: PipelineSynth, env: str) -> None:
    deployed = {a["Configuration"]["StackName"] for a in _cloudformation(delivery.stage(env))}
    assert deployed, f"the {env} stage deploys nothing"
    assert all(re.fullmatch(rf"genai-{env}-[a-z]+", name) for name in deployed), deployed
    staged = {
        artifact["properties"]["stackName"]
        for artifact in delivery.stage_manifest(env)["artifacts"].values()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert deployed == staged
    assert {f"genai-{env}-foundation", f"genai-{env}-verify"} <= deployed


def test_every_role_an_action_names_is_made_by_a_stack_deployed_before_the_pipeline(delivery: PipelineSynth) -> None:
    # CodePipeline checks on create and update that its role may assume each action's role (InvalidStructureException
    # otherwise): a role an action names by ARN must come from a stack the pipeline stack depends on.
    manifest = json.loads((delivery.outdir / "manifest.json").read_text())
    before = manifest["artifacts"][PIPELINE_STACK].get("dependencies", [])
    made_before: set[str] = set()
    for artifact in before:
        properties = manifest["artifacts"][artifact].get("properties", {})
        template_file = properties.get("templateFile")
        if template_file:
            template = json.loads((delivery.outdir / template_file).read_text())
            made_before |= {
                str(r["Properties"].get("RoleName"))
                for r in resources_of(template, "AWS::IAM::Role").values()
                if r["Properties"].get("RoleName")
            }
    named = [
        action["RoleArn"]
        for stage in delivery.pipeline()["Stages"]
        for action in stage["Actions"]
        if isinstance(action.get("RoleArn"), str)
    ]
    assert named, "the Verify actions name their roles by ARN"
    for arn in named:
        assert arn.rsplit("/", 1)[1] in made_before, f"{arn} is made by no stack deployed before the pipeline"


def test_the_pipeline_role_may_assume_each_environments_verification_action_role(delivery: PipelineSynth) -> None:
    pipeline = delivery.pipeline()
    role = delivery.resource(pipeline["RoleArn"]["Fn::GetAtt"][0])
    assert role["Properties"]["RoleName"] == "genai-delivery-pipeline"
    assumed = [
        resource
        for policy in resources_of(delivery.template, "AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": pipeline["RoleArn"]["Fn::GetAtt"][0]}]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "sts:AssumeRole"
        for resource in statement["Resource"]
    ]
    assert f"arn:aws:iam::{PIPELINE_ACCOUNT}:role/genai-dev-verify-action" in assumed
    assert f"arn:aws:iam::{PROD_ACCOUNT}:role/genai-prod-verify-action" in assumed
    assert pipeline["Name"] == "genai-delivery"
    assert pipeline["PipelineType"] == "V2"


# --- the artifact store ----------------------------------------------------------------------------------------


def _artifact_bucket(delivery: PipelineSynth) -> tuple[str, dict[str, Any]]:
    store = delivery.pipeline()["ArtifactStore"]
    logical_id = store["Location"]["Ref"]
    return logical_id, delivery.resource(logical_id)["Properties"]


def _artifact_key_id(delivery: PipelineSynth) -> str:
    store = delivery.pipeline()["ArtifactStore"]
    assert store["EncryptionKey"]["Type"] == "KMS"
    key_id: str = store["EncryptionKey"]["Id"]["Fn::GetAtt"][0]
    return key_id


def test_artifact_bucket_is_kms_encrypted_with_a_rotated_key_tls_only_versioned_and_logged(
    delivery: PipelineSynth,
) -> None:
    logical_id, bucket = _artifact_bucket(delivery)
    assert bucket["BucketName"] == f"genai-artifacts-{PIPELINE_ACCOUNT}-{REGION}"
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key_id = _artifact_key_id(delivery)
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": [key_id, "Arn"]}
    # No S3 Bucket Key: with one, S3 asks KMS with the bucket's ARN as encryption context instead of the object's
    # (S3 User Guide, bucket-key), and the verify build role's decrypt grant, scoped to object ARNs
    # (tests/test_verification_stack.py), would be refused on its first download of the source artifact.
    assert rule["BucketKeyEnabled"] is False
    assert delivery.resource(key_id)["Properties"]["EnableKeyRotation"] is True
    aliases = [a["Properties"] for a in resources_of(delivery.template, "AWS::KMS::Alias").values()]
    assert {"AliasName": "alias/genai/delivery-artifacts", "TargetKeyId": {"Fn::GetAtt": [key_id, "Arn"]}} in aliases
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    log_bucket = bucket["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
    assert delivery.resource(log_bucket)["Type"] == "AWS::S3::Bucket"
    (policy,) = [
        p["Properties"]
        for p in resources_of(delivery.template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": logical_id}
    ]
    assert {
        "Action": "s3:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": [
            {"Fn::GetAtt": [logical_id, "Arn"]},
            {"Fn::Join": ["", [{"Fn::GetAtt": [logical_id, "Arn"]}, "/*"]]},
        ],
    } in policy["PolicyDocument"]["Statement"]


def _bucket_and_key_statements(delivery: PipelineSynth) -> Iterator[dict[str, Any]]:
    logical_id, _ = _artifact_bucket(delivery)
    for policy in resources_of(delivery.template, "AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": logical_id}:
            yield from policy["Properties"]["PolicyDocument"]["Statement"]
    yield from delivery.resource(_artifact_key_id(delivery))["Properties"]["KeyPolicy"]["Statement"]


def test_prods_verification_build_role_may_read_artifacts_through_its_account_not_a_principal_arn(
    delivery: PipelineSynth,
) -> None:
    statements = list(_bucket_and_key_statements(delivery))
    build_role = f"arn:aws:iam::{PROD_ACCOUNT}:role/genai-prod-verify-build"
    granted = [s for s in statements if s.get("Condition") == {"ArnEquals": {"aws:PrincipalArn": build_role}}]
    # One in the bucket policy, one in the key policy, both to the account (a role that does not exist yet would
    # make S3 and KMS refuse the policy: the pipeline deploys before prod's verification stack).
    assert len(granted) == 2
    assert all(s["Principal"] == {"AWS": f"arn:aws:iam::{PROD_ACCOUNT}:root"} for s in granted)
    assert any("kms:Decrypt" in s["Action"] for s in granted)
    assert any("s3:GetObject*" in s["Action"] for s in granted)
    assert build_role not in json.dumps([s["Principal"] for s in statements if "Principal" in s])
    # dev's build role is in the pipeline's own account: its identity policy is enough, no resource policy names it.
    assert "genai-dev-verify-build" not in json.dumps(statements)


def test_cdk_pipelines_lets_prods_bootstrap_deploy_role_read_the_artifacts(delivery: PipelineSynth) -> None:
    # CloudFormation actions in prod run as prod's bootstrap deploy role (`cdk bootstrap --trust`), which reads the
    # cloud assembly from this bucket.
    text = json.dumps(list(_bucket_and_key_statements(delivery)))
    assert f":iam::{PROD_ACCOUNT}:role/cdk-hnb659fds-deploy-role-{PROD_ACCOUNT}-{REGION}" in text


# --- CodeBuild ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StandardImage:
    """A CodeBuild standard image: its Ubuntu release (aws/aws-codebuild-docker-images ubuntu/standard/<v>/Dockerfile,
    `FROM public.ecr.aws/ubuntu/ubuntu:<release>`), the (major, minor) of that release's `prometheus` package, and the
    versions its runtimes.yml offers for `runtime-versions`."""

    ubuntu: str
    prometheus: tuple[int, int]
    python: frozenset[str]
    nodejs: frozenset[str]


STANDARD_IMAGES = {
    # jammy-updates prometheus 2.31.2+ds1-1ubuntu1.22.04.x
    "aws/codebuild/standard:7.0": StandardImage(
        "22.04",
        (2, 31),
        frozenset({"3.9", "3.10", "3.11", "3.12", "3.13", "3.14"}),
        frozenset({"18", "20", "22", "24"}),
    ),
    # noble-updates prometheus 2.45.3+ds-2ubuntu0.x
    "aws/codebuild/standard:8.0": StandardImage(
        "24.04", (2, 45), frozenset({"3.10", "3.11", "3.12", "3.13", "3.14"}), frozenset({"22", "24"})
    ),
}


def test_every_codebuild_project_is_unprivileged_and_encrypted_with_the_artifact_key(delivery: PipelineSynth) -> None:
    projects = resources_of(delivery.template, "AWS::CodeBuild::Project")
    assert len(projects) >= 3  # synth, self-mutation, file assets
    key = {"Fn::GetAtt": [_artifact_key_id(delivery), "Arn"]}
    for name, project in projects.items():
        environment = project["Properties"]["Environment"]
        assert environment["PrivilegedMode"] is False, name
        assert environment["Image"] == "aws/codebuild/standard:8.0", name
        assert project["Properties"]["EncryptionKey"] == key, name


def _required_prometheus() -> tuple[int, int]:
    """The oldest Prometheus `make test` accepts (scripts/ensure-prometheus.sh MIN_MAJOR, MIN_MINOR)."""
    script = (ROOT / "scripts" / "ensure-prometheus.sh").read_text()
    major = re.search(r"^MIN_MAJOR=(\d+)$", script, re.MULTILINE)
    minor = re.search(r"^MIN_MINOR=(\d+)$", script, re.MULTILINE)
    assert major, "scripts/ensure-prometheus.sh no longer states MIN_MAJOR"
    assert minor, "scripts/ensure-prometheus.sh no longer states MIN_MINOR"
    return int(major.group(1)), int(minor.group(1))


def test_the_synth_image_ships_a_prometheus_make_test_accepts(delivery: PipelineSynth) -> None:
    # The synth step runs `make test`, which installs Debian/Ubuntu's `prometheus` package as root and refuses one
    # older than it needs: on standard:7.0 (Ubuntu 22.04, Prometheus 2.31) the first pipeline run would stop there.
    (synth,) = delivery.stage("Build")
    image = _project_of(delivery, synth)["Properties"]["Environment"]["Image"]
    required = _required_prometheus()
    assert required == (2, 40)
    assert STANDARD_IMAGES[image].prometheus >= required
    assert STANDARD_IMAGES["aws/codebuild/standard:7.0"].prometheus < required


def _buildspec(project: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(project["Properties"]["Source"]["BuildSpec"])
    return spec


def _project_of(delivery: PipelineSynth, action: dict[str, Any]) -> dict[str, Any]:
    return delivery.resource(action["Configuration"]["ProjectName"]["Ref"])


def test_synth_step_runs_the_checks_then_the_pipeline_on_synth_on_a_bigger_machine(delivery: PipelineSynth) -> None:
    (synth,) = delivery.stage("Build")
    project = _project_of(delivery, synth)
    commands = _buildspec(project)["phases"]["build"]["commands"]
    assert "make test" in commands
    assert PIPELINE_SYNTH in commands
    assert commands.index("make test") < commands.index(PIPELINE_SYNTH)
    assert project["Properties"]["Environment"]["ComputeType"] != "BUILD_GENERAL1_SMALL"
    # `make test` alone took ~14 min on 2 cores: at least three times that, at most CodeBuild's 8 h.
    assert 45 <= project["Properties"]["TimeoutInMinutes"] <= 480


def test_only_the_pipelines_synth_makes_the_pod_contract_sandbox_optional(delivery: PipelineSynth) -> None:
    # CodeBuild's non-privileged container refuses bwrap's user namespace (tests/pod_contract.py): the synth step says
    # so explicitly; no other project, and not .ci/run, sets it.
    (synth,) = delivery.stage("Build")
    synth_project = synth["Configuration"]["ProjectName"]["Ref"]
    for name, project in resources_of(delivery.template, "AWS::CodeBuild::Project").items():
        variables = project["Properties"]["Environment"].get("EnvironmentVariables", [])
        expected = [{"Name": "GENAI_POD_CONTRACT_SANDBOX", "Type": "PLAINTEXT", "Value": "optional"}]
        assert variables == (expected if name == synth_project else []), name
    assert "GENAI_POD_CONTRACT_SANDBOX" not in (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()


def test_synth_step_publishes_the_cloud_assembly_and_one_artifact_per_environment(delivery: PipelineSynth) -> None:
    (synth,) = delivery.stage("Build")
    outputs = [o["Name"] for o in synth["OutputArtifacts"]]
    assert len(outputs) == 1 + len(ENVIRONMENTS)
    secondary = _buildspec(_project_of(delivery, synth))["artifacts"]["secondary-artifacts"]
    assert sorted(artifact["base-directory"] for artifact in secondary.values()) == ["cdk.out", "dist/dev", "dist/prod"]
    assert set(secondary) == set(outputs)


def test_runtimes_are_pinned_on_every_project(delivery: PipelineSynth) -> None:
    for name, project in resources_of(delivery.template, "AWS::CodeBuild::Project").items():
        text = project["Properties"]["Source"]["BuildSpec"]
        if text.startswith("buildspec-"):  # an asset project reads its buildspec (JSON) from the cloud assembly
            text = (delivery.outdir / text).read_text()
        runtimes = json.loads(text)["phases"]["install"]["runtime-versions"]
        assert runtimes == {"python": "3.11", "nodejs": "22"}, name
        # Each is one the project's image offers (a version it does not list is installed at build time, or fails).
        offered = STANDARD_IMAGES[project["Properties"]["Environment"]["Image"]]
        assert runtimes["python"] in offered.python, name
        assert runtimes["nodejs"] in offered.nodejs, name


def test_cli_versions_are_package_jsons_pins(delivery: PipelineSynth) -> None:
    pins = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    (self_mutate,) = delivery.stage("UpdatePipeline")
    install = _buildspec(_project_of(delivery, self_mutate))["phases"]["install"]["commands"]
    assert f"npm install -g aws-cdk@{pins['aws-cdk']}" in install
    asset_buildspecs = [p.read_text() for p in delivery.outdir.glob("buildspec-*.yaml")]
    assert asset_buildspecs, "no asset buildspec in the cloud assembly"
    assert all(f"npm install -g cdk-assets@{pins['cdk-assets']}" in text for text in asset_buildspecs)


def test_source_action_role_may_use_the_connection_under_both_service_prefixes(delivery: PipelineSynth) -> None:
    (checkout,) = delivery.stage("Source")
    assert checkout["Configuration"]["ConnectionArn"] == CONNECTION
    assert checkout["Configuration"]["FullRepositoryId"] == "acme/genai-platform"
    assert checkout["Configuration"]["BranchName"] == "main"
    assert checkout["Configuration"]["DetectChanges"] is True
    role = checkout["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [
        p["Properties"]
        for p in resources_of(delivery.template, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role}]
    ]
    actions = {
        action
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Resource"] == CONNECTION
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }
    assert actions == {"codestar-connections:UseConnection", "codeconnections:UseConnection"}


# --- compliance ----------------------------------------------------------------------------------------------------


def test_synth_passed_cdk_nag_and_every_acknowledgment_matched_a_finding(delivery: PipelineSynth) -> None:
    assert delivery.audit.problems() == []
    assert [f for f in delivery.audit.failed if f.severity == "error"] == []
    assert any(f.construct.startswith(f"{PIPELINE_STACK}/") for f in delivery.audit.acknowledged)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_gets_its_compliance_report_listing_its_staged_stacks(
    delivery: PipelineSynth, env: str
) -> None:
    report = (delivery.dist / env / "compliance-report.md").read_text()
    for stack in ("foundation", "data", "observability", "inference", "verify"):
        assert f"| `{env}/genai-{env}-{stack}` |" in report
    other = next(e for e in ENVIRONMENTS if e != env)
    assert f"`{other}/" not in report


def test_the_pipeline_stack_gets_its_own_compliance_report(delivery: PipelineSynth) -> None:
    report = (delivery.dist / "delivery" / "compliance-report.md").read_text()
    assert f"| `{PIPELINE_STACK}` |" in report
    assert "`dev/" not in report
    assert "`prod/" not in report


def test_the_pipeline_template_lints_clean(delivery: PipelineSynth) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--format",
            "parseable",
            "--",
            str(delivery.outdir / f"{PIPELINE_STACK}.template.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_the_pipeline_there_is_no_pipeline_stack(dev: Synthesized) -> None:
    manifest = dev.cloud_assembly_manifest()
    assert PIPELINE_STACK not in manifest["artifacts"]
    assert not [a for a in manifest["artifacts"].values() if a["type"] == "cdk:cloud-assembly"]
    for template in dev.template_files():
        assert not resources_of(json.loads(template.read_text()), "AWS::CodePipeline::Pipeline"), template.name


# --- configuration errors (nothing is built) -------------------------------------------------------------------


def _config_error(context: dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as error:
        build_delivery(cdk.App(outdir=str(tmp_path / "cdk.out")), context, tmp_path / "dist")
    return str(error.value)


def _problems(message: str) -> list[str]:
    """The error's items: `load_delivery_settings` lists one per line under a heading; others are one sentence."""
    return [line for line in message.splitlines() if line.startswith("  - ")] or [message]


def test_a_pipeline_without_a_connection_is_one_error_naming_the_key(tmp_path: Path) -> None:
    context = delivery_context()
    del context["delivery"]["connection_arn"]
    (problem,) = _problems(_config_error(context, tmp_path))
    assert "connection_arn" in problem


def test_a_malformed_connection_arn_is_one_error_naming_the_key_and_value(tmp_path: Path) -> None:
    bad = f"arn:aws:codeconnections:{REGION}:1111:connection/x"
    (problem,) = _problems(_config_error(delivery_context(connection_arn=bad), tmp_path))
    assert "delivery.connection_arn" in problem
    assert bad in problem


def test_an_environment_without_account_and_region_is_one_error_naming_it(tmp_path: Path) -> None:
    context = delivery_context()
    prod = {k: v for k, v in context["environments"]["prod"].items() if k not in ("account", "region")}
    context["environments"]["prod"] = {**prod, "availability_zones": []}
    (problem,) = _problems(_config_error(context, tmp_path))
    assert problem.startswith("delivery.environments: prod ")
    assert "account" in problem


def test_an_environment_in_another_region_than_the_pipeline_is_one_error_naming_it(tmp_path: Path) -> None:
    # Another region would need a replication bucket there (CDK makes one without a key and then refuses it for a
    # cross-account action: ArtifactBucketMustHaveKmsKey), and the verify build reads only the pipeline's bucket.
    context = delivery_context()
    context["environments"]["prod"] = {
        **context["environments"]["prod"],
        "region": "us-east-1",
        "availability_zones": ["us-east-1a", "us-east-1b", "us-east-1c"],
    }
    (problem,) = _problems(_config_error(context, tmp_path))
    assert problem.startswith("delivery.environments: prod is in us-east-1, not in the pipeline's region")
    assert "(delivery.region us-west-2)" in problem
    assert "dev is in" not in problem  # dev is in the pipeline's region


def _many_environments(count: int) -> dict[str, dict[str, Any]]:
    dev = delivery_context()["environments"]["dev"]
    return {f"env{i}": dev for i in range(count)}


def test_five_environments_are_more_than_the_synth_action_can_publish(tmp_path: Path) -> None:
    environments = _many_environments(5)
    context = delivery_context(platforms=environments, environments=list(environments))
    (problem,) = _problems(_config_error(context, tmp_path))
    assert problem.startswith("delivery.environments: 5 environments")
    assert "at most 4" in problem


def test_four_environments_fit(tmp_path: Path) -> None:
    environments = _many_environments(4)
    context = delivery_context(platforms=environments, environments=list(environments))
    settings = load_delivery_settings(context)
    configs = [load_config({**context, "env": env}) for env in environments]
    identity = PipelineIdentity.of(settings, "genai")
    stack = DeliveryStack(
        cdk.App(context=context, outdir=str(tmp_path)),
        identity.stack_name,
        settings=settings,
        identity=identity,
        environments=configs,
        env=cdk.Environment(account=PIPELINE_ACCOUNT, region=REGION),
    )
    assert len(stack.reports) == 4


def test_a_missing_cdk_assets_pin_is_an_error_naming_the_package_json_key(tmp_path: Path) -> None:
    package = tmp_path / "package.json"
    package.write_text(json.dumps({"devDependencies": {"aws-cdk": "2.1148.1"}}))
    assert package_json_pin("aws-cdk", package) == "2.1148.1"
    with pytest.raises(ConfigError, match=r"package.json devDependencies.cdk-assets: None"):
        package_json_pin("cdk-assets", package)
    for loose in ("^4.7.3", "4.x", "latest"):
        package.write_text(json.dumps({"devDependencies": {"cdk-assets": loose}}))
        with pytest.raises(ConfigError, match=r"is not an exact version"):
            package_json_pin("cdk-assets", package)


def test_every_staged_template_and_manifest_passes_checkov_or_skips_with_a_reason_a_report_lists(
    delivery: PipelineSynth,
) -> None:
    # checkov reads cdk.out recursively: the pipeline's template and every Stage's (assembly-<env>/).
    report = run_checkov(delivery.outdir, framework="cloudformation")
    assert report.failed == [], report.describe()
    assert report.parsing_errors == [], report.describe()
    # Both Stages were read, not only the pipeline's template: each alone passes well over 200 checks.
    stages = [run_checkov(delivery.outdir / f"assembly-{env}", framework="cloudformation") for env in ENVIRONMENTS]
    assert all(stage.passed > 200 for stage in stages), [stage.passed for stage in stages]
    assert report.passed > sum(stage.passed for stage in stages)
    reports = "".join(
        (delivery.dist / where / "compliance-report.md").read_text() for where in ("delivery", *ENVIRONMENTS)
    )
    for finding in report.skipped:
        row = f"| `{finding.resource.split('.', 1)[1]}` | `{finding.check_id}` | {finding.suppress_comment} |"
        assert row in reports, f"{finding} is in no compliance report"
    for env in ENVIRONMENTS:
        manifests = run_checkov(delivery.dist / env / "k8s")
        assert manifests.failed == [], manifests.describe()
        assert (delivery.dist / env / "k8s" / "verify-rbac.k8s.yaml").is_file()


def test_the_makefile_runs_the_repositorys_scripts_through_bash() -> None:
    # The pipeline builds from the connection's zipped checkout, which need not keep execute bits: a recipe that
    # runs `scripts/x.sh` directly would fail with "Permission denied" there.
    recipes = [line.strip() for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("\t")]
    direct = [line for line in recipes if re.match(r"-?@?scripts/\S+\.sh\b", line)]
    assert direct == []
    assert sum("bash scripts/" in line for line in recipes) >= 5
