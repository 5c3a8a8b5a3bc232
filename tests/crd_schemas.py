"""Strict validation of custom resources against the JSON schemas in ../shared/crd-schemas.

No API server runs here, so custom resources are checked against their CRDs' OpenAPI schemas with a
JSON Schema validator, made as strict as the API server's field validation: every object schema
that lists properties is closed unless it says `x-kubernetes-preserve-unknown-fields`, `nullable`
admits null, and `x-kubernetes-int-or-string` admits both. CEL rules are not evaluated; the ones
that matter are covered by explicit tests.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR_ENV = "PLATFORM_CRD_SCHEMAS"

# (apiVersion, kind) -> file under the schema folder
SCHEMA_FILES = {
    ("eks.amazonaws.com/v1", "NodeClass"): "eks.amazonaws.com/nodeclass_v1.json",
    ("eks.amazonaws.com/v1", "IngressClassParams"): "eks.amazonaws.com/ingressclassparams_v1.json",
    ("karpenter.sh/v1", "NodePool"): "karpenter.sh/nodepool_v1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh/scaledobject_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh/triggerauthentication_v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com/servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com/prometheusrule_v1.json",
    ("external-secrets.io/v1", "SecretStore"): "external-secrets.io/secretstore_v1.json",
    ("external-secrets.io/v1", "ClusterSecretStore"): "external-secrets.io/clustersecretstore_v1.json",
    ("external-secrets.io/v1", "ExternalSecret"): "external-secrets.io/externalsecret_v1.json",
}


class UnknownKindError(KeyError):
    """A custom resource whose (apiVersion, kind) has no schema here: it would go unchecked."""


class MissingSchemasError(RuntimeError):
    pass


def schema_dir() -> Path:
    directory = Path(os.environ.get(SCHEMA_DIR_ENV, ROOT.parent / "shared" / "crd-schemas"))
    if not directory.is_dir():
        raise MissingSchemasError(
            f"CRD schemas not found at {directory}: custom resources cannot be validated. They live in "
            f"../shared/crd-schemas beside the project (as in CI); set {SCHEMA_DIR_ENV} to their folder."
        )
    return directory


def is_custom(doc: dict[str, Any]) -> bool:
    """Not a built-in kind: its API group has a dot and is not a Kubernetes group (`*.k8s.io`). Built-in
    kinds are kubernetes-validate's; every custom one must have a schema here (validate_custom_resource)."""
    group = str(doc.get("apiVersion", "")).rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def validate_custom_resource(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if `doc` does not match its CRD schema strictly, UnknownKindError
    if there is no schema for it."""
    key = (doc["apiVersion"], doc["kind"])
    if key not in SCHEMA_FILES:
        raise UnknownKindError(f"no CRD schema for {key}: add it to ../shared/crd-schemas and SCHEMA_FILES")
    jsonschema.validate(doc, _strict_schema(key), cls=jsonschema.Draft7Validator)


@cache
def _strict_schema(key: tuple[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((schema_dir() / SCHEMA_FILES[key]).read_text())
    strict: dict[str, Any] = _strict(schema)
    return strict


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def main(paths: list[str]) -> int:
    """`python -m tests.crd_schemas FILE...`: validate every custom resource in the YAML files."""
    import yaml

    checked = 0
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc and is_custom(doc):
                name = doc.get("metadata", {}).get("name")
                try:
                    validate_custom_resource(doc)
                except jsonschema.ValidationError as error:
                    print(f"ERROR {path}: {doc['kind']}/{name}: {error.message} at {list(error.absolute_path)}")
                    return 1
                except UnknownKindError as error:
                    print(f"ERROR {path}: {doc['kind']}/{name}: {error.args[0]}")
                    return 1
                checked += 1
    print(f"{checked} custom resources checked against their CRD schemas strictly")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
