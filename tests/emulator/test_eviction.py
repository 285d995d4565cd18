"""The emulator's eviction endpoints on the wire: sign-in methods, audit and sign-in logs, OAuth
grants, accountEnabled, mailbox delegates, message trace, the per-app limits, the demo seed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from emulator import Emulator, load_seed
from emulator.faults import MICROSOFT_LIMITS
from emulator.seed import relative_datetime

Call = Callable[..., requests.Response]
ROB = "rob@contoso.com"
GUEST = "rob.young.invoices_gmail.com#EXT#@contoso.onmicrosoft.com"
PASSWORD_ID = "28c10230-6103-485e-b985-444c60001490"
MOBILE_ID = "3179e48a-750b-4051-897c-87b9720928f7"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rob(emulator: Emulator) -> Any:
    return emulator.state.user("contoso", ROB)


# -- sign-in methods -----------------------------------------------------------------------------


def test_methods_list_shapes(graph: Call, emulator: Emulator) -> None:
    r = graph("GET", f"/users/{ROB}/authentication/methods")
    assert r.status_code == 200
    by_type = {m["@odata.type"]: m for m in r.json()["value"]}
    assert by_type["#microsoft.graph.passwordAuthenticationMethod"] == {
        "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
        "id": PASSWORD_ID,
        "password": None,
        "createdDateTime": None,
    }
    phone = by_type["#microsoft.graph.phoneAuthenticationMethod"]
    assert phone["id"] == MOBILE_ID and phone["phoneType"] == "mobile"
    assert "createdDateTime" not in phone  # not in the v1.0 phone resource
    app = by_type["#microsoft.graph.microsoftAuthenticatorAuthenticationMethod"]
    assert app["displayName"] == "Galaxy S21" and app["createdDateTime"] is None


def test_methods_need_an_authentication_method_permission(graph: Call) -> None:
    r = graph("GET", f"/users/{ROB}/authentication/methods", app="reader")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "Authorization_RequestDenied"


def test_no_delete_for_the_password_and_no_generic_delete(graph: Call, emulator: Emulator) -> None:
    r = graph("DELETE", f"/users/{ROB}/authentication/passwordMethods/{PASSWORD_ID}")
    assert r.status_code == 405
    r = graph("DELETE", f"/users/{ROB}/authentication/methods/{MOBILE_ID}")
    assert r.status_code == 400
    assert "No HTTP resource was found" in r.json()["error"]["message"]
    assert len(_rob(emulator).auth_methods) == 2


def test_default_method_rule(graph: Call, emulator: Emulator) -> None:
    r = graph("DELETE", f"/users/{ROB}/authentication/phoneMethods/{MOBILE_ID}")
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "badRequest"
    assert error["message"].startswith("Cannot delete default method with other methods")
    app_id = next(m.id for m in _rob(emulator).auth_methods if m.kind == "microsoftAuthenticator")
    assert (
        graph(
            "DELETE", f"/users/{ROB}/authentication/microsoftAuthenticatorMethods/{app_id}"
        ).status_code
        == 204
    )
    # the default goes once it is the last one
    assert (
        graph("DELETE", f"/users/{ROB}/authentication/phoneMethods/{MOBILE_ID}").status_code == 204
    )
    assert _rob(emulator).auth_methods == []
    assert (
        graph("DELETE", f"/users/{ROB}/authentication/phoneMethods/{MOBILE_ID}").status_code == 404
    )


def test_a_method_of_another_type_is_not_found(graph: Call, emulator: Emulator) -> None:
    r = graph("DELETE", f"/users/{ROB}/authentication/fido2Methods/{MOBILE_ID}")
    assert r.status_code == 404
    assert len(_rob(emulator).auth_methods) == 2


# -- audit and sign-in logs --------------------------------------------------------------------


def test_directory_audits_filtered_as_documented(graph: Call, emulator: Emulator) -> None:
    since = _iso(datetime.now(UTC) - timedelta(days=30))
    rob_id = _rob(emulator).id
    r = graph(
        "GET",
        "/auditLogs/directoryAudits",
        params={
            "$filter": "loggedByService eq 'Authentication Methods' and "
            f"activityDateTime ge {since}"
        },
    )
    assert r.status_code == 200
    events = r.json()["value"]
    assert {e["activityDisplayName"] for e in events} == {"User registered security info"}
    mine = [e for e in events if any(t["id"] == rob_id for t in e["targetResources"])]
    assert len(mine) == 1
    assert mine[0]["initiatedBy"]["user"]["ipAddress"] == "203.0.113.45"
    r = graph(
        "GET",
        "/auditLogs/directoryAudits",
        params={
            "$filter": f"activityDisplayName eq 'Consent to application' and "
            f"initiatedBy/user/id eq '{rob_id}' and activityDateTime ge {since}"
        },
    )
    (consent,) = r.json()["value"]
    assert consent["category"] == "ApplicationManagement"
    assert consent["targetResources"][0]["displayName"] == "Mail Sync Pro"


def test_category_is_not_filterable(graph: Call) -> None:
    r = graph(
        "GET", "/auditLogs/directoryAudits", params={"$filter": "category eq 'UserManagement'"}
    )
    assert r.status_code == 400


def test_logs_need_audit_log_and_directory_read(graph: Call) -> None:
    for path in ("/auditLogs/directoryAudits", "/auditLogs/signIns"):
        r = graph("GET", path, app="reader")
        assert r.status_code == 403
        assert "'Read directory data' or 'Read all audit log data'" in r.json()["error"]["message"]


def test_sign_ins_need_entra_id_p1(graph: Call, emulator: Emulator) -> None:
    emulator.state.update_settings("contoso", entra_id_p1=False)
    r = graph("GET", "/auditLogs/signIns")
    assert r.status_code == 403
    assert r.json()["error"] == {
        "code": "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        "message": "Neither tenant is B2C or tenant doesn't have premium license",
        "innerError": r.json()["error"]["innerError"],
    }
    # audit logs stay available on Entra ID Free, for 7 days
    assert graph("GET", "/auditLogs/directoryAudits").status_code == 200


def test_sign_ins_newest_first_with_paging_and_retention(graph: Call, emulator: Emulator) -> None:
    rob_id = _rob(emulator).id
    r = graph(
        "GET",
        "/auditLogs/signIns",
        params={"$filter": f"userId eq '{rob_id}'", "$top": "5"},
    )
    body = r.json()
    assert len(body["value"]) == 5 and "$skiptoken" in body["@odata.nextLink"]
    times = [s["createdDateTime"] for s in body["value"]]
    assert times == sorted(times, reverse=True)
    everything = graph("GET", "/auditLogs/signIns", params={"$filter": f"userId eq '{rob_id}'"})
    assert len(everything.json()["value"]) == 20  # the seed's 20, all within 30 days


# -- OAuth grants ----------------------------------------------------------------------------------


def test_grants_and_their_removal_leave_an_audit_event(graph: Call, emulator: Emulator) -> None:
    grants = graph("GET", f"/users/{ROB}/oauth2PermissionGrants").json()["value"]
    mail = next(g for g in grants if "Mail.Send" in g["scope"])
    assert mail["scope"].startswith(" ") and mail["consentType"] == "Principal"
    sp = graph("GET", f"/servicePrincipals/{mail['clientId']}").json()
    assert sp["displayName"] == "Mail Sync Pro"
    assert graph("DELETE", f"/oauth2PermissionGrants/{mail['id']}").status_code == 204
    assert graph("DELETE", f"/oauth2PermissionGrants/{mail['id']}").status_code == 404
    since = _iso(datetime.now(UTC) - timedelta(minutes=5))
    events = graph(
        "GET",
        "/auditLogs/directoryAudits",
        params={
            "$filter": "activityDisplayName eq 'Remove delegated permission grant' and "
            f"activityDateTime ge {since}"
        },
    ).json()["value"]
    assert len(events) == 1 and events[0]["initiatedBy"]["app"]["displayName"]


def test_grant_removal_needs_a_write_permission(graph: Call) -> None:
    grants = graph("GET", f"/users/{ROB}/oauth2PermissionGrants").json()["value"]
    r = graph("DELETE", f"/oauth2PermissionGrants/{grants[0]['id']}", app="reader")
    assert r.status_code == 403


# -- accountEnabled --------------------------------------------------------------------------------


def test_account_enabled_patch(graph: Call, emulator: Emulator) -> None:
    r = graph("PATCH", f"/users/{ROB}", json={"accountEnabled": False})
    assert r.status_code == 204 and _rob(emulator).enabled is False
    (write,) = emulator.writes()
    assert write.endpoint == "graph.set_account_enabled"
    assert (
        graph("PATCH", f"/users/{ROB}", json={"accountEnabled": False}, app="reader").status_code
        == 403
    )
    r = graph("PATCH", "/users/admin.lee@contoso.com", json={"accountEnabled": False})
    assert r.status_code == 403  # a Global Administrator target needs PAA on the app
    r = graph(
        "PATCH", "/users/admin.lee@contoso.com", json={"accountEnabled": False}, app="privileged"
    )
    assert r.status_code == 204


# -- Exchange: delegates ---------------------------------------------------------------------------


def test_mailbox_permission_rows(exo: Call) -> None:
    rows = exo("Get-MailboxPermission", {"Identity": ROB}).json()["value"]
    users = [(r["User"], r["IsInherited"], r["Deny"]) for r in rows]
    assert users == [
        ("NT AUTHORITY\\SELF", False, False),
        (GUEST, False, False),
        ("NT AUTHORITY\\SYSTEM", True, False),
        ("EURPR05A003\\Organization Management", True, True),
    ]


def test_removing_an_absent_ace_is_a_warning(exo: Call, emulator: Emulator) -> None:
    params = {"Identity": ROB, "User": GUEST, "AccessRights": ["FullAccess"], "Confirm": False}
    first = exo("Remove-MailboxPermission", params)
    assert first.status_code == 200 and first.json()["@adminapi.warnings"] == []
    second = exo("Remove-MailboxPermission", params)
    assert second.status_code == 200
    assert "because the ACE doesn't exist on the object" in second.json()["@adminapi.warnings"][0]
    r = exo(
        "Remove-RecipientPermission",
        {"Identity": ROB, "Trustee": GUEST, "AccessRights": ["SendAs"]},
    )
    assert r.json()["@adminapi.warnings"] == [] and _rob(emulator).send_as == []
    r = exo(
        "Remove-RecipientPermission",
        {"Identity": ROB, "Trustee": GUEST, "AccessRights": ["SendAs"]},
    )
    assert "because the ACE isn't present" in r.json()["@adminapi.warnings"][0]


def test_send_on_behalf_hashtable(exo: Call, emulator: Emulator) -> None:
    table = {"@odata.type": "#Exchange.GenericHashTable", "remove": GUEST}
    r = exo("Set-Mailbox", {"Identity": ROB, "GrantSendOnBehalfTo": table})
    assert r.status_code == 200 and r.json()["@adminapi.warnings"] == []
    assert _rob(emulator).send_on_behalf == ["megan.bowen@contoso.onmicrosoft.com"]
    r = exo("Set-Mailbox", {"Identity": ROB, "GrantSendOnBehalfTo": table})
    assert "completed successfully but no settings of" in r.json()["@adminapi.warnings"][0]
    add = {"@odata.type": "#Exchange.GenericHashTable", "add": "alex@contoso.com"}
    exo("Set-Mailbox", {"Identity": ROB, "GrantSendOnBehalfTo": add})
    mailbox = exo("Get-Mailbox", {"Identity": ROB}).json()["value"][0]
    assert mailbox["GrantSendOnBehalfTo"] == [
        "megan.bowen@contoso.onmicrosoft.com",
        "alex@contoso.com",
    ]
    unknown = {"@odata.type": "#Exchange.GenericHashTable", "add": "nobody@contoso.com"}
    assert exo("Set-Mailbox", {"Identity": ROB, "GrantSendOnBehalfTo": unknown}).status_code == 404


# -- Exchange: message trace -----------------------------------------------------------------------


def _trace(exo: Call, **params: Any) -> requests.Response:
    return exo("Get-MessageTraceV2", {"SenderAddress": ROB, **params})


def test_message_trace_limits(exo: Call) -> None:
    now = datetime.now(UTC)
    r = _trace(exo, StartDate=_iso(now - timedelta(days=11)), EndDate=_iso(now))
    assert r.status_code == 400 and "10 days" in r.text
    r = _trace(
        exo, StartDate=_iso(now - timedelta(days=95)), EndDate=_iso(now - timedelta(days=88))
    )
    assert r.status_code == 400 and "90 days" in r.text
    r = _trace(exo, StartDate=_iso(now - timedelta(days=2)), EndDate=_iso(now), ResultSize=5001)
    assert r.status_code == 400
    r = _trace(exo, StartDate=_iso(now - timedelta(days=2)), EndDate=_iso(now))
    assert r.status_code == 200 and len(r.json()["value"]) == 1000  # the default ResultSize


def test_message_trace_is_not_paged_and_continues_by_recipient(exo: Call) -> None:
    now = datetime.now(UTC)
    start, end = _iso(now - timedelta(days=2)), _iso(now)
    # no REST paging even with a small Prefer: the cmdlet's own ResultSize is the page
    r = exo(
        "Get-MessageTraceV2",
        {"SenderAddress": ROB, "StartDate": start, "EndDate": end, "ResultSize": 300},
        headers={"Prefer": "odata.maxpagesize=50"},
    )
    page = r.json()
    assert len(page["value"]) == 300 and "@odata.nextLink" not in page
    rows = page["value"]
    received = [row["Received"] for row in rows]
    assert received == sorted(received, reverse=True)
    last = rows[-1]
    following = _trace(
        exo,
        StartDate=start,
        EndDate=last["Received"],
        StartingRecipientAddress=last["RecipientAddress"],
        ResultSize=300,
    ).json()["value"]
    seen = {(x["MessageTraceId"], x["RecipientAddress"]) for x in rows}
    assert following and not seen & {
        (x["MessageTraceId"], x["RecipientAddress"]) for x in following
    }
    # every next row is older, or as old and after the starting recipient
    assert all(
        x["Received"] < last["Received"]
        or (x["Received"] == last["Received"] and x["RecipientAddress"] > last["RecipientAddress"])
        for x in following
    )


# -- faults: Microsoft's limits --------------------------------------------------------------------


def test_rate_limit_fault_is_per_app(graph: Call, emulator: Emulator) -> None:
    emulator.faults.add(**MICROSOFT_LIMITS[0])
    path = f"/users/{ROB}/authentication/methods"
    statuses = [graph("GET", path).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    r = graph("GET", "/auditLogs/signIns")  # same budget: sign-ins count too
    assert r.status_code == 429 and 0 < float(r.headers["Retry-After"]) <= 10
    assert graph("GET", path, app="privileged").status_code == 200  # another app's budget


def test_rate_limit_spec_through_the_admin_api(emulator: Emulator, http: requests.Session) -> None:
    r = http.post(f"{emulator.info.admin_base}/faults", json=list(MICROSOFT_LIMITS), timeout=10)
    assert r.status_code == 201
    assert [f["kind"] for f in r.json()] == ["rate_limit", "rate_limit"]
    assert r.json()[1] | {"applied": 0} == {
        "endpoint": "exo.Get-MessageTraceV2",
        "kind": "rate_limit",
        "count": None,
        "rate": None,
        "retry_after": None,
        "seconds": 0.0,
        "body": "json",
        "limit": 100,
        "window": 300.0,
        "applied": 0,
    }


def test_rate_limit_needs_limit_and_window(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="limit"):
        emulator.faults.add(endpoint="graph.sign_ins", kind="rate_limit")
    with pytest.raises(ValueError, match="rate_limit"):
        emulator.faults.add(endpoint="graph.sign_ins", kind="429", limit=5)


def test_exchange_429_with_the_wait_in_the_text_only(exo: Call, emulator: Emulator) -> None:
    emulator.faults.add(
        endpoint="exo.Get-Mailbox", kind="429", count=1, retry_after=30, body="message"
    )
    r = exo("Get-Mailbox", {"Identity": ROB})
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert r.json()["error"]["message"].endswith("Retry after 30 seconds.")


def test_exchange_401_with_an_empty_body(exo: Call, emulator: Emulator) -> None:
    emulator.faults.add(endpoint="exo.Get-Mailbox", kind="expired_token", count=1, body="empty")
    r = exo("Get-Mailbox", {"Identity": ROB})
    assert r.status_code == 401 and r.content == b""
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    assert "reason=" in r.headers["x-ms-diagnostics"]


# -- the seed --------------------------------------------------------------------------------------


def test_relative_seed_times() -> None:
    now = datetime.now(UTC)
    value = relative_datetime("now-3d4h30m")
    assert isinstance(value, datetime)
    assert abs(now - timedelta(days=3, hours=4, minutes=30) - value) < timedelta(seconds=5)
    assert relative_datetime("2024-05-14T06:12:31Z") == "2024-05-14T06:12:31Z"  # left to pydantic
    seed = load_seed(
        {
            "tenants": [
                {
                    "name": "t",
                    "tenant_id": "11111111-2222-4333-8444-555555555555",
                    "domain": "t.onmicrosoft.com",
                    "restricted": [{"address": "a@t.onmicrosoft.com", "created": "now-2h"}],
                }
            ]
        }
    )
    created = seed.tenants[0].restricted[0].created
    assert created is not None and abs(now - timedelta(hours=2) - created) < timedelta(seconds=5)


def test_demo_seed_compromised_and_clean_users(emulator: Emulator) -> None:
    rob = _rob(emulator)
    assert [m.kind for m in rob.auth_methods] == ["phone", "microsoftAuthenticator"]
    assert rob.mailbox_permissions[0].user == GUEST
    assert {s.country for s in rob.sign_ins} == {"GB", "NG"}
    trace = emulator.state.tenant("contoso").message_trace
    assert sum(1 for t in trace if t.sender == ROB) == 1215
    megan = emulator.state.user("contoso", "megan@contoso.com")
    assert {s.country for s in megan.sign_ins} == {"GB"}
    assert [p.user for p in megan.mailbox_permissions] == ["alex@contoso.com"]
