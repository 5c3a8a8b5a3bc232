"""CloudFormation's stack history as AWS reports it, for code that reads which stacks retained what.

moto's CloudFormation cannot stand in here: it creates neither Secrets Manager secrets nor Prometheus workspaces
from a template, keeps no DELETE_SKIPPED status (a deleted stack's resources stay CREATE_COMPLETE in its
ListStackResources), and reads a deleted stack by name. So ListStacks and ListStackResources are answered from
stacks a test writes down, the way botocore's Stubber answers (a `before-call` handler), with each response checked
against the service model's output shape. Registered as a built-in handler, so every boto3 session a test creates
afterwards (the CLI's own included) sees the same history; the other services stay moto's.

What AWS does that this keeps (CloudFormation API Reference): ListStacks returns deleted stacks (DELETE_COMPLETE)
for 90 days, nested stacks with ParentId and RootId; ListStackResources reads a deleted stack only by its unique
stack id (by name it answers ValidationError "Stack with id NAME does not exist"), and a resource a Retain policy
kept has the status DELETE_SKIPPED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters

ACCOUNT = "123456789012"
_WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class RecordedResource:
    logical_id: str
    physical_id: str
    type: str
    status: str


@dataclass
class RecordedStack:
    name: str
    status: str
    resources: list[RecordedResource]
    serial: str
    root: RecordedStack | None = None

    def stack_id(self, region: str) -> str:
        return f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{self.name}/{self.serial}"


@dataclass
class RecordedStacks:
    """The account's stacks in one region, deleted ones included; `register` makes boto3 answer from them."""

    region: str
    stacks: list[RecordedStack] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(
        self,
        name: str,
        status: str,
        resources: list[tuple[str, str, str, str]],
        *,
        root: RecordedStack | None = None,
    ) -> RecordedStack:
        """`resources`: (logical id, physical id, type, status) each."""
        stack = RecordedStack(
            name, status, [RecordedResource(*resource) for resource in resources], f"{len(self.stacks):08d}-0000", root
        )
        self.stacks.append(stack)
        return stack

    def handlers(self) -> list[tuple[str, Any]]:
        return [
            ("before-parameter-build.cloudformation", self._keep_parameters),
            ("before-call.cloudformation", self._answer),
        ]

    @staticmethod
    def _keep_parameters(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["recorded_parameters"] = dict(params)

    def _answer(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        parameters = context.get("recorded_parameters", {})
        self.calls.append((model.name, parameters))
        if model.name == "ListStacks":
            wanted = set(parameters.get("StackStatusFilter") or ())
            answer: dict[str, Any] = {
                "StackSummaries": [
                    self._summary(stack) for stack in self.stacks if not wanted or stack.status in wanted
                ]
            }
        elif model.name == "ListStackResources":
            stack = self._find(parameters["StackName"])
            if stack is None:
                error = {
                    "Code": "ValidationError",
                    "Message": f"Stack with id {parameters['StackName']} does not exist",
                }
                return AWSResponse(None, 400, {}, None), {"Error": error}
            answer = {
                "StackResourceSummaries": [
                    {
                        "LogicalResourceId": resource.logical_id,
                        "PhysicalResourceId": resource.physical_id,
                        "ResourceType": resource.type,
                        "LastUpdatedTimestamp": _WHEN,
                        "ResourceStatus": resource.status,
                    }
                    for resource in stack.resources
                ]
            }
        else:
            return None  # any other CloudFormation call goes to moto
        validate_parameters(answer, model.output_shape)
        return AWSResponse(None, 200, {}, None), answer

    def _find(self, name_or_id: str) -> RecordedStack | None:
        for stack in self.stacks:
            if stack.stack_id(self.region) == name_or_id:
                return stack
        live = [stack for stack in self.stacks if stack.name == name_or_id and stack.status != "DELETE_COMPLETE"]
        return live[0] if live else None

    def _summary(self, stack: RecordedStack) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "StackId": stack.stack_id(self.region),
            "StackName": stack.name,
            "CreationTime": _WHEN,
            "StackStatus": stack.status,
        }
        if stack.status == "DELETE_COMPLETE":
            summary["DeletionTime"] = _WHEN
        if stack.root is not None:
            summary["ParentId"] = summary["RootId"] = stack.root.stack_id(self.region)
        return summary
