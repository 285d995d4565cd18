"""Verdicts of the restricted-users sweep: compare what is listed with the stored state.

Everything in ``playbook.sweep`` is a pure function of its inputs (no Prefect, no network), so
it is tested without a server. The flow ``flows/restricted_sweep.py`` feeds it what the tasks
fetched.

Verdicts for an entry of one tenant's Restricted users list:

- ``first-seen``: there was no usable state (first sweep of the tenant, or the state was lost);
  the entry may be old, so it is never called "new" and by default never contained.
- ``new``: absent from the last successful sweep, or listed again with another creation time
  (Microsoft restricted the account again).
- ``restricted``: listed in the last successful sweep as well.
- ``cleared``: listed in the last successful sweep, absent now.

A tenant whose listing failed gets no verdicts at all and keeps its previous state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from m365.models import RestrictedSender, RestrictionReason

from ..frozen import Frozen
from .params import Policy
from .state import EntryState, Resolution, TenantDiff, TenantState, _utc, entry_key


class TenantListing(Frozen):
    """What ``list_restricted_entries`` returns for one tenant."""

    tenant: str
    tenant_id: str
    policy: Policy
    entries: tuple[RestrictedSender, ...]
    listed_at: datetime


class ResolvedEntry(Frozen):
    """The directory user behind one listed address (or why there is none)."""

    address: str
    resolution: Resolution
    user_id: str | None = None
    user_upn: str | None = None
    error: str | None = None


# ---- reasons --------------------------------------------------------------------------------


def summarize_reason(reason: RestrictionReason) -> str:
    """One line for analysts, from the parsed ``Reason`` of an entry."""
    parts: list[str] = []
    if reason.outbound_spam_percent is not None or reason.outbound_spam_last_24h is not None:
        text = "outbound spam"
        if reason.outbound_spam_percent is not None:
            text += f" {reason.outbound_spam_percent:g}%"
        if reason.outbound_spam_last_24h is not None and reason.outbound_mail_last_24h is not None:
            text += f" ({reason.outbound_spam_last_24h}/{reason.outbound_mail_last_24h} in 24h)"
        parts.append(text)
    if reason.kind and reason.kind.lower().startswith("emailsendinglimit"):
        text = "sending limit exceeded"
        if reason.exceeding_limit_type:
            text += f" ({reason.exceeding_limit_type})"
        counts = []
        if reason.internal_recipient_count_today is not None:
            counts.append(f"{reason.internal_recipient_count_today} internal")
        if reason.external_recipient_count_today is not None:
            counts.append(f"{reason.external_recipient_count_today} external")
        if counts:
            text += ": " + ", ".join(counts) + " recipients today"
        parts.append(text)
    if not parts:
        return reason.kind or (reason.raw[:80] if reason.raw else "no reason given")
    return "; ".join(parts)


# ---- the diff -------------------------------------------------------------------------------


def same_restriction(old_created: datetime | None, new_created: datetime | None) -> bool:
    """Is a listed entry the restriction remembered, or a new one of the same account?

    A different creation time means Microsoft restricted the account again; a missing time on
    either side is taken as the same restriction (nothing says otherwise).
    """
    if old_created is None or new_created is None:
        return True
    return _utc(old_created) == _utc(new_created)


def dedupe(listed: Iterable[RestrictedSender]) -> list[RestrictedSender]:
    """One entry per address (the latest), in list order. Pages can overlap while the list moves."""
    by_key: dict[str, RestrictedSender] = {}
    for entry in listed:
        key = entry_key(entry.sender_address)
        kept = by_key.get(key)
        if kept is None or (
            entry.created is not None
            and (kept.created is None or _utc(entry.created) > _utc(kept.created))
        ):
            by_key[key] = entry
    return list(by_key.values())


def classify(
    tenant: str,
    previous: TenantState | None,
    listed: Sequence[RestrictedSender],
    now: datetime,
) -> TenantDiff:
    """Compare what is listed now with the last successful sweep's state."""
    now = _utc(now)
    prev = previous.entries if previous is not None else {}
    current: list[EntryState] = []
    for item in dedupe(listed):
        reason_fields: dict[str, Any] = {
            "address": item.sender_address,
            "created": item.created,
            "temporary_block": item.temporary_block,
            "reason_kind": item.reason.kind,
            "reason_summary": summarize_reason(item.reason),
            "reason": item.reason.raw,
        }
        old = prev.get(entry_key(item.sender_address))
        if previous is None:
            current.append(
                EntryState(verdict="first-seen", first_seen=now, baseline=True, **reason_fields)
            )
        elif old is None:
            current.append(EntryState(verdict="new", first_seen=now, **reason_fields))
        elif same_restriction(old.created, item.created):
            carried = old.model_dump(exclude={"verdict", *reason_fields})
            if item.created is None:  # keep what an earlier listing told us
                reason_fields["created"] = old.created
            current.append(EntryState(verdict="restricted", **carried, **reason_fields))
        else:  # restricted again: a new restriction of a known account; the user is still valid
            current.append(
                EntryState(
                    verdict="new",
                    first_seen=now,
                    resolution=old.resolution
                    if old.resolution in ("user", "no-user")
                    else "pending",
                    user_id=old.user_id,
                    user_upn=old.user_upn,
                    **reason_fields,
                )
            )
    listed_keys = {e.key for e in current}
    cleared = [
        old.model_copy(update={"verdict": "cleared"})
        for key, old in prev.items()
        if key not in listed_keys
    ]
    return TenantDiff(
        tenant=tenant,
        swept_at=now,
        previous_swept_at=previous.swept_at if previous is not None else None,
        current=tuple(sorted(current, key=_order)),
        cleared=tuple(sorted(cleared, key=_order)),
    )


def _order(entry: EntryState) -> tuple[datetime, str]:
    return (_utc(entry.created or entry.first_seen), entry.key)


# ---- resolution -----------------------------------------------------------------------------


def addresses_to_resolve(diff: TenantDiff) -> list[str]:
    """Addresses whose user is not known yet (earlier results are reused: fewer Graph calls)."""
    return [e.address for e in diff.current if e.resolution in ("pending", "error")]


def apply_resolutions(diff: TenantDiff, resolved: Iterable[ResolvedEntry]) -> TenantDiff:
    """Fill in the directory users found for the diff's entries."""
    return diff.updated(
        {
            entry_key(r.address): {
                "resolution": r.resolution,
                "user_id": r.user_id,
                "user_upn": r.user_upn,
                "resolution_error": r.error,
            }
            for r in resolved
        }
    )
