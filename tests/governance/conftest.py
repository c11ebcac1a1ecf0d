"""Governance fixtures: vOPEN, timelock, governor, parameter registry and contributor stakes deployed once per
session on the shared in-process chain (tests/conftest.py's `_chain_world`), before each test's snapshot, so
every test starts from the same chain and the `chain` fixture's revert undoes what it did."""

from types import SimpleNamespace

import pytest
from browser_support import personal_sign

OPEN = 10**18


@pytest.fixture(scope="session")
def _governance_world(_chain_world):
    from rewards.chain.governance import FeeSplit, deploy_governance

    client, rewards = _chain_world
    return deploy_governance(client, token_address=rewards.token.address, initial_split=FeeSplit(1_000, 3_000, 6_000))


@pytest.fixture(scope="session")
def _staking_world(_chain_world, _governance_world):
    """ContributorStakes as development deploys it: admin the timelock, slasher the platform's key, a 300 s
    cooldown and at most half a stake per slash."""
    from rewards.chain.staking import StakingParameters, deploy_staking

    client, rewards = _chain_world
    return deploy_staking(client, token_address=rewards.token.address, admin=_governance_world.timelock.address,
                          slasher=client.address, parameters=StakingParameters(cooldown_s=300, max_slash_bps=5_000))


@pytest.fixture
def governance(_governance_world, _staking_world, chain):
    """The deployed governance, recorded for this test's database, and helpers that act as wallets do."""
    from governance.chainio import deployment_record

    deployed = _governance_world
    record = deployment_record(client=chain.client, token_address=chain.token.address,
                               votes_address=deployed.votes.address, timelock_address=deployed.timelock.address,
                               governor_address=deployed.governor.address,
                               parameters_address=deployed.parameters.address,
                               deployed_at_block=deployed.deployed_at_block)
    record.staking_address = _staking_world.staking.address
    record.staking_deployed_at_block = _staking_world.deployed_at_block
    record.save(update_fields=["staking_address", "staking_deployed_at_block"])

    def holder(wallet, amount):
        """Give `wallet` `amount` OPEN from the treasury, wrap it into vOPEN and delegate to itself."""
        chain.token.transfer(wallet.address, amount, sender=chain.treasury)
        deployed.votes.wrap(chain.token, amount, sender=wallet)
        deployed.votes.delegate(wallet.address, sender=wallet)
        return wallet

    def mine(blocks):
        chain.client.local_chain.mine_blocks(blocks)

    def fund(wallet, amount):
        """OPEN from the treasury to `wallet` (a dev account: the platform may sign for it)."""
        chain.token.transfer(wallet.address, amount, sender=chain.treasury)
        return wallet

    def travel(seconds):
        """Move the chain's clock forward (the next block is `seconds` later)."""
        tester = chain.client.local_chain.tester
        tester.time_travel(tester.get_block_by_number("pending")["timestamp"] + seconds)

    return SimpleNamespace(record=record, votes=deployed.votes, timelock=deployed.timelock,
                           governor=deployed.governor, parameters=deployed.parameters, staking=_staking_world.staking,
                           holder=holder, mine=mine, fund=fund, travel=travel, chain=chain)


@pytest.fixture
def link_wallet():
    """Link `account` (an eth-account LocalAccount) to `user` through the real SIWE nonce + signature."""
    from rewards.services import wallet_link, wallet_nonce_issue

    def link(user, account):
        issued = wallet_nonce_issue(user=user, address=account.address)
        return wallet_link(user=user, message=issued.message, signature=personal_sign(account, issued.message))

    return link


@pytest.fixture
def dev_signing(settings):
    """Development signing on: the platform signs for linked wallets that are the chain's own accounts."""
    settings.GOVERNANCE_DEV_SIGNING = True
    return settings


@pytest.fixture
def grant(db):
    """Inference credit for a payer, through rewards' own service."""
    from rewards import services as rewards_services

    def give(user, amount):
        return rewards_services.credit_grant(actor=None, user=user, amount=amount, reason="test credit")

    return give
