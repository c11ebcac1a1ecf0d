"""API round trips with API keys, and the rewards pages rendering for users and staff."""

import pytest

from rewards import ledger, services
from rewards.models import AccountKind, FeePolicyVersion

OPEN = 10**18
MODEL = "aa" * 32


@pytest.fixture
def closed_epoch(chain, dora, alice, charlie, grant, link_wallet):
    grant(charlie, 50 * OPEN)
    link_wallet(dora, chain.wallets[0])
    services.fee_settle(inference_id="api-1", payer=charlie, model_owner=alice, fee=10 * OPEN,
                        contributor_shares={dora.pk: 10**6}, model_version_hash=MODEL, receipt_id="rc-1",
                        contributor_rows={dora.pk: ["row-7", "row-9"]})
    return services.epoch_close()


def test_fee_policy_api_is_public_and_versioned(db, api_client, staff):
    services.fee_policy_set(actor=staff, protocol_bps=500, owner_bps=2_500, contributors_bps=7_000)
    body = api_client.get("/api/v1/rewards/fee-policy/").json()
    assert (body["version"], body["protocol_bps"], body["contributors_bps"]) == (2, 500, 7_000)
    assert [v["version"] for v in body["history"]] == [2, 1]


def test_earnings_and_claims_api_with_a_key(closed_epoch, key_client, dora):
    client = key_client(dora, "read")
    earnings = client.get("/api/v1/rewards/earnings/").json()
    assert earnings["totals"]["pending"] == str(6 * OPEN)
    assert (earnings["count"], earnings["next"], earnings["previous"]) == (1, None, None)
    [item] = earnings["results"]
    assert (item["inference_id"], item["rows"], item["epoch"], item["status"]) == ("api-1", ["row-7", "row-9"], 1,
                                                                                    "claimable")
    [claim] = client.get("/api/v1/rewards/claims/").json()["results"]
    assert claim["cumulative_amount"] == str(6 * OPEN) and claim["proof"] is not None


def test_earnings_api_is_paginated_and_every_page_carries_the_totals(db, key_client, dora, alice, charlie, grant):
    grant(charlie, 50 * OPEN)
    for i in range(7):
        services.fee_settle(inference_id=f"page-{i}", payer=charlie, model_owner=alice, fee=OPEN + i,
                            contributor_shares={dora.pk: 10**6}, model_version_hash=MODEL, receipt_id=f"rc-{i}")
    client = key_client(dora, "read")
    pages, url = [], "/api/v1/rewards/earnings/?page_size=3"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        pages.append(response.json())
        url = pages[-1]["next"]
    assert [len(page["results"]) for page in pages] == [3, 3, 1] and {page["count"] for page in pages} == {7}
    assert pages[0]["previous"] is None and pages[1]["previous"] and "page=2" in pages[0]["next"]
    items = [item for page in pages for item in page["results"]]
    assert [item["inference_id"] for item in items] == [f"page-{i}" for i in range(6, -1, -1)]  # newest first
    assert len({item["id"] for item in items}) == 7
    earned = sum(int(item["amount"]) for item in items)
    assert earned == ledger.balance(kind=AccountKind.EARNINGS, user=dora) > 0
    summary = {key: value for key, value in pages[0].items() if key not in ("results", "next", "previous")}
    assert summary["totals"]["earned"] == str(earned)
    for page in pages[1:]:  # the totals, holds and per-model sums are over every page, on every page
        assert {key: value for key, value in page.items() if key not in ("results", "next", "previous")} == summary
    # The default page holds them all; a page past the end or a bad size is refused in the API's error shape.
    assert len(client.get("/api/v1/rewards/earnings/").json()["results"]) == 7
    missing = client.get("/api/v1/rewards/earnings/?page=4&page_size=3")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    bad = client.get("/api/v1/rewards/earnings/?page_size=0")
    assert bad.status_code == 400 and bad.json()["fields"] == {"page_size": ["Give a whole number from 1 to 500."]}


def test_the_schema_documents_the_earnings_pages(client):
    import json

    schema = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/json").content)
    operation = schema["paths"]["/api/v1/rewards/earnings/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"page", "page_size"}
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    page = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"count", "next", "previous", "results", "totals", "by_model"} <= set(page["properties"])
    assert page["properties"]["results"]["items"]["$ref"].endswith("/EarningItem")


def test_api_needs_a_key_or_session(db, api_client):
    assert api_client.get("/api/v1/rewards/earnings/").status_code in (401, 403)


def test_wallet_link_round_trip_over_the_api(chain, key_client, dora, sign_siwe):
    client = key_client(dora, "read", "contribute")
    account = chain.wallets[0]
    issued = client.post("/api/v1/rewards/wallet/nonce/", {"address": account.address}, format="json")
    assert issued.status_code == 201
    message = issued.json()["message"]
    linked = client.post("/api/v1/rewards/wallet/link/", {"message": message, "signature": sign_siwe(account, message)},
                         format="json")
    assert linked.status_code == 201 and linked.json()["address"] == account.address
    again = client.post("/api/v1/rewards/wallet/link/", {"message": message, "signature": sign_siwe(account, message)},
                        format="json")
    assert again.status_code == 400 and "already used" in again.json()["detail"]


def test_read_only_key_cannot_link_a_wallet(chain, key_client, dora):
    client = key_client(dora, "read")
    response = client.post("/api/v1/rewards/wallet/nonce/", {"address": chain.wallets[0].address}, format="json")
    assert response.status_code == 403


def test_pages_render(closed_epoch, client, dora, staff):
    assert client.get("/rewards/").status_code == 200
    assert "6" in client.get("/rewards/fees/").content.decode()
    client.force_login(dora)
    page = client.get("/rewards/").content.decode()
    assert "api-1" in page and "row-7" in page and "<svg" in page and "claimable" in page
    proof = client.get("/rewards/claim/").content.decode()
    assert "cumulativeAmount" in proof and str(6 * OPEN) in proof
    assert client.get("/rewards/wallet/").status_code == 200
    assert client.get("/rewards/admin/").status_code == 302  # staff only
    client.force_login(staff)
    overview = client.get("/rewards/admin/").content.decode()
    assert "Pending payouts" in overview and "The database and the chain agree" in overview


def test_claim_for_me_button_moves_the_tokens(closed_epoch, chain, client, dora, django_capture_on_commit_callbacks):
    client.force_login(dora)
    with django_capture_on_commit_callbacks(execute=True):  # the relay is queued on commit
        client.post("/rewards/claim/", {"relay": "1"})
    assert chain.token.balance_of(chain.wallets[0].address) == 6 * OPEN
    assert ledger.balance(kind=AccountKind.PAID_OUT, user=dora) == 6 * OPEN


def test_wallet_page_links_a_pasted_signature(chain, client, dora, sign_siwe):
    client.force_login(dora)
    account = chain.wallets[1]
    page = client.post("/rewards/wallet/", {"action": "prepare", "address": account.address})
    message = page.context["issued"].message
    response = client.post("/rewards/wallet/", {"action": "link", "message": message,
                                                "signature": sign_siwe(account, message)}, follow=True)
    assert account.address in response.content.decode()
    bad = client.post("/rewards/wallet/", {"action": "link", "message": message, "signature": "0x12"})
    assert "already used" in bad.content.decode() or "not issued" in bad.content.decode()


def test_admin_pages_for_staff(closed_epoch, client, staff):
    client.force_login(staff)
    for url in ("/admin/rewards/epoch/", "/admin/rewards/feepolicy/", "/admin/rewards/ledgertransaction/",
                "/admin/rewards/reconciliationissue/", "/admin/rewards/creditgrant/add/"):
        assert client.get(url).status_code == 200, url
    response = client.post("/admin/rewards/creditgrant/add/", {"user": staff.pk, "amount": "3",  # OPEN
                                                                "reason": "support ticket 12"})
    assert response.status_code == 302
    assert ledger.balance(kind=AccountKind.CREDIT, user=staff) == 3 * OPEN
    response = client.post("/admin/rewards/feepolicy/1/change/", {"protocol_bps": 1_500, "owner_bps": 2_500,
                                                              "contributors_bps": 6_000, "fallback": "protocol"})
    assert response.status_code == 302
    assert FeePolicyVersion.objects.order_by("-version").first().protocol_bps == 1_500


def test_demo_seed_is_idempotent(alice, charlie, dora, make_user):
    from lineage.demo.fees import demo_seed

    # The demo's roles, played by the cast; its second contributor is outside it.
    users = {"owner": alice, "user": charlie, "contributor": dora, "contributor2": make_user("erin")}
    demo_seed(users_by_role=users)
    demo_seed(users_by_role=users)
    assert ledger.balance(kind=AccountKind.CREDIT, user=users["owner"]) == 1_000 * OPEN
    assert ledger.ledger_check().ok
