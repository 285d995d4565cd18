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


class MessageRule(_Model):
    """An inbox message rule from Graph ``mailFolders/inbox/messageRules``."""

    id: str
    display_name: str
    is_enabled: bool = True
    forward_to: tuple[str, ...] = ()
    forward_as_attachment_to: tuple[str, ...] = ()
    redirect_to: tuple[str, ...] = ()
    delete: bool = False
    permanent_delete: bool = False
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
