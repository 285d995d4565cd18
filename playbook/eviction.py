"""Evicting the attacker: the evidence, the plan and the outcome of each action. Plain functions,
no Prefect, tested without a server.

The footholds that survive a password reset (docs/eviction-evidence.md): a sign-in method the
attacker registered, an app consented with mail scopes, a mailbox delegate; plus what the account
sent, so the approver can tell whether the spam run is over. This module turns what the clients
read into findings, decides what each eviction action would do, and reads the outcome of an
action from a re-read of the tenant.

Every evidence item carries a :class:`Check`: "checked", or "not checked" with a reason in words
("the app lacks AuditLog.Read.All", "needs Entra ID P1"). A failed item never stops anything.

Personal data: sign-in IP addresses and message subjects appear in the models (for the evidence
artifact) but never in :func:`key_findings`, which feeds the approval description and messages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import Field

from m365.errors import (
    ApiError,
    AuthError,
    ConfigurationError,
    LicenseRequiredError,
    M365Error,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    TransientError,
)
from m365.models import (
    AuthenticationMethod,
    DirectoryAudit,
    MailboxPermission,
    MessageTraceRow,
    OAuth2Grant,
    RecipientPermission,
    SignIn,
)

from .addresses import domain_of, is_external
from .frozen import Frozen

DEFAULT_WINDOW_DAYS = 7
MAX_WINDOW_DAYS = 30  # sign-in and audit logs keep 30 days at most (Entra ID P1/P2)
BASELINE_DAYS = 30  # sign-ins before the window that define "seen before"
MESSAGE_TRACE_SEARCHABLE = timedelta(days=90)  # Get-MessageTraceV2 searches the last 90 days
TOP_SUBJECTS = 5
MAX_HOUR_ROWS = 36
BAR_WIDTH = 20

REGISTERED_ACTIVITIES = frozenset(
    {"User registered security info", "Admin registered security info"}
)
CONSENT_ACTIVITY = "Consent to application"

# Delegated scopes that read, send or change mail or mailbox settings (Microsoft Graph permissions
# reference; the Exchange Online protocol scopes give the whole mailbox).
MAIL_SCOPES = frozenset(
    s.lower()
    for s in (
        "Mail.Read",
        "Mail.ReadBasic",
        "Mail.ReadWrite",
        "Mail.Send",
        "Mail.Read.Shared",
        "Mail.ReadBasic.Shared",
        "Mail.ReadWrite.Shared",
        "Mail.Send.Shared",
        "MailboxSettings.Read",
        "MailboxSettings.ReadWrite",
        "MailboxFolder.Read",
        "MailboxFolder.ReadWrite",
        "MailboxItem.Read",
        "MailboxItem.ImportExport",
        "EWS.AccessAsUser.All",
        "IMAP.AccessAsUser.All",
        "POP.AccessAsUser.All",
        "SMTP.Send",
        "EAS.AccessAsUser.All",
    )
)

METHOD_LABELS = {
    "password": "Password",
    "phone": "Phone",
    "email": "Email",
    "microsoftAuthenticator": "Microsoft Authenticator",
    "fido2": "FIDO2 security key",
    "softwareOath": "Software OATH token",
    "windowsHelloForBusiness": "Windows Hello for Business",
    "platformCredential": "Platform credential",
    "temporaryAccessPass": "Temporary Access Pass",
    "external": "External authentication method",
    "qrCodePin": "QR code PIN",
}
# The types the playbook can remove (Graph v1.0 typed-collection DELETE); never the password.
REMOVABLE_METHOD_TYPES = frozenset(
    {
        "phone",
        "email",
        "microsoftAuthenticator",
        "fido2",
        "softwareOath",
        "temporaryAccessPass",
        "windowsHelloForBusiness",
        "platformCredential",
        "external",
    }
)
# How a "registered security info" event names the method (resultReason text) [UNCONFIRMED
# wording]: the first keyword found decides; Authenticator before phone.
_EVENT_METHOD_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("temporaryAccessPass", ("temporary access pass",)),
    ("windowsHelloForBusiness", ("windows hello",)),
    ("fido2", ("fido", "security key", "passkey")),
    ("softwareOath", ("software oath", "oath token", "hardware oath")),
    ("microsoftAuthenticator", ("authenticator",)),
    ("platformCredential", ("platform credential",)),
    ("email", ("email", "e-mail")),
    ("phone", ("phone",)),
)
_GUEST = re.compile(r"^(?P<local>.+)#EXT#@", re.IGNORECASE)


# -- window and checks -------------------------------------------------------------------------


class SuspicionWindow(Frozen):
    """From ``days_before`` days before the restriction until now (when the evidence is read)."""

    start: datetime
    end: datetime
    restricted_at: datetime | None = None
    days_before: int = DEFAULT_WINDOW_DAYS

    def contains(self, when: datetime) -> bool:
        return self.start <= _utc(when) <= self.end

    @property
    def baseline_start(self) -> datetime:
        """Where the sign-in history used as "seen before" begins."""
        return self.start - timedelta(days=BASELINE_DAYS)


def suspicion_window(
    restricted_at: datetime | None, now: datetime, days_before: int = DEFAULT_WINDOW_DAYS
) -> SuspicionWindow:
    """The window the evidence covers. Without a restriction time it ends at ``now`` and starts
    ``days_before`` days earlier (stated in the evidence, not guessed silently)."""
    if not 1 <= days_before <= MAX_WINDOW_DAYS:
        raise ValueError(
            f"the suspicion window is 1..{MAX_WINDOW_DAYS} days before the restriction"
        )
    end = _utc(now)
    anchor = _utc(restricted_at) if restricted_at is not None else end
    start = min(anchor, end) - timedelta(days=days_before)
    return SuspicionWindow(
        start=start, end=end, restricted_at=restricted_at, days_before=days_before
    )


class CheckStatus(StrEnum):
    CHECKED = "checked"
    NOT_CHECKED = "not checked"


class Check(Frozen):
    """Whether one evidence item could be read, and if not, why, in words."""

    status: CheckStatus = CheckStatus.CHECKED
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is CheckStatus.CHECKED


CHECKED = Check()

# Errors that will not change on retry: an evidence task turns them into "not checked" at once.
# Transient ones propagate so the task's retries run; a flow maps a final one with not_checked().
DEFINITE_ERRORS: tuple[type[M365Error], ...] = (
    ApiError,
    AuthError,
    ConfigurationError,
    OutcomeUnknownError,
)


def not_checked(exc: M365Error, *, needs: str) -> Check:
    """The reason an evidence item could not be read, for the approver. ``needs`` names the
    permission (or role) the read requires. Fixed texts only: never Microsoft's message, which may
    quote the account."""
    if isinstance(exc, LicenseRequiredError):
        reason = "needs Entra ID P1"
    elif isinstance(exc, PermissionDeniedError):
        reason = f"not checked: the app lacks {needs}"
    elif isinstance(exc, NotFoundError):
        reason = "not checked: Microsoft found no such user or mailbox"
    elif isinstance(exc, TransientError):
        reason = "not checked: Microsoft did not answer in time (throttled or unavailable)"
    elif isinstance(exc, AuthError | ConfigurationError):
        reason = "not checked: no access token for this API (see check-tenant)"
    elif isinstance(exc, OutcomeUnknownError):
        reason = "not checked: the answer was lost"
    elif isinstance(exc, ApiError):
        reason = f"not checked: Microsoft refused the request (HTTP {exc.status})"
    else:
        reason = "not checked"
    return Check(status=CheckStatus.NOT_CHECKED, reason=reason)


# -- sign-in methods -----------------------------------------------------------------------------


class MethodFinding(Frozen):
    """One sign-in method as the approver sees it."""

    id: str
    method_type: str
    label: str
    display_name: str | None = None
    detail: str | None = None
    registered: datetime | None = None
    date_source: Literal["createdDateTime", "audit log"] | None = None
    registered_by: str | None = None
    flagged: bool = False
    why: str = ""
    removable: bool = False


class MethodsReview(Frozen):
    """The user's sign-in methods; ``dates`` says whether the audit log could be read."""

    user_id: str
    check: Check = CHECKED
    dates: Check = CHECKED
    methods: tuple[MethodFinding, ...] = ()

    @property
    def flagged(self) -> tuple[MethodFinding, ...]:
        return tuple(m for m in self.methods if m.flagged)


def event_method_type(event: DirectoryAudit) -> str | None:
    """Which method type a "registered security info" event is about (keywords in its text)."""
    text = " ".join([event.result_reason or "", *(v for _, v in event.details)]).lower()
    for method_type, keywords in _EVENT_METHOD_KEYWORDS:
        if any(k in text for k in keywords):
            return method_type
    return None


def _registered_by(event: DirectoryAudit, own_app_id: str | None) -> str:
    if (
        event.initiated_by_app_id
        and own_app_id
        and event.initiated_by_app_id.lower() == own_app_id.lower()
    ):
        return "this playbook"
    if event.activity.startswith("User "):
        return "the user (self-service)"
    if event.initiated_by_app:
        return f"app {event.initiated_by_app}"
    return "an administrator"


def assess_methods(
    user_id: str,
    methods: Sequence[AuthenticationMethod],
    events: Sequence[DirectoryAudit],
    window: SuspicionWindow,
    *,
    own_app_id: str | None = None,
    dates: Check = CHECKED,
) -> MethodsReview:
    """Flag every method registered inside the window, except those this playbook created.

    The date is the method's ``createdDateTime`` where Graph fills it, else the latest
    "User/Admin registered security info" event for a method of that type. Events name a type,
    not a method: with two methods of one type and no dates, both get the event's date and the
    finding says so. The password is listed and never flagged or removed.
    """
    registrations = sorted(
        (e for e in events if e.activity in REGISTERED_ACTIVITIES),
        key=lambda e: e.activity_time,
        reverse=True,
    )
    by_type: dict[str, list[DirectoryAudit]] = {}
    for registration in registrations:
        kind = event_method_type(registration)
        if kind is not None:
            by_type.setdefault(kind, []).append(registration)
    undated = Counter(m.method_type for m in methods if m.created is None and not m.is_password)
    findings: list[MethodFinding] = []
    for method in methods:
        label = METHOD_LABELS.get(method.method_type, method.method_type)
        base = {
            "id": method.id,
            "method_type": method.method_type,
            "label": label,
            "display_name": method.display_name,
            "detail": method.detail,
        }
        if method.is_password:
            findings.append(
                MethodFinding(**base, why="the password: never removed here (it was reset)")
            )
            continue
        removable = method.method_type in REMOVABLE_METHOD_TYPES
        found = by_type.get(method.method_type)
        event = found[0] if found else None
        if method.created is not None:
            registered, source = _utc(method.created), "createdDateTime"
        elif event is not None:
            registered, source = event.activity_time, "audit log"
        else:
            registered, source = None, None
        by = _registered_by(event, own_app_id) if event is not None else None
        if registered is None:
            why = (
                "no registration date: registered before the audit log's reach"
                if dates.ok
                else f"no registration date ({dates.reason})"
            )
            findings.append(MethodFinding(**base, why=why, removable=removable))
            continue
        inside = window.contains(registered)
        ours = by == "this playbook"
        flagged = inside and not ours
        if ours:
            why = "created by this playbook"
        elif inside:
            why = "registered inside the suspicion window"
            if source == "audit log" and undated[method.method_type] > 1:
                why += f" (one of {undated[method.method_type]} {label} methods: the log names "
                why += "the type only)"
        else:
            why = "registered before the suspicion window"
        findings.append(
            MethodFinding(
                **base,
                registered=registered,
                date_source=source,
                registered_by=by,
                flagged=flagged,
                why=why,
                removable=removable,
            )
        )
    return MethodsReview(user_id=user_id, dates=dates, methods=tuple(findings))


# -- sign-ins ------------------------------------------------------------------------------------


class CountRow(Frozen):
    """How often one country, IP address or app appears among the window's sign-ins."""

    value: str
    count: int
    failures: int = 0
    new: bool = False
    country: str | None = None  # for IP rows


class SignInSummary(Frozen):
    """The window's interactive sign-ins (Graph v1.0 returns interactive ones only).

    "New" is precise: a country (or IP address) is new when it appears in a sign-in inside the
    window and in no *successful* sign-in of the baseline, the 30 days before the window (as far
    as the log reaches: 30 days with Entra ID P1/P2). With no baseline sign-in at all nothing is
    called new and ``note`` says why.
    """

    user_id: str
    check: Check = CHECKED
    total: int = 0
    failures: int = 0
    first: datetime | None = None
    last: datetime | None = None
    baseline_sign_ins: int = 0
    countries: tuple[CountRow, ...] = ()
    ips: tuple[CountRow, ...] = ()
    apps: tuple[CountRow, ...] = ()
    note: str | None = None

    @property
    def new_countries(self) -> tuple[str, ...]:
        return tuple(r.value for r in self.countries if r.new)

    @property
    def new_ips(self) -> tuple[str, ...]:
        return tuple(r.value for r in self.ips if r.new)


def _rows(sign_ins: Sequence[SignIn], key: str, known: set[str] | None) -> tuple[CountRow, ...]:
    counts: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    country_of: dict[str, str | None] = {}
    for s in sign_ins:
        value = getattr(s, key) or "unknown"
        counts[value] += 1
        failures[value] += 0 if s.succeeded else 1
        country_of.setdefault(value, s.country)
    return tuple(
        CountRow(
            value=value,
            count=n,
            failures=failures[value],
            new=known is not None and value != "unknown" and value not in known,
            country=country_of[value] if key == "ip_address" else None,
        )
        for value, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def summarise_sign_ins(
    user_id: str, sign_ins: Sequence[SignIn], window: SuspicionWindow
) -> SignInSummary:
    """Countries, IPs, apps and failures of the window, each flagged when new (see the model)."""
    inside = sorted((s for s in sign_ins if window.contains(s.created)), key=lambda s: s.created)
    baseline = [
        s
        for s in sign_ins
        if window.baseline_start <= _utc(s.created) < window.start and s.succeeded
    ]
    known_countries = {s.country for s in baseline if s.country} if baseline else None
    known_ips = {s.ip_address for s in baseline if s.ip_address} if baseline else None
    note = None
    if not baseline:
        note = (
            "no successful sign-in in the 30 days before the window to compare with, so no "
            "country or address is called new"
        )
    return SignInSummary(
        user_id=user_id,
        total=len(inside),
        failures=sum(1 for s in inside if not s.succeeded),
        first=inside[0].created if inside else None,
        last=inside[-1].created if inside else None,
        baseline_sign_ins=len(baseline),
        countries=_rows(inside, "country", known_countries),
        ips=_rows(inside, "ip_address", known_ips),
        apps=_rows(inside, "app_display_name", None),
        note=note,
    )


# -- OAuth grants --------------------------------------------------------------------------------


class GrantFinding(Frozen):
    id: str
    app: str
    client_id: str
    resource: str | None = None
    scopes: tuple[str, ...] = ()
    mail_scopes: tuple[str, ...] = ()
    consented: datetime | None = None
    consented_in_window: bool = False
    flagged: bool = False
    why: str = ""


class GrantsReview(Frozen):
    user_id: str
    check: Check = CHECKED
    consents: Check = CHECKED
    grants: tuple[GrantFinding, ...] = ()

    @property
    def flagged(self) -> tuple[GrantFinding, ...]:
        return tuple(g for g in self.grants if g.flagged)


def mail_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes that read, send or change mail or mailbox settings (see MAIL_SCOPES)."""
    return tuple(s for s in scopes if s.lower() in MAIL_SCOPES)


def assess_grants(
    user_id: str,
    grants: Sequence[OAuth2Grant],
    consent_events: Sequence[DirectoryAudit],
    window: SuspicionWindow,
    *,
    consents: Check = CHECKED,
) -> GrantsReview:
    """Flag every grant with a mail or mailbox-settings scope; the consent time comes from the
    latest "Consent to application" event whose target is the grant's app."""
    events = sorted(
        (e for e in consent_events if e.activity == CONSENT_ACTIVITY),
        key=lambda e: e.activity_time,
        reverse=True,
    )
    findings = []
    for grant in grants:
        name = grant.client_display_name
        consented = next(
            (
                e.activity_time
                for e in events
                if any(
                    (t.id or "").lower() == grant.client_id.lower()
                    or (name is not None and t.display_name == name)
                    for t in e.targets
                )
            ),
            None,
        )
        scopes_for_mail = mail_scopes(grant.scopes)
        in_window = consented is not None and window.contains(consented)
        if scopes_for_mail:
            why = "reads, sends or changes mail: " + ", ".join(scopes_for_mail)
        else:
            why = "no mail or mailbox-settings scope"
        findings.append(
            GrantFinding(
                id=grant.id,
                app=name or f"unnamed app ({grant.client_id})",
                client_id=grant.client_id,
                resource=grant.resource_display_name,
                scopes=grant.scopes,
                mail_scopes=scopes_for_mail,
                consented=consented,
                consented_in_window=in_window,
                flagged=bool(scopes_for_mail),
                why=why,
            )
        )
    return GrantsReview(user_id=user_id, consents=consents, grants=tuple(findings))


# -- mailbox delegates ---------------------------------------------------------------------------

DelegateKind = Literal["FullAccess", "SendAs", "SendOnBehalf"]
DELEGATE_LABELS: dict[str, str] = {
    "FullAccess": "Full Access",
    "SendAs": "Send As",
    "SendOnBehalf": "Send on Behalf",
}


class DelegateFinding(Frozen):
    kind: DelegateKind
    delegate: str  # as Exchange names it; what the removal cmdlet is given
    address: str | None = None  # the e-mail address behind it, where it can be read
    access_rights: tuple[str, ...] = ()
    external: bool = False
    flagged: bool = False
    why: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.delegate.lower()}"

    @property
    def label(self) -> str:
        return DELEGATE_LABELS[self.kind]


class DelegatesReview(Frozen):
    mailbox: str
    check: Check = CHECKED
    delegates: tuple[DelegateFinding, ...] = ()

    @property
    def flagged(self) -> tuple[DelegateFinding, ...]:
        return tuple(d for d in self.delegates if d.flagged)


def delegate_address(delegate: str) -> tuple[str | None, bool]:
    """The address behind an Exchange principal name, and whether it is a guest account.

    ``jo_fabrikam.com#EXT#@contoso.onmicrosoft.com`` is a guest whose own address is
    ``jo@fabrikam.com`` (the last ``_`` stands for the ``@``).
    """
    text = delegate.strip()
    if m := _GUEST.match(text):
        local, _, domain = m.group("local").rpartition("_")
        return (f"{local}@{domain}".lower() if local and domain else None), True
    if "@" in text and " " not in text and "\\" not in text:
        return text.lower(), False
    return None, False


def classify_delegate(
    kind: DelegateKind, delegate: str, rights: tuple[str, ...], domains: frozenset[str]
) -> DelegateFinding:
    """Flag a delegate outside the organisation: a guest account, or an address outside
    ``domains`` (subdomains count as inside)."""
    address, guest = delegate_address(delegate)
    if guest:
        external, why = True, "a guest account from outside the organisation"
    elif address is None:
        external, why = False, "not an address; cannot tell whether it is outside"
    elif is_external(address, domains):
        external, why = True, f"outside the organisation ({domain_of(address)})"
    else:
        external, why = False, "inside the organisation"
    return DelegateFinding(
        kind=kind,
        delegate=delegate,
        address=address,
        access_rights=rights,
        external=external,
        flagged=external,
        why=why,
    )


def assess_delegates(
    mailbox: str,
    full_access: Sequence[MailboxPermission],
    send_as: Sequence[RecipientPermission],
    send_on_behalf: Sequence[str],
    domains: frozenset[str],
) -> DelegatesReview:
    """Every delegate of the three kinds; those outside the tenant's domains are flagged."""
    delegates = [
        classify_delegate("FullAccess", p.user, p.access_rights, domains) for p in full_access
    ]
    delegates += [classify_delegate("SendAs", p.trustee, p.access_rights, domains) for p in send_as]
    delegates += [classify_delegate("SendOnBehalf", d, (), domains) for d in send_on_behalf]
    return DelegatesReview(mailbox=mailbox, delegates=tuple(delegates))


# -- sent mail -----------------------------------------------------------------------------------


class HourCount(Frozen):
    hour: datetime
    messages: int
    bar: str


class SubjectCount(Frozen):
    subject: str
    messages: int


class SentMailSummary(Frozen):
    """What the account sent in the window (``Get-MessageTraceV2``, one row per recipient).

    ``messages`` counts distinct message trace ids; the external share is the share of distinct
    recipients outside the tenant's domains.
    """

    mailbox: str
    check: Check = CHECKED
    searched_start: datetime | None = None
    searched_end: datetime | None = None
    clipped: bool = False  # the window starts earlier than Microsoft searches (90 days)
    complete: bool = True
    messages: int = 0
    deliveries: int = 0
    distinct_recipients: int = 0
    external_recipients: int = 0
    top_subjects: tuple[SubjectCount, ...] = ()
    first: datetime | None = None
    last: datetime | None = None
    per_hour: tuple[HourCount, ...] = ()
    hours_not_shown: int = 0
    busiest_hour: int = 0

    @property
    def external_share(self) -> float:
        return (
            self.external_recipients / self.distinct_recipients if self.distinct_recipients else 0.0
        )


def message_trace_span(window: SuspicionWindow) -> tuple[datetime, datetime, bool]:
    """The part of the window Microsoft can search (the last 90 days), and whether it was cut."""
    earliest = window.end - MESSAGE_TRACE_SEARCHABLE + timedelta(minutes=5)
    if window.start < earliest:
        return earliest, window.end, True
    return window.start, window.end, False


def summarise_sent_mail(
    mailbox: str,
    rows: Sequence[MessageTraceRow],
    window: SuspicionWindow,
    domains: frozenset[str],
    *,
    complete: bool = True,
) -> SentMailSummary:
    """Count, recipients, external share, top subjects, first and last, messages per hour."""
    start, end, clipped = message_trace_span(window)
    inside = [r for r in rows if window.contains(r.received)]
    messages: dict[str, MessageTraceRow] = {}
    for r in sorted(inside, key=lambda r: r.received):
        key = r.message_trace_id or f"{r.received.isoformat()}|{r.subject}"
        messages.setdefault(key, r)
    recipients = {r.recipient_address.lower() for r in inside}
    external = {a for a in recipients if is_external(a, domains)}
    subjects = Counter((m.subject or "(no subject)") for m in messages.values())
    hours = Counter(
        _utc(m.received).replace(minute=0, second=0, microsecond=0) for m in messages.values()
    )
    busiest = max(hours.values(), default=0)
    shown = sorted(hours.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_HOUR_ROWS]
    per_hour = tuple(HourCount(hour=h, messages=n, bar=_bar(n, busiest)) for h, n in sorted(shown))
    ordered = sorted(messages.values(), key=lambda m: m.received)
    return SentMailSummary(
        mailbox=mailbox,
        searched_start=start,
        searched_end=end,
        clipped=clipped,
        complete=complete,
        messages=len(messages),
        deliveries=len(inside),
        distinct_recipients=len(recipients),
        external_recipients=len(external),
        top_subjects=tuple(
            SubjectCount(subject=s, messages=n)
            for s, n in sorted(subjects.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SUBJECTS]
        ),
        first=ordered[0].received if ordered else None,
        last=ordered[-1].received if ordered else None,
        per_hour=per_hour,
        hours_not_shown=max(0, len(hours) - len(per_hour)),
        busiest_hour=busiest,
    )


def _bar(n: int, busiest: int) -> str:
    return "█" * max(1, round(BAR_WIDTH * n / busiest)) if busiest else ""


# -- the whole evidence ------------------------------------------------------------------------


class EvictionEvidence(Frozen):
    """Every eviction evidence item of one account; each may be "not checked" on its own."""

    account: str
    window: SuspicionWindow
    sign_in_enabled: bool | None = None
    methods: MethodsReview
    sign_ins: SignInSummary
    grants: GrantsReview
    delegates: DelegatesReview
    sent_mail: SentMailSummary

    @property
    def not_checked(self) -> tuple[tuple[str, str], ...]:
        """(item, reason) for every item or part that could not be read."""
        items = (
            ("sign-in methods", self.methods.check),
            ("when the sign-in methods were registered", self.methods.dates),
            ("sign-ins", self.sign_ins.check),
            ("app consents", self.grants.check),
            ("when the apps were consented", self.grants.consents),
            ("mailbox delegates", self.delegates.check),
            ("sent mail", self.sent_mail.check),
        )
        return tuple((name, c.reason or "not checked") for name, c in items if not c.ok)

    @property
    def flagged_parts(self) -> tuple[str, ...]:
        """What was flagged, in a few words each, for the risk line (no personal data)."""
        parts: list[str] = []
        if n := len(self.methods.flagged):
            parts.append(_n(n, "sign-in method") + " registered in the window")
        if self.sign_ins.check.ok and (self.sign_ins.new_countries or self.sign_ins.new_ips):
            parts.append("sign-ins from a new country or address")
        if n := len(self.grants.flagged):
            parts.append(_n(n, "app") + " with mail access")
        if n := len({d.address or d.delegate for d in self.delegates.flagged}):
            parts.append(_n(n, "mailbox delegate") + " outside the organisation")
        return tuple(parts)


def key_findings(ev: EvictionEvidence) -> tuple[str, ...]:
    """Short lines for the approval description. No IP address, no subject (personal data)."""
    return tuple(text for text, _ in eviction_key_lines(ev))


def not_checked_line(ev: EvictionEvidence) -> str | None:
    """One line naming every item that could not be read, and why (None if all were read)."""
    if not ev.not_checked:
        return None
    return (
        "Not checked: "
        + "; ".join(
            f"{name} ({reason.removeprefix('not checked: ')})" for name, reason in ev.not_checked
        )
        + "."
    )


def eviction_key_lines(ev: EvictionEvidence) -> tuple[tuple[str, bool], ...]:
    """(line, alert) for the approval description, one line per foothold (a delegate holding
    several permissions is one line), so they fit the description's eight lines. What could not
    be read is one alert line: the approver must know what was not looked at."""
    lines: list[tuple[str, bool]] = []
    if not ev.flagged_parts:
        scope = "in what could be checked" if ev.not_checked else "at all"
        lines.append(
            (
                f"Nothing flagged {scope}: no sign-in method registered in the window, no "
                "sign-in from a new country or address, no app with mail access, no delegate "
                "outside the organisation.",
                False,
            )
        )
    for m in ev.methods.flagged:
        name = f'{m.label} "{m.display_name}"' if m.display_name else m.label
        lines.append(
            (
                f"Sign-in method registered inside the window: {name}, on {_day(m.registered)}"
                f" ({'from ' + m.date_source if m.date_source else 'date unknown'}).",
                True,
            )
        )
    if ev.sign_ins.check.ok and (ev.sign_ins.new_countries or ev.sign_ins.new_ips):
        parts = [
            f"{r.value} ({_n(r.count, 'sign-in')}, {r.failures} failed)"
            for r in ev.sign_ins.countries
            if r.new
        ]
        countries = "Sign-ins from a country not seen before: " + ", ".join(parts) if parts else ""
        ips = (
            _n(len(ev.sign_ins.new_ips), "IP address", "IP addresses") + " not seen before"
            if ev.sign_ins.new_ips
            else ""
        )
        lines.append(("; ".join(p for p in (countries, ips) if p) + " (see the evidence).", True))
    for g in ev.grants.flagged:
        when = f", consented on {_day(g.consented)}" if g.consented else ""
        lines.append((f"App with mail access: {g.app} ({', '.join(g.mail_scopes)}){when}.", True))
    delegates: dict[str, list[str]] = {}
    for d in ev.delegates.flagged:
        delegates.setdefault(d.address or d.delegate, []).append(DELEGATE_LABELS[d.kind])
    for who, kinds in delegates.items():
        lines.append((f"Delegate outside the organisation: {who} ({', '.join(kinds)}).", True))
    if unread := not_checked_line(ev):
        lines.append((unread, True))
    sent = ev.sent_mail
    if sent.check.ok and sent.messages:
        lines.append(
            (
                f"Sent {_n(sent.messages, 'message')} to "
                f"{_n(sent.distinct_recipients, 'recipient')}"
                f" ({round(100 * sent.external_share)}% external) between {_minute(sent.first)} "
                f"and {_minute(sent.last)}; busiest hour: {_n(sent.busiest_hour, 'message')}.",
                False,
            )
        )
    return tuple(lines)


# -- the eviction plan ---------------------------------------------------------------------------


class ActionKind(StrEnum):
    REMOVE_SIGN_IN_METHODS = "remove_sign_in_methods"
    REVOKE_OAUTH_GRANTS = "revoke_oauth_grants"
    REMOVE_MAILBOX_DELEGATES = "remove_mailbox_delegates"
    ENABLE_SIGN_IN = "enable_sign_in"


# The actions that remove a foothold, in the order they run; re-enabling sign-in comes last.
REMOVALS = (
    ActionKind.REMOVE_SIGN_IN_METHODS,
    ActionKind.REVOKE_OAUTH_GRANTS,
    ActionKind.REMOVE_MAILBOX_DELEGATES,
)

ACTION_TITLES: dict[ActionKind | Literal["block_sign_in"], str] = {
    ActionKind.REMOVE_SIGN_IN_METHODS: "Remove the flagged sign-in methods",
    ActionKind.REVOKE_OAUTH_GRANTS: "Revoke the flagged app consents",
    ActionKind.REMOVE_MAILBOX_DELEGATES: "Remove the flagged mailbox delegates",
    ActionKind.ENABLE_SIGN_IN: "Re-enable sign-in",
    "block_sign_in": "Block sign-in",
}


class ActionTarget(Frozen):
    """One thing an action acts on: a method, a grant, a delegate or the account."""

    id: str  # method id, grant id, delegate key (kind:name) or user id
    label: str
    method_type: str | None = None
    delegate_kind: DelegateKind | None = None
    delegate: str | None = None
    access_rights: tuple[str, ...] = ()


class PlannedAction(Frozen):
    kind: ActionKind
    title: str
    what: str
    impact: str
    undo: str
    reversible: bool
    targets: tuple[ActionTarget, ...]


class EvictionPlan(Frozen):
    """The actions that apply (something to act on); none is chosen here."""

    account: str
    actions: tuple[PlannedAction, ...] = ()

    def action(self, kind: ActionKind) -> PlannedAction | None:
        return next((a for a in self.actions if a.kind is kind), None)


def eviction_plan(ev: EvictionEvidence, *, sign_in_blocked: bool = False) -> EvictionPlan:
    """The eviction actions the evidence supports, each with what it does, its impact and
    whether it can be undone. Only flagged items become targets."""
    actions: list[PlannedAction] = []
    methods = [m for m in ev.methods.flagged if m.removable]
    if methods:
        actions.append(
            PlannedAction(
                kind=ActionKind.REMOVE_SIGN_IN_METHODS,
                title=ACTION_TITLES[ActionKind.REMOVE_SIGN_IN_METHODS],
                what=(
                    "Deletes each flagged method through its own Graph collection. A method "
                    "Microsoft refuses as the user's default is tried again after the others; "
                    "the password and the user's other methods stay."
                ),
                impact=(
                    "Whoever holds these methods can no longer use them for MFA, passwordless "
                    "sign-in or self-service password reset. If one was the user's own, the user "
                    "registers it again."
                ),
                undo="Cannot be undone: the device or key must be registered again.",
                reversible=False,
                targets=tuple(
                    ActionTarget(
                        id=m.id,
                        label=m.label + (f' "{m.display_name}"' if m.display_name else ""),
                        method_type=m.method_type,
                    )
                    for m in methods
                ),
            )
        )
    if ev.grants.flagged:
        actions.append(
            PlannedAction(
                kind=ActionKind.REVOKE_OAUTH_GRANTS,
                title=ACTION_TITLES[ActionKind.REVOKE_OAUTH_GRANTS],
                what="Deletes the user's delegated permission grant of each flagged app.",
                impact=(
                    "The app gets no new tokens for this user; tokens already issued stay valid "
                    "until they expire (about an hour). A tenant-wide consent is not touched."
                ),
                undo="The user (or an admin) can consent to the app again.",
                reversible=True,
                targets=tuple(
                    ActionTarget(id=g.id, label=f"{g.app}: {' '.join(g.scopes)}")
                    for g in ev.grants.flagged
                ),
            )
        )
    if ev.delegates.flagged:
        actions.append(
            PlannedAction(
                kind=ActionKind.REMOVE_MAILBOX_DELEGATES,
                title=ACTION_TITLES[ActionKind.REMOVE_MAILBOX_DELEGATES],
                what=(
                    "Removes the Full Access, Send As and Send on Behalf permissions of each "
                    "flagged delegate; the other delegates keep theirs."
                ),
                impact="The delegate can no longer open the mailbox or send as the user.",
                undo="An Exchange admin can grant the permission again.",
                reversible=True,
                targets=tuple(
                    ActionTarget(
                        id=d.key,
                        label=f"{DELEGATE_LABELS[d.kind]}: {d.address or d.delegate}",
                        delegate_kind=d.kind,
                        delegate=d.delegate,
                        access_rights=d.access_rights,
                    )
                    for d in ev.delegates.flagged
                ),
            )
        )
    if sign_in_blocked:
        actions.append(
            PlannedAction(
                kind=ActionKind.ENABLE_SIGN_IN,
                title=ACTION_TITLES[ActionKind.ENABLE_SIGN_IN],
                what="Sets accountEnabled back to true.",
                impact="The user can sign in again with the new password.",
                undo="Sign-in can be blocked again at any time.",
                reversible=True,
                targets=(ActionTarget(id=ev.methods.user_id, label=ev.account),),
            )
        )
    return EvictionPlan(account=ev.account, actions=tuple(actions))


# -- outcomes from a re-read ---------------------------------------------------------------------


class EvictionRecord(Frozen):
    """What one eviction action did, decided from the tenant re-read before and after."""

    action: ActionKind | Literal["block_sign_in"]
    account: str
    changed: tuple[str, ...] = ()
    already: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = Field(default=(), description="(target, reason)")
    request_ids: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = Field(
        default=(), description="(target, what the approver saw it called)"
    )

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def title(self) -> str:
        return ACTION_TITLES[self.action]

    def named(self, target: str) -> str:
        return next((label for t, label in self.labels if t.lower() == target.lower()), target)

    @property
    def lines(self) -> tuple[str, ...]:
        """One line per target for the report: done, already done, or not done and why."""
        return (
            *(f"{self.named(t)}: done" for t in self.changed),
            *(f"{self.named(t)}: already done before this action" for t in self.already),
            *(f"{self.named(t)}: NOT done ({why})" for t, why in self.failed),
        )

    @property
    def detail(self) -> str:
        parts = []
        if self.changed:
            parts.append(f"{len(self.changed)} done")
        if self.already:
            parts.append(f"{len(self.already)} already done")
        if self.failed:
            parts.append(f"{len(self.failed)} not done")
        return ", ".join(parts) or "nothing to do"


def split_pending(
    targets: Sequence[str], present: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(still to act on, already done) from the re-read before the write (case-insensitive)."""
    now = {p.lower() for p in present}
    todo = tuple(t for t in targets if t.lower() in now)
    done = tuple(t for t in targets if t.lower() not in now)
    return todo, done


def confirm_gone(
    acted: Sequence[str], present_after: Iterable[str], reasons: dict[str, str] | None = None
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(changed, failed) from the re-read after the writes: a target still present failed."""
    after = {p.lower() for p in present_after}
    reasons = reasons or {}
    changed = tuple(t for t in acted if t.lower() not in after)
    failed = tuple(
        (t, reasons.get(t, "still present after the removal")) for t in acted if t.lower() in after
    )
    return changed, failed


def sign_in_record(
    action: Literal["block_sign_in"] | ActionKind,
    account: str,
    *,
    wanted_enabled: bool,
    before: bool,
    after: bool,
    request_ids: tuple[str, ...] = (),
) -> EvictionRecord:
    """Block or re-enable sign-in, judged from ``accountEnabled`` before and after."""
    if before == wanted_enabled:
        return EvictionRecord(action=action, account=account, already=(account,))
    if after == wanted_enabled:
        return EvictionRecord(
            action=action, account=account, changed=(account,), request_ids=request_ids
        )
    return EvictionRecord(
        action=action,
        account=account,
        failed=((account, "accountEnabled did not change"),),
        request_ids=request_ids,
    )


# -- helpers -------------------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _day(value: datetime | None) -> str:
    return _utc(value).strftime("%Y-%m-%d") if value else "an unknown date"


def _minute(value: datetime | None) -> str:
    return _utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else "?"


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
