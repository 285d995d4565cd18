"""flows.deploy.tenant_profiles with more profiles than one page (an MSP's tenants)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentCreate

from emulator import Emulator
from flows.deploy import tenant_profiles
from orchestration.blocks import M365Tenant, register_blocks

from ..handover_keys import PUBLIC_KEY

COUNT = 201  # one more than a page of Prefect's block API holds


def test_every_profile_is_listed_and_the_listing_ends(
    prefect_api: str, emulator_session: Emulator
) -> None:
    register_blocks()
    prefix = f"msp-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i:03d}" for i in range(COUNT)]
    profile = M365Tenant.from_config(
        emulator_session.tenant_config("contoso"), handover_public_key=PUBLIC_KEY
    )
    profile.save(names[0])
    with get_client(sync_client=True) as client:  # one request per copy, not save()'s five
        for name in names[1:]:
            doc = profile._to_block_document(name=name)
            client.create_block_document(
                BlockDocumentCreate(
                    name=name,
                    data=doc.data,
                    block_schema_id=doc.block_schema_id,
                    block_type_id=doc.block_type_id,
                )
            )
    box: dict[str, Any] = {}

    def listing() -> None:
        with get_client(sync_client=True) as client:
            box["names"] = tenant_profiles(client)

    try:
        thread = threading.Thread(target=listing, daemon=True)
        thread.start()
        thread.join(60)  # before the fix it paged forever: the route ignores offset and limit
        assert not thread.is_alive(), "tenant_profiles did not return"
        assert set(names) <= set(box["names"])
        assert box["names"] == sorted(set(box["names"]))
    finally:
        with get_client(sync_client=True) as client:
            for doc in client.read_block_documents_by_type(block_type_slug="m365-tenant"):
                if doc.name in names and doc.id is not None:
                    client.delete_block_document(doc.id)
