"""The analyst's hand-over command, run as the analyst runs it: the exact line the demo prints,
in a terminal (a pty), as a separate process, against the session's real Prefect server.

The runs are real unblock-user runs against the emulator; what the command prints must be the
credential in force, and every reveal must be recorded without the value.
"""

from __future__ import annotations

import os
import pty
import select
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from devtools.demo import DemoEnv, handover_line
from devtools.localstack import REPO, free_port, wait_for
from emulator import Emulator
from orchestration.handover import command_line, main

from ..handover_keys import KEY_FILE, stored_value
from ..helpers.runs import handover_events
from .helpers import TENANT, run_unblock

pytestmark = pytest.mark.usefixtures("tenant_block", "served")

ALEX = "alex@contoso.com"  # not restricted: the run resets, hands over and completes


def handover_argv(run_id: str, *options: str) -> list[str]:
    """The analyst's command line: ``python -m orchestration.handover <run> <options> --key``."""
    return [
        sys.executable,
        "-m",
        "orchestration.handover",
        run_id,
        *options,
        "--key",
        str(KEY_FILE),
    ]


def terminal(argv: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    """Run ``argv`` with its stdout on a pseudo-terminal (as in an analyst's shell)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, env=env, cwd=REPO
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    try:
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.stderr is not None
    err = proc.stderr.read().decode("utf-8", "replace")
    return rc, out.decode("utf-8", "replace").replace("\r\n", "\n"), err


def analyst_env(home: Path, **extra: str) -> dict[str, str]:
    """A shell without Prefect settings: a fresh HOME and PREFECT_HOME (so no database could be
    found or created there unnoticed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "UNBLOCK_"))}
    env.update(HOME=str(home), PREFECT_HOME=str(home / ".prefect"), **extra)
    return env


def no_database(home: Path) -> bool:
    return not [p for p in home.rglob("*") if p.suffix in (".db", ".db-wal", ".db-journal")]


@pytest.fixture
def finished_run(emulator: Emulator) -> str:
    """A completed unblock-user run whose sealed password is kept for the hand-over."""
    state = run_unblock(account=ALEX)
    assert state.name == "NotRestricted", state.message
    return str(state.state_details.flow_run_id)


@pytest.fixture
def demo_env(tmp_path: Path, api_url: str) -> DemoEnv:
    """The demo's layout (its API URL, its key file) around this session's server."""
    env = DemoEnv(state_dir=tmp_path / "demo", port=int(api_url.rsplit(":", 1)[1].split("/")[0]))
    env.state_dir.mkdir()
    shutil.copy(KEY_FILE, env.handover_key)
    env.handover_key.chmod(0o600)
    assert env.api_url == api_url
    return env


def reveal_events(run_id: str) -> list[Any]:
    from orchestration import handover_audit

    return handover_events(run_id, handover_audit.REVEALED)


def test_the_line_the_demo_prints_hands_over_the_password_in_force(
    emulator: Emulator, finished_run: str, demo_env: DemoEnv, tmp_path: Path
) -> None:
    line = handover_line(demo_env, finished_run)
    assert line.startswith(".venv/bin/python")
    assert f" -m orchestration.handover {finished_run} " in line
    assert "--api-url " + demo_env.api_url in line and "--key " in line
    home = tmp_path / "analyst"
    home.mkdir()
    rc, out, err = terminal(shlex.split(line), analyst_env(home))
    assert rc == 0, err
    password = out.strip()
    assert emulator.state.password_matches(ALEX, password, TENANT)
    assert "never by e-mail" in err and password not in err
    assert no_database(home), "the command must never create a local Prefect database"
    # The block holds only the sealed value.
    stored = stored_value(f"unblock-handover-{finished_run}")
    assert stored and stored.startswith("unblock-sealed-v1.password.") and password not in stored
    # The reveal is recorded: who and when, never the value.
    events = wait_for(lambda: reveal_events(finished_run), 30, "the reveal event", every=0.5)
    assert events[0].payload["os_user"] and events[0].payload["kind"] == "password"
    assert password not in events[0].model_dump_json()


def test_a_tap_is_handed_over_the_same_way(emulator: Emulator, tmp_path: Path) -> None:
    state = run_unblock(account=ALEX, handover="tap")
    run_id = str(state.state_details.flow_run_id)
    home = tmp_path / "analyst"
    home.mkdir()
    line = command_line(run_id, api_url=_api_url(), key_path=str(KEY_FILE), python=sys.executable)
    rc, out, err = terminal([*shlex.split(line), "--analyst", "Seán O'Brien"], analyst_env(home))
    assert rc == 0, err
    assert emulator.state.tap_matches(ALEX, out.strip(), TENANT)
    assert "Temporary Access Pass" in err
    events = wait_for(lambda: reveal_events(run_id), 30, "the reveal event", every=0.5)
    assert events[0].payload["analyst"] == "Seán O'Brien"


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def test_refuses_to_print_into_a_pipe(finished_run: str, capsys: pytest.CaptureFixture[str]):
    assert main([finished_run, "--api-url", _api_url(), "--key", str(KEY_FILE)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "pipe" in err


def test_without_an_api_url_it_refuses_and_creates_no_database(tmp_path: Path) -> None:
    started = time.monotonic()
    rc, out, err = terminal(
        handover_argv(str(uuid.uuid4())),
        analyst_env(tmp_path),
    )
    assert rc == 2 and out == ""
    assert "no Prefect API URL" in err and "--api-url" in err
    assert "Traceback" not in err and "database is locked" not in err
    assert time.monotonic() - started < 15
    assert no_database(tmp_path)


def test_an_unreachable_api_fails_fast_and_says_so(finished_run: str, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/api"
    started = time.monotonic()
    rc, out, err = terminal(
        handover_argv(finished_run, "--api-url", down),
        analyst_env(tmp_path),
    )
    took = time.monotonic() - started
    assert rc == 1 and out == ""
    assert f"cannot reach the Prefect API at {down}" in err and "Traceback" not in err
    assert took < 10, f"took {took:.1f} s"
    assert no_database(tmp_path)


def test_after_deletion_it_says_when_and_by_whom(
    emulator: Emulator, finished_run: str, tmp_path: Path
) -> None:
    from flows.verify_unblock import verify_unblock
    from playbook.params import VerifyRequest

    block = f"unblock-handover-{finished_run}"
    cleanup = verify_unblock(
        check=VerifyRequest(
            account=ALEX, tenant=TENANT, ticket="INC-1", mode="cleanup", handover_block=block
        ),
        return_state=True,
    )
    assert cleanup.name == "CleanedUp", cleanup.message
    assert stored_value(block) is None
    from prefect.client.orchestration import get_client

    from orchestration import handover_audit

    def deleted() -> Any:
        with get_client(sync_client=True) as client:
            return handover_audit.last_deletion(client, finished_run)

    wait_for(deleted, 30, "the deletion event", every=0.5)
    rc, out, err = terminal(
        handover_argv(finished_run, "--api-url", _api_url()),
        analyst_env(tmp_path),
    )
    assert rc == 1 and out == ""
    assert f"no credential for run {finished_run}: it was deleted at " in err
    assert "by verify-unblock run " in err
    assert reveal_events(finished_run) == []


def test_a_key_that_is_not_the_profiles_opens_nothing(
    finished_run: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.key"
    assert main(["keygen", "--out", str(other)]) == 0
    public = capsys.readouterr().out.strip()
    assert public.startswith("x25519:") and oct(other.stat().st_mode)[-3:] == "600"
    assert main(["keygen", "--out", str(other)]) == 2, "an existing key is never overwritten"
    rc = main([finished_run, "--api-url", _api_url(), "--key", str(other), "--allow-non-tty"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert "not to yours" in err
    assert reveal_events(finished_run) == []


def test_unknown_run_and_handover_none_are_named(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = str(uuid.uuid4())
    args = ["--api-url", _api_url(), "--key", str(KEY_FILE), "--allow-non-tty"]
    assert main([unknown, *args]) == 1
    assert f"no flow run {unknown}" in capsys.readouterr().err
    state = run_unblock(account=ALEX, handover="none")
    assert main([str(state.state_details.flow_run_id), *args]) == 1
    assert "handed over nothing" in capsys.readouterr().err


def test_a_world_readable_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    loose = tmp_path / "loose.key"
    shutil.copy(KEY_FILE, loose)
    loose.chmod(0o644)
    rc = main([str(uuid.uuid4()), "--api-url", _api_url(), "--key", str(loose), "--allow-non-tty"])
    assert rc == 2 and "chmod 600" in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "unblock-handover-x; rm -rf /", "", "a" * 5000]
)
def test_hostile_names_are_refused(bad: str) -> None:
    with pytest.raises(SystemExit, match="not a flow run id"):
        main([bad, "--allow-non-tty"])
