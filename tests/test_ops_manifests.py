"""`genai-ops manifests`: the synthesized dist/k8s (session `dev` fixture) resolved against stacks deployed in moto.

The deployed stacks are stand-ins with the synthesized stacks' names, the resources the charts refer to (the node
volume key, the model bucket) and every output the charts read; each output's deployed value is written here
(`deployed:<OutputKey>`, or the real bucket name and key ARN), never taken from ops.manifests.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import kubernetes_validate
import pytest
import yaml
from moto import mock_aws

from ops.cli import app, run
from ops.manifests import ChartFile, DeployedStacks, Evaluator, UnresolvableError, resolve_manifests
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


def deploy_stand_ins(session: boto3.Session, dev: Synthesized, *, skip: tuple[str, ...] = ()) -> str:
    """Deploy stand-ins of dev's stacks; returns the ARN of the node-volume key."""
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
    templates = {
        "genai-dev-foundation": {
            "Resources": {key_id: {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": key_policy}}},
            "Outputs": outputs(foundation),
        },
        "genai-dev-data": {
            "Resources": {bucket_id: {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": MODEL_BUCKET}}},
            "Outputs": outputs(data),
        },
        **{
            f"genai-dev-{name}": {"Resources": {"Topic": _placeholder_topic()}}
            for name in ("observability", "inference", "gateway")
        },
    }
    for name, template in templates.items():
        if name not in skip:
            cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    if "genai-dev-foundation" in skip:
        return ""
    (key,) = cloudformation.describe_stack_resources(StackName="genai-dev-foundation", LogicalResourceId=key_id)[
        "StackResources"
    ]
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key['PhysicalResourceId']}"


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


def _only(documents: list[Any], kind: str, name: str) -> Any:
    (document,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return document


def _env(container: dict[str, Any], name: str) -> Any:
    (value,) = [e.get("value") for e in container.get("env", []) if e["name"] == name]
    return value


def test_every_placeholder_is_resolved_from_the_deployed_stacks(
    dev: Synthesized, aws: boto3.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_arn = deploy_stand_ins(aws, dev)
    out = tmp_path / "resolved"

    assert _cli("--region", REGION, "--manifests", str(dev.manifests_dir), "--out", str(out)) == 0, capsys.readouterr()

    assert sorted(p.name for p in out.iterdir()) == sorted(APPLIED_BY)
    resolved_values: dict[str, set[str]] = {}
    for name, stack in APPLIED_BY.items():
        text = (out / name).read_text()
        assert PLACEHOLDER not in text
        assert f"CDK owns every object below: the stack {stack} applies" in text.replace("\n# ", " ")
        before, after = _documents(dev.manifests_dir / name), _documents(out / name)
        assert len(before) == len(after)
        for doc_before, doc_after in zip(before, after, strict=True):
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

    table = capsys.readouterr().out
    for name, stack in APPLIED_BY.items():
        assert any(name in line and stack in line for line in table.splitlines()), name
    assert "Deployment inference/vllm" in table
    assert f"Wrote 6 files to {out}. CDK applies every object in them" in table


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

    assert _cli("--region", REGION, "--manifests", str(manifests), "--out", str(out)) == 1

    err = _err(capsys)
    assert f"{inference}: Deployment inference/vllm: cannot resolve" in err
    assert '{"Fn::GetAtt":["NoSuchResource","Arn"]}' in err
    assert "stack genai-dev-inference has no resource NoSuchResource" in err
    assert not out.exists()  # nothing written unless everything resolves


def test_a_stack_that_is_not_deployed_is_named(
    dev: Synthesized, aws: boto3.Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_stand_ins(aws, dev, skip=("genai-dev-data",))

    assert _cli("--region", REGION, "--manifests", str(dev.manifests_dir), "--out", str(tmp_path / "out")) == 1

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

    assert _cli("--region", REGION, "--manifests", str(dev.manifests_dir), "--out", str(out)) == 0

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
    assert _cli("--manifests", str(manifests), "--out", str(tmp_path / "o")) == 2
    assert _err(capsys).startswith("error: --region is missing")


# --- the expression forms, one by one, against a small deployed stack -----------------------------------------


@pytest.fixture
def evaluator(aws: boto3.Session) -> Evaluator:
    template = {
        "Resources": {
            "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "weights-0a1b"}},
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "deployed-topic"}},
        },
        "Outputs": {
            "Joined": {"Value": "a,b,c"},
            "Shared": {"Value": "exported-value", "Export": {"Name": "genai-dev-shared"}},
            "Port": {"Value": "6379"},
            # An attribute no rule derives, published as an output: read from the output.
            "TopicName": {"Value": {"Fn::GetAtt": ["Topic", "TopicName"]}},
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
