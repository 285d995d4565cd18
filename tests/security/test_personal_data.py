"""Issue 12: sign-in IP addresses and message subjects are personal data. They belong in the
full evidence artifact (``unblock-evidence``) only.

A real ``prefect server start``, ``python -m flows.serve``, the emulator with the demo tenant and
a webhook receiver on 127.0.0.1 as the notification target. One unblock-user run for rob (the
demo's compromised account: sign-ins from 198.51.100.23, 198.51.100.77 and 203.0.113.45, a spam
run with "Updated banking details" and "Invoice INV-2291 overdue"), started with
``block_sign_in``, notified, escalated, approved with every eviction action ticked.

Needles: those addresses and subjects. Searched: every log of the server (API and the worker's
captured output), every flow run input (the approval's short description and form), every
notification received, every event, every artifact but the evidence one, every task run with
its state history, every flow run with its state history (state messages), result storage
under PREFECT_HOME, and every table of the database but the artifact tables. The evidence
artifact must hold every needle (else the search proves nothing).

Markdown escapes (``203\\.0\\.113\\.45``) are removed from every haystack before the search, so an
escaped copy is found too.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from emulator import Emulator

from ..evidence.receiver import WebhookReceiver
from ..helpers.runs import EVICT_ALL
from ..reliability.realserver import RealServer, served_stack, wait_for
from .apiscan import event_pages, paged
from .leakscan import Scanner

pytestmark = pytest.mark.timeout(400)

ROB = "rob@contoso.com"
EVIDENCE_KEY = "unblock-evidence"
PERSONAL = {
    "rob's usual sign-in address": "198.51.100.23",
    "rob's new sign-in address": "198.51.100.77",
    "the attacker's sign-in address": "203.0.113.45",
    "a spam subject (banking)": "Updated banking details",
    "a spam subject (invoice)": "Invoice INV-2291 overdue",
}
# Where the evidence artifact is stored: the only place the needles may be.
_ARTIFACT_TABLES = ("artifact", "artifact_collection")
COPY = "event copying the evidence artifact"
# Found by this test, not fixed here (the artifact's key is the approver's journey's design).
KNOWN_COPY = (
    "Prefect 3.9.1's server emits prefect.artifact-collection.created/updated events for a "
    "keyed artifact with the artifact's data in the payload "
    "(prefect/server/models/artifacts.py, events/schemas/lifecycle.py), so the keyed "
    "unblock-evidence artifact, IP addresses and subjects included, is copied into the events "
    "table and to every event subscriber"
)


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[RealServer, Emulator]]:
    with served_stack("unblock-personal-", "unblock-user", "verify-unblock") as env:
        yield env


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def _plain(data: bytes | str) -> str:
    """The text without backslashes: Markdown escapes and JSON escapes of them alike."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text.replace("\\", "")


def _run_and_states(
    client: httpx.Client, kind: str, run: dict[str, Any]
) -> Iterator[tuple[str, str, str]]:
    """(kind, location, text) of a task or flow run (``kind`` "task_run" or "flow_run") and of
    its states."""
    label = kind.replace("_", " ")
    yield label, f"{label} {run['name']}", str(run)
    states = client.get(f"{kind}_states/", params={f"{kind}_id": run["id"]})
    states.raise_for_status()
    yield f"{label} states", f"{label} {run['name']} states", states.text


def _haystacks(api_url: str) -> Iterator[tuple[str, str, str]]:
    """(kind, location, text) of everything the Prefect API gives, the evidence artifact with
    kind "evidence artifact"."""
    with httpx.Client(base_url=api_url.rstrip("/") + "/", timeout=30, trust_env=False) as client:
        for _offset, logs, _raw in paged(client, "logs/filter", {}):
            for log in logs:
                yield "log", f"log of run {log.get('flow_run_id')}", str(log.get("message"))
        for _offset, artifacts, _raw in paged(client, "artifacts/filter", {}):
            for art in artifacts:
                kind = "evidence artifact" if art.get("key") == EVIDENCE_KEY else "artifact"
                yield kind, f"artifact {art.get('key')} {art['id']}", str(art.get("data"))
        for _offset, task_runs, _raw in paged(client, "task_runs/filter", {}):
            for task_run in task_runs:
                yield from _run_and_states(client, "task_run", task_run)
        for _offset, flow_runs, _raw in paged(client, "flow_runs/filter", {}):
            for run in flow_runs:
                yield from _run_and_states(client, "flow_run", run)
                inputs = client.post(
                    f"flow_runs/{run['id']}/input/filter", json={"prefix": "", "limit": 1000}
                )
                inputs.raise_for_status()
                for item in inputs.json():
                    yield "flow run input", f"input {item['key']} of {run['name']}", item["value"]
        for page in event_pages(client):
            for event in page.json()["events"]:
                name = event["resource"].get("prefect.resource.name")
                yield (
                    _event_kind(event["event"], name),
                    f"event {event['event']} {name}",
                    (json.dumps(event)),
                )


def _event_kind(event: str, resource_name: str | None) -> str:
    """Prefect's server copies a keyed artifact's data into the payload of its
    ``prefect.artifact-collection.created``/``updated`` event: kept apart, see KNOWN_COPY."""
    if event.startswith("prefect.artifact-collection.") and resource_name == EVIDENCE_KEY:
        return COPY
    return "event"


def _database_rows(server: RealServer) -> Iterator[tuple[str, str, str]]:
    """Every value of every table but the artifact tables, as a backup of the database has it."""
    con = sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            if table in _ARTIFACT_TABLES:
                continue
            for row in con.execute(f'SELECT rowid, * FROM "{table}"'):
                kind = "db row"
                if table == "events":
                    name = json.loads(row["resource"]).get("prefect.resource.name")
                    kind = "db row" if _event_kind(row["event"], name) != COPY else COPY
                for column in row.keys()[1:]:
                    value = row[column]
                    if isinstance(value, str | bytes):
                        yield kind, f"db {table}.{column} rowid={row[0]}", _plain(value)
    finally:
        con.close()


@dataclass
class Searched:
    leaks: list[str]  # outside the evidence artifact and Prefect's copy of it
    copies: list[str]  # in Prefect's artifact-collection events of the evidence artifact
    in_evidence: set[str]  # needles found in the evidence artifact
    seen: dict[str, int]


@pytest.fixture(scope="module")
def searched(stack: tuple[RealServer, Emulator], receiver: WebhookReceiver) -> Searched:
    """Run the scenario once, then search everywhere."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run

    server, emu = stack
    body = {"text": "{{subject}}\n{{body}}"}
    for name, path in (("soc-approvers", "/approvers"), ("soc-leads", "/leads")):
        CustomWebhookNotificationBlock(name=name, url=receiver.url(path), json_data=body).save(
            name, overwrite=True
        )
    request = {
        "account": ROB,
        "tenant": "contoso",
        "ticket": "INC-5001",
        "requested_by": "ann",
        "handover": "none",
        "block_sign_in": True,
        "notify": ["custom-webhook/soc-approvers"],
        "escalate_to": ["custom-webhook/soc-leads"],
        "escalate_after_minutes": 0.05,
    }
    run = run_deployment(
        "unblock-user/unblock-user",
        parameters={"request": request},
        timeout=0,
        as_subflow=False,
    )

    def state() -> Any:
        with get_client(sync_client=True) as client:
            return client.read_flow_run(run.id).state

    wait_for(lambda: (s := state()) is not None and s.is_paused(), 180, "the approval pause")
    receiver.wait_for("/approvers", 1, timeout=60)  # approval needed
    receiver.wait_for("/leads", 1, timeout=60)  # escalation
    resume_flow_run(run.id, run_input={"decision": "approve", "approver": "bob", **EVICT_ALL})
    final = wait_for(lambda: (s := state()) is not None and s.is_final() and s, 180, "the end")
    assert final.name == "Unblocked", final.message
    receiver.wait_for("/approvers", 2, timeout=60)  # the outcome
    rob = emu.state.user("contoso", ROB)
    assert rob.enabled and {m.kind for m in rob.auth_methods} == {"phone"}
    time.sleep(2)  # let the API log workers flush

    scanner, copies, evidence = Scanner(PERSONAL), Scanner(PERSONAL), Scanner(PERSONAL)
    by_kind = {"evidence artifact": evidence, COPY: copies}
    seen: dict[str, int] = {}
    found = [*_haystacks(server.api_url), *_database_rows(server)]
    found += [
        ("notification", f"notification to {r.path}", _plain(r.body)) for r in receiver.received
    ]
    found += [
        ("file", f"file {path}", _plain(path.read_bytes()))
        for path in sorted(server.home.rglob("*"))
        if path.is_file() and not path.name.startswith("prefect.db")
    ]
    for kind, location, text in found:
        seen[kind] = seen.get(kind, 0) + 1
        by_kind.get(kind, scanner).scan_text(_plain(text), location, kind=kind)
    return Searched(
        leaks=scanner.unique_leaks(),
        copies=copies.unique_leaks(),
        in_evidence={leak.needle for leak in evidence.leaks},
        seen=seen,
    )


def test_sign_in_addresses_and_subjects_stay_in_the_evidence_artifact(searched: Searched) -> None:
    seen = searched.seen
    # The search saw the places it claims to, and the needles are where they belong.
    assert seen.get("log", 0) >= 30, seen
    assert seen.get("notification", 0) >= 3, seen
    assert seen.get("flow run input", 0) >= 2, seen  # the description and the form
    assert seen.get("artifact", 0) >= 1 and seen.get("task run states", 0) >= 10, seen
    assert seen.get("event", 0) >= 10 and seen.get("db row", 0) >= 100, seen
    assert seen.get("file", 0) >= 2, seen  # the server's and the worker's output
    assert searched.in_evidence == set(PERSONAL), (
        "the evidence artifact must hold every sign-in address and subject"
    )
    assert searched.leaks == [], "\n".join(searched.leaks)


def test_the_one_other_copy_is_prefects_own_artifact_event(searched: Searched) -> None:
    """KNOWN_COPY, as docs/security-model.md describes it (kept as long as events are: 7 days by
    default). If Prefect stops copying, this fails: then the docs must change too."""
    assert searched.copies, "no artifact-collection event carries the evidence any more"
