"""The development chain node: a real HTTP JSON-RPC server that ChainClient.from_rpc can drive."""

import threading

import pytest

from rewards.chain import ChainClient, ChainRevert, CumulativeRewardsTree, DistributorContract, TokenContract
from rewards.models import ChainDeployment

OPEN = 10**18


def test_chain_node_serves_json_rpc_and_records_its_deployment(db, settings):
    from rewards.management.commands.chain_node import Command

    server = Command().build(host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        deployment = ChainDeployment.objects.get()
        client = ChainClient.from_rpc(f"http://127.0.0.1:{server.server_address[1]}", settings.CHAIN_PRIVATE_KEY)
        assert client.chain_id == deployment.chain_id
        token = TokenContract(client, deployment.token_address)
        distributor = DistributorContract(client, deployment.distributor_address)
        assert token.balance_of(client.address) == settings.REWARDS_DEV_TOKEN_SUPPLY
        token.transfer(distributor.address, 5 * OPEN)
        account = "0x" + "12" * 20
        tree = CumulativeRewardsTree.build({account: 5 * OPEN, "0x" + "34" * 20: 0})
        distributor.publish_tree(tree, 1)
        distributor.claim(account, 5 * OPEN, tree.proof(account))
        [event] = distributor.claimed_events(deployment.deployed_at_block).events
        assert event.amount == 5 * OPEN and token.balance_of(account) == 5 * OPEN
        # Reverts reach the caller with their data, as from geth: the Solidity error by name and arguments.
        with pytest.raises(ChainRevert) as again:
            distributor.claim(account, 5 * OPEN, tree.proof(account))
        assert again.value.error_name == "NothingToClaim"
        assert again.value.error_args["cumulativeAmount"] == 5 * OPEN
        assert again.value.error_args["alreadyClaimed"] == 5 * OPEN
        with pytest.raises(ChainRevert) as forged:
            distributor.claim(account, 6 * OPEN, tree.proof(account))
        assert forged.value.error_name == "InvalidProof" and forged.value.error_args["cumulativeAmount"] == 6 * OPEN
        assert token.balance_of(account) == 5 * OPEN
        # Governance is deployed over the same OPEN and recorded next to it.
        from governance.models import GovernanceDeployment
        from rewards.chain.governance import FeeSplit, governance_contracts

        recorded = GovernanceDeployment.objects.get(chain_id=deployment.chain_id, genesis_hash=deployment.genesis_hash)
        governance = governance_contracts(client, votes=recorded.votes_address, timelock=recorded.timelock_address,
                                          governor=recorded.governor_address, parameters=recorded.parameters_address)
        assert recorded.token_address == deployment.token_address == governance.votes.underlying()
        assert governance.governor.timelock() == governance.timelock.address == governance.parameters.owner()
        assert governance.parameters.fee_split() == FeeSplit(1_000, 3_000, 6_000)
    finally:
        server.shutdown()
        server.server_close()
