"""Strict validation of custom resources against the JSON schemas in ../shared/crd-schemas.

No API server runs here, so custom resources are checked against their CRDs' OpenAPI schemas with a
JSON Schema validator, made as strict as the API server's field validation: every object schema
that lists properties is closed unless it says `x-kubernetes-preserve-unknown-fields`, `nullable`
admits null, and `x-kubernetes-int-or-string` admits both. CEL rules are not evaluated; the ones
that matter are covered by explicit tests.
"""

from __future__ import annotations

import copy
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
}


# Custom resources the platform writes for which ../shared/crd-schemas holds no schema yet. They are
# checked for shape by targeted tests instead; this list makes the gap visible rather than silent.
WITHOUT_SHARED_SCHEMA = {
    ("external-secrets.io/v1", "SecretStore"),
    ("external-secrets.io/v1", "ExternalSecret"),
}


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
    """A custom resource (validated here or listed in WITHOUT_SHARED_SCHEMA), not a built-in kind."""
    key = (doc.get("apiVersion"), doc.get("kind"))
    return key in SCHEMA_FILES or key in WITHOUT_SHARED_SCHEMA


def validate_custom_resource(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if `doc` does not match its CRD schema strictly."""
    key = (doc["apiVersion"], doc["kind"])
    if key in WITHOUT_SHARED_SCHEMA:
        return
    if key not in SCHEMA_FILES:
        raise KeyError(f"no CRD schema for {key}")
    jsonschema.validate(doc, _strict_schema(key), cls=jsonschema.Draft7Validator)


@cache
def _strict_schema(key: tuple[str, str]) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((schema_dir() / SCHEMA_FILES[key]).read_text())
    if key == ("eks.amazonaws.com/v1", "NodeClass"):
        schema = _with_nodeclass_kms_key(schema)
    strict: dict[str, Any] = _strict(schema)
    return strict


def _with_nodeclass_kms_key(schema: dict[str, Any]) -> dict[str, Any]:
    """The shared NodeClass schema (datreeio catalog, commit 7b1e26e) predates
    `spec.ephemeralStorage.kmsKeyID`, which EKS Auto Mode accepts for customer-key encryption of
    node volumes (EKS User Guide auto-kms and create-node-class; FACTS.md; typed in
    aws-quickstart/cdk-eks-blueprints `AutoModeNodeClassSpec`). Add exactly that field and nothing else."""
    patched = copy.deepcopy(schema)
    storage = patched["properties"]["spec"]["properties"]["ephemeralStorage"]
    storage["properties"]["kmsKeyID"] = {"type": "string", "minLength": 1}
    return patched


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
                try:
                    validate_custom_resource(doc)
                except jsonschema.ValidationError as error:
                    name = doc.get("metadata", {}).get("name")
                    print(f"ERROR {path}: {doc['kind']}/{name}: {error.message} at {list(error.absolute_path)}")
                    return 1
                checked += 1
    print(
        f"{checked} custom resources checked against their CRD schemas strictly "
        f"(no shared schema yet for: {', '.join(k for _, k in sorted(WITHOUT_SHARED_SCHEMA))})"
    )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
