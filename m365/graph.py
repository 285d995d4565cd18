"""Microsoft Graph v1.0: the identity operations of the playbook, typed at the edge.

Every method validates its identifiers before any request (``InvalidIdentifierError``), calls the
API through :class:`m365.transport.Transport` and returns pydantic models from :mod:`m365.models`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import SecretStr, ValidationError

from .auth import TokenProvider
from .config import DEFAULT_GRAPH_BASE, DEFAULT_GRAPH_RESOURCE
from .errors import (
    ApiError,
    InvalidRequestError,
    LicenseRequiredError,
    NotFoundError,
    PermissionDeniedError,
)
from .identifiers import (
    is_address,
    odata_literal,
    path_segment,
    validate_guid,
    validate_opaque_id,
    validate_user_identifier,
)
from .limits import REPORTS
from .models import (
    AuditTarget,
    AuthenticationMethod,
    DirectoryAudit,
    DirectoryRole,
    OAuth2Grant,
    Receipt,
    ServicePrincipal,
    SignIn,
    TemporaryAccessPass,
    TemporaryAccessPassMethod,
    User,
)
from .transport import ApiClient, Transport, ensure_next_link
from .values import assume_utc, parse_timestamp, utc_timestamp

USER_SELECT = ",".join(
    (
        "id",
        "userPrincipalName",
        "displayName",
        "mail",
        "accountEnabled",
        "onPremisesSyncEnabled",
        "proxyAddresses",
        "lastPasswordChangeDateTime",
    )
)
TAP_MIN_MINUTES = 10
TAP_MAX_MINUTES = 43200
_MAX_PAGES = 1000

# Typed collections for the per-type DELETE (.../authentication/<segment>/{id}); learn.microsoft.com
# authenticationMethod v1.0. The password method has no DELETE; qrCodePin has no documented v1.0
# path; an external method is removed through its reference ("/$ref").
METHOD_SEGMENTS: dict[str, str] = {
    "phone": "phoneMethods",
    "email": "emailMethods",
    "microsoftAuthenticator": "microsoftAuthenticatorMethods",
    "fido2": "fido2Methods",
    "softwareOath": "softwareOathMethods",
    "temporaryAccessPass": "temporaryAccessPassMethods",
    "windowsHelloForBusiness": "windowsHelloForBusinessMethods",
    "platformCredential": "platformCredentialMethods",
    "external": "externalAuthenticationMethods",
}
_METHOD_PREFIX = "#microsoft.graph."
_METHOD_SUFFIX = "AuthenticationMethod"

SECURITY_INFO_SERVICE = "Authentication Methods"
CONSENT_ACTIVITY = "Consent to application"
SIGN_IN_PAGE_SIZE = 1000
SERVICE_PRINCIPAL_SELECT = "id,appId,displayName,appDisplayName,publisherName"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _bool(value: object, default: bool) -> bool:
    return value if isinstance(value, bool) else default


def _parse_user(data: Mapping[str, Any], operation: str) -> User:
    proxies = data.get("proxyAddresses")
    try:
        return User(
            id=data["id"],
            user_principal_name=data["userPrincipalName"],
            display_name=_str(data.get("displayName")),
            mail=_str(data.get("mail")),
            account_enabled=_bool(data.get("accountEnabled"), True),
            on_premises_sync_enabled=_bool(data.get("onPremisesSyncEnabled"), False),
            proxy_addresses=tuple(p for p in proxies if isinstance(p, str))
            if isinstance(proxies, list)
            else (),
            last_password_change=data.get("lastPasswordChangeDateTime"),
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise ApiError(
            f"{operation}: unexpected user object ({type(exc).__name__})",
            status=200,
            code="InvalidResponse",
        ) from None


def _parse_role(data: Mapping[str, Any]) -> DirectoryRole | None:
    role_id, name = data.get("id"), data.get("displayName")
    if not isinstance(role_id, str) or not isinstance(name, str):
        return None
    return DirectoryRole(
        id=role_id, display_name=name, role_template_id=_str(data.get("roleTemplateId"))
    )


def _datetime(value: object) -> datetime | None:
    """Graph's timestamps; one without a zone is UTC."""
    parsed = parse_timestamp(value)
    return None if parsed is None else assume_utc(parsed)


def method_type_of(odata_type: str) -> str:
    """``#microsoft.graph.phoneAuthenticationMethod`` -> ``phone``."""
    name = odata_type.removeprefix(_METHOD_PREFIX)
    return name.removesuffix(_METHOD_SUFFIX) or name


def _parse_method(data: Mapping[str, Any]) -> AuthenticationMethod | None:
    method_id, odata_type = data.get("id"), data.get("@odata.type")
    if not isinstance(method_id, str) or not method_id or not isinstance(odata_type, str):
        return None
    kind = method_type_of(odata_type)
    detail = _str(data.get("phoneNumber")) or _str(data.get("emailAddress"))
    display = _str(data.get("displayName")) or _str(data.get("model"))
    if kind == "phone" and not display:
        display = f"{_str(data.get('phoneType')) or 'phone'} phone"
    return AuthenticationMethod(
        id=method_id,
        method_type=kind,
        display_name=display,
        created=_datetime(data.get("createdDateTime")),
        detail=detail,
    )


def _parse_audit(data: Mapping[str, Any]) -> DirectoryAudit | None:
    audit_id, activity = data.get("id"), data.get("activityDisplayName")
    when = _datetime(data.get("activityDateTime"))
    if not isinstance(audit_id, str) or not isinstance(activity, str) or when is None:
        return None
    initiated = _obj(data.get("initiatedBy"))
    user, app = _obj(initiated.get("user")), _obj(initiated.get("app"))
    targets = []
    for item in data.get("targetResources") or ():
        if isinstance(item, dict):
            targets.append(
                AuditTarget(
                    id=_str(item.get("id")),
                    display_name=_str(item.get("displayName")),
                    type=_str(item.get("type")),
                    user_principal_name=_str(item.get("userPrincipalName")),
                )
            )
    details = []
    for item in data.get("additionalDetails") or ():
        if isinstance(item, dict):
            key, value = item.get("key"), item.get("value")
            if isinstance(key, str) and isinstance(value, str):
                details.append((key, value))
    return DirectoryAudit(
        id=audit_id,
        activity=activity,
        activity_time=when,
        category=_str(data.get("category")),
        service=_str(data.get("loggedByService")),
        result=_str(data.get("result")),
        result_reason=_str(data.get("resultReason")),
        initiated_by_user_id=_str(user.get("id")),
        initiated_by_user=_str(user.get("userPrincipalName")) or _str(user.get("displayName")),
        initiated_by_app_id=_str(app.get("appId")),
        initiated_by_app=_str(app.get("displayName")),
        targets=tuple(targets),
        details=tuple(details),
    )


def _parse_sign_in(data: Mapping[str, Any]) -> SignIn | None:
    sign_in_id, when = data.get("id"), _datetime(data.get("createdDateTime"))
    if not isinstance(sign_in_id, str) or when is None:
        return None
    status, location = _obj(data.get("status")), _obj(data.get("location"))
    code = status.get("errorCode")
    return SignIn(
        id=sign_in_id,
        created=when,
        app_display_name=_str(data.get("appDisplayName")),
        resource_display_name=_str(data.get("resourceDisplayName")),
        client_app_used=_str(data.get("clientAppUsed")),
        ip_address=_str(data.get("ipAddress")),
        country=_str(location.get("countryOrRegion")),
        city=_str(location.get("city")),
        error_code=code if isinstance(code, int) and not isinstance(code, bool) else 0,
        failure_reason=_str(status.get("failureReason")),
    )


def _parse_grant(data: Mapping[str, Any]) -> OAuth2Grant | None:
    grant_id, client_id = data.get("id"), data.get("clientId")
    if not isinstance(grant_id, str) or not isinstance(client_id, str):
        return None
    scope = data.get("scope")
    return OAuth2Grant(
        id=grant_id,
        client_id=client_id,
        consent_type=_str(data.get("consentType")) or "Principal",
        principal_id=_str(data.get("principalId")),
        resource_id=_str(data.get("resourceId")),
        # Graph pads the list with spaces (" Contacts.ReadWrite openid"): split on whitespace.
        scopes=tuple(dict.fromkeys(scope.split())) if isinstance(scope, str) else (),
    )


class GraphClient(ApiClient):
    """The Graph calls of the playbook. Thread-safe (the transport and token provider are)."""

    def __init__(
        self,
        transport: Transport,
        tokens: TokenProvider,
        base_url: str = DEFAULT_GRAPH_BASE,
        resource: str = DEFAULT_GRAPH_RESOURCE,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        # The base URL stands in for a tenant (whose budget the rate-limited calls spend) when the
        # client was built without one.
        super().__init__(transport, tokens, base, resource, tenant_id or base, client_id or "")

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self.base_url!r})"

    # -- plumbing -------------------------------------------------------------------------

    def _pages(
        self,
        path: str,
        operation: str,
        params: Mapping[str, str] | None = None,
        *,
        bucket: str | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """Every item of a collection, following ``@odata.nextLink`` on the same host."""
        response = self._call("GET", path, operation, params=params, bucket=bucket)
        for _ in range(_MAX_PAGES):
            body = response.json_object()
            items = body.get("value")
            if isinstance(items, list):
                yield from (item for item in items if isinstance(item, dict))
            next_link = ensure_next_link(body.get("@odata.nextLink"), self.base_url, operation)
            if next_link is None:
                return
            response = self._call("GET", next_link, operation, bucket=bucket)

    # -- users ----------------------------------------------------------------------------

    def get_user(self, identifier: str) -> User:
        """The user with this object id, UPN, ``mail`` or any SMTP proxy address.

        Tries ``/users/{id|upn}`` first; on 404 an address is looked up via
        ``proxyAddresses/any(p:p eq 'smtp:{a}')`` and then ``mail eq '{a}'``.
        Raises ``InvalidIdentifierError`` before any request for a malformed identifier,
        ``NotFoundError`` when nobody matches. Read-only: safe to retry.
        """
        ident = validate_user_identifier(identifier)
        operation = "get user"
        try:
            response = self._call(
                "GET", f"/users/{path_segment(ident)}", operation, params={"$select": USER_SELECT}
            )
            return _parse_user(response.json_object(), operation)
        except NotFoundError:
            if not is_address(ident):
                raise
        for filter_ in (
            f"proxyAddresses/any(p:p eq {odata_literal('smtp:' + ident)})",
            f"mail eq {odata_literal(ident)}",
        ):
            matches = list(
                self._pages(
                    "/users", operation, params={"$filter": filter_, "$select": USER_SELECT}
                )
            )
            if len(matches) == 1:
                return _parse_user(matches[0], operation)
            if len(matches) > 1:
                raise InvalidRequestError(
                    f"{operation}: {len(matches)} users share this address",
                    status=200,
                    code="AmbiguousIdentifier",
                )
        raise NotFoundError(
            f"{operation}: no user has this id, UPN or SMTP address",
            status=404,
            code="Request_ResourceNotFound",
        )

    def reset_password(
        self, user_id: str, password: SecretStr, force_change: bool = True
    ) -> Receipt:
        """Set a new password (``PATCH /users/{id}`` ``passwordProfile``); 204 on success.

        Retry-safe: re-sending the same password profile is harmless. The password never
        appears in a message, a log line or the receipt.
        """
        ident = validate_user_identifier(user_id)
        response = self._call(
            "PATCH",
            f"/users/{path_segment(ident)}",
            "reset password",
            json_body={
                "passwordProfile": {
                    "password": password.get_secret_value(),
                    "forceChangePasswordNextSignIn": force_change,
                }
            },
        )
        return self._receipt("reset_password", ident, response)

    def revoke_sessions(self, user_id: str) -> Receipt:
        """``POST /users/{id}/revokeSignInSessions``; any 2xx is success. Idempotent."""
        ident = validate_user_identifier(user_id)
        response = self._call(
            "POST", f"/users/{path_segment(ident)}/revokeSignInSessions", "revoke sessions"
        )
        return self._receipt("revoke_sessions", ident, response)

    def create_temporary_access_pass(
        self, user_id: str, lifetime_minutes: int = 60, usable_once: bool = True
    ) -> TemporaryAccessPass:
        """Create a TAP (``POST .../authentication/temporaryAccessPassMethods``, 201).

        A user has one TAP, so a new one replaces the earlier one. Never re-sent after a failure
        that may have reached Microsoft: a late first request would replace the pass returned to
        the retry. That raises ``OutcomeUnknownError`` instead (see ``playbook.reconcile``).
        The pass is a ``SecretStr``.
        """
        ident = validate_user_identifier(user_id)
        if not TAP_MIN_MINUTES <= lifetime_minutes <= TAP_MAX_MINUTES:
            raise ValueError(
                f"lifetime_minutes must be {TAP_MIN_MINUTES}..{TAP_MAX_MINUTES}, "
                f"got {lifetime_minutes}"
            )
        operation = "create temporary access pass"
        response = self._call(
            "POST",
            f"/users/{path_segment(ident)}/authentication/temporaryAccessPassMethods",
            operation,
            json_body={"lifetimeInMinutes": lifetime_minutes, "isUsableOnce": usable_once},
            resend_ambiguous=False,
        )
        body = response.json_object()
        tap_id, secret = body.get("id"), body.get("temporaryAccessPass")
        if not isinstance(tap_id, str) or not isinstance(secret, str) or not secret:
            raise ApiError(
                f"{operation}: the answer carries no pass",
                status=response.status,
                code="InvalidResponse",
                request_id=response.request_id,
            )
        created = body.get("createdDateTime")
        lifetime = body.get("lifetimeInMinutes")
        return TemporaryAccessPass(
            id=tap_id,
            temporary_access_pass=SecretStr(secret),
            created=datetime.fromisoformat(created) if isinstance(created, str) else None,
            lifetime_in_minutes=lifetime if isinstance(lifetime, int) else lifetime_minutes,
            is_usable_once=_bool(body.get("isUsableOnce"), usable_once),
        )

    def list_temporary_access_passes(self, user_id: str) -> list[TemporaryAccessPassMethod]:
        """The user's TAP methods (``GET .../temporaryAccessPassMethods``): ids and dates, never
        the pass. Read-only."""
        ident = validate_user_identifier(user_id)
        methods: list[TemporaryAccessPassMethod] = []
        for item in self._pages(
            f"/users/{path_segment(ident)}/authentication/temporaryAccessPassMethods",
            "list temporary access passes",
        ):
            method_id = item.get("id")
            if not isinstance(method_id, str) or not method_id:
                continue
            created = item.get("createdDateTime")
            lifetime = item.get("lifetimeInMinutes")
            usable_once, usable = item.get("isUsableOnce"), item.get("isUsable")
            methods.append(
                TemporaryAccessPassMethod(
                    id=method_id,
                    created=datetime.fromisoformat(created) if isinstance(created, str) else None,
                    lifetime_in_minutes=lifetime if isinstance(lifetime, int) else None,
                    is_usable_once=usable_once if isinstance(usable_once, bool) else None,
                    is_usable=usable if isinstance(usable, bool) else None,
                    method_usability_reason=_str(item.get("methodUsabilityReason")),
                )
            )
        return methods

    def list_directory_roles(self, user_id: str) -> list[DirectoryRole]:
        """Directory roles the user holds (``memberOf/...directoryRole``). Read-only."""
        ident = validate_user_identifier(user_id)
        return self._roles(
            f"/users/{path_segment(ident)}/memberOf/microsoft.graph.directoryRole",
            "list directory roles",
        )

    def get_service_principal_roles(self, client_id: str) -> list[DirectoryRole]:
        """Directory roles of the app's service principal, by application (client) id."""
        app_id = validate_guid(client_id, "client_id")
        return self._roles(
            f"/servicePrincipals(appId={odata_literal(app_id)})"
            "/memberOf/microsoft.graph.directoryRole",
            "get service principal roles",
        )

    def _roles(self, path: str, operation: str) -> list[DirectoryRole]:
        roles = (_parse_role(item) for item in self._pages(path, operation))
        return [role for role in roles if role is not None]

    # -- sign-in methods ----------------------------------------------------------------------

    def list_authentication_methods(self, user_id: str) -> list[AuthenticationMethod]:
        """Every sign-in method of the user, the password method included
        (``GET /users/{id}/authentication/methods``). Read-only.

        Limited to 5 requests per 10 s per app and tenant (``m365.limits``).
        """
        ident = validate_user_identifier(user_id)
        methods = (
            _parse_method(item)
            for item in self._pages(
                f"/users/{path_segment(ident)}/authentication/methods",
                "list authentication methods",
                bucket=REPORTS,
            )
        )
        return [m for m in methods if m is not None]

    def delete_authentication_method(self, user_id: str, method: AuthenticationMethod) -> Receipt:
        """Delete one method through its typed collection
        (``DELETE /users/{id}/authentication/<type>Methods/{methodId}``, 204).

        Refused before any request for the password method (Graph has no DELETE for it) and for
        types without a documented v1.0 DELETE. Raises ``DefaultMethodError`` when the method is
        the user's default and others exist, ``NotFoundError`` when it is already gone.
        Retry-safe: a repeated DELETE of a deleted method is a 404.
        """
        ident = validate_user_identifier(user_id)
        method_id = validate_opaque_id(method.id, "method id")
        if method.is_password:
            raise InvalidRequestError(
                "delete authentication method: the password method cannot be deleted",
                status=0,
                code="PasswordMethodNotDeletable",
            )
        segment = METHOD_SEGMENTS.get(method.method_type)
        if segment is None:
            raise InvalidRequestError(
                f"delete authentication method: Graph v1.0 documents no DELETE for "
                f"{method.method_type!r} methods",
                status=0,
                code="UnsupportedMethodType",
            )
        path = f"/users/{path_segment(ident)}/authentication/{segment}/{path_segment(method_id)}"
        if method.method_type == "external":
            path += "/$ref"
        response = self._call("DELETE", path, "delete authentication method", bucket=REPORTS)
        return self._receipt("delete_authentication_method", method_id, response)

    # -- audit logs ---------------------------------------------------------------------------

    def _audits(self, clauses: list[str], operation: str) -> list[DirectoryAudit]:
        events = (
            _parse_audit(item)
            for item in self._pages(
                "/auditLogs/directoryAudits",
                operation,
                params={"$filter": " and ".join(clauses)},
                bucket=REPORTS,
            )
        )
        return [e for e in events if e is not None]

    @staticmethod
    def _time_clauses(field: str, since: datetime, until: datetime | None) -> list[str]:
        clauses = [f"{field} ge {utc_timestamp(since)}"]
        if until is not None:
            clauses.append(f"{field} le {utc_timestamp(until)}")
        return clauses

    def list_security_info_events(
        self, user_id: str, since: datetime, until: datetime | None = None
    ) -> list[DirectoryAudit]:
        """Directory audit events of the "Authentication Methods" service about this user
        ("User registered security info", "Admin registered security info", deletions...).

        Filtered on the server by service and time (the filter Microsoft documents), and here on
        ``targetResources[].id`` (a lambda filter on targets is not documented). Needs
        ``AuditLog.Read.All`` and ``Directory.Read.All``; limited like the reports (5 per 10 s).
        """
        uid = validate_guid(user_id, "user id")
        clauses = [
            f"loggedByService eq {odata_literal(SECURITY_INFO_SERVICE)}",
            *self._time_clauses("activityDateTime", since, until),
        ]
        events = self._audits(clauses, "list security info events")
        return [e for e in events if any((t.id or "").lower() == uid.lower() for t in e.targets)]

    def list_consent_events(
        self, user_id: str, since: datetime, until: datetime | None = None
    ) -> list[DirectoryAudit]:
        """ "Consent to application" events the user initiated (the only record of when a grant
        was made: a grant has no timestamp). Same permissions and limit as above."""
        uid = validate_guid(user_id, "user id")
        clauses = [
            f"activityDisplayName eq {odata_literal(CONSENT_ACTIVITY)}",
            f"initiatedBy/user/id eq {odata_literal(uid)}",
            *self._time_clauses("activityDateTime", since, until),
        ]
        return self._audits(clauses, "list consent events")

    def list_sign_ins(
        self, user_id: str, since: datetime, until: datetime | None = None
    ) -> list[SignIn]:
        """The user's interactive sign-ins in the window, newest first, every page.

        Raises ``LicenseRequiredError`` ("needs Entra ID P1") on Graph's
        ``Authentication_RequestFromNonPremiumTenantOrB2CTenant`` 403, after asking once more
        (the error has been reported intermittently on licensed tenants). Needs
        ``AuditLog.Read.All`` and ``Directory.Read.All``; limited like the reports.
        """
        uid = validate_guid(user_id, "user id")
        clauses = [
            f"userId eq {odata_literal(uid)}",
            *self._time_clauses("createdDateTime", since, until),
        ]
        params = {"$filter": " and ".join(clauses), "$top": str(SIGN_IN_PAGE_SIZE)}
        for attempt in (1, 2):
            try:
                items = list(
                    self._pages("/auditLogs/signIns", "list sign-ins", params, bucket=REPORTS)
                )
            except LicenseRequiredError:
                if attempt == 2:
                    raise
                continue
            sign_ins = (_parse_sign_in(item) for item in items)
            return [s for s in sign_ins if s is not None]
        raise AssertionError("unreachable")

    # -- OAuth grants -------------------------------------------------------------------------

    def get_service_principal(self, object_id: str) -> ServicePrincipal:
        """A service principal by object id (``Application.Read.All``). Read-only."""
        oid = validate_guid(object_id, "service principal id")
        data = self._call(
            "GET",
            f"/servicePrincipals/{path_segment(oid)}",
            "get service principal",
            params={"$select": SERVICE_PRINCIPAL_SELECT},
        ).json_object()
        return ServicePrincipal(
            id=_str(data.get("id")) or oid,
            app_id=_str(data.get("appId")),
            display_name=_str(data.get("displayName")) or _str(data.get("appDisplayName")),
            publisher=_str(data.get("publisherName")),
        )

    def list_oauth2_grants(self, user_id: str) -> list[OAuth2Grant]:
        """The delegated permission grants the user consented to
        (``GET /users/{id}/oauth2PermissionGrants``), with the client and resource app names.

        Names come from ``servicePrincipals/{id}``; without ``Application.Read.All`` (403) or for a
        deleted app (404) a name stays empty and the grant is still listed. Read-only.
        """
        ident = validate_user_identifier(user_id)
        grants = [
            g
            for g in (
                _parse_grant(item)
                for item in self._pages(
                    f"/users/{path_segment(ident)}/oauth2PermissionGrants",
                    "list oauth2 permission grants",
                )
            )
            if g is not None
        ]
        names: dict[str, str | None] = {}
        for object_id in {g.client_id for g in grants} | {
            g.resource_id for g in grants if g.resource_id
        }:
            try:
                names[object_id] = self.get_service_principal(object_id).display_name
            except (PermissionDeniedError, NotFoundError, InvalidRequestError):
                names[object_id] = None
        return [
            g.model_copy(
                update={
                    "client_display_name": names.get(g.client_id),
                    "resource_display_name": names.get(g.resource_id or ""),
                }
            )
            for g in grants
        ]

    def delete_oauth2_grant(self, grant_id: str) -> Receipt:
        """Revoke one grant (``DELETE /oauth2PermissionGrants/{id}``, 204). Tokens already issued
        stay valid for their lifetime. Retry-safe: a repeated DELETE is a 404."""
        gid = validate_opaque_id(grant_id, "grant id")
        response = self._call(
            "DELETE", f"/oauth2PermissionGrants/{path_segment(gid)}", "delete oauth2 grant"
        )
        return self._receipt("delete_oauth2_grant", gid, response)

    # -- sign-in state -------------------------------------------------------------------------

    def block_sign_in(self, user_id: str) -> Receipt:
        """``PATCH /users/{id}`` ``{"accountEnabled": false}`` (204). Retry-safe (same value).

        Existing sessions survive: revoke them as well. For a user holding a privileged admin
        role the app needs a higher Entra role (Privileged Authentication Administrator).
        """
        return self._set_account_enabled(user_id, False)

    def enable_sign_in(self, user_id: str) -> Receipt:
        """``PATCH /users/{id}`` ``{"accountEnabled": true}`` (204). Retry-safe (same value)."""
        return self._set_account_enabled(user_id, True)

    def _set_account_enabled(self, user_id: str, enabled: bool) -> Receipt:
        ident = validate_user_identifier(user_id)
        operation = "enable sign-in" if enabled else "block sign-in"
        response = self._call(
            "PATCH",
            f"/users/{path_segment(ident)}",
            operation,
            json_body={"accountEnabled": enabled},
        )
        return self._receipt(operation.replace(" ", "_").replace("-", "_"), ident, response)
