"""cfn-lint on every synthesized template: zero errors (ignored warnings are in .cfnlintrc.yaml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, Synthesized


def _cfn_lint(*templates: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "parseable", "--", *map(str, templates)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_templates_lint_clean(each_env: Synthesized) -> None:
    templates = each_env.template_files()
    assert templates
    result = _cfn_lint(*templates)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text('{"Resources": {"Key": {"Type": "AWS::KMS::Key", "Properties": {"EnableKeyRotation": "often"}}}}')
    result = _cfn_lint(broken)
    assert result.returncode != 0
    assert "E3012" in result.stdout
