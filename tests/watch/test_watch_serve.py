"""``python -m flows.serve`` starts the watcher by itself, keeps it at one, and contains through it.

One real server (SQLite file, leases on disk) and one emulated tenant on the contain policy:

1. serve starts one watcher run (deployment watch-restricted, concurrency limit 1);
2. a second serve process queues a second run that waits for the slot; a third one reuses that
   queued run instead of adding one;
3. a new entry is contained end to end: the watcher starts unblock-user, serve runs it, the
   emulator receives the password reset and the session revocation;
4. SIGTERM to the first serve ends its watcher run within seconds, and the queued run takes over.
"""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.localstack import wait_for
from emulator import Emulator
from tests.reliability.realserver import deployment

from .harness import SPAM, WatchServer, flow_runs, save_tenant, tenant_seed, watch_server

pytestmark = pytest.mark.timeout(600)
DELTA = "delta"
SERVED = ("unblock-user", "watch-restricted")


def _watchers(state: str | None = None) -> list[Any]:
    runs = flow_runs("watch-restricted")
    return [r for r in runs if state is None or (r.state and r.state.type.value == state)]


def _running_watcher() -> Any:
    """The one running watcher (a serve process may still be starting it)."""
    return wait_for(lambda: _watchers("RUNNING"), 180, "a running watcher")[0]


def _serve(server: WatchServer, name: str) -> None:
    server.start_serve(*SERVED, name=name)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[WatchServer, Emulator]]:
    emu = Emulator({"tenants": [tenant_seed(DELTA, ["dora@delta.example", "dirk@delta.example"])]})
    with emu, watch_server(Path(tempfile.mkdtemp(prefix="unblock-watch-serve-"))) as server:
        save_tenant(emu, DELTA, "contain")
        _serve(server, "serve-1")
        yield server, emu


def test_serve_starts_exactly_one_watcher(stack: tuple[WatchServer, Emulator]) -> None:
    server, _ = stack
    running = wait_for(lambda: _watchers("RUNNING"), 180, "a running watcher")
    assert len(running) == 1
    found = deployment("watch-restricted/watch-restricted")
    assert found.global_concurrency_limit.limit == 1
    assert found.concurrency_options.collision_strategy.value == "ENQUEUE"
    _serve(server, "serve-2")
    wait_for(lambda: len(_watchers()) == 2, 120, "the second serve's watcher run")
    time.sleep(5)
    assert len(_watchers("RUNNING")) == 1  # the second one waits for the slot
    waiting = [r for r in _watchers() if r.state.type.value != "RUNNING"]
    assert waiting[0].state.type.value == "SCHEDULED", waiting[0].state
    server.kill("serve-2", signal.SIGTERM)
    _serve(server, "serve-3")
    wait_for(lambda: "queued watch-restricted" in server.log("serve-3").read_text(), 120, "serve-3")
    assert len(_watchers()) == 2  # serve-3 reused the queued run


def test_a_new_entry_is_contained_through_serve(stack: tuple[WatchServer, Emulator]) -> None:
    server, emu = stack
    watcher = _running_watcher()
    # The watcher's first check (the baseline) is done before the entry appears.
    wait_for(
        lambda: [r for r in emu.requests if r.endpoint == "exo.Get-BlockedSenderAddress"],
        60,
        "first check",
    )
    added = time.monotonic()
    emu.state.restrict(DELTA, "dora@delta.example", reason=SPAM)

    def contained() -> bool:
        writes = {r.endpoint for r in emu.requests if r.monotonic > added and r.status < 300}
        return {"graph.update_user", "graph.revoke_sessions"} <= writes

    try:
        wait_for(contained, 180, "password reset and session revocation", every=0.5)
    except TimeoutError:
        states = [
            (r.name, r.state.name if r.state else None, r.state.message if r.state else None)
            for r in flow_runs("unblock-user")
        ]
        raise AssertionError(f"{states}\n{server.log('serve-1').read_text()[-4000:]}") from None
    runs = flow_runs("unblock-user")
    assert len(runs) == 1 and runs[0].parameters["request"]["account"] == "dora@delta.example"
    assert "restricted-watch" in runs[0].tags
    assert _watchers("RUNNING")[0].id == watcher.id


def test_sigterm_to_serve_ends_its_watcher_and_the_queued_one_takes_over(
    stack: tuple[WatchServer, Emulator],
) -> None:
    server, _ = stack
    first = _running_watcher()
    t0 = time.monotonic()
    server.kill("serve-1", signal.SIGTERM)
    assert time.monotonic() - t0 < 20
    ended = wait_for(
        lambda: [r for r in _watchers() if r.id == first.id and r.state.is_final()],
        60,
        "first watcher ended",
    )
    assert ended[0].state.type.value in {"CANCELLED", "COMPLETED"}, ended[0].state
    taken_over = wait_for(lambda: _watchers("RUNNING"), 180, "the queued watcher running")
    assert len(taken_over) == 1 and taken_over[0].id != first.id
