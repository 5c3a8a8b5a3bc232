"""`genai-ops manifests`: dist/k8s/ with its deploy-time values filled in from the deployed stacks.

`make synth` writes each cdk8s chart to dist/k8s/ with the values only a deployment knows (a bucket name, a key
ARN, the region) shown as `<deploy-time EXPRESSION>`, EXPRESSION being the CloudFormation expression the applying
stack resolves (app.py `render_deploy_time_values`). This command evaluates those expressions against the deployed
stacks and writes files a GitOps tool or `kubectl diff` can read.

Expressions and where their values come from (CloudFormation intrinsic function reference):
- `Ref` of a pseudo parameter (AWS::Region, AWS::AccountId, AWS::Partition, AWS::URLSuffix, AWS::StackName,
  AWS::StackId): the applying stack's StackId ARN (arn:PARTITION:cloudformation:REGION:ACCOUNT:stack/NAME/ID).
- `Ref` of a resource: its physical id, from ListStackResources (DescribeStackResources returns only the first 100
  resources of a stack, CloudFormation API reference).
- `Fn::GetAtt`: the stack's own output whose value is that same expression (GetTemplate and DescribeStacks);
  otherwise, for the attributes whose form the service documents, built from the physical id (a KMS key ARN,
  arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID; an S3 bucket ARN, arn:PARTITION:s3:::NAME).
- `Fn::GetStackOutput` (CDK's weak cross-stack reference) and `Fn::ImportValue` (its strong one): DescribeStacks
  outputs and ListExports.
- `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::Sub`: evaluated here.

Every object in these files is applied by CDK: the stack named in each file's header applies its chart through
CDK's kubectl provider on every `cdk deploy`. The output says so per file, so nobody applies them a second time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
import yaml
from botocore.exceptions import ClientError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ops.errors import BadInputError, OpsError

PLACEHOLDER = "<deploy-time "
# The header app.py `manifest_header` writes on every chart file.
SOURCE_HEADER = re.compile(
    r"# Environment (?P<environment>\S+) \((?P<prefix>[^)]+)\), applied by the stack (?P<stack>\S+) through"
)
# The first line of the files this command writes, so a later run can tell them from anything else in the folder.
RESOLVED_MARK = "# Resolved by `genai-ops manifests`"

PSEUDO_PARAMETERS = (
    "AWS::Region",
    "AWS::AccountId",
    "AWS::Partition",
    "AWS::URLSuffix",
    "AWS::StackName",
    "AWS::StackId",
)


class UnresolvableError(Exception):
    """An expression this command cannot evaluate; the message says why."""


# --- the deployed stacks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployedStack:
    name: str
    stack_id: str
    outputs: dict[str, str]

    @property
    def partition(self) -> str:
        return self.stack_id.split(":")[1]

    @property
    def region(self) -> str:
        return self.stack_id.split(":")[3]

    @property
    def account(self) -> str:
        return self.stack_id.split(":")[4]


@dataclass(frozen=True)
class StackResource:
    physical_id: str
    resource_type: str


class DeployedStacks:
    """Reads the deployed stacks through CloudFormation, each call once per stack."""

    def __init__(self, session: boto3.Session) -> None:
        self._session = session
        self._clients: dict[str, Any] = {}
        self._stacks: dict[tuple[str, str], DeployedStack] = {}
        self._resources: dict[tuple[str, str], dict[str, StackResource]] = {}
        self._templates: dict[tuple[str, str], dict[str, Any]] = {}
        self._exports: dict[str, dict[str, str]] = {}

    def _client(self, region: str) -> Any:
        if region not in self._clients:
            self._clients[region] = self._session.client("cloudformation", region_name=region)
        return self._clients[region]

    def stack(self, name: str, region: str) -> DeployedStack:
        if (name, region) not in self._stacks:
            try:
                (described,) = self._client(region).describe_stacks(StackName=name)["Stacks"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ValidationError":
                    raise UnresolvableError(f"stack {name} is not deployed in {region}") from None
                raise
            outputs = {o["OutputKey"]: str(o.get("OutputValue", "")) for o in described.get("Outputs", [])}
            self._stacks[name, region] = DeployedStack(name, described["StackId"], outputs)
        return self._stacks[name, region]

    def resources(self, stack: DeployedStack) -> dict[str, StackResource]:
        key = (stack.name, stack.region)
        if key not in self._resources:
            pages = self._client(stack.region).get_paginator("list_stack_resources").paginate(StackName=stack.stack_id)
            self._resources[key] = {
                summary["LogicalResourceId"]: StackResource(
                    summary.get("PhysicalResourceId", ""), summary["ResourceType"]
                )
                for page in pages
                for summary in page["StackResourceSummaries"]
            }
        return self._resources[key]

    def template(self, stack: DeployedStack) -> dict[str, Any]:
        key = (stack.name, stack.region)
        if key not in self._templates:
            body = self._client(stack.region).get_template(StackName=stack.stack_id)["TemplateBody"]
            # botocore decodes a JSON template (CDK deploys JSON); any other body offers no outputs to match.
            if isinstance(body, str):
                try:
                    body = json.loads(body)
                except json.JSONDecodeError:
                    body = {}
            self._templates[key] = dict(body)
        return self._templates[key]

    def exports(self, region: str) -> dict[str, str]:
        if region not in self._exports:
            pages = self._client(region).get_paginator("list_exports").paginate()
            self._exports[region] = {e["Name"]: str(e["Value"]) for page in pages for e in page["Exports"]}
        return self._exports[region]


# --- evaluating expressions ------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-comparable form of a template fragment (botocore hands templates back as OrderedDicts)."""
    return json.loads(json.dumps(value))


# Attributes whose value the service documents as a function of the physical id (see the module docstring).
_DERIVED_ATTRIBUTES = {
    ("AWS::KMS::Key", "Arn"): "arn:{partition}:kms:{region}:{account}:key/{id}",
    ("AWS::S3::Bucket", "Arn"): "arn:{partition}:s3:::{id}",
}


class Evaluator:
    """Evaluates CloudFormation expressions as the applying stack `stack` resolved them at deploy time."""

    def __init__(self, stacks: DeployedStacks, stack: DeployedStack) -> None:
        self._stacks = stacks
        self._stack = stack

    def string(self, expression: Any) -> str:
        value = self.value(expression)
        if not isinstance(value, str):
            raise UnresolvableError(f"it evaluates to a list ({value!r}), where a string belongs")
        return value

    def value(self, expression: Any) -> str | list[str]:
        if isinstance(expression, str):
            return expression
        if isinstance(expression, (int, float)) and not isinstance(expression, bool):
            return str(expression)
        if isinstance(expression, list):
            return [self.string(item) for item in expression]
        if isinstance(expression, dict) and len(expression) == 1:
            ((function, argument),) = expression.items()
            handlers: dict[str, Callable[[Any], str | list[str]]] = {
                "Ref": self._ref,
                "Fn::GetAtt": self._get_att,
                "Fn::GetStackOutput": self._get_stack_output,
                "Fn::ImportValue": self._import_value,
                "Fn::Join": self._join,
                "Fn::Select": self._select,
                "Fn::Split": self._split,
                "Fn::Sub": self._sub,
            }
            handler = handlers.get(str(function))
            if handler is not None:
                try:
                    return handler(argument)
                except (KeyError, TypeError, ValueError) as error:
                    raise UnresolvableError(f"{function} has an argument it cannot take ({error!r})") from None
            raise UnresolvableError(f"{function} is not a function this command evaluates")
        raise UnresolvableError(f"{json.dumps(expression)} is not a CloudFormation expression")

    def _pseudo(self, name: str) -> str:
        stack = self._stack
        return {
            "AWS::Region": stack.region,
            "AWS::AccountId": stack.account,
            "AWS::Partition": stack.partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if stack.partition == "aws-cn" else "amazonaws.com",
            "AWS::StackName": stack.name,
            "AWS::StackId": stack.stack_id,
        }[name]

    def _resource(self, logical_id: str) -> StackResource:
        resource = self._stacks.resources(self._stack).get(logical_id)
        if resource is None or not resource.physical_id:
            raise UnresolvableError(f"stack {self._stack.name} has no resource {logical_id}")
        return resource

    def _ref(self, target: Any) -> str:
        if target in PSEUDO_PARAMETERS:
            return self._pseudo(str(target))
        return self._resource(str(target)).physical_id

    def _get_att(self, argument: Any) -> str:
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        wanted = _plain({"Fn::GetAtt": [logical_id, attribute]})
        for key, output in self._stacks.template(self._stack).get("Outputs", {}).items():
            if _plain(output.get("Value")) == wanted and key in self._stack.outputs:
                return self._stack.outputs[key]
        resource = self._resource(str(logical_id))
        form = _DERIVED_ATTRIBUTES.get((resource.resource_type, str(attribute)))
        if form is None:
            raise UnresolvableError(
                f"stack {self._stack.name} has no output holding {logical_id}.{attribute} and the attribute of a "
                f"{resource.resource_type} cannot be derived from its id"
            )
        stack = self._stack
        return form.format(
            partition=stack.partition, region=stack.region, account=stack.account, id=resource.physical_id
        )

    def _get_stack_output(self, argument: Any) -> str:
        name = self.string(argument["StackName"])
        region = self.string(argument["Region"]) if "Region" in argument else self._stack.region
        output = self.string(argument["OutputName"])
        producer = self._stacks.stack(name, region)
        if output not in producer.outputs:
            raise UnresolvableError(f"stack {name} in {region} has no output {output}")
        return producer.outputs[output]

    def _import_value(self, argument: Any) -> str:
        name = self.string(argument)
        exports = self._stacks.exports(self._stack.region)
        if name not in exports:
            raise UnresolvableError(f"no stack in {self._stack.region} exports {name}")
        return exports[name]

    def _join(self, argument: Any) -> str:
        separator, parts = argument
        values = self.value(parts)
        if isinstance(values, str):
            raise UnresolvableError("Fn::Join needs a list")
        return str(separator).join(values)

    def _select(self, argument: Any) -> str:
        index, items = argument
        values = self.value(items)
        position = int(self.string(index))
        if isinstance(values, str) or not 0 <= position < len(values):
            raise UnresolvableError(f"Fn::Select index {position} is outside {values!r}")
        return values[position]

    def _split(self, argument: Any) -> list[str]:
        delimiter, source = argument
        return self.string(source).split(str(delimiter))

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} stands for the text ${Literal}
            if name in variables:
                return self.string(variables[name])
            if name in PSEUDO_PARAMETERS:
                return self._pseudo(name)
            if "." in name:
                return self._get_att(name)
            return self._ref(name)

        return re.sub(r"\$\{([^}]+)\}", substitute, str(text))


def resolve_text(text: str, evaluator: Evaluator) -> tuple[str, list[str]]:
    """`text` with each `<deploy-time EXPRESSION>` replaced by its value (UnresolvableError names the expression)."""
    decoder = json.JSONDecoder()
    pieces, expressions, position = [], [], 0
    while (start := text.find(PLACEHOLDER, position)) != -1:
        begin = start + len(PLACEHOLDER)
        try:
            expression, end = decoder.raw_decode(text, begin)
        except json.JSONDecodeError:
            raise UnresolvableError(f"{text[start : start + 80]!r} is not `<deploy-time` followed by JSON") from None
        if text[end : end + 1] != ">":
            raise UnresolvableError(f"{text[start:end]!r} does not end with '>'")
        rendered = json.dumps(expression, separators=(",", ":"))
        try:
            pieces.append(text[position:start] + evaluator.string(expression))
        except UnresolvableError as error:
            raise UnresolvableError(f"cannot resolve {rendered}: {error}") from None
        expressions.append(rendered)
        position = end + 1
    pieces.append(text[position:])
    return "".join(pieces), expressions


# --- files -----------------------------------------------------------------------------------------------------


@dataclass
class ChartFile:
    """One file of dist/k8s: the stack that applies it and its objects."""

    path: Path
    environment: str
    prefix: str
    stack: str
    documents: list[Any]
    resolved: list[Any] = field(default_factory=list)
    expressions: int = 0

    def objects(self) -> Iterator[str]:
        for document in self.documents:
            yield describe_object(document)


def describe_object(document: Any) -> str:
    """`Kind namespace/name` (or `Kind name`) of a manifest object, for messages."""
    if not isinstance(document, dict):
        return "object"
    metadata = document.get("metadata") or {}
    kind = document.get("kind", "object")
    name = metadata.get("name", "?")
    return f"{kind} {metadata['namespace']}/{name}" if metadata.get("namespace") else f"{kind} {name}"


def read_chart_file(path: Path) -> ChartFile:
    text = path.read_text(encoding="utf-8")
    header = SOURCE_HEADER.match(text)
    if header is None:
        raise BadInputError(
            f"--manifests: {path} does not start with the header `make synth` writes (naming the stack that applies "
            "it); regenerate dist/k8s with `make synth`"
        )
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise BadInputError(
            f"--manifests: {path} is not valid YAML ({error}); regenerate it with `make synth`"
        ) from None
    return ChartFile(path, header["environment"], header["prefix"], header["stack"], documents)


def _resolve_tree(node: Any, evaluator: Evaluator, found: list[str]) -> Any:
    if isinstance(node, str):
        if PLACEHOLDER not in node:
            return node
        value, expressions = resolve_text(node, evaluator)
        found.extend(expressions)
        return value
    if isinstance(node, dict):
        return {_resolve_tree(k, evaluator, found): _resolve_tree(v, evaluator, found) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_tree(item, evaluator, found) for item in node]
    return node


def resolve_chart_file(chart: ChartFile, stacks: DeployedStacks, region: str, errors: list[str]) -> None:
    """Fill `chart.resolved`; each expression that cannot be evaluated adds an error naming file, object, expression."""
    try:
        evaluator = Evaluator(stacks, stacks.stack(chart.stack, region))
    except UnresolvableError as error:
        errors.append(f"{chart.path}: applied by {chart.stack}, but {error}")
        return
    for document in chart.documents:
        found: list[str] = []
        try:
            chart.resolved.append(_resolve_tree(document, evaluator, found))
        except UnresolvableError as error:
            errors.append(f"{chart.path}: {describe_object(document)}: {error}")
        chart.expressions += len(found)


class _BlockStrings(yaml.SafeDumper):
    """Multi-line strings (LiteLLM's config, PromQL) as block literals, as `make synth` writes them."""


_BlockStrings.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def resolved_header(chart: ChartFile, region: str) -> str:
    return (
        f"{RESOLVED_MARK} from {chart.path.name} (environment {chart.environment}, {chart.prefix}): values\n"
        f"# read from the stacks deployed in {region}. CDK owns every object below: the stack {chart.stack} applies\n"
        "# them through CDK's kubectl provider on each `cdk deploy`. Compare with `kubectl diff -f`; applying them\n"
        "# yourself or syncing them from a GitOps tool gives them a second owner, and the next deploy overwrites it.\n"
    )


def write_resolved(charts: list[ChartFile], out_dir: Path, region: str) -> list[Path]:
    """Write each chart; files this command wrote before for charts no longer in dist/k8s are removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts:
        body = yaml.dump_all(chart.resolved, Dumper=_BlockStrings, sort_keys=False, width=100_000)
        path = out_dir / chart.path.name
        path.write_text(resolved_header(chart, region) + body, encoding="utf-8")
        written.append(path)
    for stale in out_dir.glob("*.k8s.yaml"):
        if stale not in written and stale.read_text(encoding="utf-8").startswith(RESOLVED_MARK):
            stale.unlink()
    return written


# --- the command -----------------------------------------------------------------------------------------------


def manifests(
    region: Annotated[
        str | None, typer.Option(help="Region the stacks are deployed in (default: AWS_REGION / the profile's).")
    ] = None,
    manifests_dir: Annotated[
        Path, typer.Option("--manifests", help="The charts `make synth` wrote, with <deploy-time ...> values.")
    ] = Path("dist/k8s"),
    out: Annotated[Path, typer.Option(help="Where to write the resolved files.")] = Path("dist/k8s-resolved"),
) -> None:
    """Resolve dist/k8s's deploy-time values from the deployed stacks into files for `kubectl diff` or GitOps."""
    charts = _read_charts(manifests_dir, out)
    chosen = region or boto3.Session().region_name
    if not chosen:
        raise BadInputError("--region is missing: give the region the stacks are deployed in (or set AWS_REGION)")
    written = resolve_manifests(boto3.Session(region_name=chosen), charts, out, chosen)
    console = Console(highlight=False, emoji=False)
    console.print(ownership_table(charts))
    console.print(
        Text(
            f"Wrote {len(written)} files to {out}. CDK applies every object in them (the stack in each row): use them "
            f"with `kubectl diff -f {out}` or for review, and let `cdk deploy` apply them."
        )
    )


def _read_charts(manifests_dir: Path, out: Path) -> list[ChartFile]:
    paths = sorted(manifests_dir.glob("*.k8s.yaml")) if manifests_dir.is_dir() else []
    if not paths:
        raise BadInputError(f"--manifests {manifests_dir} holds no *.k8s.yaml files: run `make synth` first")
    if out.resolve() == manifests_dir.resolve():
        raise BadInputError(
            f"--out {out} is the --manifests folder: give another folder, so dist/k8s stays as synthesized"
        )
    return [read_chart_file(path) for path in paths]


def resolve_manifests(session: boto3.Session, charts: list[ChartFile], out: Path, region: str) -> list[Path]:
    """Resolve every chart; writes nothing unless all of them resolve (OpsError lists every failure)."""
    stacks = DeployedStacks(session)
    errors: list[str] = []
    try:
        for chart in charts:
            resolve_chart_file(chart, stacks, region, errors)
    except ClientError as error:
        raise OpsError(
            f"reading the deployed stacks failed in {error.operation_name}: "
            f"{error.response.get('Error', {}).get('Code')}: {error.response.get('Error', {}).get('Message')}"
        ) from None
    if errors:
        raise OpsError(
            f"{len(errors)} deploy-time values could not be resolved, nothing written:\n  " + "\n  ".join(errors)
        )
    return write_resolved(charts, out, region)


def ownership_table(charts: list[ChartFile]) -> Table:
    table = Table(
        title="Objects CDK owns (applied by the stack's kubectl provider on each cdk deploy)", title_justify="left"
    )
    table.add_column("file")
    table.add_column("applied by")
    table.add_column("values resolved", justify="right")
    table.add_column("objects")
    for chart in charts:
        table.add_row(
            Text(chart.path.name), Text(chart.stack), str(chart.expressions), Text("\n".join(chart.objects()))
        )
    return table
