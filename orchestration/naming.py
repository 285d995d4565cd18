"""``flow_run_name`` callables: Prefect calls them when a run starts, once the parameters are
validated, so a run created under another name is renamed then (e.g. 'unblock rob@contoso.com
INC-42'). They live here, not on the parameter models, because they read ``prefect.runtime``."""

from __future__ import annotations

from typing import Any

from prefect import runtime

from playbook.params import UnblockRequest, VerifyRequest, parsed_or_none


def _current_run() -> tuple[str, dict[str, Any]]:
    return str(runtime.flow_run.name or ""), dict(runtime.flow_run.parameters or {})


def name_unblock_run() -> str:
    """unblock-user: the request's run name, or the name the run was created with."""
    name, parameters = _current_run()
    request = parsed_or_none(UnblockRequest, parameters.get("request"))
    return request.run_name() if request is not None else name


def name_verify_run() -> str:
    """verify-unblock: the check's run name, or the name the run was created with."""
    name, parameters = _current_run()
    check = parsed_or_none(VerifyRequest, parameters.get("check"))
    return check.run_name(name) if check is not None else name
