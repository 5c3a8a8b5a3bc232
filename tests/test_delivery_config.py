"""The `delivery` settings: off by default, complete when on, each bad value one sentence naming key and value.

Rules and their sources are written here: CodeConnections ARNs (`codeconnections` since the 2024 rename,
`codestar-connections` before, AWS Developer Tools console user guide "Connections rename"), the 2 to 23 parts CDK
Pipelines' connection source accepts for a repository (aws-cdk-lib 2.275 `CodePipelineSource.connection`), git's
branch-name rules (`git check-ref-format`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from platform_config import ConfigError, load_config, load_delivery_settings
from tests.conftest import context_for

ARN = "arn:aws:codeconnections:us-west-2:111111111111:connection/0123abcd-0123-4567-89ab-0123456789ab"
COMPLETE = {
    "delivery.pipeline": "true",
    "delivery.connection_arn": ARN,
    "delivery.repository": "acme/genai-platform",
    "delivery.account": "111111111111",
    "delivery.region": "us-west-2",
}


def _error(context: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        load_delivery_settings(context)
    return str(raised.value)


def test_off_by_default_and_nothing_else_required() -> None:
    settings = load_delivery_settings(context_for("dev"))
    assert settings.pipeline is False
    assert settings.environments == ("dev", "prod")
    assert settings.branch == "main"


def test_on_from_the_command_line_and_from_cdk_json() -> None:
    on = load_delivery_settings(COMPLETE)
    assert (on.pipeline, on.connection_arn, on.repository, on.account) == (
        True,
        ARN,
        "acme/genai-platform",
        "111111111111",
    )
    # The cdk.json section, with one value overridden on the command line.
    section = {key.removeprefix("delivery."): value for key, value in COMPLETE.items()}
    merged = load_delivery_settings({"delivery": section, "delivery.branch": "release/2026"})
    assert (merged.pipeline, merged.branch) == (True, "release/2026")


def test_the_delivery_section_is_not_taken_for_an_unknown_environment_section() -> None:
    config = load_config({**context_for("dev"), **COMPLETE})
    assert config.env_name == "dev"


def test_on_without_what_it_needs_names_each_missing_key() -> None:
    message = _error({"delivery.pipeline": "true"})
    assert "delivery: pipeline is on, so connection_arn, repository, account, region must be set" in message
    for key in ("connection_arn", "repository", "account", "region"):
        partial = {k: v for k, v in COMPLETE.items() if k != f"delivery.{key}"}
        assert f"pipeline is on, so {key} must be set" in _error(partial)


@pytest.mark.parametrize(
    "arn",
    [
        ARN,
        ARN.replace("codeconnections", "codestar-connections"),
        ARN.replace("arn:aws:", "arn:aws-us-gov:").replace("us-west-2", "us-gov-west-1"),
    ],
)
def test_connection_arns_of_both_service_names_are_accepted(arn: str) -> None:
    assert load_delivery_settings({**COMPLETE, "delivery.connection_arn": arn}).connection_arn == arn


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("connection_arn", ARN.replace("0123abcd", "0123abc"), "must be a CodeConnections connection ARN"),
        ("connection_arn", ARN.replace("codeconnections", "codecommit"), "must be a CodeConnections connection ARN"),
        ("connection_arn", ARN.replace("111111111111", "11111111111"), "must be a CodeConnections connection ARN"),
        ("repository", "genai-platform", "must be a repository as owner/name"),
        ("repository", "acme/genai platform", "must be a repository as owner/name"),
        ("repository", "/".join(["g"] * 24), "must be a repository as owner/name"),
        ("branch", "feature..x", "must be a git branch name"),
        ("branch", "feature/", "must be a git branch name"),
        ("branch", "/feature", "must be a git branch name"),
        ("branch", "a//b", "must be a git branch name"),
        ("branch", "main.lock", "must be a git branch name"),
        ("branch", "x@{1}", "must be a git branch name"),
        ("account", "11111111111", "must be a 12-digit AWS account id"),
        ("region", "mars-1", "must be an AWS region name"),
        ("environments", '["dev", "dev"]', "environments lists an environment twice (dev, dev)"),
        ("environments", '["Dev"]', "must be a DNS label"),
        ("pipline", "true", "delivery.pipline: unknown key; allowed keys here: account, branch, connection_arn"),
    ],
)
def test_bad_values_are_one_sentence_naming_key_and_value(key: str, value: str, expected: str) -> None:
    message = _error({**COMPLETE, f"delivery.{key}": value})
    assert expected in message
    if key not in ("pipline", "environments"):
        assert re.search(rf"delivery\.{key}: .*\(got '{re.escape(value)}'\)", message), message


def test_repository_part_counts_at_the_limits() -> None:
    assert load_delivery_settings({**COMPLETE, "delivery.repository": "/".join(["g"] * 23)}).repository
    assert load_delivery_settings({**COMPLETE, "delivery.repository": "group/subgroup/name"}).repository
    assert "must be a repository" in _error({**COMPLETE, "delivery.repository": "/".join(["g"] * 24)})


def test_an_empty_environment_list_is_refused_when_on() -> None:
    message = _error({**COMPLETE, "delivery.environments": "[]"})
    assert "pipeline is on, so environments must list at least one cdk.json environment" in message
