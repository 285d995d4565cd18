"""The seed file: tenants, users, restricted entries and app registrations (YAML or JSON)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# Directory role template ids (the same in every tenant).
ROLE_TEMPLATES: dict[str, str] = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Privileged Authentication Administrator": "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    "Authentication Administrator": "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Exchange Administrator": "29232cdf-9323-42fd-ade2-1d097af3e4de",
    "Exchange Recipient Administrator": "31392ffb-586c-42d1-9346-e59415a2cc4e",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    "Security Reader": "5d6b6bb7-de71-4623-b4af-96380a352509",
    "Security Administrator": "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "Compliance Administrator": "17315797-102d-40b4-93e0-432062caca18",
    "Privileged Role Administrator": "e8611ab8-c189-46e8-94e1-60213ab1f814",
}
ROLE_NAMES: dict[str, str] = {v: k for k, v in ROLE_TEMPLATES.items()}

_NAMESPACE = uuid.UUID("6f1d3c1e-3f0b-4f5e-9a53-0e6d4c0a7a11")


def stable_id(*parts: str) -> str:
    """A GUID that is the same on every start for the same inputs (so ids survive reset)."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(p.lower() for p in parts)))


def role_template_id(value: str) -> str:
    """Accept a role display name or a template id."""
    if value in ROLE_TEMPLATES:
        return ROLE_TEMPLATES[value]
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"unknown directory role {value!r}") from None


_RELATIVE = re.compile(r"^now(?:\s*([+-])\s*((?:\d+[dhms])+))?$")
_RELATIVE_PART = re.compile(r"(\d+)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def relative_datetime(value: object) -> object:
    """``"now"``, ``"now-3d4h"``, ``"now+30m"``: a time relative to when the seed is loaded
    (whole seconds, UTC), so a demo incident is always recent. Anything else is left to pydantic.
    """
    if not isinstance(value, str):
        return value
    m = _RELATIVE.fullmatch(value.strip())
    if m is None:
        return value
    base = datetime.now(UTC).replace(microsecond=0)
    if m.group(1) is None:
        return base
    delta = timedelta(**{_UNITS[unit]: int(n) for n, unit in _RELATIVE_PART.findall(m.group(2))})
    return base - delta if m.group(1) == "-" else base + delta


SeedDatetime = Annotated[datetime, BeforeValidator(relative_datetime)]
# A directory role as a seed names it (display name or template id), kept as its template id.
RoleId = Annotated[str, AfterValidator(role_template_id)]


class _Seed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantSettings(_Seed):
    removal_delay_seconds: float = Field(default=0.0, ge=0)
    unblock_cap: int = Field(default=3, ge=0)
    page_size: int = Field(default=100, ge=1)
    tap_enabled: bool = True
    entra_id_p1: bool = True  # sign-in logs over Graph need Entra ID P1 or P2


class InboxRuleSeed(_Seed):
    name: str
    enabled: bool = True
    hidden: bool = False
    forward_to: list[str] = Field(default_factory=list)
    forward_as_attachment_to: list[str] = Field(default_factory=list)
    redirect_to: list[str] = Field(default_factory=list)
    delete_message: bool = False
    move_to_folder: str | None = None


class ForwardingSeed(_Seed):
    forwarding_address: str | None = None
    forwarding_smtp_address: str | None = None
    deliver_to_mailbox_and_forward: bool = False


MethodType = Literal[
    "phone",
    "email",
    "microsoftAuthenticator",
    "fido2",
    "softwareOath",
    "windowsHelloForBusiness",
    "platformCredential",
]


class AuthMethodSeed(_Seed):
    """A sign-in method besides the password (every user has that one)."""

    type: MethodType
    display_name: str | None = None
    phone_number: str | None = None
    phone_type: Literal["mobile", "alternateMobile", "office"] = "mobile"
    email_address: str | None = None
    registered: SeedDatetime | None = None  # None: before any audit log retention
    registered_by: Literal["user", "admin"] = "user"
    registered_from_ip: str | None = None
    default: bool = False
    passwordless: bool = False  # Authenticator: Graph fills createdDateTime only then


class MailboxPermissionSeed(_Seed):
    user: str
    access_rights: list[str] = Field(default_factory=lambda: ["FullAccess"])


class SignInSeed(_Seed):
    """One interactive sign-in, or ``repeat`` of them ``every_hours`` apart (oldest first)."""

    when: SeedDatetime
    ip: str
    country: str = Field(min_length=2, max_length=2)
    city: str | None = None
    app: str = "One Outlook Web"
    client_app: str = "Browser"
    error_code: int = 0
    failure_reason: str | None = None
    repeat: int = Field(default=1, ge=1, le=500)
    every_hours: float = Field(default=24.0, gt=0)


class OAuthGrantSeed(_Seed):
    """A delegated grant the user consented to; ``consented`` writes the audit event."""

    app: str
    app_id: str | None = None
    publisher: str | None = None
    resource: Literal["Microsoft Graph", "Office 365 Exchange Online"] = "Microsoft Graph"
    scopes: list[str]
    consented: SeedDatetime | None = None
    consented_from_ip: str | None = None


class SentMailSeed(_Seed):
    """A run of sent messages: ``messages`` spread evenly over ``hours`` from ``start``; each goes
    to ``recipients_per_message`` recipients taken in turn from ``recipients`` plus
    ``generated_recipients`` made-up addresses at ``recipient_domains``."""

    start: SeedDatetime
    hours: float = Field(default=1.0, gt=0)
    messages: int = Field(ge=1, le=20_000)
    recipients: list[str] = Field(default_factory=list)
    generated_recipients: int = Field(default=0, ge=0)
    recipient_domains: list[str] = Field(default_factory=lambda: ["example.com"])
    recipients_per_message: int = Field(default=1, ge=1, le=500)
    subjects: list[str] = Field(min_length=1)
    status: str = "Delivered"
    from_ip: str | None = None

    @model_validator(mode="after")
    def _someone(self) -> SentMailSeed:
        if not self.recipients and not self.generated_recipients:
            raise ValueError("sent_mail needs recipients or generated_recipients")
        return self


class UserSeed(_Seed):
    upn: str
    id: str | None = None
    display_name: str | None = None
    mail: str | None = None
    proxy_addresses: list[str] | None = None  # default: ["SMTP:<mail or upn>"]
    enabled: bool = True
    synced: bool = False
    has_mailbox: bool = True
    directory_roles: list[RoleId] = Field(default_factory=list)
    inbox_rules: list[InboxRuleSeed] = Field(default_factory=list)
    forwarding: ForwardingSeed | None = None
    last_password_change: SeedDatetime | None = None
    auth_methods: list[AuthMethodSeed] = Field(default_factory=list)
    mailbox_permissions: list[MailboxPermissionSeed] = Field(default_factory=list)
    send_as: list[str] = Field(default_factory=list)
    send_on_behalf: list[str] = Field(default_factory=list)
    sign_ins: list[SignInSeed] = Field(default_factory=list)
    oauth_grants: list[OAuthGrantSeed] = Field(default_factory=list)
    sent_mail: list[SentMailSeed] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_default(self) -> UserSeed:
        if sum(1 for m in self.auth_methods if m.default) > 1:
            raise ValueError(f"user {self.upn!r} has more than one default sign-in method")
        return self


class RestrictedSeed(_Seed):
    address: str
    reason: str = ""
    created: SeedDatetime | None = None
    temporary_block: bool = False


class GenerateRestricted(_Seed):
    count: int = Field(ge=0)
    prefix: str = "bulk"
    reason: str | None = None


class AppSeed(_Seed):
    name: str
    client_id: str
    client_secret: str | None = None
    certificate: bool = False
    display_name: str | None = None
    roles: list[str] = Field(default_factory=list)
    wids: list[RoleId] = Field(default_factory=list)
    token_lifetime_seconds: int = Field(default=3599, ge=1)
    # Cmdlets the app's Exchange role does not include (RBAC for Applications): Exchange answers
    # as if they did not exist (CommandNotFoundException).
    exchange_hidden_cmdlets: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _credential(self) -> AppSeed:
        if not self.client_secret and not self.certificate:
            raise ValueError(f"app {self.name!r} needs client_secret or certificate: true")
        return self


class TenantSeed(_Seed):
    name: str
    tenant_id: str
    domain: str
    settings: TenantSettings = Field(default_factory=TenantSettings)
    users: list[UserSeed] = Field(default_factory=list)
    restricted: list[RestrictedSeed] = Field(default_factory=list)
    generate_restricted: GenerateRestricted | None = None
    apps: list[AppSeed] = Field(default_factory=list)

    @field_validator("tenant_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        return str(uuid.UUID(value))


class Seed(_Seed):
    tenants: list[TenantSeed]

    @model_validator(mode="after")
    def _unique(self) -> Seed:
        names = [t.name for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError("tenant names must be unique")
        return self


def demo_seed_path() -> Path:
    """The demo tenant shipped with the package."""
    return Path(__file__).resolve().parent / "seeds" / "demo.yaml"


def load_seed(source: str | Path | dict[str, Any] | Seed) -> Seed:
    """Load a seed from a YAML/JSON file, a dict or a ``Seed``."""
    if isinstance(source, Seed):
        return source
    if isinstance(source, dict):
        return Seed.model_validate(source)
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    return Seed.model_validate(data)
