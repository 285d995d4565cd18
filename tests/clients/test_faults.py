"""Transport and retry policy under injected faults: the WAITS are measured in the request log."""

from __future__ import annotations

import pytest

from emulator import Emulator
from m365 import M365Clients, build_clients
from m365.config import TenantConfig
from m365.errors import (
    ConnectionFailedError,
    ServiceUnavailableError,
    ThrottledError,
    is_retryable,
)

from .helpers import TENANT, calls, fast_policy, gaps

# Scheduling slack is only ever allowed on the late side: a retry may come a little after
# Retry-After, never before it.
LATE_SLACK = 1.5


@pytest.fixture
def user(emulator: Emulator, domain: str) -> str:
    upn = f"carol@{domain}"
    emulator.state.add_user(TENANT, upn, mail=upn)
    emulator.state.restrict(TENANT, upn, reason="EmailSendingLimitExceeded;")
    return upn


def test_graph_429_fractional_retry_after_is_waited(
    clients: M365Clients, emulator: Emulator, user: str
) -> None:
    emulator.faults.add(endpoint="graph.get_user", kind="429", count=2, retry_after=0.4)
    assert clients.graph.get_user(user).user_principal_name == user
    records = calls(emulator, "graph.get_user")
    assert [r.status for r in records] == [429, 429, 200]
    waits = gaps(records)
    print("observed waits after Retry-After: 0.4 ->", [round(w, 3) for w in waits])
    assert all(0.4 <= w < 0.4 + LATE_SLACK for w in waits)


def test_exchange_plain_text_throttle_is_waited(
    clients: M365Clients, emulator: Emulator, user: str
) -> None:
    emulator.faults.add(
        endpoint="exo.Get-BlockedSenderAddress", kind="429", count=1, retry_after=1, body="text"
    )
    (entry,) = clients.exchange.get_blocked_senders(user)
    assert entry.sender_address.lower() == user
    records = calls(emulator, "exo.Get-BlockedSenderAddress")
    assert [r.status for r in records] == [429, 200]
    (wait,) = gaps(records)
    print("observed wait after plain-text 429, Retry-After: 1 ->", round(wait, 3))
    assert 1.0 <= wait < 1.0 + LATE_SLACK


def test_plain_text_throttle_surfaces_as_throttled_error(
    config: TenantConfig, emulator: Emulator, user: str
) -> None:
    clients = build_clients(config, retry_policy=fast_policy(max_attempts=1))
    emulator.faults.add(
        endpoint="exo.Get-BlockedSenderAddress", kind="429", count=1, retry_after=2, body="text"
    )
    with pytest.raises(ThrottledError) as info:
        clients.exchange.get_blocked_senders(user)
    assert info.value.retry_after == 2.0
    assert info.value.status == 429
    assert "maximum number of concurrent requests" in str(info.value)
    assert is_retryable(info.value)


def test_retry_after_beyond_budget_gives_up_at_once(
    config: TenantConfig, emulator: Emulator, user: str
) -> None:
    clients = build_clients(config, retry_policy=fast_policy(max_wait_seconds=5))
    emulator.faults.add(endpoint="graph.get_user", kind="429", count=1, retry_after=120)
    with pytest.raises(ThrottledError) as info:
        clients.graph.get_user(user)
    assert info.value.retry_after == 120.0  # a higher layer (Prefect) can wait that long
    assert len(calls(emulator, "graph.get_user")) == 1


def test_503_is_retried_with_backoff(config: TenantConfig, emulator: Emulator, user: str) -> None:
    clients = build_clients(config, retry_policy=fast_policy())
    emulator.faults.add(endpoint="exo.Get-BlockedSenderAddress", kind="503", count=2)
    assert clients.exchange.get_blocked_senders(user)
    statuses = [r.status for r in calls(emulator, "exo.Get-BlockedSenderAddress")]
    assert statuses == [503, 503, 200]


def test_503_retry_after_is_honoured(clients: M365Clients, emulator: Emulator, user: str) -> None:
    emulator.faults.add(endpoint="graph.revoke_sessions", kind="503", count=1, retry_after=0.5)
    clients.graph.revoke_sessions(user)
    records = calls(emulator, "graph.revoke_sessions")
    assert [r.status for r in records] == [503, 200]
    assert gaps(records)[0] >= 0.5
    assert emulator.state.user(TENANT, user).session_revocations == 1


def test_persistent_503_ends_in_service_unavailable(
    config: TenantConfig, emulator: Emulator, user: str
) -> None:
    clients = build_clients(config, retry_policy=fast_policy(max_attempts=3))
    emulator.faults.add(endpoint="graph.get_user", kind="503")
    with pytest.raises(ServiceUnavailableError) as info:
        clients.graph.get_user(user)
    assert info.value.status == 503
    assert info.value.request_id
    assert len(calls(emulator, "graph.get_user")) == 3


def test_dropped_connection_is_retried(config: TenantConfig, emulator: Emulator, user: str) -> None:
    clients = build_clients(config, retry_policy=fast_policy())
    emulator.faults.add(endpoint="graph.get_user", kind="drop", count=1)
    assert clients.graph.get_user(user).user_principal_name == user
    assert [r.status for r in calls(emulator, "graph.get_user")] == [0, 200]


def test_persistent_drop_ends_in_connection_failed(
    config: TenantConfig, emulator: Emulator, user: str
) -> None:
    clients = build_clients(config, retry_policy=fast_policy(max_attempts=2))
    emulator.faults.add(endpoint="exo.*", kind="drop")
    with pytest.raises(ConnectionFailedError) as info:
        clients.exchange.get_blocked_senders(user)
    assert is_retryable(info.value)
    assert len(calls(emulator, "exo.Get-BlockedSenderAddress")) == 2


def test_read_timeout(config: TenantConfig, emulator: Emulator, user: str) -> None:
    slow = config.model_copy(update={"read_timeout": 0.5})
    clients = build_clients(slow, retry_policy=fast_policy(max_attempts=2))
    emulator.faults.add(endpoint="graph.get_user", kind="latency", seconds=1.5)
    with pytest.raises(ConnectionFailedError) as info:
        clients.graph.get_user(user)
    assert "read timeout" in str(info.value)
    emulator.faults.clear()
    # One slow answer, then a normal one: the retry succeeds.
    emulator.faults.add(endpoint="graph.get_user", kind="latency", seconds=1.5, count=1)
    assert clients.graph.get_user(user).user_principal_name == user


def test_expired_token_is_refreshed_once(
    clients: M365Clients, emulator: Emulator, user: str
) -> None:
    clients.graph.get_user(user)  # warm the token cache
    assert len(calls(emulator, "token")) == 1
    emulator.faults.add(endpoint="graph.get_user", kind="expired_token", count=1)
    assert clients.graph.get_user(user).user_principal_name == user
    assert [r.status for r in calls(emulator, "graph.get_user")] == [200, 401, 200]
    assert len(calls(emulator, "token")) == 2  # a fresh token, not the cached one


def test_exchange_401_is_refreshed_once(
    clients: M365Clients, emulator: Emulator, user: str
) -> None:
    clients.exchange.get_blocked_senders(user)
    emulator.faults.add(endpoint="exo.Get-BlockedSenderAddress", kind="expired_token", count=1)
    assert clients.exchange.get_blocked_senders(user)
    assert len(calls(emulator, "token")) == 2


def test_token_endpoint_503_is_retried(config: TenantConfig, emulator: Emulator, user: str) -> None:
    clients = build_clients(config, retry_policy=fast_policy())
    emulator.faults.add(endpoint="token", kind="503", count=2)
    assert clients.graph.get_user(user).user_principal_name == user
    assert [r.status for r in calls(emulator, "token")] == [503, 503, 200]


def test_token_endpoint_429_waits_retry_after(
    clients: M365Clients, emulator: Emulator, user: str
) -> None:
    emulator.faults.add(endpoint="token", kind="429", count=1, retry_after=1)
    assert clients.graph.get_user(user).user_principal_name == user
    records = calls(emulator, "token")
    assert [r.status for r in records] == [429, 200]
    assert gaps(records)[0] >= 1.0
