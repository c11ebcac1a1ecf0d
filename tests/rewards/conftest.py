"""Rewards fixtures: one real in-process py-evm chain per session with the token and distributor
deployed, reverted to its snapshot after each test; wallets linked through the real SIWE flow."""

from types import SimpleNamespace

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

OPEN = 10**18


@pytest.fixture(scope="session")
def _chain_world():
    from rewards.chain import ChainClient, deploy_rewards

    client = ChainClient.in_process()
    deployed = deploy_rewards(client, supply=10**9 * OPEN)
    return client, deployed


@pytest.fixture
def chain(db, _chain_world, settings):
    from rewards.chainio import deployment_record, set_chain_client

    client, deployed = _chain_world
    snapshot = client.snapshot()
    set_chain_client(client)
    settings.CHAIN_ID = client.chain_id
    settings.REWARDS_RELAY_THRESHOLD = 0
    deployment = deployment_record(client=client, token_address=deployed.token.address,
                                   distributor_address=deployed.distributor.address,
                                   deployed_at_block=deployed.deployed_at_block)
    accounts = client.local_chain.accounts
    yield SimpleNamespace(client=client, deployment=deployment, token=deployed.token,
                          distributor=deployed.distributor, treasury=accounts[0], wallets=accounts[2:9])
    set_chain_client(None)
    client.revert_to_snapshot(snapshot)


def sign(account, message: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=message), private_key=account.key).signature).hex()


@pytest.fixture
def link_wallet():
    """Link `account` (an eth-account LocalAccount) to `user` through nonce + signature."""
    from rewards.services import wallet_link, wallet_nonce_issue

    def link(user, account, **kwargs):
        issued = wallet_nonce_issue(user=user, address=account.address)
        return wallet_link(user=user, message=issued.message, signature=sign(account, issued.message), **kwargs)

    return link


@pytest.fixture
def grant(db):
    from rewards.services import credit_grant

    def give(user, amount):
        return credit_grant(actor=None, user=user, amount=amount, reason="test credit")

    return give


@pytest.fixture
def sign_siwe():
    """personal_sign of a message by an eth-account LocalAccount, as a wallet would."""
    return sign
