"""Containment by the sweep: which entries get an unblock-user run, and what came of it.

An entry gets at most one run: the idempotency key (tenant, address, creation time) names it,
so a retried sweep, a later sweep and the watcher all map to the same run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..frozen import Frozen
from ..params import TICKET_PATTERN, UnblockRequest
from .params import Policy, SweepRequest
from .state import EntryState, TenantDiff, _stamp, entry_key

SWEEP_REQUESTER = "restricted-sweep"
UNBLOCK_DEPLOYMENT = "unblock-user/unblock-user"


class ContainmentOrder(Frozen):
    """One unblock-user run to start."""

    tenant: str
    address: str
    account: str
    idempotency_key: str
    parameters: dict[str, Any]


class ContainmentResult(Frozen):
    """What came of one order: the run (new or already existing), or the error."""

    address: str
    idempotency_key: str
    run_id: str | None = None
    run_name: str | None = None
    preexisting: bool = False
    error: str | None = None


def idempotency_key(
    tenant: str, address: str, created: datetime | None, first_seen: datetime
) -> str:
    """The key of the one unblock-user run an entry may get.

    Built from the tenant, the address and Microsoft's creation time of the entry, so a second
    sweep (or a retried one) maps to the same run, while a later restriction of the same
    account (new creation time) gets its own. Without a creation time the first sighting
    stands in for it.
    """
    when = _stamp(created) if created is not None else "seen-" + _stamp(first_seen)
    return f"restricted-sweep:{tenant}:{entry_key(address)}:{when}"


def sweep_ticket(prefix: str, key: str) -> str:
    """A ticket reference for a run the sweep starts; stable for one idempotency key."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    ticket = f"{prefix}-{digest}"
    assert re.fullmatch(TICKET_PATTERN, ticket)
    return ticket


# ---- policy and containment -----------------------------------------------------------------


def plan_containment(
    diff: TenantDiff,
    policy: Policy,
    request: SweepRequest,
) -> tuple[TenantDiff, list[ContainmentOrder]]:
    """Decide which entries get an unblock-user run now, and note why the others do not.

    Eligible: entries that are ``new`` (or ``first-seen`` with ``contain_first_seen``), and
    entries left ``pending`` by an earlier sweep. An entry with a run never gets a second one.
    """
    if policy == "report":
        idle = {"containment": "none", "note": None}
        return diff.updated({e.key: idle for e in diff.current if e.containment == "pending"}), []

    candidates: list[EntryState] = []
    changes: dict[str, dict[str, Any]] = {}
    for entry in diff.current:
        eligible = (
            entry.verdict == "new"
            or (entry.verdict == "first-seen" and request.contain_first_seen)
            or entry.containment == "pending"
        )
        if not eligible or entry.run_id is not None:
            continue
        if entry.resolution == "no-user":
            changes[entry.key] = {
                "containment": "skipped",
                "note": "no directory user (external sender)",
            }
        elif entry.resolution != "user" or not entry.user_upn:
            changes[entry.key] = {"containment": "pending", "note": "user not resolved yet"}
        else:
            candidates.append(entry)

    orders: list[ContainmentOrder] = []
    for entry in candidates:  # oldest first: diff.current is ordered by creation time
        if len(orders) >= request.max_new_runs_per_tenant:
            changes[entry.key] = {
                "containment": "pending",
                "note": f"waits: at most {request.max_new_runs_per_tenant} runs per sweep",
            }
            continue
        key = idempotency_key(diff.tenant, entry.address, entry.created, entry.first_seen)
        try:
            params = UnblockRequest(
                account=entry.user_upn or "",
                tenant=diff.tenant,
                ticket=sweep_ticket(request.ticket_prefix, key),
                requested_by=SWEEP_REQUESTER,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            changes[entry.key] = {
                "containment": "skipped",
                "note": f"refused as a run parameter: {loc}",
            }
            continue
        orders.append(
            ContainmentOrder(
                tenant=diff.tenant,
                address=entry.address,
                account=params.account,
                idempotency_key=key,
                parameters={"request": params.model_dump(mode="json")},
            )
        )
        changes[entry.key] = {"containment": "pending", "note": None}
    return diff.updated(changes), orders


def apply_containment(diff: TenantDiff, results: Iterable[ContainmentResult]) -> TenantDiff:
    """Record the runs started (or found) for the diff's entries; failures stay pending."""
    return diff.updated({entry_key(r.address): _outcome(r) for r in results})


def _outcome(result: ContainmentResult) -> dict[str, Any]:
    if result.run_id is not None:
        note = "run already existed" if result.preexisting else None
        return {"containment": "started", "run_id": result.run_id, "note": note}
    return {"containment": "pending", "note": f"start failed: {result.error}"}
