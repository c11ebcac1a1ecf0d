"""In a real browser: a contributor links a wallet by signing a Sign-In-with-Ethereum message with their own
key, sees what an inference on their rows earned, sees it published when an epoch closes, claims it, and
the OPEN balance of their address on the in-process chain moves by exactly the amount the page showed."""

import re
from decimal import Decimal

import pytest
from browser_support import assert_accessible
from cast_support import PASSWORD
from eth_account import Account
from playwright.sync_api import expect

from rewards import ledger, services
from rewards.models import AccountKind, PendingFee

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OPEN = 10**18
MODEL = "9c" * 32


def base_units(shown: str) -> int:
    """The page's exact OPEN decimal (e.g. '6.000000000000000004') back to base units."""
    value = Decimal(shown.strip().replace(",", "")) * OPEN
    assert value == value.to_integral_value(), shown
    return int(value)


def exact(page, testid: str) -> int:
    """The exact amount a figure of the page keeps in its markup (`<data value>`; the text is rounded)."""
    return base_units(page.get_by_test_id(testid).locator("data").get_attribute("value"))


def test_link_wallet_by_signature_see_earnings_and_claim_exactly_what_is_shown(
        live_server, page, chain, dora, alice, charlie, grant, sign_siwe, screenshot):
    wallet = Account.from_key("0x" + "5a" * 32)  # the contributor's own key, not one of the chain's dev accounts
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(dora.email)
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_role("button", name=re.compile("Sign In", re.I)).click()
    expect(page.locator(".account-menu summary")).to_be_visible()

    # The wallet page issues a SIWE message for the address; the wallet signs it (personal_sign).
    page.goto(f"{live_server.url}/rewards/wallet/")
    assert_accessible(page)
    page.get_by_label("Wallet address").fill(wallet.address)
    page.get_by_role("button", name="Prepare the message").click()
    message = page.get_by_label("Message").input_value()
    assert wallet.address in message and "Nonce:" in message
    assert_accessible(page)
    # A signature by another key is refused, with the reason, and nothing is linked.
    page.get_by_label("Signature").fill(sign_siwe(Account.from_key("0x" + "13" * 32), message))
    page.get_by_role("button", name="Link wallet").click()
    expect(page.get_by_role("alert")).to_contain_text("not made by the wallet named in the message")
    expect(page.get_by_test_id("current-wallet")).to_have_count(0)
    assert_accessible(page)
    # Signed by the wallet itself: linked, effective at once (a first wallet).
    page.get_by_label("Signature").fill(sign_siwe(wallet, page.get_by_label("Message").input_value()))
    page.get_by_role("button", name="Link wallet").click()
    expect(page.get_by_test_id("current-wallet")).to_have_text(wallet.address)
    assert_accessible(page)

    # An inference on a model trained on Dora's rows: Charlie pays, Alice owns the model. The fee is recorded
    # as the inference API records it (held on Charlie's credit, booked by the settlement batch it queues).
    grant(charlie, 100 * OPEN)
    services.fee_record(inference_id="ui-inference-1", payer=charlie, model_owner=alice, fee=10 * OPEN + 7,
                        contributor_shares={dora.pk: 10**6}, model_version_hash=MODEL, receipt_id="rc-ui",
                        contributor_rows={dora.pk: ["row-3", "row-8"]})
    assert not PendingFee.objects.exists()
    page.goto(f"{live_server.url}/rewards/")
    row = page.locator("tr", has_text="ui-inference-1")
    expect(row).to_contain_text("accruing")
    expect(row).to_contain_text("row-3, row-8")
    earned = exact(page, "earned")
    assert earned == ledger.balance(kind=AccountKind.EARNINGS, user=dora) > 6 * OPEN
    expect(page.get_by_text("Nothing published for you yet")).to_be_visible()
    assert_accessible(page)

    # The epoch closes (beat or the admin action): the earnings are published in a Merkle root on chain.
    epoch = services.epoch_close()
    assert epoch.state == "closed" and chain.distributor.epoch() == epoch.number
    page.reload()
    expect(row).to_contain_text("claimable")
    shown = exact(page, "claimable")
    assert shown == earned == exact(page, "pending")
    assert_accessible(page)
    screenshot("rewards-earnings")

    # Claim for me: the platform relays claimMany; the OPEN goes to the linked address.
    before = chain.token.balance_of(wallet.address)
    page.get_by_role("button", name="Claim for me").click()
    expect(page.get_by_text("Relayed in transaction")).to_be_visible()
    assert_accessible(page)  # the claim page, after the relay
    assert chain.token.balance_of(wallet.address) - before == shown
    page.goto(f"{live_server.url}/rewards/")
    assert exact(page, "paid") == shown
    expect(page.get_by_test_id("claimable")).to_have_text("0 OPEN")
    expect(row).to_contain_text("paid")
    assert_accessible(page)
    check = ledger.ledger_check()
    assert check.ok, check.problems
    assert services.chain_reconcile() == []
