"""Per-process cache of clients, keyed by tenant profile name.

Tasks receive a profile *name*; the profile is loaded here, inside the worker process, and its
credential is resolved there (``M365Tenant.to_config``). A name resolves to its block or fails:
nothing falls back to the environment or to another tenant.
MSAL does network I/O in its constructor, so one set of clients serves every task of the process.
"""

from __future__ import annotations

import os
import threading

from pydantic import ValidationError

from m365 import M365Clients, build_clients
from m365.config import TenantConfig
from orchestration.blocks import M365Tenant
from playbook.params import validate_profile_name
from playbook.sealing import SealError, fingerprint, parse_public_key

HANDOVER_KEYS_ENV = "UNBLOCK_EMAIL_HANDOVER_KEYS"

_lock = threading.Lock()
_cache: dict[str, M365Clients] = {}


class UnknownTenantProfile(LookupError):
    """No ``M365Tenant`` block has this name (or the block cannot be used as a profile)."""


class NoHandoverKey(ValueError):
    """The profile cannot seal a hand-over credential (no key, or a key this worker refuses)."""


def load_tenant(name: str) -> M365Tenant:
    """The tenant profile block ``name``; ``UnknownTenantProfile`` if there is none."""
    validate_profile_name(name)
    try:
        block = M365Tenant.load(name)
    except ValueError:  # Prefect raises ValueError for a missing block document
        raise UnknownTenantProfile(f"no M365Tenant block named {name!r}") from None
    except RuntimeError as exc:  # Prefect: the stored document fails validation
        raise UnknownTenantProfile(
            f"the M365Tenant block {name!r} is not a usable profile: {_problems(exc)}"
        ) from None
    assert isinstance(block, M365Tenant)
    return block


def _problems(exc: RuntimeError) -> str:
    """The validation problems by field, without the values (they may be secrets)."""
    cause = exc.__cause__
    if not isinstance(cause, ValidationError):
        return "it fails validation"
    parts = []
    for error in cause.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "profile"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)[:500]


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


def worker_handover_keys(environ: dict[str, str] | None = None) -> frozenset[str]:
    """Fingerprints of the hand-over keys this worker seals to (``UNBLOCK_EMAIL_HANDOVER_KEYS``,
    comma-separated); empty = any key the profile names."""
    env = os.environ if environ is None else environ
    raw = env.get(HANDOVER_KEYS_ENV, "")
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def handover_key(name: str) -> str:
    """The hand-over public key of profile ``name``, checked; ``NoHandoverKey`` says why not.

    A profile is editable by every API user, so a worker can pin the keys it accepts
    (``UNBLOCK_EMAIL_HANDOVER_KEYS``): otherwise whoever edits the profile's key receives the
    next runs' passwords.
    """
    profile = load_tenant(name)
    text = profile.handover_public_key
    if not text:
        raise NoHandoverKey(
            f"tenant profile {name} has no handover_public_key, so the new credential could not "
            "be stored for the hand-over; nothing was changed. Create a key pair with "
            "'python -m orchestration.handover keygen --out handover.key', put the printed public "
            "key in the profile, or start the run with handover 'none'"
        )
    try:
        fp = fingerprint(parse_public_key(text))
    except SealError as exc:
        raise NoHandoverKey(f"tenant profile {name}: {exc}") from None
    pinned = worker_handover_keys()
    if pinned and fp not in pinned:
        raise NoHandoverKey(
            f"tenant profile {name} names the hand-over key {fp}, which this worker does not "
            f"accept ({HANDOVER_KEYS_ENV}); nothing was changed"
        )
    return text
