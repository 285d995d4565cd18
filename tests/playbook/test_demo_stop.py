"""`make demo` stops cleanly: every process it started is gone and every port it opened is closed
within 10 s of SIGTERM, SIGHUP (a closed terminal) or Ctrl-C (SIGINT).

Each case runs the Makefile's demo recipe for real (``make -o setup demo``: the same recipe without
re-installing the venv) in its own session, its output on a pseudo-terminal as in a terminal
window, and waits until the sample run is paused for approval. Then the signal goes where it goes
in real life:

- ``kill <make pid>`` (SIGTERM): GNU make forwards SIGTERM to the recipe's process;
- closing the terminal: the tty hangs up (writes to it fail from then on) and the shell sends
  SIGHUP to the job's process group, make and the demo alike;
- Ctrl-C: the terminal sends SIGINT to the foreground process group.

The processes are found by PID (the descendants of make) and the ports from /proc (what those
processes listen on); the test ends anything left over, so no orphan outlives it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devtools.localstack import REPO, descendants, free_port

STOP_WITHIN = 10.0
PAUSED_WITHIN = 300.0
LINK = re.compile(r"Approval waiting: open (\S+)")
# What the demo starts (matched against each descendant's command line).
EXPECTED = {
    "demo": "-m devtools.demo",
    "server": "-m prefect server start",
    "emulator": "-m emulator",
    "serve": "-m flows.serve",
    "paused run": "-m prefect.engine",
}


@dataclass
class Terminal:
    """A pseudo-terminal whose output is drained (a full tty buffer would block the demo)."""

    master: int
    slave: int
    text: list[str] = field(default_factory=list)

    @classmethod
    def open(cls) -> Terminal:
        master, slave = os.openpty()
        term = cls(master, slave)
        threading.Thread(target=term._drain, daemon=True).start()
        return term

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: closed
                return
            if not chunk:
                return
            self.text.append(chunk.decode(errors="replace"))

    def output(self) -> str:
        return "".join(self.text)

    def hang_up(self) -> None:
        """What closing the terminal window does to the tty."""
        with contextlib.suppress(OSError):
            os.close(self.master)

    def close(self) -> None:
        self.hang_up()
        with contextlib.suppress(OSError):
            os.close(self.slave)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie holds no port and no work; its parent reaps it)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, ... (empty once the process is
    gone; a process that is exiting may read as an empty file)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _listening_ports(pids: list[int]) -> set[int]:
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _env(port: int, state_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MAKE", "MFLAGS")) and "proxy" not in k.lower()
    }
    env.update(
        DEMO_PORT=str(port),
        DEMO_STATE_DIR=str(state_dir),
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


@contextlib.contextmanager
def make_demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Terminal, int]]:
    port = free_port()
    term = Terminal.open()
    make = subprocess.Popen(
        ["make", "-o", "setup", "demo"],
        cwd=REPO,
        env=_env(port, tmp_path / "demo"),
        stdin=subprocess.DEVNULL,
        stdout=term.slave,
        stderr=term.slave,
        start_new_session=True,  # make leads its own process group, as a shell job does
    )
    seen: set[int] = set()
    try:
        yield make, term, port
    finally:
        # Whatever is still there (a failed case) goes now: no orphan outlives the test.
        seen.update(descendants(make.pid))
        for pid in seen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGKILL)
        make.wait(timeout=30)
        term.close()


def _wait_paused(make: subprocess.Popen[bytes], term: Terminal) -> str:
    deadline = time.monotonic() + PAUSED_WITHIN
    while time.monotonic() < deadline:
        found = LINK.search(term.output())
        if found:
            return found.group(1)
        assert make.poll() is None, f"make demo exited early:\n{term.output()[-3000:]}"
        time.sleep(1)
    raise AssertionError(f"no paused run within {PAUSED_WITHIN:.0f} s:\n{term.output()[-3000:]}")


def _started(make_pid: int) -> dict[str, int]:
    """The processes the demo started, found by PID (waits for the paused run's process)."""
    deadline = time.monotonic() + 30
    while True:
        pids = descendants(make_pid)
        found = {
            role: pid
            for role, marker in EXPECTED.items()
            for pid in pids
            if marker in _cmdline(pid)
        }
        if set(found) == set(EXPECTED) or time.monotonic() > deadline:
            assert set(found) == set(EXPECTED), (found, [_cmdline(p) for p in pids])
            return {**found, **{f"pid {p}": p for p in pids if p not in found.values()}}
        time.sleep(0.5)


CASES = [
    pytest.param(signal.SIGTERM, "make", id="SIGTERM-to-make"),
    pytest.param(signal.SIGHUP, "terminal-closed", id="SIGHUP-terminal-closed"),
    pytest.param(signal.SIGINT, "group", id="SIGINT-ctrl-c"),
]


@pytest.mark.parametrize(("sig", "target"), CASES)
def test_make_demo_stops_everything_it_started(
    tmp_path: Path, sig: signal.Signals, target: str
) -> None:
    with make_demo(tmp_path) as (make, term, port):
        link = _wait_paused(make, term)
        # One UI: the printed link opens the run in Prefect's V2 UI.
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/v2/runs/flow-run/[0-9a-f-]{{36}}", link)
        page = urllib.request.Request(link, headers={"Accept": "text/html"})
        with urllib.request.urlopen(page, timeout=10) as answer:
            assert answer.status == 200 and "/v2/" in answer.read().decode()

        started = _started(make.pid)
        pids = [make.pid, *started.values()]
        ports = _listening_ports(pids)
        assert port in ports and len(ports) >= 2, ports  # the server, the emulator (and more)

        sent = time.monotonic()
        if target == "make":
            os.kill(make.pid, sig)
        else:
            if target == "terminal-closed":
                term.hang_up()
            os.killpg(make.pid, sig)

        deadline = sent + STOP_WITHIN
        while time.monotonic() < deadline:
            if not any(map(_alive, pids)) and not any(map(_port_open, ports)):
                break
            time.sleep(0.1)
        took = time.monotonic() - sent
        left = {role: pid for role, pid in started.items() if _alive(pid)}
        assert not left, (
            f"{left} still running {took:.1f} s after {sig.name}:\n{term.output()[-600:]}"
        )
        assert not [p for p in ports if _port_open(p)], f"ports still open: {ports}"
        make.wait(timeout=5)
        print(
            f"\n{sig.name} ({target}): {len(pids)} processes, ports {sorted(ports)}, "
            f"all gone in {took:.1f} s"
        )
