"""The gap analysis of check-tenant, without Prefect or the emulator (pure functions)."""

from __future__ import annotations

import jwt
import pytest

from playbook.preflight import (
    EXCHANGE_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    REQUIREMENTS,
    USER_ADMINISTRATOR,
    Api,
    ApiAccess,
    GrantedAccess,
    Role,
    StepStatus,
    TokenProblem,
    analyse,
    read_claims,
    render_report,
)

FULL_GRAPH = (
    "User.Read.All",
    "User-PasswordProfile.ReadWrite.All",
    "User.RevokeSessions.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "MailboxSettings.Read",
    "RoleManagement.Read.Directory",
    "AuditLog.Read.All",
    "Directory.Read.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "User.EnableDisableAccount.All",
)
FULL_WIDS = (
    USER_ADMINISTRATOR.template_id,
    EXCHANGE_ADMINISTRATOR.template_id,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR.template_id,
)


def granted(
    graph: tuple[str, ...] | None = FULL_GRAPH,
    exchange: tuple[str, ...] | None = ("Exchange.ManageAsApp",),
    wids: tuple[str, ...] = FULL_WIDS,
    sp_roles: tuple[Role, ...] | None = None,
) -> GrantedAccess:
    return GrantedAccess(
        graph=ApiAccess(
            api=Api.GRAPH, permissions=graph, wids=wids, problem=None if graph else "refused"
        ),
        exchange=ApiAccess(
            api=Api.EXCHANGE,
            permissions=exchange,
            wids=wids,
            problem=None if exchange is not None else "refused",
        ),
        service_principal_roles=sp_roles,
    )


def test_everything_granted_is_ready():
    report = analyse("contoso", granted())
    assert report.ready, [c.explanation for c in report.gaps]
    assert "Ready." in render_report(report)


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=lambda r: f"{r.flow}/{r.step}")
def test_each_missing_permission_is_named_for_its_step(requirement):
    """Remove every alternative permission of one step: that step (and only steps that depend on
    the same permissions) reports exactly what to grant."""
    graph = tuple(p for p in FULL_GRAPH if p not in requirement.permissions)
    exchange = tuple(p for p in ("Exchange.ManageAsApp",) if p not in requirement.permissions)
    report = analyse("contoso", granted(graph=graph, exchange=exchange))
    check = report.check(requirement.step, requirement.flow)
    assert check.status is StepStatus.MISSING
    assert check.missing_permissions == requirement.permissions
    assert check.missing_roles == ()
    for other in report.checks:
        if other.status is StepStatus.MISSING:
            assert set(other.missing_permissions) & set(requirement.permissions)
    text = render_report(report)
    assert "**MISSING**" in text and "Not ready." in text


@pytest.mark.parametrize(
    "requirement", [r for r in REQUIREMENTS if r.roles], ids=lambda r: f"{r.flow}/{r.step}"
)
def test_each_missing_role_is_named_for_its_step(requirement):
    report = analyse("contoso", granted(wids=()))
    check = report.check(requirement.step, requirement.flow)
    assert check.status is StepStatus.MISSING
    assert check.missing_permissions == ()
    assert set(check.missing_roles) == {r.display_name for r in requirement.roles}
    # Steps without a role requirement are unaffected.
    assert all(
        report.check(r.step, r.flow).status is StepStatus.READY for r in REQUIREMENTS if not r.roles
    )


def test_roles_read_from_the_service_principal_count_when_the_token_has_no_wids():
    report = analyse(
        "contoso",
        granted(
            wids=(),
            sp_roles=(
                USER_ADMINISTRATOR,
                EXCHANGE_ADMINISTRATOR,
                PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
            ),
        ),
    )
    assert report.ready


def test_security_administrator_can_read_but_not_unblock():
    sec_admin = "194ae4cb-b126-40b2-bd5b-6091b380977d"
    report = analyse("contoso", granted(wids=(USER_ADMINISTRATOR.template_id, sec_admin)))
    assert report.check("find_restricted_entry").status is StepStatus.READY
    unblock = report.check("unblock_sender")
    assert unblock.status is StepStatus.MISSING
    assert "Exchange Administrator" in unblock.missing_roles


def test_no_token_makes_the_steps_of_that_api_unknown_not_ready():
    report = analyse("contoso", granted(exchange=None))
    assert not report.ready
    for check in report.checks:
        expected = StepStatus.UNKNOWN if check.api is Api.EXCHANGE else StepStatus.READY
        assert check.status is expected, check
    assert any("exchange token" in p for p in report.problems)


def _jwt(claims: dict[str, object]) -> str:
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


def test_claims_are_read_without_signature_verification():
    token = _jwt(
        {
            "aud": "https://graph.microsoft.com",
            "tid": "t",
            "appid": "a",
            "roles": ["User.Read.All", 3],
            "wids": [USER_ADMINISTRATOR.template_id],
        }
    )
    claims = read_claims(token)
    assert claims.roles == ("User.Read.All",)
    assert claims.wids == (USER_ADMINISTRATOR.template_id,)
    assert token not in repr(claims) and token not in claims.model_dump_json()


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.!!!.c", "a." + "e30" * 0 + "bnVsbA.c", "x.WzFd.y"]
)
def test_unreadable_tokens_raise_without_echoing_the_token(token):
    with pytest.raises(TokenProblem) as info:
        read_claims(token)
    if token:
        assert token not in str(info.value)


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "[approve](https://evil.example)",
        "![x](https://evil.example/t.png)",
        "| injected | cell |",
        "line\n# heading",
        "{{ 7*7 }}",
    ],
)
def test_tenant_supplied_role_names_render_inert(hostile):
    evil = Role(template_id="00000000-0000-0000-0000-000000000001", display_name=hostile)
    report = analyse("contoso", granted(wids=(), sp_roles=(evil,)))
    text = render_report(report)
    assert "<script" not in text
    assert "](" not in text.replace("\\](", "")
    assert "\n# heading" not in text
    assert "{{" not in text
    # the table keeps its shape: every row has the same number of unescaped pipes
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len({line.replace("\\|", "").count("|") for line in rows}) == 1
