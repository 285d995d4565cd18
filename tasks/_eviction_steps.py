"""Bodies shared by eviction step tasks. Not tasks: each step keeps its own thin file."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Literal

from m365.errors import M365Error, NotFoundError, PermissionDeniedError, TransientError
from m365.graph import GraphClient
from m365.models import DirectoryAudit, Receipt
from playbook.eviction import (
    CHECKED,
    DEFINITE_ERRORS,
    ActionKind,
    Check,
    EvictionRecord,
    SuspicionWindow,
    confirm_gone,
    not_checked,
    sign_in_record,
)

# The audit log only dates what was read: a transient failure that outlived the client's retries
# is "not checked" too, since a task retry would throw the list already read away with it.
AUDIT_ERRORS: tuple[type[M365Error], ...] = (*DEFINITE_ERRORS, TransientError)


def read_audit_events(
    read: Callable[[str, datetime, datetime], list[DirectoryAudit]],
    user_id: str,
    window: SuspicionWindow,
) -> tuple[list[DirectoryAudit], Check]:
    """The audit events over the window and baseline, or none and why they were not read."""
    try:
        events = read(user_id, window.baseline_start, window.end)
    except AUDIT_ERRORS as exc:
        return [], not_checked(exc, needs="AuditLog.Read.All and Directory.Read.All")
    return events, CHECKED


def set_sign_in(
    graph: GraphClient,
    user_id: str,
    action: Literal["block_sign_in"] | ActionKind,
    *,
    enabled: bool,
) -> EvictionRecord:
    """Re-read, write ``accountEnabled`` only if it differs, re-read."""
    before = graph.get_user(user_id).account_enabled
    request_ids: tuple[str, ...] = ()
    if before != enabled:
        write = graph.enable_sign_in if enabled else graph.block_sign_in
        receipt = write(user_id)
        request_ids = (receipt.request_id,) if receipt.request_id else ()
    after = graph.get_user(user_id).account_enabled
    return sign_in_record(
        action,
        user_id,
        wanted_enabled=enabled,
        before=before,
        after=after,
        request_ids=request_ids,
    )


def delete_each(
    todo: Iterable[str], delete: Callable[[str], Receipt], *, refused: str
) -> tuple[dict[str, str], list[str]]:
    """Delete each target: the reasons of those Microsoft refused (``refused``), and the request
    ids. One gone meanwhile is no failure: the re-read after the deletes counts it as gone."""
    reasons: dict[str, str] = {}
    request_ids: list[str] = []
    for target in todo:
        try:
            receipt = delete(target)
        except NotFoundError:
            continue
        except PermissionDeniedError:
            reasons[target] = refused
            continue
        if receipt.request_id:
            request_ids.append(receipt.request_id)
    return reasons, request_ids


def removal_record(
    action: ActionKind,
    account: str,
    todo: Sequence[str],
    already: tuple[str, ...],
    present_after: Iterable[str],
    reasons: dict[str, str],
    request_ids: Sequence[str],
) -> EvictionRecord:
    """What a delete-each-target action did, from the re-read after the deletes."""
    changed, failed = confirm_gone(todo, present_after, reasons)
    return EvictionRecord(
        action=action,
        account=account,
        changed=changed,
        already=already,
        failed=failed,
        request_ids=tuple(request_ids),
    )
