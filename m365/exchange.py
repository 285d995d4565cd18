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
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from .auth import TokenProvider
from .errors import ApiError, NotFoundError
from .identifiers import path_segment, validate_address, validate_identity
from .models import InboxRule, MailboxForwarding, Receipt, RestrictedSender, RestrictionReason
from .reason import parse_reason
from .transport import ApiResponse, Transport, ensure_next_link

SYSTEM_MAILBOX = "SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}"
PAGE_SIZE = 1000
_MAX_PAGES = 1000


class _Null:
    """A parameter that must be sent as JSON ``null`` (``None`` means "leave it out")."""

    def __repr__(self) -> str:
        return "NULL"


NULL: Final = _Null()

ParamValue = str | int | bool | list[str] | _Null | None


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


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


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


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    # Exchange writes seven fractional digits ("...07.0000000+00:00"); Python takes six.
    if "." in text:
        head, _, tail = text.partition(".")
        # only the leading digits: the zone ("+00:00") has digits too
        digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
        zone = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _first(item: Mapping[str, Any], *names: str) -> object:
    for name in names:
        if name in item and item[name] is not None:
            return item[name]
    return None


def _parse_sender(item: Mapping[str, Any]) -> RestrictedSender | None:
    address = _str(item.get("SenderAddress"))
    if address is None:
        return None
    reason = item.get("Reason")
    return RestrictedSender(
        sender_address=address,
        reason=parse_reason(reason if isinstance(reason, str) else None),
        created=_datetime(_first(item, "CreatedDatetime", "CreatedDateTime")),
        changed=_datetime(_first(item, "ChangedDatetime", "ChangedDateTime")),
        temporary_block=_bool(item["TemporaryBlock"]) if "TemporaryBlock" in item else None,
    )


def _parse_inbox_rule(item: Mapping[str, Any]) -> InboxRule | None:
    identity = _str(_first(item, "Identity", "RuleIdentity"))
    if identity is None:
        return None
    return InboxRule(
        identity=identity,
        name=_str(item.get("Name")) or "",
        enabled=_bool(item.get("Enabled"), True),
        hidden=_bool(_first(item, "Hidden", "IsHidden"), False),
        forward_to=_strings(item.get("ForwardTo")),
        forward_as_attachment_to=_strings(item.get("ForwardAsAttachmentTo")),
        redirect_to=_strings(item.get("RedirectTo")),
        delete_message=_bool(item.get("DeleteMessage"), False),
        move_to_folder=_str(item.get("MoveToFolder")),
    )


class ExchangeAdminClient:
    """The Exchange Online cmdlets of the playbook. Thread-safe (transport and tokens are)."""

    def __init__(
        self,
        transport: Transport,
        tokens: TokenProvider,
        base_url: str,
        resource: str,
        tenant_id: str,
        tenant_domain: str | None = None,
    ) -> None:
        self._transport = transport
        self._tokens = tokens
        self.base_url = base_url.rstrip("/")
        self.resource = resource
        self.tenant_id = tenant_id
        self.tenant_domain = tenant_domain
        self.endpoint = f"{self.base_url}/{path_segment(tenant_id)}/InvokeCommand"

    def __repr__(self) -> str:
        return f"ExchangeAdminClient(endpoint={self.endpoint!r})"

    # -- plumbing -------------------------------------------------------------------------

    def _headers(self, cmdlet: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "X-AnchorMailbox": f"APP:{SYSTEM_MAILBOX}@{self.tenant_id}",
            "Prefer": f"odata.maxpagesize={PAGE_SIZE}",
            "X-ResponseFormat": "json",
            "X-CmdletName": cmdlet,
            "client-request-id": str(uuid.uuid4()),
        }

    def _post(
        self, url: str, cmdlet: str, body: Mapping[str, Any], *, resend_ambiguous: bool = True
    ) -> ApiResponse:
        return self._transport.request(
            "POST",
            url,
            tokens=self._tokens,
            resource=self.resource,
            operation=cmdlet,
            json_body=body,
            headers=self._headers(cmdlet),
            resend_ambiguous=resend_ambiguous,
        )

    def invoke(
        self, cmdlet: str, parameters: Mapping[str, ParamValue], *, resend_ambiguous: bool = True
    ) -> ApiResponse:
        """Run one cmdlet; the first page only. Prefer the typed methods.

        ``resend_ambiguous=False``: see :meth:`m365.transport.Transport.request`.
        """
        body = _cmdlet_body(cmdlet, parameters)
        return self._post(self.endpoint, cmdlet, body, resend_ambiguous=resend_ambiguous)

    def _objects(
        self, cmdlet: str, parameters: Mapping[str, ParamValue]
    ) -> Iterator[dict[str, Any]]:
        """Every object a cmdlet returns, across pages, companion keys dropped."""
        body = _cmdlet_body(cmdlet, parameters)
        url: str | None = self.endpoint
        for _ in range(_MAX_PAGES):
            if url is None:
                return
            payload = self._post(url, cmdlet, body).json_object()
            values = payload.get("value", payload.get("Value"))
            if isinstance(values, list):
                yield from (_clean(v) for v in values if isinstance(v, dict))
            url = ensure_next_link(payload.get("@odata.nextLink"), self.base_url, cmdlet)

    @staticmethod
    def _receipt(operation: str, target: str, response: ApiResponse) -> Receipt:
        return Receipt(
            operation=operation,
            target=target,
            request_id=response.request_id,
            status=response.status,
        )

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
        items = list(self._objects("Get-Mailbox", {"Identity": ident}))
        if not items:
            raise NotFoundError(
                f"Get-Mailbox: no mailbox for {ident!r}", status=404, code="NotFound"
            )
        item = items[0]
        try:
            return MailboxForwarding(
                identity=_str(_first(item, "UserPrincipalName", "Identity", "PrimarySmtpAddress"))
                or ident,
                forwarding_address=_str(item.get("ForwardingAddress")),
                forwarding_smtp_address=_str(item.get("ForwardingSmtpAddress")),
                deliver_to_mailbox_and_forward=_bool(item.get("DeliverToMailboxAndForward")),
            )
        except ValidationError:
            raise ApiError(
                "Get-Mailbox: unexpected mailbox object", status=200, code="InvalidResponse"
            ) from None

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
