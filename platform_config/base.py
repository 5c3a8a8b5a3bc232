"""The base of every settings section, and the string types whose errors read as sentences."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def matching(regex: str, description: str) -> Callable[[str], str]:
    """A validator for `Annotated[str, AfterValidator(matching(...))]`: a value that does not match `regex`
    gets "must be <description>", a sentence a person can act on, never the expression itself."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {description}")
        return value

    return check


# A container image pinned by digest: a tag can move under a running platform, a digest cannot.
DigestPinnedImage = Annotated[
    str,
    AfterValidator(
        matching(
            r"[a-z0-9.\-/:_]+(:[\w.\-]+)?@sha256:[0-9a-f]{64}",
            "an image pinned by digest, like registry/repository:tag@sha256:<64 hex digits>",
        )
    ),
]
# A Secrets Manager secret name (Secrets Manager API reference, CreateSecret Name).
SecretName = Annotated[
    str,
    AfterValidator(
        matching(r"[A-Za-z0-9/_+=.@-]{1,512}", "a Secrets Manager secret name (1-512 of letters, digits and /_+=.@-)")
    ),
]


class Settings(BaseModel):
    """Frozen and closed: an unknown or misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
