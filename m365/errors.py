"""The one error hierarchy for everything that talks to Microsoft 365.

Errors are raised at a single boundary (``m365.transport``), so callers never see a
``requests`` exception or a raw response body. Each class says whether retrying is safe.

::

    M365Error                      base; never retried as such
    ├── AuthError                  token endpoint refused us (AADSTS code); fix config, do not retry
    ├── ConfigurationError         unusable as configured (TLS trust, URL, cert); do not retry
    ├── TransientError             safe to retry after a wait
    │   ├── ThrottledError         429 (Retry-After honoured)
    │   ├── ServiceUnavailableError 408 / 500 / 502 / 503 / 504, or token endpoint 5xx
    │   └── ConnectionFailedError  connection refused, reset or timed out
    ├── OutcomeUnknownError        a write that must not be re-sent got no answer; re-read state
    └── ApiError                   Microsoft answered with a definite "no"; do not retry
        ├── NotFoundError          Request_ResourceNotFound / ManagementObjectNotFoundException
        ├── PermissionDeniedError  401 / 403: missing application permission or directory role
        │   └── LicenseRequiredError  403: the tenant lacks the licence (sign-ins need Entra ID P1)
        ├── InvalidRequestError    400: bad input, password complexity, synced user
        │   ├── InvalidIdentifierError  refused locally before any request (also a ValueError)
        │   └── DefaultMethodError  the user's default sign-in method while others exist
        └── UnblockLimitError      Microsoft's per-account unblock cap; only Microsoft Support helps

Messages never contain credentials, tokens or passwords; they are safe to log and to
store as a Prefect state message.
"""

from __future__ import annotations


class M365Error(Exception):
    """Base class. Not retryable unless a subclass says so."""

    retryable: bool = False

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        if self.request_id:
            return f"{self.message} (request-id {self.request_id})"
        return self.message


class AuthError(M365Error):
    """Token acquisition failed. Not retryable: credentials, tenant or consent are wrong."""

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        aadsts_code: int | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message, request_id=correlation_id)
        self.error = error
        self.aadsts_code = aadsts_code
        self.correlation_id = correlation_id


class ConfigurationError(M365Error):
    """The client cannot reach the service as configured (TLS verification, malformed URL,
    unreadable certificate). Not retryable: fix the tenant profile."""


class TransientError(M365Error):
    """The service could not answer now. Safe to retry after ``retry_after`` s (or backoff)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status = status
        self.retry_after = retry_after


class ThrottledError(TransientError):
    """HTTP 429. Safe to retry once ``retry_after`` seconds have passed."""


class ServiceUnavailableError(TransientError):
    """HTTP 408/5xx, or the token endpoint failing with 5xx. Safe to retry with backoff."""


class ConnectionFailedError(TransientError):
    """No usable HTTP response (refused, reset, timed out). Safe to retry.

    For a write the outcome is ambiguous: the caller re-reads state before retrying
    where a duplicate would matter.
    """


class OutcomeUnknownError(M365Error):
    """A write was sent and no answer came (read timeout, connection lost after sending), for a
    request whose repetition is not harmless (a TAP POST, Remove-BlockedSenderAddress).

    Not retryable as such, and the transport never re-sends it: the write may have landed, or may
    still land later. The caller re-reads state first (playbook.reconcile), then decides.
    """


class ApiError(M365Error):
    """Microsoft answered with an error that will not change on retry."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.status = status
        self.code = code


class NotFoundError(ApiError):
    """The user, mailbox or list entry does not exist. Not retryable."""


class PermissionDeniedError(ApiError):
    """401/403: the app lacks an application permission or an Entra role. Not retryable."""


class LicenseRequiredError(PermissionDeniedError):
    """403 ``Authentication_RequestFromNonPremiumTenantOrB2CTenant``: the sign-in logs API needs
    Microsoft Entra ID P1 or P2 in the tenant. Not retryable: no permission or role helps."""


class InvalidRequestError(ApiError):
    """400: refused as given (complexity, synced user, bad parameter). Not retryable."""


class DefaultMethodError(InvalidRequestError):
    """400: the sign-in method is the user's default MFA method and other methods exist.

    Not retryable as such: delete the user's other methods first, or have the default changed
    (Graph v1.0 cannot change it), then delete this one.
    """


class InvalidIdentifierError(InvalidRequestError, ValueError):
    """A user id, address or identity was malformed (quote, slash, CR/LF, oversize...).

    Raised by the clients *before* any request, so ``status`` is 0. Not retryable.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, status=0, code="InvalidIdentifier")


class UnblockLimitError(ApiError):
    """The account reached Microsoft's unblock cap. Not retryable: contact Microsoft Support."""


def is_retryable(exc: BaseException) -> bool:
    """The single predicate that decides whether an error may be retried."""
    return isinstance(exc, M365Error) and exc.retryable
