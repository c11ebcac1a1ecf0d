"""Governance of the fee split, end to end on the real in-process chain: wrap OPEN into vOPEN, delegate,
propose, vote, queue, execute through the timelock; the indexer mirrors it and the next fee is split by
the policy the chain set."""

import pytest

from accounts.models import AuditEvent
from governance.models import ActionState, ParameterChange, Proposal, ProposalState, Vote
from governance.services import governance_index, proposal_advance, wallet_action_run
from rewards import services as rewards_services
from rewards.chain import ChainRevert
from rewards.chain.governance import FeeSplit, fee_split_refusal

OPEN = 10**18
MODEL = "sha256:" + "ab" * 32


def _settle(payer, owner, contributor, inference_id, fee=10_000):
    return rewards_services.fee_settle(inference_id=inference_id, payer=payer, model_owner=owner, fee=fee,
                                       contributor_shares={contributor.pk: 1_000_000}, model_version_hash=MODEL,
                                       receipt_id=f"receipt-{inference_id}")


def test_passed_proposal_changes_the_registry_and_the_next_fee_split(governance, alice, dora, charlie, grant,
                                                                    client):
    gov, (voter, small_voter, executor) = governance, governance.chain.wallets[:3]
    gov.holder(voter, 1_000 * OPEN)
    gov.holder(small_voter, 10 * OPEN)
    grant(charlie, OPEN)
    before = _settle(charlie, alice, dora, "before-governance")
    assert (before.protocol_amount, before.owner_amount, before.contributors_amount) == (1_000, 3_000, 6_000)

    actions = gov.parameters.fee_split_proposal(FeeSplit(500, 2_500, 7_000), "Pay data 70% of every fee")
    proposal_id = actions.proposal_id
    gov.governor.propose(actions, sender=voter)
    assert gov.governor.state(proposal_id) == "pending"
    gov.mine(1)  # voting delay: 1 block
    gov.governor.cast_vote(proposal_id, "for", "data deserves more", sender=voter)
    gov.governor.cast_vote(proposal_id, "against", sender=small_voter)
    assert governance_index() == 4  # the registry's initial split, the proposal, two votes
    initial = ParameterChange.objects.get(registry_version=1)
    assert initial.fee_policy_version is None  # the database already had that split: no new policy version
    mirrored = Proposal.objects.get(proposal_id=str(proposal_id))
    assert mirrored.state == ProposalState.ACTIVE
    assert (mirrored.votes_for, mirrored.votes_against, mirrored.votes_abstain) == (1_000 * OPEN, 10 * OPEN, 0)
    assert mirrored.fee_split == {"protocol_bps": 500, "owner_bps": 2_500, "contributors_bps": 7_000}
    assert mirrored.proposer == voter.address and mirrored.description == "Pay data 70% of every fee"
    assert rewards_services.fee_policy_current().version == 1

    gov.mine(10)  # voting period: 10 blocks
    assert gov.governor.state(proposal_id) == "succeeded"
    # Nobody but the timelock can change the registry, not even a voter with a majority.
    with pytest.raises(ChainRevert) as direct:
        gov.parameters.set_fee_split(FeeSplit(500, 2_500, 7_000), sender=voter)
    assert direct.value.error_name == "OwnableUnauthorizedAccount"
    gov.governor.queue(actions, sender=executor)
    governance_index()
    assert Proposal.objects.get(pk=mirrored.pk).state == ProposalState.QUEUED
    assert Proposal.objects.get(pk=mirrored.pk).eta is not None
    # Anyone may execute once the timelock's delay (1 s, one block) has passed.
    gov.governor.execute(actions, sender=executor)
    assert gov.parameters.fee_split() == FeeSplit(500, 2_500, 7_000)
    assert gov.parameters.fee_split_version() == 2

    assert governance_index() == 2  # the registry's change, then the execution (same transaction)
    mirrored.refresh_from_db()
    assert mirrored.state == ProposalState.EXECUTED and mirrored.executed_tx_hash
    change = ParameterChange.objects.get(registry_version=2)
    assert change.proposal == mirrored and change.tx_hash == mirrored.executed_tx_hash
    policy = rewards_services.fee_policy_current()
    assert (policy.version, policy.protocol_bps, policy.owner_bps, policy.contributors_bps) == (2, 500, 2_500, 7_000)
    assert change.fee_policy_version == policy.version
    audit = AuditEvent.objects.get(action="governance.fee_split_applied", object_id=str(change.pk))
    assert audit.details["fee_policy_version"] == 2 and audit.details["previous_fee_policy_version"] == 1
    assert AuditEvent.objects.filter(action="rewards.fee_policy_set").count() == 1

    after = _settle(charlie, alice, dora, "after-governance")
    assert after.policy.version == 2
    assert (after.protocol_amount, after.owner_amount, after.contributors_amount) == (500, 2_500, 7_000)
    # The fee booked before the change keeps the policy it was split by.
    before.refresh_from_db()
    assert before.policy.version == 1
    assert {(v.voter, v.support, v.weight) for v in Vote.objects.filter(proposal=mirrored)} == {
        (voter.address, "for", 1_000 * OPEN), (small_voter.address, "against", 10 * OPEN)}
    # Indexing again records nothing new and makes no second policy.
    assert governance_index() == 0
    assert rewards_services.fee_policy_current().version == 2

    # The read-only pages show the state, the votes and the exact change, from the database.
    listing = client.get("/governance/").content.decode()
    assert "Pay data 70% of every fee" in listing and "500 / 2500 / 7000 bps" in listing and "executed" in listing
    detail = client.get(f"/governance/proposals/{mirrored.pk}/").content.decode()
    # Votes are rounded for reading (here nothing to round), the exact weight kept in the markup.
    assert 'For <data value="1000" title="1,000 vOPEN">1,000 vOPEN</data>' in detail
    assert 'against <data value="10" title="10 vOPEN">10 vOPEN</data>' in detail
    assert "data deserves more" in detail and "fee policy version 2" in detail and mirrored.calldatas[0] in detail


def test_proposal_below_quorum_is_defeated_and_changes_nothing(governance, alice, dora, charlie, grant):
    gov, (whale, minnow) = governance, governance.chain.wallets[:2]
    gov.holder(whale, 1_000 * OPEN)
    gov.holder(minnow, 10 * OPEN)  # under 1% of vOPEN: quorum is 4%
    actions = gov.parameters.fee_split_proposal(FeeSplit(2_000, 4_000, 4_000), "Owners 40%")
    gov.governor.propose(actions, sender=minnow)
    gov.mine(1)
    gov.governor.cast_vote(actions.proposal_id, "for", sender=minnow)
    gov.mine(10)
    # Quorum: 4% of the vOPEN supply at the proposal's snapshot (1,010 vOPEN delegated); 10 for is below it.
    assert gov.governor.quorum(gov.governor.proposal_snapshot(actions.proposal_id)) == 1_010 * OPEN * 4 // 100
    assert gov.governor.state(actions.proposal_id) == "defeated"
    with pytest.raises(ChainRevert) as refused:
        gov.governor.queue(actions, sender=minnow)
    assert refused.value.error_name == "GovernorUnexpectedProposalState"

    governance_index()
    mirrored = Proposal.objects.get(proposal_id=str(actions.proposal_id))
    assert mirrored.state == ProposalState.DEFEATED
    assert (mirrored.votes_for, mirrored.votes_against) == (10 * OPEN, 0)
    assert gov.parameters.fee_split() == FeeSplit(1_000, 3_000, 6_000)
    assert not ParameterChange.objects.exclude(registry_version=1).exists()
    assert rewards_services.fee_policy_current().version == 1
    grant(charlie, OPEN)
    settlement = _settle(charlie, alice, dora, "after-defeat")
    assert (settlement.protocol_amount, settlement.owner_amount, settlement.contributors_amount) == (1_000, 3_000, 6_000)


def test_registry_refuses_a_bad_split_with_its_reason(governance, staff, client):
    gov, voter = governance, governance.chain.wallets[0]
    # Checked before proposing: the registry's own reason, by name and arguments.
    with pytest.raises(ChainRevert) as not_whole:
        gov.parameters.check_fee_split(FeeSplit(1_000, 3_000, 5_000))
    assert not_whole.value.error_name == "FeeSplitNotWhole"
    assert not_whole.value.error_args == {"required": 10_000, "total": 9_000}
    assert fee_split_refusal(not_whole.value) == "The shares add up to 9,000 bps; they must add up to 10,000."
    with pytest.raises(ChainRevert) as out_of_range:
        gov.parameters.check_fee_split(FeeSplit(5_000, 3_000, 2_000))
    assert out_of_range.value.error_name == "FeeShareOutOfRange"
    assert fee_split_refusal(out_of_range.value) == "The protocol share is 5,000 bps; the registry allows 0 to 2,000."
    assert {k: v for k, v in out_of_range.value.error_args.items() if k != "share"} == {
        "value": 5_000, "min": 0, "max": 2_000}
    gov.parameters.check_fee_split(FeeSplit(2_000, 4_000, 4_000))  # within bounds, whole: accepted

    # Voted through anyway, the timelock's call reverts and the registry's reason surfaces from execute.
    gov.holder(voter, 1_000 * OPEN)
    actions = gov.parameters.fee_split_proposal(FeeSplit(1_000, 1_000, 9_000), "A split of 11,000 bps")
    greedy = gov.parameters.fee_split_proposal(FeeSplit(0, 10_000, 0), "Everything to model owners")
    for proposal in (actions, greedy):
        gov.governor.propose(proposal, sender=voter)
    gov.mine(1)
    for proposal in (actions, greedy):
        gov.governor.cast_vote(proposal.proposal_id, "for", sender=voter)
    gov.mine(10)
    for proposal in (actions, greedy):
        gov.governor.queue(proposal, sender=voter)
    with pytest.raises(ChainRevert) as executed:
        gov.governor.execute(actions, sender=voter)
    assert executed.value.error_name == "FeeSplitNotWhole"
    assert fee_split_refusal(executed.value) == "The shares add up to 11,000 bps; they must add up to 10,000."
    with pytest.raises(ChainRevert) as out_of_bounds:
        gov.governor.execute(greedy, sender=voter)
    assert fee_split_refusal(out_of_bounds.value) == "The owner share is 10,000 bps; the registry allows 0 to 5,000."
    assert gov.governor.state(actions.proposal_id) == "queued"
    assert gov.parameters.fee_split() == FeeSplit(1_000, 3_000, 6_000)
    governance_index()
    mirrored = Proposal.objects.get(proposal_id=str(actions.proposal_id))
    assert mirrored.state == ProposalState.QUEUED
    # Staff executing it from the queue page get the registry's refusal in words on the action's page.
    refused = wallet_action_run(action_id=proposal_advance(actor=staff, proposal=mirrored, step="execute").pk)
    assert refused.state == ActionState.FAILED
    assert refused.error == "The shares add up to 11,000 bps; they must add up to 10,000."
    client.force_login(staff)
    page = client.get(f"/governance/actions/{refused.pk}/").content.decode()
    assert "Refused: The shares add up to 11,000 bps; they must add up to 10,000." in page
    assert rewards_services.fee_policy_current().version == 1
