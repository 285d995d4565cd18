"""Part 3: Prefect's own cost per flow run and per task run (trivial bodies, same server)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .infra import PrefectEnv, Processes, log, run_child
from .stats import Summary, summarize


@dataclass
class Overhead:
    flow_run: Summary  # a trivial flow called from Python, seconds per run
    task_run: Summary  # a trivial task called inside a flow, one after the other
    submitted_per_task: float  # .submit() to the thread pool, total / n
    first_flow: float  # the first flow run of a process (set-up)
    plain_call: float  # the same body as a plain function
    flows: int
    tasks: int


def measure(procs: Processes, penv: PrefectEnv, logs: Path, flows: int, tasks: int) -> Overhead:
    child = run_child(
        procs,
        "overhead",
        {"flows": flows, "tasks": tasks},
        penv.environ(),
        logs,
        timeout=60 + flows * 5 + tasks * 1.0,
        tag="overhead",
    )
    r = child.result
    flow_runs = [float(x) for x in r["flow_runs"]]  # type: ignore[attr-defined]
    task_runs = [float(x) for x in r["task_runs"]]  # type: ignore[attr-defined]
    result = Overhead(
        flow_run=summarize(flow_runs),
        task_run=summarize(task_runs),
        submitted_per_task=float(str(r["submitted_total"])) / int(str(r["submitted_n"])),
        first_flow=float(str(r["first_flow"])),
        plain_call=float(str(r["plain_call"])),
        flows=flows,
        tasks=tasks,
    )
    log(
        f"overhead: flow run {result.flow_run.median * 1000:.0f} ms, "
        f"task run {result.task_run.median * 1000:.1f} ms (medians)"
    )
    return result
