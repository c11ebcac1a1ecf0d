"""Chain RPC faults during governance and stake transactions: a real py-evm chain served over JSON-RPC,
reached through the proxy that loses answers and refuses the follow-up lookups, so the platform cannot know
whether its transaction landed. Trying again must converge without repeating anything on chain: one
proposal, one vote per wallet, one execution (one new fee policy), one stake, one unstake request, one slash,
and `chain_reconcile` finds the database and the chain in agreement."""

from types import SimpleNamespace

import pytest
from browser_support import personal_sign
from django.core.management import call_command
from faults_support import ChainNode, Fault, FaultyRpcProxy, calls_function

from datanets import services as datanet_services
from governance.chainio import deployment_record as governance_record
from governance.models import ActionState, Proposal, ProposalState, SlashState, StakeEvent, WalletAction
from governance.services import (
    delegate_request,
    governance_index,
    proposal_advance,
    proposal_submit,
    stake_request,
    stake_slashes_enforce,
    unstake_request,
    vote_request,
    wallet_action_retry,
    wallet_action_run,
)
from rewards import services as rewards_services
from rewards.chain import ChainClient, TransactionPolicy, deploy_rewards
from rewards.chain.governance import FeeSplit, GovernorContract, deploy_governance
from rewards.chain.staking import StakingContract, deploy_staking
from rewards.chainio import deployment_record, set_chain_client
from rewards.models import ReconciliationIssue

pytestmark = pytest.mark.django_db
OPEN = 10**18
REQUEST_TIMEOUT_S = 4.0


@pytest.fixture
def gov_rpc(settings, alice, bob, charlie):
    """Rewards, governance and stakes deployed on a node; the platform reaches it only through the faulty
    proxy. Alice and Bob hold vOPEN (delegated) in dev wallets the platform signs for; Charlie has OPEN."""
    node = ChainNode()
    proxy = FaultyRpcProxy(node.url)
    accounts = node.client.local_chain.accounts
    treasury = accounts[0]
    rewards = deploy_rewards(node.client, supply=10**9 * OPEN)
    governance = deploy_governance(node.client, token_address=rewards.token.address,
                                   initial_split=FeeSplit(1_000, 3_000, 6_000))
    staking = deploy_staking(node.client, token_address=rewards.token.address, admin=governance.timelock.address,
                             slasher=treasury.address)
    wallets = {alice.pk: accounts[2], bob.pk: accounts[3], charlie.pk: accounts[4]}
    for wallet, amount in ((accounts[2], 1_000 * OPEN), (accounts[3], 500 * OPEN), (accounts[4], 100 * OPEN)):
        rewards.token.transfer(wallet.address, amount, sender=treasury)
    policy = TransactionPolicy(receipt_timeout_s=3, poll_interval_s=0.05, send_attempts=2, retry_backoff_s=0.05)
    client = ChainClient.from_rpc(proxy.url, treasury.key, policy=policy, request_timeout_s=REQUEST_TIMEOUT_S)
    set_chain_client(client)
    settings.CHAIN_ID = client.chain_id
    settings.GOVERNANCE_DEV_SIGNING = True
    deployment_record(client=client, token_address=rewards.token.address,
                      distributor_address=rewards.distributor.address, deployed_at_block=rewards.deployed_at_block)
    record = governance_record(client=client, token_address=rewards.token.address,
                               votes_address=governance.votes.address, timelock_address=governance.timelock.address,
                               governor_address=governance.governor.address,
                               parameters_address=governance.parameters.address,
                               deployed_at_block=governance.deployed_at_block)
    record.staking_address, record.staking_deployed_at_block = staking.staking.address, staking.deployed_at_block
    record.save()
    for user in (alice, bob, charlie):
        issued = rewards_services.wallet_nonce_issue(user=user, address=wallets[user.pk].address)
        rewards_services.wallet_link(user=user, message=issued.message,
                                     signature=personal_sign(wallets[user.pk], issued.message))
    for user, amount in ((alice, 1_000 * OPEN), (bob, 500 * OPEN)):
        assert _run(delegate_request(user=user, amount=amount)).state == ActionState.DONE
    yield SimpleNamespace(
        node=node, proxy=proxy, client=client, wallets=wallets, token=rewards.token, governance=governance,
        staking=staking.staking, governor=GovernorContract(client, governance.governor.address),
        platform_staking=StakingContract(client, staking.staking.address),
        mine=node.client.local_chain.mine_blocks)
    set_chain_client(None)
    proxy.close()
    node.close()


def _run(action):
    """What the chain worker does with a queued action (tests run it in place of the on-commit task)."""
    return wallet_action_run(action_id=action.pk)


def _lose_answer(rpc, contract, function: str) -> list[Fault]:
    """The node executes the call, the answer never arrives, and the node cannot be asked about it."""
    return [rpc.proxy.inject(Fault("drop_response", "eth_sendRawTransaction", calls_function(contract, function))),
            rpc.proxy.inject(Fault("refuse", "eth_getTransactionByHash", times=10))]


def _heal(rpc) -> None:
    for fault in rpc.proxy.faults:
        fault.times = fault.hits


def _retry(user, action):
    return _run(wallet_action_retry(user=user, action=action))


def _logs(contract, name: str) -> list:
    return list(getattr(contract.contract.events, name).get_logs(from_block=0))


def test_propose_vote_and_execute_answers_lost_then_retried_happen_once(gov_rpc, alice, bob, staff):
    rpc, gov = gov_rpc, gov_rpc.governance
    _lose_answer(rpc, rpc.governor, "propose")
    proposed = _run(proposal_submit(user=alice, split=FeeSplit(500, 2_500, 7_000), description="Data 70%"))
    assert proposed.state == ActionState.FAILED and "did not confirm" in proposed.error
    assert len(_logs(gov.governor, "ProposalCreated")) == 1  # ...but it is on chain
    _heal(rpc)
    proposed = _retry(alice, proposed)
    assert proposed.state == ActionState.DONE and proposed.tx_hashes == []  # found on chain, not sent again
    assert len(_logs(gov.governor, "ProposalCreated")) == 1
    proposal = Proposal.objects.get(proposal_id=proposed.params["proposal_id"])

    rpc.mine(1)
    _lose_answer(rpc, rpc.governor, "castVote")
    voted = _run(vote_request(user=alice, proposal=proposal, support="for"))
    assert voted.state == ActionState.FAILED
    _heal(rpc)
    assert _retry(alice, voted).state == ActionState.DONE
    assert _run(vote_request(user=bob, proposal=proposal, support="against")).state == ActionState.DONE
    assert len(_logs(gov.governor, "VoteCast")) == 2
    rpc.mine(10)
    governance_index()
    proposal.refresh_from_db()
    assert proposal.state == ProposalState.SUCCEEDED

    assert _run(proposal_advance(actor=staff, proposal=proposal, step="queue")).state == ActionState.DONE
    proposal.refresh_from_db()
    _lose_answer(rpc, rpc.governor, "execute")
    executed = _run(proposal_advance(actor=staff, proposal=proposal, step="execute"))
    assert executed.state == ActionState.FAILED
    _heal(rpc)
    assert _retry(staff, executed).state == ActionState.DONE
    assert len(_logs(gov.governor, "ProposalExecuted")) == 1
    assert len(_logs(gov.parameters, "FeeSplitChanged")) == 2  # the initial split and this one
    assert rewards_services.fee_policy_current().version == 2
    assert WalletAction.objects.filter(state=ActionState.FAILED).count() == 0
    call_command("chain_reconcile")
    assert not ReconciliationIssue.objects.filter(resolved_at__isnull=True).exists()


def test_stake_unstake_and_slash_answers_lost_then_retried_happen_once(gov_rpc, alice, charlie):
    rpc = gov_rpc
    wallet = rpc.wallets[charlie.pk]
    datanet = datanet_services.datanet_create(owner=alice, name="Faulty", task_type="text-classification",
                                              label_set=["a", "b"], visibility="public")
    _lose_answer(rpc, rpc.platform_staking, "stake")
    staked = _run(stake_request(user=charlie, datanet=datanet, amount=20 * OPEN))
    assert staked.state == ActionState.FAILED
    _heal(rpc)
    assert _retry(charlie, staked).state == ActionState.DONE
    assert len(_logs(rpc.staking, "Staked")) == 1
    assert rpc.token.balance_of(wallet.address) == 80 * OPEN  # moved once

    _lose_answer(rpc, rpc.platform_staking, "requestUnstake")
    unstaking = _run(unstake_request(user=charlie, datanet=datanet, amount=4 * OPEN))
    assert unstaking.state == ActionState.FAILED
    _heal(rpc)
    assert _retry(charlie, unstaking).state == ActionState.DONE
    assert len(_logs(rpc.staking, "UnstakeRequested")) == 1
    position = rpc.staking.stake_of(wallet.address, datanet.pk)
    assert (position.active, position.unstaking) == (16 * OPEN, 4 * OPEN)

    contribution = datanet_services.contribution_create_from_rows(
        datanet=datanet, contributor=charlie, rows=[{"text": f"cheap pills {n}", "label": "a"} for n in range(3)])
    datanet_services.contribution_validate(contribution_id=contribution.pk)
    datanet_services.records_review(datanet=datanet, reviewer=alice, decision="reject", reason="spam",
                                    record_ids=contribution.records.values_list("pk", flat=True))
    _lose_answer(rpc, rpc.platform_staking, "slash")
    [slash] = stake_slashes_enforce()
    assert slash.state == SlashState.FAILED
    _heal(rpc)
    [slash] = stake_slashes_enforce()  # the next beat: finds the evidence used on chain, records the event
    assert slash.state == SlashState.DONE and slash.amount == 5 * OPEN  # 25% of 20 OPEN, once
    assert len(_logs(rpc.staking, "Slashed")) == 1
    assert StakeEvent.objects.filter(kind="slashed").count() == 1
    assert rpc.staking.reward_pool(datanet.pk) == 5 * OPEN
    assert rpc.token.balance_of(rpc.staking.address) == 20 * OPEN
    call_command("chain_reconcile")
    assert not ReconciliationIssue.objects.filter(resolved_at__isnull=True).exists()
