"""Build a PlatformConfig from CDK context: a named environment plus single-key overrides.

`cdk.json` holds `environments: {dev: {...}, prod: {...}}`, each listing only what differs from the
model's defaults. `-c env=prod` picks one (dev by default). Any context key whose first dotted part is
a config field overrides one value: `-c cluster.kubernetes_version=1.36`, `-c vpc.max_azs=3`,
`-c account=123456789012`. Lists and mappings are given as JSON
(`-c cluster.public_access_cidrs='["203.0.113.0/24"]'`); scalars as plain text.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from platform_config.delivery import DeliverySettings
from platform_config.model import PlatformConfig

DEFAULT_ENV = "dev"


class ConfigError(ValueError):
    """An invalid configuration: the message names each bad key, its value and what is allowed."""


def load_config(context: Mapping[str, Any]) -> PlatformConfig:
    """Validate the context into a PlatformConfig, or raise ConfigError before anything is built."""
    env_name = str(context.get("env", DEFAULT_ENV))
    environments = context.get("environments") or {}
    if not isinstance(environments, Mapping):
        raise ConfigError("environments: must be a mapping of environment name to settings")
    if env_name not in environments:
        allowed = ", ".join(sorted(environments)) or "(none defined in cdk.json)"
        raise ConfigError(f"env: {env_name!r} is not an environment in cdk.json; allowed: {allowed}")

    raw: dict[str, Any] = copy.deepcopy(dict(environments[env_name] or {}))
    unknown = [_unknown_section(key) for key in context if _is_platform_key(key)]
    if any(unknown):
        raise ConfigError(f"invalid configuration for env {env_name!r}:\n  - " + "\n  - ".join(u for u in unknown if u))
    for key, value in context.items():
        if key.split(".", 1)[0] in PlatformConfig.model_fields and key != "env_name":
            _set_path(raw, key.split("."), _parse_cli_value(value))
    raw["env_name"] = env_name

    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as error:
        errors = error.errors()
        # A list whose items failed also fails its length check; the item errors say what is wrong.
        locs = [tuple(map(str, err["loc"])) for err in errors]
        errors = [
            err
            for err, loc in zip(errors, locs, strict=True)
            if not (err["type"] == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs))
        ]
        lines = [_describe(err) for err in errors]
        raise ConfigError(f"invalid configuration for env {env_name!r}:\n  - " + "\n  - ".join(lines)) from None


def load_delivery_settings(context: Mapping[str, Any]) -> DeliverySettings:
    """The `delivery` section of the context plus `-c delivery.KEY=VALUE` overrides, or a ConfigError."""
    section = context.get("delivery") or {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"delivery: must be a mapping of settings (got {section!r})")
    raw: dict[str, Any] = copy.deepcopy(dict(section))
    for key, value in context.items():
        if key.startswith("delivery."):
            _set_path(raw, key.split(".")[1:], _parse_cli_value(value))
    try:
        return DeliverySettings.model_validate(raw)
    except ValidationError as error:
        lines = [_describe(err, root=DeliverySettings, prefix="delivery") for err in error.errors()]
        raise ConfigError("invalid delivery configuration:\n  - " + "\n  - ".join(lines)) from None


def _is_platform_key(key: str) -> bool:
    """A `-c section.key=value` override. CDK's own context keys never look like that: they carry a
    prefix with '@', '/' or ':' (`@aws-cdk/core:...`, `aws:cdk:...`, `availability-zones:...`)."""
    return "." in key and not any(mark in key for mark in "@/:")


# Context sections that are not one environment's: `delivery` (load_delivery_settings).
_APP_SECTIONS = ("delivery",)


def _unknown_section(key: str) -> str | None:
    section = key.split(".", 1)[0]
    if section in PlatformConfig.model_fields or section in _APP_SECTIONS:
        return None
    sections = sorted(name for name in PlatformConfig.model_fields if name != "env_name")
    close = [name for name in sections if name.lower() == section.lower()]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{key}: {section!r} is not a configuration section (sections: {', '.join(sections)}){hint}"


def _parse_cli_value(value: Any) -> Any:
    """Lists and mappings arrive from `-c` as JSON text; scalars stay strings for the model to coerce
    (so `-c cluster.kubernetes_version=1.20` stays '1.20', never the float 1.2)."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def _describe(err: Any, root: type[BaseModel] = PlatformConfig, prefix: str = "") -> str:
    """One line per error: the dotted key, what is wrong and what is allowed, and the value given."""
    loc = [str(part) for part in err["loc"]]
    key = ".".join([prefix, *loc] if prefix else loc) or prefix or "config"
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(sorted(_model_at(loc[:-1], root).model_fields))
        return f"{key}: unknown key; allowed keys here: {allowed}"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"{key}: required"
    if err["type"] in ("tuple_type", "list_type", "dict_type") and isinstance(err["input"], str):
        shape = (
            'a JSON object, like \'{"key": "value"}\''
            if err["type"] == "dict_type"
            else ('a JSON list, like \'["first", "second"]\'')
        )
        return f"{key}: expects {shape} (got {err['input']!r})"
    if isinstance(err["input"], dict):  # a cross-field rule: its message names the values
        return f"{key}: {message}"
    return f"{key}: {message} (got {err['input']!r})"


def _model_at(loc: list[str], root: type[BaseModel] = PlatformConfig) -> type[BaseModel]:
    """The settings class that a location points into (for listing its allowed keys)."""
    model: type[BaseModel] = root
    for part in loc:
        if part.isdigit():
            continue
        annotation = model.model_fields[part].annotation
        inner = getattr(annotation, "__args__", (annotation,))
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), model)
    return model


def cdk_cli_context(cdk_json: str | Path = "cdk.json", home: Path | None = None) -> dict[str, Any]:
    """The context the CDK CLI hands the app before any `-c` flag: cdk.json's `context`, then cdk.context.json
    next to it (where the README keeps personal values), then ~/.cdk.json's `context`, the first that has a key
    winning (aws-cdk CLI settings, the order of its context bags). Tools outside `cdk` use this to see the
    configuration `cdk deploy` would build."""
    path = Path(cdk_json)
    bags = [cdk_json_context(path)]
    local = path.with_name("cdk.context.json")
    if local.is_file():
        with open(local, encoding="utf-8") as handle:
            bags.append(json.load(handle))
    user = (home if home is not None else Path.home()) / ".cdk.json"
    if user.is_file():
        with open(user, encoding="utf-8") as handle:
            bags.append(json.load(handle).get("context", {}))
    merged: dict[str, Any] = {}
    for bag in reversed(bags):
        merged.update(bag)
    return merged


def cdk_json_context(path: str | Path = "cdk.json") -> dict[str, Any]:
    """The `context` block of cdk.json: what `cdk synth` hands the app before any `-c` flags."""
    with open(path, encoding="utf-8") as handle:
        context: dict[str, Any] = json.load(handle).get("context", {})
    return context
