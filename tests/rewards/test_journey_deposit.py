"""Issue #22, item 1: a new account can pay for its first answers. Signing up grants the starter credit once
(through the ledger, audited); the deposit page explains how to add more and shows what was credited."""

from django.contrib.auth import get_user_model

from accounts.models import AuditEvent
from rewards import ledger, services
from rewards.models import AccountKind, CreditGrant, LedgerTransaction

OPEN = 10**18


def _sign_up(client, email="newcomer@example.org"):
    response = client.post("/accounts/signup/", {"email": email, "password1": "a-long-unusual-passphrase-22",
                                                 "password2": "a-long-unusual-passphrase-22"})
    assert response.status_code == 302, response.content.decode()[:2000]
    return get_user_model().objects.get(email=email)


def test_signing_up_grants_the_starter_credit_exactly_once(db, client, settings):
    settings.REWARDS_STARTER_GRANT_OPEN = "10"
    user = _sign_up(client)
    [grant] = CreditGrant.objects.filter(user=user)
    assert grant.amount == 10 * OPEN and grant.granted_by is None
    assert grant.transaction.kind == LedgerTransaction.Kind.GRANT
    # Double entry: the grants account paid for it.
    entries = dict(grant.transaction.entries.values_list("account__key", "amount"))
    assert entries == {"grants": -10 * OPEN, f"credit:{user.pk}": 10 * OPEN}
    assert AuditEvent.objects.filter(action="rewards.starter_grant", object_id=str(grant.pk)).count() == 1
    # Asking again (a retried signal, a second signup path) grants nothing more.
    again = services.credit_starter_grant(user=user)
    assert again.pk == grant.pk
    assert CreditGrant.objects.filter(user=user).count() == 1
    assert ledger.credit_available(user_id=user.pk) == 10 * OPEN
    assert ledger.ledger_check().ok


def test_the_starter_grant_takes_decimals_and_zero_switches_it_off(db, client, settings, charlie):
    settings.REWARDS_STARTER_GRANT_OPEN = "0.5"
    assert services.credit_starter_grant(user=charlie).amount == OPEN // 2
    settings.REWARDS_STARTER_GRANT_OPEN = "0"
    user = _sign_up(client, "nogrant@example.org")
    assert services.credit_starter_grant(user=user) is None
    assert not CreditGrant.objects.filter(user=user).exists()
    assert ledger.balance(kind=AccountKind.CREDIT, user=user) == 0


def test_deposit_page_without_a_wallet_says_to_link_one(chain, client, alice):
    client.force_login(alice)
    page = client.get("/rewards/deposit/").content.decode()
    assert chain.deployment.deposit_address in page
    assert 'data-testid="no-wallet"' in page and 'href="/rewards/wallet/"' in page
    assert 'data-testid="indexer"' in page and "not scanned yet" in page
    assert "No deposits yet" in page


def test_deposit_page_with_a_wallet_shows_the_indexer_and_what_was_credited(chain, client, alice, link_wallet, grant):
    wallet = link_wallet(alice, chain.wallets[0])
    chain.token.transfer(wallet.address, 5 * OPEN, sender=chain.treasury)
    chain.token.transfer(chain.deployment.deposit_address, 3 * OPEN // 2, sender=chain.wallets[0])
    grant(alice, OPEN // 4)
    assert services.deposits_index() == 1
    scanned = chain.deployment.cursors.get(name="deposits").next_block - 1

    client.force_login(alice)
    page = client.get("/rewards/deposit/").content.decode()
    assert chain.deployment.deposit_address in page and chain.deployment.token_address in page
    assert f'<code data-testid="wallet">{wallet.address}</code>' in page
    assert f"last block scanned <strong>{scanned}</strong>" in page
    assert "1.5 OPEN" in page and "0.25 OPEN" in page  # the deposit and the grant, in OPEN
    assert 'data-testid="credit"><data value="1.75" title="1.75 OPEN">1.75 OPEN</data>' in page


def test_the_rewards_page_and_menu_link_the_deposit_page(db, client, alice):
    assert client.get("/rewards/deposit/").status_code == 302  # log in first
    client.force_login(alice)
    page = client.get("/rewards/").content.decode()
    assert 'href="/rewards/deposit/"' in page


def test_the_starter_grant_is_off_by_default_in_production():
    """A grant per free account is a faucet (spent on one's own model it returns as earnings): DEBUG=0 defaults
    it to 0; development keeps 10."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = "from django.conf import settings; import django; django.setup(); print(settings.REWARDS_STARTER_GRANT_OPEN)"

    def default(debug: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "REWARDS_STARTER_GRANT_OPEN"}
        env.update(DJANGO_SETTINGS_MODULE="lineage.settings", DEBUG=debug, SECRET_KEY="x" * 50)
        return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                              check=True).stdout.strip().splitlines()[-1]

    assert default("0") == "0" and default("1") == "10"
