"""The live tenant state. Every mutation happens under ``EmulatorState.lock``.

Passwords and TAPs are stored only as salted PBKDF2 hashes; the plaintext never outlives
the request that carried it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .seed import (
    ROLE_NAMES,
    ROLE_TEMPLATES,
    AuthMethodSeed,
    OAuthGrantSeed,
    Seed,
    SentMailSeed,
    TenantSeed,
    TenantSettings,
    UserSeed,
    stable_id,
)

_PBKDF2_ROUNDS = 20_000
ADMIN_ROLE_IDS = frozenset(ROLE_NAMES)  # any directory role counts as "admin" for resets


def utcnow() -> datetime:
    return datetime.now(UTC)


def _hash_secret(value: str) -> tuple[bytes, bytes]:
    salt = secrets.token_bytes(16)
    return salt, hashlib.pbkdf2_hmac("sha256", value.encode("utf-8"), salt, _PBKDF2_ROUNDS)


def _matches(salt: bytes | None, digest: bytes | None, candidate: str) -> bool:
    if salt is None or digest is None:
        return False
    probe = hashlib.pbkdf2_hmac("sha256", candidate.encode("utf-8"), salt, _PBKDF2_ROUNDS)
    return hmac.compare_digest(probe, digest)


@dataclass
class InboxRuleRecord:
    rule_id: str
    name: str
    enabled: bool = True
    hidden: bool = False
    priority: int = 1
    forward_to: list[str] = field(default_factory=list)
    forward_as_attachment_to: list[str] = field(default_factory=list)
    redirect_to: list[str] = field(default_factory=list)
    delete_message: bool = False
    move_to_folder: str | None = None


# Fixed ids Graph uses in every tenant (learn.microsoft.com, passwordAuthenticationMethod and
# phoneAuthenticationMethod resources).
PASSWORD_METHOD_ID = "28c10230-6103-485e-b985-444c60001490"  # noqa: S105 - an id
PHONE_METHOD_IDS = {
    "mobile": "3179e48a-750b-4051-897c-87b9720928f7",
    "alternateMobile": "b6332ec1-7057-4abe-9331-3d72feddfe41",
    "office": "e37fc753-ff3b-4958-9484-eaa9425c82bc",
}
# How the "... registered security info" events name a method in resultReason [UNCONFIRMED].
METHOD_LABELS = {
    "phone": "Mobile Phone",
    "email": "Email",
    "microsoftAuthenticator": "Authenticator App with Notification and Code",
    "fido2": "FIDO2 Security Key",
    "softwareOath": "Software OATH token",
    "windowsHelloForBusiness": "Windows Hello for Business",
    "platformCredential": "Platform Credential",
    "temporaryAccessPass": "Temporary Access Pass",
}
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
RESOURCE_APPS = {"Microsoft Graph": GRAPH_APP_ID, "Office 365 Exchange Online": EXCHANGE_APP_ID}


@dataclass
class AuthMethodRecord:
    id: str
    kind: str
    display_name: str | None = None
    created: datetime | None = None
    is_default: bool = False
    phone_number: str | None = None
    phone_type: str | None = None
    email_address: str | None = None
    passwordless: bool = False


@dataclass
class PermissionRecord:
    user: str
    access_rights: list[str]


@dataclass
class SignInRecord:
    id: str
    when: datetime
    ip: str
    country: str
    city: str | None
    app: str
    client_app: str
    error_code: int
    failure_reason: str | None


@dataclass
class TraceRow:
    trace_id: str
    received: datetime
    sender: str
    recipient: str
    subject: str
    status: str
    from_ip: str | None
    size: int


@dataclass
class ServicePrincipalRecord:
    id: str
    app_id: str
    display_name: str
    publisher: str | None = None


@dataclass
class GrantRecord:
    id: str
    client_id: str  # service principal object id
    principal_id: str  # user object id
    resource_id: str  # resource service principal object id
    scopes: list[str]


@dataclass
class AuditRecord:
    id: str
    activity: str
    when: datetime
    category: str
    service: str
    operation_type: str
    result_reason: str
    initiated_by: dict[str, Any]
    targets: list[dict[str, Any]]
    details: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class UserRecord:
    id: str
    upn: str
    display_name: str
    mail: str | None
    proxy_addresses: list[str]
    enabled: bool = True
    synced: bool = False
    has_mailbox: bool = True
    directory_roles: list[str] = field(default_factory=list)
    inbox_rules: list[InboxRuleRecord] = field(default_factory=list)
    forwarding_address: str | None = None
    forwarding_smtp_address: str | None = None
    deliver_to_mailbox_and_forward: bool = False
    created: datetime = field(default_factory=utcnow)
    last_password_change: datetime | None = None
    force_change_password_next_sign_in: bool = False
    force_change_password_next_sign_in_with_mfa: bool = False
    password_resets: int = 0
    session_revocations: int = 0
    sign_in_sessions_valid_from: datetime | None = None
    taps_created: int = 0
    tap_id: str | None = None
    tap_lifetime_minutes: int | None = None
    tap_usable_once: bool | None = None
    tap_created: datetime | None = None
    auth_methods: list[AuthMethodRecord] = field(default_factory=list)
    mailbox_permissions: list[PermissionRecord] = field(default_factory=list)
    send_as: list[str] = field(default_factory=list)
    send_on_behalf: list[str] = field(default_factory=list)
    sign_ins: list[SignInRecord] = field(default_factory=list)
    _password_salt: bytes | None = field(default=None, repr=False)
    _password_hash: bytes | None = field(default=None, repr=False)
    _tap_salt: bytes | None = field(default=None, repr=False)
    _tap_hash: bytes | None = field(default=None, repr=False)

    @property
    def alias(self) -> str:
        return self.upn.split("@", 1)[0]

    @property
    def primary_smtp(self) -> str:
        for proxy in self.proxy_addresses:
            if proxy.startswith("SMTP:"):
                return proxy[5:]
        return self.mail or self.upn

    def smtp_addresses(self) -> list[str]:
        """UPN, mail and every smtp proxy, lower-cased."""
        out = [self.upn.lower()]
        if self.mail:
            out.append(self.mail.lower())
        for proxy in self.proxy_addresses:
            scheme, _, address = proxy.partition(":")
            if scheme.lower() == "smtp" and address:
                out.append(address.lower())
        return list(dict.fromkeys(out))

    def set_password(self, password: str, *, force_change: bool, with_mfa: bool) -> None:
        self._password_salt, self._password_hash = _hash_secret(password)
        self.last_password_change = utcnow()
        self.force_change_password_next_sign_in = force_change
        self.force_change_password_next_sign_in_with_mfa = with_mfa
        self.password_resets += 1

    def password_matches(self, candidate: str) -> bool:
        return _matches(self._password_salt, self._password_hash, candidate)

    def set_tap(self, tap: str, *, lifetime: int, usable_once: bool) -> str:
        self._tap_salt, self._tap_hash = _hash_secret(tap)
        self.tap_id = secrets.token_hex(16)
        self.tap_lifetime_minutes = lifetime
        self.tap_usable_once = usable_once
        self.tap_created = utcnow()
        self.taps_created += 1
        return self.tap_id

    def tap_matches(self, candidate: str) -> bool:
        return _matches(self._tap_salt, self._tap_hash, candidate)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "userPrincipalName": self.upn,
            "displayName": self.display_name,
            "mail": self.mail,
            "accountEnabled": self.enabled,
            "onPremisesSyncEnabled": self.synced,
            "directoryRoles": [ROLE_NAMES.get(r, r) for r in self.directory_roles],
            "lastPasswordChangeDateTime": _iso(self.last_password_change),
            "forceChangePasswordNextSignIn": self.force_change_password_next_sign_in,
            "passwordResets": self.password_resets,
            "sessionRevocations": self.session_revocations,
            "signInSessionsValidFromDateTime": _iso(self.sign_in_sessions_valid_from),
            "tapsCreated": self.taps_created,
            "forwardingSmtpAddress": self.forwarding_smtp_address,
            "forwardingAddress": self.forwarding_address,
            "deliverToMailboxAndForward": self.deliver_to_mailbox_and_forward,
            "inboxRules": [
                {"name": r.name, "enabled": r.enabled, "hidden": r.hidden} for r in self.inbox_rules
            ],
            "authMethods": [
                {"type": m.kind, "displayName": m.display_name, "default": m.is_default}
                for m in self.auth_methods
            ],
            "mailboxPermissions": [
                {"user": p.user, "accessRights": list(p.access_rights)}
                for p in self.mailbox_permissions
            ],
            "sendAs": list(self.send_as),
            "sendOnBehalf": list(self.send_on_behalf),
        }


@dataclass
class RestrictedEntry:
    address: str
    reason: str
    created: datetime
    changed: datetime
    temporary_block: bool = False
    removal_due: float | None = None  # time.monotonic() when the removal takes effect
    removal_reason: str | None = None
    removal_requested: datetime | None = None

    @property
    def pending_removal(self) -> bool:
        return self.removal_due is not None

    def summary(self) -> dict[str, Any]:
        return {
            "senderAddress": self.address,
            "reason": self.reason,
            "created": _iso(self.created),
            "pendingRemoval": self.pending_removal,
            "removalReason": self.removal_reason,
        }


@dataclass
class AppRecord:
    name: str
    client_id: str
    display_name: str
    roles: list[str]
    wids: list[str]
    token_lifetime_seconds: int
    client_secret: str | None = None
    certificate_path: str | None = None
    certificate_thumbprint: str | None = None  # SHA-1, upper-case hex
    certificate_sha256: str | None = None
    certificate_pem: str | None = field(default=None, repr=False)  # key + cert
    public_key: RSAPublicKey | None = field(default=None, repr=False)
    service_principal_id: str = ""
    exchange_hidden_cmdlets: frozenset[str] = frozenset()


@dataclass
class TenantState:
    name: str
    tenant_id: str
    domain: str
    settings: TenantSettings
    users: dict[str, UserRecord] = field(default_factory=dict)
    restricted: dict[str, RestrictedEntry] = field(default_factory=dict)  # key: lower address
    unblock_counts: dict[str, int] = field(default_factory=dict)
    apps: dict[str, AppRecord] = field(default_factory=dict)  # key: lower client id
    service_principals: dict[str, ServicePrincipalRecord] = field(default_factory=dict)
    grants: dict[str, GrantRecord] = field(default_factory=dict)
    audits: list[AuditRecord] = field(default_factory=list)
    message_trace: list[TraceRow] = field(default_factory=list)

    @property
    def log_retention(self) -> timedelta:
        """Audit and sign-in logs: 30 days with Entra ID P1/P2, 7 days on Free."""
        return timedelta(days=30 if self.settings.entra_id_p1 else 7)

    def service_principal(self, object_id: str) -> ServicePrincipalRecord | None:
        k = object_id.lower()
        found = self.service_principals.get(k)
        if found:
            return found
        for app in self.apps.values():
            if app.service_principal_id.lower() == k:
                return ServicePrincipalRecord(
                    app.service_principal_id, app.client_id, app.display_name
                )
        return None

    def audit(
        self,
        activity: str,
        when: datetime,
        *,
        service: str,
        category: str,
        operation_type: str,
        result_reason: str,
        initiated_by: dict[str, Any],
        targets: list[dict[str, Any]],
        details: list[tuple[str, str]] | None = None,
    ) -> AuditRecord:
        """Append one directory audit event."""
        record = AuditRecord(
            id=f"{service.replace(' ', '')}_{secrets.token_hex(8)}",
            activity=activity,
            when=when,
            category=category,
            service=service,
            operation_type=operation_type,
            result_reason=result_reason,
            initiated_by=initiated_by,
            targets=targets,
            details=list(details or ()),
        )
        self.audits.append(record)
        return record

    def matches(self, key: str) -> bool:
        k = key.lower()
        return k == self.tenant_id.lower() or k == self.domain.lower()

    def user(self, identifier: str) -> UserRecord | None:
        """By object id or UPN (what Graph ``/users/{x}`` accepts)."""
        k = identifier.lower()
        for user in self.users.values():
            if user.id.lower() == k or user.upn.lower() == k:
                return user
        return None

    def user_by_address(self, identifier: str) -> UserRecord | None:
        """By id, UPN, mail or any SMTP proxy address, alias or display name (EXO Identity)."""
        found = self.user(identifier)
        if found:
            return found
        k = identifier.lower().removeprefix("smtp:")
        for user in self.users.values():
            if k in user.smtp_addresses():
                return user
        for user in self.users.values():
            if k in (user.alias.lower(), user.display_name.lower()):
                return user
        return None

    def app(self, client_id: str) -> AppRecord | None:
        return self.apps.get(client_id.lower())

    def role_object_id(self, template_id: str) -> str:
        return stable_id(self.tenant_id, "directoryRole", template_id)

    def purge_restricted(self, now: float | None = None) -> None:
        """Drop entries whose removal has taken effect."""
        now = time.monotonic() if now is None else now
        gone = [
            k
            for k, e in self.restricted.items()
            if e.removal_due is not None and e.removal_due <= now
        ]
        for k in gone:
            del self.restricted[k]

    def visible_restricted(self) -> list[RestrictedEntry]:
        self.purge_restricted()
        return sorted(self.restricted.values(), key=lambda e: (e.created, e.address.lower()))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def stable_user_id(tenant: TenantSeed, seed: UserSeed) -> str:
    return seed.id or stable_id(tenant.tenant_id, "user", seed.upn)


def _user_from_seed(tenant: TenantSeed, seed: UserSeed) -> UserRecord:
    proxies = seed.proxy_addresses
    if proxies is None:
        proxies = [f"SMTP:{seed.mail or seed.upn}"]
    user = UserRecord(
        id=stable_user_id(tenant, seed),
        upn=seed.upn,
        display_name=seed.display_name or seed.upn.split("@", 1)[0],
        mail=seed.mail,
        proxy_addresses=list(proxies),
        enabled=seed.enabled,
        synced=seed.synced,
        has_mailbox=seed.has_mailbox,
        directory_roles=list(seed.directory_roles),
        last_password_change=seed.last_password_change,
        created=seed.last_password_change or datetime(2023, 1, 9, 8, 0, tzinfo=UTC),
    )
    for index, rule in enumerate(seed.inbox_rules, start=1):
        user.inbox_rules.append(
            InboxRuleRecord(
                rule_id=str(int(stable_id(user.id, rule.name).replace("-", "")[:15], 16)),
                name=rule.name,
                enabled=rule.enabled,
                hidden=rule.hidden,
                priority=index,
                forward_to=list(rule.forward_to),
                forward_as_attachment_to=list(rule.forward_as_attachment_to),
                redirect_to=list(rule.redirect_to),
                delete_message=rule.delete_message,
                move_to_folder=rule.move_to_folder,
            )
        )
    if seed.forwarding:
        user.forwarding_address = seed.forwarding.forwarding_address
        user.forwarding_smtp_address = seed.forwarding.forwarding_smtp_address
        user.deliver_to_mailbox_and_forward = seed.forwarding.deliver_to_mailbox_and_forward
    return user


def initiated_by_user(user: UserRecord, ip: str | None = None) -> dict[str, Any]:
    return {
        "user": {
            "id": user.id,
            "displayName": user.display_name,
            "userPrincipalName": user.upn,
            "ipAddress": ip,
        },
        "app": None,
    }


def initiated_by_app(app: AppRecord | None) -> dict[str, Any]:
    return {
        "user": None,
        "app": {
            "appId": app.client_id if app else None,
            "displayName": app.display_name if app else None,
            "servicePrincipalId": app.service_principal_id if app else None,
            "servicePrincipalName": None,
        },
    }


def user_target(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.id,
        "displayName": user.display_name,
        "type": "User",
        "userPrincipalName": user.upn,
        "modifiedProperties": [],
    }


def audit_security_info(
    ts: TenantState,
    user: UserRecord,
    activity: str,
    when: datetime,
    *,
    operation_type: str,
    result_reason: str,
    initiated_by: dict[str, Any],
) -> None:
    """A "... security info" event. Registrations and deletions share one service, category and
    target, so the client's security-info query sees both or neither."""
    ts.audit(
        activity,
        when,
        service="Authentication Methods",
        category="UserManagement",
        operation_type=operation_type,
        result_reason=result_reason,
        initiated_by=initiated_by,
        targets=[user_target(user)],
    )


def audit_grant(
    ts: TenantState,
    activity: str,
    when: datetime,
    *,
    operation_type: str,
    initiated_by: dict[str, Any],
    client: tuple[str, str | None],
    modified: list[dict[str, Any]] | None = None,
) -> None:
    """A delegated-permission event (consent or removal) on the client app's service principal
    (``client``: its id and display name)."""
    ts.audit(
        activity,
        when,
        service="Core Directory",
        category="ApplicationManagement",
        operation_type=operation_type,
        result_reason="",
        initiated_by=initiated_by,
        targets=[
            {
                "id": client[0],
                "displayName": client[1],
                "type": "ServicePrincipal",
                "userPrincipalName": None,
                "modifiedProperties": modified or [],
            }
        ],
    )


def _method_from_seed(ts: TenantState, user: UserRecord, seed: AuthMethodSeed) -> AuthMethodRecord:
    if seed.type == "phone":
        method_id = PHONE_METHOD_IDS[seed.phone_type]
    else:
        index = sum(1 for m in user.auth_methods if m.kind == seed.type)
        method_id = stable_id(user.id, "method", seed.type, str(index))
    return AuthMethodRecord(
        id=method_id,
        kind=seed.type,
        display_name=seed.display_name,
        created=seed.registered,
        is_default=seed.default,
        phone_number=seed.phone_number,
        phone_type=seed.phone_type if seed.type == "phone" else None,
        email_address=seed.email_address,
        passwordless=seed.passwordless,
    )


def record_registration(
    ts: TenantState,
    user: UserRecord,
    method: AuthMethodRecord,
    when: datetime,
    *,
    by_admin: bool,
    ip: str | None = None,
    app: AppRecord | None = None,
) -> None:
    """The "User/Admin registered security info" event for a new method."""
    label = METHOD_LABELS.get(method.kind, method.kind)
    if by_admin:
        admin = next(
            (
                u
                for u in ts.users.values()
                if ROLE_TEMPLATES["Global Administrator"] in u.directory_roles
            ),
            None,
        )
        initiator = initiated_by_app(app) if app or admin is None else initiated_by_user(admin, ip)
        activity, reason = "Admin registered security info", f"Admin registered {label} for user"
    else:
        initiator = initiated_by_user(user, ip)
        activity, reason = "User registered security info", f"User registered {label}"
    audit_security_info(
        ts, user, activity, when, operation_type="Add", result_reason=reason, initiated_by=initiator
    )


def _resource_sp(ts: TenantState, name: str) -> ServicePrincipalRecord:
    app_id = RESOURCE_APPS[name]
    sp_id = stable_id(ts.tenant_id, "servicePrincipal", app_id)
    sp = ts.service_principals.get(sp_id)
    if sp is None:
        sp = ServicePrincipalRecord(sp_id, app_id, name, "Microsoft Services")
        ts.service_principals[sp_id] = sp
    return sp


def grant_id(client_id: str, principal_id: str, resource_id: str) -> str:
    """Graph's grant ids are opaque base64url strings; derived here so they survive a reset."""
    raw = hashlib.sha256(f"{client_id}|{principal_id}|{resource_id}".encode()).digest()[:33]
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _grant_from_seed(ts: TenantState, user: UserRecord, seed: OAuthGrantSeed) -> None:
    app_id = seed.app_id or stable_id(ts.tenant_id, "thirdPartyApp", seed.app)
    sp_id = stable_id(ts.tenant_id, "servicePrincipal", app_id)
    client = ts.service_principals.setdefault(
        sp_id, ServicePrincipalRecord(sp_id, app_id, seed.app, seed.publisher)
    )
    resource = _resource_sp(ts, seed.resource)
    gid = grant_id(client.id, user.id, resource.id)
    ts.grants[gid] = GrantRecord(gid, client.id, user.id, resource.id, list(seed.scopes))
    if seed.consented is not None:
        audit_grant(
            ts,
            "Consent to application",
            seed.consented,
            operation_type="Assign",
            initiated_by=initiated_by_user(user, seed.consented_from_ip),
            client=(client.id, client.display_name),
            modified=[
                {
                    "displayName": "ConsentContext.IsAdminConsent",
                    "oldValue": None,
                    "newValue": '"False"',
                },
                {
                    "displayName": "ConsentAction.Permissions",
                    "oldValue": None,
                    "newValue": '"Scope: ' + " ".join(seed.scopes) + '"',
                },
            ],
        )


def _sent_mail_from_seed(ts: TenantState, user: UserRecord, seed: SentMailSeed) -> None:
    pool = list(seed.recipients)
    domains = seed.recipient_domains or ["example.com"]
    for i in range(seed.generated_recipients):
        digest = hashlib.sha256(f"{user.id}|{i}".encode()).hexdigest()[:6]
        pool.append(f"contact{i:04d}.{digest}@{domains[i % len(domains)]}")
    step = timedelta(hours=seed.hours) / seed.messages
    cursor = 0
    for n in range(seed.messages):
        received = (seed.start + step * n).replace(microsecond=0)
        trace_id = stable_id(user.id, "trace", seed.start.isoformat(), str(n))
        subject = seed.subjects[n % len(seed.subjects)]
        for _ in range(seed.recipients_per_message):
            recipient = pool[cursor % len(pool)]
            cursor += 1
            ts.message_trace.append(
                TraceRow(
                    trace_id=trace_id,
                    received=received,
                    sender=user.primary_smtp,
                    recipient=recipient,
                    subject=subject,
                    status=seed.status,
                    from_ip=seed.from_ip,
                    size=18_000 + (n % 7) * 1_000,
                )
            )


def _compromise_from_seed(ts: TenantState, user: UserRecord, seed: UserSeed) -> None:
    """Sign-in methods, delegates, sign-ins, grants and sent mail of one seeded user."""
    for m in seed.auth_methods:
        method = _method_from_seed(ts, user, m)
        user.auth_methods.append(method)
        if m.registered is not None:
            record_registration(
                ts,
                user,
                method,
                m.registered,
                by_admin=m.registered_by == "admin",
                ip=m.registered_from_ip,
            )
    user.mailbox_permissions = [
        PermissionRecord(p.user, list(p.access_rights)) for p in seed.mailbox_permissions
    ]
    user.send_as = list(seed.send_as)
    user.send_on_behalf = list(seed.send_on_behalf)
    for si in seed.sign_ins:
        for k in range(si.repeat):
            when = si.when + timedelta(hours=si.every_hours * k)
            user.sign_ins.append(
                SignInRecord(
                    id=stable_id(user.id, "signin", when.isoformat(), si.ip, str(k)),
                    when=when,
                    ip=si.ip,
                    country=si.country,
                    city=si.city,
                    app=si.app,
                    client_app=si.client_app,
                    error_code=si.error_code,
                    failure_reason=si.failure_reason,
                )
            )
    for g in seed.oauth_grants:
        _grant_from_seed(ts, user, g)
    for sent in seed.sent_mail:
        _sent_mail_from_seed(ts, user, sent)


class EmulatorState:
    """All tenants. Use ``with state.lock:`` around multi-step reads in tests."""

    def __init__(self, seed: Seed, apps: dict[tuple[str, str], AppRecord]) -> None:
        self.lock = threading.RLock()
        self.tenants: dict[str, TenantState] = {}
        self._load(seed, apps)

    def reload(self, seed: Seed, apps: dict[tuple[str, str], AppRecord]) -> None:
        """Back to the seed (in place, so handlers holding this object see the reset)."""
        with self.lock:
            self.tenants = {}
            self._load(seed, apps)

    def _load(self, seed: Seed, apps: dict[tuple[str, str], AppRecord]) -> None:
        for t in seed.tenants:
            ts = TenantState(
                name=t.name,
                tenant_id=t.tenant_id,
                domain=t.domain,
                settings=t.settings.model_copy(),
            )
            for u in t.users:
                user = _user_from_seed(t, u)
                ts.users[user.id] = user
            for u in t.users:
                _compromise_from_seed(ts, ts.users[stable_user_id(t, u)], u)
            for r in t.restricted:
                created = r.created or utcnow()
                ts.restricted[r.address.lower()] = RestrictedEntry(
                    r.address, r.reason, created, created, r.temporary_block
                )
            if t.generate_restricted:
                _generate(t, ts)
            for a in t.apps:
                app = apps[(t.name, a.name)]
                ts.apps[app.client_id.lower()] = app
            self.tenants[t.name] = ts

    # ---- lookups -------------------------------------------------------------------------

    def tenant(self, key: str) -> TenantState:
        """By name, tenant id or domain. KeyError if unknown."""
        if key in self.tenants:
            return self.tenants[key]
        found = self.find_tenant(key)
        if found is None:
            raise KeyError(key)
        return found

    def find_tenant(self, key: str) -> TenantState | None:
        for ts in self.tenants.values():
            if ts.matches(key):
                return ts
        return None

    def user(self, tenant: str, identifier: str) -> UserRecord:
        """A user by id, UPN or any SMTP address. KeyError if unknown."""
        with self.lock:
            found = self.tenant(tenant).user_by_address(identifier)
        if found is None:
            raise KeyError(identifier)
        return found

    def entry(self, tenant: str, address: str) -> RestrictedEntry | None:
        """The restricted entry for ``address`` as ``Get-BlockedSenderAddress`` would see it."""
        with self.lock:
            ts = self.tenant(tenant)
            ts.purge_restricted()
            return ts.restricted.get(address.lower())

    def is_restricted(self, tenant: str, address: str) -> bool:
        return self.entry(tenant, address) is not None

    def restricted_addresses(self, tenant: str) -> list[str]:
        with self.lock:
            return [e.address for e in self.tenant(tenant).visible_restricted()]

    def unblock_count(self, tenant: str, address: str) -> int:
        with self.lock:
            return self.tenant(tenant).unblock_counts.get(address.lower(), 0)

    def password_matches(
        self, user: UserRecord | str, candidate: str, tenant: str | None = None
    ) -> bool:
        """True if ``candidate`` is the user's current password (only the hash is stored)."""
        with self.lock:
            return self._record(user, tenant).password_matches(candidate)

    def tap_matches(
        self, user: UserRecord | str, candidate: str, tenant: str | None = None
    ) -> bool:
        with self.lock:
            return self._record(user, tenant).tap_matches(candidate)

    def _record(self, user: UserRecord | str, tenant: str | None) -> UserRecord:
        """The record itself, or the user with this id or address in ``tenant`` (any tenant)."""
        if isinstance(user, UserRecord):
            return user
        tenants = [self.tenant(tenant)] if tenant else list(self.tenants.values())
        for ts in tenants:
            found = ts.user_by_address(user)
            if found:
                return found
        raise KeyError(user)

    # ---- mutations for tests and the admin API ---------------------------------------------

    def restrict(
        self,
        tenant: str,
        address: str,
        reason: str = "",
        created: datetime | None = None,
        temporary_block: bool = False,
    ) -> RestrictedEntry:
        """Put ``address`` on the Restricted users list (replacing any entry for it)."""
        when = created or utcnow()
        entry = RestrictedEntry(address, reason, when, when, temporary_block)
        with self.lock:
            self.tenant(tenant).restricted[address.lower()] = entry
        return entry

    def add_user(self, tenant: str, upn: str, **fields: Any) -> UserRecord:
        """Add a user; ``fields`` are those of a seed user (display_name, mail, synced,
        auth_methods, sign_ins, oauth_grants, sent_mail...)."""
        with self.lock:
            ts = self.tenant(tenant)
            seed = TenantSeed(name=ts.name, tenant_id=ts.tenant_id, domain=ts.domain)
            user_seed = UserSeed(upn=upn, **fields)
            user = _user_from_seed(seed, user_seed)
            ts.users[user.id] = user
            _compromise_from_seed(ts, user, user_seed)
            return user

    def update_settings(self, tenant: str, **settings: Any) -> TenantSettings:
        """Change tenant settings (removal_delay_seconds, unblock_cap, page_size, tap_enabled)."""
        with self.lock:
            ts = self.tenant(tenant)
            ts.settings = ts.settings.model_copy(update=settings)
            TenantSettings.model_validate(ts.settings.model_dump())
            return ts.settings

    def summary(self) -> dict[str, Any]:
        """Everything a test or the demo may look at. No secrets, no hashes."""
        with self.lock:
            out: dict[str, Any] = {}
            for ts in self.tenants.values():
                out[ts.name] = {
                    "tenant_id": ts.tenant_id,
                    "domain": ts.domain,
                    "settings": ts.settings.model_dump(),
                    "users": [u.summary() for u in ts.users.values()],
                    "restricted": [e.summary() for e in ts.visible_restricted()],
                    "unblock_counts": dict(ts.unblock_counts),
                    "oauthGrants": [
                        {
                            "id": g.id,
                            "principalId": g.principal_id,
                            "app": sp.display_name
                            if (sp := ts.service_principal(g.client_id))
                            else None,
                            "scope": " ".join(g.scopes),
                        }
                        for g in ts.grants.values()
                    ],
                    "apps": [
                        {
                            "name": a.name,
                            "client_id": a.client_id,
                            "roles": a.roles,
                            "wids": [ROLE_NAMES.get(w, w) for w in a.wids],
                        }
                        for a in ts.apps.values()
                    ],
                }
            return out


def _generate(tenant: TenantSeed, ts: TenantState) -> None:
    gen = tenant.generate_restricted
    assert gen is not None
    domain = tenant.domain
    base = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    for i in range(gen.count):
        upn = f"{gen.prefix}{i:05d}@{domain}"
        user = _user_from_seed(
            tenant, UserSeed(upn=upn, display_name=f"{gen.prefix} {i:05d}", mail=upn)
        )
        ts.users[user.id] = user
        reason = gen.reason or (
            "OutboundSpamLast24Hours=120;OutboundMailLast24Hours=130;OutboundSpamPercent=92.31;"
            f"Last Spam Message MessagetraceId:{stable_id(upn, 'trace')}"
        )
        created = base + timedelta(seconds=i)
        ts.restricted[upn.lower()] = RestrictedEntry(upn, reason, created, created)
