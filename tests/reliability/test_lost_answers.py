"""Writes whose answer is lost: the transport does not re-send them, playbook.reconcile re-reads.

Three ways to lose an answer, all from the emulator: a latency fault longer than the client's
read timeout (the client gives up, the request lands afterwards), ``drop`` (the connection closes
before the request is handled) and ``drop_after`` (handled, then the connection closes). No
Prefect here: the clients and the reconcile functions run against the emulator.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import SecretStr

from emulator import Emulator
from m365 import M365Clients, build_clients
from m365.errors import ConnectionFailedError, OutcomeUnknownError
from m365.models import TemporaryAccessPass
from m365.retry import RetryPolicy
from playbook.reconcile import issue_tap, remove_entry

TENANT = "contoso"
ALEX = "alex@contoso.com"
ROB = "rob@contoso.com"  # restricted in the demo seed
READ_TIMEOUT = 0.5
LATE = 1.2  # the lost request lands this long after it was sent


@pytest.fixture
def clients(emulator: Emulator) -> M365Clients:
    config = emulator.tenant_config(TENANT).model_copy(update={"read_timeout": READ_TIMEOUT})
    return build_clients(config, retry_policy=RetryPolicy(backoff_initial=0.05, backoff_max=0.2))


def _answered(emulator: Emulator, endpoint: str) -> list[Any]:
    return [r for r in emulator.requests if r.endpoint == endpoint]


def _wait_landed(emulator: Emulator, endpoint: str, count: int) -> None:
    """Let every late request finish before the test ends (the next test resets the state)."""
    deadline = time.monotonic() + 10
    while len(_answered(emulator, endpoint)) < count:
        assert time.monotonic() < deadline, f"{endpoint}: expected {count} requests"
        time.sleep(0.05)


class Store:
    """The hand-over as the task does it: keep the last pass stored."""

    def __init__(self) -> None:
        self.stored: list[str] = []

    def __call__(self, tap: TemporaryAccessPass) -> None:
        self.stored.append(tap.temporary_access_pass.get_secret_value())


def _issue(clients: M365Clients, store: Store, **kwargs: Any) -> Any:
    user_id = clients.graph.get_user(ALEX).id
    return issue_tap(
        clients.graph,
        user_id,
        lifetime_minutes=60,
        usable_once=True,
        store=store,
        settle_seconds=kwargs.pop("settle_seconds", LATE + 0.5),
        **kwargs,
    )


# -- the transport -------------------------------------------------------------------------------


def test_tap_post_is_not_resent_after_a_read_timeout(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(endpoint="graph.create_tap", kind="latency", seconds=LATE, count=1)
    user = emulator.state.user(TENANT, ALEX)
    with pytest.raises(OutcomeUnknownError) as info:
        clients.graph.create_temporary_access_pass(user.id)
    assert "read timeout" in str(info.value)
    _wait_landed(emulator, "graph.create_tap", 1)
    # One request only, and it did land: exactly the ambiguity the caller must resolve.
    assert [r.status for r in _answered(emulator, "graph.create_tap")] == [201]
    assert user.taps_created == 1


def test_remove_is_not_resent_after_a_dropped_connection(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(endpoint="exo.Remove-BlockedSenderAddress", kind="drop", count=1)
    with pytest.raises(OutcomeUnknownError):
        clients.exchange.remove_blocked_sender(ROB, "test")
    assert len(_answered(emulator, "exo.Remove-BlockedSenderAddress")) == 1
    assert emulator.state.unblock_count(TENANT, ROB) == 0


def test_password_patch_applied_then_dropped_is_resent_with_the_same_value(
    clients: M365Clients, emulator: Emulator
) -> None:
    """The PATCH is the write whose repetition is harmless: it is re-sent, same password."""
    emulator.faults.add(endpoint="graph.update_user", kind="drop_after", count=1)
    user = emulator.state.user(TENANT, ALEX)
    clients.graph.reset_password(user.id, SecretStr("Lost-Answer-Pass-1234!"))
    assert [r.status for r in _answered(emulator, "graph.update_user")] == [204, 204]
    assert user.password_resets == 2
    assert emulator.state.password_matches(user, "Lost-Answer-Pass-1234!")


def test_definite_failures_of_the_same_writes_are_still_retried(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(endpoint="graph.create_tap", kind="503", count=1)
    emulator.faults.add(endpoint="exo.Remove-BlockedSenderAddress", kind="429", count=1)
    user = emulator.state.user(TENANT, ALEX)
    tap = clients.graph.create_temporary_access_pass(user.id)
    assert emulator.state.tap_matches(user, tap.temporary_access_pass.get_secret_value())
    clients.exchange.remove_blocked_sender(ROB, "test")
    assert [r.status for r in _answered(emulator, "graph.create_tap")] == [503, 201]
    assert [r.status for r in _answered(emulator, "exo.Remove-BlockedSenderAddress")] == [429, 200]
    assert emulator.state.unblock_count(TENANT, ROB) == 1


def test_reads_are_still_resent_after_a_read_timeout(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(endpoint="graph.get_user", kind="latency", seconds=LATE, count=1)
    assert clients.graph.get_user(ALEX).user_principal_name == ALEX
    _wait_landed(emulator, "graph.get_user", 2)


def test_listing_taps_never_returns_the_pass(clients: M365Clients, emulator: Emulator) -> None:
    user = emulator.state.user(TENANT, ALEX)
    assert clients.graph.list_temporary_access_passes(user.id) == []
    tap = clients.graph.create_temporary_access_pass(user.id, lifetime_minutes=30)
    (listed,) = clients.graph.list_temporary_access_passes(user.id)
    assert listed.id == tap.id and listed.lifetime_in_minutes == 30
    assert tap.temporary_access_pass.get_secret_value() not in repr(listed)


# -- issuing a TAP -------------------------------------------------------------------------------


def test_tap_without_faults_takes_one_round(clients: M365Clients, emulator: Emulator) -> None:
    store = Store()
    issued = _issue(clients, store)
    assert issued.rounds == 1 and len(store.stored) == 1
    assert emulator.state.tap_matches(ALEX, store.stored[-1], TENANT)
    assert len(_answered(emulator, "graph.create_tap")) == 1


def test_tap_whose_answer_was_lost_is_replaced_after_the_late_request_lands(
    clients: M365Clients, emulator: Emulator
) -> None:
    """The bug the fault matrix found: the retry's pass was stored, then the late first POST
    replaced it. Now the late request is waited out, and the pass stored is the one in force."""
    emulator.faults.add(endpoint="graph.create_tap", kind="latency", seconds=LATE, count=1)
    store = Store()
    issued = _issue(clients, store)
    assert issued.rounds == 2
    assert store.stored == [issued.tap.temporary_access_pass.get_secret_value()]
    taps = _answered(emulator, "graph.create_tap")
    assert len(taps) == 2 and taps[0].fault  # the late one landed first, then ours
    time.sleep(0.3)
    assert emulator.state.tap_matches(ALEX, store.stored[-1], TENANT)
    assert emulator.state.user(TENANT, ALEX).taps_created == 2


def test_tap_after_a_dropped_connection_is_issued_again(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(endpoint="graph.create_tap", kind="drop", count=1)
    store = Store()
    issued = _issue(clients, store, settle_seconds=0.3)
    assert issued.rounds == 2 and len(store.stored) == 1
    assert emulator.state.tap_matches(ALEX, store.stored[-1], TENANT)
    assert emulator.state.user(TENANT, ALEX).taps_created == 1  # the dropped one never landed


def test_tap_created_then_dropped_is_replaced_by_a_confirmed_one(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(endpoint="graph.create_tap", kind="drop_after", count=1)
    store = Store()
    issued = _issue(clients, store)
    assert issued.rounds == 2 and len(store.stored) == 1
    assert emulator.state.user(TENANT, ALEX).taps_created == 2  # the lost one did land
    assert emulator.state.tap_matches(ALEX, store.stored[-1], TENANT)


def test_tap_replaced_after_it_was_stored_is_issued_again(
    clients: M365Clients, emulator: Emulator
) -> None:
    """A pass replaced between the hand-over and the check (a late request, another admin) is
    caught by the check, and the next round's pass is the one left in force."""
    user = emulator.state.user(TENANT, ALEX)
    store = Store()

    def store_then_replace(tap: TemporaryAccessPass) -> None:
        store(tap)
        if len(store.stored) == 1:
            user.set_tap("replaced1", lifetime=60, usable_once=True)

    issued = _issue(clients, store_then_replace)  # type: ignore[arg-type]
    assert issued.rounds == 2 and len(store.stored) == 2
    assert not emulator.state.tap_matches(user, store.stored[0])
    assert emulator.state.tap_matches(user, store.stored[1])


def test_tap_never_confirmed_is_an_error_and_nothing_is_handed_over(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(endpoint="graph.create_tap", kind="drop")
    store = Store()
    with pytest.raises(OutcomeUnknownError, match="no pass confirmed"):
        _issue(clients, store, settle_seconds=0.1, rounds=2)
    assert store.stored == []
    assert len(_answered(emulator, "graph.create_tap")) == 2


# -- removing the entry --------------------------------------------------------------------------


def test_removal_whose_answer_was_lost_is_found_done_by_the_re_read(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.state.update_settings(TENANT, removal_delay_seconds=0)
    late = READ_TIMEOUT + 0.2
    emulator.faults.add(
        endpoint="exo.Remove-BlockedSenderAddress", kind="latency", seconds=late, count=1
    )
    # The re-read itself is slow enough that the lost Remove has landed when it is answered.
    emulator.faults.add(
        endpoint="exo.Get-BlockedSenderAddress", kind="latency", seconds=0.4, count=1
    )
    removal = remove_entry(clients.exchange, ROB, "ticket INC-1")
    assert removal.already_removed and removal.rounds == 1
    assert len(_answered(emulator, "exo.Remove-BlockedSenderAddress")) == 1
    assert emulator.state.unblock_count(TENANT, ROB) == 1
    assert ROB not in emulator.state.restricted_addresses(TENANT)


def test_removal_applied_then_dropped_is_not_sent_again(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.state.update_settings(TENANT, removal_delay_seconds=0)
    emulator.faults.add(endpoint="exo.Remove-BlockedSenderAddress", kind="drop_after", count=1)
    removal = remove_entry(clients.exchange, ROB, "ticket INC-1")
    assert removal.already_removed and removal.rounds == 1
    assert len(_answered(emulator, "exo.Remove-BlockedSenderAddress")) == 1
    assert emulator.state.unblock_count(TENANT, ROB) == 1


def test_removal_still_listed_after_a_lost_answer_is_sent_again_and_counted_once(
    clients: M365Clients, emulator: Emulator
) -> None:
    emulator.faults.add(
        endpoint="exo.Remove-BlockedSenderAddress", kind="latency", seconds=LATE, count=1
    )
    removal = remove_entry(clients.exchange, ROB, "ticket INC-1")
    assert not removal.already_removed and removal.rounds == 2
    _wait_landed(emulator, "exo.Remove-BlockedSenderAddress", 2)
    assert emulator.state.unblock_count(TENANT, ROB) == 1
    gets = _answered(emulator, "exo.Get-BlockedSenderAddress")
    removes = _answered(emulator, "exo.Remove-BlockedSenderAddress")
    assert len(gets) == 1 and gets[0].monotonic < removes[0].monotonic  # re-read before re-send


def test_unreachable_exchange_is_not_mistaken_for_a_lost_answer(emulator: Emulator) -> None:
    """Connection refused proves the request never left: retried, then a transient error."""
    config = emulator.tenant_config(TENANT).model_copy(
        update={"exchange_base": "https://127.0.0.1:9/adminapi/beta"}
    )
    clients = build_clients(config, retry_policy=RetryPolicy(max_attempts=2, backoff_max=0.1))
    with pytest.raises(ConnectionFailedError) as info:
        clients.exchange.remove_blocked_sender(ROB, "test")
    assert not isinstance(info.value, OutcomeUnknownError)
    assert "Connection refused" in str(info.value)
    assert emulator.state.unblock_count(TENANT, ROB) == 0
