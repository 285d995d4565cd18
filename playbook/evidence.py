"""Compromise evidence and the guards around an unblock: plain functions, tested without Prefect.

Microsoft's compromised-account runbook asks, before an unblock, for: the forwarding and inbox
rules an attacker may have set (hidden rules included), the admin roles the account holds, and
proof that the password really was reset. This module turns what the clients read into findings,
a one-line risk summary for the approver, and the decisions the flow takes:

- ``password_reset_guard``: the last password change must be newer than the restriction;
- ``privileged_guard``: no password reset of an admin without an override and a second person;
- ``cap_warning``: warn before Microsoft's (unpublished) per-account unblock cap is reached;
- ``EscalationSchedule``: when to escalate, when the approval expires, how long the pause lasts;
- ``key_findings`` and ``restriction_line``: the few lines the approver reads in the form's
  description (the full evidence is its own artifact), and ``available_cleanups``: the clean-up
  checkboxes the form offers, only for what there is to clean up.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import Field

from m365.models import DirectoryRole, InboxRule, MailboxForwarding, RestrictedSender

from .addresses import domain_of as domain_of
from .addresses import is_external
from .addresses import tenant_domains as tenant_domains
from .eviction import EvictionEvidence, eviction_key_lines, not_checked_line
from .frozen import Frozen
from .params import PROFILE_PATTERN

# Folders an attacker moves mail to so the owner does not see replies or bounces
# (Microsoft's guidance names RSS, Notes and Junk; "Conversation History" is used the same way).
HIDING_FOLDERS = frozenset(
    {
        "rss feeds",
        "rss subscriptions",
        "notes",
        "junk email",
        "junk e-mail",
        "junk",
        "conversation history",
    }
)
DELETING_FOLDERS = frozenset({"deleted items", "recoverable items"})

# Exchange renders recipients as '"Name" [SMTP:addr]' or 'smtp:addr'; keep the address only.
_BRACKETED = re.compile(r"\[(?:smtp|SMTP|ex|EX):([^\]]+)\]")
_PREFIXED = re.compile(r"^(?:smtp|SMTP):(.+)$")
# A rule called ".", "..", "," or blank is a classic attacker pattern: nothing to read in a list.
_INVISIBLE_NAME = re.compile(r"^[\s.,;:'\"`_\-]*$")

RiskLevel = Literal["none", "low", "high"]


class Indicator(StrEnum):
    """Why a rule or a forwarding setting is suspicious. The value is shown to the approver."""

    FORWARDS = "forwards mail"
    FORWARDS_EXTERNAL = "forwards mail outside the organisation"
    REDIRECTS = "redirects mail"
    DELETES = "deletes mail"
    MOVES_TO_HIDING_FOLDER = "moves mail to a folder nobody reads"
    HIDDEN = "hidden rule (only visible with -IncludeHidden)"
    BLANK_NAME = "name that is blank or only punctuation"


# Indicators that make a rule worth disabling; a hidden or oddly named rule alone is shown only.
_ACTIONABLE = frozenset(
    {
        Indicator.FORWARDS,
        Indicator.FORWARDS_EXTERNAL,
        Indicator.REDIRECTS,
        Indicator.DELETES,
        Indicator.MOVES_TO_HIDING_FOLDER,
    }
)


class RuleFinding(Frozen):
    """One inbox rule as the approver sees it."""

    identity: str
    name: str
    enabled: bool
    hidden: bool
    recipients: tuple[str, ...] = ()
    external_recipients: tuple[str, ...] = ()
    move_to_folder: str | None = None
    indicators: tuple[Indicator, ...] = ()

    @property
    def suspicious(self) -> bool:
        """True if the rule moves mail away from the owner (forward, redirect, delete, hide)."""
        return any(i in _ACTIONABLE for i in self.indicators)

    @property
    def active_threat(self) -> bool:
        return self.suspicious and self.enabled


class ForwardingFinding(Frozen):
    """Mailbox-level forwarding (``Get-Mailbox``)."""

    identity: str
    forwarding_address: str | None = None
    forwarding_smtp_address: str | None = None
    deliver_to_mailbox_and_forward: bool = False
    external: bool = False

    @property
    def forwards(self) -> bool:
        return bool(self.forwarding_address or self.forwarding_smtp_address)

    @property
    def target(self) -> str | None:
        """Where mail goes. ForwardingAddress (internal) wins over ForwardingSmtpAddress."""
        return self.forwarding_address or self.forwarding_smtp_address


class PasswordCheck(Frozen):
    """Whether the password change is newer than the restriction."""

    ok: bool
    last_password_change: datetime | None = None
    restricted_since: datetime | None = None
    reason: str


class CapWarning(Frozen):
    """How often this playbook has unblocked the account, against the assumed cap."""

    previous_unblocks: int
    assumed_cap: int
    level: Literal["none", "warn", "last", "over"]
    message: str = ""


class RulesReview(Frozen):
    """Result of reviewing a mailbox's inbox rules."""

    mailbox: str
    rules: tuple[RuleFinding, ...] = ()


class RolesReview(Frozen):
    """Admin (directory) roles the account holds."""

    user_id: str
    roles: tuple[str, ...] = ()


class RemediationRecord(Frozen):
    """One optional clean-up as applied: what changed, what was already in the wanted state."""

    action: Literal["disable_suspicious_rules", "clear_forwarding"]
    target: str
    changed: tuple[str, ...] = ()
    already: tuple[str, ...] = ()
    request_ids: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        if self.action == "clear_forwarding":
            return "forwarding cleared" if self.changed else "no forwarding was set"
        parts = []
        if self.changed:
            parts.append(f"disabled {len(self.changed)} rule(s)")
        if self.already:
            parts.append(f"{len(self.already)} already disabled or gone")
        return "; ".join(parts) or "nothing to disable"


class Evidence(Frozen):
    """Everything the approver should see before deciding."""

    account: str
    rules: tuple[RuleFinding, ...] = ()
    forwarding: ForwardingFinding | None = None
    roles: tuple[str, ...] = ()
    password: PasswordCheck | None = None
    cap: CapWarning | None = None
    errors: tuple[str, ...] = Field(default=(), description="Checks that could not be read")
    eviction: EvictionEvidence | None = Field(
        default=None, description="Sign-in methods, sign-ins, app consents, delegates, sent mail"
    )

    @property
    def suspicious_rules(self) -> tuple[RuleFinding, ...]:
        return tuple(r for r in self.rules if r.suspicious)

    @property
    def rules_to_disable(self) -> tuple[RuleFinding, ...]:
        return tuple(r for r in self.rules if r.active_threat)

    @property
    def risk(self) -> RiskLevel:
        if (
            self.rules_to_disable
            or (self.forwarding is not None and self.forwarding.forwards)
            or self.roles
            or (self.password is not None and not self.password.ok)
            or (self.eviction is not None and self.eviction.flagged_parts)
        ):
            return "high"
        if (
            self.suspicious_rules
            or self.errors
            or (self.cap and self.cap.level != "none")
            or (self.eviction is not None and self.eviction.not_checked)
        ):
            return "low"
        return "none"

    @property
    def summary(self) -> str:
        return risk_summary(self)


# -- classification ---------------------------------------------------------------------------


def recipient_address(value: str) -> str:
    """The bare SMTP address in an Exchange recipient string, lower-cased."""
    text = value.strip()
    if m := _BRACKETED.search(text):
        return m.group(1).strip().lower()
    if m := _PREFIXED.match(text):
        return m.group(1).strip().lower()
    return text.strip('"').lower()


def classify_rule(rule: InboxRule, domains: frozenset[str], *, hidden: bool) -> RuleFinding:
    """Turn one inbox rule into a finding. ``hidden``: seen only with ``-IncludeHidden``."""
    forwarded = (*rule.forward_to, *rule.forward_as_attachment_to)
    forwards = tuple(recipient_address(r) for r in forwarded)
    redirects = tuple(recipient_address(r) for r in rule.redirect_to)
    recipients = tuple(dict.fromkeys((*forwards, *redirects)))
    external = tuple(a for a in recipients if is_external(a, domains))
    folder = (rule.move_to_folder or "").strip()
    folder_key = folder.rsplit("\\", 1)[-1].lower()
    indicators: list[Indicator] = []
    if forwards:
        indicators.append(Indicator.FORWARDS)
    if redirects:
        indicators.append(Indicator.REDIRECTS)
    if external:
        indicators.append(Indicator.FORWARDS_EXTERNAL)
    if rule.delete_message or folder_key in DELETING_FOLDERS:
        indicators.append(Indicator.DELETES)
    if folder_key in HIDING_FOLDERS:
        indicators.append(Indicator.MOVES_TO_HIDING_FOLDER)
    if hidden or rule.hidden:
        indicators.append(Indicator.HIDDEN)
    if _INVISIBLE_NAME.fullmatch(rule.name):
        indicators.append(Indicator.BLANK_NAME)
    return RuleFinding(
        identity=rule.identity,
        name=rule.name,
        enabled=rule.enabled,
        hidden=hidden or rule.hidden,
        recipients=recipients,
        external_recipients=external,
        move_to_folder=folder or None,
        indicators=tuple(indicators),
    )


def classify_rules(
    all_rules: Sequence[InboxRule], visible: Sequence[InboxRule], domains: frozenset[str]
) -> tuple[RuleFinding, ...]:
    """Findings for every rule; a rule missing from the plain listing is hidden."""
    visible_ids = {r.identity for r in visible}
    return tuple(classify_rule(r, domains, hidden=r.identity not in visible_ids) for r in all_rules)


def classify_forwarding(fwd: MailboxForwarding, domains: frozenset[str]) -> ForwardingFinding:
    smtp = recipient_address(fwd.forwarding_smtp_address) if fwd.forwarding_smtp_address else None
    # ForwardingAddress is a recipient object inside the organisation; only the SMTP target can
    # leave it (and it only applies when ForwardingAddress is empty).
    external = bool(smtp and not fwd.forwarding_address and is_external(smtp, domains))
    return ForwardingFinding(
        identity=fwd.identity,
        forwarding_address=fwd.forwarding_address,
        forwarding_smtp_address=smtp,
        deliver_to_mailbox_and_forward=fwd.deliver_to_mailbox_and_forward,
        external=external,
    )


def role_names(roles: Iterable[DirectoryRole]) -> tuple[str, ...]:
    return tuple(sorted({r.display_name for r in roles}))


# -- the one-line summary ----------------------------------------------------------------------


def risk_summary(ev: Evidence) -> str:
    """One line for the top of the approval: the risk level and what drives it."""
    parts: list[str] = []
    if threats := ev.rules_to_disable:
        hidden = sum(1 for r in threats if r.hidden)
        ext = sum(1 for r in threats if r.external_recipients)
        detail = ", ".join(
            x for x in (f"{hidden} hidden" if hidden else "", f"{ext} external" if ext else "") if x
        )
        parts.append(
            f"{len(threats)} suspicious inbox rule{'s' if len(threats) != 1 else ''}"
            + (f" ({detail})" if detail else "")
        )
    if ev.forwarding is not None and ev.forwarding.forwards:
        where = "external" if ev.forwarding.external else "internal"
        parts.append(f"mailbox forwarding to an {where} address")
    if ev.eviction is not None:
        parts.extend(ev.eviction.flagged_parts)
    if ev.roles:
        parts.append(f"holds admin role{'s' if len(ev.roles) != 1 else ''}: " + ", ".join(ev.roles))
    if ev.password is not None and not ev.password.ok:
        parts.append("password not reset after the restriction")
    if ev.cap is not None and ev.cap.level != "none":
        parts.append(f"unblocked {ev.cap.previous_unblocks} time(s) before")
    unread = len(ev.errors) + (len(ev.eviction.not_checked) if ev.eviction is not None else 0)
    if unread:
        parts.append(f"{unread} check(s) could not be read")
    if not parts:
        return "Risk: NONE. No forwarding, no suspicious inbox rules, no admin roles."
    return f"Risk: {ev.risk.upper()}. " + "; ".join(parts) + "."


# -- what the approver reads first -------------------------------------------------------------

MAX_KEY_FINDINGS = 8
_MAX_NAME = 60  # a rule name or address longer than this is cut in a finding line


class CleanUp(StrEnum):
    """An optional clean-up the approval form can offer; the value is the form field's name."""

    DISABLE_SUSPICIOUS_RULES = "disable_suspicious_rules"
    CLEAR_FORWARDING = "clear_forwarding"


class Finding(Frozen):
    """One short line of the approval's key findings; ``alert`` lines are shown in bold."""

    text: str
    alert: bool = False


def available_cleanups(ev: Evidence) -> tuple[CleanUp, ...]:
    """The clean-ups worth offering: only for what the evidence shows there is to clean up."""
    offered: list[CleanUp] = []
    if ev.rules_to_disable:
        offered.append(CleanUp.DISABLE_SUSPICIOUS_RULES)
    if ev.forwarding is not None and ev.forwarding.forwards:
        offered.append(CleanUp.CLEAR_FORWARDING)
    return tuple(offered)


def when(value: datetime | None) -> str:
    """A timestamp as the approver reads it, always in UTC: ``2026-03-01 08:15:00 UTC``."""
    if value is None:
        return "(unknown)"
    return _as_utc(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(text: str) -> str:
    return text if len(text) <= _MAX_NAME else text[: _MAX_NAME - 1] + "…"


def restriction_line(entry: RestrictedSender, account: str | None = None) -> str:
    """The Restricted users entry in one line: since when and why (and the listed address when
    it is not ``account``)."""
    reason = entry.reason
    why = reason.kind or "reason not stated"
    if reason.outbound_spam_last_24h is not None:
        why += (
            f", {reason.outbound_spam_last_24h} of {reason.outbound_mail_last_24h} messages "
            f"in 24 h were spam"
        )
    elif reason.exceeding_limit_type:
        why += f", {reason.exceeding_limit_type.lower()} recipient limit exceeded"
    listed = (
        ""
        if account is not None and entry.sender_address.lower() == account.lower()
        else f" as {entry.sender_address}"
    )
    return f"since {when(entry.created)}{listed}: {why}."


def _rule_finding(rule: RuleFinding) -> Finding:
    actions: list[str] = []
    if rule.recipients:
        targets = ", ".join(
            _short(a) + (" (external)" if a in rule.external_recipients else "")
            for a in rule.recipients[:2]
        )
        more = f" and {len(rule.recipients) - 2} more" if len(rule.recipients) > 2 else ""
        verb = "redirects" if Indicator.REDIRECTS in rule.indicators else "forwards"
        actions.append(f"{verb} to {targets}{more}")
    if Indicator.DELETES in rule.indicators:
        actions.append("deletes mail")
    if Indicator.MOVES_TO_HIDING_FOLDER in rule.indicators and rule.move_to_folder:
        actions.append(f"moves mail to {_short(rule.move_to_folder)}")
    kind = "Hidden inbox rule" if rule.hidden else "Inbox rule"
    return Finding(text=f'{kind} "{_short(rule.name)}" ' + " and ".join(actions) + ".", alert=True)


def _cap_finding(cap: CapWarning) -> Finding:
    before = f"Unblocked {cap.previous_unblocks} time(s) before by this playbook"
    if cap.level == "over":
        return Finding(
            text=f"{before}: at or above the assumed cap of {cap.assumed_cap}; Microsoft will "
            "probably refuse.",
            alert=True,
        )
    if cap.level == "last":
        return Finding(
            text=f"{before}: probably the last unblock before Microsoft's cap "
            f"(assumed {cap.assumed_cap}).",
            alert=True,
        )
    return Finding(text=f"{before}; Microsoft caps unblocks (assumed {cap.assumed_cap}).")


def key_findings(ev: Evidence, *, limit: int = MAX_KEY_FINDINGS) -> tuple[Finding, ...]:
    """The approver's short list: what needs attention first, then what was checked and found
    clean. At most ``limit`` lines; the rest is in the full evidence. Later evidence kinds add
    their lines here (and a section to ``templates/evidence.md.j2``)."""
    pinned: list[Finding] = []
    alerts: list[Finding] = []
    clean: list[Finding] = []
    if ev.password is not None:
        changed = ev.password.last_password_change
        if ev.password.ok:
            # First whatever else there is: the fact the unblock rests on.
            pinned.append(
                Finding(
                    text=f"Password changed {when(changed)}, after the restriction: reset "
                    "confirmed."
                )
            )
        else:
            alerts.append(
                Finding(text=f"Password not confirmed: {ev.password.reason}.", alert=True)
            )
    alerts.extend(_rule_finding(r) for r in ev.rules_to_disable)
    dormant = [r for r in ev.suspicious_rules if not r.enabled]
    if dormant:
        alerts.append(
            Finding(
                text=f"{len(dormant)} disabled inbox rule(s) would forward, delete or hide mail."
            )
        )
    if not ev.rules_to_disable and not dormant:
        clean.append(
            Finding(
                text=f"No suspicious inbox rules ({len(ev.rules)} checked, hidden ones included)."
                if ev.rules
                else "No inbox rules."
            )
        )
    fwd = ev.forwarding
    if fwd is not None and fwd.forwards and fwd.target:
        alerts.append(
            Finding(
                text=f"Mailbox forwarding to {_short(fwd.target)}"
                + (" (external)" if fwd.external else "")
                + (", keeping a copy" if fwd.deliver_to_mailbox_and_forward else "")
                + ".",
                alert=True,
            )
        )
    elif fwd is not None:
        clean.append(Finding(text="No mailbox forwarding."))
    if ev.roles:
        alerts.append(Finding(text="Holds admin roles: " + ", ".join(ev.roles) + ".", alert=True))
    else:
        clean.append(Finding(text="No admin roles."))
    if ev.cap is not None and ev.cap.level != "none":
        alerts.append(_cap_finding(ev.cap))
    if ev.errors:
        alerts.append(Finding(text="Could not be read: " + "; ".join(ev.errors) + ".", alert=True))
    if ev.eviction is not None:
        # What was not looked at stays in view, next to the password, however much was flagged.
        unread = not_checked_line(ev.eviction)
        if unread:
            pinned.append(Finding(text=unread, alert=True))
        for text, alert in eviction_key_lines(ev.eviction):
            if text != unread:
                (alerts if alert else clean).append(Finding(text=text, alert=alert))
    found = [*pinned, *alerts, *clean]
    if len(found) > limit:
        rest = len(found) - (limit - 1)
        found = [*found[: limit - 1], Finding(text=f"{rest} more finding(s) in the full evidence.")]
    return tuple(found)


# -- guards -----------------------------------------------------------------------------------


def password_reset_guard(
    last_password_change: datetime | None, restricted_since: datetime | None
) -> PasswordCheck:
    """Unblock only if the password change (re-read after the reset) is newer than the block.

    Unknown values refuse: the guard exists to prove the attacker's password is gone.
    """
    if last_password_change is None:
        return PasswordCheck(
            ok=False,
            restricted_since=restricted_since,
            reason="the directory reports no last password change",
        )
    if restricted_since is None:
        return PasswordCheck(
            ok=False,
            last_password_change=last_password_change,
            reason="the Restricted users entry has no creation time to compare with",
        )
    # Both APIs answer in UTC; a value without a zone is read as UTC rather than crash.
    if _as_utc(last_password_change) <= _as_utc(restricted_since):
        return PasswordCheck(
            ok=False,
            last_password_change=last_password_change,
            restricted_since=restricted_since,
            reason="the last password change is not newer than the restriction",
        )
    return PasswordCheck(
        ok=True,
        last_password_change=last_password_change,
        restricted_since=restricted_since,
        reason="the password was changed after the restriction",
    )


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class PrivilegedVerdict(StrEnum):
    NOT_PRIVILEGED = "not-privileged"
    REFUSED = "refused"  # admin role, no override
    NEEDS_SECOND_APPROVER = "needs-second-approver"
    SAME_PERSON = "same-person"  # the pre-reset approver is the requester
    DECLINED = "declined"  # the second approver said no
    ALLOWED = "allowed"


def privileged_guard(
    roles: Sequence[str],
    *,
    override: bool,
    requested_by: str,
    approver: str | None = None,
    approved: bool | None = None,
) -> PrivilegedVerdict:
    """May the playbook reset this account's password?

    An account with an admin role needs the flow's explicit override *and* a pre-reset approval
    by a person other than the requester. (Prefect OSS has no per-user identity: the approver
    name is an attestation typed into the form, recorded in the audit report.)
    """
    if not roles:
        return PrivilegedVerdict.NOT_PRIVILEGED
    if not override:
        return PrivilegedVerdict.REFUSED
    if approver is None or approved is None:
        return PrivilegedVerdict.NEEDS_SECOND_APPROVER
    if same_person(approver, requested_by):
        return PrivilegedVerdict.SAME_PERSON
    if not approved:
        return PrivilegedVerdict.DECLINED
    return PrivilegedVerdict.ALLOWED


def same_person(a: str, b: str) -> bool:
    """Case- and space-insensitive; 'ann' and 'ann@contoso.com' are the same person."""

    def norm(x: str) -> str:
        return " ".join(x.split()).lower().partition("@")[0]

    return norm(a) == norm(b)


# -- unblock counter --------------------------------------------------------------------------

# Microsoft documents that a cap exists but not its value [UNCONFIRMED]; the emulator uses 3.
DEFAULT_ASSUMED_CAP = 3
COUNTER_PREFIX = "unblock-count-"
_TENANT_SLUG = re.compile(PROFILE_PATTERN)


def counter_variable_name(tenant: str, address: str) -> str:
    """The Prefect Variable holding one account's unblock count in one tenant.

    ``unblock-count-<tenant>-<hash>``: the tenant part is a validated profile slug (anything else
    is refused, so no input can address another tenant's counters); the account part is a hash
    of the lower-cased address: fixed length and alphabet whatever the address looks like, and
    the Variables (plain text, readable over the API) do not list who was compromised. One
    Variable per account, because a Variable value is capped at 5000 characters and two runs
    for different accounts then never overwrite each other.
    """
    if not _TENANT_SLUG.fullmatch(tenant):
        raise ValueError("tenant profile names are lower-case letters, digits and dashes")
    digest = hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()[:32]
    return f"{COUNTER_PREFIX}{tenant}-{digest}"


def counter_value(previous: int, when: datetime) -> dict[str, int | str]:
    """The Variable's new value after one more unblock (JSON only)."""
    return {"count": previous + 1, "last": when.isoformat(timespec="seconds")}


def read_count(value: object) -> int:
    """The count in a counter Variable's value; 0 for a missing, hand-edited or damaged one."""
    count = value.get("count") if isinstance(value, dict) else value
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def cap_warning(previous_unblocks: int, assumed_cap: int = DEFAULT_ASSUMED_CAP) -> CapWarning:
    """Warn the approver before the assumed cap is reached."""
    remaining = assumed_cap - previous_unblocks
    if previous_unblocks <= 0:
        return CapWarning(previous_unblocks=0, assumed_cap=assumed_cap, level="none")
    if remaining <= 0:
        level: Literal["warn", "last", "over"] = "over"
        msg = (
            f"This playbook has already unblocked this account {previous_unblocks} time(s), at or "
            f"above the assumed cap of {assumed_cap}. Microsoft will probably refuse; then only "
            "Microsoft Support can remove the restriction."
        )
    elif remaining == 1:
        level = "last"
        msg = (
            f"This playbook has already unblocked this account {previous_unblocks} time(s). This "
            f"unblock is probably the last one before Microsoft's cap (assumed {assumed_cap}); "
            "after it, only Microsoft Support can remove the restriction."
        )
    else:
        level = "warn"
        msg = (
            f"This playbook has already unblocked this account {previous_unblocks} time(s); "
            f"Microsoft caps unblocks per account (assumed {assumed_cap})."
        )
    return CapWarning(
        previous_unblocks=previous_unblocks, assumed_cap=assumed_cap, level=level, message=msg
    )


# -- escalation -------------------------------------------------------------------------------


class EscalationSchedule(Frozen):
    """One pause, held open until ``expire_after``; escalation once at ``escalate_after``.

    The pause's own timeout is ``expire_after + grace``: the flow ends the wait itself at
    ``expire_after`` (run moved to Running "ApprovalExpired"), because Prefect 3.9.1 fails a run
    whose pause deadline passed on *any* later transition, even when the flow catches the timeout.
    """

    escalate_after: timedelta | None
    expire_after: timedelta
    grace: timedelta

    @property
    def pause_timeout_seconds(self) -> int:
        return max(1, round((self.expire_after + self.grace).total_seconds()))


def escalation_schedule(
    approval_timeout_minutes: float,
    escalate_after_minutes: float | None,
    *,
    grace_seconds: float = 120,
) -> EscalationSchedule:
    """The wait plan. No escalation when it would come at or after the expiry."""
    expire = timedelta(minutes=approval_timeout_minutes)
    if expire <= timedelta(0):
        raise ValueError("the approval timeout must be positive")
    escalate: timedelta | None = None
    if escalate_after_minutes is not None and escalate_after_minutes > 0:
        candidate = timedelta(minutes=escalate_after_minutes)
        if candidate < expire:
            escalate = candidate
    return EscalationSchedule(
        escalate_after=escalate, expire_after=expire, grace=timedelta(seconds=grace_seconds)
    )
