"""Graph subset: users, password reset, sessions, TAP, rules, roles, and least privilege."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import requests

from emulator import Emulator

Graph = Callable[..., requests.Response]
PASSWORD = "Tq7!kv2#Lm9pXz4@"
SELECT = "id,userPrincipalName,mail,accountEnabled,onPremisesSyncEnabled,proxyAddresses"


def _reset(
    graph: Graph, who: str, password: str = PASSWORD, app: str = "playbook"
) -> requests.Response:
    body = {"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": True}}
    return graph("PATCH", f"/users/{who}", app=app, json=body)


def test_get_user_by_upn_with_select_and_not_found(graph: Graph) -> None:
    r = graph("GET", "/users/rob@contoso.com", params={"$select": SELECT})
    assert r.status_code == 200
    user = r.json()
    assert user["userPrincipalName"] == "rob@contoso.com"
    assert "smtp:robert.young@contoso.com" in user["proxyAddresses"]
    assert set(user) == {"@odata.context", *SELECT.split(",")}
    assert "request-id" in r.headers

    r = graph("GET", "/users/nobody@contoso.com")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "Request_ResourceNotFound"
    assert err["message"] == (
        "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property "
        "objects are not present."
    )


def test_filter_by_proxy_address_mail_and_upn_is_case_insensitive(graph: Graph) -> None:
    def upns(flt: str) -> list[str]:
        r = graph("GET", "/users", params={"$filter": flt, "$select": "id,userPrincipalName"})
        assert r.status_code == 200, r.text
        return [u["userPrincipalName"] for u in r.json()["value"]]

    megan = ["megan.bowen@contoso.onmicrosoft.com"]
    assert upns("proxyAddresses/any(p:p eq 'smtp:MEGAN@contoso.com')") == megan
    assert upns("mail eq 'Megan@Contoso.com'") == megan
    assert upns("userPrincipalName eq 'MEGAN.BOWEN@contoso.onmicrosoft.com'") == megan
    assert upns("mail eq 'nobody@contoso.com'") == []


def test_users_are_paged_with_top_and_next_link(graph: Graph, emulator: Emulator) -> None:
    r = graph("GET", "/users", params={"$top": 4, "$select": "id"})
    seen = [u["id"] for u in r.json()["value"]]
    assert len(seen) == 4
    next_link = r.json()["@odata.nextLink"]
    r = graph("GET", next_link[len(emulator.info.graph_base) :])
    seen += [u["id"] for u in r.json()["value"]]
    assert "@odata.nextLink" not in r.json()
    assert len(seen) == len(set(seen)) == 6


def test_password_reset_stores_only_a_hash_and_counts(graph: Graph, emulator: Emulator) -> None:
    before = emulator.state.user("contoso", "alex@contoso.com").last_password_change
    r = _reset(graph, "alex@contoso.com")
    assert r.status_code == 204 and r.content == b""
    alex = emulator.state.user("contoso", "alex@contoso.com")
    assert emulator.state.password_matches(alex, PASSWORD)
    assert not emulator.state.password_matches(alex, PASSWORD + "x")
    assert alex.password_resets == 1 and alex.force_change_password_next_sign_in
    assert alex.last_password_change is not None and alex.last_password_change != before
    assert PASSWORD not in repr(alex)
    write = emulator.writes()[-1]
    assert write.endpoint == "graph.update_user" and write.status == 204
    assert write.changed_fields == (
        "passwordProfile.password",
        "passwordProfile.forceChangePasswordNextSignIn",
    )


def test_weak_password_is_refused(graph: Graph, emulator: Emulator) -> None:
    for weak in ("short1A", "alllowercase1", "Pässwört123!", "a" * 257 + "A1"):
        r = _reset(graph, "alex@contoso.com", weak)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "Request_BadRequest"
        assert "password complexity requirements" in r.json()["error"]["message"]
    assert emulator.state.user("contoso", "alex@contoso.com").password_resets == 0


def test_synced_user_refuses_password_write(graph: Graph, emulator: Emulator) -> None:
    r = _reset(graph, "adele@contoso.com")
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(
        "Unable to update the specified properties for on-premises mastered Directory Sync objects"
    )
    assert not emulator.state.password_matches("adele@contoso.com", PASSWORD)


def test_admin_target_needs_privileged_authentication_administrator(
    graph: Graph, emulator: Emulator
) -> None:
    r = _reset(graph, "admin.lee@contoso.com")  # playbook: User Administrator only
    assert r.status_code == 403
    assert r.json()["error"] == {
        **r.json()["error"],
        "code": "Authorization_RequestDenied",
        "message": "Insufficient privileges to complete the operation.",
    }
    assert _reset(graph, "admin.lee@contoso.com", app="privileged").status_code == 204
    assert emulator.state.password_matches("admin.lee@contoso.com", PASSWORD)


def test_least_privilege_reader_gets_403(graph: Graph, emulator: Emulator) -> None:
    assert graph("GET", "/users/rob@contoso.com", app="reader").status_code == 200
    assert _reset(graph, "alex@contoso.com", app="reader").status_code == 403
    assert (
        graph("POST", "/users/alex@contoso.com/revokeSignInSessions", app="reader").status_code
        == 403
    )
    rules = graph("GET", "/users/rob@contoso.com/mailFolders/inbox/messageRules", app="reader")
    assert rules.status_code == 403
    assert emulator.state.user("contoso", "alex@contoso.com").password_resets == 0


def test_revoke_sessions(graph: Graph, emulator: Emulator) -> None:
    r = graph("POST", "/users/rob@contoso.com/revokeSignInSessions")
    assert r.status_code == 200
    assert r.json()["value"] is True and r.json()["@odata.context"].endswith("#Edm.Boolean")
    rob = emulator.state.user("contoso", "rob@contoso.com")
    assert rob.session_revocations == 1 and rob.sign_in_sessions_valid_from is not None


def test_temporary_access_pass(graph: Graph, emulator: Emulator) -> None:
    path = "/users/rob@contoso.com/authentication/temporaryAccessPassMethods"
    r = graph("POST", path, json={"lifetimeInMinutes": 60, "isUsableOnce": True})
    assert r.status_code == 201
    tap = r.json()["temporaryAccessPass"]
    assert emulator.state.tap_matches("rob@contoso.com", tap)
    second = graph("POST", path, json={"lifetimeInMinutes": 30, "isUsableOnce": True}).json()
    assert not emulator.state.tap_matches("rob@contoso.com", tap)  # one TAP per user
    assert emulator.state.tap_matches("rob@contoso.com", second["temporaryAccessPass"])
    assert graph("POST", path, json={"lifetimeInMinutes": 5}).status_code == 400
    emulator.state.update_settings("contoso", tap_enabled=False)
    r = graph("POST", path, json={"lifetimeInMinutes": 60})
    assert r.status_code == 400 and "not enabled" in r.json()["error"]["message"]


def test_temporary_access_pass_methods_are_listed_without_the_pass(
    graph: Graph, emulator: Emulator
) -> None:
    path = "/users/alex@contoso.com/authentication/temporaryAccessPassMethods"
    assert graph("GET", path).json()["value"] == []
    first = graph("POST", path, json={"lifetimeInMinutes": 60, "isUsableOnce": True}).json()
    second = graph("POST", path, json={"lifetimeInMinutes": 30, "isUsableOnce": False}).json()
    r = graph("GET", path)
    assert r.status_code == 200
    (listed,) = r.json()["value"]  # one TAP per user: the second replaced the first
    assert listed["id"] == second["id"] != first["id"]
    assert listed["temporaryAccessPass"] is None
    assert listed["createdDateTime"] == second["createdDateTime"]
    assert (listed["lifetimeInMinutes"], listed["isUsableOnce"]) == (30, False)
    assert second["temporaryAccessPass"] not in r.text
    # Listing is a read: the reader app lacks UserAuthenticationMethod.Read(Write).All.
    assert graph("GET", path, app="reader").status_code == 403
    unknown = "/users/nobody@contoso.com/authentication/temporaryAccessPassMethods"
    assert graph("GET", unknown).status_code == 404
    assert [r.endpoint for r in emulator.writes()] == ["graph.create_tap"] * 2


def test_message_rules_hide_hidden_rules(graph: Graph) -> None:
    r = graph("GET", "/users/rob@contoso.com/mailFolders/inbox/messageRules")
    assert r.status_code == 200
    assert [rule["displayName"] for rule in r.json()["value"]] == ["Newsletters"]


def test_directory_roles_of_user_and_service_principal(graph: Graph, emulator: Emulator) -> None:
    r = graph("GET", "/users/admin.lee@contoso.com/memberOf/microsoft.graph.directoryRole")
    assert [x["displayName"] for x in r.json()["value"]] == ["Global Administrator"]
    app_id = emulator.info.tenants["contoso"].apps["playbook"].client_id
    sp = graph("GET", f"/servicePrincipals(appId='{app_id}')")
    assert sp.status_code == 200 and sp.json()["appId"] == app_id
    roles = graph(
        "GET", f"/servicePrincipals(appId='{app_id}')/memberOf/microsoft.graph.directoryRole"
    )
    assert {x["displayName"] for x in roles.json()["value"]} == {
        "User Administrator",
        "Exchange Administrator",
    }
    assert graph("GET", f"/servicePrincipals(appId='{app_id}')", app="reader").status_code == 403


def test_request_log_and_admin_api_hold_no_secret(
    graph: Graph, emulator: Emulator, http: requests.Session
) -> None:
    assert _reset(graph, "alex@contoso.com").status_code == 204
    tap = graph(
        "POST", "/users/alex@contoso.com/authentication/temporaryAccessPassMethods", json={}
    ).json()["temporaryAccessPass"]
    secret = str(emulator.info.tenants["contoso"].apps["playbook"].client_secret)
    logged = json.dumps([r.to_json() for r in emulator.requests]) + repr(emulator.requests)
    served = http.get(emulator.info.admin_base + "/requests", timeout=10).text
    state = http.get(emulator.info.admin_base + "/state", timeout=10).text
    summary: Any = emulator.state.summary()
    for text in (logged, served, state, json.dumps(summary)):
        assert PASSWORD not in text
        assert tap not in text
        assert secret not in text
    assert {r.endpoint for r in emulator.writes()} == {"graph.update_user", "graph.create_tap"}


def test_graph_token_is_refused_by_exchange_and_invalidation_gives_401(
    graph: Graph, emulator: Emulator, http: requests.Session
) -> None:
    assert graph("GET", "/users/rob@contoso.com").status_code == 200
    graph_token = graph("GET", "/users/rob@contoso.com").request.headers["Authorization"]
    tenant = emulator.info.tenants["contoso"]
    r = http.post(
        f"{emulator.info.exchange_base}/{tenant.tenant_id}/InvokeCommand",
        json={"CmdletInput": {"CmdletName": "Get-BlockedSenderAddress", "Parameters": {}}},
        headers={"Authorization": graph_token},
        timeout=10,
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "Unauthorized"
    emulator.invalidate_tokens()
    r = graph("GET", "/users/rob@contoso.com")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert r.json()["error"]["message"] == "Access token has expired or is not yet valid."
    assert "WWW-Authenticate" in r.headers
