"""Rendering: the printed tables, docs/benchmarks.md and the sweep plot."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .containment import Series
from .exposure import ExposureSeries
from .idle import IdleResult, per_day
from .overhead import Overhead
from .stats import fmt_mib, fmt_seconds, ratio, render_table, summarize, uniform_wait_plus
from .sweep import SweepRun

CONTAINMENT_TARGET = 2.0  # seconds, the slowest run from the request (issue target)
SWEEP_TARGET = 1.5  # x the bound set by Microsoft's limits, 1,000 entries
EXPOSURE_TARGET = (30.0, 60.0)  # median, p95 seconds at the default interval
IDLE_CPU_TARGET = 0.01  # share of one core


@dataclass
class Machine:
    nproc: int
    cpu: str
    mem_gib: float
    python: str
    prefect: str
    kernel: str

    @classmethod
    def describe(cls) -> Machine:
        import prefect

        cpu = "unknown"
        mem_kib = 0
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    mem_kib = int(line.split()[1])
        except OSError:
            pass
        return cls(
            nproc=os.cpu_count() or 0,
            cpu=cpu,
            mem_gib=mem_kib / 1024 / 1024,
            python=platform.python_version(),
            prefect=str(prefect.__version__),
            kernel=platform.release(),
        )


@dataclass
class Results:
    command: str
    latency: float
    quick: bool
    machine: Machine
    loads: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)
    containment: list[Series] = field(default_factory=list)
    sweeps: list[SweepRun] = field(default_factory=list)
    overhead: Overhead | None = None
    exposure: list[ExposureSeries] = field(default_factory=list)
    idle: list[IdleResult] = field(default_factory=list)
    automation: list[float] = field(default_factory=list)  # event posted -> run created, s
    sweep_baseline: list[SweepRun] = field(default_factory=list)  # --baseline: the code before
    baseline_note: str = ""
    started_at: str = ""
    duration: float = 0.0
    server_start: float = 0.0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _median(samples: Sequence[object], attr: str) -> float | None:
    """The median of one breakdown field over the samples that have it (None where none has)."""
    vals = [getattr(x, attr) for x in samples if getattr(x, attr) is not None]
    return summarize(vals).median if vals else None


def containment_table(series: Sequence[Series]) -> str:
    bare = next((s for s in series if s.kind == "bare-warm" and s.samples), None)
    bare_median = summarize(bare.values).median if bare else None
    rows = []
    for s in series:
        if not s.samples:
            continue
        summ = summarize(s.values)

        label = s.label
        if s.failed_after:
            label += f" ({s.failed_after} ended Failed after containment)"
        rows.append(
            [
                label,
                str(summ.n),
                fmt_seconds(summ.median),
                fmt_seconds(summ.p95),
                fmt_seconds(summ.minimum),
                fmt_seconds(summ.maximum),
                fmt_seconds(_median(s.samples, "picked_up")),
                fmt_seconds(_median(s.samples, "running")),
                fmt_seconds(_median(s.samples, "first_call")),
                f"{summ.median / bare_median:.1f}x" if bare_median else "",
                "yes" if summ.maximum <= CONTAINMENT_TARGET else "no",
            ]
        )
    return render_table(
        [
            "how",
            "runs",
            "median s",
            "p95 s",
            "min s",
            "max s",
            "picked up s",
            "process up s",
            "1st API call s",
            "median ÷ warm bare",
            "max ≤ 2 s",
        ],
        rows,
    )


def _best(runs: Sequence[SweepRun]) -> SweepRun:
    """The median run by wall time (the one reported when a case ran more than once)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def grouped(runs: Sequence[SweepRun]) -> dict[tuple[int, int], dict[str, SweepRun]]:
    buckets: dict[tuple[int, int], dict[str, list[SweepRun]]] = {}
    for r in runs:
        buckets.setdefault((r.case.entries, r.case.tenants), {}).setdefault(r.variant, []).append(r)
    return {
        key: {variant: _best(rs) for variant, rs in by.items()}
        for key, by in sorted(buckets.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    }


def sweep_table(runs: Sequence[SweepRun]) -> str:
    rows = []
    for (n, t), by in grouped(runs).items():
        p = by.get("prefect")
        b = by.get("bare")
        rows.append(
            [
                f"{n:,}",
                str(t),
                fmt_seconds(p.wall if p else None),
                fmt_seconds(p.api_phase if p else None),
                fmt_seconds(p.bound.seconds if p else None),
                f"{ratio(p.wall, p.bound.seconds):.2f}" if p else "-",
                f"{ratio(p.api_phase, p.bound.seconds):.2f}" if p else "-",
                p.bound.binding if p else "-",
                f"{p.profile.graph_rate:.0f}" if p else "-",
                str(p.block_loads) if p and p.block_loads is not None else "-",
                fmt_seconds(b.wall if b else None),
                f"{p.calls_per_entry:.2f}" if p else "-",
                fmt_mib(p.maxrss_kib if p else None),
                fmt_mib(b.maxrss_kib if b else None),
            ]
        )
    return render_table(
        [
            "N",
            "tenants",
            "sweep s",
            "API phase s",
            "Microsoft bound s",
            "x bound",
            "x bound, API phase",
            "binding limit",
            "lookups/s",
            "block loads",
            "bare script s",
            "calls/entry",
            "peak MiB sweep",
            "peak MiB bare",
        ],
        rows,
    )


def profile_table(runs: Sequence[SweepRun]) -> str:
    rows = []
    for (n, t), by in grouped(runs).items():
        for variant in ("prefect", "bare"):
            r = by.get(variant)
            if r is None:
                continue
            rows.append(
                [
                    f"{n:,}",
                    str(t),
                    variant,
                    fmt_seconds(r.wall),
                    fmt_seconds(r.profile.before_first_call),
                    fmt_seconds(r.profile.listing),
                    fmt_seconds(r.profile.resolving),
                    fmt_seconds(r.profile.after_last_call),
                    f"{r.profile.graph_rate:.1f}",
                ]
            )
    return render_table(
        [
            "N",
            "tenants",
            "run",
            "wall s",
            "before 1st call s",
            "1st call to last page s",
            "resolving s",
            "after last call s",
            "lookups/s",
        ],
        rows,
    )


def before_after_table(before: Sequence[SweepRun], after: Sequence[SweepRun]) -> str:
    """The sweep with the previous code (``--baseline``) next to the current one."""
    old, new = grouped(before), grouped(after)
    rows = []
    for key in [k for k in new if k in old]:
        b, a = old[key].get("prefect"), new[key].get("prefect")
        if b is None or a is None:
            continue
        rows.append(
            [
                f"{key[0]:,}",
                str(key[1]),
                f"{fmt_seconds(b.wall)} → {fmt_seconds(a.wall)}",
                f"{fmt_seconds(b.profile.listing)} → {fmt_seconds(a.profile.listing)}",
                f"{fmt_seconds(b.profile.resolving)} → {fmt_seconds(a.profile.resolving)}",
                f"{b.profile.graph_rate:.0f} → {a.profile.graph_rate:.0f}",
                f"{b.block_loads} → {a.block_loads}",
                f"{fmt_seconds(b.profile.before_first_call)} → "
                f"{fmt_seconds(a.profile.before_first_call)}",
            ]
        )
    return render_table(
        [
            "N",
            "tenants",
            "sweep s",
            "1st call to last page s",
            "resolving s",
            "lookups/s",
            "block loads",
            "before 1st call s",
        ],
        rows,
    )


def exposure_table(series: Sequence[ExposureSeries]) -> str:
    rows = []
    for s in series:
        if not s.samples:
            continue
        runs = summarize(s.values)

        if s.route == "sweep":
            median = uniform_wait_plus(s.values, s.interval, 50)
            p95 = uniform_wait_plus(s.values, s.interval, 95)
            label = f"15-minute sweep (computed: wait + run, {runs.n} runs)"
            lo, hi = runs.minimum, s.interval + runs.maximum
        else:
            median, p95 = runs.median, runs.p95
            label = f"watcher, every {s.interval:g} s ({runs.n} events)"
            lo, hi = runs.minimum, runs.maximum
        met = median <= EXPOSURE_TARGET[0] and p95 <= EXPOSURE_TARGET[1]
        rows.append(
            [
                label,
                str(s.tenants),
                fmt_seconds(median, 1),
                fmt_seconds(p95, 1),
                fmt_seconds(lo, 1),
                fmt_seconds(hi, 1),
                fmt_seconds(_median(s.samples, "detected"), 1),
                fmt_seconds(_median(s.samples, "run_created"), 1),
                fmt_seconds(_median(s.samples, "running"), 1),
                fmt_seconds(runs.median, 1) if s.route == "sweep" else "-",
                "yes" if met else "no",
            ]
        )
    return render_table(
        [
            "route",
            "tenants",
            "median s",
            "p95 s",
            "min s",
            "max s",
            "found s",
            "run created s",
            "run Running s",
            "sweep run s",
            "≤ 30 s median, ≤ 60 s p95",
        ],
        rows,
    )


def routes_lines(res: Results) -> list[str]:
    """The two routes from a detection to the unblock-user run, side by side."""
    direct = [
        s.run_created - s.detected
        for series in res.exposure
        if series.route == "watcher"
        for s in series.samples
        if s.run_created is not None and s.detected is not None
    ]
    if not direct and not res.automation:
        return []
    rows = []
    if direct:
        d = summarize(direct)
        rows.append(
            [
                "watcher starts the run (the product): check that found it → run created",
                str(d.n),
                fmt_seconds(d.median),
                fmt_seconds(d.p95),
            ]
        )
    if res.automation:
        a = summarize(res.automation)
        rows.append(
            [
                "Automation on the event (measured alone): event posted → run created",
                str(a.n),
                fmt_seconds(a.median),
                fmt_seconds(a.p95),
            ]
        )
    return ["", render_table(["route to the run", "n", "median s", "p95 s"], rows)]


def _mib(kib: float) -> str:
    return f"{kib / 1024:.0f}"


def idle_table(results: Sequence[IdleResult]) -> str:
    rows = []
    for r in results:
        rows.append(
            [
                r.phase,
                str(r.tenants),
                f"{r.interval:g}",
                f"{r.window / 60:.1f}",
                f"{r.calls_per_tenant_hour:.0f}",
                f"{r.token_calls / r.tenants / (r.window / 3600):.1f}",
                f"{r.cpu_share * 100:.2f}",
                f"{r.server_cpu_seconds / r.window * 100:.2f}",
                f"{_mib(r.rss_kib[0])} → {_mib(r.rss_kib[-1])}" if r.rss_kib else "-",
                _mib(r.hwm_kib),
                f"{r.rows.get('task_run', 0)} / {r.rows.get('log', 0)} / {r.rows.get('events', 0)}",
                fmt_seconds(r.stop_seconds, 1),
                "yes" if r.cpu_share < IDLE_CPU_TARGET else "no",
            ]
        )
    return render_table(
        [
            "phase",
            "tenants",
            "interval s",
            "window min",
            "Exchange calls /tenant/h",
            "token calls /tenant/h",
            "CPU % of a core",
            "server CPU %",
            "RSS MiB",
            "peak MiB",
            "task runs / log rows / events added",
            "SIGTERM to exit s",
            "< 1 % of a core",
        ],
        rows,
    )


def db_growth_table(results: Sequence[IdleResult]) -> str:
    """Rows per day at the defaults, and their size on disk (bytes per row of each table, its
    indexes included, measured in the benchmark's database)."""
    rows = []
    for r in results:
        day = per_day(r)
        kib = sum(day.get(t, 0.0) * r.row_bytes.get(t, 0.0) for t in r.row_bytes) / 1024
        rows.append(
            [
                r.phase,
                str(r.tenants),
                f"{day.get('task_run', 0.0):.0f}",
                f"{day.get('flow_run_state', 0.0):.0f}",
                f"{day.get('log', 0.0):.0f}",
                f"{day.get('events', 0.0):.0f}",
                f"{day.get('event_resources', 0.0):.0f}",
                f"{kib:.0f}" if r.row_bytes else "-",
            ]
        )
    sizes = next((r.row_bytes for r in results if r.row_bytes), {})
    note = ", ".join(f"{t} {b:.0f}" for t, b in sizes.items())
    return render_table(
        [
            "measured in",
            "tenants",
            "task runs /day",
            "run states /day",
            "log rows /day",
            "events /day",
            "event resource rows /day",
            "≈ KiB /day",
        ],
        rows,
    ) + (f"\n\nBytes per row on disk, indexes included: {note}." if note else "")


def overhead_table(o: Overhead) -> str:
    return render_table(
        ["what", "n", "median ms", "p95 ms", "note"],
        [
            [
                "flow run (trivial, called in-process)",
                str(o.flows),
                _ms(o.flow_run.median),
                _ms(o.flow_run.p95),
                f"first flow run of the process: {_ms(o.first_flow)} ms",
            ],
            [
                "task run (trivial, sequential in a flow)",
                str(o.tasks),
                _ms(o.task_run.median),
                _ms(o.task_run.p95),
                f"plain function call: {o.plain_call * 1e9:.0f} ns",
            ],
            [
                "task run via .submit() (thread pool)",
                str(o.tasks),
                _ms(o.submitted_per_task),
                "-",
                "total / n (throughput, not latency)",
            ],
        ],
    )


def machine_lines(res: Results) -> list[str]:
    m = res.machine
    lines = [
        f"- CPU: {m.cpu}, nproc {m.nproc}; memory {m.mem_gib:.1f} GiB; Linux {m.kernel}",
        f"- Python {m.python}, Prefect {m.prefect} (server on SQLite, 127.0.0.1)",
        f"- injected emulator latency: {res.latency * 1000:.0f} ms per request",
        "- load average (1, 5, 15 min) during the run: "
        + "; ".join(f"{label} {a:.2f}, {b:.2f}, {c:.2f}" for label, (a, b, c) in res.loads),
        f"- started {res.started_at}, took {res.duration / 60:.1f} min"
        + (" (--quick)" if res.quick else ""),
    ]
    return lines


def text_report(res: Results) -> str:
    parts = ["Machine", *machine_lines(res), ""]
    if res.containment:
        parts += ["Time to containment (run request -> reset and revoke answered)", ""]
        parts += [containment_table(res.containment), ""]
    if res.sweeps:
        parts += ["Sweep (first sweep of the tenants: list + resolve every entry)", ""]
        parts += [sweep_table(res.sweeps), "", profile_table(res.sweeps), ""]
        if res.sweep_baseline:
            parts += ["Before -> after", "", before_after_table(res.sweep_baseline, res.sweeps), ""]
    if res.exposure:
        parts += ["Exposure (restricted -> reset and revocation answered)", ""]
        parts += [exposure_table(res.exposure), *routes_lines(res), ""]
    if res.idle:
        parts += ["Idle watcher", "", idle_table(res.idle), "", db_growth_table(res.idle), ""]
    if res.overhead:
        parts += ["Prefect overhead", "", overhead_table(res.overhead), ""]
    return "\n".join(parts)


def plot_sweep(runs: Sequence[SweepRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = grouped(runs)
    tenant_counts = sorted({t for _, t in groups})
    fig, axes = plt.subplots(1, len(tenant_counts), figsize=(9, 3.6), sharey=True, squeeze=False)
    styles = {
        "prefect": ("restricted-sweep (defaults)", "o-"),
        "bare": ("bare sequential script", "^--"),
    }
    for ax, tenants in zip(axes[0], tenant_counts, strict=True):
        keys = sorted(n for n, t in groups if t == tenants)
        for variant, (label, style) in styles.items():
            pts = [
                (n, groups[(n, tenants)][variant].wall)
                for n in keys
                if variant in groups[(n, tenants)]
            ]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
        for variant, style, label in (("prefect", ":", "bound set by Microsoft's limits"),):
            pts = [
                (n, groups[(n, tenants)][variant].bound.seconds)
                for n in keys
                if variant in groups[(n, tenants)]
            ]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color="grey", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("restricted entries N (total)")
        ax.set_title(f"{tenants} tenant{'s' if tenants > 1 else ''}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("wall time, s")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def load_sweeps(path: Path) -> list[SweepRun]:
    """The sweep runs of an earlier ``--out`` results.json (e.g. the code before a change)."""
    import json

    from .stats import ApiBound
    from .sweep import Profile
    from .tenants import SweepCase

    data = json.loads(path.read_text(encoding="utf-8"))
    runs = []
    for r in data.get("sweeps", []):
        runs.append(
            SweepRun(
                case=SweepCase(**r["case"]),
                variant=r["variant"],
                wall=r["wall"],
                process_wall=r["process_wall"],
                calls=r["calls"],
                maxrss_kib=r["maxrss_kib"],
                bound=ApiBound(**r["bound"]),
                profile=Profile(**r["profile"]),
                endpoints=r.get("endpoints", {}),
                block_loads=r.get("block_loads"),
            )
        )
    return runs


def _header(res: Results) -> list[str]:
    return [
        f"Reproduce: `{res.command}` (repository root, project venv).",
        "",
        *machine_lines(res),
        "",
    ]


def generated_parts(res: Results) -> dict[str, str]:
    """The generated blocks of docs/benchmarks.md, by part (a partial run replaces only its own
    parts; each block names the command and the load it came from)."""
    parts: dict[str, str] = {}
    if res.containment:
        parts["containment"] = "\n".join(
            [
                *_header(res),
                "From the run request (`create_flow_run_from_deployment`, or starting the script) "
                "until the emulator has answered both the password reset and the session "
                "revocation. *serve*: a new flow-run process per run (Prefect's runner); *serve "
                "--warm*: unblock-user on the warm executor (`flows.warm`), the same flow run in "
                "the long-lived process. *picked up*: the runner or executor set the run Pending; "
                "*process up*: the run set itself Running (bare script: its imports done); *1st "
                "API call*: first request of the run to the emulator. Medians of those columns; "
                "*median ÷ warm bare*: against the warm bare script of the same run.",
                "",
                containment_table(res.containment),
            ]
        )
    if res.sweeps:
        block = [
            *_header(res),
            "First sweep of the tenants (every entry is listed and resolved), `policy: report`, "
            "`dry_run: true`, the sweep's defaults. N is the total, spread evenly over the "
            "tenants (each tenant has as many directory users as entries). *sweep*: the "
            "`restricted-sweep` flow called in a fresh process (median of 3 runs for N < 1,000, "
            "else 1 run); wall time is the flow call, without process start-up. *API phase*: its "
            "first to its last request. *Microsoft bound*: see *Bound set by Microsoft's limits* "
            "below. *block loads*: `prefect.block.m365-tenant.loaded` events of the run (one per "
            "block read). Peak memory is the process's VmHWM.",
            "",
            sweep_table(res.sweeps),
            "",
            "Where the time goes (emulator log of the run shown above):",
            "",
            profile_table(res.sweeps),
            "",
            "![sweep time against N](benchmarks-sweep.png)",
        ]
        if res.sweep_baseline:
            block += [
                "",
                f"Before → after. Before: {res.baseline_note}. After: the run above.",
                "",
                before_after_table(res.sweep_baseline, res.sweeps),
            ]
        parts["sweep"] = "\n".join(block)
    if res.exposure:
        parts["exposure"] = "\n".join(
            [
                *_header(res),
                "From the moment the emulator lists a new entry until it has answered both the "
                "password reset and the session revocation of that account. *found*: the first "
                "check of the tenant after the restriction; *run created* / *run Running*: the "
                "unblock-user run's creation and Running state (server clock); medians. The sweep "
                "rows are computed: a uniform wait for the next quarter hour (0-900 s) plus the "
                "measured *sweep run* (the sweep's run created through the served deployment → "
                "reset and revocation answered).",
                "",
                exposure_table(res.exposure),
                *routes_lines(res),
            ]
        )
    if res.idle:
        parts["idle"] = "\n".join(
            [
                *_header(res),
                idle_table(res.idle),
                "",
                "Database growth per day of idle watching, at the defaults (the sped-up phase "
                "scaled back: heartbeats x 30/180, summary lines x 1/60):",
                "",
                db_growth_table(res.idle),
            ]
        )
    if res.overhead:
        parts["overhead"] = "\n".join([*_header(res), overhead_table(res.overhead)])
    return parts
