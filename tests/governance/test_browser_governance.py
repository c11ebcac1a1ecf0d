"""In a real browser, two wallets carry a fee-split proposal from creation to execution: both holders wrap
OPEN and delegate, one proposes (a split that does not add up is refused with the registry's reason first),
both vote, staff queue and execute it from the queue page, and the registry on chain and the fee policy
change. Development signing: the linked wallets are the in-process chain's own accounts."""

import pytest
from browser_support import login, logout
from playwright.sync_api import expect

from governance.services import governance_index
from rewards import services as rewards_services
from rewards.chain.governance import FeeSplit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
OPEN = 10**18


def _done(page):
    expect(page.get_by_test_id("action-state")).to_have_attribute("data-state", "done")


def test_two_wallets_walk_a_proposal_from_creation_to_execution(live_server, page, governance, dev_signing,
                                                               alice, bob, staff, link_wallet):
    wallets = {alice.pk: governance.chain.wallets[0], bob.pk: governance.chain.wallets[1]}
    for user, amount in ((alice, "1000"), (bob, "10")):
        link_wallet(user, wallets[user.pk])
        governance.fund(wallets[user.pk], 2_000 * OPEN)
        login(page, live_server, user)
        page.goto(f"{live_server.url}/governance/delegate/")
        page.get_by_label("OPEN to wrap into vOPEN").fill(amount)
        page.get_by_role("button", name="Wrap and delegate").click()
        _done(page)
        page.goto(f"{live_server.url}/governance/delegate/")
        expect(page.get_by_test_id("votes")).to_have_text(f"{amount.replace('1000', '1,000')} vOPEN")
        if user == alice:
            logout(page)

    # Bob proposes. A split of 11,000 bps is refused before anything is sent, in words.
    page.goto(f"{live_server.url}/governance/propose/")
    page.get_by_label("Protocol treasury (bps)").fill("1000")
    page.get_by_label("Model owner (bps)").fill("1000")
    page.get_by_label("Data contributors (bps)").fill("9000")
    page.get_by_label("Description").fill("Too generous")
    page.get_by_role("button", name="Propose").click()
    expect(page.get_by_role("alert")).to_contain_text("The shares add up to 11,000 bps; they must add up to 10,000.")
    page.get_by_label("Model owner (bps)").fill("2500")
    page.get_by_label("Protocol treasury (bps)").fill("500")
    page.get_by_label("Data contributors (bps)").fill("7000")
    page.get_by_label("Description").fill("Pay data 70% of every fee")
    page.get_by_role("button", name="Propose").click()
    _done(page)
    page.get_by_role("link", name="The proposal").click()
    expect(page.get_by_test_id("state")).to_have_text("pending")
    proposal_url = page.url

    # The voting delay is one block; the governor reports "active" to a read once a block past the snapshot
    # exists (a vote sent now would already land in it).
    governance.mine(2)
    governance_index()  # the beat reads the new state
    page.reload()
    page.get_by_role("button", name="Vote against").click()
    _done(page)
    logout(page)
    login(page, live_server, alice)
    page.goto(proposal_url)
    page.get_by_label("Reason (optional)").fill("data deserves more")
    page.get_by_role("button", name="Vote for").click()
    _done(page)
    page.goto(proposal_url)
    expect(page.get_by_test_id("tally")).to_have_text("For 1,000 vOPEN · against 10 vOPEN · abstain 0 vOPEN")
    logout(page)

    governance.mine(10)  # the voting period
    governance_index()
    login(page, live_server, staff)
    page.goto(f"{live_server.url}/governance/queue/")
    page.get_by_test_id("to-queue").get_by_role("button", name="Queue").click()
    _done(page)
    page.goto(f"{live_server.url}/governance/queue/")
    page.get_by_test_id("to-execute").get_by_role("button", name="Execute").click()
    _done(page)
    page.goto(proposal_url)
    expect(page.get_by_test_id("state")).to_have_text("executed")
    expect(page.get_by_text("fee policy version 2")).to_be_visible()
    assert governance.parameters.fee_split() == FeeSplit(500, 2_500, 7_000)
    policy = rewards_services.fee_policy_current()
    assert (policy.version, policy.protocol_bps, policy.owner_bps, policy.contributors_bps) == (2, 500, 2_500, 7_000)
