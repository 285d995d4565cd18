"""MsalTokenProvider with real MSAL against the emulator's token endpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import load_pem_x509_certificate
from pydantic import SecretStr

from emulator import Emulator
from m365 import MsalTokenProvider, TokenProvider, build_clients
from m365.config import TenantConfig
from m365.errors import AuthError

from .helpers import TENANT, calls

GRAPH = "https://graph.microsoft.com"
EXCHANGE = "https://outlook.office365.com"


def cert_app_config(emulator: Emulator) -> TenantConfig:
    apps = emulator.state.tenant(TENANT).apps.values()
    name = next(a.name for a in apps if a.certificate_pem)
    cfg = emulator.tenant_config(TENANT, app=name, credential="certificate")
    assert cfg.certificate_pem is not None
    return cfg


def test_secret_token_is_cached_per_resource(config: TenantConfig, emulator: Emulator) -> None:
    tokens = MsalTokenProvider(config)
    assert isinstance(tokens, TokenProvider)
    graph = tokens.token(GRAPH)
    assert tokens.token(GRAPH) == graph  # MSAL's cache
    exo = tokens.token(EXCHANGE)
    assert exo != graph  # different audience
    assert len(calls(emulator, "token")) == 2


def test_one_msal_app_per_process(config: TenantConfig, emulator: Emulator) -> None:
    first, second = MsalTokenProvider(config), MsalTokenProvider(config)
    assert first.token(GRAPH) == second.token(GRAPH)
    assert len(calls(emulator, "discovery")) == 1  # MSAL's constructor ran once
    assert len(calls(emulator, "token")) == 1


def test_bad_secret_gives_aadsts_7000215(
    config: TenantConfig, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "definitely-not-the-secret-~42"
    bad = config.model_copy(update={"client_secret": SecretStr(secret)})
    tokens = MsalTokenProvider(bad)
    caplog.set_level(logging.DEBUG)
    for _ in range(2):
        with pytest.raises(AuthError) as info:
            tokens.token(GRAPH)
        assert info.value.aadsts_code == 7000215
        assert info.value.error == "invalid_client"
        assert not info.value.retryable
        assert secret not in str(info.value)
    assert secret not in caplog.text
    # MSAL would replay the cached 400 for 60 s; the provider makes it ask again.
    assert len(calls(emulator, "token")) == 2


def test_bad_secret_through_the_clients(config: TenantConfig, emulator: Emulator) -> None:
    bad = config.model_copy(update={"client_secret": SecretStr("wrong")})
    with pytest.raises(AuthError) as info:
        build_clients(bad).graph.get_user(f"x@{emulator.state.tenant(TENANT).domain}")
    assert info.value.aadsts_code == 7000215
    assert calls(emulator, "graph.get_user") == []


def test_unknown_tenant(config: TenantConfig) -> None:
    other = config.model_copy(update={"tenant_id": "11111111-2222-3333-4444-555555555555"})
    with pytest.raises(AuthError) as info:
        MsalTokenProvider(other).token(GRAPH)
    assert "tenant" in str(info.value)


def test_invalidate_then_fresh_token_after_emulator_revokes(
    config: TenantConfig, emulator: Emulator, domain: str
) -> None:
    upn = f"dave@{domain}"
    emulator.state.add_user(TENANT, upn)
    clients = build_clients(config)
    clients.graph.get_user(upn)
    emulator.invalidate_tokens()  # every issued token is now rejected
    assert clients.graph.get_user(upn).user_principal_name == upn
    assert [r.status for r in calls(emulator, "graph.get_user")] == [200, 401, 200]
    assert len(calls(emulator, "token")) == 2


def test_invalidate_drops_only_that_resource(config: TenantConfig, emulator: Emulator) -> None:
    tokens = MsalTokenProvider(config)
    tokens.token(GRAPH)
    tokens.token(EXCHANGE)
    tokens.invalidate(GRAPH)
    tokens.token(EXCHANGE)  # still cached
    tokens.token(GRAPH)  # fetched again
    assert len(calls(emulator, "token")) == 3


def test_certificate_with_thumbprint(emulator: Emulator, domain: str) -> None:
    cfg = cert_app_config(emulator)
    assert cfg.certificate_thumbprint
    upn = f"erin@{domain}"
    emulator.state.add_user(TENANT, upn)
    assert build_clients(cfg).graph.get_user(upn).user_principal_name == upn
    (token,) = calls(emulator, "token")
    assert token.status == 200


def test_certificate_without_thumbprint_uses_public_certificate(emulator: Emulator) -> None:
    cfg = cert_app_config(emulator).model_copy(update={"certificate_thumbprint": None})
    assert MsalTokenProvider(cfg).token(GRAPH)


def test_pfx_credential(emulator: Emulator, tmp_path: Path) -> None:
    cfg = cert_app_config(emulator)
    assert cfg.certificate_pem is not None
    pem = cfg.certificate_pem.get_secret_value().encode()
    key = serialization.load_pem_private_key(pem, password=None)
    cert = load_pem_x509_certificate(pem)
    passphrase = "pfx-pass-123"
    pfx = pkcs12.serialize_key_and_certificates(
        b"unblock",
        key,  # type: ignore[arg-type]
        cert,
        None,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )
    path = tmp_path / "app.pfx"
    path.write_bytes(pfx)
    pfx_cfg = cfg.model_copy(
        update={
            "certificate_pem": None,
            "certificate_thumbprint": None,
            "pfx_path": str(path),
            "pfx_passphrase": SecretStr(passphrase),
        }
    )
    assert MsalTokenProvider(pfx_cfg).token(GRAPH)


def test_wrong_certificate_is_refused(emulator: Emulator) -> None:
    cert_cfg = cert_app_config(emulator)
    reader = emulator.tenant_config(TENANT, app="reader")
    # A certificate the reader app never registered, presented as the reader app.
    wrong = cert_cfg.model_copy(update={"client_id": reader.client_id})
    with pytest.raises(AuthError) as info:
        MsalTokenProvider(wrong).token(GRAPH)
    assert info.value.aadsts_code is not None


def test_no_token_or_secret_in_logs(
    config: TenantConfig, emulator: Emulator, domain: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    upn = f"frank@{domain}"
    emulator.state.add_user(TENANT, upn)
    clients = build_clients(config)
    emulator.faults.add(endpoint="graph.get_user", kind="expired_token", count=1)
    clients.graph.get_user(upn)
    token = clients.tokens.token(GRAPH)
    assert config.client_secret is not None
    assert caplog.records  # something was logged at DEBUG
    assert token not in caplog.text
    assert token.split(".")[1] not in caplog.text  # not even the claims part
    assert config.client_secret.get_secret_value() not in caplog.text
    assert config.client_secret.get_secret_value() not in repr(clients)
