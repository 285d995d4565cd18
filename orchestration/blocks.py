"""The ``M365Tenant`` block: one tenant profile, editable in the Prefect UI.

The profile names the tenant, the app registration, its endpoints (``m365.config.TenantSettings``,
shared with ``TenantConfig``) and *where the credential is*, which it says explicitly
(``credential_source``, required):

- ``certificate-file`` (recommended): a PEM file (private key and certificate) on every worker;
- ``environment-variable`` (recommended): the client secret in a worker environment variable
  whose name the profile gives, e.g. ``CONTOSO_CLIENT_SECRET``;
- ``secret-in-block`` (demo only): the secret or certificate stored in this block. Everyone who
  can use the Prefect API (the UI's shared credential) can read it, and so can anyone with a
  database backup: the Fernet key of block data lives in the same database.

In the first two modes the Prefect database and API hold only a path or a variable name. The
profile also holds the hand-over team's *public* key (``playbook.sealing``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, model_validator

from m365.config import TenantConfig, TenantSettings
from m365.errors import ConfigurationError
from playbook.sealing import PUBLIC_KEY_PATTERN

ENV_NAME_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}$"
# A profile may not name the worker's own Prefect or playbook settings as its "secret".
_RESERVED_ENV_PREFIXES = ("PREFECT_", "UNBLOCK_EMAIL_")
_MAX_CERTIFICATE_FILE = 64 * 1024

CredentialSource = Literal["certificate-file", "environment-variable", "secret-in-block"]
WORKER_SIDE: frozenset[str] = frozenset({"certificate-file", "environment-variable"})
IN_BLOCK_EXPOSURE = (
    "anyone with access to the Prefect API (the UI's shared credential) or a database backup "
    "can read this credential"
)


class M365Tenant(Block, TenantSettings):
    """A Microsoft 365 tenant the playbooks may act on, and the app registration they act as."""

    _block_type_name: ClassVar[str] = "M365 Tenant"
    _block_type_slug: ClassVar[str] = "m365-tenant"
    _description: ClassVar[str] = (
        "Tenant id, app registration, where its credential is (on the workers, recommended), "
        "endpoints, and the hand-over team's public key, for the unblock-email playbooks."
    )

    credential_source: CredentialSource = Field(
        description="Where the app credential is. 'certificate-file' or 'environment-variable' "
        "(recommended): on the workers, out of Prefect's reach. 'secret-in-block' (demo only): "
        f"stored in this block; {IN_BLOCK_EXPOSURE}."
    )
    certificate_path: str | None = Field(
        default=None,
        description="certificate-file: absolute path, on every worker, of the PEM file with the "
        "private key and the certificate",
    )
    certificate_thumbprint: str | None = Field(
        default=None,
        description="SHA-1 thumbprint of the certificate, hex (optional: else computed from "
        "the certificate in the PEM)",
    )
    client_secret_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="environment-variable: the name of the worker environment variable that "
        "holds the client secret, e.g. CONTOSO_CLIENT_SECRET",
    )
    client_secret: SecretStr | None = Field(
        default=None,
        description=f"secret-in-block only (demo): the client secret; {IN_BLOCK_EXPOSURE}",
    )
    certificate_pem: SecretStr | None = Field(
        default=None,
        description="secret-in-block only (demo): PEM with the private key and the certificate; "
        f"{IN_BLOCK_EXPOSURE}",
    )
    handover_public_key: str | None = Field(
        default=None,
        pattern=PUBLIC_KEY_PATTERN,
        description="The hand-over team's public key (x25519:...; python -m orchestration.handover "
        "keygen prints it). New passwords and TAPs are stored only sealed to it. Without it, "
        "runs that hand a credential over refuse to reset.",
    )
    policy: str = Field(
        default="report",
        description="Sweep policy for this tenant: 'report' or 'contain'",
        pattern="^(report|contain)$",
    )

    @model_validator(mode="after")
    def _credential_matches_source(self) -> M365Tenant:
        fields = ("certificate_path", "client_secret_env", "client_secret", "certificate_pem")
        given = {name for name in fields if getattr(self, name) is not None}
        wanted: dict[str, set[str]] = {
            "certificate-file": {"certificate_path"},
            "environment-variable": {"client_secret_env"},
        }
        if self.credential_source == "secret-in-block":
            if given not in ({"client_secret"}, {"certificate_pem"}):
                raise ValueError(
                    "credential_source 'secret-in-block' takes exactly one of client_secret or "
                    "certificate_pem, and no certificate_path or client_secret_env"
                )
        elif given != wanted[self.credential_source]:
            (field,) = wanted[self.credential_source]
            raise ValueError(
                f"credential_source {self.credential_source!r} takes {field} and none of the "
                "other credential fields"
            )
        if self.client_secret_env is not None and self.client_secret_env.startswith(
            _RESERVED_ENV_PREFIXES
        ):
            raise ValueError("client_secret_env may not name a PREFECT_ or UNBLOCK_EMAIL_ variable")
        if self.certificate_path is not None and not os.path.isabs(self.certificate_path):
            raise ValueError("certificate_path must be an absolute path")
        if self.certificate_thumbprint is not None and self.client_secret_env is not None:
            raise ValueError("certificate_thumbprint goes with a certificate, not a client secret")
        return self

    @property
    def worker_side(self) -> bool:
        """True when Prefect holds no credential for this profile (the recommended modes)."""
        return self.credential_source in WORKER_SIDE

    def credential_summary(self) -> str:
        """Where the credential is, in words (no secret): for check-tenant and the docs."""
        if self.credential_source == "certificate-file":
            return f"certificate file {self.certificate_path} on the worker"
        if self.credential_source == "environment-variable":
            return f"client secret in the worker's environment variable {self.client_secret_env}"
        what = "client secret" if self.client_secret is not None else "certificate"
        return f"{what} stored in the block (demo only: {IN_BLOCK_EXPOSURE})"

    def to_config(self, environ: Mapping[str, str] | None = None) -> TenantConfig:
        """The connection settings with the credential resolved, on the worker that runs this.

        ``environ``: the worker environment (default ``os.environ``), read only for the variable
        this profile names. Raises ``ConfigurationError`` naming what is missing, never a value.
        """
        settings = self.settings()
        if self.credential_source == "environment-variable":
            assert self.client_secret_env is not None
            env = os.environ if environ is None else environ
            value = env.get(self.client_secret_env, "")
            if not value:
                raise ConfigurationError(
                    f"the tenant profile takes its client secret from the environment variable "
                    f"{self.client_secret_env}, which is not set on this worker"
                )
            return TenantConfig(**settings, client_secret=SecretStr(value))
        if self.credential_source == "certificate-file":
            assert self.certificate_path is not None
            pem = _read_certificate_file(Path(self.certificate_path))
            return TenantConfig(
                **settings,
                certificate_pem=pem,
                certificate_thumbprint=self.certificate_thumbprint,
            )
        return TenantConfig(
            **settings,
            client_secret=self.client_secret,
            certificate_pem=self.certificate_pem,
            certificate_thumbprint=self.certificate_thumbprint,
        )

    @classmethod
    def from_config(
        cls,
        config: TenantConfig,
        *,
        policy: str = "report",
        handover_public_key: str | None = None,
        client_secret_env: str | None = None,
    ) -> M365Tenant:
        """A profile with ``config``'s tenant and endpoints (tests, the demo, the benchmarks).

        With ``client_secret_env`` the secret stays on the workers (``environment-variable``; the
        caller puts it in the workers' environment); without, ``config``'s credential is stored in
        the block (``secret-in-block``, demo only).
        """
        credential: dict[str, object]
        if client_secret_env is not None:
            credential = {
                "credential_source": "environment-variable",
                "client_secret_env": client_secret_env,
            }
        else:
            credential = {
                "credential_source": "secret-in-block",
                "client_secret": config.client_secret,
                "certificate_pem": config.certificate_pem,
                "certificate_thumbprint": config.certificate_thumbprint,
            }
        return cls(
            **config.settings(),
            **credential,
            handover_public_key=handover_public_key,
            policy=policy,
        )


def _read_certificate_file(path: Path) -> SecretStr:
    """The PEM of a certificate-file profile, read on the worker (a regular file, at most 64 KiB,
    so a profile cannot make the worker read a device or a huge file)."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_CERTIFICATE_FILE:
            raise ConfigurationError(
                f"certificate file {path} is not a regular file of at most 64 KiB"
            )
        data = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"certificate file {path} cannot be read on this worker ({type(exc).__name__})"
        ) from None
    if "PRIVATE KEY-----" not in data:
        raise ConfigurationError(f"certificate file {path} holds no PEM private key")
    return SecretStr(data)


def register_blocks() -> None:
    """Register the project's block types with the Prefect API (idempotent).

    Same effect as ``prefect block register -m orchestration.blocks``; afterwards "M365 Tenant"
    can be created and edited in the UI (Blocks > Add).
    """
    M365Tenant.register_type_and_schema()
