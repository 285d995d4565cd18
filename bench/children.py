"""Child processes of the benchmark: ``python -m bench.children KIND RESULT_PATH < spec.json``.

Kinds:

- ``bare-containment``: the bare script: build the clients, resolve the account, reset the
  password, revoke the sessions (no Prefect).
- ``bare-sweep``: the bare sweep: for each tenant in turn, list the Restricted users and look
  each entry up in Graph, one call after the other (no Prefect).
- ``prefect-sweep``: call the ``restricted-sweep`` flow in this process against the benchmark's
  Prefect server (the parent reads this process's peak RSS with ``wait4``).
- ``overhead``: trivial flows and tasks, timed one by one.
- ``watch``: the ``watch-restricted`` flow, until SIGTERM.

The spec comes on stdin (it may hold the emulator's fake client secrets: never on argv or in a
log); the result is one JSON object written to RESULT_PATH. Monotonic times are
``time.monotonic()``, the same clock as the emulator's request log on this machine.
"""

from __future__ import annotations

import time

PROCESS_STARTED = time.monotonic()  # before the heavy imports

import json  # noqa: E402
import sys  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def _config(data: dict[str, Any]) -> Any:
    from m365.config import TenantConfig

    return TenantConfig.model_validate(data)


def bare_containment(spec: dict[str, Any]) -> dict[str, Any]:
    from m365 import build_clients
    from playbook.passwords import generate_password

    imported = time.monotonic()
    clients = build_clients(_config(spec["config"]))
    user = clients.graph.get_user(spec["account"])
    clients.graph.reset_password(user.id, generate_password(), force_change=True)
    clients.graph.revoke_sessions(user.id)
    return {"imported": imported, "done": time.monotonic()}


def bare_sweep(spec: dict[str, Any]) -> dict[str, Any]:
    from m365 import build_clients
    from m365.errors import NotFoundError

    imported = time.monotonic()
    t0 = time.monotonic()
    listed = resolved = 0
    for data in spec["configs"]:
        clients = build_clients(_config(data))
        entries = clients.exchange.get_blocked_senders()
        listed += len(entries)
        for entry in entries:
            try:
                clients.graph.get_user(entry.sender_address)
                resolved += 1
            except NotFoundError:
                pass
    t1 = time.monotonic()
    return {"imported": imported, "t0": t0, "t1": t1, "listed": listed, "resolved": resolved}


def prefect_sweep(spec: dict[str, Any]) -> dict[str, Any]:
    from flows.restricted_sweep import restricted_sweep
    from playbook.sweep.params import SweepRequest

    imported = time.monotonic()
    request = SweepRequest.model_validate(
        {"tenants": spec["tenants"], "policy": "report", "dry_run": True, **spec["settings"]}
    )
    t0_wall = datetime.now(UTC).isoformat()
    t0 = time.monotonic()
    state = restricted_sweep(sweep=request, return_state=True)
    t1 = time.monotonic()
    t1_wall = datetime.now(UTC).isoformat()
    return {
        "imported": imported,
        "t0": t0,
        "t1": t1,
        "t0_wall": t0_wall,
        "t1_wall": t1_wall,
        "state": state.type.value,
    }


def watch(spec: dict[str, Any]) -> dict[str, Any]:
    """The watcher flow, until SIGTERM (it then stops cleanly and returns its counts)."""
    from flows.watch_restricted import watch_restricted
    from playbook.watch import WatchRequest

    imported = time.monotonic()
    request = WatchRequest.model_validate(spec["request"])
    state = watch_restricted(watch=request, return_state=True)
    summary = state.result(raise_on_failure=False)
    totals = summary.totals.model_dump() if hasattr(summary, "totals") else {}
    return {"imported": imported, "stopped": time.monotonic(), "state": state.type.value, **totals}


def overhead(spec: dict[str, Any]) -> dict[str, Any]:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    def plain(x: int) -> int:
        return x + 1

    @task(cache_policy=NO_CACHE, persist_result=False)
    def trivial_task(x: int) -> int:
        return x + 1

    @flow(persist_result=False)
    def trivial_flow(x: int) -> int:
        return x + 1

    @flow(persist_result=False)
    def many_tasks(n: int) -> list[float]:
        times = []
        for i in range(n):
            s = time.perf_counter()
            trivial_task(i)
            times.append(time.perf_counter() - s)
        return times

    @flow(persist_result=False)
    def submitted_tasks(n: int) -> float:
        s = time.perf_counter()
        futures = [trivial_task.submit(i) for i in range(n)]
        for f in futures:
            f.result()
        return time.perf_counter() - s

    imported = time.monotonic()
    s = time.perf_counter()
    for i in range(1000):
        plain(i)
    plain_each = (time.perf_counter() - s) / 1000

    first = time.perf_counter()
    trivial_flow(0)  # the first flow run of a process pays for set-up
    first_flow = time.perf_counter() - first
    flow_times = []
    for i in range(spec["flows"]):
        s = time.perf_counter()
        trivial_flow(i)
        flow_times.append(time.perf_counter() - s)
    task_times = many_tasks(spec["tasks"])
    submitted = submitted_tasks(spec["tasks"])
    return {
        "imported": imported,
        "plain_call": plain_each,
        "first_flow": first_flow,
        "flow_runs": flow_times,
        "task_runs": task_times,
        "submitted_total": submitted,
        "submitted_n": spec["tasks"],
    }


def peak_rss_kib() -> int | None:
    """This process's peak resident set (VmHWM). Not ``ru_maxrss``: Linux carries the parent's
    high-water mark over fork/vfork + exec into it, so a child of a big parent looks big."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


KINDS = {
    "bare-containment": bare_containment,
    "bare-sweep": bare_sweep,
    "prefect-sweep": prefect_sweep,
    "watch": watch,
    "overhead": overhead,
}


def main(argv: list[str]) -> int:
    kind, result_path = argv[1], Path(argv[2])
    spec = json.loads(sys.stdin.read() or "{}")
    result = KINDS[kind](spec)
    result["process_started"] = PROCESS_STARTED
    result["vmhwm_kib"] = peak_rss_kib()
    result_path.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
