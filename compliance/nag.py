"""Compliance packs run on every synth: cdk-nag's four packs plus the platform's own checks.

Each pack is a CDK policy-validation plugin. A finding id starts with its pack's prefix
(`AwsSolutions-S1`, `NIST.800.53.R5-S3BucketLoggingEnabled`, `Platform-EKS-ControlPlaneLogs`); CDK
matches an acknowledgment to a plugin's finding under the plugin's name, so `plugin_for` maps one to
the other.
"""

from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass
from functools import cache
from importlib import resources

from aws_cdk import App, IPolicyValidationPlugin, Stage, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NagPack, NIST80053R5Checks, PCIDSS321Checks

from compliance.platform_checks import RULE_PREFIX as PLATFORM_RULE_PREFIX
from compliance.platform_checks import PlatformChecks


@dataclass(frozen=True)
class NagPackSource:
    """A cdk-nag pack and the file in the cdk-nag package that defines its rules."""

    pack: type[NagPack]
    source: str


NAG_PACKS = (
    NagPackSource(AwsSolutionsChecks, "package/lib/packs/aws-solutions.js"),
    NagPackSource(NIST80053R5Checks, "package/lib/packs/nist-800-53-r5.js"),
    NagPackSource(HIPAASecurityChecks, "package/lib/packs/hipaa-security.js"),
    NagPackSource(PCIDSS321Checks, "package/lib/packs/pci-dss-321.js"),
)


def plugins(app: App, *, production: bool) -> list[IPolicyValidationPlugin]:
    return [*(entry.pack(app) for entry in NAG_PACKS), PlatformChecks(production=production)]


def apply_compliance(app: App, *, production: bool) -> None:
    """Register every pack as a validation plugin: an unacknowledged error makes synth fail."""
    apply_nag_packs(app)
    apply_platform_checks(app, production=production)


def apply_nag_packs(app: App) -> None:
    """cdk-nag's packs, once per App: CDK runs an App's plugins on every stack, those inside Stages included."""
    Validations.of(app).add_plugins(*(entry.pack(app) for entry in NAG_PACKS))


def apply_platform_checks(scope: App | Stage, *, production: bool) -> None:
    """The platform's own checks on the stacks of `scope` (an App, or one environment's Stage)."""
    Validations.of(scope).add_plugins(PlatformChecks(production=production))


@cache
def _prefixes() -> dict[str, str]:
    """Finding-id prefix -> plugin name, e.g. `AwsSolutions-` -> `AwsSolutions`."""
    nag = {f"{entry.pack(None).name}-": entry.pack(None).name for entry in NAG_PACKS}
    return {**nag, PLATFORM_RULE_PREFIX: PlatformChecks(production=True).name}


def plugin_names() -> frozenset[str]:
    """The names of the compliance plugins (CDK's annotation and template-validation plugins are not)."""
    return frozenset(_prefixes().values())


def plugin_for(finding_id: str) -> str:
    """The name of the plugin that raises `finding_id`; a ValueError names the known prefixes."""
    for prefix, name in _prefixes().items():
        if finding_id.startswith(prefix):
            return name
    known = ", ".join(sorted(_prefixes()))
    raise ValueError(f"finding {finding_id!r} belongs to no registered pack; finding ids start with one of: {known}")


_RULE_ID = re.compile(r"this\.applyRule\(\{(?P<body>.*?)\n\s*\}\);", re.DOTALL)
_SUFFIX = re.compile(r"ruleSuffixOverride:\s*'(?P<id>[^']+)'")
_RULE_FUNCTION = re.compile(r"\brule:\s*\w+\.(?P<id>\w+)")


@cache
def pack_rules(pack_name: str) -> tuple[str, ...]:
    """Every rule id the named pack applies to each resource, read from the installed cdk-nag itself.

    A pack applies all its rules to every CfnResource (a rule for another resource type returns
    "not applicable"), so this is the set each synth evaluates. The id is the pack's prefix plus the
    rule's suffix override or, without one, the rule function's name (cdk-nag's `applyRule`).
    """
    (entry,) = [e for e in NAG_PACKS if e.pack(None).name == pack_name]
    archive = resources.files("cdk_nag._jsii").joinpath(f"cdk-nag@{_cdk_nag_version()}.jsii.tgz").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile(entry.source)
        assert member is not None, entry.source
        source = member.read().decode("utf-8")
    ids: list[str] = []
    for call in _RULE_ID.finditer(source):
        body = call.group("body")
        found = _SUFFIX.search(body) or _RULE_FUNCTION.search(body)
        if found is None:
            raise ValueError(f"cannot read a rule id from {entry.source}: {body[:200]}")
        ids.append(f"{pack_name}-{found.group('id')}")
    return tuple(dict.fromkeys(ids))


def _cdk_nag_version() -> str:
    from importlib.metadata import version

    return version("cdk-nag")
