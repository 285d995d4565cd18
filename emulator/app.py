"""``Emulator``: the public entry point used by tests, the demo and ``python -m emulator``."""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from pydantic import BaseModel, SecretStr

from m365.config import TenantConfig

from .core import Core
from .crypto import KeyPair, make_ca, make_client_cert, make_server_cert, new_rsa_key, write_file
from .faults import Faults
from .recording import RecordedRequest
from .seed import Seed, load_seed, stable_id
from .server import TLSServer
from .state import AppRecord, EmulatorState
from .tokens import TokenService

log = logging.getLogger("emulator")


class AppInfo(BaseModel):
    name: str
    client_id: str
    client_secret: str | None = None  # fake value from the seed
    certificate_path: str | None = None  # PEM with private key + certificate
    certificate_thumbprint: str | None = None  # SHA-1, upper-case hex


class TenantInfo(BaseModel):
    name: str
    tenant_id: str
    domain: str
    apps: dict[str, AppInfo]


class EmulatorInfo(BaseModel):
    authority_host: str  # https://127.0.0.1:P  (authority = f"{authority_host}/{tenant_id}")
    graph_base: str  # https://127.0.0.1:P/graph/v1.0
    exchange_base: str  # https://127.0.0.1:P/exo/adminapi/beta
    admin_base: str  # https://127.0.0.1:P/_emulator
    ca_path: str
    state_dir: str
    tenants: dict[str, TenantInfo]

    def launch_json(self) -> dict[str, Any]:
        """The first stdout line of ``python -m emulator``: the info plus a flat app list."""
        data = self.model_dump(mode="json")
        data["apps"] = [
            {
                "tenant": t.name,
                "tenant_id": t.tenant_id,
                "domain": t.domain,
                "app": a.name,
                "client_id": a.client_id,
                "client_secret": a.client_secret,
                "certificate_path": a.certificate_path,
                "certificate_thumbprint": a.certificate_thumbprint,
            }
            for t in self.tenants.values()
            for a in t.apps.values()
        ]
        return data


class Emulator:
    """A fake Microsoft 365 tenant on https://127.0.0.1 (see docs/architecture.md)."""

    def __init__(
        self,
        seed: Seed | dict[str, Any] | str | Path,
        *,
        port: int = 0,
        state_dir: str | Path | None = None,
        fault_seed: int = 1234,
    ) -> None:
        self.seed = load_seed(seed)
        self._port = port
        self._state_dir_arg = Path(state_dir) if state_dir else None
        self._fault_seed = fault_seed
        self._owns_state_dir = False
        self._server: TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._core: Core | None = None
        self._apps: dict[tuple[str, str], AppRecord] = {}
        self._info: EmulatorInfo | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        if self._server is not None:
            return self
        if self._state_dir_arg is None:
            state_dir = Path(tempfile.mkdtemp(prefix="unblock-emulator-"))
            self._owns_state_dir = True
        else:
            state_dir = self._state_dir_arg
            state_dir.mkdir(parents=True, exist_ok=True)
        ca = make_ca()
        server_cert = make_server_cert(ca)
        ca_path = state_dir / "ca.pem"
        write_file(ca_path, ca.cert_pem())
        write_file(state_dir / "server.pem", server_cert.cert_pem() + ca.cert_pem())
        write_file(state_dir / "server.key", server_cert.key_pem(), private=True)
        self._apps = self._make_apps(state_dir)
        state = EmulatorState(self.seed, self._apps)
        core = Core(state, TokenService(new_rsa_key()))
        core.faults.reseed(self._fault_seed)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(state_dir / "server.pem", state_dir / "server.key")
        server = TLSServer(("127.0.0.1", self._port), context, core)
        host = server.base_url
        self._info = EmulatorInfo(
            authority_host=host,
            graph_base=f"{host}/graph/v1.0",
            exchange_base=f"{host}/exo/adminapi/beta",
            admin_base=f"{host}/_emulator",
            ca_path=str(ca_path),
            state_dir=str(state_dir),
            tenants={
                t.name: TenantInfo(
                    name=t.name,
                    tenant_id=t.tenant_id,
                    domain=t.domain,
                    apps={
                        a.name: AppInfo(
                            name=a.name,
                            client_id=a.client_id,
                            client_secret=self._apps[(t.name, a.name)].client_secret,
                            certificate_path=self._apps[(t.name, a.name)].certificate_path,
                            certificate_thumbprint=self._apps[
                                (t.name, a.name)
                            ].certificate_thumbprint,
                        )
                        for a in t.apps
                    },
                )
                for t in self.seed.tenants
            },
        )
        core.info_json = self._info.launch_json()
        core.reset_hook = self.reset
        self._core = core
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="emulator", daemon=True
        )
        self._thread.start()
        log.info("emulator listening on %s (state dir %s)", host, state_dir)
        return self

    def _make_apps(self, state_dir: Path) -> dict[tuple[str, str], AppRecord]:
        apps: dict[tuple[str, str], AppRecord] = {}
        for t in self.seed.tenants:
            for a in t.apps:
                record = AppRecord(
                    name=a.name,
                    client_id=a.client_id,
                    display_name=a.display_name or a.name,
                    roles=list(a.roles),
                    wids=list(a.wids),
                    token_lifetime_seconds=a.token_lifetime_seconds,
                    client_secret=a.client_secret,
                    service_principal_id=stable_id(t.tenant_id, "servicePrincipal", a.client_id),
                    exchange_hidden_cmdlets=frozenset(c.lower() for c in a.exchange_hidden_cmdlets),
                )
                if a.certificate:
                    pair: KeyPair = make_client_cert(f"{t.name}-{a.name}")
                    path = state_dir / "apps" / f"{t.name}-{a.name}.pem"
                    pem = pair.key_pem() + pair.cert_pem()
                    write_file(path, pem, private=True)
                    record.certificate_path = str(path)
                    record.certificate_pem = pem.decode("ascii")
                    record.certificate_thumbprint = pair.sha1_thumbprint
                    record.certificate_sha256 = pair.sha256_thumbprint
                    record.public_key = pair.key.public_key()
                apps[(t.name, a.name)] = record
        return apps

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        if self._owns_state_dir and self._info is not None:
            shutil.rmtree(self._info.state_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to the seed; clears faults, latency and the request log. Issued "
        "tokens stay valid."""
        core = self._require()
        core.state.reload(self.seed, self._apps)
        core.faults.clear()
        core.log.clear()
        core.latency = 0.0
        core.exo_budget.clear()

    # ---- API for tests -----------------------------------------------------------------------

    def _require(self) -> Core:
        if self._core is None:
            raise RuntimeError("the emulator is not started")
        return self._core

    @property
    def info(self) -> EmulatorInfo:
        if self._info is None:
            raise RuntimeError("the emulator is not started")
        return self._info

    @property
    def state(self) -> EmulatorState:
        return self._require().state

    @property
    def faults(self) -> Faults:
        return self._require().faults

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._require().log.items()

    def writes(self) -> list[RecordedRequest]:
        """Logged requests that changed state or tried to (Graph writes, "
        "Remove/Set/Disable cmdlets)."""
        return [r for r in self.requests if r.write]

    def invalidate_tokens(self) -> None:
        """Every token issued so far is answered like an expired one (401) from now on."""
        self._require().tokens.invalidate_all()

    def set_latency(self, seconds: float) -> None:
        """Added to every request (not the admin API); for benchmarks."""
        self._require().latency = max(float(seconds), 0.0)

    def tenant_config(
        self, tenant: str, app: str = "playbook", credential: str | None = None
    ) -> TenantConfig:
        """A ``TenantConfig`` pointing at this emulator. ``credential``: "secret" | "certificate"
        (default: the secret if the app has one, else the certificate)."""
        info = self.info
        t = info.tenants[tenant]
        record = self._apps[(tenant, app)]
        kind = credential or ("secret" if record.client_secret else "certificate")
        common: dict[str, Any] = {
            "tenant_id": t.tenant_id,
            "tenant_domain": t.domain,
            "client_id": record.client_id,
            "authority_host": info.authority_host,
            "graph_base": info.graph_base,
            "exchange_base": info.exchange_base,
            "ca_bundle": info.ca_path,
        }
        if kind == "secret":
            if not record.client_secret:
                raise ValueError(f"app {app!r} has no client secret")
            return TenantConfig(client_secret=SecretStr(record.client_secret), **common)
        if kind == "certificate":
            if not record.certificate_pem:
                raise ValueError(f"app {app!r} has no certificate")
            return TenantConfig(
                certificate_pem=SecretStr(record.certificate_pem),
                certificate_thumbprint=record.certificate_thumbprint,
                **common,
            )
        raise ValueError("credential must be 'secret' or 'certificate'")

    def certificate_pem(self, tenant: str, app: str) -> str:
        """The PEM (key + certificate) of a certificate app; for MSAL "
        "``public_certificate`` tests."""
        pem = self._apps[(tenant, app)].certificate_pem
        if pem is None:
            raise ValueError(f"app {app!r} has no certificate")
        return pem

    def certificate(self, tenant: str, app: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem(tenant, app).encode("ascii"))
