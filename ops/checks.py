"""The outcome of one check, and how a list of them is shown: a rich table by default, JSON with `--json`.

`verify` and `readiness` report the same way: every row names the check, its result and the evidence that
decided it (what was read, from where), so a failing row says what to look at without a second command.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

# "skip": the check does not apply to this configuration (e.g. DCGM series with Neuron accelerators).
# "needs a person": a readiness item no artifact or API can decide.
Status = Literal["pass", "fail", "skip", "needs a person"]

_STYLE: Mapping[Status, str] = {"pass": "green", "fail": "bold red", "skip": "dim", "needs a person": "yellow"}


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    evidence: str


@dataclass(frozen=True)
class Verdict:
    """What one check found; the list it belongs to gives it its name."""

    status: Status
    evidence: str

    def named(self, name: str) -> CheckResult:
        return CheckResult(name, self.status, self.evidence)


def passes(evidence: str) -> Verdict:
    return Verdict("pass", evidence)


def fails(evidence: str) -> Verdict:
    return Verdict("fail", evidence)


def passes_if(condition: bool, evidence: str) -> Verdict:
    return Verdict("pass" if condition else "fail", evidence)


def skipped(evidence: str) -> Verdict:
    return Verdict("skip", evidence)


def for_a_person(evidence: str) -> Verdict:
    return Verdict("needs a person", evidence)


def any_failed(results: Sequence[CheckResult]) -> bool:
    return any(result.status == "fail" for result in results)


def summary(results: Sequence[CheckResult]) -> str:
    """`11 passed, 1 failed, 2 need a person` (only the statuses that occur)."""
    counts = Counter(result.status for result in results)
    words: dict[Status, str] = {
        "pass": "passed",
        "fail": "failed",
        "skip": "skipped",
        "needs a person": "need a person",
    }
    return ", ".join(f"{counts[status]} {words[status]}" for status in words if counts[status])


def render_table(console: Console, title: str, results: Sequence[CheckResult]) -> None:
    table = Table(title=Text(title), title_justify="left", show_lines=False, expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("evidence", overflow="fold")
    for result in results:
        # Text, not markup: evidence holds brackets (`['spot', 'on-demand']`) and ARNs with `:secret:`, which
        # console markup and emoji codes would eat.
        table.add_row(Text(result.name), Text(result.status, style=_STYLE[result.status]), Text(result.evidence))
    console.print(table)
    console.print(Text(summary(results)))


def render_json(command: str, results: Sequence[CheckResult], **context: Any) -> str:
    """One JSON document: the command, its context (env, cluster...), `ok` and every check in order."""
    return json.dumps(
        {"command": command, **context, "ok": not any_failed(results), "checks": [asdict(r) for r in results]},
        indent=2,
    )
