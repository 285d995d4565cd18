"""Eviction: delete the flagged sign-in methods (Graph, per-type DELETE)."""

from __future__ import annotations

from m365.errors import (
    DefaultMethodError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from m365.models import AuthenticationMethod
from orchestration.clients import clients_for
from orchestration.logs import run_logger
from playbook.eviction import (
    ActionKind,
    ActionTarget,
    EvictionRecord,
    split_pending,
)

from ._eviction_steps import removal_record
from ._policy import step

DEFAULT_REFUSED = (
    "Microsoft refuses: it is the user's default method and other methods remain; have the "
    "default changed (the user in My Sign-Ins), then run again"
)


@step("remove_sign_in_methods")
def remove_sign_in_methods(
    tenant: str, user_id: str, targets: tuple[ActionTarget, ...]
) -> EvictionRecord:
    """Re-read the methods, delete each target still present, re-read.

    Non-default before default: a method Microsoft refuses as the default is tried again after
    the others. The password is never deleted; methods not in ``targets`` are never touched.
    Idempotent: a method already gone is "already done".
    """
    log = run_logger()
    graph = clients_for(tenant).graph
    current = {m.id.lower(): m for m in graph.list_authentication_methods(user_id)}
    todo, already = split_pending([t.id for t in targets], current)
    reasons: dict[str, str] = {}
    request_ids: list[str] = []
    deferred: list[AuthenticationMethod] = []
    for method_id in todo:
        method = current[method_id.lower()]
        if method.is_password:
            reasons[method_id] = "the password method is never removed"
            continue
        try:
            receipt = graph.delete_authentication_method(user_id, method)
        except DefaultMethodError:
            deferred.append(method)
            continue
        except NotFoundError:
            continue  # gone meanwhile: the re-read below counts it
        except (PermissionDeniedError, InvalidRequestError) as exc:
            reasons[method_id] = _refusal(exc)
            continue
        if receipt.request_id:
            request_ids.append(receipt.request_id)
    for method in deferred:
        try:
            receipt = graph.delete_authentication_method(user_id, method)
        except DefaultMethodError:
            reasons[method.id] = DEFAULT_REFUSED
            continue
        except NotFoundError:
            continue
        if receipt.request_id:
            request_ids.append(receipt.request_id)
    after = {m.id.lower() for m in graph.list_authentication_methods(user_id)}
    record = removal_record(
        ActionKind.REMOVE_SIGN_IN_METHODS, user_id, todo, already, after, reasons, request_ids
    )
    log.info("Remove flagged sign-in methods: %s", record.detail)
    return record


def _refusal(exc: PermissionDeniedError | InvalidRequestError) -> str:
    if isinstance(exc, PermissionDeniedError):
        return "refused: the app lacks UserAuthenticationMethod.ReadWrite.All (or a role)"
    return f"refused by Microsoft ({exc.code or 'bad request'})"
