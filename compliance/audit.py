"""What the compliance plugins raised on one synth, and whether every acknowledgment earned its place.

The source is CDK's own `validation-report.json` in the cloud assembly: each plugin's unacknowledged
findings (`violations`) and acknowledged ones (`suppressedViolations`, with the acknowledgment's id,
reason and construct). Acknowledgments themselves are read from the construct tree. Two things fail
synth here, after CDK has written the assembly:

- an acknowledgment that matches no raised finding: it hides nothing today and would hide a future
  finding nobody reviewed;
- an acknowledgment placed above the construct that raises the finding (on a parent, or a stack),
  where it would also cover anything added under that parent later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Validations
from constructs import IConstruct


class ComplianceError(RuntimeError):
    """An acknowledgment is stale or misplaced; the message lists each, one sentence per line."""


@dataclass(frozen=True)
class Finding:
    """One finding of one rule on one resource, as a plugin reported it."""

    plugin: str
    rule: str
    construct: str
    severity: str
    description: str

    def in_scope(self, path: str) -> bool:
        """Raised under the construct at `path`: a stack (`genai-dev-data`, or `dev/genai-dev-data` inside a Stage)
        or a Stage."""
        return self.construct.startswith(f"{path}/")


@dataclass(frozen=True)
class AcknowledgedFinding(Finding):
    acknowledged_at: str
    reason: str


@dataclass(frozen=True)
class Acknowledgment:
    """One `acknowledge(...)` call: the plugin and finding it names, where it sits, and why."""

    path: str
    plugin: str
    finding_id: str
    reason: str


@dataclass
class ComplianceAudit:
    failed: list[Finding] = field(default_factory=list)
    acknowledged: list[AcknowledgedFinding] = field(default_factory=list)
    acknowledgments: list[Acknowledgment] = field(default_factory=list)

    def within(self, path: str) -> ComplianceAudit:
        """The findings and acknowledgments under the construct at `path` (one environment's Stage)."""
        return ComplianceAudit(
            failed=[f for f in self.failed if f.in_scope(path)],
            acknowledged=[f for f in self.acknowledged if f.in_scope(path)],
            acknowledgments=[a for a in self.acknowledgments if a.path.startswith(f"{path}/")],
        )

    def stale(self) -> list[Acknowledgment]:
        used = {(f.acknowledged_at, f.plugin, f.rule) for f in self.acknowledged}
        return [a for a in self.acknowledgments if (a.path, a.plugin, a.finding_id) not in used]

    def misplaced(self) -> list[AcknowledgedFinding]:
        """Acknowledged on something other than the raising resource or the L2 construct that owns it."""
        return [f for f in self.acknowledged if f.acknowledged_at not in _owners(f.construct)]

    def problems(self) -> list[str]:
        stale = [
            f"the acknowledgment of {a.finding_id} on {a.path} matches no finding {a.plugin} raised; "
            "remove it (it would hide a future finding nobody reviewed)"
            for a in self.stale()
        ]
        misplaced = [
            f"{f.rule} is raised by {f.construct} but acknowledged on {f.acknowledged_at}; "
            "acknowledge it on the resource that raises it or the construct that owns that resource"
            for f in self.misplaced()
        ]
        return stale + misplaced

    def check(self) -> None:
        problems = self.problems()
        if problems:
            raise ComplianceError("compliance acknowledgments need attention:\n- " + "\n- ".join(problems))


def _owners(construct_path: str) -> tuple[str, ...]:
    """The resource itself and, for an L1 named `Resource`, the L2 construct whose default child it is."""
    if construct_path.endswith("/Resource"):
        return construct_path, construct_path.rsplit("/", 1)[0]
    return (construct_path,)


def acknowledgments_in(root: IConstruct, plugins: frozenset[str]) -> list[Acknowledgment]:
    """Every acknowledgment in the tree of a finding of one of `plugins` (aws-cdk-lib makes its own for
    other plugins, e.g. CloudFormation-Validate, and for annotations; those are not this audit's)."""
    found = []
    for construct in root.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                continue
            for qualified_id, reason in dict(entry.data).items():
                plugin, _, finding_id = str(qualified_id).partition("::")
                if plugin in plugins:
                    found.append(Acknowledgment(construct.node.path, plugin, finding_id, str(reason)))
    return sorted(found, key=lambda a: (a.path, a.finding_id))


def read_validation_report(assembly_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((assembly_dir / "validation-report.json").read_text(encoding="utf-8"))
    return report


def audit(root: IConstruct, assembly_dir: Path, plugins: frozenset[str]) -> ComplianceAudit:
    """The findings of this synth's validation report, and the tree's acknowledgments of `plugins`' findings."""
    result = ComplianceAudit(acknowledgments=acknowledgments_in(root, plugins))
    for plugin_report in read_validation_report(assembly_dir).get("pluginReports", []):
        plugin = plugin_report["pluginName"]
        if plugin not in plugins:  # CDK's annotations and template validation: not compliance findings
            continue
        for violation in plugin_report.get("violations", []):
            result.failed.extend(_findings(plugin, violation))
        for violation in plugin_report.get("suppressedViolations") or []:
            for finding in _findings(plugin, violation):
                result.acknowledged.append(
                    AcknowledgedFinding(
                        **vars(finding), acknowledged_at=violation["acknowledgedAt"], reason=violation.get("reason", "")
                    )
                )
    result.acknowledged.sort(key=lambda f: (f.construct, f.rule))
    result.failed.sort(key=lambda f: (f.construct, f.rule))
    return result


def _findings(plugin: str, violation: dict[str, Any]) -> list[Finding]:
    return [
        Finding(
            plugin=plugin,
            rule=violation["ruleName"],
            construct=where.get("constructPath", ""),
            severity=violation["severity"],
            description=violation["description"],
        )
        for where in violation.get("violatingConstructs", [])
    ]
