"""``python -m bench.run`` (``make bench``): every benchmark on this machine, printed as tables.

Starts its own Prefect server (SQLite in a temp PREFECT_HOME, 127.0.0.1, a free port) and its
own emulator (in this process, with injected latency), then:

1. ``containment``: time to containment: ``python -m flows.serve`` at several
   PREFECT_RUNNER_POLL_FREQUENCY values and with ``--warm`` (the warm executor) vs a bare
   script (new process, and warm);
2. ``sweep``: the restricted-sweep flow for N entries over 1, 10 and 100 tenants vs a bare
   sequential script and the bound set by Microsoft's limits (``--baseline`` adds a before/after
   table from an earlier run's results.json);
3. ``overhead``: Prefect's own cost per flow run and per task run;
4. ``exposure``: restriction -> reset and revocation, the watcher over 1, 10 and 100 tenants
   and the 15-minute sweep;
5. ``idle``: what an idle watcher costs (Exchange calls, CPU, memory, database growth).

Every process it starts is stopped on exit, failure or Ctrl-C. ``--quick`` is a ~2-minute smoke
version. ``--write-docs`` rewrites the generated part of docs/benchmarks.md and the plot.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from devtools.localstack import REPO, free_port

from .infra import (
    BenchError,
    PrefectEnv,
    Processes,
    apply_environ,
    install_signal_handlers,
    log,
    start_prefect_server,
)
from .tenants import SweepCase, WatchTenants

DOC = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "benchmarks-sweep.png"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="~2-minute smoke version")
    p.add_argument("--latency", type=float, default=0.05, help="seconds per emulator request")
    p.add_argument(
        "--runs",
        type=int,
        default=None,
        help="containment runs per fast setting (default 20; quick 5)",
    )
    p.add_argument(
        "--polls",
        default=None,
        help="PREFECT_RUNNER_POLL_FREQUENCY values (default 1,2,5,10; quick 1)",
    )
    p.add_argument("--sizes", default=None, help="sweep N values (default 100,1000)")
    p.add_argument("--tenants", default="1,10,100", help="sweep tenant counts (default 1,10,100)")
    p.add_argument(
        "--only",
        default="containment,sweep,overhead,exposure,idle",
        help="parts to run (comma-separated)",
    )
    p.add_argument("--events", type=int, default=None, help="exposure events (default 20)")
    p.add_argument(
        "--exposure-tenants", default=None, help="exposure tenant counts (default 1,10,100)"
    )
    p.add_argument("--sweep-runs", type=int, default=None, help="exposure sweep runs (default 3)")
    p.add_argument("--watch-interval", type=float, default=30.0, help="watcher interval, s")
    p.add_argument("--idle-window", type=float, default=None, help="idle, default phase, s (300)")
    p.add_argument("--idle-fast-window", type=float, default=None, help="idle, sped up, s (600)")
    p.add_argument(
        "--baseline", type=Path, default=None, help="results.json of the code before (sweep part)"
    )
    p.add_argument("--baseline-note", default="", help="what the baseline was, for the docs")
    p.add_argument(
        "--write-docs",
        action="store_true",
        help="update docs/benchmarks.md (generated part) and docs/benchmarks-sweep.png",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="also write results.json and report.txt here"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, server DB)")
    return p.parse_args(argv)


def runs_for_poll(poll: float, runs: int) -> int:
    """Fewer runs for slow polling (each costs about the poll interval)."""
    if poll <= 1:
        return runs
    if poll <= 2:
        return max(3, runs // 2)
    if poll <= 5:
        return max(3, runs * 3 // 10)
    return max(3, runs // 4)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    quick = bool(args.quick)
    runs = args.runs or (3 if quick else 20)
    polls = _floats(args.polls) if args.polls else ([1.0] if quick else [1.0, 2.0, 5.0, 10.0])
    sizes = _ints(args.sizes) if args.sizes else ([10, 100] if quick else [100, 1000])
    tenant_counts = _ints(args.tenants)
    parts = {p.strip() for p in args.only.split(",")}
    cases = [SweepCase(n, t) for t in tenant_counts for n in sizes if n >= t]
    if quick and not args.sizes:
        cases = [SweepCase(10, 1), SweepCase(100, 1), SweepCase(100, 10)]
    if "sweep" not in parts:
        cases = []
    events = args.events or (3 if quick else 20)
    sweep_runs = args.sweep_runs or (1 if quick else 3)
    exposure_counts = (
        _ints(args.exposure_tenants)
        if args.exposure_tenants
        else ([1, 10] if quick else [1, 10, 100])
    )
    exposure_groups = (
        [WatchTenants("x", n, users=events + sweep_runs) for n in exposure_counts]
        if "exposure" in parts
        else []
    )
    idle_groups = (
        [WatchTenants("i", 1, users=0, restricted=5), WatchTenants("i", 100, users=0, restricted=5)]
        if "idle" in parts
        else []
    )
    idle_window = args.idle_window or (60.0 if quick else 300.0)
    idle_fast_window = args.idle_fast_window or (60.0 if quick else 600.0)

    tmp = Path(tempfile.mkdtemp(prefix="unblock-bench-"))
    logs = tmp / "logs"
    logs.mkdir()
    penv = PrefectEnv(home=tmp / "prefect", port=free_port())
    apply_environ(penv)  # before anything imports prefect

    from emulator import Emulator

    from . import containment, exposure, idle, overhead, sweep
    from .report import Machine, Results, load_sweeps, plot_sweep, text_report
    from .tenants import CONTAINMENT_TENANT, build_seed, save_blocks

    command = "python -m bench.run" + (" " + shlex.join(argv if argv is not None else sys.argv[1:]))
    res = Results(
        command=command.strip(),
        latency=args.latency,
        quick=quick,
        machine=Machine.describe(),
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        baseline_note=args.baseline_note,
    )
    if args.baseline:
        res.sweep_baseline = load_sweeps(args.baseline)
    started = time.monotonic()
    procs = Processes()
    emu: Emulator | None = None
    try:
        res.loads.append(("start", os.getloadavg()))
        log(f"starting the Prefect server on 127.0.0.1:{penv.port} (logs in {logs})")
        res.server_start = start_prefect_server(procs, penv, logs)
        log(f"server up in {res.server_start:.1f} s; starting the emulator")
        emu = Emulator(build_seed(cases, [*exposure_groups, *idle_groups]))
        emu.start()
        emu.set_latency(args.latency)
        save_blocks(emu, [CONTAINMENT_TENANT, *(n for c in cases for n in c.tenant_names())])
        save_blocks(
            emu, [n for g in [*exposure_groups, *idle_groups] for n in g.names()], "contain"
        )

        if "containment" in parts:
            res.loads.append(("containment", os.getloadavg()))
            for poll in polls:
                res.containment.append(
                    containment.serve_series(
                        emu, procs, penv, logs, poll, runs_for_poll(poll, runs)
                    )
                )
            from flows.warm import DEFAULT_POLL_SECONDS as warm_poll

            res.containment.append(
                containment.serve_series(emu, procs, penv, logs, warm_poll, runs, warm=True)
            )
            res.containment.append(containment.bare_cold_series(emu, procs, penv, logs, runs))
            res.containment.append(containment.bare_warm_series(emu, runs))
        if "sweep" in parts:
            res.loads.append(("sweep", os.getloadavg()))
            for case in cases:
                repeats = 1 if case.entries >= 1000 or quick else 3
                bare = case.entries <= 100 or case.tenants == 1
                variants = ["prefect", "bare"] if bare else ["prefect"]
                for variant in variants:
                    for _ in range(repeats if variant == "prefect" else 1):
                        res.sweeps.append(
                            sweep.run_case(emu, procs, penv, logs, case, variant, args.latency)
                        )
        if "exposure" in parts:
            res.loads.append(("exposure", os.getloadavg()))
            serve = procs.start(
                [
                    sys.executable,
                    "-m",
                    "flows.serve",
                    "--only",
                    "unblock-user",
                    "restricted-sweep",
                    "--warm",
                ],
                penv.environ(),
                logs / "serve-exposure.log",
            )
            exposure.wait_served(serve, ["unblock-user", "restricted-sweep"])
            for group in exposure_groups:
                res.exposure.append(
                    exposure.watcher_series(
                        emu, procs, penv, logs, group, events, args.watch_interval
                    )
                )
                res.exposure.append(
                    exposure.sweep_series(
                        emu, procs, penv, logs, group, sweep_runs, first_account=events
                    )
                )
            res.automation = exposure.automation_latency(5 if quick else 20)
            procs.stop(serve)
        if "idle" in parts:
            res.loads.append(("idle", os.getloadavg()))
            server_pid = procs.pid_of("prefect-server")
            # The two phases of bench/idle.py: the watcher as configured, then sped up.
            phases: list[tuple[str, float, float, dict[str, str]]] = [
                ("default", args.watch_interval, idle_window, {}),
                ("sped up", 5.0, idle_fast_window, {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}),
            ]
            for phase, interval, window, env in phases:
                res.idle += idle.measure(
                    emu,
                    procs,
                    penv,
                    logs,
                    idle_groups,
                    server_pid,
                    phase=phase,
                    interval=interval,
                    window=window,
                    **env,
                )
        if "overhead" in parts:
            res.loads.append(("overhead", os.getloadavg()))
            res.overhead = overhead.measure(
                procs, penv, logs, flows=5 if quick else 40, tasks=30 if quick else 300
            )
        res.loads.append(("end", os.getloadavg()))
        res.duration = time.monotonic() - started
        report = text_report(res)
        print(report, flush=True)
        save_results(args.out, res, report)
        if args.write_docs:
            write_docs(res)
            if res.sweeps:
                plot_sweep(res.sweeps, PLOT)
            log(f"wrote {DOC.relative_to(REPO)} and {PLOT.relative_to(REPO)}")
        return 0
    except BenchError as exc:
        log(f"FAILED: {exc} (logs kept in {logs})")
        args.keep = True
        # What was measured before the failure is kept (not written into the docs).
        res.duration = time.monotonic() - started
        save_results(args.out, res, text_report(res), suffix=".partial")
        return 1
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    finally:
        if emu is not None:
            emu.stop()
        procs.close()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def save_results(out: Path | None, res: object, report: str, suffix: str = "") -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"report{suffix}.txt").write_text(report, encoding="utf-8")
    (out / f"results{suffix}.json").write_text(
        json.dumps(asdict(res), default=str, indent=1),  # type: ignore[call-overload]
        encoding="utf-8",
    )


def write_docs(res: object) -> None:
    """Replace the generated block of each part this run measured; keep everything else."""
    from .report import Results, generated_parts

    assert isinstance(res, Results)
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    for part, body in generated_parts(res).items():
        begin, end = block_markers(part)
        block = f"{begin}\n{body}\n{end}"
        if begin in text and end in text:
            head, _, rest = text.partition(begin)
            _, _, tail = rest.partition(end)
            text = head + block + tail
        else:
            text = text.rstrip("\n") + f"\n\n## {part}\n\n{block}\n"
    DOC.write_text(text, encoding="utf-8")


def block_markers(part: str) -> tuple[str, str]:
    return (
        f"<!-- bench:{part}:begin (generated by python -m bench.run --write-docs) -->",
        f"<!-- bench:{part}:end -->",
    )


if __name__ == "__main__":
    sys.exit(main())
