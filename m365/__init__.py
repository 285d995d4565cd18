"""Thin typed clients for Microsoft Graph and the Exchange Online admin API.

``build_clients(config)`` gives the three objects a process needs for one tenant; see
docs/architecture.md ("m365: clients") for the contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from .auth import MsalTokenProvider, TokenProvider
from .config import TenantConfig
from .endpoints import check_endpoints
from .errors import (
    ApiError,
    AuthError,
    ConfigurationError,
    ConnectionFailedError,
    DefaultMethodError,
    InvalidIdentifierError,
    InvalidRequestError,
    LicenseRequiredError,
    M365Error,
    NotFoundError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ServiceUnavailableError,
    ThrottledError,
    TransientError,
    UnblockLimitError,
    is_retryable,
)
from .exchange import ExchangeAdminClient
from .graph import GraphClient
from .limits import Limit, RequestLimiter
from .reason import parse_reason
from .retry import RetryPolicy
from .transport import Transport

__all__ = [
    "ApiError",
    "AuthError",
    "ConfigurationError",
    "ConnectionFailedError",
    "DefaultMethodError",
    "ExchangeAdminClient",
    "GraphClient",
    "InvalidIdentifierError",
    "InvalidRequestError",
    "LicenseRequiredError",
    "Limit",
    "M365Clients",
    "M365Error",
    "MsalTokenProvider",
    "NotFoundError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RequestLimiter",
    "RetryPolicy",
    "ServiceUnavailableError",
    "TenantConfig",
    "ThrottledError",
    "TokenProvider",
    "TransientError",
    "Transport",
    "UnblockLimitError",
    "build_clients",
    "is_retryable",
    "parse_reason",
]


@dataclass(frozen=True)
class M365Clients:
    """Everything needed to act on one tenant: Graph, Exchange and the shared token provider."""

    graph: GraphClient
    exchange: ExchangeAdminClient
    tokens: TokenProvider
    transport: Transport


def build_clients(
    config: TenantConfig,
    *,
    retry_policy: RetryPolicy | None = None,
    limiter: RequestLimiter | None = None,
) -> M365Clients:
    """Clients for one tenant sharing one session, one retry policy and one token provider.

    Requests Microsoft limits per app and tenant wait in ``limiter`` (default: the process-wide
    :data:`m365.limits.SHARED`). No network I/O happens here: the MSAL application is built on
    the first token request. Endpoints that are not Microsoft's (and not allowed by this worker)
    are refused first (``m365.endpoints``), so neither the credential nor a token can reach them.
    """
    check_endpoints(config)
    transport = Transport(
        ca_bundle=config.ca_bundle,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        retry_policy=retry_policy,
        limiter=limiter,
    )
    tokens = MsalTokenProvider(config)
    return M365Clients(
        graph=GraphClient(
            transport,
            tokens,
            config.graph_base,
            config.graph_resource,
            tenant_id=config.tenant_id,
            client_id=config.client_id,
        ),
        exchange=ExchangeAdminClient(
            transport,
            tokens,
            config.exchange_base,
            config.exchange_resource,
            config.tenant_id,
            config.tenant_domain,
            client_id=config.client_id,
        ),
        tokens=tokens,
        transport=transport,
    )
