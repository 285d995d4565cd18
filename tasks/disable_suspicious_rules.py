"""Optional clean-up on approval: disable the inbox rules the approver was shown (Exchange)."""

from __future__ import annotations

from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.evidence import RemediationRecord

from ._policy import step


@step("disable_suspicious_rules")
def disable_suspicious_rules(
    tenant: str, mailbox: str, identities: tuple[str, ...]
) -> RemediationRecord:
    """``Disable-InboxRule`` for each rule in ``identities`` that is still enabled.

    Idempotent: the rules are re-read first; a rule already disabled or deleted is reported as
    such and not written again, so a retry or a second run changes nothing more.
    """
    log = run_logger()
    exchange = clients_for(tenant).exchange
    current = {r.identity: r for r in exchange.get_inbox_rules(mailbox, include_hidden=True)}
    changed: list[str] = []
    already: list[str] = []
    request_ids: list[str] = []
    for identity in identities:
        rule = current.get(identity)
        if rule is None or not rule.enabled:
            already.append(identity)
            continue
        receipt = exchange.disable_inbox_rule(mailbox, identity)
        changed.append(identity)
        if receipt.request_id:
            request_ids.append(receipt.request_id)
    log.info(
        "Disabled %d inbox rule(s) of %s; %d already disabled or gone",
        len(changed),
        mailbox,
        len(already),
    )
    return RemediationRecord(
        action="disable_suspicious_rules",
        target=mailbox,
        changed=tuple(changed),
        already=tuple(already),
        request_ids=tuple(request_ids),
    )
