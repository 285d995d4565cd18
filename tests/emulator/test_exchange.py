"""Exchange admin API (InvokeCommand): restricted list, removal delay, cap, paging, mailboxes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from emulator import Emulator

from .helpers import ANCHOR, EXO_SCOPE, https_session, msal_app, one_app_seed

Exo = Callable[..., requests.Response]


def _addresses(r: requests.Response) -> list[str]:
    assert r.status_code == 200, r.text
    return [e["SenderAddress"] for e in r.json()["value"]]


def test_get_blocked_sender_address_shape(exo: Exo) -> None:
    r = exo("Get-BlockedSenderAddress")
    body = r.json()
    assert body["@odata.context"].endswith("$metadata#Collection(Exchange.GenericHashTable)")
    assert body["@adminapi.warnings"] == []
    rob = next(e for e in body["value"] if e["SenderAddress"] == "rob@contoso.com")
    assert rob["Reason"].startswith("EmailSendingLimitExceeded;")
    assert rob["CreatedDatetime@data.type"] == "System.DateTime"
    # The demo seed dates the restriction "now-1d4h": Exchange's seven-digit round-trip format.
    created = datetime.fromisoformat(rob["CreatedDatetime"].replace(".0000000", ""))
    assert rob["CreatedDatetime"].endswith(".0000000+00:00")
    assert abs(datetime.now(UTC) - created - timedelta(days=1, hours=4)) < timedelta(minutes=10)
    assert rob["TemporaryBlock"] is False
    assert r.headers["Rate-Limit-Limit"] == "30000"
    assert int(r.headers["Rate-Limit-Remaining"]) < 30000
    assert r.headers["Rate-Limit-Reset"] and r.headers["request-id"]


def test_alias_matching_entry_is_keyed_by_upn(exo: Exo) -> None:
    upn = "megan.bowen@contoso.onmicrosoft.com"
    assert _addresses(exo("Get-BlockedSenderAddress", {"SenderAddress": "megan@contoso.com"})) == []
    assert _addresses(exo("Get-BlockedSenderAddress", {"SenderAddress": upn.upper()})) == [upn]
    r = exo("Remove-BlockedSenderAddress", {"SenderAddress": "megan@contoso.com"})
    assert r.status_code == 404
    assert "ManagementObjectNotFoundException" in r.json()["error"]["details"][0]["message"]
    assert exo("Remove-BlockedSenderAddress", {"SenderAddress": upn}).status_code == 200


def test_removal_takes_effect_after_the_delay(exo: Exo, emulator: Emulator) -> None:
    emulator.state.update_settings("contoso", removal_delay_seconds=0.6)
    r = exo("Remove-BlockedSenderAddress", {"SenderAddress": "Rob@Contoso.com", "Reason": "T-1234"})
    assert r.status_code == 200 and r.json()["value"] == []
    assert _addresses(exo("Get-BlockedSenderAddress", {"SenderAddress": "rob@contoso.com"})) == [
        "rob@contoso.com"
    ]
    entry = emulator.state.entry("contoso", "rob@contoso.com")
    assert entry is not None and entry.removal_reason == "T-1234"
    time.sleep(0.7)
    assert _addresses(exo("Get-BlockedSenderAddress", {"SenderAddress": "rob@contoso.com"})) == []
    assert emulator.state.unblock_count("contoso", "rob@contoso.com") == 1
    write = emulator.writes()[-1]
    assert write.cmdlet == "Remove-BlockedSenderAddress"
    assert write.parameters == {"SenderAddress": "Rob@Contoso.com", "Reason": "T-1234"}


def test_unblock_cap_is_counted_per_address(exo: Exo, emulator: Emulator) -> None:
    emulator.state.update_settings("contoso", unblock_cap=2, removal_delay_seconds=0)
    for _ in range(2):
        assert (
            exo("Remove-BlockedSenderAddress", {"SenderAddress": "rob@contoso.com"}).status_code
            == 200
        )
        emulator.state.restrict("contoso", "rob@contoso.com", "EmailSendingLimitExceeded;")
    r = exo("Remove-BlockedSenderAddress", {"SenderAddress": "rob@contoso.com"})
    assert r.status_code == 400
    detail = r.json()["error"]["details"][0]["message"]
    assert "UnblockLimitExceededException" in detail
    assert "exceeded the unblock limit" in detail
    assert emulator.state.is_restricted("contoso", "rob@contoso.com")


def test_not_listed_address_get_is_empty_and_remove_is_404(exo: Exo) -> None:
    assert _addresses(exo("Get-BlockedSenderAddress", {"SenderAddress": "alex@contoso.com"})) == []
    r = exo("Remove-BlockedSenderAddress", {"SenderAddress": "alex@contoso.com"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "NotFound"
    assert err["details"][0]["message"].split("|")[1] == (
        "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
    )


def test_long_list_is_paged_and_next_link_takes_the_same_body(exo: Exo, emulator: Emulator) -> None:
    for i in range(246):
        emulator.state.restrict("contoso", f"bulk{i:03d}@contoso.com", "OutboundSpamLast24Hours=1;")
    pages: list[list[str]] = []
    r = exo("Get-BlockedSenderAddress", headers={"Prefer": "odata.maxpagesize=1000"})
    while True:
        pages.append(_addresses(r))
        link = r.json().get("@odata.nextLink")
        if not link:
            break
        assert "$skiptoken=" in link
        r = exo("Get-BlockedSenderAddress", url=link)
    assert [len(p) for p in pages] == [100, 100, 50]  # tenant page size 100 wins over 1000
    assert len({a for p in pages for a in p}) == 250
    small = exo("Get-BlockedSenderAddress", headers={"Prefer": "odata.maxpagesize=10"})
    assert len(small.json()["value"]) == 10


def test_generated_restricted_list(tmp_path: Path) -> None:
    seed = one_app_seed(
        "big",
        "22222222-3333-4444-5555-666666666666",
        "app",
        "b1",
        "fake-b1",
        ["Exchange.ManageAsApp"],
        app_fields={"wids": ["Exchange Administrator"]},
        settings={"page_size": 400},
        generate_restricted={"count": 1000, "prefix": "bulk"},
    )
    with Emulator(seed, state_dir=tmp_path) as emu:
        token = msal_app(emu, "app", tenant="big").acquire_token_for_client(scopes=EXO_SCOPE)
        http = https_session(emu.info.ca_path)
        url: str | None = f"{emu.info.exchange_base}/big.onmicrosoft.com/InvokeCommand"
        headers = {
            "Authorization": f"Bearer {token['access_token']}",
            "X-AnchorMailbox": f"UPN:{ANCHOR}@big.onmicrosoft.com",
        }
        body = {"CmdletInput": {"CmdletName": "Get-BlockedSenderAddress", "Parameters": {}}}
        total, pages = 0, 0
        while url:
            page = http.post(url, json=body, headers=headers, timeout=10).json()
            total, pages, url = total + len(page["value"]), pages + 1, page.get("@odata.nextLink")
        assert (total, pages) == (1000, 3)
        assert (
            emu.state.user("big", "bulk00042@big.onmicrosoft.com").mail
            == "bulk00042@big.onmicrosoft.com"
        )


def test_anchor_mailbox_is_required(exo: Exo) -> None:
    r = exo("Get-BlockedSenderAddress", anchor=False)
    assert r.status_code == 400 and "X-AnchorMailbox" in r.json()["error"]["message"]


def test_reader_may_read_but_not_remove(exo: Exo, emulator: Emulator) -> None:
    assert exo("Get-BlockedSenderAddress", app="reader").status_code == 200
    r = exo("Remove-BlockedSenderAddress", {"SenderAddress": "rob@contoso.com"}, app="reader")
    assert r.status_code == 403 and r.json()["error"]["code"] == "Forbidden"
    assert emulator.state.unblock_count("contoso", "rob@contoso.com") == 0


def test_app_without_exchange_manage_as_app_is_forbidden(tmp_path: Path) -> None:
    seed = one_app_seed(
        "t",
        "33333333-4444-5555-6666-777777777777",
        "graphonly",
        "c1",
        "fake-c1",
        ["User.Read.All"],
        app_fields={"wids": ["Exchange Administrator"]},
    )
    with Emulator(seed, state_dir=tmp_path) as emu:
        token = msal_app(emu, "graphonly", tenant="t").acquire_token_for_client(scopes=EXO_SCOPE)
        r = https_session(emu.info.ca_path).post(
            f"{emu.info.exchange_base}/33333333-4444-5555-6666-777777777777/InvokeCommand",
            json={"CmdletInput": {"CmdletName": "Get-BlockedSenderAddress", "Parameters": {}}},
            headers={
                "Authorization": f"Bearer {token['access_token']}",
                "X-AnchorMailbox": f"APP:{ANCHOR}@33333333-4444-5555-6666-777777777777",
            },
            timeout=10,
        )
        assert r.status_code == 403
        assert "Exchange.ManageAsApp" in r.json()["error"]["message"]


def test_unknown_cmdlet_and_unknown_parameter(exo: Exo) -> None:
    r = exo("Get-Nothing")
    assert r.status_code == 400 and r.json()["error"]["message"] == "Invalid Operation"
    assert (
        "CommandNotFoundException" in r.json()["error"]["innererror"]["internalexception"]["type"]
    )
    r = exo("Get-BlockedSenderAddress", {"Sender": "rob@contoso.com"})
    assert r.status_code == 400
    inner = r.json()["error"]["innererror"]["internalexception"]["message"]
    assert inner == "A parameter cannot be found that matches parameter name 'Sender'."


def test_mailbox_forwarding_select_and_clear(exo: Exo, emulator: Emulator) -> None:
    url = (
        f"{emulator.info.exchange_base}/{emulator.info.tenants['contoso'].domain}/InvokeCommand"
        "?$select=ForwardingAddress,ForwardingSmtpAddress,DeliverToMailboxAndForward"
    )
    r = exo("Get-Mailbox", {"Identity": "rob@contoso.com"}, url=url)
    assert r.json()["value"] == [
        {
            "ForwardingAddress": None,
            "ForwardingSmtpAddress": "smtp:invoices.rob.young@gmail.com",
            "DeliverToMailboxAndForward": True,
        }
    ]
    params: dict[str, Any] = {
        "Identity": "rob@contoso.com",
        "ForwardingSmtpAddress": None,
        "ForwardingAddress": None,
        "DeliverToMailboxAndForward": False,
    }
    assert exo("Set-Mailbox", params).status_code == 200
    rob = emulator.state.user("contoso", "rob@contoso.com")
    assert rob.forwarding_smtp_address is None and not rob.deliver_to_mailbox_and_forward
    assert exo("Get-Mailbox", {"Identity": "nobody@contoso.com"}).status_code == 404


def test_inbox_rules_hidden_only_with_include_hidden_and_disable(
    exo: Exo, emulator: Emulator
) -> None:
    visible = exo("Get-InboxRule", {"Mailbox": "rob@contoso.com"}).json()["value"]
    assert [r["Name"] for r in visible] == ["Newsletters"]
    for flag in (True, "True"):
        rules = exo("Get-InboxRule", {"Mailbox": "rob@contoso.com", "IncludeHidden": flag}).json()[
            "value"
        ]
        assert [r["Name"] for r in rules] == ["Newsletters", "."]
    hidden = rules[1]
    assert hidden["ForwardTo"] == [
        '"invoices.rob.young@gmail.com" [SMTP:invoices.rob.young@gmail.com]'
    ]
    assert hidden["DeleteMessage"] is True and hidden["Enabled"] is True
    r = exo("Disable-InboxRule", {"Identity": hidden["Identity"], "Mailbox": "rob@contoso.com"})
    assert r.status_code == 200
    rule = emulator.state.user("contoso", "rob@contoso.com").inbox_rules[1]
    assert rule.enabled is False
    assert [w.cmdlet for w in emulator.writes()] == ["Disable-InboxRule"]
