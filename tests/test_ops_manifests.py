"""`genai-ops manifests`: the synthesized dist/k8s (session `dev` fixture) resolved against stacks deployed in moto.

The deployed stacks are stand-ins with the synthesized stacks' names, the resources the charts refer to (the node
volume key, the model bucket) and every output the charts read; each output's deployed value is written here
(`deployed:<OutputKey>`, or the real bucket name and key ARN), never taken from ops.manifests.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import kubernetes_validate
import pytest
import yaml
from botocore.stub import Stubber
from moto import mock_aws

from ops.cli import app, run
from ops.errors import OpsError
from ops.manifests import (
    ChartFile,
    DeployedStack,
    DeployedStacks,
    Evaluator,
    UnresolvableError,
    resolve_manifests,
)
from tests.conftest import Synthesized
from tests.crd_schemas import is_custom, validate_custom_resource

REGION = "us-west-2"
ACCOUNT = "123456789012"  # moto's account
MODEL_BUCKET = "genai-dev-data-models-3c4d"
# The stack whose kubectl provider applies each chart (app.py build_platform, the charts' stacks).
APPLIED_BY = {
    "platform-namespaces.k8s.yaml": "genai-dev-foundation",
    "platform-storage.k8s.yaml": "genai-dev-foundation",
    "cluster-features.k8s.yaml": "genai-dev-foundation",
    "node-pools.k8s.yaml": "genai-dev-inference",
    "inference.k8s.yaml": "genai-dev-inference",
    "gateway.k8s.yaml": "genai-dev-gateway",
}
PLACEHOLDER = "<deploy-time "


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("COLUMNS", "250")
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def _logical_id(template: dict[str, Any], resource_type: str, prefix: str) -> str:
    (found,) = [str(k) for k, v in template["Resources"].items() if v["Type"] == resource_type and k.startswith(prefix)]
    return found


def _placeholder_topic() -> dict[str, Any]:
    return {"Type": "AWS::SNS::Topic", "Properties": {}}


# aws-eks-v2's resources that apply to the cluster (aws-cdk-lib 2.275.0 aws-eks-v2/lib k8s-manifest.js, helm-chart.js).
MANIFEST_TYPE = "Custom::AWSCDK-EKS-KubernetesResource"
HELM_CHART_TYPE = "Custom::AWSCDK-EKS-HelmChart"
# The dev synth's KubernetesManifest applying each chart (a logical id prefix: app.py build_platform's construct ids).
APPLIED_AS = {
    "platform-namespaces.k8s.yaml": "EksClusterPlatformNamespaces",
    "platform-storage.k8s.yaml": "EksClusterPlatformStorage",
    "cluster-features.k8s.yaml": "ClusterFeatures",
    "node-pools.k8s.yaml": "NodePools",
    "inference.k8s.yaml": "Inference",
    "gateway.k8s.yaml": "Gateway",
}


def _cluster_resources(template: dict[str, Any]) -> dict[str, Any]:
    """The template's KubernetesManifest and HelmChart resources as a stand-in deploys them: under a condition that is
    never true, as moto would invoke their provider Lambda; GetTemplate still returns them, as CloudFormation does."""
    return {
        key: {**resource, "Condition": "Never"}
        for key, resource in template["Resources"].items()
        if resource["Type"] in (MANIFEST_TYPE, HELM_CHART_TYPE)
    }


@dataclass(frozen=True)
class StandIns:
    key_arn: str
    outputs: dict[str, str]  # output key -> its deployed value, over every stack


def deploy_stand_ins(session: boto3.Session, dev: Synthesized, *, skip: tuple[str, ...] = ()) -> StandIns:
    """Deploy stand-ins of dev's stacks: the resources the charts refer to, every output and the resources that
    apply to the cluster."""
    cloudformation = session.client("cloudformation")
    foundation, data = dev.stack_json("foundation"), dev.stack_json("data")
    key_id = _logical_id(foundation, "AWS::KMS::Key", "KeysNodeVolumes")
    bucket_id = _logical_id(data, "AWS::S3::Bucket", "ModelStoreModels")
    same_values = {json.dumps({"Fn::GetAtt": [key_id, "Arn"]}), json.dumps({"Ref": bucket_id})}

    def outputs(template: dict[str, Any]) -> dict[str, Any]:
        # An output of the key's ARN or the bucket's name keeps its expression; any other gets a written value.
        return {
            key: {"Value": output["Value"] if json.dumps(output["Value"]) in same_values else f"deployed:{key}"}
            for key, output in template.get("Outputs", {}).items()
        }

    key_policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}],
    }
    never = {"Never": {"Fn::Equals": ["deployed", "by moto"]}}
    own_resources = {
        "foundation": {key_id: {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": key_policy}}},
        "data": {bucket_id: {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": MODEL_BUCKET}}},
    }
    for name in ("foundation", "data", "observability", "inference", "gateway"):
        synthesized = dev.stack_json(name)
        template = {
            "Conditions": never,
            "Resources": {
                **own_resources.get(name, {"Topic": _placeholder_topic()}),
                **_cluster_resources(synthesized),
            },
            "Outputs": outputs(synthesized),
        }
        if f"genai-dev-{name}" not in skip:
            cloudformation.create_stack(StackName=f"genai-dev-{name}", TemplateBody=json.dumps(template))
    if "genai-dev-foundation" in skip:
        return StandIns("", {})
    (key,) = cloudformation.describe_stack_resources(StackName="genai-dev-foundation", LogicalResourceId=key_id)[
        "StackResources"
    ]
    deployed = {
        o["OutputKey"]: o["OutputValue"]
        for stack in cloudformation.describe_stacks()["Stacks"]
        for o in stack.get("Outputs", [])
    }
    return StandIns(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key['PhysicalResourceId']}", deployed)


def _documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _pairs(before: Any, after: Any) -> Iterator[tuple[Any, Any]]:
    """Walk the synthesized and the resolved document together, yielding each pair of scalars."""
    assert type(before) is type(after), (before, after)
    if isinstance(before, dict):
        assert len(before) == len(after)
        for (key, value), (key_after, value_after) in zip(before.items(), after.items(), strict=True):
            assert key == key_after
            yield from _pairs(value, value_after)
    elif isinstance(before, list):
        for item, item_after in zip(before, after, strict=True):
            yield from _pairs(item, item_after)
    else:
        yield before, after


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    """stderr as one line: the error console wraps long messages at the terminal's width."""
    return " ".join(capsys.readouterr().err.split())


def _cli(*arguments: str) -> int:
    return run(lambda: app(["manifests", *arguments], standalone_mode=True))


def _options(dev: Synthesized, out: Path, manifests: Path | None = None) -> tuple[str, ...]:
    return (
        "--region",
        REGION,
        "--manifests",
        str(manifests or dev.manifests_dir),
        "--cdk-out",
        str(dev.outdir),
        "--out",
        str(out),
    )


def _only(documents: list[Any], kind: str, name: str) -> Any:
    (document,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return document


def _env(container: dict[str, Any], name: str) -> Any:
    (value,) = [e.get("value") for e in container.get("env", []) if e["name"] == name]
    return value


def _labels(document: Any) -> dict[str, str]:
    return dict(document["metadata"].get("labels") or {})


def _applied_objects(template: dict[str, Any], logical_id: str, stand_ins: StandIns) -> list[Any]:
    """The objects a deployed KubernetesManifest applies, its expressions filled in here from what the stand-ins
    deployed (the forms dev's templates use; any other fails the test, so a new form is noticed)."""
    manifest = template["Resources"][logical_id]["Properties"]["Manifest"]
    parts = manifest["Fn::Join"][1] if isinstance(manifest, dict) else [manifest]

    def value(part: Any) -> str:
        if isinstance(part, str):
            return part
        if part == {"Ref": "AWS::Region"}:
            return REGION
        if "Fn::GetStackOutput" in part:
            return stand_ins.outputs[part["Fn::GetStackOutput"]["OutputName"]]
        if "Fn::GetAtt" in part and part["Fn::GetAtt"][1] == "Arn":
            return stand_ins.key_arn
        raise AssertionError(f"a template expression this test does not fill in: {part}")

    objects: list[Any] = json.loads("".join(value(part) for part in parts))
    return objects


def test_every_placeholder_is_resolved_from_the_deployed_stacks(
    dev: Synthesized, aws: boto3.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stand_ins = deploy_stand_ins(aws, dev)
    key_arn = stand_ins.key_arn
    out = tmp_path / "resolved"

    assert _cli(*_options(dev, out)) == 0, capsys.readouterr()

    assert sorted(p.name for p in out.iterdir()) == sorted(APPLIED_BY)
    resolved_values: dict[str, set[str]] = {}
    for name, stack in APPLIED_BY.items():
        text = (out / name).read_text()
        assert PLACEHOLDER not in text
        assert f"CDK owns every object below: the stack {stack} applies them" in text.replace("\n# ", " ")
        assert f"read from the stacks deployed in account {ACCOUNT}, region {REGION}." in text
        template = dev.stack_json(stack.removeprefix("genai-dev-"))
        applier = _logical_id(template, MANIFEST_TYPE, APPLIED_AS[name])
        prune_label = template["Resources"][applier]["Properties"]["PruneLabel"]
        before, after = _documents(dev.manifests_dir / name), _documents(out / name)
        assert len(before) == len(after)
        for doc_before, doc_after in zip(before, after, strict=True):
            # The label CDK's KubernetesManifest adds to each object it applies (k8s-manifest.js injectPruneLabel).
            assert _labels(doc_after) == {prune_label: "", **_labels(doc_before)}
            doc_after["metadata"]["labels"].pop(prune_label)
            if not doc_after["metadata"]["labels"]:
                doc_after["metadata"].pop("labels")
            for value, resolved in _pairs(doc_before, doc_after):
                if isinstance(value, str) and PLACEHOLDER in value:
                    resolved_values.setdefault(value, set()).add(resolved)
                else:
                    assert resolved == value  # everything else, types included, unchanged
    documents = [doc for name in APPLIED_BY for doc in _documents(out / name)]

    assert resolved_values['<deploy-time {"Ref":"AWS::Region"}>'] == {REGION}
    storage_class = _only(documents, "StorageClass", "gp3-encrypted")
    assert storage_class["parameters"]["kmsKeyId"] == key_arn  # Fn::GetAtt in the foundation stack itself
    for pool in [d for d in documents if d["kind"] == "NodeClass"]:
        assert pool["spec"]["ephemeralStorage"]["kmsKeyID"] == key_arn  # Fn::GetStackOutput of the foundation
    (vllm,) = _only(documents, "Deployment", "vllm")["spec"]["template"]["spec"]["containers"][:1]
    assert f"s3://{MODEL_BUCKET}/models/meta-llama/Llama-3.1-8B-Instruct" in vllm["args"]
    (litellm,) = _only(documents, "Deployment", "litellm")["spec"]["template"]["spec"]["containers"][:1]
    data_outputs = dev.stack_json("data")["Outputs"]
    (cache_output,) = [k for k in data_outputs if "CacheFA329FB1EndpointAddress" in k]
    assert _env(litellm, "REDIS_HOST") == f"deployed:{cache_output}"
    assert _env(litellm, "REDIS_PORT") == "6379"  # still a string, as an env value must be
    assert json.loads(_env(litellm, "REDIS_CLUSTER_NODES"))[0]["host"] == f"deployed:{cache_output}"
    (master_key,) = [k for k in data_outputs if k.startswith("PublishOutputRefGatewayStoresMasterKey")]
    secret_refs = {
        item["remoteRef"]["key"] for d in documents if d["kind"] == "ExternalSecret" for item in d["spec"]["data"]
    }
    assert f"deployed:{master_key}" in secret_refs

    # The resolved files are still valid manifests (the schema of every kind, CRDs included).
    for document in documents:
        if is_custom(document):
            validate_custom_resource(document)
        else:
            kubernetes_validate.validate(document, dev.config.cluster.kubernetes_version, strict=True)

    table = " ".join(capsys.readouterr().out.split())
    for name, stack in APPLIED_BY.items():
        assert f"{name} │ {stack} " in table, name
    assert "Deployment inference/vllm" in table
    # What else the stacks apply (their HelmChart resources), so nobody installs it a second time.
    for stack, release, namespace in [
        ("genai-dev-inference", "keda", "keda"),
        ("genai-dev-observability", "prometheus", "observability"),
        ("genai-dev-gateway", "external-secrets", "external-secrets"),
    ]:
        assert re.search(
            rf"{stack} │ \w+ │ Helm release {release} \(chart {release} [^)]+\) in namespace {namespace}", table
        )
    assert f"Wrote 6 files to {out}. CDK applies every object in them" in table


def test_the_resolved_objects_are_the_ones_cdk_applied(dev: Synthesized, aws: boto3.Session, tmp_path: Path) -> None:
    """`kubectl diff` compares a file with the last configuration CDK's `kubectl apply` recorded: the resolved
    objects must be exactly those the deployed KubernetesManifest applies (its prune label included), or every object
    shows a difference that no deploy would make."""
    stand_ins = deploy_stand_ins(aws, dev)
    out = tmp_path / "resolved"

    assert _cli(*_options(dev, out)) == 0

    for name, stack in APPLIED_BY.items():
        template = dev.stack_json(stack.removeprefix("genai-dev-"))
        applied = _applied_objects(template, _logical_id(template, MANIFEST_TYPE, APPLIED_AS[name]), stand_ins)
        assert _documents(out / name) == applied, name


def _copy(dev: Synthesized, tmp_path: Path) -> Path:
    copy = tmp_path / "k8s"
    shutil.copytree(dev.manifests_dir, copy)
    return copy


def test_an_expression_that_cannot_be_resolved_names_file_object_and_expression(
    dev: Synthesized, aws: boto3.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_stand_ins(aws, dev)
    manifests = _copy(dev, tmp_path)
    inference = manifests / "inference.k8s.yaml"
    region = '<deploy-time {"Ref":"AWS::Region"}>'
    missing = '<deploy-time {"Fn::GetAtt":["NoSuchResource","Arn"]}>'
    assert region in inference.read_text()
    inference.write_text(inference.read_text().replace(region, missing))
    out = tmp_path / "resolved"

    assert _cli(*_options(dev, out, manifests)) == 1

    err = _err(capsys)
    assert f"{inference}: Deployment inference/vllm: cannot resolve" in err
    assert '{"Fn::GetAtt":["NoSuchResource","Arn"]}' in err
    assert "stack genai-dev-inference has no resource NoSuchResource" in err
    assert not out.exists()  # nothing written unless everything resolves


def test_a_stack_that_is_not_deployed_is_named(
    dev: Synthesized, aws: boto3.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_stand_ins(aws, dev, skip=("genai-dev-data",))

    assert _cli(*_options(dev, tmp_path / "out")) == 1

    err = _err(capsys)
    assert "stack genai-dev-data is not deployed in us-west-2" in err
    assert f"{dev.manifests_dir / 'inference.k8s.yaml'}: Deployment inference/vllm" in err
    assert "Traceback" not in err


def test_files_it_wrote_before_for_charts_now_gone_are_removed(
    dev: Synthesized, aws: boto3.Session, tmp_path: Path
) -> None:
    deploy_stand_ins(aws, dev)
    out = tmp_path / "resolved"
    out.mkdir()
    (out / "old-chart.k8s.yaml").write_text("# Resolved by `genai-ops manifests` from old-chart.k8s.yaml\n")
    (out / "mine.k8s.yaml").write_text("kind: ConfigMap\n")  # not written by the command: left alone

    assert _cli(*_options(dev, out)) == 0

    assert not (out / "old-chart.k8s.yaml").exists()
    assert (out / "mine.k8s.yaml").read_text() == "kind: ConfigMap\n"


def test_bad_input_exits_2(
    dev: Synthesized, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("--region", REGION, "--manifests", str(tmp_path / "none")) == 2
    assert "holds no *.k8s.yaml files: run `make synth` first" in _err(capsys)

    manifests = _copy(dev, tmp_path)
    assert _cli("--region", REGION, "--manifests", str(manifests), "--out", str(manifests)) == 2
    assert "is the --manifests folder" in _err(capsys)

    (manifests / "hand-written.k8s.yaml").write_text("kind: ConfigMap\n")
    assert _cli("--region", REGION, "--manifests", str(manifests), "--out", str(tmp_path / "o")) == 2
    assert "hand-written.k8s.yaml does not start with the header" in _err(capsys)
    (manifests / "hand-written.k8s.yaml").unlink()

    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    no_assembly = ("--cdk-out", str(tmp_path / "no-cdk-out"))
    assert _cli("--manifests", str(manifests), *no_assembly, "--out", str(tmp_path / "o")) == 2
    assert _err(capsys).startswith("error: --region is missing")


# --- the expression forms, one by one, against a small deployed stack -----------------------------------------


@pytest.fixture
def evaluator(aws: boto3.Session) -> Evaluator:
    template = {
        "Parameters": {
            "Plain": {"Type": "String", "Default": "plain-value"},
            "Hidden": {"Type": "String", "NoEcho": True, "Default": HIDDEN_PARAMETER},
        },
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "weights-0a1b"}},
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "deployed-topic"}},
            "User": {"Type": "AWS::IAM::User"},
            "AccessKey": {"Type": "AWS::IAM::AccessKey", "Properties": {"UserName": {"Ref": "User"}}},
        },
        "Outputs": {
            "Joined": {"Value": "a,b,c"},
            "Shared": {"Value": "exported-value", "Export": {"Name": "genai-dev-shared"}},
            "Port": {"Value": "6379"},
            # An attribute no rule derives, published as an output: read from the output.
            "TopicName": {"Value": {"Fn::GetAtt": ["Topic", "TopicName"]}},
            # Outputs that carry a secret (moto, unlike CloudFormation, resolves them all to the value).
            "KeySecret": {"Value": {"Fn::GetAtt": ["AccessKey", "SecretAccessKey"]}},
            "HiddenValue": {"Value": {"Fn::Sub": "x-${Hidden}"}, "Export": {"Name": "genai-dev-hidden"}},
            "Dynamic": {"Value": "{{resolve:secretsmanager:genai/db:SecretString:password}}"},
        },
    }
    cloudformation = aws.client("cloudformation")
    cloudformation.create_stack(StackName="genai-dev-x", TemplateBody=json.dumps(template))
    stacks = DeployedStacks(aws)
    return Evaluator(stacks, stacks.stack("genai-dev-x", REGION))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"Ref": "AWS::Region"}, REGION),
        ({"Ref": "AWS::AccountId"}, ACCOUNT),
        ({"Ref": "AWS::Partition"}, "aws"),
        ({"Ref": "AWS::URLSuffix"}, "amazonaws.com"),
        ({"Ref": "AWS::StackName"}, "genai-dev-x"),
        ({"Ref": "Bucket"}, "weights-0a1b"),
        ({"Fn::GetAtt": ["Bucket", "Arn"]}, "arn:aws:s3:::weights-0a1b"),
        ({"Fn::GetAtt": "Bucket.Arn"}, "arn:aws:s3:::weights-0a1b"),
        ({"Fn::GetAtt": ["Topic", "TopicName"]}, "deployed-topic"),
        ({"Fn::Join": ["/", ["s3:/", {"Ref": "Bucket"}, "models"]]}, "s3://weights-0a1b/models"),
        ({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, "b"),
        ({"Fn::Select": ["2", ["x", "y", "z"]]}, "z"),
        (
            {
                "Fn::Select": [
                    0,
                    {"Fn::Split": [",", {"Fn::GetStackOutput": {"StackName": "genai-dev-x", "OutputName": "Joined"}}]},
                ]
            },
            "a",
        ),
        ({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/${!Literal}"}, "arn:aws:s3:::weights-0a1b/${Literal}"),
        ({"Fn::Sub": ["${Name}.${AWS::Region}", {"Name": {"Ref": "Bucket"}}]}, f"weights-0a1b.{REGION}"),
        ({"Fn::ImportValue": "genai-dev-shared"}, "exported-value"),
        ({"Ref": "Plain"}, "plain-value"),  # a template parameter: DescribeStacks Parameters
        (
            {
                "Fn::GetStackOutput": {
                    "StackName": "genai-dev-x",
                    "OutputName": "Joined",
                    "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/reader",  # the same account: read directly
                }
            },
            "a,b,c",
        ),
        (
            {
                "Fn::GetStackOutput": {
                    "StackName": "genai-dev-x",
                    "Region": {"Ref": "AWS::Region"},
                    "OutputName": "Shared",
                }
            },
            "exported-value",
        ),
    ],
)
def test_expression_forms(evaluator: Evaluator, expression: Any, expected: str) -> None:
    assert evaluator.string(expression) == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ({"Fn::GetAtt": ["Topic", "TopicArn"]}, "the attribute of a AWS::SNS::Topic cannot be derived"),
        ({"Ref": "Missing"}, "stack genai-dev-x has no resource Missing"),
        ({"Fn::Select": [3, ["x"]]}, "Fn::Select index 3 is outside"),
        ({"Fn::Split": [",", "a,b"]}, "evaluates to a list"),
        ({"Fn::Base64": "x"}, "Fn::Base64 is not a function this command evaluates"),
        ({"Fn::Join": ["only-a-separator"]}, "Fn::Join has an argument it cannot take"),
        ({"Fn::Select": ["first", ["x"]]}, "Fn::Select has an argument it cannot take"),
        ({"Fn::ImportValue": "nobody-exports-this"}, "no stack in us-west-2 exports nobody-exports-this"),
        ({"Fn::GetStackOutput": {"StackName": "genai-dev-x", "OutputName": "Nope"}}, "has no output Nope"),
        (
            {"Fn::GetStackOutput": {"StackName": "genai-dev-gone", "OutputName": "X"}},
            "stack genai-dev-gone is not deployed",
        ),
        (
            {
                "Fn::GetStackOutput": {
                    "StackName": "genai-dev-x",
                    "OutputName": "Joined",
                    "RoleArn": "arn:aws:iam::210987654321:role/reader",
                }
            },
            "in another account; this command reads only account 123456789012",
        ),
    ],
)
def test_expressions_it_cannot_resolve_say_why(evaluator: Evaluator, expression: Any, reason: str) -> None:
    with pytest.raises(UnresolvableError, match=reason.replace(".", r"\.")):
        evaluator.string(expression)


def test_a_value_that_looks_like_a_number_stays_a_string(
    evaluator: Evaluator, aws: boto3.Session, tmp_path: Path
) -> None:
    port = '<deploy-time {"Fn::GetStackOutput":{"StackName":"genai-dev-x","OutputName":"Port"}}>'
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ports", "namespace": "gateway"},
        "data": {"port": port, "url": f"redis://cache:{port}", "multi": f"host: cache\nport: {port}\n"},
    }
    chart = ChartFile(tmp_path / "ports.k8s.yaml", "dev", "genai-dev", "genai-dev-x", [document])

    (written,) = resolve_manifests(aws, [chart], tmp_path / "out", REGION)

    (resolved,) = _documents(written)
    assert resolved["data"] == {"port": "6379", "url": "redis://cache:6379", "multi": "host: cache\nport: 6379\n"}
    assert "port: '6379'" in written.read_text()  # quoted, so YAML reads a string, as a ConfigMap value must be


HIDDEN_PARAMETER = "hidden-parameter-value"


@pytest.mark.parametrize(
    "expression",
    [
        {"Ref": "Hidden"},  # a NoEcho parameter
        {"Fn::Sub": "prefix-${Hidden}"},
        {"Fn::GetAtt": ["AccessKey", "SecretAccessKey"]},  # a secret-valued attribute
        {"Fn::GetStackOutput": {"StackName": "genai-dev-x", "OutputName": "KeySecret"}},  # an output holding one
        {"Fn::ImportValue": "genai-dev-hidden"},  # an export holding one
        {"Fn::GetStackOutput": {"StackName": "genai-dev-x", "OutputName": "Dynamic"}},  # a dynamic reference
        {"Fn::Join": ["", ["{{resolve:ssm-secure:genai/token}}"]]},
    ],
)
def test_a_secret_is_never_resolved(evaluator: Evaluator, aws: boto3.Session, expression: Any) -> None:
    deployed = aws.client("cloudformation").describe_stacks(StackName="genai-dev-x")["Stacks"][0]["Outputs"]
    secrets = [o["OutputValue"] for o in deployed if o["OutputKey"] in ("KeySecret", "HiddenValue")]

    with pytest.raises(UnresolvableError) as refused:
        evaluator.string(expression)

    message = str(refused.value)
    assert "secret" in message
    assert HIDDEN_PARAMETER not in message
    assert not any(secret in message for secret in secrets)


def test_a_deploy_time_value_in_a_secrets_data_is_refused(
    evaluator: Evaluator, aws: boto3.Session, tmp_path: Path
) -> None:
    region = '<deploy-time {"Ref":"AWS::Region"}>'
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "gateway"},
        "stringData": {"password": region},  # whatever it resolves to, it would sit in a Secret
    }
    chart = ChartFile(tmp_path / "creds.k8s.yaml", "dev", "genai-dev", "genai-dev-x", [secret])

    with pytest.raises(OpsError, match=r"Secret gateway/creds: a deploy-time value in a Secret's data is a secret"):
        resolve_manifests(aws, [chart], tmp_path / "out", REGION)
    assert not (tmp_path / "out").exists()


# A CDK number token as aws-cdk-lib 2.275.0 encodes token 5 (core/lib/private/encoding.js createTokenDouble: the
# top 16 bits 0xFBFF), and the same double with the neighbouring top bits, which are ordinary numbers.
NUMBER_TOKEN = -1.888154589708751e289
JUST_BELOW_THE_MARKER = -1.827246377137501e289  # top bits 0xFBFE
JUST_ABOVE_THE_MARKER = -1.949062802280002e289  # top bits 0xFC00


@pytest.mark.parametrize(
    "value",
    ["${Token[TOKEN.12]}", "redis://cache:-1.888154589708751e+289", ["#{Token[TOKEN.7]}"], NUMBER_TOKEN],
)
def test_a_token_synth_did_not_render_is_refused(
    evaluator: Evaluator, aws: boto3.Session, tmp_path: Path, value: Any
) -> None:
    document = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "gateway"}, "x": value}
    chart = ChartFile(tmp_path / "tokens.k8s.yaml", "dev", "genai-dev", "genai-dev-x", [document])

    with pytest.raises(OpsError, match=r"ConfigMap gateway/c: .* is a CDK list or number token"):
        resolve_manifests(aws, [chart], tmp_path / "out", REGION)
    assert not (tmp_path / "out").exists()


def test_numbers_beside_the_token_marker_are_kept(evaluator: Evaluator, aws: boto3.Session, tmp_path: Path) -> None:
    assert struct.pack(">d", JUST_BELOW_THE_MARKER)[:2].hex() == "fbfe"
    assert struct.pack(">d", NUMBER_TOKEN)[:2].hex() == "fbff"
    assert struct.pack(">d", JUST_ABOVE_THE_MARKER)[:2].hex() == "fc00"
    numbers = [JUST_BELOW_THE_MARKER, JUST_ABOVE_THE_MARKER, 6379, 0.5]
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "n", "namespace": "gateway"},
        "x": numbers,
    }
    chart = ChartFile(tmp_path / "numbers.k8s.yaml", "dev", "genai-dev", "genai-dev-x", [document])

    (written,) = resolve_manifests(aws, [chart], tmp_path / "out", REGION)

    assert _documents(written)[0]["x"] == numbers


# Every stack status CloudFormation has (the API model botocore ships) and the ones whose outputs are the deployed
# state (CloudFormation API reference, StackStatus): the others are in progress, failed or rolled back at create.
ALL_STATUSES = botocore.session.get_session().get_service_model("cloudformation").shape_for("StackStatus").enum
SETTLED = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/genai-dev-x/5e1a7c40-0000-0000-0000-000000000000"


class _StubbedSession:
    """A session whose every CloudFormation client is the one stubbed client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, region_name: str) -> Any:
        assert service == "cloudformation"
        return self._client


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "cloudformation", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_only_a_settled_stack_is_read(stubbed: tuple[Any, Stubber], status: str) -> None:
    client, stubber = stubbed
    described = {
        "StackName": "genai-dev-x",
        "StackId": STACK_ID,
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        "StackStatus": status,
        "StackStatusReason": "Resource creation cancelled",
        "Outputs": [{"OutputKey": "Endpoint", "OutputValue": "cache.example"}],
    }
    stubber.add_response("describe_stacks", {"Stacks": [described]}, {"StackName": "genai-dev-x"})
    stacks = DeployedStacks(_StubbedSession(client))

    if status in SETTLED:
        assert stacks.stack("genai-dev-x", REGION).outputs == {"Endpoint": "cache.example"}
    else:
        with pytest.raises(UnresolvableError, match=f"stack genai-dev-x in {REGION} is {status} \\(Resource creation"):
            stacks.stack("genai-dev-x", REGION)
    assert len(SETTLED & set(ALL_STATUSES)) == 5  # every settled status is one CloudFormation has


def test_every_page_of_exports_and_resources_is_read(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    exporter = STACK_ID
    stubber.add_response(
        "list_exports",
        {"Exports": [{"Name": "first", "Value": "1", "ExportingStackId": exporter}], "NextToken": "page-2"},
        {},
    )
    stubber.add_response(
        "list_exports",
        {"Exports": [{"Name": "second", "Value": "2", "ExportingStackId": exporter}]},
        {"NextToken": "page-2"},
    )
    summary = {"ResourceStatus": "CREATE_COMPLETE", "LastUpdatedTimestamp": datetime(2026, 1, 1, tzinfo=UTC)}
    stubber.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {**summary, "LogicalResourceId": "A", "PhysicalResourceId": "a-1", "ResourceType": "AWS::SNS::Topic"}
            ],
            "NextToken": "page-2",
        },
        {"StackName": STACK_ID},
    )
    stubber.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {**summary, "LogicalResourceId": "B", "PhysicalResourceId": "b-2", "ResourceType": "AWS::S3::Bucket"}
            ]
        },
        {"StackName": STACK_ID, "NextToken": "page-2"},
    )
    stacks = DeployedStacks(_StubbedSession(client))

    assert stacks.exports(REGION) == {"first": ("1", exporter), "second": ("2", exporter)}
    resources = stacks.resources(DeployedStack("genai-dev-x", STACK_ID, {}))
    assert {key: r.physical_id for key, r in resources.items()} == {"A": "a-1", "B": "b-2"}


def _pinned_assembly(dev: Synthesized, tmp_path: Path, environment: str) -> Path:
    """dev's cloud assembly manifest with every stack pinned to `environment` (`aws://ACCOUNT/REGION`)."""
    manifest = json.loads((dev.outdir / "manifest.json").read_text())
    for artifact in manifest["artifacts"].values():
        if artifact["type"] == "aws:cloudformation:stack":
            artifact["environment"] = environment
    cdk_out = tmp_path / f"cdk.out-{len(list(tmp_path.iterdir()))}"
    cdk_out.mkdir()
    (cdk_out / "manifest.json").write_text(json.dumps(manifest))
    return cdk_out


def test_the_synths_pinned_account_and_region_are_held(
    dev: Synthesized,
    aws: boto3.Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deploy_stand_ins(aws, dev)
    common = ("--manifests", str(dev.manifests_dir), "--out", str(tmp_path / "out"))
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")

    # Pinned to where the stand-ins are: that region is the default, whatever AWS_REGION says.
    here = _pinned_assembly(dev, tmp_path, f"aws://{ACCOUNT}/{REGION}")
    assert _cli(*common, "--cdk-out", str(here)) == 0, _err(capsys)
    assert f"account {ACCOUNT}, region {REGION}" in (tmp_path / "out" / "gateway.k8s.yaml").read_text()

    assert _cli(*common, "--cdk-out", str(here), "--region", "eu-west-1") == 1
    assert "the synth (cdk.out) pins stack genai-dev-foundation to region us-west-2, not eu-west-1" in _err(capsys)

    elsewhere = _pinned_assembly(dev, tmp_path, f"aws://210987654321/{REGION}")
    assert _cli(*common, "--cdk-out", str(elsewhere)) == 1
    assert (
        f"stack genai-dev-foundation was read from account {ACCOUNT}, but the synth (cdk.out) pins it to account "
        "210987654321" in _err(capsys)
    )


def test_a_chart_the_deployed_stack_does_not_apply_yet_is_new(
    evaluator: Evaluator, aws: boto3.Session, tmp_path: Path
) -> None:
    document = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new", "namespace": "gateway"}}
    chart = ChartFile(tmp_path / "new.k8s.yaml", "dev", "genai-dev", "genai-dev-x", [document])

    (written,) = resolve_manifests(aws, [chart], tmp_path / "out", REGION)

    text = written.read_text().replace("\n# ", " ")
    assert "the deployed stack does not apply this chart yet, so `kubectl diff` shows its objects as new" in text
    assert _documents(written) == [document]  # no prune label: no KubernetesManifest gives it one yet
