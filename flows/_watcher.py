"""The loop of ``watch-restricted``: per-tenant checks on worker threads, Prefect I/O as plain
functions. Kept out of the flow module so the flow still reads like the runbook.

Nothing here is a Prefect task. An idle check is one ``Get-BlockedSenderAddress`` call (one per
100 entries) and no write to Prefect: no task run, no log line, no event, so months of idle
checks leave nothing in the database. Prefect is written to only when something happens: one
event per new entry, the unblock-user run, a log line on a change (new entries, a tenant failing
or recovering, profiles added or removed) and one summary line per ``summary_every_minutes``.

Failures are waited out, never fatal: a tenant Microsoft throttles waits its ``Retry-After`` in
the schedule (its worker thread is free at once, the other tenants are checked on time); an
unreachable Prefect API (a server restart) delays the profile listing and the handling of new
entries, which are retried at the next check until they succeed.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.events import Event
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from m365 import M365Clients
from m365.errors import (
    AuthError,
    ConfigurationError,
    InvalidIdentifierError,
    M365Error,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
    TransientError,
)
from m365.models import RestrictedSender
from m365.retry import RetryPolicy
from orchestration.blocks import M365Tenant
from orchestration.clients import UnknownTenantProfile
from orchestration.profiles import ProfileClients
from playbook.sweep.containment import UNBLOCK_DEPLOYMENT
from playbook.sweep.report import describe_failure
from playbook.sweep.state import entry_key
from playbook.watch import (
    WATCH_TAG,
    CheckSchedule,
    Detection,
    EntryOutcome,
    EventSpec,
    FailureLog,
    ProfileInfo,
    RunBudget,
    Seen,
    WatchCounters,
    WatchRequest,
    WatchSummary,
    containment_order,
    detect,
    detected_event,
    forget,
    plan_entry,
    profile_info,
    seen_from_state,
    select_watched,
    summary_line,
)
from tasks.start_containment import create_unblock_run
from tasks.sweep_state import read_sweep_state

# A check must never hold its thread for long: a throttled tenant gives up after one short
# retry and waits its Retry-After in the schedule instead.
WATCH_RETRY = RetryPolicy(max_attempts=2, max_total_seconds=5.0, max_wait_seconds=2.0)
WATCH_READ_TIMEOUT = 10.0
# Waiting for the Prefect API (seconds, growing while it stays away).
API_RETRY_SECONDS = (2.0, 5.0, 10.0, 30.0, 60.0)
FAILURE_LOG_EVERY = 600.0
# Never sleep longer than this between two looks at the stop flag.
MAX_WAIT = 1.0
PREFECT_ERRORS = (httpx.HTTPError, PrefectHTTPStatusError)

quiet = logging.getLogger("unblock.watch")  # console only: not shipped to the run log


# ---- Prefect I/O (plain functions: no task run, no event unless stated) -----------------------


def list_profiles() -> dict[str, ProfileInfo]:
    """Every saved tenant profile's non-secret settings: one API read for all of them (the
    server answers this endpoint with every document; it has no paging), no secret decrypted,
    no "block loaded" event."""
    slug = M365Tenant.get_block_type_slug()
    found: dict[str, ProfileInfo] = {}
    with get_client(sync_client=True) as client:
        documents = client.read_block_documents_by_type(block_type_slug=slug, include_secrets=False)
    for doc in documents:
        if not doc.name or doc.is_anonymous:
            continue
        version = doc.updated.isoformat() if doc.updated else str(doc.id)
        info = profile_info(doc.name, doc.data, version)
        if info is not None:
            found[doc.name] = info
    return found


def post_event(spec: EventSpec) -> None:
    """Send one event over HTTP: an answer means the server has it (the websocket emitter
    would drop it silently while the server restarts)."""
    event = Event(
        event=spec.event,
        resource=spec.resource,  # type: ignore[arg-type]  # validated into a Resource
        related=spec.related,  # type: ignore[arg-type]
        payload=spec.payload,
        id=spec.id,
        occurred=spec.occurred,
    )
    with get_client(sync_client=True) as client:
        client.request("POST", "/events", json=[event.model_dump(mode="json")])


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


# ---- the loop ---------------------------------------------------------------------------------


@dataclass
class _Watched:
    """One tenant as the watcher knows it. ``seen``/``pending`` belong to the tenant's check
    (one at a time); the main thread replaces ``seen`` only between checks."""

    info: ProfileInfo
    budget: RunBudget
    seen: Seen | None = None
    ready: bool = False  # its memory (the sweep's state) is loaded
    pending: dict[str, EntryOutcome] = field(default_factory=dict)  # handled, event not sent


@dataclass
class _CheckResult:
    tenant: str
    detection: Detection | None = None
    outcomes: list[tuple[RestrictedSender, EntryOutcome]] = field(default_factory=list)
    error: BaseException | None = None


class Watcher:
    """Checks each watched tenant every ``interval_seconds`` until ``stop`` is set."""

    def __init__(
        self,
        request: WatchRequest,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        watcher_run_id: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.request = request
        self.logger = logger
        self.run_id = watcher_run_id
        self.clock = clock
        self.profiles = ProfileClients(
            retry_policy=WATCH_RETRY, max_read_timeout=WATCH_READ_TIMEOUT
        )
        self.schedule = CheckSchedule(request.interval_seconds)
        self.failures = FailureLog(FAILURE_LOG_EVERY)
        self.watched: dict[str, _Watched] = {}
        self.totals = WatchCounters()
        self.window = WatchCounters()
        self._jobs: queue.Queue[str | None] = queue.Queue()
        self._results: queue.Queue[_CheckResult] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._next_refresh = 0.0
        self._api_failures = 0
        self._warned_missing: set[str] = set()
        self._listed_once = False
        self._window_started = clock()

    # -- main thread --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> WatchSummary:
        self._start_workers()
        shard = f"{self.request.shard}/{self.request.shards}"
        self.logger.info(
            "Watching the Restricted users lists every %gs (tenants: %s, shard %s)",
            self.request.interval_seconds,
            "all" if self.request.tenants == "all" else ", ".join(self.request.tenants),
            shard,
        )
        try:
            while not stop.is_set():
                now = self.clock()
                if now >= self._next_refresh:
                    self._refresh(now)
                for name in self.schedule.due(now):
                    self.schedule.started(name, now)
                    self._jobs.put(name)
                self._collect(self._wait(self.clock()))
                self._summarize(self.clock())
        finally:
            self._stop_workers()
        return WatchSummary(
            tenants=len(self.watched),
            shard=shard,
            interval_seconds=self.request.interval_seconds,
            totals=self.totals,
            stopped_by="stop requested",
        )

    def _wait(self, now: float) -> float:
        horizon = [self._next_refresh, now + MAX_WAIT]
        if (due := self.schedule.next_due()) is not None:
            horizon.append(due)
        return max(0.01, min(horizon) - now)

    def _collect(self, timeout: float) -> None:
        try:
            result = self._results.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            self._apply(result, self.clock())
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return

    def _count(self, **deltas: int) -> None:
        self.totals = self.totals.add(**deltas)
        self.window = self.window.add(**deltas)

    def _apply(self, result: _CheckResult, now: float) -> None:
        name = result.tenant
        watched = self.watched.get(name)
        retry_after: float | None = None
        if result.error is not None:
            error = result.error
            throttled = isinstance(error, ThrottledError)
            self._count(checks=1, failed_checks=1, throttled=int(throttled))
            if isinstance(error, TransientError) and error.retry_after is not None:
                retry_after = error.retry_after
            if isinstance(error, AuthError):
                self.profiles.forget(name)  # the profile may have been edited: read it again
            if self.failures.failed(name, now):
                self.logger.warning(
                    "%s: check failed: %s%s",
                    name,
                    describe_failure(error) if isinstance(error, M365Error) else _short(error),
                    f" (Microsoft asks to wait {retry_after:g}s)" if retry_after else "",
                )
        else:
            self._count(checks=1)
            if (down := self.failures.recovered(name, now)) is not None:
                self.logger.info("%s: checks succeed again (failing for %.0fs)", name, down)
            if watched is not None and result.detection is not None:
                self._remember(watched, result)
        self.schedule.finished(name, now, retry_after)

    def _remember(self, watched: _Watched, result: _CheckResult) -> None:
        detection = result.detection
        assert detection is not None
        name = watched.info.name
        retry = [entry_key(e.sender_address) for e, o in result.outcomes if o.retry]
        watched.seen = forget(detection.seen, retry)
        if detection.baseline:
            self.logger.info(
                "%s: never swept; its %d listed entr%s taken as the baseline (not new)",
                name,
                len(detection.seen),
                "y is" if len(detection.seen) == 1 else "ies are",
            )
        for entry, outcome in result.outcomes:
            run = (
                f", unblock-user run {outcome.run_name or outcome.run_id}" if outcome.run_id else ""
            )
            note = f" ({outcome.note})" if outcome.note else ""
            log = self.logger.warning if outcome.containment == "failed" else self.logger.info
            log(
                "%s: newly restricted: %s: %s%s%s%s",
                name,
                entry.sender_address,
                outcome.containment,
                run,
                note,
                "; retried at the next check" if outcome.retry else "",
            )
        handled = [o for _, o in result.outcomes if not o.retry]
        self._count(
            detected=len(handled),
            runs_started=sum(o.containment == "started" for o in handled),
            runs_existing=sum(o.containment == "existing" for o in handled),
        )

    def _refresh(self, now: float) -> None:
        """List the profiles; add, drop and reload tenants; load the memory of new ones."""
        try:
            available = list_profiles()
        except PREFECT_ERRORS as exc:
            self._api_down(now, f"cannot list the tenant profiles: {_short(exc)}")
            return
        wanted = select_watched(
            self.request.tenants, available, self.request.shard, self.request.shards
        )
        if self.request.tenants != "all":
            for name in sorted(set(self.request.tenants) - set(available)):
                if name not in self._warned_missing:
                    self._warned_missing.add(name)
                    self.logger.warning("%s: no such tenant profile (M365Tenant block)", name)
        for name in [n for n in self.watched if n not in wanted]:
            del self.watched[name]
            self.schedule.remove(name)
            self.profiles.forget(name)
            self.logger.info("%s: profile removed; no longer watched", name)
        not_ready = 0
        for name in wanted:
            info = available[name]
            watched = self.watched.get(name)
            if watched is None:
                window = self.request.run_window_minutes * 60.0
                watched = _Watched(info, RunBudget(self.request.max_new_runs_per_tenant, window))
                self.watched[name] = watched
            elif watched.info.version != info.version:
                self.profiles.forget(name)
                if watched.info.policy != info.policy:
                    self.logger.info("%s: policy is now %s", name, info.policy)
                watched.info = info
            if not watched.ready:
                try:
                    loaded = read_sweep_state(name, quiet)
                except PREFECT_ERRORS as exc:
                    self._api_down(now, f"cannot read the sweep state of {name}: {_short(exc)}")
                    not_ready += 1
                    continue
                watched.seen = seen_from_state(loaded.state)
                watched.ready = True
                self.schedule.add(name, now)
        if not_ready == 0 and self._api_failures:
            self.logger.info("Prefect API reachable again")
            self._api_failures = 0
        if not_ready == 0:
            self._next_refresh = now + self.request.profile_refresh_seconds
        if not self._listed_once and not_ready == 0:
            self._listed_once = True
            swept = sum(1 for w in self.watched.values() if w.seen is not None)
            contain = sum(1 for w in self.watched.values() if w.info.policy == "contain")
            self.logger.info(
                "Watching %d tenant(s) (%d on the contain policy); %d with a sweep state, %d "
                "without (their first listing becomes the baseline)",
                len(self.watched),
                contain,
                swept,
                len(self.watched) - swept,
            )

    def _api_down(self, now: float, what: str) -> None:
        delay = API_RETRY_SECONDS[min(self._api_failures, len(API_RETRY_SECONDS) - 1)]
        if self._api_failures == 0 or delay == API_RETRY_SECONDS[-1]:
            self.logger.warning("Prefect API: %s; trying again in %gs", what, delay)
        self._api_failures += 1
        self._next_refresh = now + delay

    def _summarize(self, now: float) -> None:
        minutes = (now - self._window_started) / 60.0
        if minutes < self.request.summary_every_minutes:
            return
        self.logger.info(
            summary_line(len(self.watched), self.window, round(minutes), self.failures.failing)
        )
        self.window = WatchCounters()
        self._window_started = now

    # -- worker threads -----------------------------------------------------------------------

    def _start_workers(self) -> None:
        for k in range(self.request.workers):
            # Each thread runs in a copy of this context: the Prefect API settings and the run.
            ctx = contextvars.copy_context()
            thread = threading.Thread(
                target=ctx.run, args=(self._work,), name=f"watch-{k}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _stop_workers(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + 2.0
        for thread in self._threads:
            # A check in progress ends within its read timeout; the threads are daemons, so
            # the process does not wait for them.
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while (name := self._jobs.get()) is not None:
            try:
                result = self._check(name)
            except Exception as exc:  # noqa: BLE001 - a lost result would stop the tenant's checks
                result = _CheckResult(name, error=exc)
            self._results.put(result)

    def _check(self, name: str) -> _CheckResult:
        watched = self.watched.get(name)
        if watched is None:
            return _CheckResult(name)
        try:
            clients = self.profiles.clients(name)
            listed = clients.exchange.get_blocked_senders()
        except (M365Error, UnknownTenantProfile, *PREFECT_ERRORS) as exc:
            return _CheckResult(name, error=exc)
        detection = detect(watched.seen, listed)
        outcomes = [(entry, self._handle(watched, clients, entry)) for entry in detection.new]
        return _CheckResult(name, detection=detection, outcomes=outcomes)

    def _handle(
        self, watched: _Watched, clients: M365Clients, entry: RestrictedSender
    ) -> EntryOutcome:
        """Contain per policy, then report the entry as an event."""
        key = entry_key(entry.sender_address)
        outcome = watched.pending.pop(key, None)  # handled before; only its event is missing
        if outcome is None:
            plan = plan_entry(watched.info.policy, entry, watched.budget.left(self.clock()))
            if plan.action == "report":
                outcome = EntryOutcome(address=entry.sender_address, containment="report")
            elif plan.action == "skip":
                outcome = EntryOutcome(
                    address=entry.sender_address, containment="skipped", note=plan.note
                )
            else:
                outcome = self._contain(watched, clients, entry)
            if outcome.retry:
                return outcome
        spec = detected_event(
            watched.info.name,
            entry,
            watched.info.policy,
            outcome,
            datetime.now(UTC),
            self.run_id,
        )
        try:
            post_event(spec)
        except PREFECT_ERRORS as exc:
            watched.pending[key] = outcome
            return outcome.model_copy(
                update={"retry": True, "note": f"event not sent: {_short(exc)}"}
            )
        return outcome

    def _contain(
        self, watched: _Watched, clients: M365Clients, entry: RestrictedSender
    ) -> EntryOutcome:
        """Resolve the user and start (or find) the entry's one unblock-user run."""
        address = entry.sender_address
        tenant = watched.info.name
        try:
            user = clients.graph.get_user(address)
        except NotFoundError:
            return EntryOutcome(
                address=address, containment="skipped", note="no directory user (external sender)"
            )
        except (
            AuthError,
            PermissionDeniedError,
            ConfigurationError,
            InvalidIdentifierError,
        ) as exc:
            return EntryOutcome(
                address=address,
                containment="skipped",
                note=f"user lookup refused, left to the sweep: {describe_failure(exc)}"[:300],
            )
        except M365Error as exc:
            return EntryOutcome(
                address=address, containment="failed", note=describe_failure(exc)[:300], retry=True
            )
        order = containment_order(tenant, entry, user.user_principal_name)
        if isinstance(order, str):
            return EntryOutcome(address=address, containment="skipped", note=order)
        asked = datetime.now(UTC)
        try:
            run = create_unblock_run(order, [WATCH_TAG, f"tenant:{tenant}"])
        except ObjectNotFound:
            # Not retried every 30 s: the sweep meets the same problem and reports it.
            return EntryOutcome(
                address=address,
                containment="failed",
                note=f"deployment {UNBLOCK_DEPLOYMENT} not found",
            )
        except PREFECT_ERRORS as exc:
            return EntryOutcome(address=address, containment="failed", note=_short(exc), retry=True)
        # A run created before we asked was started earlier (by the sweep or a previous watcher).
        existing = run.created is not None and run.created < asked - timedelta(seconds=1)
        if not existing:
            watched.budget.spend(self.clock())
        return EntryOutcome(
            address=address,
            containment="existing" if existing else "started",
            run_id=str(run.id),
            run_name=run.name,
        )
