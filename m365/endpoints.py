"""Where a worker may send the tenant's credential and its tokens: Microsoft's hosts only.

The endpoint fields of a tenant profile (authority host, Graph base, Exchange base, CA bundle)
can be edited by anyone who can use the Prefect API. Without this check such a person could point
a worker at a host of their own and receive the app's client secret (in the token request body),
a client assertion, or the access tokens. So before any token request:

- every endpoint must be ``https://`` on one of Microsoft's hosts for that API, global or national
  cloud (the lists below), without user info and on the default port; or
- a custom host the *worker* allows in its own environment:
  ``UNBLOCK_EMAIL_ALLOWED_HOSTS=127.0.0.1`` (comma-separated ``host`` or ``host:port``; the
  emulator's case). A block field cannot allow a host: block fields are what this check distrusts;
- a ``ca_bundle`` (a CA file other than the system store) is accepted only when every endpoint
  is such a worker-allowed custom host: Microsoft's hosts are always verified against the system
  store.

Microsoft's hosts, from Microsoft's public documentation:

- Entra authority: ``login.microsoftonline.com`` (global), ``login.microsoftonline.us`` (US
  Government: GCC High and DoD), ``login.chinacloudapi.cn`` (operated by 21Vianet)
  (learn.microsoft.com/entra/identity-platform/authentication-national-cloud; also
  learn.microsoft.com/graph/deployments, "App registration and token service root endpoints").
- Microsoft Graph: ``graph.microsoft.com`` (global), ``graph.microsoft.us`` (US Government L4,
  GCC High), ``dod-graph.microsoft.us`` (US Government L5, DoD), ``microsoftgraph.chinacloudapi.cn``
  (21Vianet) (learn.microsoft.com/graph/deployments, "Microsoft Graph and Graph Explorer service
  root endpoints").
- Exchange Online (the admin API lives on the Exchange Online host of each cloud):
  ``outlook.office365.com`` (global and GCC), ``outlook.office365.us`` (GCC High),
  ``outlook-dod.office365.us`` and ``webmail.apps.mil`` (DoD), ``partner.outlook.cn`` (21Vianet)
  (learn.microsoft.com/powershell/module/exchange/connect-exchangeonline, parameter
  ``-ExchangeEnvironmentName``; learn.microsoft.com/microsoft-365/enterprise/
  microsoft-365-u-s-government-gcc-high-endpoints, ...-dod-endpoints, and
  urls-and-ip-address-ranges-21vianet).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from urllib.parse import urlsplit

from .config import TenantSettings
from .errors import ConfigurationError

ALLOWED_HOSTS_ENV = "UNBLOCK_EMAIL_ALLOWED_HOSTS"


class Endpoint(StrEnum):
    """The endpoint fields of a tenant profile, by the field's name."""

    AUTHORITY = "authority_host"
    GRAPH = "graph_base"
    EXCHANGE = "exchange_base"


MICROSOFT_HOSTS: Mapping[Endpoint, frozenset[str]] = {
    Endpoint.AUTHORITY: frozenset(
        {"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn"}
    ),
    Endpoint.GRAPH: frozenset(
        {
            "graph.microsoft.com",
            "graph.microsoft.us",
            "dod-graph.microsoft.us",
            "microsoftgraph.chinacloudapi.cn",
        }
    ),
    Endpoint.EXCHANGE: frozenset(
        {
            "outlook.office365.com",
            "outlook.office365.us",
            "outlook-dod.office365.us",
            "webmail.apps.mil",
            "partner.outlook.cn",
        }
    ),
}

_SHOWN = re.compile(r"[^A-Za-z0-9.:\[\]_-]")


def _shown(text: str) -> str:
    """A host as it may appear in a message: short, and nothing but host characters."""
    return _SHOWN.sub("?", text[:100])


def worker_allowed_hosts(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The custom hosts this worker allows (``UNBLOCK_EMAIL_ALLOWED_HOSTS``), lower-case."""
    env = os.environ if environ is None else environ
    raw = env.get(ALLOWED_HOSTS_ENV, "")
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def _host_port(url: str, field: Endpoint) -> tuple[str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"{field.value} is not a valid URL") from None
    if parts.scheme != "https":
        raise ConfigurationError(f"{field.value} must be an https:// URL")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConfigurationError(f"{field.value} must not carry user info")
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigurationError(f"{field.value} has no host")
    return host, port


def _custom_allowed(host: str, port: int | None, allowed: frozenset[str]) -> bool:
    shown = f"[{host}]" if ":" in host else host
    return host in allowed or shown in allowed or f"{shown}:{port or 443}" in allowed


def check_endpoints(config: TenantSettings, allowed: Iterable[str] | None = None) -> None:
    """Raise ``ConfigurationError`` unless every endpoint may receive the credential.

    ``allowed``: the worker's custom hosts; ``None`` reads ``UNBLOCK_EMAIL_ALLOWED_HOSTS``.
    The message names the refused host and how to allow it on the worker; never a secret.
    """
    allowed_set = (
        worker_allowed_hosts() if allowed is None else frozenset(a.lower() for a in allowed)
    )
    custom: list[str] = []
    for field in Endpoint:
        url = str(getattr(config, field.value))
        host, port = _host_port(url, field)
        if host in MICROSOFT_HOSTS[field] and port in (None, 443):
            continue
        if _custom_allowed(host, port, allowed_set):
            custom.append(field.value)
            continue
        netloc = _shown(host if port is None else f"{host}:{port}")
        raise ConfigurationError(
            f"refused to send the credential of client {_shown(config.client_id)} to "
            f"{netloc} ({field.value}): not a Microsoft host for this API. A custom host is "
            f"allowed only by the worker itself: set {ALLOWED_HOSTS_ENV}={netloc} in the "
            "environment of the worker that runs the flows (a block field cannot allow it)"
        )
    if config.ca_bundle and len(custom) != len(Endpoint):
        raise ConfigurationError(
            "ca_bundle is used only when every endpoint is a custom host this worker allows "
            f"({ALLOWED_HOSTS_ENV}); Microsoft's hosts are verified against the system store"
        )
