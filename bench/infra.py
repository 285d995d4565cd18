"""Processes the benchmark starts (Prefect server, serve, children) and their clean-up.

Every process is a ``devtools.localstack.ManagedProcess`` (the local stack the demo and the tests
use): its own session, tracked; ``Processes.close`` stops each session (SIGTERM, then SIGKILL),
also on failure and Ctrl-C. ``install_signal_handlers``
turns SIGINT/SIGTERM/SIGHUP into ``KeyboardInterrupt`` so the ``finally`` blocks run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from devtools import localstack
from devtools.localstack import REPO, LocalPrefect, ManagedProcess


class BenchError(RuntimeError):
    """A part of the benchmark could not run; the message says which."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def install_signal_handlers() -> None:
    def _interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    # Also when started in the background by a non-interactive shell, which ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Processes:
    """The processes this benchmark started, each a ``devtools.localstack.ManagedProcess`` (its
    own session, output in its log); ``close`` stops them all, newest first."""

    def __init__(self) -> None:
        self._procs: list[ManagedProcess] = []
        self._named: dict[str, ManagedProcess] = {}

    def pid_of(self, name: str) -> int:
        return self._named[name].pid

    def adopt(self, process: ManagedProcess) -> ManagedProcess:
        self._procs.append(process)
        self._named[process.name] = process
        return process

    def start(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        stdin: int | None = None,
        name: str | None = None,
    ) -> subprocess.Popen[bytes]:
        process = ManagedProcess(name or log_path.stem, args, env, log_path, stdin=stdin)
        self._procs.append(process.start())
        if name:
            self._named[name] = process
        assert process.proc is not None
        return process.proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
        """SIGTERM the process's session; SIGKILL what is left after ``timeout``."""
        for process in self._procs:
            if process.proc is proc:
                process.stop(term_timeout=timeout)

    def close(self) -> None:
        for process in reversed(self._procs):
            process.stop()
        self._procs.clear()


class PrefectEnv(LocalPrefect):
    def environ(self, **extra: str) -> dict[str, str]:
        """A child's environment: no UI, the repository importable, output unbuffered."""
        bench = {"PREFECT_UI_ENABLED": "false", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        return self.settings(localstack.scrubbed_environ(), **(bench | extra))


def start_prefect_server(procs: Processes, penv: PrefectEnv, logs: Path) -> float:
    """``prefect server start`` on 127.0.0.1:port (SQLite below PREFECT_HOME); returns the
    seconds until ``/api/health`` answered."""
    started = time.monotonic()
    # No scheduler: the sweep's 15-minute cron must not start sweeps in the middle of a part
    # (runs created through the API are not affected).
    env = penv.environ(PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false")
    try:
        server = localstack.start_prefect_server(penv.port, env, logs / "prefect-server.log")
    except (RuntimeError, TimeoutError) as exc:
        raise BenchError(str(exc)) from None
    procs.adopt(server)
    return time.monotonic() - started


def apply_environ(penv: PrefectEnv) -> None:
    """Point this process at the benchmark's server (before anything imports prefect)."""
    for key in [k for k in os.environ if k.startswith(("PREFECT_", "M365_"))]:
        del os.environ[key]
    os.environ.update(
        {
            k: v
            for k, v in penv.environ().items()
            if k.startswith("PREFECT_") or k == "UNBLOCK_EMAIL_ALLOWED_HOSTS"
        }
    )
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # this process only; children log as usual


@dataclass(frozen=True)
class ChildResult:
    result: dict[str, object]
    started: float  # monotonic, just before the child was started
    wall: float  # seconds from start to exit
    maxrss_kib: int  # the child's peak resident set: its VmHWM at the end (see children.py)


def run_child(
    procs: Processes,
    kind: str,
    spec: Mapping[str, object],
    env: Mapping[str, str],
    logs: Path,
    *,
    timeout: float,
    tag: str,
) -> ChildResult:
    """Run ``python -m bench.children KIND``; the peak RSS is the VmHWM the child reports
    (``wait4``'s ``ru_maxrss`` is only a fallback: it includes this process's RSS at fork)."""
    import json

    result_path = logs / f"{tag}.json"
    result_path.unlink(missing_ok=True)
    started = time.monotonic()
    proc = procs.start(
        [sys.executable, "-m", "bench.children", kind, str(result_path)],
        env,
        logs / f"{tag}.log",
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            procs.stop(proc)
            raise BenchError(f"{tag} did not finish within {timeout:.0f} s (log: {tag}.log)")
        time.sleep(0.02)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    procs.stop(proc)  # closes its log; nothing left to signal
    if proc.returncode != 0 or not result_path.exists():
        raise BenchError(f"{tag} exited with {proc.returncode}; see {logs / (tag + '.log')}")
    data: dict[str, object] = json.loads(result_path.read_text(encoding="utf-8"))
    peak = data.get("vmhwm_kib")
    return ChildResult(
        result=data,
        started=started,
        wall=wall,
        maxrss_kib=peak if isinstance(peak, int) else usage.ru_maxrss,
    )
