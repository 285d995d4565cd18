"""The benchmark's emulated tenants: the demo's contoso plus generated sweep tenants."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import yaml

from emulator import Emulator, demo_seed_path
from m365.config import TenantConfig

CONTAINMENT_TENANT = "contoso"
CONTAINMENT_ACCOUNT = "alex@contoso.com"  # not on the Restricted users list: no approval pause
_NS = uuid.UUID("0b7c4b8e-7f0e-4d4e-9a55-1f0c8f5a3b21")


@dataclass(frozen=True)
class SweepCase:
    """N restricted entries in total, spread evenly over ``tenants`` tenants."""

    entries: int
    tenants: int

    @property
    def label(self) -> str:
        return f"N={self.entries:,} / {self.tenants} tenant{'s' if self.tenants > 1 else ''}"

    def tenant_names(self) -> list[str]:
        if self.tenants == 1:
            return [f"b-n{self.entries}-t1"]
        return [f"b-n{self.entries}-t{self.tenants}-{i}" for i in range(self.tenants)]

    def per_tenant(self) -> list[int]:
        base, extra = divmod(self.entries, self.tenants)
        return [base + (1 if i < extra else 0) for i in range(self.tenants)]


def _sweep_tenant(name: str, count: int) -> dict[str, Any]:
    return {
        "name": name,
        "tenant_id": str(uuid.uuid5(_NS, name)),
        "domain": f"{name}.onmicrosoft.com",
        "settings": {"removal_delay_seconds": 0, "page_size": 100},
        "generate_restricted": {"count": count, "prefix": "spam"},
        "apps": [
            {
                "name": "playbook",
                "client_id": str(uuid.uuid5(_NS, f"{name}/app")),
                "client_secret": f"emulator-secret-{name}-not-real",
                "roles": ["User.Read.All", "Exchange.ManageAsApp"],
                "wids": ["Exchange Administrator"],
            }
        ],
    }


@dataclass(frozen=True)
class WatchTenants:
    """Tenants of the watcher's parts: ``count`` tenants, each with ``users`` accounts that can
    be restricted (``e0@…``) and ``restricted`` entries already on the list."""

    prefix: str
    count: int
    users: int
    restricted: int = 0

    def names(self) -> list[str]:
        return [f"{self.prefix}{self.count}-{i}" for i in range(self.count)]

    @staticmethod
    def account(tenant: str, k: int) -> str:
        return f"e{k}@{tenant}.onmicrosoft.com"


def _watch_tenant(
    name: str, users: int, restricted: int, apps: list[dict[str, Any]]
) -> dict[str, Any]:
    tenant = _sweep_tenant(name, restricted)
    tenant["users"] = [{"upn": WatchTenants.account(name, k)} for k in range(users)]
    # The demo's playbook app: what unblock-user needs (reset, revoke, roles, mailbox reads).
    tenant["apps"] = [
        {
            **apps[0],
            "client_id": str(uuid.uuid5(_NS, f"{name}/app")),
            "client_secret": f"emulator-secret-{name}-not-real",
        }
    ]
    if not restricted:
        tenant.pop("generate_restricted")
    return tenant


def build_seed(cases: list[SweepCase], watch: list[WatchTenants] | None = None) -> dict[str, Any]:
    demo: dict[str, Any] = yaml.safe_load(demo_seed_path().read_text(encoding="utf-8"))
    tenants = [t for t in demo["tenants"] if t["name"] == CONTAINMENT_TENANT]
    playbook_app = [a for a in tenants[0]["apps"] if a["name"] == "playbook"]
    for case in cases:
        for name, count in zip(case.tenant_names(), case.per_tenant(), strict=True):
            tenants.append(_sweep_tenant(name, count))
    for group in watch or []:
        for name in group.names():
            tenants.append(_watch_tenant(name, group.users, group.restricted, playbook_app))
    return {"tenants": tenants}


def config_payload(config: TenantConfig) -> dict[str, Any]:
    """A ``TenantConfig`` as JSON for a child's stdin (the emulator's fake secret included)."""
    data = config.model_dump(mode="json")
    for key in ("client_secret", "certificate_pem", "pfx_passphrase"):
        value = getattr(config, key, None)
        data[key] = value.get_secret_value() if value is not None else None
    return data


def save_blocks(emu: Emulator, names: list[str], policy: str = "report") -> None:
    """One M365Tenant block per tenant, pointing at the emulator.

    Runs seal their new password to a hand-over key; the benchmark never opens one, so the
    private half is not kept."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from orchestration.blocks import M365Tenant
    from playbook.sealing import public_key_text

    handover_key = public_key_text(X25519PrivateKey.generate().public_key())
    M365Tenant.register_type_and_schema()
    for name in names:
        M365Tenant.from_config(
            emu.tenant_config(name), policy=policy, handover_public_key=handover_key
        ).save(name, overwrite=True)


def pages(entries: int, page_size: int = 100) -> int:
    """Get-BlockedSenderAddress requests to list ``entries`` (an empty list is one request)."""
    return max(1, math.ceil(entries / page_size))
