"""The ``M365Tenant`` block: one tenant profile, editable in the Prefect UI.

Credentials live here (encrypted by Prefect) or in the environment, never in flow parameters.
"""

from __future__ import annotations

import os
import re
from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from m365.config import (
    DEFAULT_AUTHORITY_HOST,
    DEFAULT_EXCHANGE_BASE,
    DEFAULT_EXCHANGE_RESOURCE,
    DEFAULT_GRAPH_BASE,
    DEFAULT_GRAPH_RESOURCE,
    TenantConfig,
)

# Block names are slugs; anything else (path traversal, spaces, markup) is refused before any I/O.
PROFILE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
ENV_PREFIX = "M365_"


class M365Tenant(Block):
    """A Microsoft 365 tenant the playbooks may act on, and the app registration they act as."""

    _block_type_name: ClassVar[str] = "M365 Tenant"
    _block_type_slug: ClassVar[str] = "m365-tenant"
    _description: ClassVar[str] = (
        "Tenant id, app registration and endpoints for the unblock-email playbooks."
    )

    tenant_id: str = Field(description="Directory (tenant) id (GUID) or onmicrosoft.com domain")
    tenant_domain: str | None = Field(
        default=None, description="Initial domain, e.g. contoso.onmicrosoft.com"
    )
    client_id: str = Field(description="Application (client) id")
    client_secret: SecretStr | None = Field(
        default=None, description="Client secret (leave empty when using a certificate)"
    )
    certificate_pem: SecretStr | None = Field(
        default=None, description="PEM with the private key and the certificate"
    )
    certificate_thumbprint: str | None = Field(
        default=None, description="SHA-1 thumbprint of the certificate, hex"
    )
    authority_host: str = Field(default=DEFAULT_AUTHORITY_HOST, description="Entra login host")
    graph_base: str = Field(default=DEFAULT_GRAPH_BASE, description="Microsoft Graph base URL")
    graph_resource: str = Field(default=DEFAULT_GRAPH_RESOURCE)
    exchange_base: str = Field(
        default=DEFAULT_EXCHANGE_BASE, description="Exchange Online admin API base URL"
    )
    exchange_resource: str = Field(default=DEFAULT_EXCHANGE_RESOURCE)
    ca_bundle: str | None = Field(
        default=None, description="CA file to trust instead of the system store (emulator only)"
    )
    connect_timeout: float = Field(
        default=5.0, gt=0, le=120, description="Seconds to wait for a TCP/TLS connection"
    )
    read_timeout: float = Field(
        default=30.0, gt=0, le=600, description="Seconds to wait for an answer to one request"
    )
    policy: str = Field(
        default="report",
        description="Sweep policy for this tenant: 'report' or 'contain'",
        pattern="^(report|contain)$",
    )

    def to_config(self) -> TenantConfig:
        return TenantConfig(
            tenant_id=self.tenant_id,
            tenant_domain=self.tenant_domain,
            client_id=self.client_id,
            client_secret=self.client_secret,
            certificate_pem=self.certificate_pem,
            certificate_thumbprint=self.certificate_thumbprint,
            authority_host=self.authority_host,
            graph_base=self.graph_base,
            graph_resource=self.graph_resource,
            exchange_base=self.exchange_base,
            exchange_resource=self.exchange_resource,
            ca_bundle=self.ca_bundle,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )

    @classmethod
    def from_config(cls, config: TenantConfig, *, policy: str = "report") -> M365Tenant:
        return cls(
            tenant_id=config.tenant_id,
            tenant_domain=config.tenant_domain,
            client_id=config.client_id,
            client_secret=config.client_secret,
            certificate_pem=config.certificate_pem,
            certificate_thumbprint=config.certificate_thumbprint,
            authority_host=config.authority_host,
            graph_base=config.graph_base,
            graph_resource=config.graph_resource,
            exchange_base=config.exchange_base,
            exchange_resource=config.exchange_resource,
            ca_bundle=config.ca_bundle,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            policy=policy,
        )


def validate_profile_name(name: str) -> str:
    """Return ``name`` if it is a valid block slug, else raise ``ValueError``."""
    if not PROFILE_NAME.fullmatch(name):
        raise ValueError(
            "tenant profile must be a block name: lower-case letters, digits and dashes, "
            "at most 64 characters"
        )
    return name


def tenant_from_env(environ: dict[str, str] | None = None) -> M365Tenant | None:
    """The demo's fallback: a profile from ``M365_*`` variables, or None if they are not set."""
    env = os.environ if environ is None else environ
    if not env.get(ENV_PREFIX + "TENANT_ID") or not env.get(ENV_PREFIX + "CLIENT_ID"):
        return None
    secret = env.get(ENV_PREFIX + "CLIENT_SECRET")
    return M365Tenant(
        tenant_id=env[ENV_PREFIX + "TENANT_ID"],
        tenant_domain=env.get(ENV_PREFIX + "TENANT_DOMAIN"),
        client_id=env[ENV_PREFIX + "CLIENT_ID"],
        client_secret=SecretStr(secret) if secret else None,
        authority_host=env.get(ENV_PREFIX + "AUTHORITY_HOST", DEFAULT_AUTHORITY_HOST),
        graph_base=env.get(ENV_PREFIX + "GRAPH_BASE", DEFAULT_GRAPH_BASE),
        exchange_base=env.get(ENV_PREFIX + "EXCHANGE_BASE", DEFAULT_EXCHANGE_BASE),
        ca_bundle=env.get(ENV_PREFIX + "CA_BUNDLE"),
    )


def register_blocks() -> None:
    """Register the project's block types with the Prefect API (idempotent).

    Same effect as ``prefect block register -m playbook.blocks``; afterwards "M365 Tenant" can be
    created and edited in the UI (Blocks > Add).
    """
    M365Tenant.register_type_and_schema()
