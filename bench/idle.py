"""Part 5: what an idle watcher costs: Exchange calls, CPU, memory, database growth.

Two watchers (over 1 and over 100 tenants, each tenant with a few entries that do not change)
run side by side, in two phases:

- *default*: the default 30 s interval for ``window`` seconds: Exchange calls per tenant per
  hour, CPU share of the watcher process (``/proc/PID/stat`` utime + stime over wall time), the
  rows it adds to the Prefect database;
- *sped up*: a 5 s interval (6x as many checks), Prefect's flow-run heartbeat every 30 s
  instead of 180 s and a summary line every minute instead of every hour, for ``fast_window``
  seconds: memory over many checks (10 minutes at 5 s = the checks of one hour at 30 s) and the
  bytes each database row costs, scaled back to the defaults per day.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.localstack import descendants
from emulator import Emulator

from .exposure import LISTING, start_watch, wait_rounds
from .infra import PrefectEnv, Processes, log
from .tenants import WatchTenants

TICK = os.sysconf("SC_CLK_TCK")
HEARTBEAT_DEFAULT = 180.0  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY's default (seconds)
SUMMARY_DEFAULT = 60.0  # WatchRequest.summary_every_minutes


@dataclass
class IdleResult:
    phase: str  # "default" | "sped up"
    tenants: int
    interval: float
    window: float  # seconds measured
    exchange_calls: int
    token_calls: int
    cpu_seconds: float  # the watcher process
    server_cpu_seconds: float  # the Prefect server (all its processes), same window
    rss_kib: list[int] = field(default_factory=list)  # samples of VmRSS
    hwm_kib: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # rows the watcher's run added
    db_bytes: int = 0  # growth of the SQLite file (+ WAL), all writers
    row_bytes: dict[str, float] = field(default_factory=dict)  # on-disk bytes per row, by table
    stop_seconds: float | None = None  # SIGTERM -> process gone

    @property
    def calls_per_tenant_hour(self) -> float:
        return self.exchange_calls / self.tenants / (self.window / 3600)

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.window


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            total += cpu_seconds(p)
        except (OSError, IndexError, ValueError):
            continue
    return total


def memory_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def db_size(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def row_bytes(
    db: Path, tables: tuple[str, ...] = ("events", "event_resources", "log")
) -> dict[str, float]:
    """Average on-disk bytes per row of each table, its indexes included (SQLite ``dbstat``)."""
    out: dict[str, float] = {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        for table in tables:
            names = [table] + [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,)
                )
            ]
            marks = ",".join("?" * len(names))
            size = conn.execute(
                f"SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ({marks})",
                names,
            ).fetchone()[0]
            rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if rows:
                out[table] = size / rows
    return out


def run_rows(db: Path, run_id: str) -> dict[str, int]:
    """Rows of the database that belong to one flow run (read-only)."""
    queries = {
        "task_run": "SELECT count(*) FROM task_run WHERE flow_run_id = ?",
        "flow_run_state": "SELECT count(*) FROM flow_run_state WHERE flow_run_id = ?",
        "log": "SELECT count(*) FROM log WHERE flow_run_id = ?",
        "artifact": "SELECT count(*) FROM artifact WHERE flow_run_id = ?",
        "events": "SELECT count(*) FROM events WHERE resource_id = 'prefect.flow-run.' || ?",
        "event_resources": "SELECT count(*) FROM event_resources WHERE event_id IN "
        "(SELECT id FROM events WHERE resource_id = 'prefect.flow-run.' || ?)",
    }
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return {k: int(conn.execute(q, (run_id,)).fetchone()[0]) for k, q in queries.items()}


def _watcher_runs(client: Any) -> dict[int, str]:
    """Running watcher runs by the number of tenants they watch."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["watch-restricted"])), limit=50
    )
    out: dict[int, str] = {}
    for r in runs:
        if r.state is not None and r.state.type.value == "RUNNING":
            out[len(r.parameters["watch"]["tenants"])] = str(r.id)
    return out


def measure(
    emu: Emulator,
    procs: Processes,
    penv: PrefectEnv,
    logs: Path,
    groups: list[WatchTenants],
    server_pid: int,
    *,
    phase: str,
    interval: float,
    window: float,
    **env: str,
) -> list[IdleResult]:
    from prefect.client.orchestration import get_client

    db = penv.home / "prefect.db"
    request_extra: dict[str, Any] = {"summary_every_minutes": 1} if phase == "sped up" else {}
    started = time.monotonic()
    watchers = {
        g.count: start_watch(
            procs,
            penv,
            logs,
            {"tenants": g.names(), "interval_seconds": interval, **request_extra},
            f"idle-{phase.replace(' ', '-')}-t{g.count}",
            **env,
        )[0]
        for g in groups
    }
    stop_times: dict[int, float] = {}
    try:
        for g in groups:
            wait_rounds(emu, g.names(), started, watchers[g.count])
        time.sleep(2)
        with get_client(sync_client=True) as client:
            run_ids = _watcher_runs(client)
        t0 = time.monotonic()
        cpu0 = {n: cpu_seconds(p.pid) for n, p in watchers.items()}
        server0 = tree_cpu_seconds(server_pid)
        rows0 = {n: run_rows(db, run_ids[n]) for n in watchers}
        size0 = db_size(db)
        rss: dict[int, list[int]] = {n: [] for n in watchers}
        log(f"idle ({phase}): measuring {window:.0f} s at a {interval:g} s interval")
        while time.monotonic() - t0 < window:
            for n, p in watchers.items():
                rss[n].append(memory_kib(p.pid, "VmRSS"))
            time.sleep(min(10.0, max(0.0, window - (time.monotonic() - t0))))
        t1 = time.monotonic()
        cpu1 = {n: cpu_seconds(p.pid) for n, p in watchers.items()}
        server1 = tree_cpu_seconds(server_pid)
        time.sleep(6)  # the event persister and the log shipper write in batches
        rows1 = {n: run_rows(db, run_ids[n]) for n in watchers}
        size1 = db_size(db)
        sizes = row_bytes(db)
        hwm = {n: memory_kib(p.pid, "VmHWM") for n, p in watchers.items()}
        results = []
        for g in groups:
            names = set(g.names())
            calls = [r for r in emu.requests if t0 <= r.monotonic <= t1 and r.tenant in names]
            results.append(
                IdleResult(
                    phase=phase,
                    tenants=g.count,
                    interval=interval,
                    window=t1 - t0,
                    exchange_calls=sum(1 for r in calls if r.endpoint == LISTING),
                    token_calls=sum(1 for r in calls if r.endpoint == "token"),
                    cpu_seconds=cpu1[g.count] - cpu0[g.count],
                    server_cpu_seconds=server1 - server0,
                    rss_kib=rss[g.count],
                    hwm_kib=hwm[g.count],
                    rows={k: rows1[g.count][k] - rows0[g.count][k] for k in rows0[g.count]},
                    db_bytes=size1 - size0,
                    row_bytes=sizes,
                )
            )
    finally:
        for g in groups:
            t_stop = time.monotonic()
            procs.stop(watchers[g.count])
            stop_times[g.count] = time.monotonic() - t_stop
    for r in results:
        r.stop_seconds = stop_times.get(r.tenants)
        log(
            f"idle ({phase}) {r.tenants} tenant(s): "
            f"{r.calls_per_tenant_hour:.0f} Exchange calls/tenant/h, "
            f"CPU {r.cpu_share * 100:.2f} % of a core, "
            f"RSS {r.rss_kib[0] // 1024}->{r.rss_kib[-1] // 1024} MiB, "
            f"rows {r.rows}, db +{r.db_bytes} B, stop {r.stop_seconds:.1f} s"
        )
    return results


def per_day(result: IdleResult, default: IdleResult | None = None) -> dict[str, float]:
    """Rows (and bytes) per day of idle watching at the defaults.

    The rows of the sped-up phase are heartbeats (every 30 s there, 180 s by default) and summary
    lines (every minute there, every hour by default); they are scaled to the default rates.
    """
    days = result.window / 86400
    if result.phase == "default":
        return {k: v / days for k, v in result.rows.items()}
    heartbeat_scale = 30.0 / HEARTBEAT_DEFAULT
    summary_scale = 1.0 / SUMMARY_DEFAULT
    scaled = {
        "events": result.rows.get("events", 0) * heartbeat_scale / days,
        "event_resources": result.rows.get("event_resources", 0) * heartbeat_scale / days,
        "log": result.rows.get("log", 0) * summary_scale / days,
        "task_run": result.rows.get("task_run", 0) / days,
        "flow_run_state": result.rows.get("flow_run_state", 0) / days,
    }
    return scaled
