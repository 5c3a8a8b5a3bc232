"""Runs checkov's Kubernetes checks on a directory of manifests (or its CloudFormation checks on a cloud
assembly), offline, and parses its JSON report.

checkov lives in its own venv, `.venv-checkov` at the repo root (its dependency pins clash with the
project's), so it is run as a CLI, never imported. Each run takes about 2 s, nearly all of it
checkov's start-up, whatever the number of manifests.

Offline: `--skip-download` (or BC_SKIP_MAPPING=TRUE) stops the Prisma Cloud guidelines/mapping
download, and CKV_SKIP_PACKAGE_UPDATE_CHECK=true stops the version check against PyPI that checkov
otherwise makes on every start (cached for an hour in ~/.cache/checkov). No API key is ever passed, so
nothing is uploaded either.

Suppressing a check on an object: an annotation on the object's own `metadata` (not the pod
template's), one check per key, `checkov.io/skip<anything>: <CHECK_ID>=<reason>`, e.g.
`checkov.io/skip1: CKV_K8S_43=digest pinned by the release pipeline`. The reason must not contain
`=`: checkov 3.3.30 crashes on it (reported here as a CheckovError).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKOV_BIN_ENV = "CHECKOV_BIN"
DEFAULT_CHECKOV_BIN = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
INSTALL_COMMAND = "python3 -m venv .venv-checkov && .venv-checkov/bin/python -m pip install -r requirements-checkov.txt"

# `--soft-fail`: exit 0 whatever the findings, so any other exit status is checkov failing to run.
# `--compact`: no code blocks in the report (a quarter of the JSON). Not `--quiet`: it drops the
# skipped checks from the JSON report.
CHECKOV_ARGS: tuple[str, ...] = (
    "--output",
    "json",
    "--compact",
    "--skip-download",
    "--soft-fail",
)
OFFLINE_ENV: Mapping[str, str] = {
    "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
    "BC_SKIP_MAPPING": "TRUE",
}
# Variables checkov reads that could give it an API key, a platform URL or another set of checks.
_SCRUBBED_ENV_PREFIXES = ("BC_", "CKV_", "CHECKOV_", "PRISMA_")
DEFAULT_TIMEOUT_S = 300.0


class CheckovNotInstalledError(FileNotFoundError):
    """The checkov executable is not where the runner looks for it."""


class CheckovError(RuntimeError):
    """checkov ran but failed, or printed something that is not a report."""


@dataclass(frozen=True)
class Finding:
    """One check on one resource. `resource` is checkov's `Kind.namespace.name` ("default" for objects
    without a namespace, cluster-scoped ones too); the Pod that checkov derives from a workload for its
    graph checks is `Pod.<namespace>.<workload name>.<label>-<value>`. `file` is relative to the scanned
    directory."""

    check_id: str
    check_name: str
    resource: str
    file: str
    lines: tuple[int, int] | None = None
    suppress_comment: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.lines[0]}" if self.lines else self.file
        reason = f" [skipped: {self.suppress_comment}]" if self.suppress_comment is not None else ""
        return f"{self.check_id} {self.resource} ({where}): {self.check_name}{reason}"


@dataclass(frozen=True)
class CheckovReport:
    passed: int
    failed: list[Finding]
    skipped: list[Finding]
    # Files checkov reported it could not parse. Its Kubernetes runner mostly drops unparsable YAML
    # silently instead, so schema-validate the manifests separately.
    parsing_errors: list[str] = field(default_factory=list)
    checkov_version: str | None = None

    def failed_ids(self, resource: str | None = None) -> set[str]:
        return {f.check_id for f in self.failed if resource is None or f.resource == resource}

    def skipped_ids(self, resource: str | None = None) -> set[str]:
        return {f.check_id for f in self.skipped if resource is None or f.resource == resource}

    def describe(self) -> str:
        """A readable summary, for assertion messages."""
        lines = [f"checkov {self.checkov_version}: {self.passed} passed, {len(self.failed)} failed, "]
        lines[0] += f"{len(self.skipped)} skipped"
        lines += [f"  FAILED  {f}" for f in self.failed]
        lines += [f"  SKIPPED {f}" for f in self.skipped]
        lines += [f"  PARSING ERROR {p}" for p in self.parsing_errors]
        return "\n".join(lines)


def checkov_binary() -> Path:
    """Where checkov is: $CHECKOV_BIN if set (an absolute path, a command on PATH, or a path relative to
    the repo root), else `.venv-checkov/bin/checkov` under the repo root. Raises CheckovNotInstalledError,
    naming the install command, when there is no executable there."""
    override = os.environ.get(CHECKOV_BIN_ENV, "").strip()
    if not override:
        candidate = DEFAULT_CHECKOV_BIN
    elif os.sep not in override:
        found = shutil.which(override)
        candidate = Path(found) if found else REPO_ROOT / override
    else:
        candidate = Path(override).expanduser()
        if not candidate.is_absolute():
            candidate = REPO_ROOT / candidate
    if not (candidate.is_file() and os.access(candidate, os.X_OK)):
        source = f"${CHECKOV_BIN_ENV}={override!r}" if override else "the default location"
        raise CheckovNotInstalledError(
            f"checkov is not installed: no executable at {candidate} ({source}). Install it from the repo root "
            f"with `{INSTALL_COMMAND}` (`make test` does this), or point ${CHECKOV_BIN_ENV} at a checkov executable."
        )
    return candidate


def checkov_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment checkov runs in: `base` (default: ours) without checkov's and the platforms'
    variables, plus the ones that keep it offline."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}
    env.update(OFFLINE_ENV)
    return env


def run_checkov(
    directory: Path,
    *,
    framework: str = "kubernetes",
    extra_args: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT_S,
) -> CheckovReport:
    """Run checkov's `framework` checks (`kubernetes`: every manifest under `directory`, multi-document
    YAML is fine; `cloudformation`: every template, e.g. in cdk.out) and return what it found.
    `extra_args` go to the checkov CLI as they are (e.g. `["--skip-check", "CKV_K8S_43"]`). A skip in
    a template is `Metadata.checkov.skip: [{id, comment}]` on the resource."""
    if not directory.is_dir():
        # checkov itself logs "does not exist; skipping it" and exits 0 with no report.
        raise FileNotFoundError(f"not a directory: {directory}")
    binary = checkov_binary()
    command = [
        str(binary),
        "--directory",
        str(directory.resolve()),
        "--framework",
        framework,
        *CHECKOV_ARGS,
        *extra_args,
    ]
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=checkov_env(),
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise CheckovError(f"checkov did not finish in {timeout:.0f} s: {' '.join(command)}") from e
    if proc.returncode != 0:
        raise CheckovError(
            f"checkov exited with status {proc.returncode}: {' '.join(command)}\n{_tail(proc.stderr or proc.stdout)}"
        )
    try:
        return parse_checkov_json(proc.stdout)
    except CheckovError as e:
        raise CheckovError(f"{e}\ncommand: {' '.join(command)}\nstderr:\n{_tail(proc.stderr)}") from e


def parse_checkov_json(text: str) -> CheckovReport:
    """Parse checkov's `--output json`: one report object, a list of them (one per framework that
    found something), or, when no check applied to anything, a bare summary object."""
    if not text.strip():
        raise CheckovError("checkov printed no report")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckovError(f"checkov's output is not JSON ({e}): {_tail(text, 500)}") from e
    reports = data if isinstance(data, list) else [data]
    passed = 0
    failed: list[Finding] = []
    skipped: list[Finding] = []
    parsing_errors: list[str] = []
    version: str | None = None
    for report in reports:
        report = _as_dict(report, "a report")
        if "results" in report:
            summary = _as_dict(report.get("summary", {}), "summary")
            results = _as_dict(report["results"], "results")
        elif "passed" in report and "failed" in report:  # the "no resources" shape: just a summary
            summary, results = report, {}
        else:
            raise CheckovError(f"unexpected checkov report, keys: {sorted(report)}")
        passed += int(summary.get("passed", len(_as_list(results.get("passed_checks"), "passed_checks"))))
        failed += [_finding(r) for r in _as_list(results.get("failed_checks"), "failed_checks")]
        skipped += [_finding(r) for r in _as_list(results.get("skipped_checks"), "skipped_checks")]
        parsing_errors += [str(p) for p in _as_list(results.get("parsing_errors"), "parsing_errors")]
        version = version or _optional_str(summary.get("checkov_version"))
    return CheckovReport(
        passed=passed,
        failed=sorted(failed, key=_sort_key),
        skipped=sorted(skipped, key=_sort_key),
        parsing_errors=sorted(parsing_errors),
        checkov_version=version,
    )


def _finding(record: object) -> Finding:
    record = _as_dict(record, "a check result")
    check_result = _as_dict(record.get("check_result") or {}, "check_result")
    line_range = record.get("file_line_range")
    lines = (int(line_range[0]), int(line_range[1])) if isinstance(line_range, list) and len(line_range) == 2 else None
    return Finding(
        check_id=str(record["check_id"]),
        check_name=str(record.get("check_name", "")),
        resource=str(record.get("resource", "")),
        file=str(record.get("file_path", "")).lstrip("/"),
        lines=lines,
        suppress_comment=_optional_str(check_result.get("suppress_comment", record.get("suppress_comment"))),
    )


def _sort_key(finding: Finding) -> tuple[str, str, str]:
    return (finding.file, finding.resource, finding.check_id)


def _as_dict(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CheckovError(f"unexpected checkov report: {what} is a {type(value).__name__}, not an object")
    return value


def _as_list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CheckovError(f"unexpected checkov report: {what} is a {type(value).__name__}, not a list")
    return value


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _tail(text: str, limit: int = 3000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]
