"""In a real browser, without development signing (production: the platform holds no user's key), two wallets
carry a fee-split proposal from creation to execution by signing in the page: delegate, propose and vote each
end on the action page, whose "Send with my browser wallet" hands the prepared transactions to the injected
EIP-1193 wallet (`window.ethereum`). The wallet here is a stand-in for an extension: it offers one account and
signs with its key, as an extension does once its user confirms. The page sends only from the SIWE-linked
address: a wallet that offers another account is told so and nothing is sent."""

import re

import pytest
from browser_support import login, logout
from playwright.sync_api import expect

from governance.models import Proposal
from governance.services import governance_index
from rewards import services as rewards_services
from rewards.chain.governance import FeeSplit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
OPEN = 10**18


class InjectedWallet:
    """What a browser wallet answers a page: the account it offers (lower case, as extensions give it), the
    chain id, and for `eth_sendTransaction` the transaction signed with that account's key and sent. Every
    method the page asked for is kept in `asked`."""

    def __init__(self, client):
        self.client, self.account, self.asked = client, None, []

    def install(self, page):
        page.expose_function("__injectedWallet", self.answer)
        page.add_init_script(
            "window.ethereum = {request: ({method, params}) => window.__injectedWallet(method, params || [])};")

    def answer(self, method, params):
        self.asked.append(method)
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [self.account.address.lower()]
        if method == "eth_chainId":
            return hex(self.client.chain_id)
        if method == "eth_sendTransaction":
            [tx] = params
            assert tx["from"].lower() == self.account.address.lower()
            return self.client.send({"to": tx["to"], "data": tx["data"], "value": int(tx["value"], 16)},
                                    sender=self.account).tx_hash
        if method == "eth_getTransactionReceipt":
            receipt = self.client.w3.eth.get_transaction_receipt(params[0])
            return {"transactionHash": params[0], "status": hex(receipt["status"]),
                    "blockNumber": hex(receipt["blockNumber"])}
        raise ValueError(f"this wallet does not answer {method}")


def _send_with_wallet(page):
    page.get_by_role("button", name="Send with my browser wallet").click()
    expect(page.get_by_test_id("wallet-send-status")).to_contain_text("Sent from")


def test_two_linked_wallets_sign_a_proposal_in_the_page_from_creation_to_execution(
        live_server, page, settings, governance, alice, bob, staff, link_wallet):
    settings.GOVERNANCE_DEV_SIGNING = False
    wallet = InjectedWallet(governance.chain.client)
    wallet.install(page)
    linked = {alice.pk: governance.chain.wallets[0], bob.pk: governance.chain.wallets[1]}
    stranger = governance.chain.wallets[2]
    for user, amount in ((alice, "1000"), (bob, "10")):
        link_wallet(user, linked[user.pk])
        governance.fund(linked[user.pk], 2_000 * OPEN)
        login(page, live_server, user)
        page.goto(f"{live_server.url}/governance/delegate/")
        page.get_by_label("OPEN to wrap into vOPEN").fill(amount)
        page.get_by_role("button", name="Wrap and delegate").click()
        expect(page.get_by_test_id("action-state")).to_have_attribute("data-state", "prepared")
        expect(page.get_by_test_id("prepared-tx")).to_have_count(3)  # approve, depositFor, delegate
        if user == alice:
            # The wallet offers an address other than the linked one: the page says so and sends nothing.
            wallet.account = stranger
            page.get_by_role("button", name="Send with my browser wallet").click()
            expect(page.get_by_test_id("wallet-send-status")).to_contain_text(
                f"not {linked[alice.pk].address}, the wallet linked to your account")
            assert "eth_sendTransaction" not in wallet.asked
        wallet.account = linked[user.pk]
        _send_with_wallet(page)
        page.goto(f"{live_server.url}/governance/delegate/")
        expect(page.get_by_test_id("votes")).to_have_text(f"{amount.replace('1000', '1,000')} vOPEN")
        if user == alice:
            logout(page)

    # Bob proposes from his wallet; the indexer records the proposal the chain made.
    page.goto(f"{live_server.url}/governance/propose/")
    page.get_by_label("Protocol treasury (bps)").fill("500")
    page.get_by_label("Model owner (bps)").fill("2500")
    page.get_by_label("Data contributors (bps)").fill("7000")
    page.get_by_label("Description").fill("Pay data 70% of every fee")
    page.get_by_role("button", name="Propose").click()
    _send_with_wallet(page)
    governance_index()
    proposal = Proposal.objects.get()
    assert proposal.proposer == linked[bob.pk].address
    proposal_url = f"{live_server.url}/governance/proposals/{proposal.pk}/"
    page.goto(proposal_url)
    expect(page.get_by_test_id("state")).to_have_text("pending")
    expect(page.get_by_test_id("change").locator("td")).to_have_text(["500 bps", "2500 bps", "7000 bps"])

    governance.mine(2)  # the voting delay
    governance_index()
    page.reload()
    page.get_by_role("button", name="Vote against").click()
    _send_with_wallet(page)
    logout(page)
    wallet.account = linked[alice.pk]
    login(page, live_server, alice)
    page.goto(proposal_url)
    page.get_by_label("Reason (optional)").fill("data deserves more")
    page.get_by_role("button", name="Vote for").click()
    _send_with_wallet(page)
    governance_index()
    page.goto(proposal_url)
    expect(page.get_by_test_id("tally")).to_have_text("For 1,000 vOPEN · against 10 vOPEN · abstain 0 vOPEN")
    page.goto(f"{live_server.url}/governance/queue/")  # the queue is staff's: others are sent to sign in as staff
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.goto(f"{live_server.url}/")
    logout(page)

    # Queue and execute are anyone's to send: staff ask from the queue the admin links, the platform's key sends.
    governance.mine(10)  # the voting period
    governance_index()
    login(page, live_server, staff)
    page.goto(f"{live_server.url}/admin/governance/proposal/")
    page.get_by_role("link", name="awaiting queue / execute").click()
    expect(page.get_by_test_id("to-queue")).to_contain_text("Pay data 70% of every fee")
    for step, button in (("to-queue", "Queue"), ("to-execute", "Execute")):
        page.goto(f"{live_server.url}/governance/queue/")
        page.get_by_test_id(step).get_by_role("button", name=button).click()
        expect(page.get_by_test_id("action-state")).to_have_attribute("data-state", "done")
    page.goto(proposal_url)
    expect(page.get_by_test_id("state")).to_have_text("executed")
    assert governance.parameters.fee_split() == FeeSplit(500, 2_500, 7_000)
    policy = rewards_services.fee_policy_current()
    assert (policy.version, policy.protocol_bps, policy.owner_bps, policy.contributors_bps) == (2, 500, 2_500, 7_000)
