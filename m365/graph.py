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
from .errors import ApiError, InvalidRequestError, NotFoundError
from .identifiers import (
    is_address,
    odata_literal,
    path_segment,
    validate_guid,
    validate_user_identifier,
)
from .models import (
    DirectoryRole,
    MessageRule,
    Receipt,
    TemporaryAccessPass,
    TemporaryAccessPassMethod,
    User,
)
from .transport import ApiResponse, Transport, ensure_next_link

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


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _bool(value: object, default: bool) -> bool:
    return value if isinstance(value, bool) else default


def _recipients(value: object) -> tuple[str, ...]:
    """``[{"emailAddress":{"address":...}}]`` -> addresses."""
    out: list[str] = []
    if isinstance(value, list):
        for item in value:
            email = item.get("emailAddress") if isinstance(item, dict) else None
            address = email.get("address") if isinstance(email, dict) else None
            if isinstance(address, str) and address:
                out.append(address)
    return tuple(out)


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


def _parse_message_rule(data: Mapping[str, Any]) -> MessageRule | None:
    rule_id = data.get("id")
    if not isinstance(rule_id, str):
        return None
    actions = data.get("actions")
    actions = actions if isinstance(actions, dict) else {}
    return MessageRule(
        id=rule_id,
        display_name=_str(data.get("displayName")) or "",
        is_enabled=_bool(data.get("isEnabled"), True),
        forward_to=_recipients(actions.get("forwardTo")),
        forward_as_attachment_to=_recipients(actions.get("forwardAsAttachmentTo")),
        redirect_to=_recipients(actions.get("redirectTo")),
        delete=_bool(actions.get("delete"), False),
        permanent_delete=_bool(actions.get("permanentDelete"), False),
        move_to_folder=_str(actions.get("moveToFolder")),
    )


class GraphClient:
    """The Graph calls of the playbook. Thread-safe (the transport and token provider are)."""

    def __init__(
        self,
        transport: Transport,
        tokens: TokenProvider,
        base_url: str = DEFAULT_GRAPH_BASE,
        resource: str = DEFAULT_GRAPH_RESOURCE,
    ) -> None:
        self._transport = transport
        self._tokens = tokens
        self.base_url = base_url.rstrip("/")
        self.resource = resource

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self.base_url!r})"

    # -- plumbing -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path_or_url: str,
        operation: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        resend_ambiguous: bool = True,
    ) -> ApiResponse:
        url = path_or_url if path_or_url.startswith("https://") else self.base_url + path_or_url
        return self._transport.request(
            method,
            url,
            tokens=self._tokens,
            resource=self.resource,
            operation=operation,
            params=params,
            json_body=json_body,
            resend_ambiguous=resend_ambiguous,
        )

    def _pages(
        self, path: str, operation: str, params: Mapping[str, str] | None = None
    ) -> Iterator[Mapping[str, Any]]:
        """Every item of a collection, following ``@odata.nextLink`` on the same host."""
        response = self._call("GET", path, operation, params=params)
        for _ in range(_MAX_PAGES):
            body = response.json_object()
            items = body.get("value")
            if isinstance(items, list):
                yield from (item for item in items if isinstance(item, dict))
            next_link = ensure_next_link(body.get("@odata.nextLink"), self.base_url, operation)
            if next_link is None:
                return
            response = self._call("GET", next_link, operation)

    @staticmethod
    def _receipt(operation: str, target: str, response: ApiResponse) -> Receipt:
        return Receipt(
            operation=operation,
            target=target,
            request_id=response.request_id,
            status=response.status,
        )

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

    def list_message_rules(self, user_id: str) -> list[MessageRule]:
        """Inbox rules visible to Graph (``mailFolders/inbox/messageRules``). Read-only."""
        ident = validate_user_identifier(user_id)
        rules = (
            _parse_message_rule(item)
            for item in self._pages(
                f"/users/{path_segment(ident)}/mailFolders/inbox/messageRules",
                "list message rules",
            )
        )
        return [rule for rule in rules if rule is not None]

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
