"""Entra ID subset: OIDC discovery, JWKS and the v2.0 token endpoint (client credentials)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote

import jwt

from .tokens import RESOURCES
from .wire import Call, Request, Response, json_response

if TYPE_CHECKING:
    from .core import Core

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_RESERVED_SCOPES = {"openid", "profile", "offline_access"}


def aad_error(status: int, error: str, code: int, text: str, host: str) -> Response:
    """The Entra error body MSAL returns to callers."""
    correlation = str(uuid.uuid4())
    trace = str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: "
            f"{correlation} Timestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"{host}/error?code={code}",
    }
    return json_response(
        status, body, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
    )


def _unknown_tenant(tenant_key: str, host: str) -> Response:
    return aad_error(
        400,
        "invalid_request",
        90002,
        f"Tenant '{tenant_key}' not found. Check to make sure you have the "
        "correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription "
        "administrator, this may happen "
        "if there are no active subscriptions for the tenant.",
        host,
    )


def discovery(core: Core, req: Request, tenant_key: str) -> Response:
    host = req.base_url
    ts = core.state.find_tenant(tenant_key)
    if ts is None:
        return aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant_key}' not found.", host)
    base = f"{host}/{tenant_key}"
    doc = {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{host}/{ts.tenant_id}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{host}/{ts.tenant_id}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{host}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "roles", "wids"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }
    return json_response(200, doc)


def jwks(core: Core, req: Request, tenant_key: str) -> Response:
    if core.state.find_tenant(tenant_key) is None:
        return _unknown_tenant(tenant_key, req.base_url)
    return json_response(200, core.tokens.jwks())


def _thumb_hex(value: str) -> str:
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.urlsafe_b64decode(padded).hex().upper()
    except (binascii.Error, ValueError):
        return ""


def token(core: Core, req: Request, call: Call, tenant_key: str) -> Response:
    host = req.base_url
    form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
    client_id = form.get("client_id", "")
    client_secret = form.get("client_secret")
    basic = req.header("Authorization")
    if basic and basic.lower().startswith("basic "):  # client_secret_basic
        try:
            user, _, pwd = base64.b64decode(basic[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, pwd = "", ""
        client_id = client_id or unquote(user)
        client_secret = client_secret or unquote(pwd)
    call.app = client_id or None
    with core.state.lock:
        ts = core.state.find_tenant(tenant_key)
        if ts is None:
            return _unknown_tenant(tenant_key, host)
        call.tenant = ts.name
        if form.get("grant_type") != "client_credentials":
            return aad_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type. The emulator supports "
                "client_credentials only.",
                host,
            )
        if not client_id:
            return aad_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
                host,
            )
        app = ts.app(client_id)
        if app is None:
            return aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{ts.domain}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the "
                "tenant. You may have "
                "sent your authentication request to the wrong tenant.",
                host,
            )
        assertion = form.get("client_assertion")
        if assertion is not None:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                return aad_error(
                    400,
                    "invalid_request",
                    50027,
                    "The client_assertion_type is invalid.",
                    host,
                )
            problem = _check_assertion(
                app_public_key=app.public_key,
                sha1=app.certificate_thumbprint,
                sha256=app.certificate_sha256,
                assertion=assertion,
                client_id=app.client_id,
                audiences=_audiences(host, tenant_key, ts.tenant_id, ts.domain),
            )
            if problem:
                return aad_error(400, "invalid_client", 700027, problem, host)
        elif client_secret is not None:
            if not app.client_secret or client_secret != app.client_secret:
                return aad_error(
                    400,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being "
                    "sent in the request is "
                    "the client secret value, not the client secret ID, for a secret added to app "
                    f"'{app.client_id}'.",
                    host,
                )
        else:
            return aad_error(
                400,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
                host,
            )
        scopes = [s for s in form.get("scope", "").split() if s not in _RESERVED_SCOPES]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            shown = form.get("scope", "")
            return aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {shown} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
                host,
            )
        resource = scopes[0][: -len("/.default")].rstrip("/")
        if resource not in RESOURCES:
            return aad_error(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{ts.domain}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You might "
                "have sent your authentication request to the wrong tenant.",
                host,
            )
        access_token, lifetime = core.tokens.issue(ts, app, resource, host)
    return json_response(
        200,
        {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        },
        {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )


_UNREGISTERED = (
    "The certificate with identifier used to sign the client assertion is not registered on "
    "application."
)


def _audiences(host: str, *tenant_keys: str) -> list[str]:
    return list(dict.fromkeys(f"{host}/{k}/oauth2/v2.0/token" for k in tenant_keys))


def _check_assertion(
    *,
    app_public_key: object,
    sha1: str | None,
    sha256: str | None,
    assertion: str,
    client_id: str,
    audiences: list[str],
) -> str | None:
    """None if the client assertion is valid; otherwise the AADSTS700027 text."""
    if app_public_key is None or not sha1:
        return _UNREGISTERED
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        return "Client assertion is not a well-formed JWT."
    alg = header.get("alg")
    if alg not in ("RS256", "PS256"):
        return f"Client assertion uses an unsupported algorithm '{alg}'."
    if "x5t#S256" in header:
        known = _thumb_hex(str(header["x5t#S256"])) == sha256
    elif "x5t" in header:
        known = _thumb_hex(str(header["x5t"])) == sha1
    else:
        known = False
    if not known:
        return _UNREGISTERED
    try:
        claims = jwt.decode(
            assertion,
            app_public_key,  # type: ignore[arg-type]
            algorithms=[str(alg)],
            audience=audiences,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return "Client assertion is not within its valid time range."
    except jwt.InvalidAudienceError:
        return "Client assertion audience claim does not match the token endpoint."
    except jwt.InvalidSignatureError:
        return "Client assertion failed signature validation."
    except jwt.PyJWTError as exc:
        return f"Client assertion is invalid: {type(exc).__name__}."
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return "Client assertion iss and sub must both be the application's client id."
    return None
