"""The compliance report a reviewer reads (dist/compliance-report.md) opens by saying what it was built from
and what makes synth fail; test_compliance.py checks its tables against CDK's validation report. Session synths.
"""

from __future__ import annotations

import pytest

from tests.conftest import Synthesized


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_report_names_its_source_and_what_fails_synth(env: str, dev: Synthesized, prod: Synthesized) -> None:
    synth = {"dev": dev, "prod": prod}[env]
    markdown = (synth.outdir.parent / "compliance-report.md").read_text(encoding="utf-8")
    title, rest = markdown.split("\n", 1)
    assert title == f"# Compliance report: environment `{env}`"
    intro = " ".join(rest.split("\n## ", 1)[0].split())
    # Where the figures come from: the findings CDK's validation plugins reported on this very synth.
    assert "from `cdk.out/validation-report.json`, the findings the validation plugins reported on this synth" in intro
    # The three conditions that stop synth (README, Compliance), so a reader knows a clean report is enforced.
    assert "An unacknowledged error fails synth" in intro
    assert "an acknowledgment that matches no finding or sits above the resource that raises it" in intro
