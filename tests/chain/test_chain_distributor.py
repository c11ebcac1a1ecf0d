"""Behaviour of CumulativeMerkleDistributor on the in-process py-evm chain, driven through the engine."""

from dataclasses import dataclass

import pytest

from rewards.chain import (
    ChainClient,
    ChainRevert,
    ClaimRequest,
    CumulativeRewardsTree,
    RewardsDeployment,
    deploy_rewards,
)

OPEN = 10**18
FUNDING = 1_000 * OPEN


@dataclass
class World:
    client: ChainClient
    deployment: RewardsDeployment
    owner: object
    updater: object
    alice: object
    bob: object
    carol: object
    relayer: object
    stranger: object
    new_owner: object

    @property
    def distributor(self):
        return self.deployment.distributor

    @property
    def token(self):
        return self.deployment.token

    def publish(self, balances: dict, epoch: int) -> CumulativeRewardsTree:
        tree = CumulativeRewardsTree.build({account.address: amount for account, amount in balances.items()})
        self.distributor.publish_tree(tree, epoch, sender=self.updater)
        return tree

    def claim(self, tree: CumulativeRewardsTree, account, *, sender=None):
        return self.distributor.claim(account.address, tree.amount_of(account.address),
                                      tree.proof(account.address), sender=sender or account)


@pytest.fixture(scope="module")
def deployed_world():
    client = ChainClient.in_process()
    accounts = client.local_chain.accounts
    owner, updater = accounts[0], accounts[1]
    deployment = deploy_rewards(client, supply=10**9 * OPEN, owner=owner.address, root_updater=updater.address,
                                sender=owner)
    deployment.token.transfer(deployment.distributor.address, FUNDING, sender=owner)
    return World(client, deployment, owner, updater, *accounts[2:8])


@pytest.fixture
def world(deployed_world):
    snapshot = deployed_world.client.snapshot()
    yield deployed_world
    deployed_world.client.revert_to_snapshot(snapshot)


def assert_reverts(error_name: str, action, **expected_args) -> ChainRevert:
    with pytest.raises(ChainRevert) as caught:
        action()
    assert caught.value.error_name == error_name, caught.value
    for key, value in expected_args.items():
        assert caught.value.error_args[key] == value
    return caught.value


def test_two_epochs_with_a_newcomer_and_a_late_claimer(world):
    alice, bob, carol = world.alice, world.bob, world.carol
    start = world.client.block_number() + 1
    epoch1 = world.publish({alice: 10 * OPEN, bob: 5 * OPEN}, epoch=1)
    world.claim(epoch1, alice)  # bob skips epoch 1

    epoch2 = world.publish({alice: 15 * OPEN, bob: 12 * OPEN, carol: 7 * OPEN}, epoch=2)
    world.claim(epoch2, alice)
    world.claim(epoch2, bob)
    world.claim(epoch2, carol)

    assert [world.token.balance_of(a.address) for a in (alice, bob, carol)] == [15 * OPEN, 12 * OPEN, 7 * OPEN]
    assert [world.distributor.claimed(a.address) for a in (alice, bob, carol)] == [15 * OPEN, 12 * OPEN, 7 * OPEN]
    assert world.distributor.total_claimed() == 34 * OPEN
    assert world.token.balance_of(world.distributor.address) == FUNDING - 34 * OPEN
    assert world.distributor.epoch() == 2
    assert world.distributor.merkle_root() == epoch2.root

    claims = world.distributor.claimed_events(start).events
    assert [(c.account, c.amount, c.cumulative) for c in claims] == [
        (alice.address, 10 * OPEN, 10 * OPEN),
        (alice.address, 5 * OPEN, 15 * OPEN),
        (bob.address, 12 * OPEN, 12 * OPEN),
        (carol.address, 7 * OPEN, 7 * OPEN),
    ]
    roots = world.distributor.root_updated_events(start).events
    assert [(r.epoch, r.root, r.total_cumulative, r.tree_hash) for r in roots] == [
        (1, epoch1.root, 15 * OPEN, epoch1.dump_hash()),
        (2, epoch2.root, 34 * OPEN, epoch2.dump_hash()),
    ]


def test_double_claims_are_refused(world):
    tree = world.publish({world.alice: 10 * OPEN, world.bob: 5 * OPEN}, epoch=1)
    world.claim(tree, world.alice)
    assert_reverts("NothingToClaim", lambda: world.claim(tree, world.alice),
                   account=world.alice.address, cumulativeAmount=10 * OPEN, alreadyClaimed=10 * OPEN)
    # The next epoch's root leaves the same cumulative figure: still nothing more to pay.
    unchanged = world.publish({world.alice: 10 * OPEN, world.bob: 6 * OPEN}, epoch=2)
    assert_reverts("NothingToClaim", lambda: world.claim(unchanged, world.alice))
    assert world.token.balance_of(world.alice.address) == 10 * OPEN


def test_bad_proofs_are_refused(world):
    tree = world.publish({world.alice: 10 * OPEN, world.bob: 5 * OPEN, world.carol: 1 * OPEN}, epoch=1)
    alice = world.alice.address
    assert_reverts("InvalidProof", lambda: world.distributor.claim(alice, 11 * OPEN, tree.proof(alice)),
                   account=alice, cumulativeAmount=11 * OPEN)
    assert_reverts("InvalidProof", lambda: world.distributor.claim(alice, 10 * OPEN, tree.proof(world.bob.address)))
    assert_reverts("InvalidProof", lambda: world.distributor.claim(alice, 10 * OPEN, []))
    # A proof from an older epoch does not verify against the new root.
    world.publish({world.alice: 20 * OPEN}, epoch=2)
    assert_reverts("InvalidProof", lambda: world.claim(tree, world.alice))
    assert world.distributor.total_claimed() == 0


def test_anyone_may_submit_but_tokens_go_to_the_account(world):
    tree = world.publish({world.alice: 10 * OPEN}, epoch=1)
    world.claim(tree, world.alice, sender=world.relayer)
    assert world.token.balance_of(world.alice.address) == 10 * OPEN
    assert world.token.balance_of(world.relayer.address) == 0


def test_claim_many_pays_duplicates_once_and_skips_claimed_accounts(world):
    tree = world.publish({world.alice: 10 * OPEN, world.bob: 5 * OPEN, world.carol: 3 * OPEN}, epoch=1)
    world.claim(tree, world.carol)
    start = world.client.block_number() + 1
    batch = [ClaimRequest.from_tree(tree, a.address) for a in (world.alice, world.bob, world.alice, world.carol)]
    world.distributor.claim_many(batch, sender=world.relayer)

    assert [world.token.balance_of(a.address) for a in (world.alice, world.bob, world.carol)] == [
        10 * OPEN, 5 * OPEN, 3 * OPEN]
    assert [(c.account, c.amount) for c in world.distributor.claimed_events(start).events] == [
        (world.alice.address, 10 * OPEN), (world.bob.address, 5 * OPEN)]


def test_claim_many_reverts_whole_batch_on_a_bad_proof_or_length_mismatch(world):
    tree = world.publish({world.alice: 10 * OPEN, world.bob: 5 * OPEN}, epoch=1)
    good = ClaimRequest.from_tree(tree, world.alice.address)
    forged = ClaimRequest(world.bob.address, 50 * OPEN, tree.proof(world.bob.address))
    assert_reverts("InvalidProof", lambda: world.distributor.claim_many([good, forged], sender=world.relayer))
    contract = world.distributor.contract
    assert_reverts("LengthMismatch", lambda: world.client.transact(
        contract, "claimMany", [world.alice.address], [], [good.proof], sender=world.relayer))
    assert world.token.balance_of(world.alice.address) == 0


def test_pause_blocks_claims_and_root_updates_until_the_owner_unpauses(world):
    tree = world.publish({world.alice: 10 * OPEN, world.bob: 5 * OPEN}, epoch=1)
    world.distributor.pause(sender=world.updater)  # the hot key may stop things at once
    assert world.distributor.paused()
    assert_reverts("EnforcedPause", lambda: world.claim(tree, world.alice))
    assert_reverts("EnforcedPause", lambda: world.distributor.claim_many(
        [ClaimRequest.from_tree(tree, world.bob.address)], sender=world.relayer))
    assert_reverts("EnforcedPause", lambda: world.publish({world.alice: 20 * OPEN}, epoch=2))
    # ...but only the owner may resume, and strangers may not pause.
    assert_reverts("OwnableUnauthorizedAccount", lambda: world.distributor.unpause(sender=world.updater),
                   account=world.updater.address)
    world.distributor.unpause(sender=world.owner)
    assert_reverts("NotOwnerOrRootUpdater", lambda: world.distributor.pause(sender=world.stranger))

    world.claim(tree, world.alice)
    assert world.token.balance_of(world.alice.address) == 10 * OPEN


def test_two_step_ownership_transfer(world):
    world.distributor.transfer_ownership(world.new_owner.address, sender=world.owner)
    assert world.distributor.owner() == world.owner.address
    assert world.distributor.pending_owner() == world.new_owner.address
    assert_reverts("OwnableUnauthorizedAccount", lambda: world.distributor.accept_ownership(sender=world.stranger))

    world.distributor.accept_ownership(sender=world.new_owner)
    assert world.distributor.owner() == world.new_owner.address
    assert_reverts("OwnableUnauthorizedAccount",
                   lambda: world.distributor.set_root_updater(world.stranger.address, sender=world.owner))
    world.distributor.set_root_updater(world.stranger.address, sender=world.new_owner)
    assert world.distributor.root_updater() == world.stranger.address


def test_only_the_root_updater_can_set_the_root(world):
    tree = CumulativeRewardsTree.build({world.alice.address: OPEN})
    for intruder in (world.stranger, world.owner):
        assert_reverts("NotRootUpdater", lambda intruder=intruder: world.distributor.publish_tree(
            tree, 1, sender=intruder), caller=intruder.address)
    world.distributor.set_root_updater(world.stranger.address, sender=world.owner)
    world.distributor.publish_tree(tree, 1, sender=world.stranger)
    assert_reverts("NotRootUpdater", lambda: world.distributor.publish_tree(tree, 2, sender=world.updater))
    assert world.distributor.epoch() == 1


def test_epoch_must_strictly_increase(world):
    world.publish({world.alice: OPEN}, epoch=5)
    assert_reverts("EpochNotIncreasing", lambda: world.publish({world.alice: 2 * OPEN}, epoch=5),
                   currentEpoch=5, proposedEpoch=5)
    assert_reverts("EpochNotIncreasing", lambda: world.publish({world.alice: 2 * OPEN}, epoch=4))
    world.publish({world.alice: 2 * OPEN}, epoch=9)  # gaps are fine
    assert world.distributor.epoch() == 9


def test_solvency_check_refuses_an_underfunded_root(world):
    assert_reverts("Underfunded", lambda: world.publish({world.alice: FUNDING, world.bob: 1}, epoch=1),
                   available=FUNDING, totalCumulative=FUNDING + 1)
    tree = world.publish({world.alice: 600 * OPEN, world.bob: 400 * OPEN}, epoch=1)
    world.claim(tree, world.alice)
    # Already-claimed tokens still count: 400 left in the contract + 600 paid covers 1000 in total.
    world.publish({world.alice: 600 * OPEN, world.bob: 400 * OPEN}, epoch=2)
    assert_reverts("Underfunded", lambda: world.publish({world.alice: 601 * OPEN, world.bob: 400 * OPEN}, epoch=3),
                   available=FUNDING)
    world.token.transfer(world.distributor.address, OPEN, sender=world.owner)
    world.publish({world.alice: 601 * OPEN, world.bob: 400 * OPEN}, epoch=3)
