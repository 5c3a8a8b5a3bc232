"""Mutation audit of platform_config/, k8s/ and compliance/: how many small code changes do the tests catch?

Mutants are made with the `ast` module, each one a replacement of one source segment (so its diff is one
small change), and applied only in a private copy of the checkout (`--workdir`, /tmp/mutation by default),
never in the checkout itself: other people edit it at the same time. For each mutant the copy's file is
rewritten, the module's test selection runs (`pytest -x`), and the file is restored.

    killed    pytest exited non-zero (a timeout counts as killed and is reported separately)
    survived  pytest exited 0: no test noticed the change
    score     killed / (mutants run or judged - equivalent)

Equivalent mutants (a change no behaviour can show) are listed with a reason in an `--equivalent` file,
one `ID  reason` per line, and are left out of the score and not run.

    .venv/bin/python scripts/mutation_audit.py --list --module 'k8s/*'       # the mutants, not run
    .venv/bin/python scripts/mutation_audit.py --sample 40 --seed 7           # a seeded sample, run
    .venv/bin/python scripts/mutation_audit.py --ids k8s.gateway-1a2b3c4d     # named mutants again
    .venv/bin/python scripts/mutation_audit.py --ids-from RESULTS.json --survivors-only
    .venv/bin/python scripts/mutation_audit.py --ids ID --tests tests/test_new.py   # does a new test kill it?

Each run refreshes the copy from the checkout first (tracked and untracked files, not ignored ones; the
virtualenvs and node_modules are symlinked, ../shared is linked beside it), then runs the selected tests once
on the unmutated copy: if they fail there, nothing is scored. Results go to a JSON file in the workdir.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import fnmatch
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = Path("/tmp/mutation")
PACKAGES = ("platform_config", "k8s", "compliance")
# Installed environments the copy links to instead of copying (the tests run checkov, LiteLLM and the CDK CLI).
LINKED = (".venv", ".venv-checkov", ".venv-litellm", "node_modules")
DEFAULT_EQUIVALENT = ROOT / "scripts" / "mutation_equivalent.txt"

# --- which tests run for a mutated module ----------------------------------------------------------
# Fast files first (no synth, or only the session's dev/prod synth); with -x the first failure ends the
# run, so the cheapest tests that can see a module lead. The real-proxy, real-Prometheus and balancing
# tests (minutes each) appear only where nothing else covers the module. test_checkov (~30 s) goes last.
CONFIG = "tests/test_config.py"
COMPLIANCE = "tests/test_compliance.py"
MANIFESTS = "tests/test_manifests.py"
INFERENCE = "tests/test_inference.py"
GATEWAY = "tests/test_gateway.py"
DEPLOYABILITY = "tests/test_deployability.py"
FOUNDATION = "tests/test_foundation.py"
POD_IDENTITY = "tests/test_pod_identity.py"
PROMQL = "tests/test_promql.py"
CHECKOV = "tests/test_checkov.py"
CLI = "tests/test_cli.py"
# Written by others alongside this audit: README statements, each scaling threshold at its boundary, alerts.
CLAIMS = "tests/test_claims.py"
SCALING_THRESHOLDS = "tests/test_scaling_thresholds.py"
ALERT_RULES = "tests/test_alert_rules.py"
CLOUDWATCH = "tests/test_cloudwatch.py"
# Written for this audit's survivors, each named for the concern it pins.
CONFIG_BOUNDS = "tests/test_config_bounds.py"
CONFIG_COMMAND = "tests/test_config_command.py"
GATEWAY_WIRING = "tests/test_gateway_wiring.py"
VLLM_SERVER = "tests/test_vllm_server.py"
PLACEMENT = "tests/test_workload_placement.py"
SCRAPE_TARGETS = "tests/test_scrape_targets.py"
REPORT_HEADER = "tests/test_compliance_report_header.py"
AUDIT_ORDER = "tests/test_compliance_audit_order.py"
NODE_POOL_DURATIONS = "tests/test_node_pool_durations.py"
OBJECT_LABELS = "tests/test_object_labels.py"

_K8S_GATEWAY = (
    GATEWAY_WIRING,
    GATEWAY,
    MANIFESTS,
    DEPLOYABILITY,
    INFERENCE,
    SCRAPE_TARGETS,
    CLAIMS,
    SCALING_THRESHOLDS,
    CHECKOV,
)
_K8S_INFERENCE = (
    VLLM_SERVER,
    PLACEMENT,
    NODE_POOL_DURATIONS,
    INFERENCE,
    PROMQL,
    MANIFESTS,
    DEPLOYABILITY,
    GATEWAY,
    CLAIMS,
    SCALING_THRESHOLDS,
    CHECKOV,
)
_K8S_SHARED = (
    GATEWAY_WIRING,
    VLLM_SERVER,
    PLACEMENT,
    SCRAPE_TARGETS,
    OBJECT_LABELS,
    INFERENCE,
    GATEWAY,
    MANIFESTS,
    DEPLOYABILITY,
    FOUNDATION,
    PROMQL,
    ALERT_RULES,
    CLAIMS,
    SCALING_THRESHOLDS,
    CHECKOV,
)
_CONFIG_ALL = (
    CONFIG,
    CONFIG_BOUNDS,
    FOUNDATION,
    INFERENCE,
    GATEWAY,
    MANIFESTS,
    DEPLOYABILITY,
    PROMQL,
    COMPLIANCE,
    ALERT_RULES,
    CLOUDWATCH,
    CLAIMS,
)
_CONFIG_INFERENCE = (
    CONFIG,
    CONFIG_BOUNDS,
    NODE_POOL_DURATIONS,
    INFERENCE,
    VLLM_SERVER,
    PLACEMENT,
    SCRAPE_TARGETS,
    PROMQL,
    MANIFESTS,
    DEPLOYABILITY,
    FOUNDATION,
    CLAIMS,
    SCALING_THRESHOLDS,
)
_COMPLIANCE = (COMPLIANCE, AUDIT_ORDER, REPORT_HEADER, POD_IDENTITY, FOUNDATION, CLAIMS, CHECKOV)
# (glob over the path relative to the checkout, test files in run order); the first matching glob wins.
TEST_SELECTION: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("platform_config/__main__.py", (CONFIG, CONFIG_COMMAND, CLI)),
    ("platform_config/reference.py", (CONFIG, CONFIG_COMMAND)),
    (
        "platform_config/gateway.py",
        (CONFIG, CONFIG_BOUNDS, GATEWAY, GATEWAY_WIRING, MANIFESTS, DEPLOYABILITY, CLAIMS, SCALING_THRESHOLDS),
    ),
    ("platform_config/inference.py", _CONFIG_INFERENCE),
    ("platform_config/cold_start.py", _CONFIG_INFERENCE),
    ("platform_config/*.py", _CONFIG_ALL),
    ("k8s/gateway.py", _K8S_GATEWAY),
    ("k8s/gateway_config.py", _K8S_GATEWAY),
    ("k8s/external_secrets.py", _K8S_GATEWAY),
    ("k8s/autoscaling.py", (INFERENCE, PROMQL, SCRAPE_TARGETS, MANIFESTS, DEPLOYABILITY, CLAIMS, SCALING_THRESHOLDS)),
    ("k8s/metrics.py", (SCRAPE_TARGETS, INFERENCE, GATEWAY, PROMQL, CLAIMS)),
    ("k8s/vllm.py", _K8S_INFERENCE),
    ("k8s/inference.py", _K8S_INFERENCE),
    ("k8s/model_download.py", _K8S_INFERENCE),
    ("k8s/node_pools.py", _K8S_INFERENCE),
    ("k8s/*.py", _K8S_SHARED),
    ("compliance/*.py", _COMPLIANCE),
)

# --- mutant generation -----------------------------------------------------------------------------

COMPARE_SWAPS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
}
# Logging and warnings: calls whose arguments are messages for people, not output a test should pin. (`print`
# is not among them: in platform_config/__main__.py it is the command's output.)
MESSAGE_CALLS = re.compile(r"^(warnings\.warn|logging\.\w+|log(ger)?\.\w+|.*\.add_warning(_v2)?)$")
SKIPPED_KEYWORDS = frozenset({"description"})


@dataclass(frozen=True)
class Mutant:
    id: str
    path: str  # relative to the checkout, e.g. k8s/gateway.py
    line: int
    kind: str  # number | compare | bool | remove-element | remove-keyword | remove-call
    where: str  # the enclosing class/function, e.g. GatewayChart.__init__
    start: int  # byte offsets of the replaced segment in the original file
    end: int
    replacement: str
    before: str
    after: str

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode() + source[self.end :]

    def diff(self, source: bytes) -> str:
        old = source.decode().splitlines(keepends=True)
        new = self.apply(source).decode().splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, new, f"a/{self.path}", f"b/{self.path}", n=1))


@dataclass(frozen=True)
class _Raw:
    start: int
    end: int
    replacement: str
    kind: str
    line: int
    where: str
    before: str
    after: str


def _short(text: str, limit: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _call_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_call_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _call_name(node.func) + "()"
    return "?"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector:
    """Walks one module and records every mutation as (byte range, replacement)."""

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.line_starts = [0]
        for index, byte in enumerate(source):
            if byte == 0x0A:
                self.line_starts.append(index + 1)
        self.found: list[_Raw] = []
        self.scope: list[str] = []

    def offset(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def text(self, start: int, end: int) -> str:
        return self.source[start:end].decode()

    def add(self, start: int, end: int, replacement: str, kind: str, line: int, before: str, after: str) -> None:
        where = ".".join(self.scope) or "<module>"
        self.found.append(_Raw(start, end, replacement, kind, line, where, _short(before), _short(after)))

    # -- traversal --

    def walk(self, node: ast.AST) -> None:
        if isinstance(node, ast.Raise):
            return  # error messages
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                self.walk(child)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                self.walk(decorator)
            self.walk(node.args)  # ast.arg nodes below skip their annotations; `returns` is never visited
            self.scope.append(node.name)
            for statement in node.body:
                self.walk(statement)
            self.scope.pop()
            return
        if isinstance(node, ast.ClassDef):
            heads: list[ast.AST] = [*node.decorator_list, *node.bases, *node.keywords]
            for head in heads:
                self.walk(head)
            self.scope.append(node.name)
            for statement in node.body:
                self.walk(statement)
            self.scope.pop()
            return
        if isinstance(node, ast.arg):
            return  # an annotation only
        if isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.walk(node.value)
            return
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        if isinstance(node, ast.keyword) and node.arg in SKIPPED_KEYWORDS:
            return
        if isinstance(node, ast.Call) and MESSAGE_CALLS.match(_call_name(node.func)):
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return  # a docstring
        self.mutate(node)
        for inner in ast.iter_child_nodes(node):
            self.walk(inner)

    def mutate(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant):
            self.constant(node)
        elif isinstance(node, ast.Compare):
            self.compare(node)
        elif isinstance(node, ast.Set) or (isinstance(node, (ast.List, ast.Tuple)) and isinstance(node.ctx, ast.Load)):
            self.elements(node, list(node.elts))
        elif isinstance(node, ast.Dict):
            self.dict_entries(node)
        elif isinstance(node, ast.Call):
            self.keywords(node)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            start, end = self.span(node)
            self.add(start, end, "pass", "remove-call", node.lineno, self.text(start, end), "pass")

    def constant(self, node: ast.Constant) -> None:
        start, end = self.span(node)
        before = self.text(start, end)
        value = node.value
        if isinstance(value, bool):
            flipped = str(not value)
            self.add(start, end, flipped, "bool", node.lineno, before, flipped)
        elif isinstance(value, int):
            for new in (value + 1, value - 1):
                self.add(start, end, str(new), "number", node.lineno, before, str(new))
        elif isinstance(value, float):
            new_float = round(value * 1.1, 10) if value else 1.0
            self.add(start, end, repr(new_float), "number", node.lineno, before, repr(new_float))

    def compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for index, op in enumerate(node.ops):
            swap = COMPARE_SWAPS.get(type(op))
            if swap is None:
                continue
            gap_start = self.span(operands[index])[1]
            gap_end = self.span(operands[index + 1])[0]
            gap = self.text(gap_start, gap_end)
            old, new = swap
            pattern = re.escape(old) + ("(?!=)" if old in ("<", ">") else "")
            match = re.search(pattern, gap)
            if match is None:
                continue
            start = gap_start + len(gap[: match.start()].encode())
            whole_start, whole_end = self.span(node)
            before = self.text(whole_start, whole_end)
            after = self.text(whole_start, start) + new + self.text(start + len(old), whole_end)
            self.add(start, start + len(old), new, "compare", node.lineno, before, after)

    def _removal(self, spans: list[tuple[int, int]], index: int) -> tuple[int, int]:
        start, end = spans[index]
        if index + 1 < len(spans):
            return start, spans[index + 1][0]
        return spans[index - 1][1], end

    def elements(self, node: ast.expr, items: list[ast.expr]) -> None:
        spans = [self.span(item) for item in items]
        self._remove_each(node, spans, {ast.List: "[]", ast.Tuple: "()", ast.Set: "set()"}.get(type(node), "()"))

    def dict_entries(self, node: ast.Dict) -> None:
        spans = []
        for key, value in zip(node.keys, node.values, strict=True):
            value_start, value_end = self.span(value)
            if key is None:  # `**mapping`: the entry starts at its two stars
                stars = self.source.rfind(b"**", 0, value_start)
                spans.append((stars, value_end))
            else:
                spans.append((self.span(key)[0], value_end))
        self._remove_each(node, spans, "{}")

    def _remove_each(self, node: ast.expr, spans: list[tuple[int, int]], empty: str) -> None:
        for index, (item_start, item_end) in enumerate(spans):
            removed = self.text(item_start, item_end)
            line = self.source.count(b"\n", 0, item_start) + 1
            if len(spans) == 1:
                start, end = self.span(node)
                self.add(start, end, empty, "remove-element", line, removed, empty)
            else:
                start, end = self._removal(spans, index)
                self.add(start, end, "", "remove-element", line, removed, "(removed)")

    def keywords(self, node: ast.Call) -> None:
        arguments: list[ast.AST] = sorted([*node.args, *node.keywords], key=lambda a: (a.lineno, a.col_offset))  # type: ignore[attr-defined]
        spans = [self.span(argument) for argument in arguments]
        for index, argument in enumerate(arguments):
            if not isinstance(argument, ast.keyword) or argument.arg in SKIPPED_KEYWORDS:
                continue
            removed = self.text(*spans[index])
            start, end = spans[index] if len(spans) == 1 else self._removal(spans, index)
            self.add(start, end, "", "remove-keyword", argument.lineno, removed, "(removed)")


def mutants_of(root: Path, path: str) -> list[Mutant]:
    """Every mutant of one module, each checked to parse and to change the module's AST."""
    source = (root / path).read_bytes()
    tree = ast.parse(source)
    collector = _Collector(source)
    for statement in tree.body:
        collector.walk(statement)
    original = ast.dump(tree)
    stem = path.removesuffix(".py").replace("/", ".")
    seen_sources: set[bytes] = set()
    occurrences: Counter[tuple[str, str, str, str]] = Counter()
    found = []
    for raw in sorted(collector.found, key=lambda r: (r.start, r.end, r.kind, r.replacement)):
        mutated = source[: raw.start] + raw.replacement.encode() + source[raw.end :]
        if mutated in seen_sources:
            continue
        try:
            changed = ast.dump(ast.parse(mutated)) != original
        except SyntaxError:
            continue
        if not changed:
            continue
        seen_sources.add(mutated)
        # The id survives edits elsewhere in the file: it names the scope and the change, not a line.
        identity = (raw.where, raw.kind, source[raw.start : raw.end].decode(), raw.replacement)
        occurrences[identity] += 1
        digest = hashlib.sha1("|".join([path, *identity, str(occurrences[identity])]).encode()).hexdigest()[:8]
        found.append(
            Mutant(
                id=f"{stem}-{digest}",
                path=path,
                line=raw.line,
                kind=raw.kind,
                where=raw.where,
                start=raw.start,
                end=raw.end,
                replacement=raw.replacement,
                before=raw.before,
                after=raw.after,
            )
        )
    return found


def module_paths(root: Path, globs: Sequence[str]) -> list[str]:
    paths = sorted(p.relative_to(root).as_posix() for package in PACKAGES for p in (root / package).glob("*.py"))
    if globs:
        paths = [p for p in paths if any(fnmatch.fnmatch(p, g) for g in globs)]
    return paths


def tests_for(path: str) -> tuple[str, ...]:
    for pattern, tests in TEST_SELECTION:
        if fnmatch.fnmatch(path, pattern):
            return tests
    raise KeyError(f"no test selection for {path}; add it to TEST_SELECTION")


# --- the private copy ------------------------------------------------------------------------------


def refresh_copy(root: Path, workdir: Path) -> Path:
    """A fresh copy of the checkout's files (tracked and untracked, not ignored) in workdir/main."""
    copy = workdir / "main"
    if copy.resolve() == root.resolve() or root.resolve() in copy.resolve().parents:
        raise SystemExit(f"refusing to use {copy} as the copy: it is inside the checkout {root}")
    if copy.exists():
        shutil.rmtree(copy)  # symlinked environments are unlinked, never followed
    copy.mkdir(parents=True)
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = root / name
        if source.is_file() and not source.is_symlink():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    for name in LINKED:
        if (root / name).exists():
            (copy / name).symlink_to(root / name)
    shared = workdir / "shared"
    if not shared.is_symlink():
        shared.symlink_to(root.parent / "shared")
    return copy


def _purge_bytecode(copy: Path) -> None:
    # A stale .pyc of the same size and mtime second as a mutant would be loaded instead of it.
    for cache in copy.rglob("__pycache__"):
        if cache.is_dir() and not cache.is_symlink() and not any(part.startswith(".venv") for part in cache.parts):
            shutil.rmtree(cache)


@dataclass
class Outcome:
    status: str  # killed | survived | timeout | equivalent | error
    seconds: float
    exit_code: int | None
    detail: str  # the first failing test, or pytest's last line


def run_pytest(copy: Path, tests: Sequence[str], timeout: float, *, stop_first: bool = True) -> Outcome:
    command = ["nice", "-n", "19", str(copy / ".venv" / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"]
    command += ["-x"] if stop_first else []
    command += [t for t in tests if (copy / t).exists()]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # pytest and the node processes jsii started for it
        process.communicate()
        return Outcome("timeout", time.monotonic() - started, None, f"no result after {timeout:.0f} s")
    seconds = time.monotonic() - started
    lines = [line for line in output.splitlines() if line.strip()]
    failed = [line.split(" ", 1)[1] for line in lines if line.startswith(("FAILED ", "ERROR "))]
    detail = _short(failed[0] if failed else (lines[-1] if lines else ""), 110)
    status = "survived" if process.returncode == 0 else "killed"
    return Outcome(status, seconds, process.returncode, detail)


# --- equivalents, reporting ------------------------------------------------------------------------


def read_equivalents(path: Path | None) -> dict[str, str]:
    if path is None or not path.exists():
        return {}
    found = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        mutant_id, _, reason = text.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: {mutant_id} needs a reason why it is equivalent")
        found[mutant_id] = reason.strip()
    return found


def _table(rows: Iterable[Sequence[str]], header: Sequence[str]) -> str:
    rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@dataclass
class Summary:
    generated: int
    sampled: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def scored(self) -> int:
        return self.sampled - self.counts.get("equivalent", 0) - self.counts.get("error", 0)

    @property
    def score(self) -> float:
        caught = self.counts.get("killed", 0) + self.counts.get("timeout", 0)
        return caught / self.scored if self.scored else 1.0


def _print_summary(summary: Summary, seconds: float) -> None:
    counts = summary.counts
    print(
        f"\nmutants generated: {summary.generated}   run or judged: {summary.sampled}   "
        f"killed: {counts.get('killed', 0)}   timeouts (counted as killed): {counts.get('timeout', 0)}   "
        f"survived: {counts.get('survived', 0)}   equivalent: {counts.get('equivalent', 0)}   "
        f"errors: {counts.get('error', 0)}"
    )
    caught = counts.get("killed", 0) + counts.get("timeout", 0)
    print(
        f"score: {caught}/{summary.scored} = {summary.score:.1%} of non-equivalent mutants   ({seconds / 60:.1f} min)"
    )


def _select(mutants: list[Mutant], args: argparse.Namespace) -> tuple[list[Mutant], list[str]]:
    wanted: list[str] = list(args.ids or [])
    if args.ids_from:
        wanted += _ids_from(Path(args.ids_from), survivors_only=args.survivors_only)
    if wanted:
        by_id = {m.id: m for m in mutants}
        missing = [i for i in wanted if i not in by_id]
        return [by_id[i] for i in dict.fromkeys(wanted) if i in by_id], missing
    if args.sample and args.sample < len(mutants):
        mutants = sorted(random.Random(args.seed).sample(mutants, args.sample), key=lambda m: (m.path, m.start))
    return mutants, []


def _ids_from(path: Path, *, survivors_only: bool) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        results = json.loads(text)["results"]
        return [r["id"] for r in results if not survivors_only or r["status"] == "survived"]
    return [line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", default=[], metavar="GLOB", help="e.g. 'k8s/*.py' (repeatable)")
    parser.add_argument("--sample", type=int, default=0, metavar="N", help="run a random sample of N mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument("--show", metavar="ID", help="print one mutant's diff and stop")
    parser.add_argument("--ids", action="append", metavar="ID", help="run these mutants only (repeatable)")
    parser.add_argument("--ids-from", metavar="FILE", help="mutant ids: one per line, or a results JSON")
    parser.add_argument("--survivors-only", action="store_true", help="with --ids-from JSON: its survivors only")
    parser.add_argument("--equivalent", metavar="FILE", default=str(DEFAULT_EQUIVALENT), help="ids judged equivalent")
    parser.add_argument("--tests", action="append", metavar="FILE", help="run these test files instead of the table")
    parser.add_argument("--skip-tests", action="append", default=[], metavar="FILE", help="leave out of the table")
    parser.add_argument("--timeout", type=float, default=420, help="seconds per mutant before it counts as a timeout")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where the private copy lives")
    parser.add_argument("--no-refresh", action="store_true", help="reuse the copy as it is")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on the unmutated copy")
    parser.add_argument("--results", type=Path, help="write the results as JSON here (default: in workdir)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    inspect_only = bool(args.list or args.show)
    # Mutants are made from the copy, so what runs is exactly what was generated, whatever happens to the
    # checkout meanwhile; --list and --show read the checkout.
    copy = args.workdir / "main"
    if not inspect_only and not args.no_refresh:
        refresh_copy(ROOT, args.workdir)
    source_root = ROOT if inspect_only else copy
    paths = module_paths(source_root, args.module)
    all_mutants = [m for path in paths for m in mutants_of(source_root, path)]
    equivalents = read_equivalents(Path(args.equivalent) if args.equivalent else None)
    if args.show:
        matches = [m for m in all_mutants if m.id == args.show]
        if not matches:
            raise SystemExit(f"no mutant {args.show}")
        mutant = matches[0]
        print(f"{mutant.id}  {mutant.location}  {mutant.kind}  in {mutant.where}")
        print(mutant.diff((source_root / mutant.path).read_bytes()))
        return 0
    selected, missing = _select(all_mutants, args)
    for mutant_id in missing:
        print(f"warning: no mutant {mutant_id} in the current sources (its code changed?)", file=sys.stderr)
    per_module = Counter(m.path for m in all_mutants)
    print(f"{len(all_mutants)} mutants in {len(paths)} modules; selected {len(selected)}")
    if args.list:
        print(_table([(p, str(n)) for p, n in sorted(per_module.items())], ["module", "mutants"]))
        listed = [
            (m.id, m.location, m.kind, m.before, m.after + ("  [equivalent]" if m.id in equivalents else ""))
            for m in selected
        ]
        print(_table(listed, ["id", "where", "kind", "before", "after"]))
        return 0

    _purge_bytecode(copy)
    print(f"copy: {copy}")
    to_run = [m for m in selected if m.id not in equivalents]
    if not args.no_baseline and to_run:
        union = list(dict.fromkeys(t for m in to_run for t in (_selection(args, m.path))))
        print(f"baseline: {' '.join(union)}", flush=True)
        baseline = run_pytest(copy, union, args.timeout * 3, stop_first=False)
        print(f"baseline: {baseline.status} in {baseline.seconds:.0f} s: {baseline.detail}", flush=True)
        if baseline.status != "survived":
            print("the tests fail on the unmutated copy; fix that (or wait for the checkout to settle) first")
            return 2
    originals = {path: (copy / path).read_bytes() for path in paths}

    results: list[tuple[Mutant, Outcome]] = []
    for index, mutant in enumerate(selected, 1):
        if mutant.id in equivalents:
            outcome = Outcome("equivalent", 0.0, None, equivalents[mutant.id])
        else:
            outcome = _run_mutant(copy, mutant, originals[mutant.path], args)
        results.append((mutant, outcome))
        print(
            f"[{index}/{len(selected)}] {outcome.status.upper():10} {outcome.seconds:5.0f}s  {mutant.id}  "
            f"{mutant.location}  {mutant.kind}: {mutant.before}  ->  {mutant.after}   [{outcome.detail}]",
            flush=True,
        )

    summary = Summary(len(all_mutants), len(selected), dict(Counter(o.status for _, o in results)))
    rows = [
        (m.id, o.status, f"{o.seconds:.0f}s", m.location, m.kind, f"{m.before}  ->  {m.after}")
        for m, o in results
        if o.status != "killed"
    ]
    print("\nnot killed (and timeouts):")
    print(_table(rows, ["id", "status", "time", "where", "kind", "change"]))
    elapsed = time.monotonic() - started
    _print_summary(summary, elapsed)
    output = args.results or args.workdir / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    output.write_text(
        json.dumps(
            {
                "command": sys.argv,
                "generated": summary.generated,
                "selected": summary.sampled,
                "counts": summary.counts,
                "score": summary.score,
                "seconds": round(elapsed),
                "results": [{**asdict(m), **asdict(o)} for m, o in results],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print(f"results: {output}")
    return 0 if summary.counts.get("error", 0) == 0 else 1


def _selection(args: argparse.Namespace, path: str) -> list[str]:
    return list(args.tests) if args.tests else [t for t in tests_for(path) if t not in args.skip_tests]


def _run_mutant(copy: Path, mutant: Mutant, original: bytes, args: argparse.Namespace) -> Outcome:
    target = copy / mutant.path
    if target.read_bytes() != original:
        return Outcome("error", 0.0, None, f"{target} changed since the mutants were made")
    try:
        target.write_bytes(mutant.apply(original))
        return run_pytest(copy, _selection(args, mutant.path), args.timeout)
    finally:
        target.write_bytes(original)


if __name__ == "__main__":
    sys.exit(main())
