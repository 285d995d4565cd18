"""Through the real API of a real server, with ``python -m flows.serve`` running the runs:

- run creation (``POST /api/deployments/{id}/create_flow_run``) and the approval
  (``POST /api/flow_runs/{id}/resume``) refuse bad values with the field and what is expected, in
  words;
- the served deployment offers the tenant profiles as a choice and refuses another one when the
  run is created; ``python -m flows.deploy`` refreshes the choice and applies it after
  ``prefect deploy``;
- runs are named after the account and the ticket;
- "Seán O'Brien" approves a real run; the name reaches the Exchange Reason and the report inert.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from devtools.localstack import REPO, wait_for
from emulator import Emulator

from ..helpers.commands import run_command
from ..helpers.runs import artifact_markdown, effective

GOOD = {
    "account": "rob@contoso.com",
    "tenant": "contoso",
    "ticket": "INC-4242",
    "requested_by": "Zoë Müller-Lüdenscheidt",
}
LATER = {"type": "SCHEDULED", "state_details": {"scheduled_time": "2099-01-01T00:00:00Z"}}
REPORT_KEY = "unblock-user-report"


class _Api(httpx.Client):
    """The REST API as the UI calls it; a 503 (the test server's SQLite busy) is retried, as
    Prefect's own client does."""

    def request(self, *args: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        for _attempt in range(10):
            answer = super().request(*args, **kwargs)
            if answer.status_code != 503:
                return answer
            time.sleep(1)
        return answer


def _api(api_url: str) -> httpx.Client:
    return _Api(base_url=api_url, timeout=30)


def _deployment_id(api: httpx.Client, name: str) -> str:
    answer = api.get(f"/deployments/name/{name}")
    answer.raise_for_status()
    return str(answer.json()["id"])


def _create(api: httpx.Client, deployment: str, parameters: dict[str, Any], **extra: Any) -> Any:
    dep = _deployment_id(api, deployment)
    return api.post(
        f"/deployments/{dep}/create_flow_run",
        json={"parameters": parameters, "state": LATER, **extra},
    )


def _refused(api: httpx.Client, request: dict[str, Any]) -> str:
    answer = _create(api, "unblock-user/unblock-user", {"request": request})
    assert answer.status_code == 409, answer.text
    return str(answer.json()["detail"])


def _wait_state(api: httpx.Client, run_id: str, done: Any, timeout: float = 120) -> Any:
    def check() -> Any:
        run = api.get(f"/flow_runs/{run_id}").json()
        return run if run.get("state") and done(run["state"]) else None

    return wait_for(check, timeout, f"run {run_id}", every=0.5)


def _decision(api: httpx.Client, run_id: str, approve: bool) -> dict[str, Any]:
    """The approve/reject part of the run's form, whichever shape the form has."""
    inputs = api.post(
        f"/flow_runs/{run_id}/input/filter", json={"prefix": "paused-", "limit": 50}
    ).json()
    schemas = [json.loads(i["value"]) for i in inputs if i["key"].endswith("-schema")]
    assert schemas, inputs
    props = schemas[-1]["properties"]
    if "decision" in props:
        return {"decision": "approve" if approve else "reject"}
    return {"approve": approve}


def _resume(api: httpx.Client, run_id: str, run_input: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(f"/flow_runs/{run_id}/resume", json={"run_input": run_input})
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


# -- refusals in words, through the API ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"account": "not-an-address"}, "account", "account: an e-mail address such as"),
        ({"ticket": "INC-42\n"}, "ticket", "ticket: a reference such as INC-12345"),
        ({"ticket": "x" * 100_000}, "ticket", "ticket: a reference such as INC-12345"),
        ({"requested_by": "<b>ann</b>"}, "requested_by", "requested_by: a name or an e-mail"),
        ({"notify": ["https://hooks.slack.com/x"]}, "notify[0]", "a notification block such as"),
    ],
)
def test_run_creation_says_in_words_what_was_expected(
    served: Any, api_url: str, change: dict[str, Any], field: str, words: str
) -> None:
    with _api(api_url) as api:
        detail = _refused(api, {**GOOD, **change})
    assert detail.startswith(
        f"Error creating flow run: Validation failed for field 'request.{field}'. Failure reason: '"
    ), detail
    assert words in detail and detail.endswith("' was expected")
    assert "^" not in detail and "[A-" not in detail and len(detail) < 400


def test_an_empty_form_names_the_missing_field(served: Any, api_url: str) -> None:
    with _api(api_url) as api:
        assert _refused(api, {}) == (
            "Error creating flow run: Validation failed for field 'request'. "
            "Failure reason: 'account' is a required property"
        )


# -- the tenant choice -----------------------------------------------------------------------------


def test_the_served_deployment_offers_the_profiles_and_refuses_an_unknown_one(
    served: Any, api_url: str, tenant_block: str
) -> None:
    with _api(api_url) as api:
        dep = api.get("/deployments/name/unblock-user/unblock-user").json()
        tenant = dep["parameter_openapi_schema"]["definitions"]["UnblockRequest"]["properties"][
            "tenant"
        ]
        assert tenant_block in tenant["enum"]
        detail = _refused(api, {**GOOD, "tenant": "acme"})
    assert detail.startswith(
        "Error creating flow run: Validation failed for field 'request.tenant'. "
        "Failure reason: 'acme' is not one of ["
    ), detail
    assert f"'{tenant_block}'" in detail


def test_a_profile_saved_after_serving_is_offered_after_a_refresh(
    served: Any, api_url: str, emulator: Emulator
) -> None:
    from prefect.client.orchestration import get_client

    from flows.deploy import main as deploy_main
    from flows.deploy import refresh_tenant_choices
    from orchestration.blocks import M365Tenant

    M365Tenant.from_config(emulator.tenant_config("contoso")).save("fabrikam", overwrite=True)
    try:
        with _api(api_url) as api:
            assert "'fabrikam' is not one of [" in _refused(api, {**GOOD, "tenant": "fabrikam"})
            assert deploy_main(["--tenant-choices"]) == 0  # the documented step
            answer = _create(
                api, "unblock-user/unblock-user", {"request": {**GOOD, "tenant": "fabrikam"}}
            )
            assert answer.status_code == 201, answer.text
            api.delete(f"/flow_runs/{answer.json()['id']}")
    finally:
        with get_client(sync_client=True) as client:
            client.delete_block_document(M365Tenant.load("fabrikam")._block_document_id)
            refresh_tenant_choices(client)
    with _api(api_url) as api:
        assert "'fabrikam' is not one of [" in _refused(api, {**GOOD, "tenant": "fabrikam"})


def test_prefect_deploy_then_the_choice(served: Any, api_url: str, tenant_block: str) -> None:
    """``python -m flows.deploy --name check-tenant``: prefect.yaml's deployment, then the
    choice."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name("check-tenant/check-tenant")
            pytest.skip("another suite registered check-tenant on this server")
        except ObjectNotFound:
            pass
        with contextlib.suppress(ObjectAlreadyExists):
            client.create_work_pool(WorkPoolCreate(name="unblock-email", type="process"))
    env = {**os.environ, "PREFECT_API_URL": api_url, "UNBLOCK_EMAIL_HOME": str(REPO)}
    done = run_command(
        [sys.executable, "-m", "flows.deploy", "--name", "check-tenant"],
        cwd=REPO,
        env=env,
        timeout=300,
    )
    try:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert f"check-tenant/check-tenant: tenant field offers: {tenant_block}" in done.stdout
        with _api(api_url) as api:
            dep = api.get("/deployments/name/check-tenant/check-tenant").json()
            assert tenant_block in dep["parameter_openapi_schema"]["properties"]["tenant"]["enum"]
            answer = _create(api, "check-tenant/check-tenant", {"tenant": "acme"})
            assert answer.status_code == 409
            assert "Failure reason: 'acme' is not one of [" in answer.json()["detail"]
    finally:
        with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
            client.delete_deployment(client.read_deployment_by_name("check-tenant/check-tenant").id)


# -- run names and a real approval by Seán O'Brien -------------------------------------------


def test_named_runs_and_an_approval_by_sean_o_brien(
    served: Any, api_url: str, emulator: Emulator, tenant_block: str
) -> None:
    with _api(api_url) as api:
        # Created like the UI's form does it: with a random name the flow replaces.
        dep = _deployment_id(api, "unblock-user/unblock-user")
        answer = api.post(
            f"/deployments/{dep}/create_flow_run",
            json={"parameters": {"request": GOOD}, "name": "small-tuna"},
        )
        assert answer.status_code == 201, answer.text
        run_id = answer.json()["id"]
        run = _wait_state(api, run_id, lambda s: s["type"] == "PAUSED", timeout=180)
        assert run["name"] == "unblock rob@contoso.com INC-4242"

        refused = _resume(api, run_id, {**_decision(api, run_id, True), "approver": "**bob**"})
        assert refused["status"] == "REJECT"
        reason = refused["details"]["reason"]
        assert reason.startswith(
            "Reason: Validation failed for field 'approver'. Failure reason: "
        ), reason
        assert "approver: your name such as Seán O\u2019Brien" in reason and "^" not in reason
        refused = _resume(
            api,
            run_id,
            {**_decision(api, run_id, True), "approver": "ann", "comment": "ok\nApproved: all"},
        )
        assert refused["status"] == "REJECT"
        assert "comment: one line of text" in refused["details"]["reason"]
        time.sleep(2)  # the paused process polls: it must still be waiting
        assert api.get(f"/flow_runs/{run_id}").json()["state"]["type"] == "PAUSED"
        assert not effective(emulator, "exo.Remove-BlockedSenderAddress")

        accepted = _resume(
            api, run_id, {**_decision(api, run_id, True), "approver": "Seán O'Brien"}
        )
        assert accepted["status"] == "ACCEPT", accepted
        final = _wait_state(api, run_id, lambda s: s["type"] in ("COMPLETED", "FAILED", "CRASHED"))
        assert final["state"]["name"] == "Unblocked", final["state"]

        follow_up = api.post(
            "/flow_runs/filter",
            json={"deployments": {"name": {"any_": ["verify-unblock"]}}, "limit": 200},
        ).json()
        mine = [r for r in follow_up if r["parameters"]["check"]["source_flow_run_id"] == run_id]
        assert [r["name"] for r in mine] == ["verify-unblock rob@contoso.com INC-4242"]
        for r in mine:  # due in 4 h; nobody needs it
            api.delete(f"/flow_runs/{r['id']}")

    # The Exchange Reason as the emulator received it (a JSON string parameter of the cmdlet).
    removals = effective(emulator, "exo.Remove-BlockedSenderAddress")
    reasons = [r.parameters.get("Reason") for r in removals]
    assert reasons == ["unblock-email: ticket INC-4242; approved by Seán O'Brien"], reasons
    report = artifact_markdown(run_id, REPORT_KEY)
    for name in ("Seán O", "Zoë Müller"):
        assert name in report
    for bad in ("<", "{{", "](", "\u202e"):
        assert bad not in report


def test_follow_up_checks_are_named(served: Any, api_url: str) -> None:
    """A check the playbook scheduled keeps its name; one started by hand is named after its
    account and ticket (both clean-up checks: no hand-over secret, nothing to do)."""
    check = {
        "account": "rob@contoso.com",
        "tenant": "contoso",
        "ticket": "INC-77",
        "mode": "cleanup",
    }
    scheduled = {**check, "source_flow_run_id": "6f0e0bb4-9c55-4d51-9a6c-6f0b5f2b9a11"}
    now = {"type": "SCHEDULED", "state_details": {"scheduled_time": datetime.now(UTC).isoformat()}}
    with _api(api_url) as api:
        dep = _deployment_id(api, "verify-unblock/verify-unblock")
        ids = {}
        for label, params, name in (
            ("scheduled", scheduled, "cleanup-unblock rob@contoso.com INC-77"),
            ("by hand", check, "brave-fox"),
        ):
            answer = api.post(
                f"/deployments/{dep}/create_flow_run",
                json={"parameters": {"check": params}, "name": name, "state": now},
            )
            assert answer.status_code == 201, answer.text
            ids[label] = answer.json()["id"]
        names = {
            label: _wait_state(api, run_id, lambda s: s["type"] == "COMPLETED")["name"]
            for label, run_id in ids.items()
        }
    assert names == {
        "scheduled": "cleanup-unblock rob@contoso.com INC-77",
        "by hand": "clean-up rob@contoso.com INC-77",
    }
