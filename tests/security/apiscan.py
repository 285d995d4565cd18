"""The two haystacks an insider has: what the Prefect API gives the holder of its credential, and
what a copy of the Prefect database gives (block data decrypted with the key stored beside it).

Both yield ``(location, raw bytes)`` for ``leakscan.Scanner.scan_bytes``; neither knows a secret.
Their pagers (``paged``, ``event_pages``) serve the personal-data search too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet, InvalidToken

_PAGE = 200
_EVENTS_PAGE = 50  # the server's maximum for /events/filter


def paged(
    client: httpx.Client, path: str, body: dict[str, Any]
) -> Iterator[tuple[int, list[Any], bytes]]:
    """``(offset, items, raw page)`` of every page a ``.../filter`` endpoint returns."""
    offset = 0
    while True:
        r = client.post(path, json={**body, "limit": _PAGE, "offset": offset})
        r.raise_for_status()
        items = r.json()
        yield offset, items, r.content
        if len(items) < _PAGE:
            return
        offset += _PAGE


def api_documents(api_url: str, auth_string: str | None = None) -> Iterator[tuple[str, bytes]]:
    """Every object the API returns: all block documents *with* ``include_secrets``, variables,
    artifacts, logs, flow runs (parameters, state messages) with their state history and flow
    run inputs (approval forms and answers), task runs, deployments, and every event."""
    auth = tuple(auth_string.split(":", 1)) if auth_string else None
    with httpx.Client(
        base_url=api_url.rstrip("/") + "/",
        timeout=30,
        trust_env=False,
        auth=auth,  # type: ignore[arg-type]
    ) as client:
        for path, body, what in (
            ("block_documents/filter", {"include_secrets": True}, "block documents (secrets)"),
            ("variables/filter", {}, "variables"),
            ("artifacts/filter", {}, "artifacts"),
            ("logs/filter", {}, "logs"),
            ("task_runs/filter", {}, "task runs"),
            ("deployments/filter", {}, "deployments"),
        ):
            for offset, _items, raw in paged(client, path, body):
                yield f"api {what} page@{offset}", raw
        for offset, runs, raw in paged(client, "flow_runs/filter", {}):
            yield f"api flow runs page@{offset}", raw
            for run in runs:
                run_id = run["id"]
                states = client.get("flow_run_states/", params={"flow_run_id": run_id})
                states.raise_for_status()
                yield f"api flow run {run_id} states", states.content
                inputs = client.post(
                    f"flow_runs/{run_id}/input/filter", json={"prefix": "", "limit": 1000}
                )
                inputs.raise_for_status()
                yield f"api flow run {run_id} inputs", inputs.content
        for n, page in enumerate(event_pages(client)):
            yield f"api events page {n}", page.content


def event_pages(client: httpx.Client) -> Iterator[httpx.Response]:
    """Every page of every event the server keeps (``/events/filter``, then its ``next_page``)."""
    page = client.post(
        "events/filter",
        json={"filter": {"occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": _EVENTS_PAGE},
    )
    while True:
        page.raise_for_status()
        yield page
        nxt = page.json().get("next_page")
        if not nxt:
            return
        page = client.get(nxt)


def decrypted_block_documents(db_path: Path) -> Iterator[tuple[str, bytes]]:
    """Block data as anyone with a copy of the database reads it: Prefect stores the Fernet key
    in the same database (``configuration`` row ``ENCRYPTION_KEY``)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute("SELECT value FROM configuration WHERE key = 'ENCRYPTION_KEY'").fetchone()
        assert row is not None, "no ENCRYPTION_KEY in the database"
        fernet = Fernet(json.loads(row[0])["fernet_key"].encode())
        for rowid, name, data in con.execute("SELECT rowid, name, data FROM block_document"):
            try:
                clear = fernet.decrypt(str(data).encode())
            except InvalidToken:
                clear = str(data).encode()
            yield f"db backup: block_document {name} rowid={rowid} (decrypted)", clear
    finally:
        con.close()
