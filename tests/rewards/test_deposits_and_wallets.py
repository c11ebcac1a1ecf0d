"""On-chain deposits become credit exactly once; wallets link by SIWE; changes are delayed and audited."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import AuditEvent
from rewards import ledger, services
from rewards.models import AccountKind, ChainDeposit, ReconciliationIssue, Wallet, WalletNonce
from rewards.selectors import wallet_state

OPEN = 10**18


def _fund(chain, account, amount):
    chain.token.transfer(account.address, amount, sender=chain.treasury)


def test_deposit_indexer_credits_exactly_once(chain, alice, link_wallet):
    link_wallet(alice, chain.wallets[0])
    _fund(chain, chain.wallets[0], 10 * OPEN)
    chain.token.transfer(chain.deployment.deposit_address, 3 * OPEN, sender=chain.wallets[0])
    chain.token.transfer(chain.deployment.deposit_address, 2 * OPEN, sender=chain.wallets[0])
    assert services.deposits_index() == 2
    assert services.deposits_index() == 0
    # Rewind the cursor: scanning the same blocks again still credits nothing twice.
    chain.deployment.cursors.update(next_block=0)
    assert services.deposits_index() == 0
    assert ledger.balance(kind=AccountKind.CREDIT, user=alice) == 5 * OPEN
    assert ChainDeposit.objects.count() == 2
    assert ledger.ledger_check().ok


def test_deposit_waits_for_confirmations(chain, alice, link_wallet):
    link_wallet(alice, chain.wallets[0])
    _fund(chain, chain.wallets[0], OPEN)
    chain.token.transfer(chain.deployment.deposit_address, OPEN, sender=chain.wallets[0])
    chain.client.policy = type(chain.client.policy)(confirmations=3)
    try:
        assert services.deposits_index() == 0
        chain.client.local_chain.mine_blocks(2)
        assert services.deposits_index() == 1
    finally:
        chain.client.policy = type(chain.client.policy)()


def test_deposit_from_an_unknown_address_is_reported_not_credited(chain):
    _fund(chain, chain.wallets[3], OPEN)
    chain.token.transfer(chain.deployment.deposit_address, OPEN, sender=chain.wallets[3])
    assert services.deposits_index() == 0
    assert ReconciliationIssue.objects.get().kind == "unmatched_deposit"
    assert ledger.ledger_check().ok


def test_valid_signature_links_a_wallet(chain, alice, link_wallet):
    wallet = link_wallet(alice, chain.wallets[0])
    assert wallet.address == chain.wallets[0].address
    assert wallet_state(user=alice)["current"] == wallet
    assert AuditEvent.objects.filter(action="rewards.wallet_link").exists()


def test_wrong_nonce_is_refused(chain, alice, sign_siwe):
    issued = services.wallet_nonce_issue(user=alice, address=chain.wallets[0].address)
    forged = issued.message.replace(f"Nonce: {issued.nonce}", "Nonce: abcdefgh12345678")
    with pytest.raises(ValidationError, match="nonce was not issued to you"):
        services.wallet_link(user=alice, message=forged, signature=sign_siwe(chain.wallets[0], forged))


def test_signature_from_another_address_is_refused(chain, alice, sign_siwe):
    issued = services.wallet_nonce_issue(user=alice, address=chain.wallets[0].address)
    with pytest.raises(ValidationError, match="not made by the wallet named in the message"):
        services.wallet_link(user=alice, message=issued.message, signature=sign_siwe(chain.wallets[1], issued.message))
    assert not Wallet.objects.exists()


def test_expired_message_is_refused(chain, alice, sign_siwe):
    issued = services.wallet_nonce_issue(user=alice, address=chain.wallets[0].address)
    later = timezone.now() + timedelta(hours=1)
    with pytest.raises(ValidationError, match="expired"):
        services.wallet_link(user=alice, message=issued.message, signature=sign_siwe(chain.wallets[0], issued.message),
                             now=later)


def test_nonce_is_single_use_and_bound_to_its_user(chain, alice, bob, sign_siwe):
    issued = services.wallet_nonce_issue(user=alice, address=chain.wallets[0].address)
    signature = sign_siwe(chain.wallets[0], issued.message)
    with pytest.raises(ValidationError, match="not issued to you"):
        services.wallet_link(user=bob, message=issued.message, signature=signature)
    services.wallet_link(user=alice, message=issued.message, signature=signature)
    with pytest.raises(ValidationError, match="already used"):
        services.wallet_link(user=alice, message=issued.message, signature=signature)
    assert WalletNonce.objects.get().used_at is not None


def test_a_wallet_belongs_to_one_account(chain, alice, bob, link_wallet):
    link_wallet(alice, chain.wallets[0])
    with pytest.raises(ValidationError, match="linked to another account"):
        link_wallet(bob, chain.wallets[0])


def test_wallet_change_is_delayed_and_audited(chain, dora, alice, charlie, grant, link_wallet, settings):
    settings.WALLET_CHANGE_DELAY_HOURS = 48
    old = link_wallet(dora, chain.wallets[0])
    new = link_wallet(dora, chain.wallets[1])
    assert new.effective_at - new.linked_at == timedelta(hours=48)
    state = wallet_state(user=dora)
    assert state["current"] == old and state["pending"] == new
    event = AuditEvent.objects.get(action="rewards.wallet_change")
    assert event.details["previous"] == old.address and event.details["address"] == new.address
    # An epoch closed before the change takes effect still pays the old wallet.
    grant(charlie, OPEN)
    services.fee_settle(inference_id="w-1", payer=charlie, model_owner=alice, fee=1000,
                        contributor_shares={dora.pk: 10**6}, model_version_hash="ee" * 32, receipt_id=None)
    epoch = services.epoch_close()
    assert list(epoch.allocations.filter(user=dora).values_list("address", flat=True)) == [old.address]
