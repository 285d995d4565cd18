"""Access tokens for Graph and Exchange: a two-method seam and its MSAL implementation.

``MsalTokenProvider`` wraps ``msal.ConfidentialClientApplication`` (client credentials flow).
MSAL does network I/O in its constructor (OIDC discovery) and caches tokens itself, so there is one
application object per process per (authority, client id, credential): :func:`_shared_app` keeps
them in a module-level cache.

Everything MSAL can return or raise is translated here into :mod:`m365.errors`:

- an error dict (HTTP 400/401 from the token endpoint) -> ``AuthError`` with the AADSTS code;
- ``MsalServiceError`` (MSAL raises it for 5xx) -> ``ServiceUnavailableError`` (transient);
- ``requests`` connection errors and timeouts -> ``ConnectionFailedError`` (transient);
- TLS verification failure, unreadable certificate -> ``ConfigurationError``;
- ``ValueError`` for a non-JSON answer -> ``ServiceUnavailableError``.

Neither the secret, the private key nor a token ever appears in a message or a log line.

MSAL throttles on its own (``throttled_http_client``): it replays a token endpoint 400 for
60 s and a 5xx/429 for Retry-After (default 5 s) without calling the server. Retry timing belongs to
:class:`m365.retry.RetryPolicy`, so after any failure the provider drops those replay entries
(the discovery entries stay) and the next attempt reaches the token endpoint again.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import msal
import requests
from msal.exceptions import MsalError, MsalServiceError

from .config import TenantConfig
from .endpoints import check_endpoints
from .errors import (
    AuthError,
    ConfigurationError,
    ConnectionFailedError,
    M365Error,
    ServiceUnavailableError,
    ThrottledError,
)
from .retry import parse_retry_after

log = logging.getLogger("m365.auth")

# Hosts MSAL itself knows (msal.authority.WELL_KNOWN_AUTHORITY_HOSTS); instance discovery is only
# skipped for anything else (the emulator, a sovereign test host).
MICROSOFT_AUTHORITY_HOSTS: frozenset[str] = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    }
)

_AADSTS = re.compile(r"AADSTS(\d{4,9})")
_MAX_DESCRIPTION = 300


@runtime_checkable
class TokenProvider(Protocol):
    """Hands out bearer tokens per resource (``https://graph.microsoft.com`` ...)."""

    def token(self, resource: str) -> str:
        """A valid access token for ``resource``. Raises ``AuthError`` or a ``TransientError``."""
        ...

    def invalidate(self, resource: str) -> None:
        """Forget cached tokens for ``resource`` (after a 401) so the next call gets a fresh one."""
        ...


def scope_for(resource: str) -> str:
    """The client-credentials scope of a resource: ``https://graph.microsoft.com/.default``."""
    return resource.rstrip("/") + "/.default"


def default_verify(ca_bundle: str | None) -> str | bool:
    """``verify=`` for a session with ``trust_env=False``: the given CA file, else the system store.

    ``verify=True`` alone would mean certifi's bundle, not the system store the config promises.
    """
    if ca_bundle:
        return ca_bundle
    cafile = ssl.get_default_verify_paths().cafile
    return cafile or True


class _TimeoutSession(requests.Session):
    """A session that never waits forever and never reads the environment.

    MSAL ignores its own ``timeout=`` when given an ``http_client``, so the session applies it.
    ``trust_env=False`` stops ``REQUESTS_CA_BUNDLE`` from silently replacing ``verify`` and stops
    ``*_PROXY``/``.netrc`` from applying. The last response's ``Retry-After`` is remembered per
    thread because ``MsalServiceError`` does not carry headers.
    """

    def __init__(self, verify: str | bool, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = verify
        self.default_timeout = timeout
        self._local = threading.local()

    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        kwargs.setdefault("allow_redirects", False)
        self._local.retry_after = None
        self._local.status = None
        response = super().request(method, url, *args, **kwargs)
        self._local.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        self._local.status = response.status_code
        return response

    @property
    def last_retry_after(self) -> float | None:
        value = getattr(self._local, "retry_after", None)
        return value if isinstance(value, float) else None

    @property
    def last_status(self) -> int | None:
        value = getattr(self._local, "status", None)
        return value if isinstance(value, int) else None


@dataclass
class _SharedApp:
    app: msal.ConfidentialClientApplication
    session: _TimeoutSession
    http_cache: dict[str, object]
    lock: threading.Lock


_apps: dict[tuple[str, ...], _SharedApp] = {}
_apps_lock = threading.Lock()


def _fingerprint(config: TenantConfig) -> str:
    """A digest of the credential and transport settings; never the credential itself."""
    digest = hashlib.sha256()
    for part in (
        config.client_secret.get_secret_value() if config.client_secret else "",
        config.certificate_pem.get_secret_value() if config.certificate_pem else "",
        config.certificate_thumbprint or "",
        config.pfx_path or "",
        config.pfx_passphrase.get_secret_value() if config.pfx_passphrase else "",
        config.ca_bundle or "",
        f"{config.connect_timeout}/{config.read_timeout}",
    ):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def authority_for(config: TenantConfig) -> str:
    return f"{config.authority_host.rstrip('/')}/{config.tenant_id}"


def is_microsoft_host(authority_host: str) -> bool:
    return (urlsplit(authority_host).hostname or "").lower() in MICROSOFT_AUTHORITY_HOSTS


_PEM_CERT = re.compile(
    r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----", re.ASCII
)


def _client_credential(config: TenantConfig) -> str | dict[str, str]:
    """The ``client_credential`` argument MSAL expects for the configured credential kind."""
    if config.client_secret is not None:
        return config.client_secret.get_secret_value()
    if config.certificate_pem is not None:
        pem = config.certificate_pem.get_secret_value()
        if config.certificate_thumbprint:
            # RS256 assertion with x5t (SHA-1), what Entra documents for certificate credentials.
            thumbprint = config.certificate_thumbprint.replace(":", "").strip()
            return {"private_key": pem, "thumbprint": thumbprint}
        cert = _PEM_CERT.search(pem)
        if cert is None:
            raise ConfigurationError(
                "certificate credential needs certificate_thumbprint"
                " or a CERTIFICATE block in the PEM"
            )
        # PS256 assertion with x5t#S256 and x5c, thumbprint computed by MSAL.
        return {"private_key": pem, "public_certificate": cert.group(0)}
    if config.pfx_path is not None:
        credential = {"private_key_pfx_path": config.pfx_path}
        if config.pfx_passphrase is not None:
            credential["passphrase"] = config.pfx_passphrase.get_secret_value()
        return credential
    raise ConfigurationError("no credential configured")


def _shared_app(config: TenantConfig, *, rebuild: bool = False) -> _SharedApp:
    """The process-wide MSAL application for this tenant, client and credential."""
    authority = authority_for(config)
    key = (authority.lower(), config.client_id.lower(), _fingerprint(config))
    with _apps_lock:
        shared = _apps.get(key)
        if shared is not None and not rebuild:
            return shared
        session = _TimeoutSession(
            default_verify(config.ca_bundle), (config.connect_timeout, config.read_timeout)
        )
        http_cache: dict[str, object] = {}
        try:
            app = msal.ConfidentialClientApplication(
                config.client_id,
                client_credential=_client_credential(config),
                authority=authority,
                http_client=session,
                http_cache=http_cache,
                timeout=config.read_timeout,
                instance_discovery=is_microsoft_host(config.authority_host),
                app_name="unblock-email",
            )
        except (MsalError, requests.RequestException, ValueError, OSError) as exc:
            session.close()
            raise _translate_exception(exc, "building the MSAL application", None) from None
        shared = _SharedApp(app=app, session=session, http_cache=http_cache, lock=threading.Lock())
        _apps[key] = shared
        return shared


def clear_app_cache() -> None:
    """Forget every MSAL application of this process (tests; credential rotation)."""
    with _apps_lock:
        for shared in _apps.values():
            shared.session.close()
        _apps.clear()


def _aadsts_code(result: Mapping[str, object]) -> int | None:
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return codes[0]
    description = result.get("error_description")
    if isinstance(description, str):
        match = _AADSTS.search(description)
        if match:
            return int(match.group(1))
    return None


def _first_line(text: str) -> str:
    """The first line of an AADSTS description (the rest is trace and correlation ids)."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:_MAX_DESCRIPTION]


def _auth_error(result: Mapping[str, object], client_id: str) -> AuthError:
    error = result.get("error")
    description = result.get("error_description")
    correlation = result.get("correlation_id")
    code = _aadsts_code(result)
    text = _first_line(description) if isinstance(description, str) else ""
    message = f"token request for client {client_id} refused: {error or 'error'}"
    if text:
        message += f": {text}"
    elif code is not None:
        message += f" (AADSTS{code})"
    return AuthError(
        message,
        error=error if isinstance(error, str) else None,
        aadsts_code=code,
        correlation_id=correlation if isinstance(correlation, str) else None,
    )


def _translate_exception(exc: BaseException, what: str, retry_after: float | None) -> M365Error:
    """MSAL / requests exceptions -> m365.errors (messages name the failure, never a secret)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return ConfigurationError(f"{what}: TLS verification of the authority host failed")
    if isinstance(exc, requests.exceptions.Timeout):
        return ConnectionFailedError(f"{what}: the token endpoint timed out")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return ConfigurationError(f"{what}: invalid authority URL")
    if isinstance(exc, requests.RequestException):
        return ConnectionFailedError(f"{what}: {type(exc).__name__} talking to the authority host")
    if isinstance(exc, MsalServiceError):
        status = _status_from_msal(exc)
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            return AuthError(f"{what}: the authority answered HTTP {status}", error="http_error")
        return ServiceUnavailableError(
            f"{what}: the token endpoint failed ({exc.args[0] if exc.args else 'HTTP error'})",
            status=status,
            retry_after=retry_after,
        )
    if isinstance(exc, OSError):
        return ConfigurationError(f"{what}: credential file unreadable ({type(exc).__name__})")
    if isinstance(exc, ValueError):
        text = str(exc)
        if "OIDC Discovery failed" in text or "authority configuration" in text:
            return AuthError(
                f"{what}: tenant discovery failed; check tenant id and authority host",
                error="invalid_tenant",
                aadsts_code=_aadsts_code({"error_description": text}),
            )
        if "key" in text.lower() or "certificate" in text.lower() or "pfx" in text.lower():
            return ConfigurationError(f"{what}: the certificate credential could not be loaded")
        return ServiceUnavailableError(f"{what}: the token endpoint sent an unreadable answer")
    return AuthError(f"{what}: {type(exc).__name__}")


def _status_from_msal(exc: MsalServiceError) -> int | None:
    match = re.search(r"HTTP Error: (\d{3})", str(exc.args[0]) if exc.args else "")
    return int(match.group(1)) if match else None


class MsalTokenProvider:
    """``TokenProvider`` backed by a process-wide ``msal.ConfidentialClientApplication``."""

    def __init__(self, config: TenantConfig) -> None:
        # Before any token request: the credential goes only to hosts this worker accepts.
        check_endpoints(config)
        self._config = config
        self._shared: _SharedApp | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MsalTokenProvider(tenant={self._config.tenant_id!r}, "
            f"client_id={self._config.client_id!r})"
        )

    def _app(self) -> _SharedApp:
        with self._lock:
            if self._shared is None:
                self._shared = _shared_app(self._config)
            return self._shared

    def token(self, resource: str) -> str:
        shared = self._app()
        scopes = [scope_for(resource)]
        what = f"token for {resource}"
        with shared.lock:
            try:
                result = shared.app.acquire_token_for_client(scopes=scopes)
            except (MsalError, requests.RequestException, ValueError) as exc:
                self._forget_replays(shared)
                raise _translate_exception(exc, what, shared.session.last_retry_after) from None
            if not isinstance(result, dict):
                self._forget_replays(shared)
                raise ServiceUnavailableError(f"{what}: MSAL returned no result")
            access_token = result.get("access_token")
            if isinstance(access_token, str) and access_token:
                log.debug("%s: from %s", what, result.get("token_source", "unknown"))
                return access_token
            self._forget_replays(shared)
            error = _auth_error(result, self._config.client_id)
            status = shared.session.last_status
            retry_after = shared.session.last_retry_after
            if status == 429:
                raise ThrottledError(
                    error.message,
                    status=429,
                    retry_after=retry_after,
                    request_id=error.correlation_id,
                )
            if result.get("error") in ("temporarily_unavailable", "server_error"):
                raise ServiceUnavailableError(
                    error.message,
                    status=status,
                    retry_after=retry_after,
                    request_id=error.correlation_id,
                )
            log.warning("%s failed: %s", what, error)
            raise error

    def invalidate(self, resource: str) -> None:
        shared = self._app()
        scope = scope_for(resource).lower()
        cache = shared.app.token_cache
        with shared.lock:
            entries = list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN))
            removed = 0
            for entry in entries:
                targets = str(entry.get("target", "")).lower().split()
                if scope in targets and entry.get("client_id") == self._config.client_id:
                    cache.remove_at(entry)
                    removed += 1
            log.debug("invalidated %d cached token(s) for %s", removed, resource)

    @staticmethod
    def _forget_replays(shared: _SharedApp) -> None:
        """Drop MSAL's replayed error responses so our RetryPolicy alone decides the timing.

        Keys of ``http_cache`` are MSAL's: ``"POST ... 400"`` / ``"POST ... 429/5xx/Retry-After"``
        for replays and ``"GET ..."`` for discovery documents, which stay.
        """
        cache: MutableMapping[str, object] = shared.http_cache
        for key in [k for k in list(cache) if k.startswith("POST ")]:
            cache.pop(key, None)
