"""Single-machine mode: register the blocks and serve the playbook deployments from this process.

``python -m flows.serve`` serves unblock-user and verify-unblock, plus restricted-sweep,
check-tenant and watch-restricted when their modules are present. ``--only NAME ...`` limits what
is served. Flow runs execute as subprocesses of this process; stop it with one SIGTERM/Ctrl-C
(Prefect then pauses the served deployments' schedules until they are served again). With
``--warm``, unblock-user runs execute on the warm executor of this process instead (flows.warm).

The watcher (watch-restricted) is long-lived: serving it starts one run of it (one more
process than ``--limit``), and its deployment's concurrency limit keeps it at one.

The tenant field of unblock-user and check-tenant offers the M365 Tenant profiles saved when this
process starts (see flows.deploy); after adding a profile, serve again or run
``python -m flows.deploy --tenant-choices``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

from prefect import get_client, serve
from prefect.utilities.callables import ParameterSchema

from flows.catalog import SERVED, Served
from flows.deploy import TENANT_FIELDS, choice_note, tenant_profiles, with_tenant_choices
from flows.warm import DEFAULT_POLL_SECONDS as WARM_POLL_SECONDS
from flows.warm import executor_for
from flows.watch_restricted import stop_on_sigterm
from orchestration.blocks import register_blocks

WARM_SERVED = "unblock-user"  # what --warm moves to the warm executor
# Prefect's runner looks for new runs every 10 s by default; a run then waits 5 s on average
# before its process even starts. One small API query per second is cheap.
DEFAULT_POLL_SECONDS = 1.0


def available(only: Sequence[str] | None = None) -> list[Served]:
    """The entries whose module exists (optionally restricted to ``only``)."""
    chosen = [s for s in SERVED if not only or s.name in only]
    return [s for s in chosen if importlib.util.find_spec(s.module) is not None]


def deployments(entries: Sequence[Served], profiles: Sequence[str] = ()) -> list[Any]:
    """The runner deployments; the tenant field offers ``profiles`` (free text if there are
    none)."""
    result = []
    for entry in entries:
        flow_obj = getattr(importlib.import_module(entry.module), entry.function)
        deployment = flow_obj.to_deployment(
            name=entry.name,
            tags=list(entry.tags),
            cron=entry.cron,
            enforce_parameter_schema=True,
            **entry.options,
        )
        path = TENANT_FIELDS.get(entry.name)
        if path is not None:
            schema = deployment._parameter_openapi_schema.model_dump_for_openapi()
            deployment._parameter_openapi_schema = ParameterSchema(
                **with_tenant_choices(schema, path, profiles)
            )
        result.append(deployment)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__)
    parser.add_argument("--only", nargs="*", help="deployment names to serve (default: all)")
    parser.add_argument(
        "--limit", type=int, default=4, help="concurrent flow runs (besides the watcher)"
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=None,
        help="how often the runner looks for new runs (default: PREFECT_RUNNER_POLL_FREQUENCY "
        f"if set, else {DEFAULT_POLL_SECONDS:g})",
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="run unblock-user on the warm executor of this process (flows.warm) instead of a "
        "new process per run: containment starts in well under a second",
    )
    parser.add_argument(
        "--warm-poll-seconds",
        type=float,
        default=WARM_POLL_SECONDS,
        help=f"how often the warm executor looks for new runs (default {WARM_POLL_SECONDS:g})",
    )
    args = parser.parse_args(argv)
    poll = args.poll_seconds
    if poll is None and "PREFECT_RUNNER_POLL_FREQUENCY" not in os.environ:
        poll = DEFAULT_POLL_SECONDS
    register_blocks()
    entries = available(args.only)
    with get_client(sync_client=True) as client:
        profiles = tenant_profiles(client)
    print("serving:", ", ".join(e.name for e in entries), flush=True)
    print(choice_note(profiles), flush=True)
    served = deployments(entries, profiles)
    for entry, deployment in zip(entries, served, strict=True):
        if entry.start:
            deployment.apply()  # serve() applies it again; the run needs it now
            start = getattr(importlib.import_module(entry.module), entry.start)
            run_id = start(f"{deployment.flow_name}/{deployment.name}")
            print(f"queued {entry.name}: run {run_id}", flush=True)
    limit = args.limit + sum(1 for e in entries if e.start)
    if not args.warm or not any(e.name == WARM_SERVED for e in entries):
        serve(*served, limit=limit, query_seconds=poll)
        return
    # The runner must not race the executor for unblock-user's runs: it serves the others.
    warm = next(d for e, d in zip(entries, served, strict=True) if e.name == WARM_SERVED)
    warm.apply()
    executor = executor_for([f"{warm.flow_name}/{warm.name}"], poll_seconds=args.warm_poll_seconds)
    stop = threading.Event()
    thread = threading.Thread(target=executor.run, args=(stop,), name="warm-executor")
    thread.start()
    print(f"warm executor: serving {WARM_SERVED}", flush=True)
    rest = [d for d in served if d is not warm]
    try:
        if rest:
            serve(*rest, limit=limit, query_seconds=poll)
        else:  # nothing for the runner: wait here until SIGTERM or Ctrl-C
            with stop_on_sigterm() as signalled:
                signalled.wait()
    finally:
        stop.set()
        thread.join()


if __name__ == "__main__":
    main()
