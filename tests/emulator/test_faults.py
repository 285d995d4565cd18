"""Fault injection (429, 503, drop, drop_after, latency, expired token) and the admin API."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from emulator import Emulator

Call = Callable[..., requests.Response]


def test_graph_429_with_fractional_retry_after_then_success(
    graph: Call, emulator: Emulator
) -> None:
    emulator.faults.add(endpoint="graph.get_user", kind="429", count=1, retry_after=0.5)
    r = graph("GET", "/users/rob@contoso.com")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "0.5"
    assert r.json()["error"]["code"] == "TooManyRequests"
    assert graph("GET", "/users/rob@contoso.com").status_code == 200
    assert [x.fault for x in emulator.requests if x.endpoint == "graph.get_user"] == ["429", None]


def test_exchange_plain_text_throttle(exo: Call, emulator: Emulator) -> None:
    emulator.faults.add(
        endpoint="exo.Get-BlockedSenderAddress", kind="429", count=1, retry_after=2, body="text"
    )
    r = exo("Get-BlockedSenderAddress")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text.startswith(
        "You have reached the maximum number of concurrent requests per tenant"
    )
    assert exo("Get-BlockedSenderAddress").status_code == 200


def test_503_with_retry_after_on_a_write_changes_nothing(exo: Call, emulator: Emulator) -> None:
    emulator.faults.add(
        endpoint="exo.Remove-BlockedSenderAddress", kind="503", count=1, retry_after=1
    )
    r = exo("Remove-BlockedSenderAddress", {"SenderAddress": "rob@contoso.com"})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert emulator.state.unblock_count("contoso", "rob@contoso.com") == 0
    assert emulator.writes()[-1].fault == "503"


def test_dropped_connection(graph: Call, emulator: Emulator) -> None:
    assert graph("GET", "/users/rob@contoso.com").status_code == 200  # token now cached
    emulator.faults.add(endpoint="*", kind="drop", count=1)
    with pytest.raises(requests.ConnectionError):
        graph("GET", "/users/rob@contoso.com")
    assert graph("GET", "/users/rob@contoso.com").status_code == 200
    assert emulator.requests[-2].status == 0 and emulator.requests[-2].fault == "drop"


def test_drop_after_applies_the_write_and_loses_the_answer(exo: Call, emulator: Emulator) -> None:
    emulator.faults.add(endpoint="exo.Remove-BlockedSenderAddress", kind="drop_after", count=1)
    with pytest.raises(requests.ConnectionError):
        exo("Remove-BlockedSenderAddress", {"SenderAddress": "rob@contoso.com"})
    assert emulator.state.unblock_count("contoso", "rob@contoso.com") == 1  # it happened
    (write,) = emulator.writes()
    assert (write.status, write.fault) == (200, "drop_after")
    emulator.faults.add(endpoint="exo.Get-BlockedSenderAddress", kind="drop", count=1)
    with pytest.raises(requests.ConnectionError):
        exo("Get-BlockedSenderAddress")
    assert emulator.requests[-1].status == 0  # a plain drop: nothing was handled


def test_latency_fault_and_global_latency(graph: Call, emulator: Emulator) -> None:
    graph("GET", "/users/rob@contoso.com")  # token fetched
    emulator.faults.add(endpoint="graph.get_user", kind="latency", seconds=0.3, count=1)
    start = time.monotonic()
    assert graph("GET", "/users/rob@contoso.com").status_code == 200
    assert time.monotonic() - start >= 0.3
    emulator.set_latency(0.2)
    start = time.monotonic()
    assert graph("GET", "/users/rob@contoso.com").status_code == 200
    assert time.monotonic() - start >= 0.2


def test_expired_token_fault(graph: Call, exo: Call, emulator: Emulator) -> None:
    emulator.faults.add(endpoint="graph.*", kind="expired_token", count=1)
    emulator.faults.add(endpoint="exo.*", kind="expired_token", count=1)
    r = graph("GET", "/users/rob@contoso.com")
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Access token has expired or is not yet valid."
    r = exo("Get-BlockedSenderAddress")
    assert r.status_code == 401 and r.json()["error"]["code"] == "Unauthorized"


def test_rate_faults_are_deterministic(graph: Call, emulator: Emulator) -> None:
    graph("GET", "/users/rob@contoso.com")

    def pattern() -> list[int]:
        emulator.faults.clear()  # also re-seeds the RNG
        emulator.faults.add(endpoint="graph.get_user", kind="503", rate=0.5)
        return [graph("GET", "/users/rob@contoso.com").status_code for _ in range(12)]

    first = pattern()
    assert set(first) == {200, 503}
    assert pattern() == first


def test_admin_api_faults_restricted_latency_reset(
    emulator: Emulator, exo: Call, http: requests.Session
) -> None:
    admin = emulator.info.admin_base
    r = http.post(
        f"{admin}/faults",
        json={"endpoint": "exo.Get-Mailbox", "kind": "429", "count": 1, "retry_after": 0.25},
        timeout=10,
    )
    assert r.status_code == 201
    assert exo("Get-Mailbox", {"Identity": "alex@contoso.com"}).status_code == 429
    http.post(f"{admin}/faults", json={"endpoint": "*", "kind": "503"}, timeout=10)
    assert http.delete(f"{admin}/faults", timeout=10).status_code == 200
    r = http.post(
        f"{admin}/restricted",
        json={
            "tenant": "contoso",
            "address": "alex@contoso.com",
            "reason": "OutboundSpamLast24Hours=9;",
        },
        timeout=10,
    )
    assert r.status_code == 201
    assert emulator.state.is_restricted("contoso", "alex@contoso.com")
    assert http.post(f"{admin}/latency", json={"seconds": 0.01}, timeout=10).json() == {
        "latency": 0.01
    }
    logged = http.get(f"{admin}/requests", timeout=10).json()
    assert any(x["cmdlet"] == "Get-Mailbox" and x["status"] == 429 for x in logged)
    assert http.post(f"{admin}/invalidate-tokens", timeout=10).status_code == 200
    assert exo("Get-BlockedSenderAddress").status_code == 401
    assert http.post(f"{admin}/reset", timeout=10).status_code == 200
    assert not emulator.state.is_restricted("contoso", "alex@contoso.com")
    assert emulator.requests == []


def test_stop_cuts_keep_alive_connections(tmp_path: Path) -> None:
    from emulator import demo_seed_path, load_seed

    from .helpers import https_session

    emu = Emulator(load_seed(demo_seed_path()), state_dir=tmp_path).start()  # CA outlives stop()
    http = https_session(emu.info.ca_path)
    tenant = emu.info.tenants["contoso"].tenant_id
    url = f"{emu.info.authority_host}/{tenant}/v2.0/.well-known/openid-configuration"
    assert http.get(url, timeout=5).status_code == 200  # leaves a pooled keep-alive connection
    emu.stop()
    with pytest.raises(requests.ConnectionError):
        http.get(url, timeout=5)
