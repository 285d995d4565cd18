"""The one base of the core's value models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Immutable, and refuses a field it does not know (a typo is an error, not a silent loss)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
