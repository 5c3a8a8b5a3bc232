"""What the README tells a user to do matches what is synthesized, and its claims table names real tests."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

from tests.conftest import Synthesized

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(heading: str) -> str:
    """The README text from `heading` to the next heading of the same or a higher level (outside code)."""
    level = len(heading.split(" ", 1)[0])
    lines = README.splitlines()
    start = lines.index(heading)
    in_code = False
    for end in range(start + 1, len(lines)):
        line = lines[end]
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match("#{1,%d} " % level, line):  # noqa: UP031
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


WALKTHROUGH = _section("### From `cdk deploy` to a first completion")


def test_walkthrough_reads_outputs_the_stacks_have(dev: Synthesized) -> None:
    used = re.findall(r"\bout (genai-dev-[a-z]+) (\w+)", WALKTHROUGH)
    assert {key for _, key in used} == {"ModelUri", "GatewayMasterKeySecret", "GatewayAddressCommand"}
    for stack, key in used:
        outputs = dev.stack_json(stack.removeprefix("genai-dev-"))["Outputs"]
        assert key in outputs, f"the walkthrough reads {key} from {stack}, which has no such output"


def test_walkthrough_key_is_the_secret_field_with_the_prefix_the_gateway_expects(dev: Synthesized) -> None:
    assert '| jq -r .key)"' in WALKTHROUGH
    assert 'KEY="sk-$(' in WALKTHROUGH
    secrets = [r for r in dev.stack_json("data")["Resources"].values() if r["Type"] == "AWS::SecretsManager::Secret"]
    master = [s for s in secrets if "master key" in s["Properties"]["Description"]]
    assert [s["Properties"]["GenerateSecretString"]["GenerateStringKey"] for s in master] == ["key"]
    external = dev.one("ExternalSecret", "litellm")
    assert external["spec"]["target"]["template"]["data"]["master-key"] == "sk-{{ .masterkey }}"


def test_walkthrough_port_forward_reaches_the_gateway_container(dev: Synthesized) -> None:
    match = re.search(r"kubectl -n (\S+) port-forward svc/(\S+) (\d+):(\d+)", WALKTHROUGH)
    assert match
    namespace, service_name, local_port, service_port = match.groups()
    service = dev.one("Service", service_name)
    assert service["metadata"]["namespace"] == namespace
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == int(service_port)]
    (container,) = dev.one("Deployment", "litellm")["spec"]["template"]["spec"]["containers"]
    (target,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    assert target["containerPort"] == 4000
    assert f"http://localhost:{local_port}/v1/chat/completions" in WALKTHROUGH


def test_walkthrough_asks_for_the_model_the_gateway_serves_and_copies_the_configured_weights(
    dev: Synthesized,
) -> None:
    body = json.loads(re.search(r"-d '(\{.*\})'", WALKTHROUGH).group(1))  # type: ignore[union-attr]
    config = yaml.safe_load(dev.one("ConfigMap", "litellm")["data"]["config.yaml"])
    assert body["model"] in {entry["model_name"] for entry in config["model_list"]}
    assert f"hf download {dev.config.inference.vllm.model} " in WALKTHROUGH
    # vLLM streams safetensors; Meta's original checkpoint format under original/ is not needed.
    assert "--exclude 'original/*'" in WALKTHROUGH


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_claims_table_names_tests_that_exist() -> None:
    table = _section("## Claims and the tests that hold them")
    ids = re.findall(r"`(tests/test_\w+\.py)::(test_\w+)`", table)
    assert len(ids) >= 30, "the claims table lists too few tests"
    for file, function in ids:
        assert (ROOT / file).is_file(), f"{file} (claims table) does not exist"
        assert function in _test_functions(ROOT / file), f"{file}::{function} (claims table) does not exist"
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("|---")][1:]
    assert all("`tests/" in row for row in rows), "every claim names at least one test"


def test_walkthrough_commands_run_as_written(dev: Synthesized) -> None:
    # kubectl watches one resource type only ("you may only specify a single resource type").
    for match in re.finditer(r"kubectl [^\n]*\bget (\S+)[^\n]* -w\b", WALKTHROUGH):
        assert "," not in match.group(1), f"`{match.group(0)}` watches several resource types"
    # The output is a whole command with quoted jsonpath: bash must re-parse it, so it runs through eval.
    command = dev.stack_json("gateway")["Outputs"]["GatewayAddressCommand"]["Value"]
    assert "jsonpath='" in command
    assert 'eval "$(out genai-dev-gateway GatewayAddressCommand)"' in WALKTHROUGH
    hpa = re.search(r"describe hpa\s+(\S+)`", WALKTHROUGH)
    assert hpa
    scaled = dev.one("ScaledObject", "vllm")
    assert scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["name"] == hpa.group(1)


# The project's own source folders: a path in backticks starting with one of them names a file of this project (a
# path in another repository, cited as a source, starts otherwise: `litellm/utils.py`, `charts/...`).
PROJECT_FOLDERS = frozenset(
    {"ops", "stacks", "compliance", "tests", "cdk_constructs", "k8s", "platform_config", "scripts", "benchmarks"}
    | {"dashboards"}
)


def test_every_project_file_the_readme_names_exists() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([\w.\-/]+\.(?:py|sh|yaml|yml|json|txt|toml))`", text))
    own = {path for path in named if path.split("/", 1)[0] in PROJECT_FOLDERS}
    assert len(own) > 20, own  # the README does name the project's files
    missing = sorted(path for path in own if not (ROOT / path).exists())
    assert missing == [], f"the README names files that do not exist: {missing}"
