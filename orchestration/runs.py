"""The flow-run filters the playbooks ask the Prefect API with: runs of one flow, runs in some
states, runs by id (the sweep's run list, the crash recovery and the watcher's start)."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType


def flow_named(name: str) -> FlowFilter:
    return FlowFilter(name=FlowFilterName(any_=[name]))


def in_states(states: Iterable[StateType]) -> FlowRunFilter:
    return FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(states))))


def with_ids(ids: Iterable[UUID]) -> FlowRunFilter:
    return FlowRunFilter(id=FlowRunFilterId(any_=list(ids)))
