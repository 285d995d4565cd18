"""Token endpoint and discovery, driven by real MSAL over real HTTPS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jwt
import msal
import pytest

from emulator import ROLE_TEMPLATES, Emulator

from .helpers import EXO_SCOPE, GRAPH_SCOPE, https_session, msal_app, one_app_seed

ROOT = Path(__file__).resolve().parents[2]


def test_python_m_emulator_prints_json_line_and_serves_msal() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_PROXY")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(line)
        assert info["authority_host"].startswith("https://127.0.0.1:")
        assert info["graph_base"] == info["authority_host"] + "/graph/v1.0"
        assert info["exchange_base"] == info["authority_host"] + "/exo/adminapi/beta"
        assert Path(info["ca_path"]).is_file()
        app = next(a for a in info["apps"] if a["app"] == "playbook")
        assert app["tenant"] == "contoso" and app["domain"] == "contoso.onmicrosoft.com"
        assert Path(app["certificate_path"]).is_file()
        session = https_session(info["ca_path"])
        client = msal.ConfidentialClientApplication(
            app["client_id"],
            authority=f"{info['authority_host']}/{app['tenant_id']}",
            client_credential=app["client_secret"],
            instance_discovery=False,
            http_client=session,
        )
        result = client.acquire_token_for_client(scopes=GRAPH_SCOPE)
        assert "access_token" in result, result
        state = session.get(info["admin_base"] + "/state", timeout=10).json()
        assert "rob@contoso.com" in json.dumps(state)
        assert app["client_secret"] not in json.dumps(state)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0, stderr
    assert "emulator-secret" not in stderr


def test_client_secret_token_carries_roles_and_wids(emulator: Emulator) -> None:
    result = msal_app(emulator).acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3599
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    tenant = emulator.info.tenants["contoso"]
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["tid"] == tenant.tenant_id
    assert claims["appid"] == tenant.apps["playbook"].client_id
    assert "User-PasswordProfile.ReadWrite.All" in claims["roles"]
    assert "Exchange.ManageAsApp" not in claims["roles"]  # an Exchange permission
    assert ROLE_TEMPLATES["User Administrator"] in claims["wids"]
    assert claims["exp"] - claims["iat"] == 3599

    exo = msal_app(emulator).acquire_token_for_client(scopes=EXO_SCOPE)
    exo_claims = jwt.decode(exo["access_token"], options={"verify_signature": False})
    assert exo_claims["aud"] == "https://outlook.office365.com"
    assert exo_claims["roles"] == ["Exchange.ManageAsApp"]


def test_certificate_credentials_rs256_thumbprint_and_ps256_public_certificate(
    emulator: Emulator,
) -> None:
    app = emulator.info.tenants["contoso"].apps["playbook"]
    assert app.certificate_path is not None and app.certificate_thumbprint is not None
    pem = Path(app.certificate_path).read_text()
    by_thumbprint = msal_app(
        emulator,
        credential={"private_key": pem, "thumbprint": app.certificate_thumbprint},
        authority_tenant="contoso.onmicrosoft.com",  # the domain works as {tenant} too
    )
    assert "access_token" in by_thumbprint.acquire_token_for_client(scopes=GRAPH_SCOPE)
    by_cert = msal_app(emulator, credential={"private_key": pem, "public_certificate": pem})
    assert "access_token" in by_cert.acquire_token_for_client(scopes=EXO_SCOPE)


def test_assertion_signed_with_another_key_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    other = Emulator(emulator.seed, state_dir=tmp_path).start()  # same seed, different keys
    try:
        foreign = Path(
            str(other.info.tenants["contoso"].apps["playbook"].certificate_path)
        ).read_text()
    finally:
        other.stop()
    result = msal_app(emulator, credential={"private_key": foreign, "public_certificate": foreign})
    out = result.acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert out["error"] == "invalid_client"
    assert out["error_codes"] == [700027]


def test_wrong_secret_gives_aadsts7000215(emulator: Emulator) -> None:
    out = msal_app(emulator, credential="not-the-secret").acquire_token_for_client(
        scopes=GRAPH_SCOPE
    )
    assert out["error"] == "invalid_client"
    assert out["error_codes"] == [7000215]
    assert out["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert out["correlation_id"]


def test_unknown_client_unknown_tenant_and_bad_scope(emulator: Emulator) -> None:
    http = https_session(emulator.info.ca_path)
    tenant = emulator.info.tenants["contoso"]
    base = emulator.info.authority_host
    form = {
        "grant_type": "client_credentials",
        "client_id": "00000000-1111-2222-3333-444444444444",
        "client_secret": "x",
        "scope": "https://graph.microsoft.com/.default",
    }
    r = http.post(f"{base}/{tenant.tenant_id}/oauth2/v2.0/token", data=form, timeout=10)
    assert r.status_code == 400
    assert (r.json()["error"], r.json()["error_codes"]) == ("unauthorized_client", [700016])

    r = http.post(f"{base}/nowhere.onmicrosoft.com/oauth2/v2.0/token", data=form, timeout=10)
    assert (r.status_code, r.json()["error"], r.json()["error_codes"]) == (
        400,
        "invalid_request",
        [90002],
    )

    good = dict(
        form,
        client_id=tenant.apps["playbook"].client_id,
        client_secret=str(tenant.apps["playbook"].client_secret),
    )
    r = http.post(
        f"{base}/{tenant.tenant_id}/oauth2/v2.0/token",
        data=dict(good, scope="User.Read.All"),
        timeout=10,
    )
    assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")


def test_discovery_document_is_what_msal_needs(emulator: Emulator) -> None:
    http = https_session(emulator.info.ca_path)
    tenant = emulator.info.tenants["contoso"]
    host = emulator.info.authority_host
    doc = http.get(
        f"{host}/{tenant.tenant_id}/v2.0/.well-known/openid-configuration", timeout=10
    ).json()
    assert doc["token_endpoint"] == f"{host}/{tenant.tenant_id}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"].startswith(f"{host}/{tenant.tenant_id}/")
    assert doc["issuer"] == f"{host}/{tenant.tenant_id}/v2.0"


def test_token_lifetime_is_per_app(tmp_path: Path) -> None:
    seed = one_app_seed(
        "fabrikam",
        "11111111-2222-3333-4444-555555555555",
        "short",
        "a1",
        "fake-short",
        ["User.Read.All"],
        app_fields={"token_lifetime_seconds": 120},
    )
    with Emulator(seed, state_dir=tmp_path) as emu:
        result = msal_app(emu, "short", tenant="fabrikam").acquire_token_for_client(
            scopes=GRAPH_SCOPE
        )
        assert result["expires_in"] == 120


def test_token_endpoint_503_raises_msal_service_error(emulator: Emulator) -> None:
    emulator.faults.add(endpoint="token", kind="503", count=1)
    with pytest.raises(msal.exceptions.MsalServiceError):
        msal_app(emulator).acquire_token_for_client(scopes=GRAPH_SCOPE)
    assert [r.fault for r in emulator.requests if r.endpoint == "token"] == ["503"]
