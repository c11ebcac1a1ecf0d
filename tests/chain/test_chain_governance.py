"""The governance contracts on the in-process py-evm chain, driven through the engine (no Django)."""

import pytest

from rewards.chain import ChainClient, ChainRevert, deploy_rewards
from rewards.chain.governance import (
    CANCELLER_ROLE,
    DEFAULT_ADMIN_ROLE,
    EXECUTOR_ROLE,
    PROPOSER_ROLE,
    ZERO_ADDRESS,
    FeeSplit,
    GovernanceParameters,
    deploy_governance,
    fee_split_refusal,
)

OPEN = 10**18


@pytest.fixture(scope="module")
def world():
    client = ChainClient.in_process()
    rewards = deploy_rewards(client, supply=10**9 * OPEN)
    governance = deploy_governance(client, token_address=rewards.token.address,
                                   initial_split=FeeSplit(1_000, 3_000, 6_000))
    return client, rewards, governance


def test_deployment_wires_roles_and_development_parameters(world):
    client, rewards, gov = world
    deployer = client.address
    assert gov.votes.underlying() == rewards.token.address
    assert gov.governor.token() == gov.votes.address and gov.governor.timelock() == gov.timelock.address
    assert (gov.governor.voting_delay(), gov.governor.voting_period(), gov.governor.proposal_threshold()) == (1, 10, 0)
    assert gov.timelock.min_delay() == 1
    assert gov.timelock.has_role(PROPOSER_ROLE, gov.governor.address)
    assert gov.timelock.has_role(CANCELLER_ROLE, gov.governor.address)
    assert gov.timelock.has_role(EXECUTOR_ROLE, ZERO_ADDRESS)  # anyone executes
    assert not gov.timelock.has_role(DEFAULT_ADMIN_ROLE, deployer)  # admin renounced
    assert not gov.timelock.has_role(PROPOSER_ROLE, deployer)
    assert gov.parameters.owner() == gov.timelock.address
    assert gov.parameters.fee_split() == FeeSplit(1_000, 3_000, 6_000) and gov.parameters.fee_split_version() == 1
    assert gov.parameters.bounds() == {"max_protocol_bps": 2_000, "max_owner_bps": 5_000, "min_contributors_bps": 4_000}
    [initial] = gov.parameters.fee_split_changed_events(gov.deployed_at_block).events
    assert (initial.version, initial.split) == (1, FeeSplit(1_000, 3_000, 6_000))
    # Gas of the whole deployment (4 contracts, 3 role transactions), as reported by the chain.
    assert len(gov.transactions) == 7 and all(tx.gas_used > 0 for tx in gov.transactions)


def test_vopen_wraps_open_one_to_one_and_counts_only_delegated_votes(world):
    client, rewards, gov = world
    snapshot = client.snapshot()
    try:
        holder = client.local_chain.accounts[4]
        rewards.token.transfer(holder.address, 50 * OPEN)
        gov.votes.wrap(rewards.token, 50 * OPEN, sender=holder)
        assert gov.votes.balance_of(holder.address) == 50 * OPEN and rewards.token.balance_of(holder.address) == 0
        assert gov.votes.votes_of(holder.address) == 0  # not delegated yet
        gov.votes.delegate(holder.address, sender=holder)
        assert gov.votes.votes_of(holder.address) == 50 * OPEN
        gov.votes.unwrap(20 * OPEN, sender=holder)
        assert rewards.token.balance_of(holder.address) == 20 * OPEN
        assert gov.votes.votes_of(holder.address) == 30 * OPEN
    finally:
        client.revert_to_snapshot(snapshot)


def test_only_the_timelock_sets_the_split_and_the_proposal_id_matches_the_governor(world):
    client, _, gov = world
    with pytest.raises(ChainRevert) as refused:
        gov.parameters.set_fee_split(FeeSplit(500, 2_500, 7_000))
    assert refused.value.error_name == "OwnableUnauthorizedAccount"
    actions = gov.parameters.fee_split_proposal(FeeSplit(500, 2_500, 7_000), "x")
    assert actions.proposal_id == gov.governor._call("hashProposal", list(actions.targets), list(actions.values),
                                                     list(actions.calldatas), actions.description_hash)
    assert gov.parameters.decode_fee_split_call(actions.targets[0], actions.calldatas[0]) == FeeSplit(500, 2_500, 7_000)


def test_registry_refuses_bounds_that_cannot_hold(world):
    client, rewards, _ = world
    with pytest.raises(ChainRevert) as refused:
        deploy_governance(client, token_address=rewards.token.address, initial_split=FeeSplit(3_000, 3_000, 4_000),
                          parameters=GovernanceParameters())
    assert refused.value.error_name == "FeeShareOutOfRange"
    assert fee_split_refusal(refused.value) == "The protocol share is 3,000 bps; the registry allows 0 to 2,000."
