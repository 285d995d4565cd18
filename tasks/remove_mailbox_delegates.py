"""Eviction: remove the flagged mailbox delegates (Exchange)."""

from __future__ import annotations

from m365.exchange import ExchangeAdminClient
from m365.models import Receipt
from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import (
    ActionKind,
    ActionTarget,
    EvictionRecord,
    confirm_gone,
    split_pending,
)

from ._eviction_steps import delete_each
from ._policy import step


def _present(exchange: ExchangeAdminClient, mailbox: str) -> dict[str, tuple[str, ...]]:
    """Delegate key (kind:name, lower-case) -> access rights, as the mailbox has them now."""
    keys: dict[str, tuple[str, ...]] = {}
    for p in exchange.get_mailbox_permissions(mailbox):
        keys[f"FullAccess:{p.user}".lower()] = p.access_rights
    for r in exchange.get_recipient_permissions(mailbox):
        keys[f"SendAs:{r.trustee}".lower()] = r.access_rights
    for d in exchange.get_send_on_behalf(mailbox):
        keys[f"SendOnBehalf:{d}".lower()] = ()
    return keys


@step("remove_mailbox_delegates")
def remove_mailbox_delegates(
    tenant: str, mailbox: str, targets: tuple[ActionTarget, ...]
) -> EvictionRecord:
    """Re-read the three delegate lists, remove each target still present, re-read.

    Full Access with ``Remove-MailboxPermission`` (the rights it holds now), Send As with
    ``Remove-RecipientPermission``, Send on Behalf with ``Set-Mailbox -GrantSendOnBehalfTo
    @{remove=...}`` so the other delegates stay. Idempotent.
    """
    log = run_logger()
    exchange = clients_for(tenant).exchange
    present = _present(exchange, mailbox)
    by_key = {t.id.lower(): t for t in targets if t.delegate_kind and t.delegate}
    todo, already = split_pending(list(by_key), present)

    def remove(key: str) -> Receipt:
        target = by_key[key]
        assert target.delegate is not None
        if target.delegate_kind == "FullAccess":
            rights = present[key] or ("FullAccess",)
            return exchange.remove_mailbox_permission(mailbox, target.delegate, rights)
        if target.delegate_kind == "SendAs":
            return exchange.remove_recipient_permission(mailbox, target.delegate)
        return exchange.remove_send_on_behalf(mailbox, target.delegate)

    reasons, request_ids = delete_each(
        todo, remove, refused="refused: the app lacks the Exchange Administrator role"
    )
    changed, failed = confirm_gone(todo, _present(exchange, mailbox), reasons)
    record = EvictionRecord(
        action=ActionKind.REMOVE_MAILBOX_DELEGATES,
        account=mailbox,
        changed=tuple(by_key[k].id for k in changed),
        already=tuple(by_key[k].id for k in already),
        failed=tuple((by_key[k].id, why) for k, why in failed),
        request_ids=tuple(request_ids),
    )
    log.info("Remove flagged mailbox delegates: %s", record.detail)
    return record
