"""HTTP for the clients: one session, timeouts on every call, the retry policy, one error boundary.

Every failure becomes an :mod:`m365.errors` class in exactly two places: :meth:`Transport._send`
(no usable response: ``requests`` exceptions) and :func:`raise_for_response` (an HTTP error status).
The clients above never see ``requests`` exceptions or raw error bodies.

Error bodies understood:

- Graph: ``{"error":{"code","message","innerError":{"request-id",...}}}``, ``request-id`` header;
- Exchange admin API: ``error.details[].message`` = ``"<id>|<exception type>|<text>"``, then
  ``error.innererror.internalexception.message``, then ``error.message``; ``Request-Id`` header;
- plain text (the Exchange concurrency throttle), recognised by its Content-Type;
- no body at all (an Exchange 401): the reason comes from the ``WWW-Authenticate`` and
  ``x-ms-diagnostics`` headers.

Beyond the status code: a 429 without ``Retry-After`` whose text names the wait ("... Retry after
N seconds", "Suggested backoff time: N seconds") carries that wait; Exchange's
``CommandNotFoundException`` means the app's role does not include the cmdlet (a permission
problem, not a bad request); Graph's ``Authentication_RequestFromNonPremiumTenantOrB2CTenant``
means the tenant lacks Entra ID P1; the "default method" 400 of an authentication-method DELETE
is its own class.

A 401 makes the transport invalidate the cached token and repeat the call once with a fresh one.
Requests in a bucket Microsoft limits (``m365.limits``) wait for a slot before each send.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from .auth import TokenProvider, default_verify
from .errors import (
    ApiError,
    ConfigurationError,
    ConnectionFailedError,
    DefaultMethodError,
    InvalidRequestError,
    LicenseRequiredError,
    M365Error,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ServiceUnavailableError,
    ThrottledError,
    UnblockLimitError,
)
from .limits import SHARED, LimitKey, RequestLimiter
from .models import Receipt
from .retry import RetryPolicy, parse_retry_after

log = logging.getLogger("m365.transport")

DEFAULT_TIMEOUT = (5.0, 30.0)
USER_AGENT = "unblock-email/0.1 (+python-requests)"
_MAX_TEXT = 500

NOT_FOUND_CODES = frozenset(
    {"Request_ResourceNotFound", "ResourceNotFound", "ErrorItemNotFound", "NotFound"}
)
NOT_FOUND_EXCEPTIONS = ("ManagementObjectNotFoundException",)
UNBLOCK_LIMIT_EXCEPTIONS = ("UnblockLimitExceededException",)
_UNBLOCK_LIMIT_TEXT = re.compile(r"exceeded the unblock limit", re.IGNORECASE)
_NOT_FOUND_TEXT = re.compile(r"couldn't be found|couldn't find|could not be found", re.IGNORECASE)
_SERVICE_UNAVAILABLE = frozenset({408, 500, 502, 503, 504})
# The wait an Exchange throttle states in its text only ("... Retry after 30 seconds", goosey's
# "Suggested backoff time: 30 seconds").
_WAIT_IN_TEXT = re.compile(
    r"(?:retry\s+after|backoff\s+time:?)\s+(\d{1,6}(?:\.\d{1,3})?)\s*(?:seconds?|s)\b",
    re.IGNORECASE,
)
COMMAND_NOT_FOUND = "CommandNotFoundException"
_COMMAND_NAME = re.compile(r"The term '([A-Za-z]{1,20}-[A-Za-z0-9]{1,60})' is not recognized")
# Exchange Administrator holds every cmdlet the playbook runs (app-only-auth-powershell-v2).
EXCHANGE_ROLE_TO_ASSIGN = "Exchange Administrator"
NON_PREMIUM_TENANT = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
# Two texts seen for one rule (both 400 badRequest): the default MFA method cannot be deleted while
# the user has other methods.
_DEFAULT_METHOD_TEXT = re.compile(
    r"delete default method|current default authentication method", re.IGNORECASE
)
_HEADER_FIELD = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class ApiResponse:
    """A successful answer: status, parsed JSON body (None when empty or not JSON), request id."""

    status: int
    body: object
    request_id: str | None
    headers: Mapping[str, str] = field(default_factory=dict)

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; an empty dict for an empty body."""
        if isinstance(self.body, dict):
            return self.body
        return {}


@dataclass(frozen=True)
class _Call:
    """One call as :meth:`Transport.request` was given it; every send of it is the same."""

    method: str
    url: str
    tokens: TokenProvider
    resource: str
    operation: str
    params: Mapping[str, str] | None
    json_body: object
    headers: Mapping[str, str] | None
    resend_ambiguous: bool


@dataclass(frozen=True)
class ErrorDetail:
    """What an error body says, whatever its shape."""

    code: str | None
    message: str
    exception_type: str | None
    request_id: str | None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _is_json(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    return "json" in content_type


def request_id_of(response: requests.Response, body: object = None) -> str | None:
    """Graph ``request-id`` / Exchange ``Request-Id`` header (any case), else the body's."""
    for name in ("request-id", "x-ms-request-id", "client-request-id"):
        value = response.headers.get(name)
        if value:
            return value[:100]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            inner = error.get("innerError") or error.get("innererror")
            if isinstance(inner, dict):
                value = inner.get("request-id") or inner.get("requestId")
                if isinstance(value, str) and value:
                    return value[:100]
    return None


def parse_error(response: requests.Response) -> ErrorDetail:
    """Read the readable message, code and exception type out of any error body."""
    body: object = None
    if _is_json(response) and response.content:
        try:
            body = response.json()
        except ValueError:
            body = None
    request_id = request_id_of(response, body)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error: dict[str, Any] = body["error"]
        code = error.get("code") if isinstance(error.get("code"), str) else None
        exception_type: str | None = None
        message: str | None = None
        details = error.get("details")
        if isinstance(details, list):
            for detail in details:
                text = detail.get("message") if isinstance(detail, dict) else None
                if not isinstance(text, str) or not text:
                    continue
                parts = text.split("|", 2)
                if len(parts) == 3:
                    exception_type = parts[1].strip() or None
                    message = parts[2].strip()
                else:
                    message = text.strip()
                break
        inner = error.get("innererror") or error.get("innerError")
        if isinstance(inner, dict):
            internal = inner.get("internalexception")
            if isinstance(internal, dict):
                if not message and isinstance(internal.get("message"), str):
                    message = internal["message"]
                if exception_type is None and isinstance(internal.get("type"), str):
                    # The wrapper type (DirectInvokeCmdletExecutionException) says little, but
                    # it is better than nothing for the log.
                    exception_type = internal["type"]
        if not message and isinstance(error.get("message"), str):
            message = error["message"]
        return ErrorDetail(code, _clip(message or ""), exception_type, request_id)
    if body is None and response.content:
        # Plain-text (or mislabelled) body, e.g. the Exchange concurrency throttle.
        return ErrorDetail(None, _clip(response.text), None, request_id)
    return ErrorDetail(None, "", None, request_id)


def raise_for_response(response: requests.Response, operation: str) -> None:
    """The one translation boundary for HTTP error statuses. Returns only for 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = parse_error(response)
    code = detail.code
    described = f"{operation}: HTTP {status}"
    if code:
        described += f" {code}"
    if detail.message:
        described += f": {detail.message}"
    exc_type = detail.exception_type or ""
    request_id = detail.request_id

    if any(name in exc_type for name in UNBLOCK_LIMIT_EXCEPTIONS) or _UNBLOCK_LIMIT_TEXT.search(
        detail.message
    ):
        raise UnblockLimitError(described, status=status, code=code, request_id=request_id)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None and (m := _WAIT_IN_TEXT.search(detail.message)):
            retry_after = float(m.group(1))
        raise ThrottledError(
            described, status=status, retry_after=retry_after, request_id=request_id
        )
    if status in _SERVICE_UNAVAILABLE:
        raise ServiceUnavailableError(
            described,
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            request_id=request_id,
        )
    if (
        status == 404
        or code in NOT_FOUND_CODES
        or any(name in exc_type for name in NOT_FOUND_EXCEPTIONS)
        or (status == 400 and _NOT_FOUND_TEXT.search(detail.message))
    ):
        raise NotFoundError(described, status=status, code=code, request_id=request_id)
    if COMMAND_NOT_FOUND in exc_type:
        m = _COMMAND_NAME.search(detail.message)
        cmdlet = m.group(1) if m else "this cmdlet"
        raise PermissionDeniedError(
            f"{operation}: the app's Exchange role does not include {cmdlet} "
            f"({COMMAND_NOT_FOUND}); assign the Entra role {EXCHANGE_ROLE_TO_ASSIGN} to the "
            "app's service principal",
            status=status,
            code=COMMAND_NOT_FOUND,
            request_id=request_id,
        )
    if status == 403 and code == NON_PREMIUM_TENANT:
        raise LicenseRequiredError(
            f"{described} (needs Microsoft Entra ID P1 or P2)",
            status=status,
            code=code,
            request_id=request_id,
        )
    if status in (401, 403):
        if not detail.message:
            described += _auth_header_reason(response)
        raise PermissionDeniedError(described, status=status, code=code, request_id=request_id)
    if status == 400 and _DEFAULT_METHOD_TEXT.search(detail.message):
        raise DefaultMethodError(described, status=status, code=code, request_id=request_id)
    if 400 <= status < 500:
        raise InvalidRequestError(described, status=status, code=code, request_id=request_id)
    raise ApiError(described, status=status, code=code, request_id=request_id)


def _auth_header_reason(response: requests.Response) -> str:
    """Why a 401/403 without a body was refused, from ``x-ms-diagnostics`` (Exchange, e.g.
    ``2000008;reason="...";error_category="invalid_token"``) and ``WWW-Authenticate``."""
    parts: list[str] = []
    diagnostics = dict(_HEADER_FIELD.findall(response.headers.get("x-ms-diagnostics", "")))
    if diagnostics.get("reason"):
        parts.append(diagnostics["reason"])
    if diagnostics.get("error_category"):
        parts.append(f"error category {diagnostics['error_category']}")
    challenge = dict(_HEADER_FIELD.findall(response.headers.get("WWW-Authenticate", "")))
    if challenge.get("error"):
        parts.append(f"WWW-Authenticate error {challenge['error']}")
    if challenge.get("error_description"):
        parts.append(challenge["error_description"])
    return f": {_clip('; '.join(parts))}" if parts else ": no reason given (empty body, no headers)"


def same_origin(url: str, base: str) -> bool:
    """True when ``url`` has the scheme, host and port of ``base`` (nextLinks must not leave it)."""
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme.lower(), (a.hostname or "").lower(), a.port) == (
        b.scheme.lower(),
        (b.hostname or "").lower(),
        b.port,
    )


class Transport:
    """One ``requests.Session`` with timeouts, the retry policy and the error boundary.

    Thread-safe as far as ``requests.Session`` is (one connection pool, shared).
    """

    def __init__(
        self,
        *,
        ca_bundle: str | None = None,
        connect_timeout: float = DEFAULT_TIMEOUT[0],
        read_timeout: float = DEFAULT_TIMEOUT[1],
        retry_policy: RetryPolicy | None = None,
        limiter: RequestLimiter | None = None,
    ) -> None:
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would silently override verify
        self.session.verify = default_verify(ca_bundle)
        self.session.headers["User-Agent"] = USER_AGENT
        self.timeout = (connect_timeout, read_timeout)
        self.retry_policy = retry_policy or RetryPolicy()
        self.limiter = limiter or SHARED

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        tokens: TokenProvider,
        resource: str,
        operation: str,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        headers: Mapping[str, str] | None = None,
        resend_ambiguous: bool = True,
        limit: LimitKey | None = None,
    ) -> ApiResponse:
        """Send one API call with a bearer token for ``resource``, retrying what is transient.

        Retry-safety: transient failures are repeated with the same method, URL and body. That is
        harmless for reads, the password PATCH (same value), revoke and the Set/Disable cmdlets.
        For a write whose repetition is not (``resend_ambiguous=False``: the TAP POST, whose late
        duplicate would replace the pass handed over; Remove-BlockedSenderAddress), a failure
        after the request may have reached Microsoft raises ``OutcomeUnknownError`` instead of
        re-sending; failures before sending (refused, connect timeout, 429, 5xx) are still
        retried. A 401 is retried once with a fresh token.

        ``limit``: the budget Microsoft states for this API (``m365.limits``); every send,
        retries included, waits for a slot first.
        """
        call = _Call(
            method, url, tokens, resource, operation, params, json_body, headers, resend_ambiguous
        )
        reauthenticated = False

        def attempt() -> ApiResponse:
            nonlocal reauthenticated
            self._wait_for_slot(limit)
            response = self._send(call)
            if response.status_code == 401 and not reauthenticated:
                reauthenticated = True
                log.info("%s: HTTP 401, refreshing the token for %s once", operation, resource)
                response.close()
                tokens.invalidate(resource)
                self._wait_for_slot(limit)
                response = self._send(call)
            raise_for_response(response, operation)
            return self._parse_success(response, operation)

        return self.retry_policy.run(attempt, operation=operation)

    def _wait_for_slot(self, limit: LimitKey | None) -> None:
        if limit is None:
            return
        waited = self.limiter.acquire(limit, max_wait=self.retry_policy.max_wait_seconds)
        if waited > 0:
            log.info("%s limit: waited %.2fs for a request slot", limit.bucket, waited)

    def _send(self, call: _Call) -> requests.Response:
        operation, url = call.operation, call.url
        token = call.tokens.token(call.resource)
        all_headers = {
            "Accept": "application/json",
            "client-request-id": str(uuid.uuid4()),
            **(call.headers or {}),
            "Authorization": f"Bearer {token}",
        }
        data: bytes | None = None
        if call.json_body is not None:
            data = json.dumps(call.json_body, separators=(",", ":")).encode("utf-8")
            all_headers.setdefault("Content-Type", "application/json")
        try:
            response = self.session.request(
                call.method,
                url,
                params=call.params,
                data=data,
                headers=all_headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError:
            raise ConfigurationError(
                f"{operation}: TLS verification failed for {urlsplit(url).hostname}"
            ) from None
        except requests.exceptions.ConnectTimeout:
            raise ConnectionFailedError(f"{operation}: connect timed out") from None
        except requests.exceptions.ReadTimeout:
            text = f"{operation}: no answer within {self.timeout[1]:g}s (read timeout)"
            if not call.resend_ambiguous:
                raise OutcomeUnknownError(text) from None
            raise ConnectionFailedError(text) from None
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidHeader,
        ):
            raise ConfigurationError(f"{operation}: invalid request URL or header") from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            reason = _connection_reason(exc)
            text = f"{operation}: connection failed ({reason})"
            if not call.resend_ambiguous and reason not in _NOT_SENT_REASONS:
                raise OutcomeUnknownError(text) from None
            raise ConnectionFailedError(text) from None
        except requests.RequestException as exc:
            raise ConnectionFailedError(f"{operation}: {type(exc).__name__}") from None
        log.debug(
            "%s: %s %s -> %d", operation, call.method, urlsplit(url).path, response.status_code
        )
        return response

    @staticmethod
    def _parse_success(response: requests.Response, operation: str) -> ApiResponse:
        status = response.status_code
        body: object = None
        if response.content and _is_json(response):
            try:
                body = response.json()
            except ValueError:
                raise ApiError(
                    f"{operation}: HTTP {status} with a malformed JSON body",
                    status=status,
                    code="InvalidResponse",
                    request_id=request_id_of(response),
                ) from None
        return ApiResponse(
            status=status,
            body=body,
            request_id=request_id_of(response, body),
            headers=dict(response.headers),
        )


# Connection failures that prove the request never left: safe to re-send any write.
_NOT_SENT_REASONS = frozenset({"Connection refused", "Name or service not known"})


def _connection_reason(exc: BaseException) -> str:
    """A short reason without URLs (they may carry addresses) or secrets."""
    text = str(exc)
    for marker in (
        "RemoteDisconnected",
        "Connection refused",
        "Connection reset",
        "Connection aborted",
        "IncompleteRead",
        "Name or service not known",
    ):
        if marker in text:
            return marker
    return type(exc).__name__


def ensure_next_link(next_link: object, base: str, operation: str) -> str | None:
    """Validate an ``@odata.nextLink``: a string on the same origin as the API base, or None."""
    if next_link is None:
        return None
    if not isinstance(next_link, str) or not next_link:
        return None
    if not same_origin(next_link, base):
        raise M365Error(f"{operation}: refusing to follow a nextLink to another host")
    return next_link


class ApiClient:
    """What the Graph and Exchange clients share: the transport and token provider, one API's base
    URL and token resource, and whose request budget (tenant, app: ``m365.limits``) calls spend."""

    def __init__(
        self,
        transport: Transport,
        tokens: TokenProvider,
        base_url: str,
        resource: str,
        tenant_id: str,
        client_id: str,
    ) -> None:
        self._transport = transport
        self._tokens = tokens
        self.base_url = base_url.rstrip("/")
        self.resource = resource
        self.tenant_id = tenant_id
        self.client_id = client_id

    def _call(
        self,
        method: str,
        path_or_url: str,
        operation: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        resend_ambiguous: bool = True,
        bucket: str | None = None,
    ) -> ApiResponse:
        """One call with this client's token, headers and budget; a path is taken under the base
        URL."""
        url = path_or_url if path_or_url.startswith("https://") else self.base_url + path_or_url
        return self._transport.request(
            method,
            url,
            tokens=self._tokens,
            resource=self.resource,
            operation=operation,
            params=params,
            json_body=json_body,
            headers=self._headers(operation),
            resend_ambiguous=resend_ambiguous,
            limit=self._limit(bucket),
        )

    def _headers(self, operation: str) -> Mapping[str, str] | None:
        """What this API wants on a call beyond the transport's own headers; nothing by default."""
        return None

    def _limit(self, bucket: str | None) -> LimitKey | None:
        """The budget a call in ``bucket`` spends; None for calls Microsoft does not limit."""
        return LimitKey(self.tenant_id, self.client_id, bucket) if bucket else None

    @staticmethod
    def _receipt(operation: str, target: str, response: ApiResponse) -> Receipt:
        return Receipt(
            operation=operation,
            target=target,
            request_id=response.request_id,
            status=response.status,
        )
