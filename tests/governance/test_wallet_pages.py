"""Governance from the platform's pages, on the real in-process chain: holders wrap and delegate, propose a
fee split (a bad one is refused with the registry's reason in words), vote, and staff queue and execute;
in development the platform signs with the chain's own key of each linked wallet, in production the page
hands the exact transaction to the user's wallet."""

import pytest
from django.core.management import call_command

from governance.models import ActionState, Proposal, ProposalState, WalletAction
from governance.services import governance_index, wallet_action_run
from rewards import services as rewards_services
from rewards.chain.governance import FeeSplit
from rewards.models import ReconciliationIssue

OPEN = 10**18
MODEL = "sha256:" + "cd" * 32


def _settle(payer, owner, contributor, inference_id, fee=10_000):
    return rewards_services.fee_settle(inference_id=inference_id, payer=payer, model_owner=owner, fee=fee,
                                       contributor_shares={contributor.pk: 1_000_000}, model_version_hash=MODEL,
                                       receipt_id=f"receipt-{inference_id}")


@pytest.fixture
def voters(governance, dev_signing, alice, bob, link_wallet, client, django_capture_on_commit_callbacks):
    """Alice and Bob, each with a linked wallet that is one of the chain's dev accounts and some OPEN, and a
    helper that posts a form as one of them and returns the action it asked for (sent on commit, as the
    `chain` worker would)."""
    wallets = {alice.pk: governance.chain.wallets[0], bob.pk: governance.chain.wallets[1]}
    for user in (alice, bob):
        link_wallet(user, wallets[user.pk])
        governance.fund(wallets[user.pk], 2_000 * OPEN)

    def post(user, url, data):
        client.force_login(user)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, data)
        action = WalletAction.objects.filter(user=user).order_by("-pk").first()
        return response, action

    return wallets, post


def test_pages_carry_a_proposal_from_delegation_to_execution_and_the_next_fee_uses_it(
        governance, voters, alice, bob, charlie, dora, staff, grant, client, django_capture_on_commit_callbacks):
    gov, (wallets, post) = governance, voters
    for user, amount in ((alice, "1000"), (bob, "10")):
        response, action = post(user, "/governance/delegate/", {"amount": amount, "delegatee": ""})
        assert response.status_code == 302 and response["Location"] == f"/governance/actions/{action.pk}/"
        assert action.state == ActionState.DONE and action.relayed and len(action.tx_hashes) == 2
    assert gov.votes.votes_of(wallets[alice.pk].address) == 1_000 * OPEN
    assert gov.votes.delegates(wallets[bob.pk].address) == wallets[bob.pk].address
    page = client.get("/governance/delegate/").content.decode()  # as bob, the last one logged in
    assert '<td data-testid="votes"><data value="10" title="10 vOPEN">10 vOPEN</data></td>' in page
    assert wallets[bob.pk].address in page

    # Refused before anything is proposed, with the registry's own reason in words.
    before = WalletAction.objects.count()
    response, _ = post(alice, "/governance/propose/", {"protocol_bps": 1_000, "owner_bps": 1_000,
                                                       "contributors_bps": 9_000, "description": "Too much"})
    assert response.status_code == 200
    assert "The shares add up to 11,000 bps; they must add up to 10,000." in response.content.decode()
    response, _ = post(alice, "/governance/propose/", {"protocol_bps": 5_000, "owner_bps": 3_000,
                                                       "contributors_bps": 2_000, "description": "Greedy"})
    assert "The protocol share is 5,000 bps; the registry allows 0 to 2,000." in response.content.decode()
    assert WalletAction.objects.count() == before and not Proposal.objects.exists()

    response, proposed = post(alice, "/governance/propose/", {"protocol_bps": 500, "owner_bps": 2_500,
                                                              "contributors_bps": 7_000,
                                                              "description": "Pay data 70% of every fee"})
    assert proposed.state == ActionState.DONE
    proposal = Proposal.objects.get(proposal_id=proposed.params["proposal_id"])
    assert proposed.proposal == proposal and proposal.proposer == wallets[alice.pk].address
    assert proposal.fee_split == {"protocol_bps": 500, "owner_bps": 2_500, "contributors_bps": 7_000}

    # Too early: the chain refuses and the page says why in words; nothing is cast.
    _, early = post(bob, f"/governance/proposals/{proposal.pk}/vote/", {"support": "against"})
    assert early.state == ActionState.FAILED
    assert early.error == "The proposal is pending; this step needs it active."
    assert "Refused: The proposal is pending" in client.get(f"/governance/actions/{early.pk}/").content.decode()
    gov.mine(1)
    governance_index()
    _, for_vote = post(alice, f"/governance/proposals/{proposal.pk}/vote/", {"support": "for", "reason": "data"})
    _, against = post(bob, f"/governance/proposals/{proposal.pk}/vote/", {"support": "against"})
    assert for_vote.state == against.state == ActionState.DONE
    # Running a done action again sends nothing (the worker may be redelivered the message).
    assert wallet_action_run(action_id=for_vote.pk).tx_hashes == for_vote.tx_hashes
    proposal.refresh_from_db()
    assert (proposal.votes_for, proposal.votes_against) == (1_000 * OPEN, 10 * OPEN)

    gov.mine(10)
    governance_index()  # the beat: succeeded has no event, the indexer reads the state
    client.force_login(staff)
    assert "Pay data 70% of every fee" in client.get("/governance/queue/").content.decode()
    _, queued = post(staff, f"/governance/queue/{proposal.pk}/", {"step": "queue"})
    assert queued.state == ActionState.DONE and queued.address == governance.chain.client.address
    proposal.refresh_from_db()
    assert proposal.state == ProposalState.QUEUED
    _, executed = post(staff, f"/governance/queue/{proposal.pk}/", {"step": "execute"})
    assert executed.state == ActionState.DONE, executed.error
    proposal.refresh_from_db()
    assert proposal.state == ProposalState.EXECUTED
    assert gov.parameters.fee_split() == FeeSplit(500, 2_500, 7_000)
    assert rewards_services.fee_policy_current().version == 2

    grant(charlie, OPEN)
    after = _settle(charlie, alice, dora, "after-page-governance")
    assert (after.protocol_amount, after.owner_amount, after.contributors_amount) == (500, 2_500, 7_000)
    detail = client.get(f"/governance/proposals/{proposal.pk}/").content.decode()
    assert "executed" in detail and "fee policy version 2" in detail
    # The database agrees with the chain: votes, stakes (none), slashes (none), the fee split.
    call_command("chain_reconcile")
    assert not ReconciliationIssue.objects.filter(kind__startswith="governance").exists()


def test_proposal_below_quorum_changes_nothing_and_cannot_be_queued(governance, voters, alice, bob, staff, charlie, dora,
                                                                   grant, client):
    gov, (_, post) = governance, voters
    gov.holder(governance.chain.wallets[4], 1_000 * OPEN)  # a large holder who stays away
    post(bob, "/governance/delegate/", {"amount": "10"})  # under 1% of vOPEN: quorum is 4%
    _, proposed = post(bob, "/governance/propose/", {"protocol_bps": 2_000, "owner_bps": 4_000,
                                                     "contributors_bps": 4_000, "description": "Owners 40%"})
    gov.mine(1)
    proposal = Proposal.objects.get()
    _, vote = post(bob, f"/governance/proposals/{proposal.pk}/vote/", {"support": "for"})
    assert vote.state == ActionState.DONE
    gov.mine(10)
    governance_index()
    proposal.refresh_from_db()
    assert proposal.state == ProposalState.DEFEATED and proposal.votes_for == 10 * OPEN
    client.force_login(staff)
    assert "Owners 40%" not in client.get("/governance/queue/").content.decode()
    response, _ = post(staff, f"/governance/queue/{proposal.pk}/", {"step": "queue"})
    assert not WalletAction.objects.filter(kind="queue").exists()
    assert "The proposal is defeated; queue needs it succeeded." in client.get(response["Location"]).content.decode()
    assert gov.parameters.fee_split() == FeeSplit(1_000, 3_000, 6_000)
    assert rewards_services.fee_policy_current().version == 1
    grant(charlie, OPEN)
    settled = _settle(charlie, alice, dora, "after-defeat-pages")
    assert (settled.protocol_amount, settled.owner_amount, settled.contributors_amount) == (1_000, 3_000, 6_000)


def test_without_development_signing_the_page_hands_the_exact_transaction_to_the_wallet(
        governance, alice, link_wallet, client, settings):
    settings.GOVERNANCE_DEV_SIGNING = False  # production: the platform holds no user's key
    wallet = governance.holder(governance.chain.wallets[0], 100 * OPEN)
    link_wallet(alice, wallet)
    client.force_login(alice)
    response = client.post("/governance/propose/", {"protocol_bps": 1_500, "owner_bps": 3_000,
                                                    "contributors_bps": 5_500, "description": "Treasury 15%"})
    action = WalletAction.objects.get()
    assert action.state == ActionState.PREPARED and not action.relayed
    page = client.get(response["Location"]).content.decode()
    [tx] = action.params["transactions"]
    assert tx["to"] == governance.governor.address and tx["data"] in page and "Sign and send" in page
    # The wallet signs and sends exactly that; the indexer records the proposal it made.
    governance.chain.client.send({"to": tx["to"], "data": tx["data"]}, sender=wallet)
    governance_index()
    proposal = Proposal.objects.get(proposal_id=action.params["proposal_id"])
    assert proposal.fee_split == {"protocol_bps": 1_500, "owner_bps": 3_000, "contributors_bps": 5_500}
    assert proposal.proposer == wallet.address
