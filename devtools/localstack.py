"""Plumbing of the local stack, shared by the demo, the benchmarks and the tests.

Everything binds 127.0.0.1. A child process gets its own session, so one signal reaches it and the
children it starts (flow-run processes of ``flows.serve``); its output goes to a log file the
caller keeps. Standard library only: the demo imports it before Prefect is configured.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    what: str = "condition",
    every: float = 0.3,
    *,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; ``TimeoutError``
    after ``timeout`` s. Exceptions of the ``tolerate`` types count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
        except tolerate as exc:
            last, value = exc, None
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last})" if last else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(every)


def http_ok(url: str) -> bool:
    """True when ``url`` (plain http on the loopback) answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback http)
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def scrubbed_environ() -> dict[str, str]:
    """This process's environment without Prefect settings or tenant credentials (``M365_*``):
    a child then sees the stack it is given, not the developer's profile or tenant."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "M365_"))}


@dataclass
class LocalPrefect:
    """A Prefect server on 127.0.0.1:``port`` with its state (SQLite, settings) in ``home``.
    Not frozen: the end-to-end harness's restartable server is one too."""

    home: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def settings(self, base: Mapping[str, str], **extra: str) -> dict[str, str]:
        """``base`` plus what the server and every process talking to it share; ``extra`` last,
        so a caller may override any of them."""
        env = dict(base)
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_API_HOST=LOOPBACK,
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            # The worker-side allowance for the emulator's host (m365.endpoints).
            UNBLOCK_EMAIL_ALLOWED_HOSTS=LOOPBACK,
        )
        env.update(extra)
        return env


def prefect_server_argv(port: int) -> list[str]:
    """``prefect server start`` on the loopback (its database follows PREFECT_HOME or the
    connection URL in the environment)."""
    return [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
    ]


class ManagedProcess:
    """A child in its own session, its output appended to ``log_path``; ``stop`` always ends it.

    Use as a context manager, or call ``start`` and ``stop``.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        cwd: Path = REPO,
        stdout_pipe: bool = False,
        stdin: int | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.stdout_pipe = stdout_pipe
        self.stdin = stdin
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._terminated = False

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"\n===== start {self.name}: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(  # noqa: S603 (fixed argv, no shell)
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=self.stdin if self.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if self.stdout_pipe else self._log,
            stderr=self._log,
            start_new_session=True,
        )
        return self

    def __enter__(self) -> Self:
        return self.start() if self.proc is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def read_json_line(self, timeout: float) -> dict[str, Any]:
        """The first stdout line, parsed as JSON (``stdout_pipe=True``)."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive():
                    raise TimeoutError(f"{self.name}: no JSON line on stdout (see {self.log_path})")
                if sel.select(timeout=min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    buf += chunk
        line = buf.partition(b"\n")[0]
        return dict(json.loads(line))

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 20.0) -> None:
        """Send ``sig`` to the whole session and wait for the leader (SIGKILL if it lingers)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal_group(sig)
        self._wait_or_kill(self.proc, timeout)

    def terminate(self) -> None:
        """SIGTERM to the whole session, once: a second SIGTERM makes some Prefect processes
        (``flows.serve``'s runner) exit at once instead of finishing their shutdown."""
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self._signal_group(signal.SIGTERM)

    def stop(self, term_timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``term_timeout``; children that outlive the leader go too.
        Safe to call twice."""
        if self.proc is None:
            return
        try:
            self.terminate()
            self._wait_or_kill(self.proc, term_timeout)
            self._signal_group(signal.SIGKILL)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            if self._log is not None:
                self._log.write(f"===== stopped {self.name} rc={self.proc.returncode}\n".encode())
                self._log.close()
                self._log = None

    def _wait_or_kill(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Wait ``timeout`` s for the leader to exit, then SIGKILL the whole session."""
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            proc.wait(timeout=10)

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def stop_together(processes: Sequence[ManagedProcess], grace: float) -> None:
    """Stop several children at once: SIGTERM to every session first, then each one gets what is
    left of ``grace`` seconds (shared, not per process) before SIGKILL."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.stop(term_timeout=max(0.0, deadline - time.monotonic()))


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` from /proc (children first, then theirs): the flow-run
    processes a runner starts, which the caller did not start itself."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may contain spaces and parentheses; a process
            # that is exiting may read as an empty file.
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def start_prefect_server(
    port: int, env: Mapping[str, str], log_path: Path, *, timeout: float = 180.0
) -> ManagedProcess:
    """Start ``prefect server start`` and wait for ``/api/health``; the process is stopped again
    when it does not come up."""
    server = ManagedProcess("prefect-server", prefect_server_argv(port), env, log_path).start()

    def healthy() -> bool:
        if not server.alive():
            raise RuntimeError(
                f"prefect server exited with {server.returncode}: {server.log_tail()}"
            )
        return http_ok(f"http://{LOOPBACK}:{port}/api/health")

    try:
        wait_for(healthy, timeout=timeout, what="prefect server /api/health", every=0.3)
    except BaseException:
        server.stop()
        raise
    return server
