"""Step: list a tenant's Restricted users (``Get-BlockedSenderAddress``, every page)."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestration.logs import run_logger
from orchestration.profiles import ProfileClients
from playbook.ratelimit import KeyedConcurrencyLimit
from playbook.sweep.verdicts import TenantListing

from ._policy import single_try


@single_try("list_restricted_entries")
def list_restricted_entries(
    tenant: str, exchange_limit: KeyedConcurrencyLimit, profiles: ProfileClients
) -> TenantListing:
    """Every entry of the tenant's Restricted users list, with its parsed reason.

    Holds one of the tenant's Exchange slots while paging (keyed by tenant id, so two profiles
    of one tenant share the cap). The profile's block is read here, once for the whole sweep
    (``profiles`` keeps it for ``resolve_entries``). Raises ``m365.errors.M365Error`` or
    ``UnknownTenantProfile``.
    """
    logger = run_logger()
    loaded = profiles.load(tenant)
    profile, exchange = loaded.profile, loaded.clients.exchange
    logger.info("Listing restricted users of %s", tenant)
    with exchange_limit.slot(profile.tenant_id.lower()):
        entries = exchange.get_blocked_senders()
    logger.info("%s: %d restricted entries", tenant, len(entries))
    return TenantListing(
        tenant=tenant,
        tenant_id=profile.tenant_id,
        policy="contain" if profile.policy == "contain" else "report",
        entries=tuple(entries),
        listed_at=datetime.now(UTC),
    )
