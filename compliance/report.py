"""The compliance report: every acknowledgment with its finding id, reason and construct path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from constructs import IConstruct

from compliance.acknowledgments import METADATA_TYPE
from compliance.nag import PACKS


@dataclass(frozen=True)
class AcknowledgmentRecord:
    path: str
    finding_id: str
    reason: str


def collect_acknowledgments(root: IConstruct) -> list[AcknowledgmentRecord]:
    """Acknowledgments made through `compliance.acknowledgments.acknowledge`, sorted by path."""
    records = [
        AcknowledgmentRecord(construct.node.path, entry.data["id"], entry.data["reason"])
        for construct in root.node.find_all()
        for entry in construct.node.metadata
        if entry.type == METADATA_TYPE
    ]
    return sorted(records, key=lambda r: (r.path, r.finding_id))


def render_report(env_name: str, records: list[AcknowledgmentRecord]) -> str:
    lines = [
        f"# Compliance report: environment `{env_name}`",
        "",
        "Packs run on this synth (any unacknowledged error fails it): " + ", ".join(PACKS) + ".",
        "",
        f"{len(records)} acknowledged findings, each on the smallest construct that raises it:",
        "",
        "| construct | finding | reason |",
        "|---|---|---|",
    ]
    for record in records:
        reason = record.reason.replace("|", "\\|")
        lines.append(f"| `{record.path}` | `{record.finding_id}` | {reason} |")
    return "\n".join(lines) + "\n"


def write_report(root: IConstruct, env_name: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(env_name, collect_acknowledgments(root)), encoding="utf-8")
    return path
