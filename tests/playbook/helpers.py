"""Run helpers for the playbook flow tests: unblock-user runs on the 'contoso' profile."""

from __future__ import annotations

from typing import Any

from ..helpers.runs import Started
from ..helpers.runs import start_unblock as _start_unblock

TENANT = "contoso"


def start_unblock(**params: Any) -> Started:
    """Run unblock-user on ``TENANT`` (or ``tenant=``) in a thread under a unique run name
    ``test-<hex>``."""
    tenant = params.pop("tenant", TENANT)
    return _start_unblock(
        tenant, run_prefix="test", default_ticket="INC-1001", timeout=90, **params
    )


def run_unblock(timeout: float = 90, **params: Any) -> Any:
    return start_unblock(**params).state(timeout)
