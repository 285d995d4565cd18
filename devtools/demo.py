"""The demo: a local Prefect server on SQLite, the emulated contoso tenant, the served deployments,
and one sample unblock run paused for approval.

``python -m devtools.demo`` prints the UI link of the paused run and serves until Ctrl-C.
``python -m devtools.demo --smoke`` approves the run itself with every offered clean-up and
eviction action ticked, prints the evidence and the report and exits 0 (non-zero on any failure).
The sample run blocks sign-in at the start (``block_sign_in``).

Ctrl-C (SIGINT), SIGTERM and SIGHUP (a closed terminal) stop every process the demo started,
within 10 s, and free their ports. ``make demo`` forwards SIGTERM to the demo;
Ctrl-C and a closed terminal signal the whole foreground process group, the demo included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from devtools.localstack import (
    REPO,
    LocalPrefect,
    ManagedProcess,
    start_prefect_server,
    stop_together,
)

DEMO_ACCOUNT = "rob@contoso.com"
# Where Prefect keeps the paused run's form description (key "approve-unblock-<run count>").
APPROVAL_DESCRIPTION_KEY = "paused-approve-unblock-1-description"
APPROVAL_SCHEMA_KEY = "paused-approve-unblock-1-schema"
DEMO_TENANT = "contoso"
# The signals that stop the demo, and how long stopping may take: flows.serve (with the paused
# run's process) and the emulator get STOP_GRACE_SERVE seconds, then the server gets
# STOP_GRACE_SERVER; each gets SIGTERM first and SIGKILL when its grace is over. 7.5 s in all,
# so everything is gone within 10 s even on a busy machine. The runner needs about 5-6 s on a
# quiet 2-core machine to cancel the paused run and pause its schedules.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_GRACE_SERVE = 6.0
STOP_GRACE_SERVER = 1.5


class DemoError(RuntimeError):
    """The demo could not reach the state it needs; the message says which part failed."""


class Interrupted(BaseException):  # like KeyboardInterrupt: not an error
    """A stop signal arrived; raised in the main thread wherever it was waiting."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


def _ignore_stop_signals() -> None:
    """One stop at a time: a second Ctrl-C, or the SIGTERM make forwards after a SIGTERM sent
    to the whole group, must not interrupt the clean-up."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _stop_on_signals() -> None:
    def interrupt(signum: int, _frame: FrameType | None) -> None:
        _ignore_stop_signals()
        raise Interrupted(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)


@dataclass
class Processes:
    """What the demo started; ``stop`` ends all of it (safe to call at any point)."""

    server: ManagedProcess | None = None
    emulator: ManagedProcess | None = None
    serve: ManagedProcess | None = None
    stopped: list[str] = field(default_factory=list)

    def stop(self) -> None:
        # The runner needs the API to stop cleanly (it cancels the paused run and pauses its
        # schedules), so the server goes last.
        first = [p for p in (self.serve, self.emulator) if p is not None]
        stop_together(first, STOP_GRACE_SERVE)
        if self.server is not None:
            stop_together([self.server], STOP_GRACE_SERVER)
        self.stopped = [p.name for p in (*first, self.server) if p is not None]


@dataclass(frozen=True)
class DemoEnv:
    state_dir: Path
    port: int

    @property
    def server(self) -> LocalPrefect:
        """The demo's Prefect server, its SQLite and settings in the state directory."""
        return LocalPrefect(self.state_dir / "prefect", self.port)

    @property
    def api_url(self) -> str:
        return self.server.api_url

    @property
    def ui_url(self) -> str:
        """Prefect's V2 UI, its default; the links Prefect generates (``ui_url``) follow it."""
        return f"{self.server.url}/v2"

    def run_url(self, run_id: Any) -> str:
        """The V2 page of a flow run: its state, logs and artifacts; Resume is in its ⋮ menu."""
        return f"{self.ui_url}/runs/flow-run/{run_id}"

    def environ(self) -> dict[str, str]:
        return self.server.settings(
            os.environ,
            PREFECT_UI_URL=self.ui_url,
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_RUNNER_POLL_FREQUENCY="2",
            UNBLOCK_APPROVAL_POLL_SECONDS="2",
        )

    @property
    def handover_key(self) -> Path:
        return self.state_dir / "handover.key"


def _log(message: str) -> None:
    with contextlib.suppress(OSError):  # the terminal is gone (SIGHUP): stop silently
        print(f"[demo] {message}", file=sys.stderr, flush=True)


def start_server(procs: Processes, env: DemoEnv) -> None:
    _log(f"starting Prefect server on {env.ui_url} (SQLite in {env.server.home})")
    try:
        procs.server = start_prefect_server(
            env.port, env.environ(), env.state_dir / "server.log", timeout=120
        )
    except (RuntimeError, TimeoutError) as exc:
        raise DemoError(str(exc)) from None


def start_emulator(procs: Processes, env: DemoEnv) -> dict[str, Any]:
    _log("starting the emulated tenant (demo seed)")
    emulator = procs.emulator = ManagedProcess(
        "emulator",
        [sys.executable, "-m", "emulator", "--state-dir", str(env.state_dir / "emulator")],
        env.environ(),
        env.state_dir / "emulator.log",
        stdout_pipe=True,
    )
    emulator.start()
    try:
        return emulator.read_json_line(60)
    except (TimeoutError, ValueError):
        raise DemoError(f"the emulator printed no launch line; see {emulator.log_path}") from None


def handover_public_key(env: DemoEnv) -> str:
    """The demo's hand-over key pair: the private key in the state directory, made once."""
    from playbook.sealing import SealError, generate_key_file, load_private_key, public_key_text

    try:
        if env.handover_key.exists():
            return public_key_text(load_private_key(env.handover_key).public_key())
        return generate_key_file(env.handover_key)
    except SealError as exc:
        raise DemoError(f"the demo's hand-over key: {exc}") from None


def save_tenant_block(info: dict[str, Any], handover_key: str) -> None:
    """Store the emulated tenant as the ``contoso`` M365Tenant block. The demo keeps its (fake)
    secret in the block, the mode check-tenant warns about; real tenants keep it on the
    workers (README, "Connect your tenant")."""
    from pydantic import SecretStr

    from orchestration.blocks import M365Tenant

    tenant = info["tenants"][DEMO_TENANT]
    app = tenant["apps"]["playbook"]
    M365Tenant.register_type_and_schema()
    M365Tenant(
        tenant_id=tenant["tenant_id"],
        tenant_domain=tenant.get("domain"),
        client_id=app["client_id"],
        credential_source="secret-in-block",
        client_secret=SecretStr(app["client_secret"]),
        handover_public_key=handover_key,
        authority_host=info["authority_host"],
        graph_base=info["graph_base"],
        exchange_base=info["exchange_base"],
        ca_bundle=info["ca_path"],
        policy="report",
    ).save(DEMO_TENANT, overwrite=True)


def start_serving(procs: Processes, env: DemoEnv) -> ManagedProcess:
    _log("serving the deployments (python -m flows.serve)")
    serve = procs.serve = ManagedProcess(
        "serve", [sys.executable, "-m", "flows.serve"], env.environ(), env.state_dir / "serve.log"
    )
    return serve.start()


def _wait_for_deployment(name: str, timeout: float) -> None:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                time.sleep(1)
    raise DemoError(f"deployment {name} did not appear within {timeout:.0f} s")


def _wait_for_state(run_id: Any, wanted: set[str], timeout: float) -> str:
    from prefect import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            state = run.state
            if state is not None:
                if state.type.value in wanted:
                    return state.type.value
                if state.is_final():
                    raise DemoError(f"run ended {state.name}: {state.message}")
            time.sleep(1)
    raise DemoError(f"run did not reach {sorted(wanted)} within {timeout:.0f} s")


def _find_follow_up(run_id: Any, timeout: float) -> Any:
    """The verify-unblock run that ``run_id`` scheduled (names repeat across demo sessions)."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    deployments = DeploymentFilter(name=DeploymentFilterName(any_=["verify-unblock"]))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            for run in client.read_flow_runs(deployment_filter=deployments):
                check = run.parameters.get("check") or {}
                if str(check.get("source_flow_run_id")) == str(run_id):
                    return run.id
            time.sleep(1)
    raise DemoError(f"no follow-up check of run {run_id} within {timeout:.0f} s")


def start_sample_run(*, verification_delay_minutes: float) -> Any:
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    run = run_deployment(
        "unblock-user/unblock-user",
        parameters={
            "request": {
                "account": DEMO_ACCOUNT,
                "tenant": DEMO_TENANT,
                "ticket": "DEMO-1",
                "requested_by": "demo-analyst",
                "block_sign_in": True,
                "verification_delay_minutes": verification_delay_minutes,
            }
        },
        timeout=0,
        as_subflow=False,
    )
    if not isinstance(run, FlowRun):  # the sync call never returns a coroutine here
        raise DemoError("run_deployment returned no flow run")
    return run.id


def print_approval(run_id: Any) -> None:
    """Print, as plain text, what the approver sees above the form (the risk line first)."""

    from prefect import get_client

    from playbook.rendering import markdown_to_text

    with get_client(sync_client=True) as client:
        raw = client.read_flow_run_input(run_id, APPROVAL_DESCRIPTION_KEY)
    description = json.loads(raw)
    text = markdown_to_text(description) if isinstance(description, str) else ""
    if "Risk:" not in text:
        raise DemoError("the approval form shows no compromise evidence")
    print(text, flush=True)


def offered_checkboxes(run_id: Any) -> list[str]:
    """Every clean-up and eviction checkbox the paused run's form offers (the smoke test ticks
    them all, as an approver who agrees with every finding would)."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        raw = client.read_flow_run_input(run_id, APPROVAL_SCHEMA_KEY)
    properties = json.loads(raw).get("properties", {})
    return [name for name, spec in properties.items() if spec.get("type") == "boolean"]


def print_report(run_id: Any) -> None:
    """Print the run's Markdown artifacts (evidence, report) as plain text."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from playbook.rendering import markdown_to_text

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    reports = [a for a in artifacts if a.type == "markdown"]
    if not reports:
        raise DemoError("the run wrote no report artifact")
    for artifact in reports:
        print(markdown_to_text(str(artifact.data)))


def handover_line(env: DemoEnv, run_id: Any) -> str:
    """The hand-over command for the sample run, exactly as an analyst types it."""
    from orchestration.handover import command_line

    def shown(path: Path) -> str:
        return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)

    python = Path(sys.executable)
    return command_line(
        str(run_id),
        api_url=env.api_url,
        key_path=shown(env.handover_key),
        python=shown(python) if python.is_absolute() else str(python),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="approve automatically and exit")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "4200")))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("DEMO_STATE_DIR") or REPO / ".demo"),
    )
    args = parser.parse_args(argv)

    env = DemoEnv(state_dir=args.state_dir.resolve(), port=args.port)
    env.state_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(env.environ())

    procs = Processes()
    _stop_on_signals()
    try:
        try:
            start_server(procs, env)
            info = start_emulator(procs, env)
            save_tenant_block(info, handover_public_key(env))
            serve = start_serving(procs, env)
            _wait_for_deployment("unblock-user/unblock-user", 90)
            run_id = start_sample_run(verification_delay_minutes=0.1 if args.smoke else 240)
            _log(f"sample run for {DEMO_ACCOUNT} started; waiting for it to pause for approval")
            _wait_for_state(run_id, {"PAUSED"}, 180)
            print_approval(run_id)
            link = env.run_url(run_id)
            if not args.smoke:
                print(
                    f"\nApproval waiting: open {link}\n"
                    "then Resume in the run's \u22ee menu (top right).",
                    flush=True,
                )
                print(f"Hand the new password over: {handover_line(env, run_id)}\n", flush=True)
                _log("serving until Ctrl-C")
                while serve.alive():
                    time.sleep(1)
                raise DemoError(f"the serve process exited with {serve.returncode}")
            from prefect.flow_runs import resume_flow_run

            _log(f"paused at {link}; approving as smoke-test")
            resume_flow_run(
                run_id,
                run_input={
                    "decision": "approve",
                    "approver": "smoke-test",
                    "comment": "automatic",
                    **{box: True for box in offered_checkboxes(run_id)},
                },
            )
            _wait_for_state(run_id, {"COMPLETED"}, 180)
            print_report(run_id)
            verify_id = _find_follow_up(run_id, 60)
            _log("waiting for the follow-up check (verify-unblock) to run")
            _wait_for_state(verify_id, {"COMPLETED"}, 240)
            print_report(verify_id)
            _log("smoke run and its follow-up check completed")
            return 0
        except Interrupted as exc:
            _log(f"{exc}: stopping everything the demo started")
            return 0
        except DemoError as exc:
            _log(f"FAILED: {exc} (logs in {env.state_dir})")
            return 1
    finally:
        _ignore_stop_signals()
        began = time.monotonic()
        procs.stop()
        _log(f"stopped {', '.join(procs.stopped) or 'nothing'} in {time.monotonic() - began:.1f} s")


if __name__ == "__main__":
    code = main()
    # Everything the demo started is stopped. Prefect's exit handlers would now only retry the
    # server that is gone (seconds, more on a busy machine), so leave at once.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):
            stream.flush()
    os._exit(code)
