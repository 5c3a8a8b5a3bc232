"""promtool on a rule file as written (not rebuilt from expressions): `check rules` and `test rules`.

`tests/prometheus_harness.py` writes the rules itself from the expressions it is given; these two take an
existing rule file, e.g. the synthesized `prometheus/alerting_rules.yml`, so the unit tests run exactly what
Prometheus loads. Test files are written as JSON, which promtool reads as YAML.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.prometheus_harness import PROMTOOL_TIMEOUT_S, PromQLError, RuleTestError, require_tool

__all__ = ["check_rule_file", "run_rule_file_tests"]


def _promtool(args: Sequence[str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [require_tool("promtool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    return proc.returncode, "\n".join(part.strip() for part in (proc.stdout, proc.stderr) if part.strip())


def check_rule_file(rule_file: Path, *, lint_fatal: bool = True) -> str:
    """`promtool check rules [--lint-fatal] FILE`; returns promtool's output, raises PromQLError if it fails
    (with --lint-fatal a lint finding such as a duplicate rule fails too)."""
    args = ["check", "rules", *(["--lint-fatal"] if lint_fatal else []), rule_file.name]
    code, output = _promtool(args, cwd=rule_file.parent)
    if code != 0:
        raise PromQLError(f"promtool check rules {rule_file} failed (exit {code}):\n{output}", output)
    return output


def run_rule_file_tests(
    rule_file: Path, tests: Sequence[Mapping[str, Any]], *, evaluation_interval: str = "1m"
) -> None:
    """`promtool test rules` with `tests` (promtool unit-test entries) against a copy of `rule_file`, which is
    used as is: the test file names it in `rule_files`. Raises RuleTestError with promtool's output."""
    if not tests:
        raise ValueError("run_rule_file_tests needs at least one test")
    with tempfile.TemporaryDirectory(prefix="promtool-rules-") as tmp:
        workdir = Path(tmp)
        shutil.copyfile(rule_file, workdir / rule_file.name)
        document = {"rule_files": [rule_file.name], "evaluation_interval": evaluation_interval, "tests": list(tests)}
        (workdir / "tests.yml").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        code, output = _promtool(["test", "rules", "tests.yml"], cwd=workdir)
    if code != 0:
        raise RuleTestError(f"promtool test rules on {rule_file} failed (exit {code}):\n{output}", output)
