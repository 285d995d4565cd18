"""Rendering: the printed tables, docs/benchmarks.md and the sweep plot."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .containment import Series
from .overhead import Overhead
from .stats import fmt_mib, fmt_seconds, ratio, render_table, summarize
from .sweep import SweepRun

CONTAINMENT_TARGET = 2.0  # seconds, median from the run request
SWEEP_TARGET = 1.5  # x the lower bound, 1,000 entries


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
    started_at: str = ""
    duration: float = 0.0
    server_start: float = 0.0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def containment_table(series: Sequence[Series]) -> str:
    rows = []
    for s in series:
        if not s.samples:
            continue
        summ = summarize(s.values)

        def med(attr: str, s: Series = s) -> float | None:
            vals = [getattr(x, attr) for x in s.samples if getattr(x, attr) is not None]
            return summarize(vals).median if vals else None

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
                fmt_seconds(med("picked_up")),
                fmt_seconds(med("running")),
                fmt_seconds(med("first_call")),
                "yes" if summ.median <= CONTAINMENT_TARGET else "no",
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
            "≤ 2 s median",
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
        u = by.get("prefect-unthrottled")
        rows.append(
            [
                f"{n:,}",
                str(t),
                fmt_seconds(p.wall if p else None),
                fmt_seconds(p.bound.seconds if p else None),
                f"{ratio(p.wall, p.bound.seconds):.2f}" if p else "-",
                fmt_seconds(u.wall if u else None),
                fmt_seconds(u.bound.seconds if u else None),
                f"{ratio(u.wall, u.bound.seconds):.2f}" if u else "-",
                fmt_seconds(b.wall if b else None),
                f"{p.calls_per_entry:.2f}" if p else "-",
                f"{b.calls_per_entry:.2f}" if b else "-",
                fmt_mib(p.maxrss_kib if p else None),
                fmt_mib(b.maxrss_kib if b else None),
            ]
        )
    return render_table(
        [
            "N",
            "tenants",
            "sweep s",
            "bound s",
            "x bound",
            "no-bucket sweep s",
            "no-bucket bound s",
            "x no-bucket bound",
            "bare script s",
            "calls/entry sweep",
            "calls/entry bare",
            "peak MiB sweep",
            "peak MiB bare",
        ],
        rows,
    )


def profile_table(runs: Sequence[SweepRun]) -> str:
    rows = []
    for (n, t), by in grouped(runs).items():
        for variant in ("prefect", "prefect-unthrottled", "bare"):
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
                    r.bound.binding if variant != "bare" else "one at a time",
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
            "binding limit",
        ],
        rows,
    )


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
        "prefect-unthrottled": ("restricted-sweep, no Graph bucket", "s-"),
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
        for variant, style, label in (
            ("prefect", ":", "lower bound (defaults)"),
            ("prefect-unthrottled", "-.", "lower bound (no bucket)"),
        ):
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
                "From the run request (`create_flow_run_from_deployment`, `.delay()`, or starting "
                "the script) until the emulator has answered both the password reset and the "
                "session revocation. *picked up*: the runner set the run Pending; *process up*: "
                "the flow-run process set it Running (bare script: its imports done); *1st API "
                "call*: first request of the run to the emulator. Medians of those columns.",
                "",
                containment_table(res.containment),
            ]
        )
    if res.sweeps:
        parts["sweep"] = "\n".join(
            [
                *_header(res),
                "First sweep of the tenants (every entry is listed and resolved), `policy: "
                "report`, `dry_run: true`. N is the total, spread evenly over the tenants. "
                "*sweep*: the `restricted-sweep` flow with its defaults (median of 3 runs for "
                "N < 1,000, else 1 run); *no-bucket*: the same with "
                "`graph_requests_per_second: 1000` (the project's own Graph bucket lifted; "
                "Microsoft's one-Exchange-request-per-tenant and the 8 resolve threads kept). "
                "Wall time is the flow call (the script's loop), without process start-up; peak "
                "memory is the process's VmHWM. Bounds: see *Lower bound* below.",
                "",
                sweep_table(res.sweeps),
                "",
                "Where the time goes (emulator log of the run shown above):",
                "",
                profile_table(res.sweeps),
                "",
                "![sweep time against N](benchmarks-sweep.png)",
            ]
        )
    if res.overhead:
        parts["overhead"] = "\n".join([*_header(res), overhead_table(res.overhead)])
    return parts
