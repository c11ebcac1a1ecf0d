"""Rewards fixtures: wallets linked through the real SIWE flow (the in-process chain is the shared `chain`
fixture in tests/conftest.py)."""

import pytest
from browser_support import personal_sign


@pytest.fixture
def link_wallet():
    """Link `account` (an eth-account LocalAccount) to `user` through nonce + signature."""
    from rewards.services import wallet_link, wallet_nonce_issue

    def link(user, account, **kwargs):
        issued = wallet_nonce_issue(user=user, address=account.address)
        return wallet_link(user=user, message=issued.message, signature=personal_sign(account, issued.message),
                           **kwargs)

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
    return personal_sign
