"""Access tokens: RS256 JWTs signed by the emulator's key, tracked so they can be invalidated."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .state import AppRecord, TenantState

GRAPH_RESOURCE = "https://graph.microsoft.com"
EXCHANGE_RESOURCE = "https://outlook.office365.com"
RESOURCES = (GRAPH_RESOURCE, EXCHANGE_RESOURCE)
# Application permissions that belong to the Exchange Online resource; the rest are Graph's.
EXCHANGE_ROLES = frozenset({"Exchange.ManageAsApp", "full_access_as_app"})


class TokenRejected(Exception):
    """The bearer token is unusable. ``reason``: missing | malformed | expired | audience."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class TokenService:
    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self.kid = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._issued: set[str] = set()

    def issue(
        self, tenant: TenantState, app: AppRecord, resource: str, issuer_host: str
    ) -> tuple[str, int]:
        now = int(time.time())
        lifetime = app.token_lifetime_seconds
        uti = uuid.uuid4().hex
        if resource == EXCHANGE_RESOURCE:
            roles = [r for r in app.roles if r in EXCHANGE_ROLES]
        else:
            roles = [r for r in app.roles if r not in EXCHANGE_ROLES]
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": f"{issuer_host}/{tenant.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": "2" if app.certificate_thumbprint and not app.client_secret else "1",
            "idp": f"{issuer_host}/{tenant.tenant_id}/",
            "idtyp": "app",
            "oid": app.service_principal_id,
            "sub": app.service_principal_id,
            "roles": roles,
            "wids": list(app.wids),
            "tid": tenant.tenant_id,
            "uti": uti,
            "ver": "1.0",
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})
        with self._lock:
            self._issued.add(uti)
        return token, lifetime

    def validate(self, authorization: str | None, resource: str) -> dict[str, Any]:
        if not authorization:
            raise TokenRejected("missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected("malformed")
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self._key.public_key(),
                algorithms=["RS256"],
                audience=resource,
                options={"require": ["exp", "nbf", "aud", "tid", "appid", "uti"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected("audience") from None
        except jwt.PyJWTError:
            raise TokenRejected("malformed") from None
        with self._lock:
            if claims["uti"] not in self._issued:
                raise TokenRejected("expired")  # invalidated: answered like an expired token
        return claims

    def invalidate_all(self) -> None:
        with self._lock:
            self._issued.clear()

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                }
            ]
        }


def peek_claims(authorization: str | None) -> dict[str, Any]:
    """Unverified claims, only to label the request log (tenant, app)."""
    if not authorization or " " not in authorization:
        return {}
    try:
        claims: dict[str, Any] = jwt.decode(
            authorization.split(" ", 1)[1].strip(), options={"verify_signature": False}
        )
    except jwt.PyJWTError:
        return {}
    return claims
