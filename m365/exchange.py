"""Exchange Online admin API (``InvokeCommand``): the cmdlets of the playbook, typed at the edge.

Wire format (docs/m365-api-notes.md §1.3)::

    POST {base}/{tenant}/InvokeCommand
    Authorization: Bearer <token for https://outlook.office365.com>
    X-AnchorMailbox: APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@{tenantId}
    {"CmdletInput":{"CmdletName":"Get-BlockedSenderAddress","Parameters":{...}}}

Paging follows ``@odata.nextLink`` by POSTing the same body. ``value`` (or ``Value``) holds the
objects; ``@odata.``/``@data.`` companion keys are dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError

from .auth import TokenProvider
from .errors import ApiError, NotFoundError
from .identifiers import path_segment, validate_address, validate_identity
from .limits import MESSAGE_TRACE
from .models import (
    InboxRule,
    MailboxForwarding,
    MailboxPermission,
    MessageTrace,
    MessageTraceRow,
    Receipt,
    RecipientPermission,
    RestrictedSender,
    RestrictionReason,
)
from .reason import parse_reason
from .transport import ApiClient, ApiResponse, Transport, ensure_next_link
from .values import as_utc, assume_utc, nonempty_str, parse_timestamp, utc_timestamp

SYSTEM_MAILBOX = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
PAGE_SIZE = 1000
_MAX_PAGES = 1000
SELF = "nt authority\\self"
GENERIC_HASHTABLE = "#Exchange.GenericHashTable"
# Get-MessageTraceV2 (learn.microsoft.com, Get-MessageTraceV2): at most 10 days per query,
# ResultSize 1..5000 (default 1000), no paging: continue with StartingRecipientAddress + EndDate.
TRACE_MAX_SPAN = timedelta(days=10)
TRACE_MAX_RESULT_SIZE = 5000
TRACE_MAX_ROWS = 50_000
# Holder parameter -> (cmdlet, receipt operation) of the two permission removals.
_PERMISSION_REMOVALS: Final[dict[str, tuple[str, str]]] = {
    "User": ("Remove-MailboxPermission", "remove_mailbox_permission"),
    "Trustee": ("Remove-RecipientPermission", "remove_recipient_permission"),
}


class _Null:
    """A parameter that must be sent as JSON ``null`` (``None`` means "leave it out")."""

    def __repr__(self) -> str:
        return "NULL"


NULL: Final = _Null()

ParamValue = str | int | bool | list[str] | dict[str, str] | _Null | None


def _cmdlet_body(cmdlet: str, parameters: Mapping[str, ParamValue]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in parameters.items():
        if value is None:
            continue
        params[name] = None if isinstance(value, _Null) else value
    return {"CmdletInput": {"CmdletName": cmdlet, "Parameters": params}}


def _clean(item: Mapping[str, Any]) -> dict[str, Any]:
    """Drop OData companion keys (``X@odata.type``, ``X@data.type``, ``@odata.id``...)."""
    return {
        key: value
        for key, value in item.items()
        if "@odata." not in key and "@data." not in key and not key.startswith("@")
    }


def _bool(value: object, default: bool = False) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str) and v)
    return ()


def _first(item: Mapping[str, Any], *names: str) -> object:
    for name in names:
        if name in item and item[name] is not None:
            return item[name]
    return None


def _parse_sender(item: Mapping[str, Any]) -> RestrictedSender | None:
    address = nonempty_str(item.get("SenderAddress"))
    if address is None:
        return None
    reason = item.get("Reason")
    return RestrictedSender(
        sender_address=address,
        reason=parse_reason(reason if isinstance(reason, str) else None),
        created=parse_timestamp(_first(item, "CreatedDatetime", "CreatedDateTime")),
        changed=parse_timestamp(_first(item, "ChangedDatetime", "ChangedDateTime")),
        temporary_block=_bool(item["TemporaryBlock"]) if "TemporaryBlock" in item else None,
    )


def _parse_inbox_rule(item: Mapping[str, Any]) -> InboxRule | None:
    identity = nonempty_str(_first(item, "Identity", "RuleIdentity"))
    if identity is None:
        return None
    return InboxRule(
        identity=identity,
        name=nonempty_str(item.get("Name")) or "",
        enabled=_bool(item.get("Enabled"), True),
        hidden=_bool(_first(item, "Hidden", "IsHidden"), False),
        forward_to=_strings(item.get("ForwardTo")),
        forward_as_attachment_to=_strings(item.get("ForwardAsAttachmentTo")),
        redirect_to=_strings(item.get("RedirectTo")),
        delete_message=_bool(item.get("DeleteMessage"), False),
        move_to_folder=nonempty_str(item.get("MoveToFolder")),
    )


def _rights(value: object) -> tuple[str, ...]:
    """``AccessRights`` as a list, or as Exchange's comma-separated text ("FullAccess, ...")."""
    if isinstance(value, str):
        return tuple(r.strip() for r in value.split(",") if r.strip())
    return _strings(value)


def _is_delegate(item: Mapping[str, Any], who: str) -> bool:
    """Not SELF, not inherited from the database, not a deny entry."""
    return (
        who.lower() != SELF
        and not _bool(item.get("IsInherited"), False)
        and not _bool(item.get("Deny"), False)
    )


def _parse_trace_row(item: Mapping[str, Any]) -> MessageTraceRow | None:
    received = parse_timestamp(item.get("Received"))
    recipient = nonempty_str(item.get("RecipientAddress"))
    if received is None or recipient is None:
        return None
    return MessageTraceRow(
        message_trace_id=nonempty_str(item.get("MessageTraceId")),
        received=assume_utc(received),
        sender_address=nonempty_str(item.get("SenderAddress")),
        recipient_address=recipient,
        subject=item.get("Subject") if isinstance(item.get("Subject"), str) else None,
        status=nonempty_str(item.get("Status")),
    )


class ExchangeAdminClient(ApiClient):
    """The Exchange Online cmdlets of the playbook. Thread-safe (transport and tokens are)."""

    def __init__(
        self,
        transport: Transport,
        tokens: TokenProvider,
        base_url: str,
        resource: str,
        tenant_id: str,
        tenant_domain: str | None = None,
        *,
        client_id: str | None = None,
    ) -> None:
        # client_id: whose message-trace budget we spend (m365.limits)
        super().__init__(transport, tokens, base_url, resource, tenant_id, client_id or "")
        self.tenant_domain = tenant_domain
        self.endpoint = f"{self.base_url}/{path_segment(tenant_id)}/InvokeCommand"

    def __repr__(self) -> str:
        return f"ExchangeAdminClient(endpoint={self.endpoint!r})"

    # -- plumbing -------------------------------------------------------------------------

    def _headers(self, cmdlet: str) -> dict[str, str]:
        """What the admin API wants on every cmdlet call (sent by ``ApiClient._call``)."""
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "X-AnchorMailbox": f"APP:{SYSTEM_MAILBOX}@{self.tenant_id}",
            "Prefer": f"odata.maxpagesize={PAGE_SIZE}",
            "X-ResponseFormat": "json",
            "X-CmdletName": cmdlet,
            "client-request-id": str(uuid.uuid4()),
        }

    def invoke(
        self, cmdlet: str, parameters: Mapping[str, ParamValue], *, resend_ambiguous: bool = True
    ) -> ApiResponse:
        """Run one cmdlet; the first page only. Prefer the typed methods.

        ``resend_ambiguous=False``: see :meth:`m365.transport.Transport.request`.
        """
        body = _cmdlet_body(cmdlet, parameters)
        return self._call(
            "POST", self.endpoint, cmdlet, json_body=body, resend_ambiguous=resend_ambiguous
        )

    def _objects(
        self, cmdlet: str, parameters: Mapping[str, ParamValue], *, bucket: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every object a cmdlet returns, across pages, companion keys dropped."""
        body = _cmdlet_body(cmdlet, parameters)
        url: str | None = self.endpoint
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            payload = self._call("POST", url, cmdlet, json_body=body, bucket=bucket).json_object()
            values = payload.get("value", payload.get("Value"))
            if isinstance(values, list):
                yield from (_clean(v) for v in values if isinstance(v, dict))
            url = ensure_next_link(payload.get("@odata.nextLink"), self.base_url, cmdlet)

    # -- restricted users -----------------------------------------------------------------

    def get_blocked_senders(self, sender_address: str | None = None) -> list[RestrictedSender]:
        """``Get-BlockedSenderAddress`` [-SenderAddress]: the Restricted users list.

        With an address, "not listed" is an empty list whether Exchange answers with an empty
        ``value`` or with ``ManagementObjectNotFoundException``. Read-only: safe to retry.
        """
        address = validate_address(sender_address, "sender_address") if sender_address else None
        try:
            senders = [
                _parse_sender(item)
                for item in self._objects("Get-BlockedSenderAddress", {"SenderAddress": address})
            ]
        except NotFoundError:
            if address is None:
                raise
            return []
        return [s for s in senders if s is not None]

    def remove_blocked_sender(
        self, sender_address: str, reason: str | RestrictionReason | None = None
    ) -> Receipt:
        """``Remove-BlockedSenderAddress -SenderAddress x [-Reason r]``: unblock.

        Raises ``UnblockLimitError`` when Microsoft's cap is reached. Never re-sent after a
        failure that may have reached Microsoft: that raises ``OutcomeUnknownError``, and the
        caller re-checks with :meth:`get_blocked_senders` before sending again (an unblock may
        count against the cap).
        """
        address = validate_address(sender_address, "sender_address")
        reason_text = reason.raw if isinstance(reason, RestrictionReason) else reason
        response = self.invoke(
            "Remove-BlockedSenderAddress",
            {"SenderAddress": address, "Reason": reason_text or None},
            resend_ambiguous=False,
        )
        return self._receipt("remove_blocked_sender", address, response)

    # -- mailbox --------------------------------------------------------------------------

    def get_mailbox_forwarding(self, identity: str) -> MailboxForwarding:
        """Forwarding fields of ``Get-Mailbox -Identity``. ``NotFoundError`` without a mailbox."""
        ident = validate_identity(identity)
        item = self._mailbox(ident)
        try:
            return MailboxForwarding(
                identity=nonempty_str(
                    _first(item, "UserPrincipalName", "Identity", "PrimarySmtpAddress")
                )
                or ident,
                forwarding_address=nonempty_str(item.get("ForwardingAddress")),
                forwarding_smtp_address=nonempty_str(item.get("ForwardingSmtpAddress")),
                deliver_to_mailbox_and_forward=_bool(item.get("DeliverToMailboxAndForward")),
            )
        except ValidationError:
            raise ApiError(
                "Get-Mailbox: unexpected mailbox object", status=200, code="InvalidResponse"
            ) from None

    def _mailbox(self, ident: str) -> dict[str, Any]:
        """``Get-Mailbox -Identity``: the mailbox object; ``NotFoundError`` without one."""
        items = list(self._objects("Get-Mailbox", {"Identity": ident}))
        if not items:
            raise NotFoundError(
                f"Get-Mailbox: no mailbox for {ident!r}", status=404, code="NotFound"
            )
        return items[0]

    def clear_mailbox_forwarding(self, identity: str) -> Receipt:
        """``Set-Mailbox`` with both forwarding addresses null and no copy kept. Idempotent."""
        ident = validate_identity(identity)
        response = self.invoke(
            "Set-Mailbox",
            {
                "Identity": ident,
                "ForwardingSmtpAddress": NULL,
                "ForwardingAddress": NULL,
                "DeliverToMailboxAndForward": False,
            },
        )
        return self._receipt("clear_mailbox_forwarding", ident, response)

    def get_inbox_rules(self, mailbox: str, include_hidden: bool = True) -> list[InboxRule]:
        """``Get-InboxRule -Mailbox m [-IncludeHidden]``. Read-only.

        Exchange returns no "hidden" property, so with ``include_hidden`` the visible rules are read
        too, and a rule that only ``-IncludeHidden`` shows is marked ``hidden``.
        """
        ident = validate_identity(mailbox, "mailbox")
        everything = self._rules(
            {"Mailbox": ident, "IncludeHidden": True if include_hidden else None}
        )
        if not include_hidden:
            return everything
        visible = {rule.identity for rule in self._rules({"Mailbox": ident})}
        return [
            rule
            if rule.hidden or rule.identity in visible
            else rule.model_copy(update={"hidden": True})
            for rule in everything
        ]

    def _rules(self, params: Mapping[str, ParamValue]) -> list[InboxRule]:
        rules = (_parse_inbox_rule(item) for item in self._objects("Get-InboxRule", params))
        return [rule for rule in rules if rule is not None]

    def disable_inbox_rule(self, mailbox: str, identity: str) -> Receipt:
        """``Disable-InboxRule -Mailbox m -Identity r``. Idempotent."""
        mbx = validate_identity(mailbox, "mailbox")
        rule = validate_identity(identity, "identity")
        response = self.invoke("Disable-InboxRule", {"Mailbox": mbx, "Identity": rule})
        return self._receipt("disable_inbox_rule", rule, response)

    # -- mailbox delegates -------------------------------------------------------------------

    def get_mailbox_permissions(self, identity: str) -> list[MailboxPermission]:
        """``Get-MailboxPermission -Identity``: the delegates (Full Access and other rights),
        without ``NT AUTHORITY\\SELF``, inherited and deny entries. Read-only."""
        ident = validate_identity(identity)
        return [
            MailboxPermission(identity=owner, user=user, access_rights=rights)
            for owner, user, rights in self._delegates("Get-MailboxPermission", ident, "User")
        ]

    def get_recipient_permissions(self, identity: str) -> list[RecipientPermission]:
        """``Get-RecipientPermission -Identity``: who may Send As the mailbox (``Trustee``), without
        SELF, inherited and deny entries. Read-only."""
        ident = validate_identity(identity)
        return [
            RecipientPermission(identity=owner, trustee=trustee, access_rights=rights)
            for owner, trustee, rights in self._delegates(
                "Get-RecipientPermission", ident, "Trustee"
            )
        ]

    def _delegates(
        self, cmdlet: str, ident: str, holder_key: str
    ) -> Iterator[tuple[str, str, tuple[str, ...]]]:
        """(mailbox, holder, rights) of each delegate entry; the two cmdlets differ only in the
        name of the holder field."""
        for item in self._objects(cmdlet, {"Identity": ident}):
            holder = nonempty_str(item.get(holder_key))
            if holder is None or not _is_delegate(item, holder):
                continue
            yield (
                nonempty_str(item.get("Identity")) or ident,
                holder,
                _rights(item.get("AccessRights")),
            )

    def get_send_on_behalf(self, identity: str) -> tuple[str, ...]:
        """``GrantSendOnBehalfTo`` of ``Get-Mailbox -Identity``: who may send on behalf of the
        mailbox, as Exchange names them. ``NotFoundError`` without a mailbox. Read-only."""
        return _strings(self._mailbox(validate_identity(identity)).get("GrantSendOnBehalfTo"))

    def remove_mailbox_permission(
        self, identity: str, user: str, access_rights: tuple[str, ...] = ("FullAccess",)
    ) -> Receipt:
        """``Remove-MailboxPermission -Identity -User -AccessRights -Confirm:$false``.

        Idempotent: removing an absent entry changes nothing (Exchange answers with a warning);
        callers re-read with :meth:`get_mailbox_permissions` to tell the two apart.
        """
        return self._remove_permission("User", identity, user, access_rights)

    def remove_recipient_permission(
        self, identity: str, trustee: str, access_rights: tuple[str, ...] = ("SendAs",)
    ) -> Receipt:
        """``Remove-RecipientPermission -Identity -Trustee -AccessRights SendAs -Confirm:$false``.
        Idempotent as above."""
        return self._remove_permission("Trustee", identity, trustee, access_rights)

    def _remove_permission(
        self, holder_key: str, identity: str, holder: str, access_rights: tuple[str, ...]
    ) -> Receipt:
        """The two removals differ only in the cmdlet and the name of the holder parameter (as
        in :meth:`_delegates`), which also names the holder in a validation error."""
        cmdlet, operation = _PERMISSION_REMOVALS[holder_key]
        ident = validate_identity(identity)
        who = validate_identity(holder, holder_key.lower())
        rights = [validate_identity(r, "access right") for r in access_rights]
        response = self.invoke(
            cmdlet,
            {"Identity": ident, holder_key: who, "AccessRights": rights, "Confirm": False},
        )
        return self._receipt(operation, who, response)

    def remove_send_on_behalf(self, identity: str, delegate: str) -> Receipt:
        """Take one delegate off ``GrantSendOnBehalfTo``, leaving the others: ``Set-Mailbox
        -GrantSendOnBehalfTo @{remove=...}``, sent as an ``#Exchange.GenericHashTable``.
        Idempotent: an absent delegate leaves the mailbox unchanged."""
        ident = validate_identity(identity)
        who = validate_identity(delegate, "delegate")
        response = self.invoke(
            "Set-Mailbox",
            {
                "Identity": ident,
                "GrantSendOnBehalfTo": {"@odata.type": GENERIC_HASHTABLE, "remove": who},
                "Confirm": False,
            },
        )
        return self._receipt("remove_send_on_behalf", who, response)

    # -- message trace -------------------------------------------------------------------------

    def get_message_trace(
        self,
        sender_address: str,
        start: datetime,
        end: datetime,
        *,
        result_size: int = TRACE_MAX_RESULT_SIZE,
        max_rows: int = TRACE_MAX_ROWS,
    ) -> MessageTrace:
        """What ``sender_address`` sent between ``start`` and ``end`` (``Get-MessageTraceV2``).

        The window is cut into queries of at most 10 days, newest first. A query that returns
        ``result_size`` rows is continued with ``EndDate`` = the last row's ``Received`` and
        ``StartingRecipientAddress`` = its recipient, as Microsoft documents (the cmdlet has no
        paging). Rows are de-duplicated. Stops at ``max_rows`` with ``complete=False``.
        Microsoft searches the last 90 days only; older windows are the caller's to avoid.
        Each query spends the tenant's 100-queries-per-5-minutes budget (``m365.limits``).
        Read-only: safe to retry.
        """
        sender = validate_address(sender_address, "sender_address")
        if not 1 <= result_size <= TRACE_MAX_RESULT_SIZE:
            raise ValueError(f"result_size must be 1..{TRACE_MAX_RESULT_SIZE}")
        start_utc, end_utc = as_utc(start), as_utc(end)
        if end_utc <= start_utc:
            raise ValueError("the message trace window must end after it starts")
        rows: dict[tuple[str | None, str, datetime], MessageTraceRow] = {}
        queries = 0
        complete = True
        slice_end = end_utc
        while slice_end > start_utc and complete:
            slice_start = max(start_utc, slice_end - TRACE_MAX_SPAN)
            params: dict[str, ParamValue] = {
                "SenderAddress": sender,
                "StartDate": utc_timestamp(slice_start),
                "EndDate": utc_timestamp(slice_end),
                "ResultSize": result_size,
            }
            previous: tuple[object, object] | None = None
            while True:
                items = list(self._objects("Get-MessageTraceV2", params, bucket=MESSAGE_TRACE))
                queries += 1
                for item in items:
                    row = _parse_trace_row(item)
                    if row is not None:
                        rows.setdefault(
                            (row.message_trace_id, row.recipient_address.lower(), row.received),
                            row,
                        )
                if len(rows) >= max_rows:
                    complete = False
                    break
                if len(items) < result_size:
                    break
                last = items[-1]
                marker = (last.get("Received"), last.get("RecipientAddress"))
                if marker == previous or not all(isinstance(v, str) for v in marker):
                    break  # no progress: never loop on the same page
                previous = marker
                params["EndDate"] = str(marker[0])
                params["StartingRecipientAddress"] = str(marker[1])
            slice_end = slice_start
        ordered = sorted(rows.values(), key=lambda r: (r.received, r.recipient_address.lower()))
        return MessageTrace(
            sender_address=sender,
            start=start_utc,
            end=end_utc,
            rows=tuple(ordered[:max_rows]),
            queries=queries,
            complete=complete,
        )
