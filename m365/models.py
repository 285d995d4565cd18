"""Typed values that cross the client edge. No ``dict[str, Any]`` travels past a client."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class User(_Model):
    """A directory user as the playbook needs it (Graph ``/users``)."""

    id: str
    user_principal_name: str
    display_name: str | None = None
    mail: str | None = None
    account_enabled: bool = True
    on_premises_sync_enabled: bool = False
    proxy_addresses: tuple[str, ...] = ()
    last_password_change: datetime | None = None

    @property
    def smtp_addresses(self) -> tuple[str, ...]:
        """Every SMTP address of the user, lower-cased, UPN first, without duplicates."""
        seen: dict[str, None] = {self.user_principal_name.lower(): None}
        if self.mail:
            seen.setdefault(self.mail.lower(), None)
        for proxy in self.proxy_addresses:
            scheme, _, address = proxy.partition(":")
            if scheme.lower() == "smtp" and address:
                seen.setdefault(address.lower(), None)
        return tuple(seen)


class RestrictionReason(_Model):
    """``Reason`` of a restricted entry, parsed tolerantly. Unknown keys land in ``extra``."""

    raw: str = ""
    kind: str | None = None  # e.g. "EmailSendingLimitExceeded", "OutboundSpam"
    exceeding_limit_type: str | None = None  # "Internal" | "External"
    internal_recipient_count_today: int | None = None
    external_recipient_count_today: int | None = None
    outbound_spam_last_24h: int | None = None
    outbound_mail_last_24h: int | None = None
    outbound_spam_percent: float | None = None
    last_message_trace_id: str | None = None
    last_message_recipient_count: int | None = None
    extra: tuple[tuple[str, str], ...] = ()


class RestrictedSender(_Model):
    """One entry of the Restricted users list (``Get-BlockedSenderAddress``)."""

    sender_address: str
    reason: RestrictionReason = Field(default_factory=RestrictionReason)
    created: datetime | None = None
    changed: datetime | None = None
    temporary_block: bool | None = None


class InboxRule(_Model):
    """An inbox rule from ``Get-InboxRule -IncludeHidden`` (Exchange)."""

    identity: str
    name: str
    enabled: bool = True
    hidden: bool = False
    forward_to: tuple[str, ...] = ()
    forward_as_attachment_to: tuple[str, ...] = ()
    redirect_to: tuple[str, ...] = ()
    delete_message: bool = False
    move_to_folder: str | None = None


class MailboxForwarding(_Model):
    """Forwarding fields of ``Get-Mailbox``."""

    identity: str
    forwarding_address: str | None = None
    forwarding_smtp_address: str | None = None
    deliver_to_mailbox_and_forward: bool = False

    @property
    def forwards(self) -> bool:
        return bool(self.forwarding_address or self.forwarding_smtp_address)


class DirectoryRole(_Model):
    """An Entra directory role held by a user or service principal."""

    id: str
    display_name: str
    role_template_id: str | None = None


class TemporaryAccessPass(_Model):
    """A freshly created TAP. The pass itself is only ever a ``SecretStr``."""

    id: str
    temporary_access_pass: SecretStr
    created: datetime | None = None
    lifetime_in_minutes: int
    is_usable_once: bool


class TemporaryAccessPassMethod(_Model):
    """A TAP as listed by Graph: metadata only, the pass is never returned after creation."""

    id: str
    created: datetime | None = None
    lifetime_in_minutes: int | None = None
    is_usable_once: bool | None = None
    is_usable: bool | None = None
    method_usability_reason: str | None = None


class Receipt(_Model):
    """What a write returned: enough for the audit trail, never the payload."""

    operation: str
    target: str
    request_id: str | None = None
    status: int


# -- eviction evidence ---------------------------------------------------------------------------

PASSWORD_METHOD_TYPE = "password"  # noqa: S105 - a method type name, not a secret


class AuthenticationMethod(_Model):
    """One sign-in method of a user (Graph ``/users/{id}/authentication/methods``).

    ``method_type`` is the ``@odata.type`` without ``#microsoft.graph.`` and
    ``AuthenticationMethod`` (``phone``, ``microsoftAuthenticator``, ``fido2``...).
    ``created`` is Graph's ``createdDateTime``: null for many types (see docs/eviction-evidence.md).
    ``detail`` is what tells two methods of a type apart (phone number, e-mail address, device tag).
    """

    id: str
    method_type: str
    display_name: str | None = None
    created: datetime | None = None
    detail: str | None = None

    @property
    def is_password(self) -> bool:
        return self.method_type == PASSWORD_METHOD_TYPE


class AuditTarget(_Model):
    """One ``targetResources`` entry of a directory audit event."""

    id: str | None = None
    display_name: str | None = None
    type: str | None = None
    user_principal_name: str | None = None


class DirectoryAudit(_Model):
    """A directory audit event (Graph ``auditLogs/directoryAudits``)."""

    id: str
    activity: str
    activity_time: datetime
    category: str | None = None
    service: str | None = None
    result: str | None = None
    result_reason: str | None = None
    initiated_by_user_id: str | None = None
    initiated_by_user: str | None = None
    initiated_by_app_id: str | None = None
    initiated_by_app: str | None = None
    targets: tuple[AuditTarget, ...] = ()
    details: tuple[tuple[str, str], ...] = ()


class SignIn(_Model):
    """An interactive sign-in (Graph v1.0 ``auditLogs/signIns``). IP and place are personal data."""

    id: str
    created: datetime
    app_display_name: str | None = None
    resource_display_name: str | None = None
    client_app_used: str | None = None
    ip_address: str | None = None
    country: str | None = None
    city: str | None = None
    error_code: int = 0
    failure_reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_code == 0


class ServicePrincipal(_Model):
    """An application's service principal in the tenant (Graph ``servicePrincipals/{id}``)."""

    id: str
    app_id: str | None = None
    display_name: str | None = None
    publisher: str | None = None


class OAuth2Grant(_Model):
    """A delegated permission grant the user consented to (``consentType`` Principal).

    ``client_id`` is the object id of the client app's service principal; Graph records no time.
    """

    id: str
    client_id: str
    client_display_name: str | None = None
    consent_type: str = "Principal"
    principal_id: str | None = None
    resource_id: str | None = None
    resource_display_name: str | None = None
    scopes: tuple[str, ...] = ()


class MailboxPermission(_Model):
    """A ``Get-MailboxPermission`` entry that is a real delegate: not inherited, not a deny
    entry, not ``NT AUTHORITY\\SELF``."""

    identity: str
    user: str
    access_rights: tuple[str, ...] = ()


class RecipientPermission(_Model):
    """A non-inherited, allowing ``Get-RecipientPermission`` entry (Send As) other than SELF."""

    identity: str
    trustee: str
    access_rights: tuple[str, ...] = ()


class MessageTraceRow(_Model):
    """One row of ``Get-MessageTraceV2``: one message to one recipient. Subject is personal data."""

    message_trace_id: str | None = None
    received: datetime
    sender_address: str | None = None
    recipient_address: str
    subject: str | None = None
    status: str | None = None


class MessageTrace(_Model):
    """Every row of a window, gathered in slices of at most 10 days and continued past the row cap.

    ``complete`` is false when the client stopped at its own row ceiling.
    """

    sender_address: str
    start: datetime
    end: datetime
    rows: tuple[MessageTraceRow, ...] = ()
    queries: int = 0
    complete: bool = True
