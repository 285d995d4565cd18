"""Connection settings for one tenant.

``TenantSettings`` is everything about a tenant but the credential; the ``M365Tenant`` block
(orchestration/blocks.py) and ``TenantConfig`` share it, so each field is declared once.
Secrets are ``SecretStr`` and unwrapped only in ``m365.auth``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_BASE = "https://graph.microsoft.com/v1.0"
DEFAULT_GRAPH_RESOURCE = "https://graph.microsoft.com"
DEFAULT_EXCHANGE_BASE = "https://outlook.office365.com/adminapi/beta"
DEFAULT_EXCHANGE_RESOURCE = "https://outlook.office365.com"


class TenantSettings(BaseModel):
    """The tenant, the app registration and the endpoints; no credential.

    Workers accept only Microsoft's hosts in the endpoint fields unless the worker itself allows a
    custom host (``m365.endpoints``).
    """

    tenant_id: str = Field(
        description="Directory (tenant) id, a GUID, or the onmicrosoft.com domain"
    )
    tenant_domain: str | None = Field(
        default=None, description="Initial domain, e.g. contoso.onmicrosoft.com (X-AnchorMailbox)"
    )
    client_id: str = Field(description="Application (client) id of the app registration")
    authority_host: str = Field(
        default=DEFAULT_AUTHORITY_HOST,
        description="Entra login host (Microsoft's hosts only, unless the worker allows another)",
    )
    graph_base: str = Field(
        default=DEFAULT_GRAPH_BASE,
        description="Microsoft Graph base URL (Microsoft's hosts only, unless the worker allows "
        "another)",
    )
    graph_resource: str = Field(
        default=DEFAULT_GRAPH_RESOURCE, description="Resource of Graph tokens (the scope)"
    )
    exchange_base: str = Field(
        default=DEFAULT_EXCHANGE_BASE,
        description="Exchange Online admin API base URL (Microsoft's hosts only, unless the "
        "worker allows another)",
    )
    exchange_resource: str = Field(
        default=DEFAULT_EXCHANGE_RESOURCE, description="Resource of Exchange tokens (the scope)"
    )
    ca_bundle: str | None = Field(
        default=None,
        description="CA file to trust instead of the system store; only with custom hosts the "
        "worker allows (the emulator)",
    )
    connect_timeout: float = Field(
        default=5.0, gt=0, le=120, description="Seconds to wait for a TCP/TLS connection"
    )
    read_timeout: float = Field(
        default=30.0, gt=0, le=600, description="Seconds to wait for an answer to one request"
    )

    def settings(self) -> dict[str, object]:
        """The credential-free part, as keyword arguments: what ``TenantConfig`` and the
        ``M365Tenant`` block (a subclass of each) have in common."""
        return self.model_dump(include=set(TenantSettings.model_fields))


class TenantConfig(TenantSettings):
    """Everything needed to reach one tenant as one app registration, credential resolved."""

    model_config = ConfigDict(frozen=True)

    client_secret: SecretStr | None = None
    certificate_pem: SecretStr | None = Field(
        default=None, description="PEM holding the private key and the certificate"
    )
    certificate_thumbprint: str | None = Field(default=None, description="SHA-1 thumbprint, hex")
    pfx_path: str | None = None
    pfx_passphrase: SecretStr | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> TenantConfig:
        kinds = [
            self.client_secret is not None,
            self.certificate_pem is not None,
            self.pfx_path is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "give exactly one credential: client_secret, certificate_pem or pfx_path"
            )
        return self
