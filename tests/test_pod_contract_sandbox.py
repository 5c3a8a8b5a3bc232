"""Where bwrap cannot create a user namespace (a non-privileged container, like the pipeline's CodeBuild), the
pod-contract tests fail with bwrap's reason, unless the environment says the sandbox is optional there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pod_contract import SANDBOX_OPTIONAL_ENV, BubblewrapMissingError, require_user_namespaces


def _fake_bwrap(directory: Path, exit_status: int) -> str:
    path = directory / "bwrap"
    path.write_text(f"#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit {exit_status}\n")
    path.chmod(0o755)
    return str(path)


def test_a_refused_namespace_fails_with_bwraps_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SANDBOX_OPTIONAL_ENV, raising=False)
    with pytest.raises(BubblewrapMissingError, match="setting up uid map: Permission denied"):
        require_user_namespaces(_fake_bwrap(tmp_path, 1))


@pytest.mark.parametrize("value", ["", "true", "Optional"])
def test_only_the_exact_opt_in_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SANDBOX_OPTIONAL_ENV, value)
    with pytest.raises(BubblewrapMissingError):
        require_user_namespaces(_fake_bwrap(tmp_path, 1))


def test_where_the_sandbox_is_optional_a_refused_namespace_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SANDBOX_OPTIONAL_ENV, "optional")
    with pytest.raises(pytest.skip.Exception, match="Permission denied"):
        require_user_namespaces(_fake_bwrap(tmp_path, 1))


def test_a_working_namespace_runs_whatever_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SANDBOX_OPTIONAL_ENV, "optional")
    require_user_namespaces(_fake_bwrap(tmp_path, 0))
