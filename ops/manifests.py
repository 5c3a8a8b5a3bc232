"""`genai-ops manifests`: dist/k8s/ with its deploy-time values filled in from the deployed stacks.

`make synth` writes each cdk8s chart to dist/k8s/ with the values only a deployment knows (a bucket name, a key
ARN, the region) shown as `<deploy-time EXPRESSION>`, EXPRESSION being the CloudFormation expression the applying
stack resolves (app.py `render_deploy_time_values`). This command evaluates those expressions against the deployed
stacks and writes files a GitOps tool or `kubectl diff` can read.

Expressions and where their values come from (CloudFormation intrinsic function reference):
- `Ref` of a pseudo parameter (AWS::Region, AWS::AccountId, AWS::Partition, AWS::URLSuffix, AWS::StackName,
  AWS::StackId): the applying stack's StackId ARN (arn:PARTITION:cloudformation:REGION:ACCOUNT:stack/NAME/ID).
- `Ref` of a template parameter: DescribeStacks `Parameters` (`ResolvedValue` for an SSM parameter type); a NoEcho
  parameter is refused. `Ref` of a resource: its physical id, from ListStackResources (DescribeStackResources
  returns only the first 100 resources of a stack, CloudFormation API reference).
- `Fn::GetAtt`: the stack's own output whose value is that same expression (GetTemplate and DescribeStacks);
  otherwise, for the attributes whose form the service documents, built from the physical id (a KMS key ARN,
  arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID; an S3 bucket ARN, arn:PARTITION:s3:::NAME).
- `Fn::GetStackOutput` (CDK's weak cross-stack reference) and `Fn::ImportValue` (its strong one): DescribeStacks
  outputs and ListExports. A `RoleArn` in another account (a cross-account read) is refused.
- `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::Sub`: evaluated here.

Never a wrong value and never a secret: a stack that is not settled (in progress, failed, rolled back at create) is
refused, not read; a value that is a secret by its source (a dynamic reference `{{resolve:...}}`, a NoEcho
parameter, a secret-valued attribute, an output holding one of these) or by its place (a v1 Secret's data) is
refused; a CDK token `make synth` did not render (a list or number token) is refused rather than copied.

Every object in these files is applied by CDK (aws-eks-v2 KubernetesManifest: `kubectl create --save-config` on
create, client-side `kubectl apply --prune -l LABEL` when its manifest changes, aws-cdk-lib 2.275.0
custom-resource-handlers/dist/aws-eks-v2/kubectl-handler/apply/__init__.py). The written objects carry the prune
label CDK adds to them (k8s-manifest.js `injectPruneLabel`), read from the deployed template, so `kubectl diff`
shows only real changes. The output also lists what else the stacks apply to the cluster (Helm releases, other
manifests, patches, EKS add-ons), so nobody applies them a second time.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterable, Iterator
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

from ops.errors import BadInputError, OpsError, aws_error_code

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

# Stack states whose outputs and resources are what is deployed (CloudFormation API reference, StackStatus). Any
# *_IN_PROGRESS state may still change them; CREATE_FAILED, ROLLBACK_* (a failed create), DELETE_*, UPDATE_FAILED,
# UPDATE_ROLLBACK_FAILED, IMPORT_ROLLBACK_FAILED and REVIEW_IN_PROGRESS hold nothing or a partial state.
SETTLED_STATUSES = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
)

# CDK's token encodings (aws-cdk-lib 2.275.0 core/lib/private/encoding.js): app.py renders string tokens
# `${Token[...]}` only; a list token `#{Token[...]}` or a number token (a double whose top 16 bits are 0xFBFF,
# `-1.88...e+289` as text) left in a chart has no expression to evaluate.
UNRENDERED_TOKEN = re.compile(r"\$\{Token\[|#\{Token\[|-1\.\d{10,16}e\+289")
NUMBER_TOKEN_MARKER = 0xFBFF

# Values that are secrets by their source. A dynamic reference is filled in by CloudFormation from SSM or Secrets
# Manager at deploy time (CloudFormation User Guide, dynamic references); these attributes return a secret
# (CloudFormation template reference, each type's Fn::GetAtt return values).
DYNAMIC_REFERENCE = "{{resolve:"
SECRET_ATTRIBUTES = frozenset(
    {
        ("AWS::IAM::AccessKey", "SecretAccessKey"),
        ("AWS::Cognito::UserPoolClient", "ClientSecret"),
        ("AWS::AppSync::ApiKey", "ApiKey"),
    }
)

# The resources through which CDK applies things to the cluster (aws-cdk-lib 2.275.0 aws-eks-v2/lib k8s-manifest.js,
# helm-chart.js, k8s-patch.js `RESOURCE_TYPE`) and the add-ons EKS installs for CloudFormation.
MANIFEST_TYPE = "Custom::AWSCDK-EKS-KubernetesResource"
HELM_CHART_TYPE = "Custom::AWSCDK-EKS-HelmChart"
PATCH_TYPE = "Custom::AWSCDK-EKS-KubernetesPatch"
ADDON_TYPE = "AWS::EKS::Addon"


class UnresolvableError(Exception):
    """An expression this command cannot evaluate; the message says why."""


# --- the deployed stacks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployedStack:
    name: str
    stack_id: str
    outputs: dict[str, str]
    parameters: dict[str, str] = field(default_factory=dict)

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


@dataclass(frozen=True)
class PinnedEnvironment:
    """The account and region the synth pins a stack to (cdk.out manifest.json), None where it is agnostic."""

    account: str | None
    region: str | None


class DeployedStacks:
    """Reads the deployed stacks through CloudFormation, each call once per stack."""

    def __init__(self, session: boto3.Session, pinned: dict[str, PinnedEnvironment] | None = None) -> None:
        self._session = session
        self._pinned = pinned or {}
        self._clients: dict[str, Any] = {}
        self._stacks: dict[tuple[str, str], DeployedStack] = {}
        self._resources: dict[tuple[str, str], dict[str, StackResource]] = {}
        self._templates: dict[tuple[str, str], dict[str, Any]] = {}
        self._exports: dict[str, dict[str, tuple[str, str]]] = {}

    def _client(self, region: str) -> Any:
        if region not in self._clients:
            self._clients[region] = self._session.client("cloudformation", region_name=region)
        return self._clients[region]

    def stack(self, name: str, region: str) -> DeployedStack:
        if (name, region) not in self._stacks:
            pinned = self._pinned.get(name)
            if pinned is not None and pinned.region is not None and pinned.region != region:
                raise UnresolvableError(
                    f"the synth (cdk.out) pins stack {name} to region {pinned.region}, not {region}: "
                    f"pass --region {pinned.region}"
                )
            try:
                (described,) = self._client(region).describe_stacks(StackName=name)["Stacks"]
            except ClientError as error:
                if aws_error_code(error) == "ValidationError":
                    raise UnresolvableError(f"stack {name} is not deployed in {region}") from None
                raise
            status = str(described.get("StackStatus", ""))
            if status not in SETTLED_STATUSES:
                reason = described.get("StackStatusReason")
                wait = " (wait until it settles, then run this again)" if status.endswith("_IN_PROGRESS") else ""
                raise UnresolvableError(
                    f"stack {name} in {region} is {status}{f' ({reason})' if reason else ''}, so its outputs are not "
                    f"a deployed state{wait}"
                )
            outputs = {o["OutputKey"]: str(o.get("OutputValue", "")) for o in described.get("Outputs", [])}
            parameters = {
                p["ParameterKey"]: str(p.get("ResolvedValue", p.get("ParameterValue", "")))
                for p in described.get("Parameters", [])
            }
            deployed = DeployedStack(name, described["StackId"], outputs, parameters)
            if pinned is not None and pinned.account is not None and pinned.account != deployed.account:
                raise UnresolvableError(
                    f"stack {name} was read from account {deployed.account}, but the synth (cdk.out) pins it to "
                    f"account {pinned.account}: use credentials for {pinned.account}"
                )
            self._stacks[name, region] = deployed
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
            # botocore decodes a JSON template (CDK deploys JSON); any other body offers nothing to match.
            if isinstance(body, str):
                try:
                    body = json.loads(body)
                except json.JSONDecodeError:
                    body = {}
            self._templates[key] = _plain(body) if isinstance(body, dict) else {}
        return self._templates[key]

    def exports(self, region: str) -> dict[str, tuple[str, str]]:
        """Export name -> (value, exporting stack id), every page of ListExports."""
        if region not in self._exports:
            pages = self._client(region).get_paginator("list_exports").paginate()
            self._exports[region] = {
                e["Name"]: (str(e["Value"]), str(e.get("ExportingStackId", "")))
                for page in pages
                for e in page["Exports"]
            }
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


def secret_source(expression: Any, template: dict[str, Any]) -> str | None:
    """Why `expression` (a fragment of `template`) yields a secret, or None: a dynamic reference, a NoEcho
    parameter or a secret-valued attribute anywhere in it."""
    if isinstance(expression, str):
        if DYNAMIC_REFERENCE in expression:
            return "it holds a dynamic reference ({{resolve:...}}), read from SSM or Secrets Manager at deploy time"
        return None
    if isinstance(expression, list):
        return next((r for item in expression if (r := secret_source(item, template))), None)
    if not isinstance(expression, dict):
        return None
    resources = template.get("Resources") or {}
    if set(expression) == {"Ref"} and isinstance(expression["Ref"], str):
        parameter = (template.get("Parameters") or {}).get(expression["Ref"]) or {}
        if str(parameter.get("NoEcho", "")).lower() == "true":
            return f"parameter {expression['Ref']} is NoEcho"
    if set(expression) == {"Fn::GetAtt"}:
        argument = expression["Fn::GetAtt"]
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else [*argument, "", ""][:2]
        resource_type = (resources.get(logical_id) or {}).get("Type")
        if (resource_type, attribute) in SECRET_ATTRIBUTES:
            return f"{logical_id}.{attribute} is the secret of a {resource_type}"
    if set(expression) == {"Fn::Sub"}:
        argument = expression["Fn::Sub"]
        text, variables = (argument, {}) if isinstance(argument, str) else [*argument, "", {}][:2]
        names = re.findall(r"\$\{([^}!][^}]*)\}", str(text))
        implied = [{"Fn::GetAtt": n} if "." in n else {"Ref": n} for n in names if n not in (variables or {})]
        return secret_source([text, variables, *implied], template)
    return next((r for value in expression.values() if (r := secret_source(value, template))), None)


_DYNAMIC_REFERENCE_REFUSED = (
    "it holds a dynamic reference ({{resolve:...}}), which CloudFormation fills in from SSM or Secrets Manager at "
    "deploy time: a value this command does not read, and a secret it never writes"
)


class Evaluator:
    """Evaluates CloudFormation expressions as the applying stack `stack` resolved them at deploy time."""

    def __init__(self, stacks: DeployedStacks, stack: DeployedStack) -> None:
        self._stacks = stacks
        self._stack = stack

    def string(self, expression: Any) -> str:
        value = self.value(expression)
        if not isinstance(value, str):
            raise UnresolvableError(f"it evaluates to a list ({value!r}), where a string belongs")
        if DYNAMIC_REFERENCE in value:  # an output or parameter holding one, as read
            raise UnresolvableError(_DYNAMIC_REFERENCE_REFUSED)
        return value

    def value(self, expression: Any) -> str | list[str]:
        if isinstance(expression, str):
            if DYNAMIC_REFERENCE in expression:
                raise UnresolvableError(_DYNAMIC_REFERENCE_REFUSED)
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

    def _refuse_secret(self, expression: Any, template: dict[str, Any], what: str) -> None:
        reason = secret_source(expression, template)
        if reason is not None:
            raise UnresolvableError(f"{what} is a secret ({reason}); this command never writes a secret value")

    def _ref(self, target: Any) -> str:
        if target in PSEUDO_PARAMETERS:
            return self._pseudo(str(target))
        template = self._stacks.template(self._stack)
        if str(target) in (template.get("Parameters") or {}):
            self._refuse_secret({"Ref": target}, template, f"parameter {target}")
            if str(target) not in self._stack.parameters:
                raise UnresolvableError(f"stack {self._stack.name} has no value for its parameter {target}")
            return self._stack.parameters[str(target)]
        return self._resource(str(target)).physical_id

    def _get_att(self, argument: Any) -> str:
        logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
        wanted = _plain({"Fn::GetAtt": [logical_id, attribute]})
        template = self._stacks.template(self._stack)
        self._refuse_secret(wanted, template, f"{logical_id}.{attribute}")
        for key, output in (template.get("Outputs") or {}).items():
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

    def _output(self, producer: DeployedStack, key: str) -> str:
        """An output of `producer`, refused when the expression it was made from is a secret."""
        template = self._stacks.template(producer)
        expression = ((template.get("Outputs") or {}).get(key) or {}).get("Value")
        self._refuse_secret(expression, template, f"output {key} of stack {producer.name}")
        return producer.outputs[key]

    def _get_stack_output(self, argument: Any) -> str:
        name = self.string(argument["StackName"])
        region = self.string(argument["Region"]) if "Region" in argument else self._stack.region
        output = self.string(argument["OutputName"])
        if "RoleArn" in argument:
            # A role in the producer's account: the read CloudFormation makes through it is cross-account
            # (Fn::GetStackOutput reference); this command reads only the applying stack's account.
            role_account = self.string(argument["RoleArn"]).split(":")[4:5]
            if role_account != [self._stack.account]:
                raise UnresolvableError(
                    f"it reads stack {name} through the role {self.string(argument['RoleArn'])} in another account; "
                    f"this command reads only account {self._stack.account}"
                )
        producer = self._stacks.stack(name, region)
        if output not in producer.outputs:
            raise UnresolvableError(f"stack {name} in {region} has no output {output}")
        return self._output(producer, output)

    def _import_value(self, argument: Any) -> str:
        name = self.string(argument)
        exports = self._stacks.exports(self._stack.region)
        if name not in exports:
            raise UnresolvableError(f"no stack in {self._stack.region} exports {name}")
        value, exporting_stack_id = exports[name]
        exporter_name = exporting_stack_id.split("/")[1] if exporting_stack_id.count("/") >= 2 else ""
        if not exporter_name:
            return value
        exporter = self._stacks.stack(exporter_name, self._stack.region)
        template = self._stacks.template(exporter)
        for output in (template.get("Outputs") or {}).values():
            if (output.get("Export") or {}).get("Name") == name:
                self._refuse_secret(output.get("Value"), template, f"export {name} of stack {exporter_name}")
        return value

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


# --- what CDK applies to the cluster ---------------------------------------------------------------------------


def object_identity(document: Any) -> str:
    """`Kind namespace/name` (or `Kind name`) of a manifest object, for messages and matching."""
    if not isinstance(document, dict):
        return "object"
    metadata = document.get("metadata") or {}
    kind = document.get("kind", "object")
    name = metadata.get("name", "?")
    return f"{kind} {metadata['namespace']}/{name}" if metadata.get("namespace") else f"{kind} {name}"


def _template_text(value: Any) -> str:
    """A template string property as text, each deploy-time part shown as `0` (valid inside and outside a JSON
    string, so a manifest CDK joined around its tokens still parses; only the objects' names are read from it)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_template_text(part) for part in parts)
    return "0"


@dataclass(frozen=True)
class AppliedManifest:
    """One KubernetesManifest of a deployed stack: the objects it applies and the prune label CDK gives them."""

    stack: str
    logical_id: str
    prune_label: str | None
    objects: tuple[str, ...]


@dataclass(frozen=True)
class ClusterChanges:
    """What one deployed stack applies to the cluster through CloudFormation."""

    stack: str
    manifests: tuple[AppliedManifest, ...]
    others: tuple[tuple[str, str], ...]  # (logical id, what it applies)


def cluster_changes(stack: str, template: dict[str, Any]) -> ClusterChanges:
    manifests, others = [], []
    for logical_id, resource in (template.get("Resources") or {}).items():
        kind, properties = resource.get("Type"), resource.get("Properties") or {}
        if kind == MANIFEST_TYPE:
            try:
                documents = json.loads(_template_text(properties.get("Manifest", "[]")))
            except json.JSONDecodeError:
                documents = []
            label = properties.get("PruneLabel")
            objects = tuple(object_identity(d) for d in documents if isinstance(d, dict))
            manifests.append(AppliedManifest(stack, logical_id, label if isinstance(label, str) else None, objects))
        elif kind == HELM_CHART_TYPE:
            version = f" {_template_text(properties['Version'])}" if properties.get("Version") else ""
            others.append(
                (
                    logical_id,
                    f"Helm release {_template_text(properties.get('Release', '?'))} (chart "
                    f"{_template_text(properties.get('Chart', 'from an asset'))}{version}) in namespace "
                    f"{_template_text(properties.get('Namespace', 'default'))}",
                )
            )
        elif kind == PATCH_TYPE:
            others.append(
                (
                    logical_id,
                    f"patch of {_template_text(properties.get('ResourceName', '?'))} in namespace "
                    f"{_template_text(properties.get('ResourceNamespace', 'default'))}",
                )
            )
        elif kind == ADDON_TYPE:
            others.append((logical_id, f"EKS add-on {_template_text(properties.get('AddonName', '?'))}"))
    return ClusterChanges(stack, tuple(manifests), tuple(others))


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
    applied_as: AppliedManifest | None = None
    account: str = ""

    def objects(self) -> Iterator[str]:
        for document in self.documents:
            yield object_identity(document)


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


def _unrendered_token(node: Any) -> bool:
    if isinstance(node, str):
        return UNRENDERED_TOKEN.search(node) is not None
    if isinstance(node, float):
        (top_bits,) = struct.unpack(">H", struct.pack(">d", node)[:2])
        return bool(top_bits == NUMBER_TOKEN_MARKER)
    return False


def _resolve_tree(node: Any, evaluator: Evaluator, found: list[str]) -> Any:
    if _unrendered_token(node):
        raise UnresolvableError(
            f"{node!r} is a CDK list or number token `make synth` does not render as <deploy-time ...>, so its "
            "deploy-time value is unknown here"
        )
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


def _holds_placeholder(node: Any) -> bool:
    if isinstance(node, str):
        return PLACEHOLDER in node
    if isinstance(node, dict):
        return any(_holds_placeholder(k) or _holds_placeholder(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_holds_placeholder(item) for item in node)
    return False


def _secret_data_with_deploy_time_values(document: Any) -> bool:
    """A v1 Secret whose data would take a deploy-time value: the value is a secret by where it goes."""
    return (
        isinstance(document, dict)
        and document.get("apiVersion") == "v1"
        and document.get("kind") == "Secret"
        and any(_holds_placeholder(document.get(key)) for key in ("data", "stringData"))
    )


def _with_prune_label(document: Any, label: str) -> Any:
    """The object as CDK applies it: the prune label first among its labels (k8s-manifest.js injectPruneLabel)."""
    if not isinstance(document, dict) or not document.get("kind"):
        return document
    metadata = dict(document.get("metadata") or {})
    metadata["labels"] = {label: "", **(metadata.get("labels") or {})}
    return {**document, "metadata": metadata}


def match_applied(chart: ChartFile, applied: Iterable[AppliedManifest]) -> AppliedManifest | None:
    """The deployed KubernetesManifest of the applying stack sharing the most objects with the chart, if any."""
    wanted = set(chart.objects())
    candidates = [(len(wanted & set(m.objects)), m) for m in applied if m.stack == chart.stack]
    best = max(candidates, key=lambda pair: pair[0], default=(0, None))
    return best[1] if best[0] else None


def resolve_chart_file(chart: ChartFile, stacks: DeployedStacks, region: str, errors: list[str]) -> None:
    """Fill `chart.resolved`; each expression that cannot be evaluated adds an error naming file, object, expression."""
    try:
        stack = stacks.stack(chart.stack, region)
        evaluator = Evaluator(stacks, stack)
        chart.applied_as = match_applied(chart, cluster_changes(stack.name, stacks.template(stack)).manifests)
    except UnresolvableError as error:
        errors.append(f"{chart.path}: applied by {chart.stack}, but {error}")
        return
    chart.account = stack.account
    label = chart.applied_as.prune_label if chart.applied_as else None
    for document in chart.documents:
        found: list[str] = []
        if _secret_data_with_deploy_time_values(document):
            errors.append(
                f"{chart.path}: {object_identity(document)}: a deploy-time value in a Secret's data is a secret; "
                "this command never writes a secret value"
            )
            continue
        try:
            resolved = _resolve_tree(document, evaluator, found)
        except UnresolvableError as error:
            errors.append(f"{chart.path}: {object_identity(document)}: {error}")
            continue
        chart.resolved.append(_with_prune_label(resolved, label) if label else resolved)
        chart.expressions += len(found)


class _BlockStrings(yaml.SafeDumper):
    """Multi-line strings (LiteLLM's config, PromQL) as block literals, as `make synth` writes them."""


_BlockStrings.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def resolved_header(chart: ChartFile, region: str) -> str:
    if chart.applied_as is not None:
        owner = (
            f"# CDK owns every object below: the stack {chart.stack} applies them (its resource "
            f"{chart.applied_as.logical_id})\n# with CDK's kubectl provider whenever a deploy changes them"
            + (f", labelled {chart.applied_as.prune_label}" if chart.applied_as.prune_label else "")
            + ".\n"
        )
    else:
        owner = (
            f"# CDK owns every object below: the stack {chart.stack} will apply them with CDK's kubectl provider; the\n"
            "# deployed stack does not apply this chart yet, so `kubectl diff` shows its objects as new.\n"
        )
    return (
        f"{RESOLVED_MARK} from {chart.path.name} (environment {chart.environment}, {chart.prefix}): values\n"
        f"# read from the stacks deployed in account {chart.account}, region {region}.\n"
        + owner
        + "# Compare with `kubectl diff -f`; applying them yourself or syncing them from a GitOps tool gives them a\n"
        "# second owner: the next deploy that changes them overwrites its changes, `cdk destroy` deletes them.\n"
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


# --- the synthesized assembly ----------------------------------------------------------------------------------


def read_assembly(cdk_out: Path) -> dict[str, PinnedEnvironment]:
    """Stack name -> the environment the synth pins it to, from cdk.out/manifest.json ({} when there is none).

    An environment is `aws://ACCOUNT/REGION`, `unknown-account`/`unknown-region` where the stack is agnostic
    (cloud assembly schema, artifact `environment`)."""
    path = cdk_out / "manifest.json"
    if not path.is_file():
        return {}
    try:
        artifacts = json.loads(path.read_text(encoding="utf-8")).get("artifacts") or {}
    except (OSError, json.JSONDecodeError, AttributeError) as error:
        raise BadInputError(f"--cdk-out: {path} cannot be read as a cloud assembly manifest ({error})") from None
    pinned = {}
    for artifact_id, artifact in artifacts.items():
        if not isinstance(artifact, dict) or artifact.get("type") != "aws:cloudformation:stack":
            continue
        name = str((artifact.get("properties") or {}).get("stackName") or artifact_id)
        account, _, region = str(artifact.get("environment", "")).removeprefix("aws://").partition("/")
        pinned[name] = PinnedEnvironment(
            None if account.startswith("unknown-") or not account else account,
            None if region.startswith("unknown-") or not region else region,
        )
    return pinned


# --- the command -----------------------------------------------------------------------------------------------


def manifests(
    region: Annotated[
        str | None,
        typer.Option(help="Region the stacks are deployed in (default: the synth's pinned region, else AWS_REGION)."),
    ] = None,
    manifests_dir: Annotated[
        Path, typer.Option("--manifests", help="The charts `make synth` wrote, with <deploy-time ...> values.")
    ] = Path("dist/k8s"),
    cdk_out: Annotated[
        Path, typer.Option(help="The cloud assembly of the same synth: its stacks and their pinned account/region.")
    ] = Path("cdk.out"),
    out: Annotated[Path, typer.Option(help="Where to write the resolved files.")] = Path("dist/k8s-resolved"),
) -> None:
    """Resolve dist/k8s's deploy-time values from the deployed stacks into files for `kubectl diff` or GitOps."""
    charts = _read_charts(manifests_dir, out)
    pinned = read_assembly(cdk_out)
    pinned_regions = {pinned[c.stack].region for c in charts if c.stack in pinned and pinned[c.stack].region}
    chosen = region or (pinned_regions.pop() if len(pinned_regions) == 1 else None) or boto3.Session().region_name
    if not chosen:
        raise BadInputError("--region is missing: give the region the stacks are deployed in (or set AWS_REGION)")
    session = boto3.Session(region_name=chosen)
    stacks = DeployedStacks(session, pinned)
    # What the stacks apply is read before anything is written, so a refused read leaves --out as it was.
    changes, unread = read_cluster_changes(stacks, sorted({c.stack for c in charts} | set(pinned)), chosen)
    written = resolve_manifests(session, charts, out, chosen, stacks=stacks)
    console = Console(highlight=False, emoji=False)
    console.print(ownership_table(charts))
    console.print(other_changes_table(charts, changes, unread))
    if not pinned:
        console.print(Text(f"{cdk_out} has no cloud assembly: only the stacks named in {manifests_dir} were read."))
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


def _client_error(error: ClientError) -> OpsError:
    return OpsError(
        f"reading the deployed stacks failed in {error.operation_name}: "
        f"{error.response.get('Error', {}).get('Code')}: {error.response.get('Error', {}).get('Message')}"
    )


def resolve_manifests(
    session: boto3.Session,
    charts: list[ChartFile],
    out: Path,
    region: str,
    *,
    stacks: DeployedStacks | None = None,
) -> list[Path]:
    """Resolve every chart; writes nothing unless all of them resolve (OpsError lists every failure)."""
    stacks = stacks or DeployedStacks(session)
    errors: list[str] = []
    try:
        for chart in charts:
            resolve_chart_file(chart, stacks, region, errors)
    except ClientError as error:
        raise _client_error(error) from None
    if errors:
        raise OpsError(
            f"{len(errors)} deploy-time values could not be resolved, nothing written:\n  " + "\n  ".join(errors)
        )
    return write_resolved(charts, out, region)


def read_cluster_changes(
    stacks: DeployedStacks, names: Iterable[str], region: str
) -> tuple[list[ClusterChanges], list[str]]:
    """What each of the environment's deployed stacks applies to the cluster; the stacks not read, with why."""
    changes, unread = [], []
    try:
        for name in names:
            try:
                stack = stacks.stack(name, region)
            except UnresolvableError as error:
                unread.append(str(error))
                continue
            changes.append(cluster_changes(name, stacks.template(stack)))
    except ClientError as error:
        raise _client_error(error) from None
    return changes, unread


def ownership_table(charts: list[ChartFile]) -> Table:
    table = Table(
        title="Objects CDK owns (applied by the stack's kubectl provider whenever a deploy changes them)",
        title_justify="left",
    )
    table.add_column("file")
    table.add_column("applied by")
    table.add_column("values resolved", justify="right")
    table.add_column("objects")
    for chart in charts:
        applied = f"{chart.stack}\n{chart.applied_as.logical_id}" if chart.applied_as else f"{chart.stack}\n(not yet)"
        table.add_row(Text(chart.path.name), Text(applied), str(chart.expressions), Text("\n".join(chart.objects())))
    return table


def other_changes_table(charts: list[ChartFile], changes: list[ClusterChanges], unread: list[str]) -> Table:
    """Everything else the stacks apply to the cluster: Helm releases, manifests not in dist/k8s, patches, add-ons."""
    shown = {(c.stack, c.applied_as.logical_id) for c in charts if c.applied_as}
    table = Table(
        title="Also applied to the cluster by the stacks (not in dist/k8s): install none of these another way",
        title_justify="left",
    )
    table.add_column("stack")
    table.add_column("resource")
    table.add_column("applies")
    for stack in changes:
        for manifest in stack.manifests:
            if (stack.stack, manifest.logical_id) not in shown:
                table.add_row(Text(stack.stack), Text(manifest.logical_id), Text("\n".join(manifest.objects)))
        for logical_id, what in stack.others:
            table.add_row(Text(stack.stack), Text(logical_id), Text(what))
    for reason in unread:
        table.add_row(Text("-"), Text("-"), Text(f"not read: {reason}"))
    return table
