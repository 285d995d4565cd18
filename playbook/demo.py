"""The demo: a local Prefect server on SQLite, the emulated contoso tenant, the served deployments,
and one sample unblock run paused for approval.

``python -m playbook.demo`` prints the UI link of the paused run and serves until Ctrl-C.
``python -m playbook.demo --smoke`` approves the run itself, prints the report and exits 0
(non-zero on any failure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .localstack import REPO, ManagedProcess, start_prefect_server

DEMO_ACCOUNT = "rob@contoso.com"
# Where Prefect keeps the paused run's form description (key "approve-unblock-<run count>").
APPROVAL_DESCRIPTION_KEY = "paused-approve-unblock-1-description"
DEMO_TENANT = "contoso"


class DemoError(RuntimeError):
    """The demo could not reach the state it needs; the message says which part failed."""


@dataclass(frozen=True)
class DemoEnv:
    state_dir: Path
    port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PREFECT_HOME=str(self.state_dir / "prefect"),
            PREFECT_API_URL=self.api_url,
            PREFECT_UI_URL=self.ui_url,
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(self.port),
            PREFECT_UI_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_RUNNER_POLL_FREQUENCY="2",
            UNBLOCK_APPROVAL_POLL_SECONDS="2",
        )
        return env


def _log(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def start_server(stack: ExitStack, env: DemoEnv) -> None:
    _log(f"starting Prefect server on {env.ui_url} (SQLite in {env.state_dir / 'prefect'})")
    try:
        server = start_prefect_server(
            env.port, env.environ(), env.state_dir / "server.log", timeout=120
        )
    except (RuntimeError, TimeoutError) as exc:
        raise DemoError(str(exc)) from None
    stack.callback(server.stop)


def start_emulator(stack: ExitStack, env: DemoEnv) -> dict[str, Any]:
    _log("starting the emulated tenant (demo seed)")
    emulator = ManagedProcess(
        "emulator",
        [sys.executable, "-m", "emulator", "--state-dir", str(env.state_dir / "emulator")],
        env.environ(),
        env.state_dir / "emulator.log",
        stdout_pipe=True,
    )
    stack.enter_context(emulator)
    try:
        return emulator.read_json_line(60)
    except (TimeoutError, ValueError):
        raise DemoError(f"the emulator printed no launch line; see {emulator.log_path}") from None


def save_tenant_block(info: dict[str, Any]) -> None:
    """Store the emulated tenant as the ``contoso`` M365Tenant block (the secret is fake)."""
    from pydantic import SecretStr

    from playbook.blocks import M365Tenant

    tenant = info["tenants"][DEMO_TENANT]
    app = tenant["apps"]["playbook"]
    M365Tenant.register_type_and_schema()
    M365Tenant(
        tenant_id=tenant["tenant_id"],
        tenant_domain=tenant.get("domain"),
        client_id=app["client_id"],
        client_secret=SecretStr(app["client_secret"]),
        authority_host=info["authority_host"],
        graph_base=info["graph_base"],
        exchange_base=info["exchange_base"],
        ca_bundle=info["ca_path"],
        policy="report",
    ).save(DEMO_TENANT, overwrite=True)


def start_serving(stack: ExitStack, env: DemoEnv) -> ManagedProcess:
    _log("serving the deployments (python -m flows.serve)")
    serve = ManagedProcess(
        "serve", [sys.executable, "-m", "flows.serve"], env.environ(), env.state_dir / "serve.log"
    )
    return stack.enter_context(serve)


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


def _run_name(run_id: Any) -> str:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return str(client.read_flow_run(run_id).name)


def _find_run(name: str, timeout: float) -> Any:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
            )
            if runs:
                return runs[0].id
            time.sleep(1)
    raise DemoError(f"no flow run named {name} within {timeout:.0f} s")


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
                "verification_delay_minutes": verification_delay_minutes,
            }
        },
        timeout=0,
        as_subflow=False,
        flow_run_name=f"demo-unblock-{int(time.time())}",
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="approve automatically and exit")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "4200")))
    parser.add_argument("--state-dir", type=Path, default=REPO / ".demo")
    args = parser.parse_args(argv)

    env = DemoEnv(state_dir=args.state_dir.resolve(), port=args.port)
    env.state_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(env.environ())

    with ExitStack() as stack:
        try:
            start_server(stack, env)
            info = start_emulator(stack, env)
            save_tenant_block(info)
            serve = start_serving(stack, env)
            _wait_for_deployment("unblock-user/unblock-user", 90)
            run_id = start_sample_run(verification_delay_minutes=0.1 if args.smoke else 240)
            _log(f"sample run for {DEMO_ACCOUNT} started; waiting for it to pause for approval")
            _wait_for_state(run_id, {"PAUSED"}, 180)
            print_approval(run_id)
            link = f"{env.ui_url}/runs/flow-run/{run_id}"
            if not args.smoke:
                print(f"\nApproval waiting: open {link} and press Resume.\n", flush=True)
                _log("serving until Ctrl-C")
                while serve.alive():
                    time.sleep(1)
                raise DemoError(f"the serve process exited with {serve.returncode}")
            from prefect.flow_runs import resume_flow_run

            _log(f"paused at {link}; approving as smoke-test")
            resume_flow_run(
                run_id,
                run_input={"decision": "approve", "approver": "smoke-test", "comment": "automatic"},
            )
            _wait_for_state(run_id, {"COMPLETED"}, 180)
            print_report(run_id)
            verify_id = _find_run(f"verify-{_run_name(run_id)}", 60)
            _log("waiting for the follow-up check (verify-unblock) to run")
            _wait_for_state(verify_id, {"COMPLETED"}, 240)
            print_report(verify_id)
            _log("smoke run and its follow-up check completed")
            return 0
        except KeyboardInterrupt:
            _log("stopping")
            return 0
        except DemoError as exc:
            _log(f"FAILED: {exc} (logs in {env.state_dir})")
            return 1


if __name__ == "__main__":
    sys.exit(main())
