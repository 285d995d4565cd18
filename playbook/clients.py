"""Per-process cache of clients, keyed by tenant profile name.

Tasks receive a profile *name*; the credentials are loaded here, inside the worker process.
MSAL does network I/O in its constructor, so one set of clients serves every task of the process.
"""

from __future__ import annotations

import threading

from m365 import M365Clients, build_clients
from m365.config import TenantConfig

from .blocks import M365Tenant, tenant_from_env, validate_profile_name

_lock = threading.Lock()
_cache: dict[str, M365Clients] = {}


class UnknownTenantProfile(LookupError):
    """No ``M365Tenant`` block (and no ``M365_*`` environment fallback) has this name."""


def load_tenant(name: str) -> M365Tenant:
    """Load a tenant profile block, falling back to the environment for the demo."""
    validate_profile_name(name)
    try:
        block = M365Tenant.load(name)
    except ValueError as exc:  # Prefect raises ValueError for a missing block document
        fallback = tenant_from_env()
        if fallback is None:
            raise UnknownTenantProfile(f"no M365Tenant block named {name!r}") from exc
        return fallback
    assert isinstance(block, M365Tenant)
    return block


def load_config(name: str) -> TenantConfig:
    return load_tenant(name).to_config()


def clients_for(name: str) -> M365Clients:
    """Clients for the named tenant profile, built once per process."""
    with _lock:
        clients = _cache.get(name)
        if clients is None:
            clients = build_clients(load_config(name))
            _cache[name] = clients
        return clients


def forget(name: str | None = None) -> None:
    """Drop cached clients (all, or one profile) so the next call reloads the block."""
    with _lock:
        if name is None:
            _cache.clear()
        else:
            _cache.pop(name, None)
