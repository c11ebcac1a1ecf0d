"""Chain RPC faults during the epoch close and claim relaying: a real py-evm chain served over JSON-RPC,
reached through a proxy that refuses calls, loses answers, stalls past the client's timeout, answers
like a lagging node, or lets a real competing transaction land first so ours reverts on chain.

After each fault the close is run again (as the redelivered task or the next beat would) and the
system must converge: the epoch closed, the distributor funded once, one root per epoch, every account
paid exactly its due once, the ledger balanced and equal to the chain (`ledger_check`, `chain_reconcile`).
"""

from types import SimpleNamespace

import pytest
import requests
from browser_support import personal_sign
from django.core.management import call_command
from faults_support import ChainNode, Fault, FaultyRpcProxy, calls_function

from rewards import ledger, services
from rewards.chain import (
    ChainClient,
    ChainRevert,
    ChainSendError,
    DistributorContract,
    TokenContract,
    TransactionPolicy,
    TransactionTimeout,
    deploy_rewards,
)
from rewards.chainio import deployment_record, set_chain_client
from rewards.models import AccountKind, Epoch, EpochState, ReconciliationIssue
from rewards.selectors import claims_for

pytestmark = pytest.mark.django_db
OPEN = 10**18
MODEL = "ab" * 32
# The platform's RPC timeout, and a stall well past it (generous: a loaded machine answers slowly).
REQUEST_TIMEOUT_S = 4.0
STALL_S = 7.0


@pytest.fixture
def rpc(settings, dora, alice, charlie):
    """The platform's client talks to the chain only through the faulty proxy; `direct` is a fault-free
    handle on the same chain for the test's own reads and for competing actors (owner, users)."""
    node = ChainNode()
    proxy = FaultyRpcProxy(node.url)
    accounts = node.client.local_chain.accounts
    treasury, owner = accounts[0], accounts[1]  # the owner is a separate key (a multisig in production)
    policy = TransactionPolicy(receipt_timeout_s=3, poll_interval_s=0.05, send_attempts=3, retry_backoff_s=0.05)
    client = ChainClient.from_rpc(proxy.url, treasury.key, policy=policy, request_timeout_s=REQUEST_TIMEOUT_S)
    deployed = deploy_rewards(node.client, supply=10**9 * OPEN, owner=owner.address)
    set_chain_client(client)
    settings.CHAIN_ID = client.chain_id
    settings.REWARDS_RELAY_THRESHOLD = 0
    deployment_record(client=client, token_address=deployed.token.address,
                      distributor_address=deployed.distributor.address, deployed_at_block=deployed.deployed_at_block)
    wallets = {dora.pk: accounts[2], alice.pk: accounts[3]}
    for user in (dora, alice):
        issued = services.wallet_nonce_issue(user=user, address=wallets[user.pk].address)
        services.wallet_link(user=user, message=issued.message, signature=personal_sign(wallets[user.pk], issued.message))
    services.credit_grant(actor=None, user=charlie, amount=100 * OPEN, reason="fault tests")
    for n in range(3):  # alice owns the model, dora contributed the rows
        services.fee_settle(inference_id=f"rpc-fault-{n}", payer=charlie, model_owner=alice, fee=3 * OPEN + n,
                            contributor_shares={dora.pk: 1_000_000}, model_version_hash=MODEL, receipt_id=f"r{n}")
    world = SimpleNamespace(
        node=node, proxy=proxy, client=client, owner=owner, treasury=treasury, wallets=wallets,
        token=TokenContract(node.client, deployed.token.address),
        distributor=DistributorContract(node.client, deployed.distributor.address),
        # Matchers are built on the platform's own contract handles (same ABI, same address).
        platform_token=TokenContract(client, deployed.token.address),
        platform_distributor=DistributorContract(client, deployed.distributor.address),
    )
    yield world
    set_chain_client(None)
    proxy.close()
    node.close()


def _events(contract, name: str, **filters) -> list:
    event = getattr(contract.contract.events, name)
    return list(event.get_logs(from_block=0, argument_filters=filters or None))


def _assert_converged(rpc, users) -> None:
    """No epoch left open, the books balance and agree with the chain, each user's pending paid once."""
    assert not Epoch.objects.exclude(state=EpochState.CLOSED).exists()
    services.claims_index()
    call_command("ledger_check")  # raises CommandError when the books do not balance
    call_command("chain_reconcile")  # raises CommandError on any disagreement with the chain
    assert not ReconciliationIssue.objects.filter(resolved_at__isnull=True).exists()
    fundings = _events(rpc.token, "Transfer", **{"from": rpc.treasury.address, "to": rpc.distributor.address})
    closed = list(Epoch.objects.order_by("number"))
    assert len(fundings) == len(closed)  # one funding transfer per epoch, never a second
    assert sum(e["args"]["value"] for e in fundings) == closed[-1].total_cumulative
    assert len(_events(rpc.distributor, "RootUpdated")) == len(closed)
    for user in users:
        paid = ledger.balance(kind=AccountKind.PAID_OUT, user=user)
        address = rpc.wallets[user.pk].address
        assert rpc.token.balance_of(address) == paid == rpc.distributor.claimed(address)
        assert len(_events(rpc.distributor, "Claimed", account=address)) <= len(closed)


def test_funding_answer_lost_and_receipts_lagging_then_close_resumes_and_funds_once(rpc, dora, alice):
    token = rpc.platform_token
    rpc.proxy.inject(Fault("stall", "eth_sendRawTransaction", calls_function(token, "transfer"), seconds=STALL_S))
    lagging = rpc.proxy.inject(Fault("null_result", "eth_getTransactionReceipt", times=10_000))
    with pytest.raises(TransactionTimeout):
        services.epoch_close()
    epoch = Epoch.objects.get()
    assert epoch.state == EpochState.TREE_BUILT and epoch.last_error
    # The transfer went through although the platform never saw its answer or its receipt.
    assert rpc.token.balance_of(rpc.distributor.address) == epoch.total_cumulative
    lagging.times = lagging.hits  # the node catches up

    epoch = services.epoch_close()
    assert epoch.state == EpochState.CLOSED
    assert rpc.token.balance_of(rpc.distributor.address) == epoch.total_cumulative  # not funded twice
    assert services.epoch_close() is None
    _assert_converged(rpc, [dora, alice])


def test_root_post_refused_then_answer_lost_then_close_posts_root_once(rpc, dora, alice):
    set_root = calls_function(rpc.platform_distributor, "setMerkleRoot")
    rpc.proxy.inject(Fault("refuse", "eth_sendRawTransaction", set_root, times=3))
    with pytest.raises(ChainSendError):
        services.epoch_close()
    epoch = Epoch.objects.get()
    assert epoch.state == EpochState.FUNDED and rpc.distributor.epoch() == 0  # nothing reached the node

    # Now the node takes the root, the answer is lost and the node cannot be asked about it either: the
    # platform cannot know, and says so.
    rpc.proxy.inject(Fault("drop_response", "eth_sendRawTransaction", set_root))
    rpc.proxy.inject(Fault("refuse", "eth_getTransactionByHash", times=10))
    with pytest.raises(ChainSendError):
        services.epoch_close()
    assert Epoch.objects.get().state == EpochState.FUNDED
    assert rpc.distributor.epoch() == 1  # ...but the root is on chain

    epoch = services.epoch_close()  # sees the root on chain and moves on without posting again
    assert epoch.state == EpochState.CLOSED and epoch.root_tx_hash == ""
    assert "0x" + rpc.distributor.merkle_root().hex() == epoch.root
    _assert_converged(rpc, [dora, alice])


def test_relayed_claims_revert_on_chain_then_resume_pays_each_account_once(rpc, settings, dora, alice):
    settings.REWARDS_RELAY_THRESHOLD = 1  # the close relays every claim
    claim_many = calls_function(rpc.platform_distributor, "claimMany")
    # The owner pauses the distributor between the platform's gas estimate and its send: the relayed
    # batch is mined and reverts (EnforcedPause), a real revert on a real chain.
    rpc.proxy.inject(Fault("before", "eth_sendRawTransaction", claim_many,
                           hook=lambda: rpc.distributor.pause(sender=rpc.owner)))
    with pytest.raises(ChainRevert) as reverted:
        services.epoch_close()
    # Mined and reverted; replayed for its reason, which the node returns as revert data like geth does.
    assert rpc.node.client.w3.eth.get_transaction_receipt(reverted.value.tx_hash)["status"] == 0
    assert reverted.value.error_name == "EnforcedPause"
    epoch = Epoch.objects.get()
    assert epoch.state == EpochState.ROOT_POSTED and "EnforcedPause" in epoch.last_error
    assert rpc.token.balance_of(rpc.wallets[dora.pk].address) == 0

    # The owner unpauses; dora does not wait and claims herself in the meantime.
    rpc.distributor.unpause(sender=rpc.owner)
    [claim] = claims_for(user=dora)
    rpc.distributor.claim(claim["address"], claim["cumulative_amount"], [bytes.fromhex(p[2:]) for p in claim["proof"]],
                          sender=rpc.wallets[dora.pk])
    epoch = services.epoch_close()
    assert epoch.state == EpochState.CLOSED and epoch.relayed_accounts == 1  # only alice was still due
    assert rpc.token.balance_of(rpc.wallets[dora.pk].address) == claim["cumulative_amount"]
    assert rpc.token.balance_of(rpc.distributor.address) == 0
    _assert_converged(rpc, [dora, alice])
    assert ledger.balance(kind=AccountKind.PENDING, user=dora) == 0
    assert ledger.balance(kind=AccountKind.PENDING, user=alice) == 0


def test_claim_for_me_with_lost_and_late_answers_pays_once(rpc, dora, alice):
    epoch = services.epoch_close()
    assert epoch.state == EpochState.CLOSED
    claim_many = calls_function(rpc.platform_distributor, "claimMany")

    # Dora's relay: mined, the answer lost, the node unreachable for the check: an error is shown...
    rpc.proxy.inject(Fault("drop_response", "eth_sendRawTransaction", claim_many))
    rpc.proxy.inject(Fault("refuse", "eth_getTransactionByHash", times=10))
    with pytest.raises(ChainSendError):
        services.claim_relay(user=dora)
    due = ledger.balance(kind=AccountKind.PENDING, user=dora)
    assert rpc.token.balance_of(rpc.wallets[dora.pk].address) == due
    # ...so she presses the button again: nothing is sent twice.
    assert services.claim_relay(user=dora) == {"relayed": 0, "tx_hash": ""}
    assert rpc.token.balance_of(rpc.wallets[dora.pk].address) == due

    for fault in rpc.proxy.faults:
        fault.times = fault.hits  # the node is reachable again

    # Alice's relay: the node answers too late for the client's timeout; it finds its transaction on chain.
    rpc.proxy.inject(Fault("stall", "eth_sendRawTransaction", claim_many, seconds=STALL_S))
    result = services.claim_relay(user=alice)
    assert result["relayed"] == 1
    assert ledger.balance(kind=AccountKind.PENDING, user=alice) == 0
    assert services.claim_relay(user=alice)["relayed"] == 0
    _assert_converged(rpc, [dora, alice])
    assert len(_events(rpc.distributor, "Claimed")) == 2


def test_unreachable_node_fails_cleanly_and_nothing_moves(rpc, dora, alice):
    """A node that is down for the whole close: the close stops with the transport error, writes nothing on
    chain, and the next run (node back) closes the epoch normally."""
    rpc.proxy.inject(Fault("refuse", "eth_sendRawTransaction", times=3))
    with pytest.raises(ChainSendError):
        services.epoch_close()
    assert rpc.token.balance_of(rpc.distributor.address) == 0
    rpc.proxy.inject(Fault("refuse", "eth_blockNumber", times=50))
    rpc.proxy.inject(Fault("refuse", "eth_getBlockByNumber", times=50))
    with pytest.raises(requests.exceptions.ConnectionError):
        services.epoch_close()
    for fault in rpc.proxy.faults:
        fault.times = fault.hits
    assert services.epoch_close().state == EpochState.CLOSED
    _assert_converged(rpc, [dora, alice])
