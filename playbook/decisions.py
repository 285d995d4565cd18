"""Plain decision functions of the playbook, tested without Prefect."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from m365.models import RestrictedSender, User

from .outcomes import Outcome

REASON_MAX_LENGTH = 240
# Control, format (bidi, zero-width), line and paragraph separator characters.
_NOT_TEXT = frozenset({"Cc", "Cf", "Zl", "Zp"})


def account_stop(user: User) -> Outcome | None:
    """Why the playbook must not touch this account, or None to go ahead. A disabled account is
    always left alone, even one an earlier run blocked (block_sign_in): whoever can write to
    Prefect could forge any marker saying so, and re-enabling is an administrator's call."""
    if not user.account_enabled:
        return Outcome.ACCOUNT_DISABLED
    if user.on_premises_sync_enabled:
        return Outcome.SYNCED_FROM_ON_PREMISES
    return None


def addresses_to_check(user: User) -> tuple[str, ...]:
    """The UPN first (hosted mailboxes are listed by UPN), then every SMTP address, lower-cased."""
    return user.smtp_addresses


def match_restricted_entry(
    user: User, entries: Iterable[RestrictedSender]
) -> RestrictedSender | None:
    """The Restricted users entry that belongs to ``user``, comparing addresses case-insensitively.

    When several of the user's addresses are listed, the one earliest in ``addresses_to_check``
    (the UPN) wins.
    """
    by_address: dict[str, RestrictedSender] = {}
    for entry in entries:
        by_address.setdefault(entry.sender_address.strip().lower(), entry)
    for address in addresses_to_check(user):
        if address in by_address:
            return by_address[address]
    return None


def is_listed(address: str, entries: Iterable[RestrictedSender]) -> bool:
    """True if ``address`` appears in ``entries`` (case-insensitive)."""
    wanted = address.strip().lower()
    return any(e.sender_address.strip().lower() == wanted for e in entries)


def unblock_reason(ticket: str, approver: str) -> str:
    """The ``-Reason`` text of ``Remove-BlockedSenderAddress`` (audit trail in Exchange).

    The ticket and the approver's name were validated by the forms (playbook.params); the text is
    a plain JSON string value, never a command line. It is composed (NFC) so a name typed with
    separate accents reads and counts the same, any control, format or separator character is
    replaced (a second line of defence), and it is cut to Exchange's length without leaving a
    dangling accent.
    """
    text = unicodedata.normalize("NFC", f"unblock-email: ticket {ticket}; approved by {approver}")
    text = "".join("\ufffd" if unicodedata.category(c) in _NOT_TEXT else c for c in text)
    text = text[:REASON_MAX_LENGTH]
    while text and unicodedata.combining(text[-1]):
        text = text[:-1]
    return text


def handover_block_name(flow_run_id: str) -> str:
    """The Secret block that holds a run's hand-over credential."""
    return f"unblock-handover-{flow_run_id}"


class VerifyAction(StrEnum):
    VERIFIED = "verified"
    RECHECK = "recheck"
    ESCALATE = "escalate"


@dataclass(frozen=True)
class VerifyDecision:
    action: VerifyAction
    next_check_at: datetime | None = None


def verify_decision(
    *,
    still_listed: bool,
    now: datetime,
    approved_at: datetime | None,
    escalate_after: timedelta,
    recheck_after: timedelta,
    attempt: int,
    max_attempts: int,
) -> VerifyDecision:
    """What the follow-up check does next.

    Gone from the list: verified. Still listed: re-check later, unless the escalation deadline
    (approval + ``escalate_after``) has passed or the attempt budget is spent. The next check is
    never scheduled after the deadline, so the last one lands on it.
    """
    if not still_listed:
        return VerifyDecision(VerifyAction.VERIFIED)
    deadline = (approved_at or now) + escalate_after
    if now >= deadline or attempt >= max_attempts:
        return VerifyDecision(VerifyAction.ESCALATE)
    return VerifyDecision(VerifyAction.RECHECK, min(now + recheck_after, deadline))
