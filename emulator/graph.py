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
from .state import (
    METHOD_LABELS,
    PASSWORD_METHOD_ID,
    AppRecord,
    AuditRecord,
    AuthMethodRecord,
    SignInRecord,
    TenantState,
    UserRecord,
    audit_grant,
    audit_security_info,
    initiated_by_app,
    record_registration,
    utcnow,
)
from .tokens import GRAPH_RESOURCE, TokenRejected
from .wire import (
    ODATA_JSON,
    Call,
    Request,
    Response,
    graph_date,
    json_response,
    parse_datetime,
)

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

# Eviction endpoints; permissions as Microsoft documents them (docs/eviction-evidence.md).
READ_METHODS = {"UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All"}
WRITE_METHODS = {"UserAuthenticationMethod.ReadWrite.All"}
AUDIT_LOG = {"AuditLog.Read.All"}
READ_DIRECTORY = {"Directory.Read.All", "Directory.ReadWrite.All"}
AUDIT_DENIED = (
    "Application missing Microsoft Entra ID 'Read directory data' or 'Read all audit log data' "
    "permission."
)
READ_GRANTS = {
    "DelegatedPermissionGrant.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
WRITE_GRANTS = {"DelegatedPermissionGrant.ReadWrite.All", "Directory.ReadWrite.All"}
# accountEnabled: User.EnableDisableAccount.All with a user-read permission, or a full write one.
ENABLE_DISABLE = "User.EnableDisableAccount.All"
WRITE_USERS = {"User.ReadWrite.All", "Directory.ReadWrite.All"}
# Roles a User Administrator may block (Entra "Who can perform sensitive actions"); any other
# admin role on the target needs Privileged Authentication Administrator or Global Administrator.
USER_ADMIN_MANAGEABLE = {
    ROLE_TEMPLATES["User Administrator"],
    ROLE_TEMPLATES["Helpdesk Administrator"],
}
NON_PREMIUM = (
    "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    "Neither tenant is B2C or tenant doesn't have premium license",
)
DEFAULT_METHOD_TEXT = (
    "Cannot delete default method with other methods configured. "
    "Please change default method before deletion."
)
METHOD_SEGMENTS = {
    "passwordMethods": "password",
    "phoneMethods": "phone",
    "emailMethods": "email",
    "microsoftAuthenticatorMethods": "microsoftAuthenticator",
    "fido2Methods": "fido2",
    "softwareOathMethods": "softwareOath",
    "temporaryAccessPassMethods": "temporaryAccessPass",
    "windowsHelloForBusinessMethods": "windowsHelloForBusiness",
    "platformCredentialMethods": "platformCredential",
    "externalAuthenticationMethods": "external",
}
MAX_LOG_PAGE = 1000

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
    core: Core,
    req: Request,
    call: Call,
    needs: set[str],
    body: Callable[[Principal], Response],
    *,
    also: set[str] | None = None,
    denied_message: str | None = None,
) -> Handler:
    """Authenticate, check one of the application permissions ``needs`` (and one of ``also``
    when given), then run under the lock."""

    def run() -> Response:
        principal = _authenticate(core, req, call)
        if isinstance(principal, Response):
            return principal
        if not principal.roles & needs or (also is not None and not principal.roles & also):
            if denied_message:
                return error(403, "Authorization_RequestDenied", denied_message, call)
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
            call.write = True
            if _patches_only_account_enabled(req):
                call.endpoint = "graph.set_account_enabled"
                call.changed_fields = ("accountEnabled",)
                return _set_account_enabled(core, req, call, key)
            call.endpoint = "graph.update_user"
            return _update_user(core, req, call, key)
        if n == 4 and m == "GET" and seg[2:] == ["authentication", "methods"]:
            call.endpoint = "graph.auth_methods"
            return _guarded(
                core, req, call, READ_METHODS, lambda p: _list_methods(req, call, p, key)
            )
        if m == "DELETE" and n in (5, 6) and seg[2] == "authentication":
            if n == 6 and seg[5] != "$ref":
                return _no_resource(req, call)
            if seg[3] == "methods":
                return _no_resource(req, call)
            call.endpoint = "graph.delete_auth_method"
            call.write = True
            call.changed_fields = (f"authentication.{seg[3]}",)
            segment, method_id, ref = seg[3], seg[4], n == 6
            return _guarded(
                core,
                req,
                call,
                WRITE_METHODS,
                lambda p: _delete_method(req, call, p, key, segment, method_id, ref),
            )
        if n == 3 and m == "GET" and seg[2] == "oauth2PermissionGrants":
            call.endpoint = "graph.oauth2_grants"
            return _guarded(core, req, call, READ_GRANTS, lambda p: _list_grants(req, call, p, key))
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
    if seg[0] == "oauth2PermissionGrants" and n == 2 and m == "DELETE":
        call.endpoint = "graph.delete_oauth2_grant"
        call.write = True
        call.changed_fields = ("oauth2PermissionGrants",)
        gid = seg[1]
        return _guarded(core, req, call, WRITE_GRANTS, lambda p: _delete_grant(call, p, gid))
    if seg[0] == "auditLogs" and n == 2 and m == "GET" and seg[1] in ("directoryAudits", "signIns"):
        # Both audit logs need the same grant and fail the same way when it is missing.
        audits = seg[1] == "directoryAudits"
        call.endpoint = "graph.directory_audits" if audits else "graph.sign_ins"
        read = _directory_audits if audits else _sign_ins
        return _guarded(
            core,
            req,
            call,
            AUDIT_LOG,
            lambda p: read(req, call, p),
            also=READ_DIRECTORY,
            denied_message=AUDIT_DENIED,
        )
    if seg[0] == "servicePrincipals" and n == 2 and m == "GET":
        call.endpoint = "graph.service_principal"
        object_id = seg[1]
        return _guarded(
            core, req, call, READ_SP, lambda p: _service_principal_by_id(req, call, p, object_id)
        )
    sp = re.fullmatch(r"servicePrincipals\(appId='([^']*)'\)", seg[0])
    if sp:
        app_id = sp.group(1)
        call.endpoint = "graph.service_principal"
        # The app itself, or its directory roles (.../memberOf/microsoft.graph.directoryRole).
        roles = seg[1:] == ["memberOf", "microsoft.graph.directoryRole"]
        if m == "GET" and (n == 1 or roles):
            return _guarded(
                core,
                req,
                call,
                READ_SP,
                lambda p: _service_principal(req, call, p, app_id, roles=roles),
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
    record_registration(
        p.tenant,
        user,
        AuthMethodRecord(id=user.tap_id or "", kind="temporaryAccessPass"),
        utcnow(),
        by_admin=True,
        app=p.app,
    )
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


# ---- eviction: sign-in state ------------------------------------------------------------------


def _patches_only_account_enabled(req: Request) -> bool:
    try:
        body = req.json()
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == {"accountEnabled"}


def _set_account_enabled(core: Core, req: Request, call: Call, key: str) -> Handler:
    """``PATCH /users/{id} {"accountEnabled": ...}``: permission, user, sensitive-action rule."""

    def run() -> Response:
        principal = _authenticate(core, req, call)
        if isinstance(principal, Response):
            return principal
        roles = principal.roles
        if not (roles & WRITE_USERS or (ENABLE_DISABLE in roles and roles & READ_USERS)):
            return _denied(call)
        value = req.json()["accountEnabled"]
        if not isinstance(value, bool):
            return _bad(call, "Invalid value for property 'accountEnabled'.", "BadRequest")
        with core.state.lock:
            user = principal.tenant.user(key)
            if user is None:
                return _not_found(call, key)
            held = set(user.directory_roles)
            if held:
                needed = RESET_ROLES if held <= USER_ADMIN_MANAGEABLE else PRIVILEGED_RESET_ROLES
                if not principal.wids & needed:
                    return _denied(call)
            if user.synced:
                return _bad(
                    call,
                    "Unable to update the specified properties for on-premises mastered "
                    "Directory Sync objects or objects currently undergoing migration.",
                )
            user.enabled = value
        return Response(204, b"", {})

    return run


# ---- eviction: authentication methods -------------------------------------------------------


def _no_resource(req: Request, call: Call) -> Handler:
    """Graph has no generic DELETE .../authentication/methods/{id} [UNCONFIRMED status]."""
    call.endpoint = "graph.other"
    return lambda: _bad(
        call,
        f"No HTTP resource was found that matches the request URI '{req.url}'.",
        "BadRequest",
    )


def _method_json(user: UserRecord, m: AuthMethodRecord) -> dict[str, Any]:
    odata = f"#microsoft.graph.{m.kind}AuthenticationMethod"
    created = _iso_z(m.created)
    if m.kind == "phone":
        return {
            "@odata.type": odata,
            "id": m.id,
            "phoneNumber": m.phone_number,
            "phoneType": m.phone_type,
            "smsSignInState": "notEnabled",
        }
    if m.kind == "email":
        return {"@odata.type": odata, "id": m.id, "emailAddress": m.email_address}
    if m.kind == "softwareOath":
        return {"@odata.type": odata, "id": m.id, "secretKey": None}
    if m.kind == "microsoftAuthenticator":
        return {
            "@odata.type": odata,
            "id": m.id,
            "displayName": m.display_name,
            "deviceTag": "SoftwareTokenActivated",
            "phoneAppVersion": "6.8.7",
            # null unless registered for passwordless phone sign-in (learn.microsoft.com)
            "createdDateTime": created if m.passwordless else None,
        }
    body: dict[str, Any] = {
        "@odata.type": odata,
        "id": m.id,
        "displayName": m.display_name,
        "createdDateTime": created,
    }
    if m.kind == "fido2":
        body.update({"aaGuid": None, "model": m.display_name, "attestationLevel": "attested"})
    elif m.kind in ("windowsHelloForBusiness", "platformCredential"):
        body["keyStrength"] = "normal"
    return body


def _list_methods(req: Request, call: Call, p: Principal, key: str) -> Response:
    user = p.tenant.user(key)
    if user is None:
        return _not_found(call, key)
    value: list[dict[str, Any]] = [
        {
            "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
            "id": PASSWORD_METHOD_ID,
            "password": None,
            "createdDateTime": None,  # "currently not populated"
        }
    ]
    value.extend(_method_json(user, m) for m in user.auth_methods)
    if user.tap_id:
        tap = _tap_json(user)
        value.append(
            {"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod", **tap}
        )
    body = {
        "@odata.context": _context(req, f"users('{user.id}')/authentication/methods"),
        "value": value,
    }
    return json_response(200, body, None, ODATA_JSON)


def _delete_method(
    req: Request, call: Call, p: Principal, key: str, segment: str, method_id: str, ref: bool
) -> Response:
    kind = METHOD_SEGMENTS.get(segment)
    if kind is None:
        return _bad(call, f"Resource not found for the segment '{segment}'.", "BadRequest")
    if kind == "password":
        # The password method has list/get/resetPassword only [UNCONFIRMED status].
        return error(
            405,
            "Request_BadRequest",
            "The requested operation is not supported on the password authentication method.",
            call,
        )
    if (kind == "external") != ref:
        return _no_resource(req, call)()
    user = p.tenant.user(key)
    if user is None:
        return _not_found(call, key)
    label = METHOD_LABELS.get(kind, kind)
    if kind == "temporaryAccessPass":
        if user.tap_id != method_id:
            return _not_found(call, method_id)
        user.tap_id = None
        user.tap_created = None
    else:
        method = next((m for m in user.auth_methods if m.id == method_id and m.kind == kind), None)
        if method is None:
            return _not_found(call, method_id)
        others = [m for m in user.auth_methods if m is not method] + ([None] if user.tap_id else [])
        if method.is_default and others:
            return error(400, "badRequest", DEFAULT_METHOD_TEXT, call)
        user.auth_methods.remove(method)
    audit_security_info(
        p.tenant,
        user,
        "Admin deleted security info",
        utcnow(),
        operation_type="Delete",
        result_reason=f"Admin deleted {label} for user",
        initiated_by=initiated_by_app(p.app),
    )
    return Response(204, b"", {})


# ---- eviction: OAuth grants ------------------------------------------------------------------


def _list_grants(req: Request, call: Call, p: Principal, key: str) -> Response:
    user = p.tenant.user(key)
    if user is None:
        return _not_found(call, key)
    value = [
        {
            "clientId": g.client_id,
            "consentType": "Principal",
            "id": g.id,
            "principalId": g.principal_id,
            "resourceId": g.resource_id,
            # Graph pads the scope list with a leading space (see its documented example).
            "scope": " " + " ".join(g.scopes),
        }
        for g in p.tenant.grants.values()
        if g.principal_id == user.id
    ]
    body = {"@odata.context": _context(req, "oauth2PermissionGrants"), "value": value}
    return json_response(200, body, None, ODATA_JSON)


def _delete_grant(call: Call, p: Principal, grant_id: str) -> Response:
    grant = p.tenant.grants.get(grant_id)
    if grant is None:
        return _not_found(call, grant_id)
    del p.tenant.grants[grant_id]
    client = p.tenant.service_principal(grant.client_id)
    audit_grant(
        p.tenant,
        "Remove delegated permission grant",
        utcnow(),
        operation_type="Unassign",
        initiated_by=initiated_by_app(p.app),
        client=(grant.client_id, client.display_name if client else None),
    )
    return Response(204, b"", {})


def _service_principal_by_id(req: Request, call: Call, p: Principal, object_id: str) -> Response:
    sp = p.tenant.service_principal(object_id)
    if sp is None:
        return _not_found(call, object_id)
    full = {
        "id": sp.id,
        "appId": sp.app_id,
        "displayName": sp.display_name,
        "appDisplayName": sp.display_name,
        "publisherName": sp.publisher,
        "accountEnabled": True,
        "servicePrincipalType": "Application",
    }
    wanted = [f.strip() for f in req.query.get("$select", "").split(",") if f.strip()]
    if wanted:
        full = {k: v for k, v in full.items() if k in wanted or k == "id"}
    body = {"@odata.context": _context(req, "servicePrincipals/$entity"), **full}
    return json_response(200, body, None, ODATA_JSON)


# ---- eviction: audit and sign-in logs ---------------------------------------------------------

_DT = r"'?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?(?:Z|[+-]\d{2}:\d{2})?)'?"
_STR = r"'((?:[^']|'')*)'"
_AND = re.compile(r"\s+and\s+", re.I)
# (pattern, field); the value is group 1 (group 2 for comparisons)
_AUDIT_CLAUSES = [
    (re.compile(rf"activityDateTime\s+(ge|le|eq)\s+{_DT}$", re.I), "time"),
    (re.compile(rf"activityDisplayName\s+eq\s+{_STR}$", re.I), "activity"),
    (
        re.compile(rf"startswith\(\s*activityDisplayName\s*,\s*{_STR}\s*\)$", re.I),
        "activity_prefix",
    ),
    (re.compile(rf"loggedByService\s+eq\s+{_STR}$", re.I), "service"),
    (re.compile(rf"initiatedBy/user/id\s+eq\s+{_STR}$", re.I), "user_id"),
    (re.compile(rf"initiatedBy/app/appId\s+eq\s+{_STR}$", re.I), "app_id"),
    (re.compile(rf"targetResources/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+{_STR}\s*\)$", re.I), "target"),
]
_SIGN_IN_CLAUSES = [
    (re.compile(rf"createdDateTime\s+(ge|le|eq)\s+{_DT}$", re.I), "time"),
    (re.compile(rf"userId\s+eq\s+{_STR}$", re.I), "user_id"),
    (re.compile(r"status/errorCode\s+eq\s+(-?\d+)$", re.I), "error_code"),
    (re.compile(rf"location/countryOrRegion\s+eq\s+{_STR}$", re.I), "country"),
]


Clause = tuple[str, str, Any]


def _log_filter(raw: str | None, patterns: list[tuple[re.Pattern[str], str]]) -> list[Clause] | str:
    """``and``-joined clauses as (field, operator, value), or an error message."""
    if not raw:
        return []
    out: list[Clause] = []
    for part in _AND.split(raw.strip()):
        for pattern, name in patterns:
            m = pattern.match(part.strip())
            if not m:
                continue
            if name == "time":
                when = parse_datetime(m.group(2))
                if when is None:
                    return f"Invalid DateTimeOffset literal in '{part}'."
                out.append((name, m.group(1).lower(), when))
            elif name == "target":
                out.append((name, "eq", m.group(2).replace("''", "'")))
            elif name == "error_code":
                out.append((name, "eq", int(m.group(1))))
            else:
                out.append((name, "eq", m.group(1).replace("''", "'")))
            break
        else:
            return f"Invalid filter clause: '{part}' is not supported."
    return out


def _time_ok(when: datetime, op: str, value: datetime) -> bool:
    return {"ge": when >= value, "le": when <= value, "eq": when == value}[op]


def _audit_matches(a: AuditRecord, clauses: list[Clause]) -> bool:
    user = a.initiated_by.get("user") or {}
    app = a.initiated_by.get("app") or {}
    for field, op, value in clauses:
        if field == "time" and not _time_ok(a.when, op, value):
            return False
        if field == "activity" and a.activity != value:
            return False
        if field == "activity_prefix" and not a.activity.startswith(value):
            return False
        if field == "service" and a.service != value:
            return False
        if field == "user_id" and str(user.get("id", "")).lower() != value.lower():
            return False
        if field == "app_id" and str(app.get("appId", "")).lower() != value.lower():
            return False
        if field == "target" and not any(
            str(t.get("id", "")).lower() == value.lower() for t in a.targets
        ):
            return False
    return True


def _audit_json(a: AuditRecord) -> dict[str, Any]:
    return {
        "id": a.id,
        "category": a.category,
        "correlationId": a.id.rsplit("_", 1)[-1],
        "result": "success",
        "resultReason": a.result_reason,
        "activityDisplayName": a.activity,
        "activityDateTime": _iso_z(a.when),
        "loggedByService": a.service,
        "operationType": a.operation_type,
        "initiatedBy": a.initiated_by,
        "targetResources": a.targets,
        "additionalDetails": [{"key": k, "value": v} for k, v in a.details],
    }


def _log_page(req: Request, call: Call, kind: str, items: list[dict[str, Any]]) -> Response:
    top = MAX_LOG_PAGE
    if "$top" in req.query:
        try:
            top = int(req.query["$top"])
        except ValueError:
            top = 0
        if not 1 <= top <= MAX_LOG_PAGE:
            return _bad(
                call, f"Invalid $top value: must be 1..{MAX_LOG_PAGE}.", "Request_UnsupportedQuery"
            )
    offset = _decode_skiptoken(req.query.get("$skiptoken"))
    if offset is None:
        return _bad(call, "Specified skip token is invalid.", "Request_BadRequest")
    body: dict[str, Any] = {
        "@odata.context": _context(req, f"auditLogs/{kind}"),
        "value": items[offset : offset + top],
    }
    if offset + top < len(items):
        params = {k: v for k, v in req.query.items() if k != "$skiptoken"}
        params["$skiptoken"] = _encode_skiptoken(offset + top)
        body["@odata.nextLink"] = (
            f"{req.base_url}/graph/v1.0/auditLogs/{kind}?"
            f"{urlencode(params, quote_via=quote, safe='$,()/:')}"
        )
    return json_response(200, body, None, ODATA_JSON)


def _directory_audits(req: Request, call: Call, p: Principal) -> Response:
    raw = req.query.get("$filter")
    if raw and re.search(r"\bcategory\s+eq\b", raw, re.I):
        return _bad(
            call, "Invalid filter clause: category is not filterable.", "Request_UnsupportedQuery"
        )
    clauses = _log_filter(raw, _AUDIT_CLAUSES)
    if isinstance(clauses, str):
        return _bad(call, clauses, "Request_UnsupportedQuery")
    since = utcnow() - p.tenant.log_retention
    events = [a for a in p.tenant.audits if a.when >= since and _audit_matches(a, clauses)]
    events.sort(key=lambda a: a.when, reverse=True)
    return _log_page(req, call, "directoryAudits", [_audit_json(a) for a in events])


def _sign_in_json(user: UserRecord, s: SignInRecord) -> dict[str, Any]:
    return {
        "id": s.id,
        "createdDateTime": _iso_z(s.when),
        "userDisplayName": user.display_name,
        "userPrincipalName": user.upn,
        "userId": user.id,
        "appId": None,
        "appDisplayName": s.app,
        "ipAddress": s.ip,
        "clientAppUsed": s.client_app,
        "correlationId": s.id,
        "conditionalAccessStatus": "notApplied",
        "isInteractive": True,
        "resourceDisplayName": "Office 365 Exchange Online",
        "status": {
            "errorCode": s.error_code,
            "failureReason": s.failure_reason,
            "additionalDetails": None,
        },
        "location": {
            "city": s.city,
            "state": None,
            "countryOrRegion": s.country,
            "geoCoordinates": None,
        },
    }


def _sign_in_matches(user: UserRecord, s: SignInRecord, clauses: list[Clause]) -> bool:
    for field, op, value in clauses:
        if field == "time":
            ok = _time_ok(s.when, op, value)
        elif field == "user_id":
            ok = user.id.lower() == str(value).lower()
        elif field == "error_code":
            ok = s.error_code == value
        else:  # country
            ok = s.country.lower() == str(value).lower()
        if not ok:
            return False
    return True


def _sign_ins(req: Request, call: Call, p: Principal) -> Response:
    if not p.tenant.settings.entra_id_p1:
        return error(403, NON_PREMIUM[0], NON_PREMIUM[1], call)
    clauses = _log_filter(req.query.get("$filter"), _SIGN_IN_CLAUSES)
    if isinstance(clauses, str):
        return _bad(call, clauses, "Request_UnsupportedQuery")
    since = utcnow() - p.tenant.log_retention
    rows: list[tuple[UserRecord, SignInRecord]] = []
    for user in p.tenant.users.values():
        for s in user.sign_ins:
            if s.when < since:
                continue
            keep = _sign_in_matches(user, s, clauses)
            if keep:
                rows.append((user, s))
    rows.sort(key=lambda r: r[1].when, reverse=True)  # newest first, as Graph
    return _log_page(req, call, "signIns", [_sign_in_json(u, s) for u, s in rows])
