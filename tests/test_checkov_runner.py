"""tests/checkov_runner.py: that it runs checkov offline, that checkov fails what it should, passes a
hardened Deployment, and honours skip annotations. Each real checkov run costs ~2 s, so the main
scenarios share one run over one directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.checkov_runner import (
    DEFAULT_CHECKOV_BIN,
    INSTALL_COMMAND,
    CheckovError,
    CheckovNotInstalledError,
    CheckovReport,
    checkov_binary,
    checkov_env,
    parse_checkov_json,
    run_checkov,
)

NAMESPACE = "apps"
DIGEST = "sha256:" + "0123456789abcdef" * 4

# What checkov must report on a privileged container with no resources, probes or pinned image.
PRIVILEGED_UNBOUNDED_FAILURES = {
    "CKV_K8S_16",  # Container should not be privileged
    "CKV_K8S_20",  # Containers should not run with allowPrivilegeEscalation (privileged implies it)
    "CKV_K8S_10",  # CPU requests should be set
    "CKV_K8S_11",  # CPU limits should be set
    "CKV_K8S_12",  # Memory requests should be set
    "CKV_K8S_13",  # Memory limits should be set
    "CKV_K8S_8",  # Liveness Probe Should be Configured
    "CKV_K8S_9",  # Readiness Probe Should be Configured
    "CKV_K8S_14",  # Image Tag should be fixed - not latest or blank
    "CKV_K8S_43",  # Image should use digest
    "CKV_K8S_22",  # Use read-only filesystem for containers where possible
    "CKV_K8S_23",  # Minimize the admission of root containers
    "CKV_K8S_28",  # Minimize the admission of containers with the NET_RAW capability (no drop ALL)
    "CKV_K8S_37",  # Minimize the admission of containers with capabilities assigned (no drop ALL)
    "CKV_K8S_31",  # Ensure that the seccomp profile is set to docker/default or runtime/default
    "CKV_K8S_38",  # Ensure that Service Account Tokens are only mounted where necessary
    "CKV_K8S_40",  # Containers should run as a high UID to avoid host conflict
}

# What still fails on a fully hardened Deployment, and why. With a NetworkPolicy selecting its pods
# and the image pinned by digest, nothing does.
# - CKV2_K8S_6 "Minimize the admission of pods which lack an associated NetworkPolicy": a graph check
#   on the Pod checkov derives from the Deployment (`Pod.<ns>.<name>.<label>-<value>`); it passes only
#   when a NetworkPolicy in the scanned files selects the pod's labels.
HARDENED_WITHOUT_NETWORK_POLICY_FAILURES = {"CKV2_K8S_6"}
# - With the image pinned by tag instead of digest: CKV_K8S_43 "Image should use digest", and
#   CKV_K8S_15 "Image Pull Policy should be Always" (a tag-pinned image needs `imagePullPolicy: Always`;
#   a digest-pinned one passes with any policy, or none).
HARDENED_TAG_PINNED_FAILURES = {"CKV_K8S_43", "CKV_K8S_15"}

SKIP_REASON = "digest pinned by the release pipeline at deploy time"


def deployment(
    name: str, *, hardened: bool, image: str | None = None, annotations: dict[str, str] | None = None
) -> Any:
    labels = {"app": name}
    container: dict[str, Any] = {"name": "main", "image": image or f"registry.example.com/{name}@{DIGEST}"}
    pod_spec: dict[str, Any] = {"containers": [container]}
    if hardened:
        container |= {
            "ports": [{"containerPort": 8080}],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "500m", "memory": "256Mi"},
            },
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
        }
        pod_spec |= {
            "automountServiceAccountToken": False,
            "serviceAccountName": name,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
    else:
        container |= {"image": image or "nginx:latest", "securityContext": {"privileged": True}}
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def network_policy(name: str) -> Any:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "podSelector": {"matchLabels": {"app": name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": 8080}]}],
        },
    }


def write_manifest(path: Path, *documents: Any) -> Path:
    """Multi-document YAML, as cdk8s writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> CheckovReport:
    """One checkov run over every scenario; each Deployment has its own name and pod labels."""
    root = tmp_path_factory.mktemp("manifests")
    write_manifest(root / "bad.k8s.yaml", deployment("bad", hardened=False))
    write_manifest(root / "hardened.k8s.yaml", deployment("hardened", hardened=True), network_policy("hardened"))
    write_manifest(root / "no-netpol.k8s.yaml", deployment("no-netpol", hardened=True))
    skip_annotations = {
        "checkov.io/skip1": f"CKV_K8S_43={SKIP_REASON}",
        "checkov.io/skip2": "CKV2_K8S_6",  # no reason given
    }
    write_manifest(
        root / "nested" / "skipped.k8s.yaml",
        deployment("skipped", hardened=True, image="registry.example.com/skipped:1.2.3", annotations=skip_annotations),
    )
    return run_checkov(root)


def test_privileged_deployment_without_limits_fails(scan: CheckovReport) -> None:
    failed = scan.failed_ids(f"Deployment.{NAMESPACE}.bad")
    assert failed >= PRIVILEGED_UNBOUNDED_FAILURES, scan.describe()
    privileged = [f for f in scan.failed if f.check_id == "CKV_K8S_16"]
    assert len(privileged) == 1, scan.describe()
    assert privileged[0].check_name == "Container should not be privileged"
    assert privileged[0].resource == "Deployment.apps.bad"
    assert privileged[0].file == "bad.k8s.yaml"
    assert privileged[0].lines is not None
    assert privileged[0].suppress_comment is None


def test_hardened_deployment_with_network_policy_passes_everything(scan: CheckovReport) -> None:
    resources = {f"Deployment.{NAMESPACE}.hardened", f"Pod.{NAMESPACE}.hardened.app-hardened"}
    assert not [f for f in scan.failed if f.resource in resources], scan.describe()
    assert scan.passed > 0


def test_hardened_deployment_without_network_policy_fails_only_the_network_policy_check(scan: CheckovReport) -> None:
    assert scan.failed_ids(f"Deployment.{NAMESPACE}.no-netpol") == set(), scan.describe()
    assert scan.failed_ids(f"Pod.{NAMESPACE}.no-netpol.app-no-netpol") == HARDENED_WITHOUT_NETWORK_POLICY_FAILURES


def test_skip_annotation_moves_the_check_to_skipped_with_its_reason(scan: CheckovReport) -> None:
    resource = f"Deployment.{NAMESPACE}.skipped"
    assert "CKV_K8S_43" not in scan.failed_ids(resource), scan.describe()
    (skip,) = [f for f in scan.skipped if f.check_id == "CKV_K8S_43"]
    assert skip.resource == resource
    assert skip.suppress_comment == SKIP_REASON
    assert skip.check_name == "Image should use digest"
    assert skip.file == "nested/skipped.k8s.yaml"
    # Only the annotated checks move: the tag-pinned image still fails the pull-policy check.
    assert scan.failed_ids(resource) == HARDENED_TAG_PINNED_FAILURES - {"CKV_K8S_43"}
    # The Deployment's annotations also cover the Pod checkov derives from it; no reason, checkov's default.
    (netpol_skip,) = [f for f in scan.skipped if f.check_id == "CKV2_K8S_6"]
    assert netpol_skip.resource == f"Pod.{NAMESPACE}.skipped.app-skipped"
    assert netpol_skip.suppress_comment == "No comment provided"
    assert scan.skipped_ids() == {"CKV_K8S_43", "CKV2_K8S_6"}


def test_no_resources_to_check_gives_an_empty_report_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Namespaces alone have no checks: checkov prints a bare summary. Run with no network at all (a
    fresh network namespace) where the machine allows it, to prove nothing is fetched and nothing hangs."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    write_manifest(tmp_path / "manifests" / "ns.yaml", namespace)
    unshare = shutil.which("unshare")
    offline = unshare is not None and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0
    if offline:
        wrapper = tmp_path / "checkov-offline"
        wrapper.write_text(f'#!/bin/sh\nexec {unshare} -n "{checkov_binary()}" "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("CHECKOV_BIN", str(wrapper))
    report = run_checkov(tmp_path / "manifests", timeout=120)
    assert report == CheckovReport(passed=0, failed=[], skipped=[], checkov_version=report.checkov_version)
    assert report.checkov_version
    if not offline:
        pytest.skip("checkov ran, but with the network: `unshare -n` is not permitted here")


def test_checkov_crash_is_an_error(tmp_path: Path) -> None:
    """checkov 3.3.30 splits a skip annotation on every `=` and crashes on a reason containing one."""
    doc = deployment("eq", hardened=True, annotations={"checkov.io/skip1": "CKV_K8S_43=a=b"})
    write_manifest(tmp_path / "eq.yaml", doc)
    with pytest.raises(CheckovError, match="exited with status"):
        run_checkov(tmp_path)


def test_missing_binary_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "checkov"
    monkeypatch.setenv("CHECKOV_BIN", str(missing))
    with pytest.raises(CheckovNotInstalledError) as info:
        run_checkov(tmp_path)
    message = str(info.value)
    assert str(missing) in message
    assert INSTALL_COMMAND in message
    assert "CHECKOV_BIN" in message


def test_default_binary_is_the_repo_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHECKOV_BIN", raising=False)
    repo_root = Path(__file__).resolve().parent.parent
    assert repo_root / ".venv-checkov" / "bin" / "checkov" == DEFAULT_CHECKOV_BIN
    assert checkov_binary() == DEFAULT_CHECKOV_BIN


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a directory"):
        run_checkov(tmp_path / "absent")


def test_command_line_and_environment_keep_checkov_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A stand-in checkov records how it was called."""
    record = tmp_path / "call.json"
    fake = tmp_path / "fake-checkov"
    summary = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0}
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ)}}, open({str(record)!r}, 'w'))\n"
        f"print({json.dumps(json.dumps(summary))})\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("CHECKOV_BIN", str(fake))
    monkeypatch.setenv("BC_API_KEY", "must-not-reach-checkov")
    monkeypatch.setenv("PRISMA_API_URL", "https://example.invalid")
    monkeypatch.setenv("CKV_SKIP_CHECK", "CKV_K8S_16")
    assert run_checkov(tmp_path, extra_args=["--skip-check", "CKV_K8S_21"]) == CheckovReport(0, [], [])
    call = json.loads(record.read_text())
    argv, env = call["argv"], call["env"]
    assert argv[:2] == ["--directory", str(tmp_path.resolve())]
    for flag in ("--skip-download", "--soft-fail", "--compact"):
        assert flag in argv
    assert argv[argv.index("--framework") + 1] == "kubernetes"
    assert argv[argv.index("--output") + 1] == "json"
    assert "--quiet" not in argv  # it would drop the skipped checks from the report
    assert argv[-2:] == ["--skip-check", "CKV_K8S_21"]
    assert env["CKV_SKIP_PACKAGE_UPDATE_CHECK"] == "true"
    assert env["BC_SKIP_MAPPING"] == "TRUE"
    for name in ("BC_API_KEY", "PRISMA_API_URL", "CKV_SKIP_CHECK", "CHECKOV_BIN"):
        assert name not in env
    assert checkov_env({"PATH": "/bin", "BC_API_KEY": "x"}) == {
        "PATH": "/bin",
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "BC_SKIP_MAPPING": "TRUE",
    }


def _record(check_id: str, resource: str, suppress_comment: str | None = None) -> dict[str, Any]:
    check_result: dict[str, Any] = {"result": "SKIPPED" if suppress_comment else "FAILED"}
    if suppress_comment:
        check_result["suppress_comment"] = suppress_comment
    return {
        "check_id": check_id,
        "check_name": f"name of {check_id}",
        "check_result": check_result,
        "file_path": "/a.yaml",
        "file_line_range": [1, 20],
        "resource": resource,
    }


def test_parse_list_of_reports_and_bare_summaries() -> None:
    """With more than one framework reporting, checkov prints a list of reports; with nothing to
    check, a bare summary."""
    kubernetes = {
        "check_type": "kubernetes",
        "results": {
            "passed_checks": [],
            "failed_checks": [_record("CKV_K8S_16", "Deployment.apps.a")],
            "skipped_checks": [_record("CKV_K8S_43", "Deployment.apps.a", "why")],
            "parsing_errors": ["/broken.yaml"],
        },
        "summary": {"passed": 7, "failed": 1, "skipped": 1, "parsing_errors": 1, "checkov_version": "3.3.30"},
    }
    other = {
        "check_type": "dockerfile",
        "results": {"failed_checks": [_record("CKV_DOCKER_2", "/Dockerfile.")]},
        "summary": {"passed": 3, "failed": 1, "skipped": 0, "parsing_errors": 0, "checkov_version": "3.3.30"},
    }
    bare = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0, "resource_count": 0}
    report = parse_checkov_json(json.dumps([kubernetes, other, bare]))
    assert report.passed == 10
    assert [(f.check_id, f.resource, f.file, f.lines) for f in report.failed] == [
        ("CKV_DOCKER_2", "/Dockerfile.", "a.yaml", (1, 20)),
        ("CKV_K8S_16", "Deployment.apps.a", "a.yaml", (1, 20)),
    ]
    assert [(f.check_id, f.suppress_comment) for f in report.skipped] == [("CKV_K8S_43", "why")]
    assert report.parsing_errors == ["/broken.yaml"]
    assert report.checkov_version == "3.3.30"
    assert parse_checkov_json(json.dumps(kubernetes)).failed_ids() == {"CKV_K8S_16"}
    assert parse_checkov_json(json.dumps(bare)) == CheckovReport(0, [], [])
    assert "FAILED  CKV_K8S_16 Deployment.apps.a (a.yaml:1)" in report.describe()


@pytest.mark.parametrize("text", ["", "Traceback (most recent call last):", '{"error": "x"}', "[1]"])
def test_parse_rejects_what_is_not_a_report(text: str) -> None:
    with pytest.raises(CheckovError):
        parse_checkov_json(text)
