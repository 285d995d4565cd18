"""Transport and retry policy under injected faults: the WAITS are measured in the request log."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emulator import Emulator
from m365 import M365Clients, build_clients
from m365.config import TenantConfig
from m365.errors import (
    ConnectionFailedError,
    ServiceUnavailableError,
    ThrottledError,
    TransientError,
    is_retryable,
)

from .helpers import TENANT, calls, fast_policy, waits

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
    observed = waits(emulator, "graph.get_user", [429, 429, 200])
    print("observed waits after Retry-After: 0.4 ->", [round(w, 3) for w in observed])
    assert all(0.4 <= w < 0.4 + LATE_SLACK for w in observed)


def test_exchange_plain_text_throttle_is_waited(
    clients: M365Clients, emulator: Emulator, user: str
) -> None:
    emulator.faults.add(
        endpoint="exo.Get-BlockedSenderAddress", kind="429", count=1, retry_after=1, body="text"
    )
    (entry,) = clients.exchange.get_blocked_senders(user)
    assert entry.sender_address.lower() == user
    (wait,) = waits(emulator, "exo.Get-BlockedSenderAddress", [429, 200])
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
    assert waits(emulator, "graph.revoke_sessions", [503, 200])[0] >= 0.5
    assert emulator.state.user(TENANT, user).session_revocations == 1


# A fault that never clears: every attempt the policy allows is made, then the last error
# surfaces. (fault endpoint, kind, attempts, the call, the endpoint it records, error, status)
PERSISTENT_FAULTS = [
    pytest.param(
        "graph.get_user",
        "503",
        3,
        lambda c, u: c.graph.get_user(u),
        "graph.get_user",
        ServiceUnavailableError,
        503,
        id="503-ends-in-service-unavailable",
    ),
    pytest.param(
        "exo.*",
        "drop",
        2,
        lambda c, u: c.exchange.get_blocked_senders(u),
        "exo.Get-BlockedSenderAddress",
        ConnectionFailedError,
        None,
        id="drop-ends-in-connection-failed",
    ),
]


@pytest.mark.parametrize(
    ("fault", "kind", "attempts", "call", "endpoint", "error", "status"), PERSISTENT_FAULTS
)
def test_persistent_fault_ends_after_the_allowed_attempts(
    config: TenantConfig,
    emulator: Emulator,
    user: str,
    fault: str,
    kind: str,
    attempts: int,
    call: Callable[[M365Clients, str], object],
    endpoint: str,
    error: type[TransientError],
    status: int | None,
) -> None:
    clients = build_clients(config, retry_policy=fast_policy(max_attempts=attempts))
    emulator.faults.add(endpoint=fault, kind=kind)
    with pytest.raises(error) as info:
        call(clients, user)
    if status is not None:  # an HTTP answer: its status and request id are kept
        assert info.value.status == status
        assert info.value.request_id
    assert is_retryable(info.value)
    assert len(calls(emulator, endpoint)) == attempts


def test_dropped_connection_is_retried(config: TenantConfig, emulator: Emulator, user: str) -> None:
    clients = build_clients(config, retry_policy=fast_policy())
    emulator.faults.add(endpoint="graph.get_user", kind="drop", count=1)
    assert clients.graph.get_user(user).user_principal_name == user
    assert [r.status for r in calls(emulator, "graph.get_user")] == [0, 200]


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
    assert waits(emulator, "token", [429, 200])[0] >= 1.0
