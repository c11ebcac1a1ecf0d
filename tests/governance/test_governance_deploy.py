"""`manage.py governance_deploy` on a chain reached over JSON-RPC, as outside development (auto-deploy off, rewards'
OPEN token configured): it deploys governance and the contributor stakes once, wired as the development node
wires them, records them, prints the settings that name them, and running it again deploys nothing."""

import threading
from http.server import ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from governance.chainio import contracts, deployment_ensure, staking_contract
from governance.models import GovernanceDeployment
from rewards.chain import ChainClient, InProcessChain, deploy_rewards
from rewards.chain.governance import FeeSplit
from rewards.chain.staking import DEFAULT_ADMIN_ROLE, SLASHER_ROLE
from rewards.chainio import ChainUnavailable, set_chain_client
from rewards.management.commands.chain_node import make_handler

OPEN = 10**18


@pytest.fixture
def rpc_chain(db, settings):
    """A fresh chain behind JSON-RPC with OPEN and the distributor already deployed and configured; the platform
    reaches it only over HTTP, with auto-deploy off."""
    node = ChainClient.in_process(InProcessChain())
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(node))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rewards = deploy_rewards(node, supply=10**9 * OPEN)
    client = ChainClient.from_rpc(f"http://127.0.0.1:{server.server_address[1]}", node.signer.key)
    settings.CHAIN_ID = client.chain_id
    settings.REWARDS_CHAIN_AUTO_DEPLOY = False
    settings.REWARDS_TOKEN_ADDRESS = rewards.token.address
    settings.REWARDS_DISTRIBUTOR_ADDRESS = rewards.distributor.address
    settings.REWARDS_DEPLOYED_AT_BLOCK = rewards.deployed_at_block
    set_chain_client(client)
    yield client, rewards
    set_chain_client(None)
    server.shutdown()
    server.server_close()


def test_the_deploy_command_deploys_governance_and_stakes_once(rpc_chain):
    client, rewards = rpc_chain
    with pytest.raises(ChainUnavailable, match="auto-deploy is off"):
        deployment_ensure(client=client)  # nothing recorded or configured: the platform never deploys by itself

    out = StringIO()
    call_command("governance_deploy", stdout=out)
    printed = out.getvalue()
    deployment = GovernanceDeployment.objects.get()
    assert deployment.token_address == rewards.token.address and deployment.staking_address
    assert f"Deployed governance on chain {client.chain_id}." in printed
    for line in (f"GOVERNANCE_VOTES_ADDRESS={deployment.votes_address}",
                 f"GOVERNANCE_TIMELOCK_ADDRESS={deployment.timelock_address}",
                 f"GOVERNANCE_GOVERNOR_ADDRESS={deployment.governor_address}",
                 f"GOVERNANCE_PARAMETERS_ADDRESS={deployment.parameters_address}",
                 f"GOVERNANCE_STAKING_ADDRESS={deployment.staking_address}"):
        assert line in printed.splitlines()
    assert ("voting delay 1 blocks, voting period 10 blocks, proposal threshold 0 (base units), timelock delay 1 s; "
            "stakes: cooldown 300 s, at most 5000 bps per slash") in printed

    # Wired as the development node wires it: the timelock owns the registry and administers the stakes, the
    # platform's key slashes, the registry starts from the fee policy in force.
    chain, staking = contracts(deployment, client), staking_contract(deployment, client)
    assert chain.governor.timelock() == chain.timelock.address == chain.parameters.owner()
    assert chain.votes.underlying() == rewards.token.address == staking.token_address()
    assert chain.parameters.fee_split() == FeeSplit(1_000, 3_000, 6_000)
    assert staking.has_role(SLASHER_ROLE, client.address)
    assert staking.has_role(DEFAULT_ADMIN_ROLE, deployment.timelock_address)
    assert not staking.has_role(DEFAULT_ADMIN_ROLE, client.address)

    # Again: found recorded, nothing deployed, the same addresses printed.
    block = client.w3.eth.block_number
    again = StringIO()
    call_command("governance_deploy", stdout=again)
    assert "already recorded" in again.getvalue() and f"GOVERNANCE_VOTES_ADDRESS={deployment.votes_address}" in (
        again.getvalue())
    assert client.w3.eth.block_number == block and GovernanceDeployment.objects.count() == 1


def test_the_deploy_command_refuses_an_in_process_chain(db, settings):
    settings.REWARDS_CHAIN_AUTO_DEPLOY = False
    set_chain_client(ChainClient.in_process(InProcessChain()))
    try:
        with pytest.raises(CommandError, match="CHAIN_RPC_URL is empty"):
            call_command("governance_deploy")
    finally:
        set_chain_client(None)
    assert not GovernanceDeployment.objects.exists()


def test_the_deploy_command_needs_the_open_token_first(rpc_chain, settings):
    settings.REWARDS_TOKEN_ADDRESS = settings.REWARDS_DISTRIBUTOR_ADDRESS = ""
    with pytest.raises(CommandError, match="Deploy or configure rewards' OPEN token first"):
        call_command("governance_deploy")
    assert not GovernanceDeployment.objects.exists()
