"""Writes whose answer can be lost: the TAP POST and Remove-BlockedSenderAddress.

The transport never re-sends these after a failure that may have reached Microsoft; it raises
``OutcomeUnknownError`` (m365.errors). What to do next depends on state only Microsoft has, so
these functions re-read it before any second write. Plain functions over the clients, no Prefect:
tests drive them against the emulator.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from m365.errors import NotFoundError, OutcomeUnknownError
from m365.exchange import ExchangeAdminClient
from m365.graph import GraphClient
from m365.models import TemporaryAccessPass

from .decisions import is_listed

Logger = logging.Logger | logging.LoggerAdapter[Any]
_default_log = logging.getLogger("playbook.reconcile")

ROUNDS = 3
SETTLE_POLL_SECONDS = 0.25
MAX_SETTLE_SECONDS = 60.0


@dataclass(frozen=True)
class IssuedTap:
    """A TAP that was stored and then seen in force; ``rounds`` > 1 means a lost answer."""

    tap: TemporaryAccessPass
    rounds: int


def issue_tap(
    graph: GraphClient,
    user_id: str,
    *,
    lifetime_minutes: int,
    usable_once: bool,
    store: Callable[[TemporaryAccessPass], None],
    settle_seconds: float,
    rounds: int = ROUNDS,
    log: Logger = _default_log,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> IssuedTap:
    """Create a TAP, hand it over with ``store``, and check that it is the one in force.

    A user has one TAP and a new one replaces the old, so a POST whose answer was lost can land
    after a later POST and silently invalidate the pass handed over. Hence, per round: note the
    methods in force, create; after a lost answer wait up to ``settle_seconds`` for that request
    to land (a new method id appears) and go again; after a clear answer store the pass, list
    again, and accept only if our method is the one in force. Raises ``OutcomeUnknownError``
    when ``rounds`` end without a confirmed pass.
    """
    settle = max(0.0, min(settle_seconds, MAX_SETTLE_SECONDS))
    for round_no in range(1, rounds + 1):
        before = {m.id for m in graph.list_temporary_access_passes(user_id)}
        try:
            tap = graph.create_temporary_access_pass(
                user_id, lifetime_minutes=lifetime_minutes, usable_once=usable_once
            )
        except OutcomeUnknownError as exc:
            log.warning(
                "TAP round %d: %s; waiting up to %.1fs for it to land", round_no, exc, settle
            )
            landed = _wait_for_new_method(graph, user_id, before, settle, sleep, clock)
            outcome = "landed" if landed else "did not land"
            log.info("TAP round %d: the lost request %s; issuing a new pass", round_no, outcome)
            continue
        store(tap)
        in_force = [m.id for m in graph.list_temporary_access_passes(user_id)]
        if in_force == [tap.id]:
            return IssuedTap(tap=tap, rounds=round_no)
        log.warning(
            "TAP round %d: the pass created is not the one in force (%d method(s) listed); "
            "an earlier request landed late, issuing again",
            round_no,
            len(in_force),
        )
    raise OutcomeUnknownError(
        f"create temporary access pass: no pass confirmed in force after {rounds} rounds"
    )


def _wait_for_new_method(
    graph: GraphClient,
    user_id: str,
    before: set[str],
    settle: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> bool:
    deadline = clock() + settle
    while True:
        if {m.id for m in graph.list_temporary_access_passes(user_id)} - before:
            return True
        if clock() >= deadline:
            return False
        sleep(SETTLE_POLL_SECONDS)


@dataclass(frozen=True)
class Removal:
    """How the entry left the list: by our request, or already gone (``already_removed``)."""

    request_id: str | None
    already_removed: bool
    rounds: int


def remove_entry(
    exchange: ExchangeAdminClient,
    address: str,
    reason: str,
    *,
    rounds: int = ROUNDS,
    log: Logger = _default_log,
) -> Removal:
    """Remove-BlockedSenderAddress, re-reading the list before any re-send.

    An unblock may count against Microsoft's per-account cap, so after a lost answer the entry
    is looked up first (the API notes' advice): gone means the lost request took effect. While
    Microsoft is still applying a removal the entry stays listed, so a re-send can still reach
    an entry being removed; whether that counts again is [UNCONFIRMED] (docs/fault-matrix.md).
    """
    for round_no in range(1, rounds + 1):
        try:
            receipt = exchange.remove_blocked_sender(address, reason)
        except NotFoundError as exc:
            return Removal(request_id=exc.request_id, already_removed=True, rounds=round_no)
        except OutcomeUnknownError as exc:
            log.warning("Remove round %d: %s; re-reading the list", round_no, exc)
            if not is_listed(address, exchange.get_blocked_senders(sender_address=address)):
                return Removal(request_id=None, already_removed=True, rounds=round_no)
            continue
        return Removal(request_id=receipt.request_id, already_removed=False, rounds=round_no)
    raise OutcomeUnknownError(
        f"Remove-BlockedSenderAddress: no confirmed answer after {rounds} rounds"
    )
