"""Tenant profile blocks for the tests: save one, and forget its cached clients around a test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from m365.config import TenantConfig


@contextmanager
def saved_profile(config: TenantConfig, name: str, **block: Any) -> Iterator[str]:
    """The M365Tenant block ``name`` made from ``config`` (``block``: further block fields),
    saved; the cached clients of ``name`` forgotten before and after."""
    from orchestration import clients
    from orchestration.blocks import M365Tenant

    M365Tenant.from_config(config, **block).save(name, overwrite=True)
    clients.forget(name)
    try:
        yield name
    finally:
        clients.forget(name)
