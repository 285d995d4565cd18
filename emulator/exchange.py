"""Exchange Online admin API subset: POST .../adminapi/beta/{tenant}/InvokeCommand."""

from __future__ import annotations

import base64
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from .seed import ROLE_TEMPLATES
from .state import PermissionRecord, TenantState, TraceRow, UserRecord, utcnow
from .tokens import EXCHANGE_RESOURCE, TokenRejected
from .wire import (
    ODATA_JSON,
    Call,
    Request,
    Response,
    exo_datetime,
    json_response,
    parse_datetime,
)

if TYPE_CHECKING:
    from .core import Core

Handler = Callable[[], Response]

ANCHOR_GUID = "bb558c35-97f1-4cb9-8ff7-d53741dc928c"
RATE_LIMIT = 30000
RATE_WINDOW = 3600.0

WRITE_ROLES = {ROLE_TEMPLATES["Exchange Administrator"], ROLE_TEMPLATES["Global Administrator"]}
READ_ROLES = WRITE_ROLES | {
    ROLE_TEMPLATES["Global Reader"],
    ROLE_TEMPLATES["Security Reader"],
    ROLE_TEMPLATES["Security Administrator"],
}
COMMON_PARAMETERS = {"erroraction", "warningaction", "confirm", "verbose", "debug"}

NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
UNBLOCK_LIMIT = (
    "Microsoft.Exchange.Management.SystemConfigurationTasks.UnblockLimitExceededException"
)
UNBLOCK_LIMIT_TEXT = (
    "You've exceeded the unblock limit for this sender. "
    "Contact Microsoft Support to remove the restriction."
)
WWW_AUTHENTICATE = {
    "WWW-Authenticate": (
        'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
        'trusted_issuers="00000001-0000-0000-c000-000000000000@*", '
        'token_types="app_asserted_user_v1 service_asserted_app_v1", '
        'authorization_uri="https://login.windows.net/common/oauth2/authorize", '
        'error="invalid_token"'
    )
}
# Exchange's own diagnostic header on a refused token [UNCONFIRMED code and wording].
DIAGNOSTICS = {
    "x-ms-diagnostics": (
        '2000001;reason="The access token has expired. Acquire a new token.";'
        'error_category="invalid_token"'
    )
}


@dataclass(frozen=True)
class CmdletSpec:
    parameters: tuple[str, ...]
    required: tuple[str, ...]
    write: bool
    # Values of these parameters are safe to record in the request log.
    loggable: tuple[str, ...]


CMDLETS: dict[str, CmdletSpec] = {
    "Get-BlockedSenderAddress": CmdletSpec(("SenderAddress",), (), False, ("SenderAddress",)),
    "Remove-BlockedSenderAddress": CmdletSpec(
        ("SenderAddress", "Reason"), ("SenderAddress",), True, ("SenderAddress", "Reason")
    ),
    "Get-Mailbox": CmdletSpec(("Identity", "ResultSize"), (), False, ("Identity", "ResultSize")),
    "Get-InboxRule": CmdletSpec(
        ("Mailbox", "Identity", "IncludeHidden"),
        ("Mailbox",),
        False,
        ("Mailbox", "Identity", "IncludeHidden"),
    ),
    "Disable-InboxRule": CmdletSpec(
        ("Identity", "Mailbox", "AlwaysDeleteOutlookRulesBlob", "Force"),
        ("Identity",),
        True,
        ("Identity", "Mailbox"),
    ),
    "Set-Mailbox": CmdletSpec(
        (
            "Identity",
            "ForwardingSmtpAddress",
            "ForwardingAddress",
            "DeliverToMailboxAndForward",
            "GrantSendOnBehalfTo",
        ),
        ("Identity",),
        True,
        (
            "Identity",
            "ForwardingSmtpAddress",
            "ForwardingAddress",
            "DeliverToMailboxAndForward",
            "GrantSendOnBehalfTo",
        ),
    ),
    "Get-MailboxPermission": CmdletSpec(
        ("Identity", "User", "ResultSize"), ("Identity",), False, ("Identity", "User")
    ),
    "Get-RecipientPermission": CmdletSpec(
        ("Identity", "Trustee", "AccessRights", "ResultSize"),
        (),
        False,
        ("Identity", "Trustee", "AccessRights"),
    ),
    "Remove-MailboxPermission": CmdletSpec(
        ("Identity", "User", "AccessRights", "InheritanceType", "Deny", "BypassMasterAccountSid"),
        ("Identity", "User", "AccessRights"),
        True,
        ("Identity", "User", "AccessRights", "InheritanceType"),
    ),
    "Remove-RecipientPermission": CmdletSpec(
        ("Identity", "Trustee", "AccessRights", "Deny"),
        ("Identity", "Trustee", "AccessRights"),
        True,
        ("Identity", "Trustee", "AccessRights"),
    ),
    # Recipient addresses and subjects are personal data: not in the request log.
    "Get-MessageTraceV2": CmdletSpec(
        (
            "SenderAddress",
            "RecipientAddress",
            "StartDate",
            "EndDate",
            "ResultSize",
            "Status",
            "MessageId",
            "MessageTraceId",
            "FromIP",
            "ToIP",
            "Subject",
            "SubjectFilterType",
            "StartingRecipientAddress",
        ),
        (),
        False,
        ("SenderAddress", "StartDate", "EndDate", "ResultSize", "Status"),
    ),
}
# Get-MessageTraceV2 (learn.microsoft.com): no paging; ResultSize rows per query, at most 10 days
# per query, the last 90 days searchable, the last 48 hours without dates.
UNPAGED = frozenset({"Get-MessageTraceV2"})
TRACE_MAX_SPAN = timedelta(days=10)
TRACE_SEARCHABLE = timedelta(days=90)
TRACE_DEFAULT_SPAN = timedelta(hours=48)
TRACE_DEFAULT_SIZE = 1000
TRACE_MAX_SIZE = 5000
SELF = "NT AUTHORITY\\SELF"
_CANON = {name.lower(): name for name in CMDLETS}
_SMTP = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAINS = "EUR05PR10MB1234.eurprd05.prod.outlook.com"


# ---- response shapes -----------------------------------------------------------------------


def _context(req: Request, tenant_key: str) -> str:
    base = f"{req.base_url}/exo/adminapi/beta/{tenant_key}"
    return f"{base}/$metadata#Collection(Exchange.GenericHashTable)"


def unauthorized(message: str) -> Response:
    return json_response(
        401, {"error": {"code": "Unauthorized", "message": message}}, dict(WWW_AUTHENTICATE)
    )


def forbidden(message: str) -> Response:
    return json_response(403, {"error": {"code": "Forbidden", "message": message}})


def cmdlet_error(
    status: int,
    code: str,
    exception_type: str,
    text: str,
    *,
    message: str = "Error executing cmdlet",
) -> Response:
    error_id = "Ex" + format(zlib.crc32(f"{exception_type}|{text}".encode()) & 0xFFFFFF, "06X")
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": [
                {"code": "Context", "target": "", "message": f"{error_id}|{exception_type}|{text}"}
            ],
            "innererror": {
                "message": message,
                "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                "stacktrace": "",
                "internalexception": {
                    "message": text,
                    "type": exception_type,
                    "stacktrace": "",
                },
            },
            "adminapi.warnings@odata.type": "#Collection(String)",
            "@adminapi.warnings": [],
        }
    }
    return json_response(
        status, body, {"X-ExceptionType": exception_type.rsplit(".", 1)[-1]}, ODATA_JSON
    )


def _invalid_operation(exception_type: str, text: str) -> Response:
    return cmdlet_error(400, "BadRequest", exception_type, text, message="Invalid Operation")


def _not_found(identity: str) -> Response:
    return cmdlet_error(
        404,
        "NotFound",
        NOT_FOUND,
        f"The operation couldn't be performed because object '{identity}' "
        f"couldn't be found on '{_DOMAINS}'.",
    )


# ---- routing --------------------------------------------------------------------------------


def route(core: Core, req: Request, call: Call, tenant_key: str) -> Handler:
    payload: Any = None
    try:
        payload = req.json()
    except ValueError:
        payload = None
    name: str | None = None
    params: Any = None
    if isinstance(payload, dict) and isinstance(payload.get("CmdletInput"), dict):
        raw_name = payload["CmdletInput"].get("CmdletName")
        params = payload["CmdletInput"].get("Parameters") or {}
        if isinstance(raw_name, str):
            name = _CANON.get(raw_name.lower(), raw_name)
    call.endpoint = f"exo.{name}" if name else "exo.unknown"
    call.cmdlet = name
    spec = CMDLETS.get(name or "")
    if spec is not None:
        call.write = spec.write
        if isinstance(params, dict):
            call.parameters = _loggable(spec, params)
    elif name and name.split("-", 1)[0] in ("Remove", "Set", "Disable", "Add", "New", "Enable"):
        call.write = True
    return lambda: _invoke(core, req, call, tenant_key, payload, name, params)


def _loggable(spec: CmdletSpec, params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        canon = next((p for p in spec.parameters if p.lower() == str(key).lower()), None)
        out[canon or str(key)] = value if canon in spec.loggable else "<redacted>"
    return out


def _budget_headers(core: Core, tenant_id: str) -> dict[str, str]:
    now = time.time()
    with core.state.lock:
        start, used = core.exo_budget.get(tenant_id, (now, 0))
        if now - start >= RATE_WINDOW:
            start, used = now, 0
        used += 1
        core.exo_budget[tenant_id] = (start, used)
    reset = datetime.fromtimestamp(start + RATE_WINDOW, UTC)
    return {
        "Rate-Limit-Limit": str(RATE_LIMIT),
        "Rate-Limit-Remaining": str(max(RATE_LIMIT - used, 0)),
        "Rate-Limit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
        "X-Concurrencycount": "1",
    }


def _invoke(
    core: Core,
    req: Request,
    call: Call,
    tenant_key: str,
    payload: Any,
    name: str | None,
    params: Any,
) -> Response:
    # 1. token
    try:
        claims = core.tokens.validate(req.header("Authorization"), EXCHANGE_RESOURCE)
    except TokenRejected as exc:
        text = {
            "missing": "The request does not carry an access token.",
            "malformed": "The access token is invalid.",
            "expired": "The access token has expired.",
            "audience": "The audience of the access token is not https://outlook.office365.com.",
        }[exc.reason]
        return unauthorized(text)
    ts = core.state.find_tenant(tenant_key)
    if ts is None or ts.tenant_id != claims["tid"]:
        return unauthorized(
            f"The tenant '{tenant_key}' in the URL does not match the access token."
        )
    budget = _budget_headers(core, ts.tenant_id)
    response = _authorized(core, req, call, ts, claims, tenant_key, payload, name, params)
    for key, value in budget.items():
        response.headers.setdefault(key, value)
    return response


def _anchor_ok(value: str | None, ts: TenantState) -> bool:
    if not value:
        return False
    kind, _, rest = value.partition(":")
    mailbox = f"systemmailbox{{{ANCHOR_GUID}}}@"
    if not rest.lower().startswith(mailbox):
        return False
    where = rest[len(mailbox) :].lower()
    if kind.upper() == "APP":
        return where in (ts.tenant_id.lower(), ts.domain.lower())
    if kind.upper() == "UPN":
        return where in (ts.domain.lower(), ts.tenant_id.lower())
    return False


def _authorized(
    core: Core,
    req: Request,
    call: Call,
    ts: TenantState,
    claims: dict[str, Any],
    tenant_key: str,
    payload: Any,
    name: str | None,
    params: Any,
) -> Response:
    anchor = req.header("X-AnchorMailbox")
    if not _anchor_ok(anchor, ts):
        return json_response(
            400,
            {
                "error": {
                    "code": "BadRequest",
                    "message": (
                        "The X-AnchorMailbox header is missing or invalid; expected "
                        f"APP:SystemMailbox{{{ANCHOR_GUID}}}@<tenant id> or "
                        f"UPN:SystemMailbox{{{ANCHOR_GUID}}}@<tenant domain>."
                    ),
                }
            },
        )
    roles = {str(r) for r in claims.get("roles", [])}
    wids = {str(w) for w in claims.get("wids", [])}
    if "Exchange.ManageAsApp" not in roles:
        return forbidden("The app lacks the Exchange.ManageAsApp application permission.")
    if name is None or not isinstance(params, dict):
        return _invalid_operation(
            "System.ArgumentException",
            'The request body must be {"CmdletInput":{"CmdletName":...,"Parameters":{...}}}.',
        )
    spec = CMDLETS.get(name)
    app = ts.app(str(claims.get("appid", "")))
    if spec is None or (app is not None and name.lower() in app.exchange_hidden_cmdlets):
        return _invalid_operation(
            "System.Management.Automation.CommandNotFoundException",
            f"The term '{name}' is not recognized as a name of a cmdlet, function, script file, or "
            "executable program.",
        )
    needed = READ_ROLES if name.startswith("Get-") else WRITE_ROLES
    if not wids & needed:
        return forbidden(
            f"The role assigned to application {claims.get('appid')} isn't "
            "supported in this scenario: "
            f"no assigned role grants {name}."
        )
    # Parameter names are case-insensitive; common parameters are ignored; nulls are kept
    # (Set-Mailbox clears forwarding with them).
    args: dict[str, Any] = {}
    for key, value in params.items():
        k = str(key)
        canon = next((p for p in spec.parameters if p.lower() == k.lower()), None)
        if canon is None:
            if k.lower() in COMMON_PARAMETERS:
                continue
            return _invalid_operation(
                "System.Management.Automation.ParameterBindingException",
                f"A parameter cannot be found that matches parameter name '{k}'.",
            )
        args[canon] = value
    missing = [p for p in spec.required if args.get(p) in (None, "")]
    if missing:
        return _invalid_operation(
            "System.Management.Automation.ParameterBindingException",
            "Cannot process command because of one or more missing mandatory parameters: "
            f"{' '.join(missing)}.",
        )
    for key in ("SenderAddress",):
        if key in args and args[key] is not None and not _SMTP.match(str(args[key])):
            return _invalid_operation(
                "Microsoft.Exchange.Configuration.Tasks.ParameterTransformationException",
                f"Cannot process argument transformation on parameter '{key}'. "
                "Cannot convert value "
                f'"{args[key]}" to type "Microsoft.Exchange.Data.SmtpAddress". Error: "The email '
                f'address "{args[key]}" isn\'t correct."',
            )
    with core.state.lock:
        result = _run(core, ts, name, args)
    if isinstance(result, Response):
        return result
    items = result.items if isinstance(result, Warned) else result
    warnings = result.warnings if isinstance(result, Warned) else []
    if name in UNPAGED:  # one answer, whatever Prefer says
        return _page(req, tenant_key, items, len(items) or 1, warnings, unpaged=True)
    return _page(req, tenant_key, items, ts.settings.page_size, warnings)


@dataclass(frozen=True)
class Warned:
    """A cmdlet result that also carries ``@adminapi.warnings`` (e.g. nothing to remove)."""

    items: list[dict[str, Any]]
    warnings: list[str]


def _page(
    req: Request,
    tenant_key: str,
    items: list[dict[str, Any]],
    default_size: int,
    warnings: list[str] | None = None,
    *,
    unpaged: bool = False,
) -> Response:
    select = req.query.get("$select")
    if select:
        wanted = {s.strip().lower() for s in select.split(",") if s.strip()}
        items = [
            {k: v for k, v in item.items() if k.split("@", 1)[0].lower() in wanted}
            for item in items
        ]
    size = default_size if unpaged else _page_size(req, default_size)
    offset = _decode_skiptoken(req.query.get("$skiptoken"))
    page = items[offset : offset + size]
    body: dict[str, Any] = {
        "@odata.context": _context(req, tenant_key),
        "adminapi.warnings@odata.type": "#Collection(String)",
        "@adminapi.warnings": list(warnings or ()),
        "value": page,
    }
    if offset + size < len(items):
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        params["$skiptoken"] = _encode_skiptoken(offset + size)
        query = urlencode(params, quote_via=quote, safe="$,")
        body["@odata.nextLink"] = f"{req.base_url}{req.path}?{query}"
    return json_response(200, body, None, ODATA_JSON)


_PREFER = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.I)


def _page_size(req: Request, size: int) -> int:
    """The tenant's page size; ``Prefer: odata.maxpagesize=N`` may lower it."""
    prefer = req.header("Prefer")
    if prefer:
        m = _PREFER.search(prefer)
        if m and int(m.group(1)) > 0:
            size = min(size, int(m.group(1)))
    return size


def _encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"skip:{offset}".encode()).decode().rstrip("=")


def _decode_skiptoken(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        return max(int(raw.split(":", 1)[1]), 0)
    except (ValueError, IndexError):
        return 0


# ---- cmdlets ----------------------------------------------------------------------------------


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "$true", "1", "yes")


def _run(
    core: Core, ts: TenantState, name: str, args: dict[str, Any]
) -> list[dict[str, Any]] | Warned | Response:
    if name == "Get-BlockedSenderAddress":
        return _get_blocked(ts, args.get("SenderAddress"))
    if name == "Remove-BlockedSenderAddress":
        return _remove_blocked(ts, str(args["SenderAddress"]), args.get("Reason"))
    if name == "Get-Mailbox":
        return _get_mailbox(ts, args.get("Identity"))
    if name == "Get-InboxRule":
        return _get_inbox_rules(
            ts,
            str(args["Mailbox"]),
            args.get("Identity"),
            _truthy(args.get("IncludeHidden", False)),
        )
    if name == "Disable-InboxRule":
        return _disable_inbox_rule(ts, str(args["Identity"]), args.get("Mailbox"))
    if name == "Set-Mailbox":
        return _set_mailbox(ts, str(args["Identity"]), args)
    if name == "Get-MailboxPermission":
        return _get_mailbox_permissions(ts, str(args["Identity"]), args.get("User"))
    if name == "Get-RecipientPermission":
        return _get_recipient_permissions(ts, args.get("Identity"), args.get("Trustee"))
    if name == "Remove-MailboxPermission":
        return _remove_mailbox_permission(ts, args)
    if name == "Remove-RecipientPermission":
        return _remove_recipient_permission(ts, args)
    if name == "Get-MessageTraceV2":
        return _message_trace(ts, args)
    raise AssertionError(name)


def _blocked_json(entry: Any) -> dict[str, Any]:
    return {
        "SenderAddress": entry.address,
        "Reason": entry.reason,
        "CreatedDatetime@data.type": "System.DateTime",
        "CreatedDatetime": exo_datetime(entry.created),
        "ChangedDatetime@data.type": "System.DateTime",
        "ChangedDatetime": exo_datetime(entry.changed),
        "TemporaryBlock": entry.temporary_block,
    }


def _get_blocked(ts: TenantState, address: Any) -> list[dict[str, Any]]:
    entries = ts.visible_restricted()
    if address:
        wanted = str(address).lower()
        entries = [e for e in entries if e.address.lower() == wanted]
    return [_blocked_json(e) for e in entries]


def _remove_blocked(ts: TenantState, address: str, reason: Any) -> list[dict[str, Any]] | Response:
    ts.purge_restricted()
    key = address.lower()
    entry = ts.restricted.get(key)
    if entry is None:
        return _not_found(address)
    if entry.pending_removal:
        return []  # already being removed: not counted twice
    count = ts.unblock_counts.get(key, 0)
    if count >= ts.settings.unblock_cap:
        return cmdlet_error(400, "BadRequest", UNBLOCK_LIMIT, UNBLOCK_LIMIT_TEXT)
    ts.unblock_counts[key] = count + 1
    entry.removal_reason = None if reason is None else str(reason)
    entry.removal_requested = utcnow()
    entry.changed = entry.removal_requested
    entry.removal_due = time.monotonic() + ts.settings.removal_delay_seconds
    ts.purge_restricted()
    return []


def _mailbox_json(ts: TenantState, user: UserRecord) -> dict[str, Any]:
    return {
        "Identity": user.alias,
        "Name": user.alias,
        "Alias": user.alias,
        "DisplayName": user.display_name,
        "UserPrincipalName": user.upn,
        "PrimarySmtpAddress": user.primary_smtp,
        "EmailAddresses@odata.type": "#Collection(String)",
        "EmailAddresses": list(user.proxy_addresses),
        "ExternalDirectoryObjectId": user.id,
        "Guid@data.type": "System.Guid",
        "Guid@odata.type": "#Guid",
        "Guid": user.id,
        "RecipientTypeDetails": "UserMailbox",
        "IsDirSynced": user.synced,
        "AccountDisabled": not user.enabled,
        "ForwardingAddress": user.forwarding_address,
        "ForwardingSmtpAddress": user.forwarding_smtp_address,
        "DeliverToMailboxAndForward": user.deliver_to_mailbox_and_forward,
        "GrantSendOnBehalfTo@odata.type": "#Collection(String)",
        "GrantSendOnBehalfTo": list(user.send_on_behalf),
        "WhenMailboxCreated@data.type": "System.DateTime",
        "WhenMailboxCreated": exo_datetime(user.created),
        "OrganizationalUnit": f"{ts.domain.split('.', 1)[0]}.onmicrosoft.com",
    }


def _mailbox(ts: TenantState, identity: str) -> UserRecord | None:
    user = ts.user_by_address(identity)
    return user if user is not None and user.has_mailbox else None


def _get_mailbox(ts: TenantState, identity: Any) -> list[dict[str, Any]] | Response:
    if identity in (None, ""):
        return [_mailbox_json(ts, u) for u in ts.users.values() if u.has_mailbox]
    user = _mailbox(ts, str(identity))
    if user is None:
        return _not_found(str(identity))
    return [_mailbox_json(ts, user)]


def _exo_recipient(address: str) -> str:
    return f'"{address}" [SMTP:{address}]'


def _rule_json(user: UserRecord, rule: Any) -> dict[str, Any]:
    def recipients(values: list[str]) -> list[str] | None:
        return [_exo_recipient(a) for a in values] or None

    return {
        "Identity": f"{user.upn}\\{rule.rule_id}",
        "Name": rule.name,
        "Enabled": rule.enabled,
        "Priority": rule.priority,
        "RuleIdentity@data.type": "System.UInt64",
        "RuleIdentity": rule.rule_id,
        "MailboxOwnerId": user.alias,
        "ForwardTo": recipients(rule.forward_to),
        "ForwardAsAttachmentTo": recipients(rule.forward_as_attachment_to),
        "RedirectTo": recipients(rule.redirect_to),
        "DeleteMessage": rule.delete_message,
        "MoveToFolder": rule.move_to_folder,
        "StopProcessingRules": False,
        "InError": False,
        "IsValid": True,
    }


def _get_inbox_rules(
    ts: TenantState, mailbox: str, identity: Any, include_hidden: bool
) -> list[dict[str, Any]] | Response:
    user = _mailbox(ts, mailbox)
    if user is None:
        return _not_found(mailbox)
    rules = [r for r in user.inbox_rules if include_hidden or not r.hidden]
    if identity not in (None, ""):
        rule = _find_rule(user, str(identity))
        if rule is None or rule not in rules:
            return _not_found(str(identity))
        rules = [rule]
    return [_rule_json(user, r) for r in rules]


def _find_rule(user: UserRecord, identity: str) -> Any:
    tail = identity.rsplit("\\", 1)[-1]
    for rule in user.inbox_rules:
        if tail in (rule.rule_id, rule.name) or identity == f"{user.upn}\\{rule.rule_id}":
            return rule
    return None


def _disable_inbox_rule(
    ts: TenantState, identity: str, mailbox: Any
) -> list[dict[str, Any]] | Response:
    if mailbox not in (None, ""):
        user = _mailbox(ts, str(mailbox))
    elif "\\" in identity:
        user = _mailbox(ts, identity.split("\\", 1)[0])
    else:
        user = None
    if user is None:
        return _not_found(identity)
    rule = _find_rule(user, identity)
    if rule is None:
        return _not_found(identity)
    rule.enabled = False
    return []


def _set_mailbox(
    ts: TenantState, identity: str, args: dict[str, Any]
) -> list[dict[str, Any]] | Warned | Response:
    user = _mailbox(ts, identity)
    if user is None:
        return _not_found(identity)
    if "GrantSendOnBehalfTo" in args:
        outcome = _send_on_behalf(ts, user, args["GrantSendOnBehalfTo"])
        if outcome is not None:
            return outcome
    if "ForwardingSmtpAddress" in args:
        value = args["ForwardingSmtpAddress"]
        if value in (None, "", "$null"):
            user.forwarding_smtp_address = None
        else:
            text = str(value)
            user.forwarding_smtp_address = (
                text if text.lower().startswith("smtp:") else f"smtp:{text}"
            )
    if "ForwardingAddress" in args:
        value = args["ForwardingAddress"]
        user.forwarding_address = None if value in (None, "", "$null") else str(value)
    if "DeliverToMailboxAndForward" in args:
        user.deliver_to_mailbox_and_forward = _truthy(args["DeliverToMailboxAndForward"])
    return []


# ---- delegates ----------------------------------------------------------------------------


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v not in (None, "")]
    return [str(value)] if str(value) else []


def _same_principal(ts: TenantState, a: str, b: str) -> bool:
    """Exchange accepts a name, alias or address for a principal: compare what they resolve to."""
    if a.lower() == b.lower():
        return True
    ua, ub = ts.user_by_address(a), ts.user_by_address(b)
    return ua is not None and ua is ub


def _not_modified(user: UserRecord) -> Warned:
    return Warned(
        [],
        [
            f"The command completed successfully but no settings of '{user.alias}' have been "
            "modified."
        ],
    )


def _send_on_behalf(ts: TenantState, user: UserRecord, value: Any) -> Warned | Response | None:
    """``-GrantSendOnBehalfTo``: a list replaces, null clears, a GenericHashTable adds/removes."""
    before = list(user.send_on_behalf)
    if isinstance(value, dict):
        ops = {str(k).lower(): v for k, v in value.items() if not str(k).startswith("@")}
        unknown = set(ops) - {"add", "remove"}
        if unknown:
            return _invalid_operation(
                "System.Management.Automation.ParameterBindingException",
                "Cannot bind parameter 'GrantSendOnBehalfTo': only Add and Remove keys "
                "are allowed.",
            )
        for entry in _as_list(ops.get("remove")):
            user.send_on_behalf = [
                d for d in user.send_on_behalf if not _same_principal(ts, d, entry)
            ]
        for entry in _as_list(ops.get("add")):
            if ts.user_by_address(entry) is None:
                return _not_found(entry)
            if not any(_same_principal(ts, d, entry) for d in user.send_on_behalf):
                user.send_on_behalf.append(entry)
    else:
        user.send_on_behalf = _as_list(value)
    if user.send_on_behalf == before:
        return _not_modified(user)
    return None


def _permission_json(
    user: UserRecord, who: str, rights: list[str], *, inherited: bool, deny: bool, key: str
) -> dict[str, Any]:
    return {
        "Identity": user.alias,
        key: who,
        "AccessRights@odata.type": "#Collection(String)",
        "AccessRights": list(rights),
        "IsInherited": inherited,
        "Deny": deny,
        "InheritanceType": "All",
    }


def _get_mailbox_permissions(
    ts: TenantState, identity: str, user_filter: Any
) -> list[dict[str, Any]] | Response:
    user = _mailbox(ts, identity)
    if user is None:
        return _not_found(identity)
    rows = [
        _permission_json(
            user, SELF, ["FullAccess", "ReadPermission"], inherited=False, deny=False, key="User"
        ),
        *(
            _permission_json(user, p.user, p.access_rights, inherited=False, deny=False, key="User")
            for p in user.mailbox_permissions
        ),
        # What Exchange also lists: inherited entries from the database, a deny entry.
        _permission_json(
            user, "NT AUTHORITY\\SYSTEM", ["FullAccess"], inherited=True, deny=False, key="User"
        ),
        _permission_json(
            user,
            "EURPR05A003\\Organization Management",
            ["FullAccess"],
            inherited=True,
            deny=True,
            key="User",
        ),
    ]
    if user_filter not in (None, ""):
        rows = [r for r in rows if _same_principal(ts, r["User"], str(user_filter))]
    return rows


def _get_recipient_permissions(
    ts: TenantState, identity: Any, trustee: Any
) -> list[dict[str, Any]] | Response:
    users = (
        [u for u in ts.users.values() if u.has_mailbox]
        if identity in (None, "")
        else [_mailbox(ts, str(identity))]
    )
    if users == [None]:
        return _not_found(str(identity))
    rows: list[dict[str, Any]] = []
    for user in users:
        assert user is not None
        rows.append(
            _permission_json(user, SELF, ["SendAs"], inherited=False, deny=False, key="Trustee")
        )
        rows.extend(
            _permission_json(user, t, ["SendAs"], inherited=False, deny=False, key="Trustee")
            for t in user.send_as
        )
    if trustee not in (None, ""):
        rows = [r for r in rows if _same_principal(ts, r["Trustee"], str(trustee))]
    return rows


def _rights_arg(value: Any) -> list[str]:
    if isinstance(value, str):
        return [r.strip() for r in value.split(",") if r.strip()]
    return _as_list(value)


def _remove_mailbox_permission(ts: TenantState, args: dict[str, Any]) -> Warned | Response:
    identity, who = str(args["Identity"]), str(args["User"])
    user = _mailbox(ts, identity)
    if user is None:
        return _not_found(identity)
    rights = {r.lower() for r in _rights_arg(args["AccessRights"])}
    kept: list[PermissionRecord] = []
    removed = False
    for entry in user.mailbox_permissions:
        if _same_principal(ts, entry.user, who):
            left = [r for r in entry.access_rights if r.lower() not in rights]
            removed = removed or len(left) != len(entry.access_rights)
            if left:
                kept.append(PermissionRecord(entry.user, left))
        else:
            kept.append(entry)
    user.mailbox_permissions = kept
    if removed:
        return Warned([], [])
    # CIPP matches this text [UNCONFIRMED: warning, not error].
    return Warned(
        [],
        [
            f"WARNING: Can't remove the access control entry on the object '{user.alias}' for "
            f"account '{who}' because the ACE doesn't exist on the object."
        ],
    )


def _remove_recipient_permission(ts: TenantState, args: dict[str, Any]) -> Warned | Response:
    identity, who = str(args["Identity"]), str(args["Trustee"])
    user = _mailbox(ts, identity)
    if user is None:
        return _not_found(identity)
    if "sendas" not in {r.lower() for r in _rights_arg(args["AccessRights"])}:
        return _invalid_operation(
            "System.Management.Automation.ParameterBindingException",
            "Cannot validate argument on parameter 'AccessRights': only SendAs is supported.",
        )
    before = len(user.send_as)
    user.send_as = [t for t in user.send_as if not _same_principal(ts, t, who)]
    if len(user.send_as) != before:
        return Warned([], [])
    return Warned(
        [],
        [
            f"WARNING: The ACE for '{who}' with access rights 'SendAs' on '{user.alias}' "
            "can't be removed because the ACE isn't present."
        ],
    )


# ---- message trace ------------------------------------------------------------------------


def _trace_json(row: TraceRow) -> dict[str, Any]:
    return {
        "MessageTraceId@data.type": "System.Guid",
        "MessageTraceId": row.trace_id,
        "Received@data.type": "System.DateTime",
        "Received": exo_datetime(row.received),
        "SenderAddress": row.sender,
        "RecipientAddress": row.recipient,
        "Subject": row.subject,
        "Status": row.status,
        "FromIP": row.from_ip,
        "ToIP": None,
        "Size": row.size,
    }


def _message_trace(ts: TenantState, args: dict[str, Any]) -> list[dict[str, Any]] | Response:
    """Get-MessageTraceV2 with its documented limits (the error texts are [UNCONFIRMED])."""
    now = utcnow()
    start, end = parse_datetime(args.get("StartDate")), parse_datetime(args.get("EndDate"))
    if ("StartDate" in args) != ("EndDate" in args) or (
        "StartDate" in args and (start is None or end is None)
    ):
        return _invalid_operation(
            "System.Management.Automation.ParameterBindingException",
            "StartDate and EndDate must both be valid dates.",
        )
    if start is None or end is None:
        start, end = now - TRACE_DEFAULT_SPAN, now
    if end < start:
        return _invalid_operation(
            "System.ArgumentException", "The EndDate must be later than the StartDate."
        )
    if end - start > TRACE_MAX_SPAN:
        return _invalid_operation(
            "System.ArgumentException",
            "The time range between StartDate and EndDate can't be more than 10 days.",
        )
    if start < now - TRACE_SEARCHABLE:
        return _invalid_operation(
            "System.ArgumentException", "The StartDate can't be more than 90 days in the past."
        )
    size = args.get("ResultSize", TRACE_DEFAULT_SIZE)
    if isinstance(size, str) and size.isdigit():
        size = int(size)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= TRACE_MAX_SIZE:
        return _invalid_operation(
            "System.Management.Automation.ParameterBindingException",
            f"Cannot validate argument on parameter 'ResultSize'. The argument must be "
            f"between 1 and {TRACE_MAX_SIZE}.",
        )
    senders = {s.lower() for s in _as_list(args.get("SenderAddress"))}
    recipients = {r.lower() for r in _as_list(args.get("RecipientAddress"))}
    statuses = {s.lower() for s in _as_list(args.get("Status"))}
    starting = str(args.get("StartingRecipientAddress") or "").lower()
    rows = [
        r
        for r in ts.message_trace
        if start <= r.received <= end
        and (not senders or r.sender.lower() in senders)
        and (not recipients or r.recipient.lower() in recipients)
        and (not statuses or r.status.lower() in statuses)
        # Continuation [UNCONFIRMED]: rows at EndDate only after StartingRecipientAddress.
        and not (starting and r.received == end and r.recipient.lower() <= starting)
    ]
    rows.sort(key=lambda r: r.recipient.lower())
    rows.sort(key=lambda r: r.received, reverse=True)  # newest first, recipients A-Z
    return [_trace_json(r) for r in rows[:size]]
