"""Connection settings for one tenant.

Secrets are ``SecretStr`` and unwrapped only in ``m365.auth``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_BASE = "https://graph.microsoft.com/v1.0"
DEFAULT_GRAPH_RESOURCE = "https://graph.microsoft.com"
DEFAULT_EXCHANGE_BASE = "https://outlook.office365.com/adminapi/beta"
DEFAULT_EXCHANGE_RESOURCE = "https://outlook.office365.com"


class TenantConfig(BaseModel):
    """Everything needed to reach one tenant as one app registration."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str = Field(
        description="Directory (tenant) id, a GUID, or the onmicrosoft.com domain"
    )
    tenant_domain: str | None = Field(
        default=None, description="Initial domain, e.g. contoso.onmicrosoft.com (X-AnchorMailbox)"
    )
    client_id: str = Field(description="Application (client) id of the app registration")
    client_secret: SecretStr | None = None
    certificate_pem: SecretStr | None = Field(
        default=None, description="PEM holding the private key and the certificate"
    )
    certificate_thumbprint: str | None = Field(default=None, description="SHA-1 thumbprint, hex")
    pfx_path: str | None = None
    pfx_passphrase: SecretStr | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    graph_base: str = DEFAULT_GRAPH_BASE
    graph_resource: str = DEFAULT_GRAPH_RESOURCE
    exchange_base: str = DEFAULT_EXCHANGE_BASE
    exchange_resource: str = DEFAULT_EXCHANGE_RESOURCE
    ca_bundle: str | None = Field(default=None, description="CA file to trust; None = system store")
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

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
