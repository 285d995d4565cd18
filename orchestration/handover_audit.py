"""The hand-over's audit trail: Prefect events, never a value.

Every hand-over credential has the event resource ``unblock-email.handover.<flow run id>``
(related: the run, ``prefect.flow-run.<id>``), so the run's page and the event feed show:

- ``unblock-email.handover.sealed``: a password or TAP was sealed to a key (its fingerprint);
- ``unblock-email.handover.revealed``: someone opened it with ``python -m orchestration.handover``
  (who: the ``--analyst`` name and the OS user and host; when: the event time);
- ``unblock-email.handover.deleted``: the sealed copy was deleted (by which run or step, why).

The hand-over command reads the last ``deleted`` event to say when and by whom a credential went.
Events are kept for the server's ``PREFECT_EVENTS_RETENTION_PERIOD`` (7 days by default).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect import runtime
from prefect.client.orchestration import SyncPrefectClient
from prefect.events import Event, emit_event
from prefect.events.clients import get_events_client
from prefect.events.filters import (
    EventFilter,
    EventNameFilter,
    EventOrder,
    EventResourceFilter,
)

SEALED = "unblock-email.handover.sealed"
REVEALED = "unblock-email.handover.revealed"
DELETED = "unblock-email.handover.deleted"
_RECORD_TIMEOUT = 10.0


def resource_id(flow_run_id: str) -> str:
    return f"unblock-email.handover.{flow_run_id}"


def _resource(flow_run_id: str, block: str) -> dict[str, str]:
    return {"prefect.resource.id": resource_id(flow_run_id), "prefect.resource.name": block}


def _related(flow_run_id: str) -> list[dict[str, str]]:
    run = {"prefect.resource.id": f"prefect.flow-run.{flow_run_id}"}
    return [{**run, "prefect.resource.role": "flow-run"}]


def run_id_of(block: str) -> str:
    return block.removeprefix("unblock-handover-")


def current_actor(default: str) -> str:
    """Who acts, for the audit trail: the running flow run, else ``default``."""
    name = runtime.flow_run.name
    flow = runtime.flow_run.flow_name
    return f"{flow} run {name}" if name else default


def record_sealed(block: str, kind: str, key_fingerprint: str, *, replaced: bool) -> None:
    run_id = run_id_of(block)
    emit_event(
        SEALED,
        resource=_resource(run_id, block),
        related=_related(run_id),
        payload={"kind": kind, "key": key_fingerprint, "replaced_earlier_copy": replaced},
    )


def record_deleted(block: str, *, by: str, reason: str) -> None:
    run_id = run_id_of(block)
    emit_event(
        DELETED,
        resource=_resource(run_id, block),
        related=_related(run_id),
        payload={"by": by, "reason": reason},
    )


def record_revealed(block: str, payload: dict[str, Any]) -> None:
    """Send the reveal event and wait until the server has it (raises if it cannot)."""
    run_id = run_id_of(block)
    event = Event(
        event=REVEALED,
        resource=_resource(run_id, block),
        related=_related(run_id),
        payload=payload,
    )

    async def send() -> None:
        # checkpoint_every=1: emit() waits for the server's answer to a ping after the event.
        async with get_events_client(reconnection_attempts=1, checkpoint_every=1) as client:
            await client.emit(event)

    asyncio.run(asyncio.wait_for(send(), _RECORD_TIMEOUT))


@dataclass(frozen=True)
class Deletion:
    at: datetime
    by: str
    reason: str


def last_deletion(client: SyncPrefectClient, flow_run_id: str) -> Deletion | None:
    """The newest ``deleted`` event of a run's hand-over credential, if the server still has it."""
    page = client.read_events(
        filter=EventFilter(
            event=EventNameFilter(name=[DELETED]),
            resource=EventResourceFilter(id=[resource_id(flow_run_id)]),
            order=EventOrder.DESC,
        ),
        limit=1,
    )
    if not page.events:
        return None
    event = page.events[0]
    return Deletion(
        at=event.occurred,
        by=str(event.payload.get("by", "unknown")),
        reason=str(event.payload.get("reason", "")),
    )
