"""Transaction machinery: same-nonce retries, nonce re-sync, revert decoding, gas, confirmations."""

import math

import pytest
from eth_account import Account
from web3 import EthereumTesterProvider, Web3
from web3._utils.error_formatters_utils import raise_contract_logic_error_on_revert
from web3.exceptions import ContractCustomError

from rewards.chain import (
    ChainClient,
    ChainRevert,
    ChainSendError,
    CumulativeRewardsTree,
    InProcessChain,
    TokenContract,
    TransactionPolicy,
    deploy_rewards,
)

OPEN = 10**18


class UnreliableProvider(EthereumTesterProvider):
    """The real in-process chain behind a transport that drops connections on demand.

    ``faults`` holds (method, when) pairs consumed one per matching request: "before" loses the
    request (the chain never sees it), "after" lets the chain execute it and loses the response.
    """

    def __init__(self, tester):
        super().__init__(tester)
        self.faults: list[tuple[str, str]] = []
        self.raw_sends: list[str] = []

    def make_request(self, method, params):
        fault = next((f for f in self.faults if f[0] == method), None)
        if fault is not None:
            self.faults.remove(fault)
        if method == "eth_sendRawTransaction":
            self.raw_sends.append(params[0])
        if fault is not None and fault[1] == "before":
            raise ConnectionError(f"{method}: connection reset before the node saw it")
        response = super().make_request(method, params)
        if fault is not None:
            raise ConnectionError(f"{method}: connection reset, response lost")
        return response


@pytest.fixture(scope="module")
def deployed():
    chain = InProcessChain()
    provider = UnreliableProvider(chain.tester)
    client = ChainClient(Web3(provider), chain.accounts[0], policy=TransactionPolicy(retry_backoff_s=0),
                         local_chain=chain)
    deployment = deploy_rewards(client, supply=10**6 * OPEN)
    deployment.token.transfer(deployment.distributor.address, 1_000 * OPEN)
    return client, provider, deployment


@pytest.fixture
def setup(deployed):
    client, provider, deployment = deployed
    snapshot = client.snapshot()
    provider.raw_sends.clear()
    yield deployed
    provider.faults.clear()
    client.revert_to_snapshot(snapshot)


def chain_nonce(client, account) -> int:
    return client.w3.eth.get_transaction_count(account.address)


@pytest.mark.parametrize("faults", [
    [("eth_sendRawTransaction", "after")],
    [("eth_sendRawTransaction", "before")],
    # The node took it, the response was lost and so was the "do you know it?" check: the client
    # resends the very same bytes, which the node refuses as a duplicate.
    [("eth_sendRawTransaction", "after"), ("eth_getTransactionByHash", "before")],
], ids=["response-lost", "request-lost", "response-and-check-lost"])
def test_transport_failures_never_execute_a_transfer_twice(setup, faults):
    client, provider, deployment = setup
    recipient = client.local_chain.accounts[5].address
    nonce_before = chain_nonce(client, client.signer)
    provider.faults = list(faults)

    result = deployment.token.transfer(recipient, 7 * OPEN)

    assert deployment.token.balance_of(recipient) == 7 * OPEN
    assert chain_nonce(client, client.signer) == nonce_before + 1 == result.nonce + 1
    assert len(set(provider.raw_sends)) == 1  # every retry resent the same signed bytes
    assert provider.faults == []


def test_persistent_transport_failure_raises_and_the_next_send_resyncs(setup):
    client, provider, deployment = setup
    recipient = client.local_chain.accounts[5].address
    provider.faults = [("eth_sendRawTransaction", "before")] * 3
    with pytest.raises(ChainSendError, match="after 3 tries"):
        deployment.token.transfer(recipient, OPEN)
    assert len(provider.raw_sends) == 3 and len(set(provider.raw_sends)) == 1

    result = deployment.token.transfer(recipient, 2 * OPEN)
    assert result.nonce == chain_nonce(client, client.signer) - 1
    assert deployment.token.balance_of(recipient) == 2 * OPEN


def test_nonce_is_resynced_after_another_worker_used_the_same_key(setup):
    client, _, deployment = setup
    other_worker = ChainClient(client.w3, client.signer, local_chain=client.local_chain)
    recipient = client.local_chain.accounts[6].address
    deployment.token.transfer(recipient, OPEN)  # primes this client's nonce tracker
    other_worker.transact(deployment.token.contract, "transfer", recipient, OPEN)

    with pytest.raises(ChainSendError):  # this client's cached nonce is now stale
        deployment.token.transfer(recipient, OPEN)
    deployment.token.transfer(recipient, OPEN)  # re-read from the node
    assert deployment.token.balance_of(recipient) == 3 * OPEN


def test_reverts_decode_identically_on_every_path(setup):
    client, _, deployment = setup
    distributor = deployment.distributor
    account = client.local_chain.accounts[2].address
    tree = CumulativeRewardsTree.build({account: 5 * OPEN})
    distributor.publish_tree(tree, 1)
    distributor.claim(account, 5 * OPEN, tree.proof(account))
    args = (account, 5 * OPEN, tree.proof(account))

    with pytest.raises(ChainRevert) as at_estimation:
        distributor.claim(*args)
    with pytest.raises(ChainRevert) as on_chain:  # explicit gas: no estimation, mined and reverted
        client.send({"to": distributor.address, "data": distributor.contract.encode_abi("claim", args=list(args)),
                     "gas": 200_000})
    with pytest.raises(ChainRevert) as in_call:
        client.call(distributor.contract, "claim", *args)
    # What web3 raises for a JSON-RPC node's geth-style error response with the same revert data.
    with pytest.raises(ContractCustomError) as from_node:
        raise_contract_logic_error_on_revert(
            {"error": {"code": 3, "message": "execution reverted", "data": "0x" + at_estimation.value.data.hex()}})
    via_node = client.revert_decoder.from_exception(from_node.value)

    expected = {"account": account, "cumulativeAmount": 5 * OPEN, "alreadyClaimed": 5 * OPEN}
    for revert in (at_estimation.value, on_chain.value, in_call.value, via_node):
        assert (revert.error_name, revert.error_args) == ("NothingToClaim", expected)
    assert on_chain.value.tx_hash is not None
    assert client.w3.eth.get_transaction_receipt(on_chain.value.tx_hash)["status"] == 0


def test_builtin_and_unknown_reverts_are_named():
    decoder = ChainClient.in_process().revert_decoder
    assert decoder.decode(bytes.fromhex("4e487b71") + (0x11).to_bytes(32, "big")).error_name == "Panic"
    assert decoder.decode(b"").error_name == "Revert"
    unknown = decoder.decode(bytes.fromhex("deadbeef"))
    assert (unknown.error_name, unknown.data) == ("Unknown", bytes.fromhex("deadbeef"))


def test_gas_is_set_explicitly_from_the_estimate_with_a_margin(setup):
    client, _, deployment = setup
    recipient = client.local_chain.accounts[7].address
    estimate = client.w3.eth.estimate_gas({
        "from": client.address, "to": deployment.token.address,
        "data": deployment.token.contract.encode_abi("transfer", args=[recipient, OPEN])})
    result = deployment.token.transfer(recipient, OPEN)
    assert client.w3.eth.get_transaction(result.tx_hash)["gas"] == math.ceil(estimate * client.policy.gas_margin)


def test_deposits_appear_once_confirmed_each_with_a_unique_key(setup):
    client, _, deployment = setup
    confirmed = ChainClient(client.w3, client.signer, policy=TransactionPolicy(confirmations=3),
                            local_chain=client.local_chain)
    token = TokenContract(confirmed, deployment.token.address)
    deposit_address = client.local_chain.accounts[8].address
    payer = client.local_chain.accounts[0]
    cursor = client.block_number() + 1

    first = deployment.token.transfer(deposit_address, 3 * OPEN, sender=payer)
    deployment.token.transfer(client.local_chain.accounts[9].address, OPEN, sender=payer)  # not a deposit
    page = token.deposits_to(deposit_address, cursor)
    assert page.events == [] and page.to_block == first.block_number - 1  # not confirmed yet

    client.local_chain.mine_blocks(1)
    page = token.deposits_to(deposit_address, cursor)
    assert [(d.sender, d.amount, d.position.key) for d in page.events] == [(payer.address, 3 * OPEN, (first.tx_hash, 0))]

    client.local_chain.mine_blocks(5)
    rest = token.deposits_to(deposit_address, page.to_block + 1)
    assert rest.events == [] and rest.from_block == page.to_block + 1


def test_rpc_client_signs_with_the_callers_key_and_targets_the_url():
    key = "0x" + "11" * 32
    client = ChainClient.from_rpc("http://127.0.0.1:8545", key, policy=TransactionPolicy(confirmations=12))
    assert client.address == Account.from_key(key).address
    assert client.w3.provider.endpoint_uri == "http://127.0.0.1:8545"
    assert client.policy.confirmations == 12 and client.local_chain is None
    with pytest.raises(RuntimeError, match="in-process"):
        client.snapshot()
