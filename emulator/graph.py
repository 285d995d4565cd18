"""Microsoft Graph v1.0 subset: users, password reset, sessions, TAP, message rules, roles."""

from __future__ import annotations

import base64
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from .seed import ROLE_NAMES, ROLE_TEMPLATES
from .state import AppRecord, TenantState, UserRecord, utcnow
from .tokens import GRAPH_RESOURCE, TokenRejected
from .wire import ODATA_JSON, Call, Request, Response, graph_date, json_response

if TYPE_CHECKING:
    from .core import Core

Handler = Callable[[], Response]

WWW_AUTHENTICATE = {
    "WWW-Authenticate": (
        'Bearer realm="", '
        'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
        'client_id="00000003-0000-0000-c000-000000000000"'
    )
}

GA = ROLE_TEMPLATES["Global Administrator"]
UA = ROLE_TEMPLATES["User Administrator"]
PAA = ROLE_TEMPLATES["Privileged Authentication Administrator"]

READ_USERS = {
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
WRITE_PASSWORD = {"User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All"}
WRITE_ENABLED = {"User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}
REVOKE = {"User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}
TAP = {"UserAuthenticationMethod.ReadWrite.All"}
READ_TAP = {"UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All"}
MAIL_SETTINGS = {"MailboxSettings.Read", "MailboxSettings.ReadWrite"}
READ_ROLES = {"RoleManagement.Read.Directory", "Directory.Read.All"}
READ_SP = {"RoleManagement.Read.Directory", "Directory.Read.All", "Application.Read.All"}
RESET_ROLES = {UA, PAA, GA}
PRIVILEGED_RESET_ROLES = {PAA, GA}

# Graph's documented password symbols (and space); ASCII only.
PASSWORD_SYMBOLS = set("@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> ")

USER_PROPERTIES = [
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "accountEnabled",
    "onPremisesSyncEnabled",
    "proxyAddresses",
    "lastPasswordChangeDateTime",
    "signInSessionsValidFromDateTime",
    "createdDateTime",
    "mailNickname",
    "userType",
    "businessPhones",
    "givenName",
    "surname",
    "jobTitle",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
]
DEFAULT_SELECT = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
]
ROLE_DESCRIPTIONS = {
    GA: "Can manage all aspects of Microsoft Entra ID and Microsoft services.",
    UA: "Can manage all aspects of users and groups, including resetting passwords.",
    PAA: "Can view, set and reset authentication method information for any user.",
}


def error(
    status: int,
    code: str,
    message: str,
    call: Call,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_date(),
                "request-id": call.request_id,
                "client-request-id": call.client_request_id or call.request_id,
            },
        }
    }
    return json_response(status, body, headers, ODATA_JSON)


def _not_found(call: Call, key: str) -> Response:
    return error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried "
        "reference-property objects are not present.",
        call,
    )


def _denied(call: Call) -> Response:
    return error(
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
        call,
    )


def _bad(call: Call, message: str, code: str = "Request_BadRequest") -> Response:
    return error(400, code, message, call)


@dataclass
class Principal:
    tenant: TenantState
    app: AppRecord | None
    roles: set[str]
    wids: set[str]


_AUTH_MESSAGES = {
    "missing": "Access token is empty.",
    "malformed": "Access token validation failure.",
    "expired": "Access token has expired or is not yet valid.",
    "audience": "Access token validation failure. Invalid audience.",
}


def _authenticate(core: Core, req: Request, call: Call) -> Principal | Response:
    try:
        claims = core.tokens.validate(req.header("Authorization"), GRAPH_RESOURCE)
    except TokenRejected as exc:
        return error(
            401, "InvalidAuthenticationToken", _AUTH_MESSAGES[exc.reason], call, WWW_AUTHENTICATE
        )
    ts = core.state.find_tenant(str(claims["tid"]))
    if ts is None:
        return error(
            401, "InvalidAuthenticationToken", _AUTH_MESSAGES["malformed"], call, WWW_AUTHENTICATE
        )
    return Principal(
        tenant=ts,
        app=ts.app(str(claims["appid"])),
        roles={str(r) for r in claims.get("roles", [])},
        wids={str(w) for w in claims.get("wids", [])},
    )


def _guarded(
    core: Core, req: Request, call: Call, needs: set[str], body: Callable[[Principal], Response]
) -> Handler:
    """Authenticate, check one of the application permissions ``needs``, then run under the lock."""

    def run() -> Response:
        principal = _authenticate(core, req, call)
        if isinstance(principal, Response):
            return principal
        if not principal.roles & needs:
            return _denied(call)
        with core.state.lock:
            return body(principal)

    return run


def route(core: Core, req: Request, call: Call) -> Handler:
    rest = req.path[len("/graph/v1.0/") :]
    seg = [unquote(s) for s in rest.split("/")]
    m, n = req.method, len(seg)
    if seg[0] == "users":
        if n == 1 and m == "GET":
            call.endpoint = "graph.list_users"
            return _guarded(core, req, call, READ_USERS, lambda p: _list_users(req, call, p))
        key = seg[1] if n > 1 else ""
        if n == 2 and m == "GET":
            call.endpoint = "graph.get_user"
            return _guarded(core, req, call, READ_USERS, lambda p: _get_user(req, call, p, key))
        if n == 2 and m == "PATCH":
            call.endpoint = "graph.update_user"
            call.write = True
            return _update_user(core, req, call, key)
        if n == 3 and m == "POST" and seg[2] == "revokeSignInSessions":
            call.endpoint = "graph.revoke_sessions"
            call.write = True
            call.changed_fields = ("signInSessionsValidFromDateTime",)
            return _guarded(core, req, call, REVOKE, lambda p: _revoke(req, call, p, key))
        if n == 4 and m == "POST" and seg[2:] == ["authentication", "temporaryAccessPassMethods"]:
            call.endpoint = "graph.create_tap"
            call.write = True
            call.changed_fields = ("temporaryAccessPassMethods",)
            return _guarded(core, req, call, TAP, lambda p: _create_tap(req, call, p, key))
        if n == 4 and m == "GET" and seg[2:] == ["authentication", "temporaryAccessPassMethods"]:
            call.endpoint = "graph.list_taps"
            return _guarded(core, req, call, READ_TAP, lambda p: _list_taps(req, call, p, key))
        if (
            n == 5
            and m == "GET"
            and [s.lower() for s in seg[2:]] == ["mailfolders", "inbox", "messagerules"]
        ):
            call.endpoint = "graph.message_rules"
            return _guarded(
                core, req, call, MAIL_SETTINGS, lambda p: _message_rules(req, call, p, key)
            )
        if (
            n == 4
            and m == "GET"
            and seg[2] == "memberOf"
            and seg[3] == "microsoft.graph.directoryRole"
        ):
            call.endpoint = "graph.member_of"
            return _guarded(core, req, call, READ_ROLES, lambda p: _user_roles(req, call, p, key))
    sp = re.fullmatch(r"servicePrincipals\(appId='([^']*)'\)", seg[0])
    if sp:
        app_id = sp.group(1)
        call.endpoint = "graph.service_principal"
        if n == 1 and m == "GET":
            return _guarded(
                core,
                req,
                call,
                READ_SP,
                lambda p: _service_principal(req, call, p, app_id, roles=False),
            )
        if (
            n == 3
            and m == "GET"
            and seg[1] == "memberOf"
            and seg[2] == "microsoft.graph.directoryRole"
        ):
            return _guarded(
                core,
                req,
                call,
                READ_SP,
                lambda p: _service_principal(req, call, p, app_id, roles=True),
            )
    call.endpoint = "graph.other"
    return lambda: _bad(call, f"Resource not found for the segment '{seg[0]}'.", "BadRequest")


# ---- users -----------------------------------------------------------------------------


def _iso_z(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _user_json(user: UserRecord) -> dict[str, Any]:
    first, _, last = user.display_name.partition(" ")
    return {
        "id": user.id,
        "userPrincipalName": user.upn,
        "displayName": user.display_name,
        "mail": user.mail,
        "accountEnabled": user.enabled,
        "onPremisesSyncEnabled": True if user.synced else None,
        "proxyAddresses": list(user.proxy_addresses),
        "lastPasswordChangeDateTime": _iso_z(user.last_password_change),
        "signInSessionsValidFromDateTime": _iso_z(user.sign_in_sessions_valid_from or user.created),
        "createdDateTime": _iso_z(user.created),
        "mailNickname": user.alias,
        "userType": "Member",
        "businessPhones": [],
        "givenName": first or None,
        "surname": last or None,
        "jobTitle": None,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
    }


def _select(req: Request) -> list[str] | str:
    """The $select list (canonical names), or an error message."""
    raw = req.query.get("$select")
    if not raw:
        return list(DEFAULT_SELECT)
    canon = {p.lower(): p for p in USER_PROPERTIES}
    out: list[str] = []
    for item in raw.split(","):
        name = item.strip()
        if not name:
            continue
        if name.lower() not in canon:
            return f"Could not find a property named '{name}' on type 'microsoft.graph.user'."
        out.append(canon[name.lower()])
    return out


def _project(user: UserRecord, fields: list[str]) -> dict[str, Any]:
    full = _user_json(user)
    return {f: full[f] for f in fields}


def _context(req: Request, tail: str) -> str:
    return f"{req.base_url}/graph/v1.0/$metadata#{tail}"


def _get_user(req: Request, call: Call, p: Principal, key: str) -> Response:
    fields = _select(req)
    if isinstance(fields, str):
        return _bad(call, fields)
    user = p.tenant.user(key)
    if user is None:
        return _not_found(call, key)
    sel = f"({','.join(fields)})" if "$select" in req.query else ""
    body = {"@odata.context": _context(req, f"users{sel}/$entity"), **_project(user, fields)}
    return json_response(200, body, None, ODATA_JSON)


_CLAUSES = [
    (
        re.compile(r"proxyAddresses/any\(\s*(\w+)\s*:\s*\1\s+eq\s+'((?:[^']|'')*)'\s*\)", re.I),
        "proxy",
    ),
    (re.compile(r"(mail)\s+eq\s+'((?:[^']|'')*)'", re.I), "mail"),
    (re.compile(r"(userPrincipalName)\s+eq\s+'((?:[^']|'')*)'", re.I), "upn"),
    (re.compile(r"(id)\s+eq\s+'((?:[^']|'')*)'", re.I), "id"),
]
_OR = re.compile(r"\s+or\s+", re.I)


def _parse_filter(text: str) -> list[tuple[str, str]] | None:
    """Clauses joined by ``or``; None when unsupported."""
    pos, out = 0, []
    text = text.strip()
    while True:
        for pattern, kind in _CLAUSES:
            m = pattern.match(text, pos)
            if m:
                out.append((kind, m.group(2).replace("''", "'").lower()))
                pos = m.end()
                break
        else:
            return None
        if pos == len(text):
            return out
        sep = _OR.match(text, pos)
        if not sep:
            return None
        pos = sep.end()


def _user_matches(user: UserRecord, clauses: list[tuple[str, str]]) -> bool:
    for kind, value in clauses:
        if kind == "proxy" and value in (a.lower() for a in user.proxy_addresses):
            return True
        if kind == "mail" and user.mail and user.mail.lower() == value:
            return True
        if kind == "upn" and user.upn.lower() == value:
            return True
        if kind == "id" and user.id.lower() == value:
            return True
    return False


def _list_users(req: Request, call: Call, p: Principal) -> Response:
    fields = _select(req)
    if isinstance(fields, str):
        return _bad(call, fields)
    users = list(p.tenant.users.values())
    raw_filter = req.query.get("$filter")
    if raw_filter:
        clauses = _parse_filter(raw_filter)
        if clauses is None:
            return _bad(
                call,
                f"Unsupported or invalid query filter clause specified for property '{raw_filter}' "
                "of resource 'User'.",
                "Request_UnsupportedQuery",
            )
        users = [u for u in users if _user_matches(u, clauses)]
    top = 100
    if "$top" in req.query:
        try:
            top = int(req.query["$top"])
        except ValueError:
            top = 0
        if not 1 <= top <= 999:
            return _bad(
                call,
                f"Invalid page size specified: '{req.query['$top']}'. Must be "
                "between 1 and 999 inclusive.",
                "Request_UnsupportedQuery",
            )
    offset = _decode_skiptoken(req.query.get("$skiptoken"))
    if offset is None:
        return _bad(call, "Specified skip token is invalid.", "Request_BadRequest")
    page = users[offset : offset + top]
    sel = f"({','.join(fields)})" if "$select" in req.query else ""
    body: dict[str, Any] = {
        "@odata.context": _context(req, f"users{sel}"),
        "value": [_project(u, fields) for u in page],
    }
    if offset + top < len(users):
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        params["$skiptoken"] = _encode_skiptoken(offset + top)
        body["@odata.nextLink"] = (
            f"{req.base_url}/graph/v1.0/users?{urlencode(params, quote_via=quote, safe='$,()/:')}"
        )
    return json_response(200, body, None, ODATA_JSON)


def _encode_skiptoken(offset: int) -> str:
    return "RFNwdAIA" + base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _decode_skiptoken(token: str | None) -> int | None:
    if not token:
        return 0
    if not token.startswith("RFNwdAIA"):
        return None
    raw = token[8:]
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        return int(text.split(":", 1)[1])
    except (ValueError, IndexError):
        return None


# ---- password, sessions, TAP ------------------------------------------------------------


def password_complexity_ok(password: str) -> bool:
    if not 8 <= len(password) <= 256:
        return False
    classes = [False, False, False, False]
    for ch in password:
        if ch in string.ascii_lowercase:
            classes[0] = True
        elif ch in string.ascii_uppercase:
            classes[1] = True
        elif ch in string.digits:
            classes[2] = True
        elif ch in PASSWORD_SYMBOLS:
            classes[3] = True
        else:
            return False  # Unicode or a character outside the allowed set
    return sum(classes) >= 3


def _update_user(core: Core, req: Request, call: Call, key: str) -> Handler:
    def run() -> Response:
        principal = _authenticate(core, req, call)
        if isinstance(principal, Response):
            return principal
        try:
            body = req.json()
        except ValueError:
            return _bad(call, "Invalid JSON payload.", "BadRequest")
        if not isinstance(body, dict) or not body:
            return _bad(call, "Empty Payload. JSON content expected.", "BadRequest")
        names: list[str] = []
        for k, v in body.items():
            if k == "passwordProfile" and isinstance(v, dict):
                names.extend(f"passwordProfile.{sub}" for sub in v)
            else:
                names.append(k)
        call.changed_fields = tuple(names)  # names only: the body may hold a password
        for k in body:
            if k not in ("passwordProfile", "accountEnabled"):
                return _bad(call, f"Property '{k}' is read-only or not supported by the emulator.")
        needs: set[str] = set()
        if "passwordProfile" in body:
            needs = WRITE_PASSWORD
        if "accountEnabled" in body and not principal.roles & WRITE_ENABLED:
            return _denied(call)
        if needs and not principal.roles & needs:
            return _denied(call)
        with core.state.lock:
            user = principal.tenant.user(key)
            if user is None:
                return _not_found(call, key)
            if not principal.wids & RESET_ROLES:
                return _denied(call)
            if user.directory_roles and not principal.wids & PRIVILEGED_RESET_ROLES:
                return _denied(call)
            if user.synced:
                return _bad(
                    call,
                    "Unable to update the specified properties for on-premises "
                    "mastered Directory Sync "
                    "objects or objects currently undergoing migration.",
                )
            profile = body.get("passwordProfile")
            if profile is not None:
                if not isinstance(profile, dict):
                    return _bad(call, "Invalid value for property 'passwordProfile'.", "BadRequest")
                password = profile.get("password")
                if not isinstance(password, str) or not password_complexity_ok(password):
                    return _bad(
                        call,
                        "The specified password does not comply with password "
                        "complexity requirements. "
                        "Please provide a different password.",
                    )
                force = profile.get("forceChangePasswordNextSignIn", False)
                with_mfa = profile.get("forceChangePasswordNextSignInWithMfa", False)
                user.set_password(password, force_change=bool(force), with_mfa=bool(with_mfa))
            if "accountEnabled" in body:
                user.enabled = bool(body["accountEnabled"])
        return Response(204, b"", {})

    return run


def _revoke(req: Request, call: Call, p: Principal, key: str) -> Response:
    user = p.tenant.user(key)
    if user is None:
        return _not_found(call, key)
    user.sign_in_sessions_valid_from = utcnow()
    user.session_revocations += 1
    body = {"@odata.context": _context(req, "Edm.Boolean"), "value": True}
    return json_response(200, body, None, ODATA_JSON)


_TAP_ALPHABET = string.ascii_letters + string.digits + "!#$%&*+-=?@"


def _create_tap(req: Request, call: Call, p: Principal, key: str) -> Response:
    user = p.tenant.user(key)
    if user is None:
        return _not_found(call, key)
    try:
        body = req.json() or {}
    except ValueError:
        return _bad(call, "Invalid JSON payload.", "badRequest")
    if not isinstance(body, dict):
        return _bad(call, "Invalid JSON payload.", "badRequest")
    if not p.tenant.settings.tap_enabled:
        return _bad(
            call,
            "Temporary Access Pass is not enabled for this user by the "
            "authentication methods policy.",
            "badRequest",
        )
    lifetime = body.get("lifetimeInMinutes", 60)
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or not 10 <= lifetime <= 43200:
        return _bad(
            call, "lifetimeInMinutes must be an integer between 10 and 43200.", "badRequest"
        )
    once = body.get("isUsableOnce", False)
    if not isinstance(once, bool):
        return _bad(call, "isUsableOnce must be a boolean.", "badRequest")
    tap = "".join(secrets.choice(_TAP_ALPHABET) for _ in range(8))
    user.set_tap(tap, lifetime=lifetime, usable_once=once)  # replaces any previous TAP
    out = {
        "@odata.context": _context(
            req, f"users('{user.id}')/authentication/temporaryAccessPassMethods/$entity"
        ),
        **_tap_json(user),
        "temporaryAccessPass": tap,
    }
    return json_response(201, out, None, ODATA_JSON)


def _tap_json(user: UserRecord) -> dict[str, Any]:
    """A TAP method as Graph lists it; the pass itself is only in the creation answer."""
    created = _iso_z(user.tap_created or utcnow())
    return {
        "id": user.tap_id,
        "temporaryAccessPass": None,
        "createdDateTime": created,
        "startDateTime": created,
        "lifetimeInMinutes": user.tap_lifetime_minutes,
        "isUsableOnce": user.tap_usable_once,
        "isUsable": True,
        "methodUsabilityReason": "EnabledByPolicy",
    }


def _list_taps(req: Request, call: Call, p: Principal, key: str) -> Response:
    user = p.tenant.user(key)
    if user is None:
        return _not_found(call, key)
    value = [_tap_json(user)] if user.tap_id else []
    out = {
        "@odata.context": _context(
            req, f"users('{user.id}')/authentication/temporaryAccessPassMethods"
        ),
        "value": value,
    }
    return json_response(200, out, None, ODATA_JSON)


# ---- rules and roles ----------------------------------------------------------------------


def _recipients(addresses: list[str]) -> list[dict[str, Any]]:
    return [{"emailAddress": {"name": a, "address": a}} for a in addresses]


def _message_rules(req: Request, call: Call, p: Principal, key: str) -> Response:
    user = p.tenant.user(key)
    if user is None:
        return _not_found(call, key)
    if not user.has_mailbox:
        return error(
            404,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            call,
        )
    value = []
    for rule in user.inbox_rules:
        if rule.hidden:  # Graph does not return hidden rules
            continue
        actions: dict[str, Any] = {"stopProcessingRules": False}
        if rule.forward_to:
            actions["forwardTo"] = _recipients(rule.forward_to)
        if rule.forward_as_attachment_to:
            actions["forwardAsAttachmentTo"] = _recipients(rule.forward_as_attachment_to)
        if rule.redirect_to:
            actions["redirectTo"] = _recipients(rule.redirect_to)
        if rule.delete_message:
            actions["delete"] = True
        if rule.move_to_folder:
            actions["moveToFolder"] = rule.move_to_folder
        value.append(
            {
                "id": base64.urlsafe_b64encode(rule.rule_id.encode()).decode(),
                "displayName": rule.name,
                "sequence": rule.priority,
                "isEnabled": rule.enabled,
                "hasError": False,
                "isReadOnly": False,
                "conditions": {},
                "actions": actions,
            }
        )
    body = {
        "@odata.context": _context(req, f"users('{user.id}')/mailFolders('inbox')/messageRules"),
        "value": value,
    }
    return json_response(200, body, None, ODATA_JSON)


def _role_json(ts: TenantState, template_id: str) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.directoryRole",
        "id": ts.role_object_id(template_id),
        "deletedDateTime": None,
        "description": ROLE_DESCRIPTIONS.get(template_id, ROLE_NAMES.get(template_id, "")),
        "displayName": ROLE_NAMES.get(template_id, template_id),
        "roleTemplateId": template_id,
    }


def _user_roles(req: Request, call: Call, p: Principal, key: str) -> Response:
    user = p.tenant.user(key)
    if user is None:
        return _not_found(call, key)
    body = {
        "@odata.context": _context(req, "directoryObjects(microsoft.graph.directoryRole)"),
        "value": [_role_json(p.tenant, r) for r in user.directory_roles],
    }
    return json_response(200, body, None, ODATA_JSON)


def _service_principal(
    req: Request, call: Call, p: Principal, app_id: str, *, roles: bool
) -> Response:
    app = p.tenant.app(app_id)
    if app is None:
        return _not_found(call, app_id)
    if roles:
        body: dict[str, Any] = {
            "@odata.context": _context(req, "directoryObjects(microsoft.graph.directoryRole)"),
            "value": [_role_json(p.tenant, w) for w in app.wids],
        }
    else:
        body = {
            "@odata.context": _context(req, "servicePrincipals/$entity"),
            "id": app.service_principal_id,
            "appId": app.client_id,
            "displayName": app.display_name,
            "accountEnabled": True,
            "servicePrincipalType": "Application",
            "appOwnerOrganizationId": p.tenant.tenant_id,
        }
    return json_response(200, body, None, ODATA_JSON)
