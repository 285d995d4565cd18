"""The dry-run plan and the flow tell the same story: ``playbook.procedure.UNBLOCK_STEPS`` is the
sequence of steps the body of ``flows/unblock_user.py`` journals, read from its source.

Prefect-free: the flow modules are parsed, not imported. The walk follows the run that unblocks:
from ``_procedure``, in source order, into the helpers defined in ``flows/unblock_user.py`` and
``flows/_eviction.py``; a branch that ends in ``return`` (dry run, not listed, refused, expired,
rejected, incomplete eviction) and ``except`` handlers are other paths and are not followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from playbook.eviction import (
    ACTION_TITLES,
    REMOVALS,
    ActionKind,
    ActionTarget,
    EvictionPlan,
    PlannedAction,
)
from playbook.params import UnblockRequest
from playbook.procedure import FOLLOW_UP_STEPS, UNBLOCK_STEPS, PlanFacts, dry_run_plan
from playbook.steps import Step

REPO = Path(__file__).resolve().parents[2]
# Calls that record a step, and where their Step argument is.
RECORDING = {"step", "skipped", "_review", "ask"}


def _functions(*modules: str) -> dict[str, ast.FunctionDef]:
    found: dict[str, ast.FunctionDef] = {}
    for module in modules:
        tree = ast.parse((REPO / module).read_text())
        found |= {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    return found


def _step_of(node: ast.expr, loop: dict[str, tuple[Step, ...]]) -> tuple[Step, ...]:
    """``Step.X`` -> (X,); ``Step(kind.value)`` inside ``for kind in REMOVALS`` -> each removal."""
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Step"
    ):
        return (Step[node.attr],)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Step":
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        for var, steps in loop.items():
            if var in names:
                return steps
    return ()


class _Walk:
    def __init__(self, functions: dict[str, ast.FunctionDef]) -> None:
        self.functions = functions
        self.steps: list[Step] = []
        self.stack: list[str] = []

    def record(self, steps: tuple[Step, ...]) -> None:
        self.steps.extend(s for s in steps if s not in self.steps)

    def function(self, name: str) -> None:
        if name in self.stack:
            return
        self.stack.append(name)
        self.body(self.functions[name].body, {})
        self.stack.pop()

    def body(self, stmts: list[ast.stmt], loop: dict[str, tuple[Step, ...]]) -> None:
        for stmt in stmts:
            self.stmt(stmt, loop)

    def stmt(self, stmt: ast.stmt, loop: dict[str, tuple[Step, ...]]) -> None:
        if isinstance(stmt, ast.If):
            self.expr(stmt.test, loop)
            for branch in (stmt.body, stmt.orelse):
                if branch and not isinstance(branch[-1], ast.Return):
                    self.body(branch, loop)
        elif isinstance(stmt, ast.For):
            self.expr(stmt.iter, loop)
            inner = dict(loop)
            if isinstance(stmt.iter, ast.Name) and stmt.iter.id == "REMOVALS":
                assert isinstance(stmt.target, ast.Name)
                inner[stmt.target.id] = tuple(Step(k.value) for k in REMOVALS)
            self.body(stmt.body, inner)
        elif isinstance(stmt, ast.Try):
            self.body(stmt.body, loop)  # the handlers are failure paths
            self.body(stmt.orelse, loop)
            self.body(stmt.finalbody, loop)
        elif isinstance(stmt, ast.With):
            for item in stmt.items:
                self.expr(item.context_expr, loop)
            self.body(stmt.body, loop)
        else:
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.expr):
                    self.expr(child, loop)

    def expr(self, node: ast.expr, loop: dict[str, tuple[Step, ...]]) -> None:
        if isinstance(node, ast.Lambda):
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, loop)
            elif isinstance(child, ast.keyword):
                self.expr(child.value, loop)
        if not isinstance(node, ast.Call):
            return
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if called in RECORDING:
            for arg in node.args:
                self.record(_step_of(arg, loop))
        elif isinstance(func, ast.Name) and func.id in self.functions:
            self.function(func.id)


def _journalled(entry: str, *modules: str) -> list[Step]:
    walk = _Walk(_functions(*modules))
    walk.function(entry)
    return walk.steps


def test_the_procedure_is_the_step_sequence_the_flow_body_runs() -> None:
    flow = _journalled("_procedure", "flows/unblock_user.py", "flows/_eviction.py")
    assert [step for step, _ in UNBLOCK_STEPS] == flow


def test_the_follow_up_steps_are_the_ones_verify_unblock_runs() -> None:
    follow_up = _journalled("_verify", "flows/verify_unblock.py")
    assert [step for step, _ in FOLLOW_UP_STEPS] == [
        s for s in follow_up if s is Step.DELETE_HANDOVER
    ]
    assert Step.DELETE_HANDOVER in follow_up


def test_each_step_is_listed_once() -> None:
    steps = [step for step, _ in (*UNBLOCK_STEPS, *FOLLOW_UP_STEPS)]
    assert len(steps) == len(set(steps))


def test_the_dry_run_builds_its_plan_from_the_procedure() -> None:
    dry_run = _functions("flows/unblock_user.py")["_dry_run"]
    called = {
        n.func.id
        for n in ast.walk(dry_run)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert "dry_run_plan" in called


# -- the plan's text -----------------------------------------------------------------------------

ROB = "rob@contoso.com"
BLOCK = "unblock-handover-00000000-0000-0000-0000-000000000000"


def _request(**changes: object) -> UnblockRequest:
    base = {"account": ROB, "tenant": "contoso", "ticket": "INC-42", "requested_by": "bob"}
    return UnblockRequest.model_validate({**base, "dry_run": True, **changes})


def _action(kind: ActionKind, label: str) -> PlannedAction:
    return PlannedAction(
        kind=kind,
        title=ACTION_TITLES[kind],
        what=f"What {kind.value}.",
        impact="Impact.",
        undo=f"Undo {kind.value}.",
        reversible=True,
        targets=(ActionTarget(id=label, label=label),),
    )


def test_the_plan_for_a_listed_admin_with_a_tap_and_containment() -> None:
    eviction = EvictionPlan(
        account=ROB,
        actions=(
            _action(ActionKind.REMOVE_SIGN_IN_METHODS, "Authenticator"),
            _action(ActionKind.REMOVE_MAILBOX_DELEGATES, "Full Access: eve"),
        ),
    )
    facts = PlanFacts(
        request=_request(handover="tap", block_sign_in=True, allow_privileged_reset=True),
        account=ROB,
        roles=("Global Administrator",),
        handover_block=BLOCK,
        restricted_as=ROB,
        eviction=eviction,
    )
    offer = "Offer in the approval form, unticked: "
    again = "Re-read before and after; what is already gone counts as done."
    assert dry_run_plan(facts) == [
        "The account holds Global Administrator: ask a second person (not the requester) to "
        "approve the password reset first.",
        f"Reset the password of {ROB} (force change at next sign-in), to a random value that is "
        "discarded.",
        "Revoke the sign-in sessions.",
        "Block sign-in (accountEnabled false) right after the reset; only the approval can "
        "re-enable it (a rejected or expired run leaves it blocked).",
        "Issue a one-time Temporary Access Pass and store it, sealed to the profile's hand-over "
        f"key, in the Secret block {BLOCK}.",
        "Re-read the user: refuse the unblock unless the password change is newer than the "
        "restriction.",
        "Review inbox rules (hidden ones included), mailbox forwarding and earlier unblocks for "
        "the approver.",
        "Review sign-in methods, sign-ins, app consents, mailbox delegates and sent mail from 7 "
        "day(s) before the restriction until now.",
        "Ask for approval (timeout 60 minutes).",
        f"{offer}Remove the flagged sign-in methods (Authenticator). What remove_sign_in_methods. "
        f"Undo remove_sign_in_methods. {again}",
        f"{offer}Remove the flagged mailbox delegates (Full Access: eve). What "
        f"remove_mailbox_delegates. Undo remove_mailbox_delegates. {again}",
        "After an eviction action that changed something: revoke the sessions again.",
        f"{offer}Re-enable sign-in.",
        f"If approved: remove {ROB} from the Restricted users list with the reason: "
        "unblock-email: ticket INC-42; approved by <approver>.",
        "Re-read the list to confirm the removal.",
        "Schedule verify-unblock 240 minutes later.",
        "Delete the hand-over Secret block at the follow-up check.",
    ]


def test_the_plan_for_an_account_not_listed() -> None:
    secret = PlanFacts(
        request=_request(),
        account=ROB,
        roles=(),
        handover_block=BLOCK,
        restricted_as=None,
        eviction=None,
    )
    assert dry_run_plan(secret) == [
        "Generate a 24-character random password and store it, sealed to the profile's hand-over "
        f"key, in the Secret block {BLOCK}.",
        f"Reset the password of {ROB} (force change at next sign-in).",
        "Revoke the sign-in sessions.",
        "Finish as NotRestricted: the account is not on the Restricted users list.",
        "Delete the hand-over Secret block at the follow-up check.",
    ]
    nothing = PlanFacts(
        request=_request(handover="none"),
        account=ROB,
        roles=("User Administrator",),
        handover_block=BLOCK,
        restricted_as=None,
        eviction=None,
    )
    assert dry_run_plan(nothing) == [
        "The account holds User Administrator: stop as PrivilegedAccount (no override); change "
        "nothing.",
        f"Reset the password of {ROB} (force change at next sign-in), to a random value that is "
        "discarded.",
        "Revoke the sign-in sessions.",
        "Hand over nothing: the user resets the password through self-service.",
        "Finish as NotRestricted: the account is not on the Restricted users list.",
    ]
