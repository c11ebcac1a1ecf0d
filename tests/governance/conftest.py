"""Governance fixtures: vOPEN, timelock, governor and parameter registry deployed once per session on the
shared in-process chain (tests/conftest.py's `_chain_world`), before each test's snapshot, so every test
starts from the same chain and the `chain` fixture's revert undoes what it did."""

from types import SimpleNamespace

import pytest

OPEN = 10**18


@pytest.fixture(scope="session")
def _governance_world(_chain_world):
    from rewards.chain.governance import FeeSplit, deploy_governance

    client, rewards = _chain_world
    return deploy_governance(client, token_address=rewards.token.address, initial_split=FeeSplit(1_000, 3_000, 6_000))


@pytest.fixture
def governance(_governance_world, chain):
    """The deployed governance, recorded for this test's database, and helpers that act as wallets do."""
    from governance.chainio import deployment_record

    deployed = _governance_world
    record = deployment_record(client=chain.client, token_address=chain.token.address,
                               votes_address=deployed.votes.address, timelock_address=deployed.timelock.address,
                               governor_address=deployed.governor.address,
                               parameters_address=deployed.parameters.address,
                               deployed_at_block=deployed.deployed_at_block)

    def holder(wallet, amount):
        """Give `wallet` `amount` OPEN from the treasury, wrap it into vOPEN and delegate to itself."""
        chain.token.transfer(wallet.address, amount, sender=chain.treasury)
        deployed.votes.wrap(chain.token, amount, sender=wallet)
        deployed.votes.delegate(wallet.address, sender=wallet)
        return wallet

    def mine(blocks):
        chain.client.local_chain.mine_blocks(blocks)

    return SimpleNamespace(record=record, votes=deployed.votes, timelock=deployed.timelock,
                           governor=deployed.governor, parameters=deployed.parameters, holder=holder, mine=mine,
                           chain=chain)


@pytest.fixture
def grant(db):
    """Inference credit for a payer, through rewards' own service."""
    from rewards import services as rewards_services

    def give(user, amount):
        return rewards_services.credit_grant(actor=None, user=user, amount=amount, reason="test credit")

    return give
