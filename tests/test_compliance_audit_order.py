"""The audit lists findings in a fixed order (construct, then rule) whatever order CDK's validation report
gives them, so the compliance report of one synth reads (and diffs) the same as the next.

A validation report is written here in CDK's format (`cdk.out/validation-report.json`: plugin reports with
`violations` and `suppressedViolations`), its findings deliberately out of order. No synth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from compliance.audit import audit

BUCKET = "genai-dev-data/Logs/Resource"
KEY = "genai-dev-data/Key/Resource"


def _violation(rule: str, construct: str, **extra: str) -> dict[str, Any]:
    return {
        "ruleName": rule,
        "description": f"{rule} description",
        "severity": "error",
        "violatingConstructs": [{"constructPath": construct}],
        **extra,
    }


def test_failed_and_acknowledged_findings_are_sorted_by_construct_then_rule(tmp_path: Path) -> None:
    acknowledged = {"acknowledgedAt": BUCKET, "reason": "a reason a reviewer can check, long enough"}
    report = {
        "pluginReports": [
            {
                "pluginName": "AwsSolutions",
                "violations": [
                    _violation("AwsSolutions-S10", BUCKET),
                    _violation("AwsSolutions-KMS5", KEY),
                    _violation("AwsSolutions-S1", BUCKET),
                ],
                "suppressedViolations": [
                    _violation("AwsSolutions-S5", BUCKET, **acknowledged),
                    _violation("AwsSolutions-S2", BUCKET, **acknowledged),
                ],
            }
        ]
    }
    (tmp_path / "validation-report.json").write_text(json.dumps(report), encoding="utf-8")
    result = audit(cdk.App(), tmp_path, frozenset({"AwsSolutions"}))
    assert [(f.construct, f.rule) for f in result.failed] == [
        (KEY, "AwsSolutions-KMS5"),
        (BUCKET, "AwsSolutions-S1"),
        (BUCKET, "AwsSolutions-S10"),
    ]
    assert [f.rule for f in result.acknowledged] == ["AwsSolutions-S2", "AwsSolutions-S5"]
