"""Least-privilege preflight: what each playbook step needs, and what the app is missing.

Pure logic, no Prefect and no I/O. ``flows/check_tenant.py`` gathers the facts (token claims for
Graph and Exchange, the service principal's directory roles) and hands them to :func:`analyse`,
which answers, step by step, "would this step work, and if not, which permission or role is
missing?" before an incident needs the answer.

Sources for the table: Microsoft's "App-only authentication for unattended scripts in Exchange
Online PowerShell" (learn.microsoft.com/powershell/exchange/app-only-auth-powershell-v2), the
Graph permissions reference (learn.microsoft.com/graph/permissions-reference) and each Graph
call's own "Permissions" section:

- Graph application permissions arrive in the Graph token's ``roles`` claim;
  ``Exchange.ManageAsApp`` arrives in the Exchange token's ``roles`` claim.
- Directory roles of the service principal arrive in both tokens' ``wids`` claim (role template
  ids) and are also read from Graph (``get_service_principal_roles``); the union counts.
- Each requirement lists alternatives: *any one* of its permissions, and *any one* of its roles
  (no roles listed: none needed). Where Microsoft asks for two permissions together (the audit and
  sign-in logs: ``AuditLog.Read.All`` *and* ``Directory.Read.All``), ``also`` holds the second
  group: any one of it as well.
- The eviction steps follow docs/eviction-evidence.md ("Permissions"). Blocking or re-enabling
  sign-in of an account that holds a privileged admin role is its own row: Microsoft's
  sensitive-action rule wants Privileged Authentication Administrator (or Global Administrator)
  on the app for such targets; User Administrator covers ordinary accounts and a few lesser roles.
"""

from __future__ import annotations

import base64
import binascii
import json
from enum import StrEnum
from typing import Any, TypedDict, Unpack

from pydantic import Field, ValidationError

from .frozen import Frozen
from .rendering import render


class Api(StrEnum):
    """The API (token audience) a step calls."""

    GRAPH = "graph"
    EXCHANGE = "exchange"


class StepStatus(StrEnum):
    READY = "ready"  # every permission and role is present
    MISSING = "missing"  # a permission or a directory role is absent
    UNKNOWN = "unknown"  # no token for this API, so the grant cannot be read


class Role(Frozen):
    """An Entra directory role, by its tenant-independent template id."""

    template_id: str
    display_name: str


# Built-in role template ids (identical in every tenant).
GLOBAL_ADMINISTRATOR = Role(
    template_id="62e90394-69f5-4237-9190-012177145e10", display_name="Global Administrator"
)
USER_ADMINISTRATOR = Role(
    template_id="fe930be7-5e62-47db-91af-98c3a49a38b1", display_name="User Administrator"
)
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = Role(
    template_id="7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    display_name="Privileged Authentication Administrator",
)
EXCHANGE_ADMINISTRATOR = Role(
    template_id="29232cdf-9323-42fd-ade2-1d097af3e4de", display_name="Exchange Administrator"
)
EXCHANGE_RECIPIENT_ADMINISTRATOR = Role(
    template_id="31392ffb-586c-42d1-9346-e59415a2cc4e",
    display_name="Exchange Recipient Administrator",
)
SECURITY_ADMINISTRATOR = Role(
    template_id="194ae4cb-b126-40b2-bd5b-6091b380977d", display_name="Security Administrator"
)
SECURITY_READER = Role(
    template_id="5d6b6bb7-de71-4623-b4af-96380a352509", display_name="Security Reader"
)
GLOBAL_READER = Role(
    template_id="f2ef992c-3afb-46b9-b7cf-a126ee74c451", display_name="Global Reader"
)

KNOWN_ROLES: dict[str, Role] = {
    r.template_id: r
    for r in (
        GLOBAL_ADMINISTRATOR,
        USER_ADMINISTRATOR,
        PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
        EXCHANGE_ADMINISTRATOR,
        EXCHANGE_RECIPIENT_ADMINISTRATOR,
        SECURITY_ADMINISTRATOR,
        SECURITY_READER,
        GLOBAL_READER,
    )
}

EXCHANGE_MANAGE_AS_APP = "Exchange.ManageAsApp"

# Roles that let an app with Exchange.ManageAsApp read or change the Restricted users list.
# Security Administrator is deliberately absent from the write set: Microsoft's app-only page says
# it lacks the anti-spam cmdlets (m365-api-notes §1.2).
_EXO_READ_ROLES = (
    EXCHANGE_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    GLOBAL_READER,
    SECURITY_READER,
    SECURITY_ADMINISTRATOR,
)
_EXO_WRITE_ROLES = (EXCHANGE_ADMINISTRATOR, GLOBAL_ADMINISTRATOR)
# Which role holds Get-Mailbox/Get-InboxRule for an app is not documented; the read set above is
# what the emulator enforces for every Get-* cmdlet.
_EXO_MAILBOX_READ_ROLES = _EXO_READ_ROLES
_PASSWORD_ROLES = (
    USER_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
)
# Eviction (docs/eviction-evidence.md, "Permissions").
_AUDIT_LOG = ("AuditLog.Read.All",)
_READ_DIRECTORY = ("Directory.Read.All", "Directory.ReadWrite.All")
_READ_USER = (
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
)
_ENABLE_DISABLE = ("User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All")
_PRIVILEGED_TARGET_ROLES = (PRIVILEGED_AUTHENTICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR)


class Requirement(Frozen):
    """What one playbook step needs from the tenant."""

    flow: str
    step: str
    api: Api
    permissions: tuple[str, ...] = Field(description="application permissions; any one suffices")
    also: tuple[str, ...] = Field(
        default=(), description="and any one of these as well (empty: nothing more)"
    )
    roles: tuple[Role, ...] = Field(default=(), description="directory roles; any one suffices")
    condition: str | None = Field(default=None, description="when the step runs at all")
    why: str = ""


class _Extra(TypedDict, total=False):
    """Optional Requirement fields; only the ones given are set, as when spelled out in full."""

    condition: str


class _GraphExtra(_Extra, total=False):
    also: tuple[str, ...]
    roles: tuple[Role, ...]


def _graph(
    step: str,
    permissions: tuple[str, ...],
    why: str,
    *,
    flow: str = "unblock-user",
    **extra: Unpack[_GraphExtra],
) -> Requirement:
    return Requirement(
        flow=flow, step=step, api=Api.GRAPH, permissions=permissions, why=why, **extra
    )


def _exchange(
    step: str,
    roles: tuple[Role, ...],
    why: str,
    *,
    flow: str = "unblock-user",
    **extra: Unpack[_Extra],
) -> Requirement:
    # Every Exchange step needs Exchange.ManageAsApp; the directory role is what varies.
    return Requirement(
        flow=flow,
        step=step,
        api=Api.EXCHANGE,
        permissions=(EXCHANGE_MANAGE_AS_APP,),
        roles=roles,
        why=why,
        **extra,
    )


REQUIREMENTS: tuple[Requirement, ...] = (
    _graph("resolve_account", _READ_USER, "GET /users/{id} and the proxyAddresses lookup"),
    _graph(
        "review_admin_roles",
        ("RoleManagement.Read.Directory", "Directory.Read.All"),
        "GET /users/{id}/memberOf (privileged-account guardrail)",
    ),
    _graph(
        "reset_password",
        ("User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All"),
        "PATCH /users/{id} passwordProfile needs the permission and a directory role",
        roles=_PASSWORD_ROLES,
    ),
    _graph(
        "revoke_sessions",
        ("User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
        "POST /users/{id}/revokeSignInSessions",
    ),
    _graph(
        "hand_over_credential",
        ("UserAuthenticationMethod.ReadWrite.All",),
        "POST, then GET /users/{id}/authentication/temporaryAccessPassMethods (create the "
        "pass, then check it is the one in force)",
        condition="only when handover = tap",
    ),
    _exchange(
        "review_inbox_rules", _EXO_MAILBOX_READ_ROLES, "Get-InboxRule -IncludeHidden (evidence)"
    ),
    _exchange(
        "review_mailbox_forwarding",
        _EXO_MAILBOX_READ_ROLES,
        "Get-Mailbox forwarding fields (evidence)",
    ),
    _exchange(
        "disable_suspicious_rules",
        _EXO_WRITE_ROLES,
        "Disable-InboxRule",
        condition="only when the approver ticks it",
    ),
    _exchange(
        "clear_forwarding",
        _EXO_WRITE_ROLES,
        "Set-Mailbox -ForwardingSmtpAddress $null",
        condition="only when the approver ticks it",
    ),
    _exchange("find_restricted_entry", _EXO_READ_ROLES, "Get-BlockedSenderAddress"),
    _exchange("unblock_sender", _EXO_WRITE_ROLES, "Remove-BlockedSenderAddress"),
    _exchange("confirm_unblock", _EXO_READ_ROLES, "Get-BlockedSenderAddress after the removal"),
    _graph(
        "block_sign_in",
        _ENABLE_DISABLE,
        "PATCH /users/{id} accountEnabled=false (containment)",
        also=_READ_USER,
        condition="only when block_sign_in is set",
    ),
    _graph(
        "enable_sign_in",
        _ENABLE_DISABLE,
        "PATCH /users/{id} accountEnabled=true",
        also=_READ_USER,
        condition="only when the approver re-enables sign-in",
    ),
    _graph(
        "block_sign_in/enable_sign_in (admin account)",
        _ENABLE_DISABLE,
        "accountEnabled is a sensitive property: for a target holding e.g. Global "
        "Administrator the app itself needs a higher role",
        also=_READ_USER,
        roles=_PRIVILEGED_TARGET_ROLES,
        condition="only for an account holding a privileged admin role",
    ),
    _graph(
        "review_sign_in_methods",
        ("UserAuthenticationMethod.Read.All", "UserAuthenticationMethod.ReadWrite.All"),
        "GET /users/{id}/authentication/methods (evidence)",
    ),
    _graph(
        "review_sign_in_methods (registration dates)",
        _AUDIT_LOG,
        "GET auditLogs/directoryAudits: the registered security info events",
        also=_READ_DIRECTORY,
    ),
    _graph(
        "review_sign_ins",
        _AUDIT_LOG,
        "GET auditLogs/signIns (the tenant also needs Microsoft Entra ID P1 or P2)",
        also=_READ_DIRECTORY,
    ),
    _graph(
        "review_oauth_grants",
        (
            "DelegatedPermissionGrant.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ),
        "GET /users/{id}/oauth2PermissionGrants (evidence)",
    ),
    _graph(
        "review_oauth_grants (app names)",
        ("Application.Read.All", "Directory.Read.All", "Directory.ReadWrite.All"),
        "GET /servicePrincipals/{id} for the names of the consented apps",
    ),
    _graph(
        "review_oauth_grants (consent times)",
        _AUDIT_LOG,
        "GET auditLogs/directoryAudits: the Consent to application events",
        also=_READ_DIRECTORY,
    ),
    _exchange(
        "review_mailbox_delegates",
        _EXO_MAILBOX_READ_ROLES,
        "Get-MailboxPermission, Get-RecipientPermission, Get-Mailbox (evidence)",
    ),
    _exchange("review_sent_mail", _EXO_MAILBOX_READ_ROLES, "Get-MessageTraceV2 (evidence)"),
    _graph(
        "remove_sign_in_methods",
        ("UserAuthenticationMethod.ReadWrite.All",),
        "DELETE /users/{id}/authentication/<type>Methods/{id}",
        condition="only when the approver removes flagged sign-in methods",
    ),
    _graph(
        "revoke_oauth_grants",
        ("DelegatedPermissionGrant.ReadWrite.All", "Directory.ReadWrite.All"),
        "DELETE /oauth2PermissionGrants/{id}",
        condition="only when the approver revokes flagged grants",
    ),
    _exchange(
        "remove_mailbox_delegates",
        _EXO_WRITE_ROLES,
        "Remove-MailboxPermission, Remove-RecipientPermission, Set-Mailbox "
        "-GrantSendOnBehalfTo @{remove=...}",
        condition="only when the approver removes flagged delegates",
    ),
    _exchange(
        "confirm_unblock",
        _EXO_READ_ROLES,
        "Get-BlockedSenderAddress hours later",
        flow="verify-unblock",
    ),
    _exchange(
        "list_restricted_entries",
        _EXO_READ_ROLES,
        "Get-BlockedSenderAddress for the whole tenant",
        flow="restricted-sweep",
    ),
    _graph(
        "resolve_entries",
        _READ_USER,
        "GET /users/{address} for every listed sender",
        flow="restricted-sweep",
    ),
)


class TokenClaims(Frozen):
    """The parts of an access token the preflight reads. Never holds the token itself."""

    audience: str = ""
    tenant_id: str = ""
    app_id: str = ""
    roles: tuple[str, ...] = ()
    wids: tuple[str, ...] = ()


class TokenProblem(ValueError):
    """The access token is not a readable JWT (message never contains the token)."""


def read_claims(access_token: str) -> TokenClaims:
    """Decode the payload of our own access token, without verifying the signature.

    Verification is Entra's and the resource's job; we only read what was granted to us. The
    token is not copied into the result or into any error message.
    """
    parts = access_token.split(".")
    if len(parts) != 3:
        raise TokenProblem("the access token is not a JWT (expected three dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError):
        raise TokenProblem("the access token payload is not base64url JSON") from None
    if not isinstance(data, dict):
        raise TokenProblem("the access token payload is not a JSON object")

    def strings(value: object) -> tuple[str, ...]:
        if isinstance(value, list):
            return tuple(sorted({v for v in value if isinstance(v, str)}))
        return ()

    def text(value: object) -> str:
        return value if isinstance(value, str) else ""

    try:
        return TokenClaims(
            audience=text(data.get("aud")),
            tenant_id=text(data.get("tid")),
            app_id=text(data.get("appid")) or text(data.get("azp")),
            roles=strings(data.get("roles")),
            wids=strings(data.get("wids")),
        )
    except ValidationError:
        raise TokenProblem("the access token claims are malformed") from None


class ApiAccess(Frozen):
    """What one API's token says, or why there is no token."""

    api: Api
    permissions: tuple[str, ...] | None = Field(
        default=None, description="roles claim; None when no token could be acquired"
    )
    wids: tuple[str, ...] = ()
    problem: str | None = Field(default=None, description="why no token (safe text)")


class GrantedAccess(Frozen):
    """Facts gathered by check-tenant."""

    graph: ApiAccess
    exchange: ApiAccess
    service_principal_roles: tuple[Role, ...] | None = Field(
        default=None, description="from Graph; None when they could not be read"
    )
    service_principal_roles_problem: str | None = None

    def access(self, api: Api) -> ApiAccess:
        return self.graph if api is Api.GRAPH else self.exchange

    def role_ids(self) -> frozenset[str]:
        ids = {w.lower() for w in self.graph.wids} | {w.lower() for w in self.exchange.wids}
        for role in self.service_principal_roles or ():
            ids.add(role.template_id.lower())
        return frozenset(ids)


class CredentialCheck(Frozen):
    """Where the profile keeps the app credential, and whether runs can seal a hand-over."""

    source: str = Field(description="the profile's credential_source")
    where: str = Field(description="where the credential is, in words (never the credential)")
    worker_side: bool
    handover_key: str | None = Field(
        default=None, description="fingerprint of the hand-over public key; None: no key"
    )

    @property
    def warnings(self) -> tuple[str, ...]:
        found = []
        if not self.worker_side:
            found.append(
                "The app credential is stored in the tenant profile block (secret-in-block, demo "
                "only): anyone with access to the Prefect API or a database backup can read it "
                "and act on the whole tenant outside the playbook. Keep it on the workers: "
                "credential_source certificate-file or environment-variable."
            )
        if self.handover_key is None:
            found.append(
                "The profile has no handover_public_key: runs that hand a password or TAP over "
                "refuse to reset (python -m orchestration.handover keygen creates one)."
            )
        return tuple(found)


def credential_check(
    source: str, where: str, *, worker_side: bool, handover_key: str | None
) -> CredentialCheck:
    return CredentialCheck(
        source=source, where=where, worker_side=worker_side, handover_key=handover_key
    )


class StepCheck(Frozen):
    flow: str
    step: str
    api: Api
    status: StepStatus
    condition: str | None = None
    missing_permissions: tuple[str, ...] = Field(
        default=(), description="grant any one of these (empty: nothing missing)"
    )
    also_missing: tuple[str, ...] = Field(
        default=(), description="and any one of these as well (empty: nothing more)"
    )
    missing_roles: tuple[str, ...] = Field(
        default=(), description="assign any one of these directory roles (empty: nothing missing)"
    )
    explanation: str


class PreflightReport(Frozen):
    """The answer of check-tenant: which step would fail, and what to grant."""

    tenant: str
    client_id: str = ""
    checks: tuple[StepCheck, ...]
    graph_permissions: tuple[str, ...] | None = None
    exchange_permissions: tuple[str, ...] | None = None
    directory_roles: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    credential: CredentialCheck | None = None

    @property
    def ready(self) -> bool:
        return all(c.status is StepStatus.READY for c in self.checks)

    @property
    def gaps(self) -> tuple[StepCheck, ...]:
        return tuple(c for c in self.checks if c.status is not StepStatus.READY)

    def check(self, step: str, flow: str = "unblock-user") -> StepCheck:
        for c in self.checks:
            if c.step == step and c.flow == flow:
                return c
        raise KeyError(f"{flow}/{step}")

    def unknown_steps_by_api(self) -> list[tuple[str, list[str]]]:
        grouped: dict[str, list[str]] = {}
        for c in self.checks:
            if c.status is StepStatus.UNKNOWN:
                grouped.setdefault(c.api.value, []).append(f"{c.flow}/{c.step}")
        return sorted(grouped.items())

    def summary(self) -> str:
        if self.ready:
            return f"{len(self.checks)} step(s) checked; every permission and role is present"
        missing = sum(1 for c in self.checks if c.status is StepStatus.MISSING)
        unknown = sum(1 for c in self.checks if c.status is StepStatus.UNKNOWN)
        return (
            f"{len(self.checks)} step(s) checked: {missing} missing a permission or role, "
            f"{unknown} not checkable"
        )


def role_name(template_id: str) -> str:
    role = KNOWN_ROLES.get(template_id.lower())
    return role.display_name if role else template_id


def check_step(requirement: Requirement, granted: GrantedAccess) -> StepCheck:
    """One requirement against the granted access."""
    access = granted.access(requirement.api)
    base = {
        "flow": requirement.flow,
        "step": requirement.step,
        "api": requirement.api,
        "condition": requirement.condition,
    }
    if access.permissions is None:
        return StepCheck(
            **base,
            status=StepStatus.UNKNOWN,
            explanation=(
                f"no {requirement.api.value} token, so its permissions cannot be read: "
                f"{access.problem or 'token acquisition failed'}"
            ),
        )
    have = {p.lower() for p in access.permissions}
    groups = [g for g in (requirement.permissions, requirement.also) if g]
    unmet = [g for g in groups if not any(p.lower() in have for p in g)]
    permission_ok = not unmet
    role_ids = granted.role_ids()
    role_ok = not requirement.roles or any(r.template_id in role_ids for r in requirement.roles)
    if permission_ok and role_ok:
        return StepCheck(**base, status=StepStatus.READY, explanation=requirement.why)
    # The first unmet group is "grant any one of these"; a second one is "and one of these".
    missing_permissions = unmet[0] if unmet else ()
    also_missing = unmet[1] if len(unmet) > 1 else ()
    missing_roles = () if role_ok else tuple(r.display_name for r in requirement.roles)
    parts = []
    if missing_permissions:
        parts.append(
            f"grant the {requirement.api.value} application permission "
            + " or ".join(missing_permissions)
            + (" and " + " or ".join(also_missing) if also_missing else "")
            + " (admin consent)"
        )
    if missing_roles:
        parts.append(
            "assign the directory role " + " or ".join(missing_roles) + " to the service principal"
        )
    return StepCheck(
        **base,
        status=StepStatus.MISSING,
        missing_permissions=missing_permissions,
        also_missing=also_missing,
        missing_roles=missing_roles,
        explanation=f"{requirement.step} would fail ({requirement.why}): " + "; ".join(parts),
    )


def analyse(
    tenant: str,
    granted: GrantedAccess,
    *,
    client_id: str = "",
    requirements: tuple[Requirement, ...] = REQUIREMENTS,
    credential: CredentialCheck | None = None,
) -> PreflightReport:
    """The gap analysis: every requirement checked against what the tenant granted."""
    problems = [
        f"{a.api.value} token: {a.problem}"
        for a in (granted.graph, granted.exchange)
        if a.problem is not None
    ]
    if granted.service_principal_roles_problem:
        problems.append(
            "service principal roles: "
            + granted.service_principal_roles_problem
            + " (the token's wids claim was used instead)"
        )
    return PreflightReport(
        tenant=tenant,
        client_id=client_id,
        checks=tuple(check_step(r, granted) for r in requirements),
        graph_permissions=granted.graph.permissions,
        exchange_permissions=granted.exchange.permissions,
        directory_roles=tuple(sorted(role_name(r) for r in granted.role_ids())),
        problems=tuple(problems),
        credential=credential,
    )


# --- rendering -------------------------------------------------------------------------------


def render_report(report: PreflightReport) -> str:
    """The markdown artifact of check-tenant (``templates/preflight.md.j2``); values escaped."""
    return render("preflight.md.j2", report=report)
