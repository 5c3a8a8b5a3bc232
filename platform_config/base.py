"""The base of every settings section."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

# A container image pinned by digest: a tag can move under a running platform, a digest cannot.
DigestPinnedImage = Annotated[str, StringConstraints(pattern=r"^[a-z0-9.\-/:_]+(:[\w.\-]+)?@sha256:[0-9a-f]{64}$")]


class Settings(BaseModel):
    """Frozen and closed: an unknown or misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
