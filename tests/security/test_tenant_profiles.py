"""Tenant profiles: where the app credential lives (A), which hosts may receive it (B), and no
implicit tenant (E). Real MSAL against the emulator over TLS, the session's real Prefect server,
flows run in-process (this process is the worker; its environment is the worker's)."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from emulator import Emulator
from m365 import build_clients
from m365.config import TenantConfig
from m365.endpoints import ALLOWED_HOSTS_ENV, MICROSOFT_HOSTS, Endpoint, check_endpoints
from m365.errors import ConfigurationError, M365Error
from playbook.rendering import md_escape

from ..handover_keys import PUBLIC_KEY
from ..helpers.runs import ensure_verify_deployment

TENANT = "contoso"
ALEX = "alex@contoso.com"


# The demo app holds User and Exchange Administrator, not Privileged Authentication
# Administrator: only blocking an admin account's sign-in is out of its reach.
ADMIN_ONLY_GAP = {"block_sign_in/enable_sign_in (admin account)"}


def authenticated(report: Any) -> bool:
    """The profile's credential worked: permissions were read, and no step lacks more than
    what the demo app lacks on purpose."""
    return report.graph_permissions is not None and {c.step for c in report.gaps} <= ADMIN_ONLY_GAP


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blocks(prefect_api: str) -> None:
    from orchestration.blocks import register_blocks

    register_blocks()
    ensure_verify_deployment()  # runs that end early schedule their cleanup by name


@pytest.fixture
def config(emulator: Emulator) -> TenantConfig:
    return emulator.tenant_config(TENANT)


def save(block: Any) -> str:
    """Save a profile under a fresh name (clients are cached per name and process)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    block.save(name, overwrite=True)
    return name


def check(profile: str) -> tuple[Any, str]:
    """check-tenant in this process (the worker): its report and its artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.check_tenant import artifact_key, check_tenant

    state = check_tenant(tenant=profile, return_state=True)
    report = state.result(raise_on_failure=False) if state.is_completed() else None
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(profile)])),
            limit=1,
        )
    return report, str(found[0].data) if found else ""


class Listener:
    """A plain TCP listener on 127.0.0.1 that records every connection and every byte."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(1.0)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    it = Listener()
    try:
        yield it
    finally:
        it.close()


def emulator_host(config: TenantConfig) -> str:
    return config.authority_host.removeprefix("https://").split("/")[0]


# -- A: where the credential is ------------------------------------------------------------------


@pytest.mark.usefixtures("blocks")
def test_environment_variable_profile_stores_no_secret_and_authenticates(
    config: TenantConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    from orchestration.blocks import M365Tenant

    assert config.client_secret is not None
    secret = config.client_secret.get_secret_value()
    env_name = f"T_{uuid.uuid4().hex[:8].upper()}_CLIENT_SECRET"
    block = M365Tenant.from_config(
        config, client_secret_env=env_name, handover_public_key=PUBLIC_KEY
    )
    profile = save(block)
    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(
            profile, block_type_slug="m365-tenant", include_secrets=True
        )
    assert secret not in str(doc.data) and doc.data["client_secret_env"] == env_name

    # The worker lacks the variable: check-tenant says which one, and gets no token.
    report, md = check(profile)
    assert report is not None and report.graph_permissions is None
    assert any(env_name in p and "not set on this worker" in p for p in report.problems)
    assert secret not in md

    monkeypatch.setenv(env_name, secret)
    report, md = check(profile)  # the failed build is not cached
    assert report is not None and authenticated(report), report.problems
    assert report.credential is not None and report.credential.worker_side
    assert md_escape(f"environment variable {env_name}") in md and "Warning" not in md
    assert secret not in md


@pytest.mark.usefixtures("blocks")
def test_certificate_file_profile_authenticates_from_the_workers_file(
    emulator: Emulator, tmp_path: Path
) -> None:
    from orchestration.blocks import M365Tenant

    cert = emulator.tenant_config(TENANT, credential="certificate")
    assert cert.certificate_pem is not None
    pem = tmp_path / "unblock-email.pem"
    pem.write_text(cert.certificate_pem.get_secret_value(), encoding="ascii")
    pem.chmod(0o600)
    block = M365Tenant(
        **cert.settings(),
        credential_source="certificate-file",
        certificate_path=str(pem),
        certificate_thumbprint=cert.certificate_thumbprint,
        handover_public_key=PUBLIC_KEY,
    )
    report, md = check(save(block))
    assert report is not None and authenticated(report), report.problems
    assert md_escape(f"certificate file {pem} on the worker") in md and "Warning" not in md
    assert "PRIVATE KEY" not in md
    assert [r for r in emulator.requests if r.endpoint == "token" and r.status == 200]


@pytest.mark.usefixtures("blocks")
def test_secret_in_block_profile_is_reported_with_a_warning(
    config: TenantConfig, caplog: pytest.LogCaptureFixture
) -> None:
    from orchestration.blocks import M365Tenant

    profile = save(M365Tenant.from_config(config))  # no hand-over key either
    report, md = check(profile)
    assert report is not None and authenticated(report)
    assert report.credential is not None and not report.credential.worker_side
    assert md_escape("secret-in-block") in md and "**Warning:**" in md
    assert md_escape("anyone with access to the Prefect API") in md
    assert md_escape("no handover_public_key") in md
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("secret-in-block" in w for w in warnings)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "credential_source"),
        ({"credential_source": "environment-variable"}, "takes client_secret_env"),
        (
            {
                "credential_source": "environment-variable",
                "client_secret_env": "X_SECRET",
                "client_secret": SecretStr("also-in-the-block"),
            },
            "none of the other credential fields",
        ),
        ({"credential_source": "secret-in-block"}, "exactly one of client_secret"),
        ({"credential_source": "certificate-file", "certificate_path": "rel/cert.pem"}, "absolute"),
        (
            {
                "credential_source": "environment-variable",
                "client_secret_env": "PREFECT_API_AUTH_STRING",
            },
            "may not name a PREFECT_",
        ),
        ({"credential_source": "environment-variable", "client_secret_env": "a b"}, "pattern"),
        ({"credential_source": "guess"}, "credential_source"),
    ],
)
def test_the_credential_source_is_explicit_and_consistent(
    fields: dict[str, Any], message: str
) -> None:
    from pydantic import ValidationError

    from orchestration.blocks import M365Tenant

    with pytest.raises(ValidationError, match=message):
        M365Tenant(tenant_id="t", client_id="c", **fields)


# -- B: endpoints pinned to Microsoft ------------------------------------------------------------


def _config(**endpoints: str) -> TenantConfig:
    return TenantConfig(tenant_id="t", client_id="c", client_secret=SecretStr("x"), **endpoints)


@pytest.mark.parametrize(
    ("field", "host"),
    [(field, host) for field in Endpoint for host in sorted(MICROSOFT_HOSTS[field])],
)
def test_every_microsoft_cloud_host_is_accepted(field: Endpoint, host: str) -> None:
    check_endpoints(_config(**{field.value: f"https://{host}/x"}), allowed=())


@pytest.mark.parametrize(
    ("endpoints", "allowed", "refused"),
    [
        ({"authority_host": "https://login.evil.example"}, (), "login.evil.example"),
        ({"graph_base": "https://graph.microsoft.com.evil.example/v1.0"}, (), "evil.example"),
        ({"graph_base": "https://login.microsoftonline.com/v1.0"}, (), "graph_base"),
        ({"exchange_base": "http://outlook.office365.com/adminapi/beta"}, (), "https://"),
        ({"authority_host": "https://login.microsoftonline.com@127.0.0.1"}, (), "user info"),
        ({"graph_base": "https://graph.microsoft.com:8443/v1.0"}, (), "graph.microsoft.com:8443"),
        ({"authority_host": "https://127.0.0.1:9"}, ("127.0.0.1:10",), "127.0.0.1:9"),
        ({"ca_bundle": "/etc/ssl/certs/ca-certificates.crt"}, (), "ca_bundle"),
        (
            {"authority_host": "https://127.0.0.1:9", "ca_bundle": "/tmp/ca.pem"},
            ("127.0.0.1",),
            "ca_bundle",
        ),
    ],
)
def test_other_hosts_and_foreign_ca_files_are_refused(
    endpoints: dict[str, str], allowed: tuple[str, ...], refused: str
) -> None:
    with pytest.raises(ConfigurationError, match=refused.replace(".", r"\.")):
        check_endpoints(_config(**endpoints), allowed=allowed)


def test_the_worker_allowance_is_read_from_the_worker_environment_only() -> None:
    custom = {
        "authority_host": "https://127.0.0.1:9",
        "graph_base": "https://127.0.0.1:9/graph/v1.0",
        "exchange_base": "https://127.0.0.1:9/exo",
        "ca_bundle": "/tmp/ca.pem",
    }
    check_endpoints(_config(**custom), allowed=("127.0.0.1:9",))
    check_endpoints(_config(**custom), allowed=("127.0.0.1",))
    with pytest.raises(ConfigurationError, match=ALLOWED_HOSTS_ENV):
        check_endpoints(_config(**custom), allowed=())


@pytest.mark.usefixtures("blocks")
@pytest.mark.parametrize("field", ["authority_host", "graph_base", "exchange_base"])
def test_a_profile_pointing_elsewhere_gets_no_token_request_and_sends_no_secret(
    emulator: Emulator,
    config: TenantConfig,
    listener: Listener,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
) -> None:
    """The worker allows exactly the emulator; the profile points one endpoint at a listener on
    127.0.0.1 that is not allowed. The run fails before any request: the listener sees nothing,
    the emulator sees no token request, and the error says which host and how to allow it."""
    from orchestration.blocks import M365Tenant

    monkeypatch.setenv(ALLOWED_HOSTS_ENV, emulator_host(config))
    rogue = f"127.0.0.1:{listener.port}"
    url = {
        "authority_host": f"https://{rogue}",
        "graph_base": f"https://{rogue}/graph/v1.0",
        "exchange_base": f"https://{rogue}/exo/adminapi/beta",
    }[field]
    profile = save(
        M365Tenant.from_config(
            config.model_copy(update={field: url}), handover_public_key=PUBLIC_KEY
        )
    )
    emulator.reset()
    state = _run_unblock(profile, ALEX)

    assert state.name == "StepFailed", state.message
    assert f"refused to send the credential of client {config.client_id} to {rogue}" in str(
        state.message
    )
    assert f"{ALLOWED_HOSTS_ENV}={rogue}" in str(state.message)
    assert listener.connections == 0 and listener.received == b""
    assert emulator.requests == [], "no token request, no call at all"
    assert not emulator.writes()


def test_the_listener_does_see_a_token_request_when_the_worker_allows_its_host(
    config: TenantConfig, listener: Listener
) -> None:
    """Control for the test above: allowed, the same configuration does connect there."""
    rogue = f"127.0.0.1:{listener.port}"
    pointed = config.model_copy(update={"authority_host": f"https://{rogue}"})
    allowed = f"{emulator_host(config)},{rogue}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ALLOWED_HOSTS_ENV, allowed)
        with pytest.raises(M365Error):
            build_clients(pointed).tokens.token("https://graph.microsoft.com")
    assert listener.connections >= 1 and listener.received  # a TLS ClientHello at least


def _run_unblock(profile: str, account: str, **extra: Any) -> Any:
    from flows.unblock_user import unblock_user
    from playbook.params import UnblockRequest

    request = UnblockRequest.model_validate(
        {
            "account": account,
            "tenant": profile,
            "ticket": "INC-7001",
            "requested_by": "ann",
            **extra,
        }
    )
    return unblock_user(request=request, return_state=True)


# -- E: no implicit tenant -----------------------------------------------------------------------


M365_ENV = {
    "M365_TENANT_ID": "00000000-0000-0000-0000-000000000001",
    "M365_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
    "M365_CLIENT_SECRET": "env-secret-never-used",
}


@pytest.mark.usefixtures("blocks")
def test_a_missing_profile_fails_even_when_the_m365_environment_is_set(
    emulator: Emulator, config: TenantConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orchestration.blocks
    from orchestration.clients import UnknownTenantProfile, clients_for, load_tenant

    for key, value in {
        **M365_ENV,
        "M365_AUTHORITY_HOST": config.authority_host,
        "M365_GRAPH_BASE": config.graph_base,
        "M365_EXCHANGE_BASE": config.exchange_base,
        "M365_CA_BUNDLE": str(config.ca_bundle),
    }.items():
        monkeypatch.setenv(key, value)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(UnknownTenantProfile, match=f"no M365Tenant block named '{missing}'"):
        load_tenant(missing)
    with pytest.raises(UnknownTenantProfile, match="no M365Tenant block named"):
        clients_for(missing)
    assert not hasattr(orchestration.blocks, "tenant_from_env")

    emulator.reset()
    state = _run_unblock(missing, ALEX)
    assert state.is_failed(), state
    assert f"no M365Tenant block named '{missing}'" in str(state.message)
    assert emulator.requests == []


@pytest.mark.usefixtures("blocks")
def test_a_stored_profile_that_is_not_valid_is_named_without_its_values(
    config: TenantConfig,
) -> None:
    """A profile saved before credential_source existed (or edited into nonsense) fails by
    field name; the error never carries the stored values (they may be secrets)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate

    from orchestration.blocks import M365Tenant
    from orchestration.clients import UnknownTenantProfile, load_tenant

    name = save(M365Tenant.from_config(config))
    secret = "stored-secret-value-that-must-not-show"
    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(
            name, block_type_slug="m365-tenant", include_secrets=True
        )
        data = {**doc.data, "client_secret": secret}
        data.pop("credential_source")
        client.update_block_document(
            doc.id, BlockDocumentUpdate(data=data, merge_existing_data=False)
        )
    with pytest.raises(UnknownTenantProfile) as info:
        load_tenant(name)
    assert "credential_source" in str(info.value) and secret not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


# -- C: no hand-over key, no reset -----------------------------------------------------------


@pytest.mark.usefixtures("blocks")
@pytest.mark.parametrize("handover", ["secret-block", "tap"])
def test_a_profile_without_a_handover_key_changes_nothing(
    emulator: Emulator, config: TenantConfig, handover: str
) -> None:
    from orchestration.blocks import M365Tenant

    profile = save(M365Tenant.from_config(config))
    emulator.reset()
    state = _run_unblock(profile, ALEX, handover=handover)
    assert state.name == "StepFailed", state.message
    assert "has no handover_public_key" in str(state.message)
    assert "keygen" in str(state.message)
    assert emulator.writes() == [], "no reset without a way to hand the password over"


@pytest.mark.usefixtures("blocks")
def test_a_worker_that_pins_the_teams_key_refuses_another(
    emulator: Emulator, config: TenantConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever edits a profile could put their own public key in it; a worker that pins the
    team's key (UNBLOCK_EMAIL_HANDOVER_KEYS) does not seal to theirs."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from orchestration.blocks import M365Tenant
    from orchestration.clients import HANDOVER_KEYS_ENV
    from playbook.sealing import fingerprint, parse_public_key, public_key_text

    team = fingerprint(parse_public_key(PUBLIC_KEY))
    monkeypatch.setenv(HANDOVER_KEYS_ENV, team)
    intruder = public_key_text(X25519PrivateKey.generate().public_key())
    profile = save(M365Tenant.from_config(config, handover_public_key=intruder))
    emulator.reset()
    state = _run_unblock(profile, ALEX)
    assert state.name == "StepFailed", state.message
    assert "which this worker does not accept" in str(state.message)
    assert emulator.writes() == []

    pinned = save(M365Tenant.from_config(config, handover_public_key=PUBLIC_KEY))
    assert _run_unblock(pinned, ALEX).name == "NotRestricted"
