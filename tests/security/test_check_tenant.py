"""Item 5: the check-tenant preflight against emulator app registrations that each lack one
permission or role in turn.

Its own emulator (seed below) and the session's Prefect API; the flow runs in-process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from emulator import Emulator
from playbook.preflight import REQUIREMENTS, Api, PreflightReport, StepStatus

from .hostile_inputs import by_group

TENANT_ID = "3f0e8c1d-6a2b-4c7d-9e8f-1a2b3c4d5e6f"
FULL_ROLES = [
    "User.Read.All",
    "User-PasswordProfile.ReadWrite.All",
    "User.RevokeSessions.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "RoleManagement.Read.Directory",
    "Application.Read.All",
    "AuditLog.Read.All",
    "Directory.Read.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "User.EnableDisableAccount.All",
    "Exchange.ManageAsApp",
]
FULL_WIDS = [
    "User Administrator",
    "Exchange Administrator",
    "Privileged Authentication Administrator",
]
ADMIN_TARGET_STEP = ("unblock-user", "block_sign_in/enable_sign_in (admin account)")


def needing(permission: str) -> set[tuple[str, str]]:
    """Steps with a permission group in which ``permission`` is the only one granted."""
    return {
        (r.flow, r.step)
        for r in REQUIREMENTS
        for group in (r.permissions, r.also)
        if permission in group and not any(alt in FULL_ROLES for alt in group if alt != permission)
    }


# name -> (roles, wids): the full grant minus one permission or role.
APPS: dict[str, tuple[list[str], list[str]]] = {
    "full": (FULL_ROLES, FULL_WIDS),
    **{
        "no-" + p.lower().replace(".", "-"): ([r for r in FULL_ROLES if r != p], FULL_WIDS)
        for p in FULL_ROLES
        if needing(p)
    },
    "no-user-administrator": (FULL_ROLES, ["Exchange Administrator"]),
    "no-exchange-administrator": (
        FULL_ROLES,
        ["User Administrator", "Privileged Authentication Administrator"],
    ),
    "security-administrator": (
        FULL_ROLES,
        ["User Administrator", "Security Administrator", "Privileged Authentication Administrator"],
    ),
    "no-privileged-authentication-administrator": (
        FULL_ROLES,
        ["User Administrator", "Exchange Administrator"],
    ),
    "no-sp-read": (
        [
            r
            for r in FULL_ROLES
            if r
            not in ("RoleManagement.Read.Directory", "Application.Read.All", "Directory.Read.All")
        ],
        FULL_WIDS,
    ),
    "nothing": ([], []),
}


def _seed() -> dict[str, Any]:
    apps = [
        {
            "name": name,
            "client_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"preflight/{name}")),
            "client_secret": f"preflight-secret-{name}-not-real",
            "roles": roles,
            "wids": wids,
        }
        for name, (roles, wids) in APPS.items()
    ]
    return {
        "tenants": [
            {
                "name": "preflight",
                "tenant_id": TENANT_ID,
                "domain": "preflight.onmicrosoft.com",
                "users": [{"upn": "rob@preflight.onmicrosoft.com"}],
                "apps": apps,
            }
        ]
    }


@pytest.fixture(scope="module")
def preflight_emulator() -> Iterator[Emulator]:
    with Emulator(_seed()) as emu:
        yield emu


@pytest.fixture(scope="module")
def profiles(prefect_api: str, preflight_emulator: Emulator) -> dict[str, str]:
    """One M365Tenant block per app registration: pf-<app>."""
    from pydantic import SecretStr

    from orchestration.blocks import M365Tenant, register_blocks

    register_blocks()
    names = {}
    for app in APPS:
        block = f"pf-{app}"
        M365Tenant.from_config(preflight_emulator.tenant_config("preflight", app=app)).save(
            block, overwrite=True
        )
        names[app] = block
    # A profile whose secret is wrong: the token endpoint refuses it.
    bad = preflight_emulator.tenant_config("preflight", app="full").model_copy(
        update={"client_secret": SecretStr("wrong-secret-value")}
    )
    M365Tenant.from_config(bad).save("pf-bad-secret", overwrite=True)
    names["bad-secret"] = "pf-bad-secret"
    return names


def run_check(profile: str) -> tuple[Any, PreflightReport | None]:
    from flows.check_tenant import check_tenant

    state = check_tenant(tenant=profile, return_state=True)
    report = state.result(raise_on_failure=False) if state.is_completed() else None
    return state, report


def _artifact(profile: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.check_tenant import artifact_key

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[artifact_key(profile)])),
            limit=1,
        )
    assert found, f"no artifact for {profile}"
    return str(found[0].data)


def test_full_grant_is_ready_and_reads_only(profiles, preflight_emulator):
    preflight_emulator.reset()
    state, report = run_check(profiles["full"])
    assert state.is_completed(), state.message
    assert report is not None and report.ready, [c.explanation for c in report.gaps]
    assert "Exchange Administrator" in report.directory_roles
    assert preflight_emulator.writes() == []
    assert "Ready." in _artifact(profiles["full"])


# Permissions some step depends on alone (others have an alternative in the full grant).
MISSING_PERMISSION = [p for p in FULL_ROLES if needing(p)]


@pytest.mark.parametrize("permission", MISSING_PERMISSION)
def test_each_missing_permission_is_reported_for_the_steps_that_need_it(
    profiles, preflight_emulator, permission
):
    app = "no-" + permission.lower().replace(".", "-")
    preflight_emulator.reset()
    state, report = run_check(profiles[app])
    assert state.is_completed(), state.message
    assert report is not None and not report.ready
    steps = needing(permission)
    assert steps, "the seed must make some step depend on this permission"
    missing = {(c.flow, c.step) for c in report.checks if c.status is StepStatus.MISSING}
    assert missing == steps
    for check in report.checks:
        if (check.flow, check.step) in steps:
            assert permission in check.missing_permissions + check.also_missing
    artifact = _artifact(profiles[app])
    assert "**MISSING**" in artifact
    assert permission.replace(".", "\\.").replace("-", "\\-") in artifact
    assert preflight_emulator.writes() == []


@pytest.mark.parametrize(
    ("app", "role", "steps"),
    [
        (
            "no-user-administrator",
            "User Administrator",
            {("unblock-user", "reset_password"), ADMIN_TARGET_STEP},
        ),
        (
            "no-privileged-authentication-administrator",
            "Privileged Authentication Administrator",
            {ADMIN_TARGET_STEP},
        ),
        (
            "no-exchange-administrator",
            "Exchange Administrator",
            {(r.flow, r.step) for r in REQUIREMENTS if r.api is Api.EXCHANGE},
        ),
        (
            "security-administrator",
            "Exchange Administrator",
            {
                ("unblock-user", "unblock_sender"),
                ("unblock-user", "disable_suspicious_rules"),
                ("unblock-user", "clear_forwarding"),
                ("unblock-user", "remove_mailbox_delegates"),
            },
        ),
    ],
)
def test_each_missing_directory_role_is_reported(profiles, preflight_emulator, app, role, steps):
    preflight_emulator.reset()
    state, report = run_check(profiles[app])
    assert state.is_completed(), state.message
    assert report is not None
    missing = {(c.flow, c.step) for c in report.checks if c.status is StepStatus.MISSING}
    assert missing == steps
    for check in report.checks:
        if (check.flow, check.step) in steps:
            assert check.missing_permissions == ()
            # the admin-target row names its own roles (PAA or Global Administrator)
            expected = (
                "Privileged Authentication Administrator"
                if (
                    check.flow,
                    check.step,
                )
                == ADMIN_TARGET_STEP
                else role
            )
            assert expected in check.missing_roles


def test_directory_roles_fall_back_to_the_token_when_the_app_cannot_read_them(
    profiles, preflight_emulator
):
    preflight_emulator.reset()
    state, report = run_check(profiles["no-sp-read"])
    assert state.is_completed()
    assert report is not None
    assert any("service principal roles" in p for p in report.problems)
    # wids from the token still prove the roles: only the steps needing a directory-read
    # permission (memberOf, the audit and sign-in logs, app names) lack one
    assert {c.step for c in report.gaps} == {
        "review_admin_roles",
        "review_sign_in_methods (registration dates)",
        "review_sign_ins",
        "review_oauth_grants (app names)",
        "review_oauth_grants (consent times)",
    }


def test_an_app_with_nothing_misses_everything(profiles, preflight_emulator):
    preflight_emulator.reset()
    state, report = run_check(profiles["nothing"])
    assert state.is_completed()
    assert report is not None
    assert all(c.status is StepStatus.MISSING for c in report.checks)


def test_refused_credentials_are_reported_not_crashed(profiles, preflight_emulator):
    preflight_emulator.reset()
    state, report = run_check(profiles["bad-secret"])
    assert state.is_completed(), state.message
    assert report is not None
    assert all(c.status is StepStatus.UNKNOWN for c in report.checks)
    assert any("AuthError" in p for p in report.problems)
    assert "wrong-secret-value" not in report.model_dump_json()
    assert "wrong-secret-value" not in _artifact(profiles["bad-secret"])


def test_the_access_token_is_not_logged(profiles, preflight_emulator):
    """The tokens check-tenant decoded never reach the run's logs or its artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    from orchestration.clients import clients_for

    preflight_emulator.reset()
    state, _ = run_check(profiles["full"])
    clients = clients_for(profiles["full"])
    # MSAL caches per process: these are the very tokens the flow decoded.
    tokens = [
        clients.tokens.token(clients.graph.resource),
        clients.tokens.token(clients.exchange.resource),
    ]
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    text = "\n".join(log.message for log in logs) + _artifact(profiles["full"])
    assert logs, "the run must have logged something"
    for token in tokens:
        assert token not in text
        assert token.split(".")[1] not in text  # not even the claims part


@pytest.mark.parametrize("hostile", by_group("traversal", "markup", "crlf"), ids=lambda h: h.id)
def test_hostile_profile_names_fail_validation_before_any_request(
    profiles, preflight_emulator, hostile
):
    preflight_emulator.reset()
    state, _ = run_check(hostile.value)
    assert state.is_failed()
    assert preflight_emulator.requests == []
