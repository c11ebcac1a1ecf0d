"""Issue #22, item 6: "Claim for me" queues a relay only when something is claimable (and says why not
otherwise), answers the POST with a redirect, and leaves the chain work to the `chain` queue (on commit)."""

import pytest

from rewards import ledger, services
from rewards.models import AccountKind, ClaimRelay, RelayState
from rewards.services import claims

OPEN = 10**18
MODEL = "ab" * 32


def _earn(dora, alice, charlie, grant, fee=10 * OPEN, n=1):
    grant(charlie, fee)
    services.fee_settle(inference_id=f"relay-{n}", payer=charlie, model_owner=alice, fee=fee,
                        contributor_shares={dora.pk: 10**6}, model_version_hash=MODEL)


@pytest.fixture
def claimable(chain, dora, alice, charlie, grant, link_wallet):
    link_wallet(dora, chain.wallets[0])
    _earn(dora, alice, charlie, grant)
    services.epoch_close()
    return dora


def test_nothing_earned_yet_says_so_and_queues_nothing(chain, client, dora, django_capture_on_commit_callbacks):
    client.force_login(dora)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post("/rewards/claim/", {"relay": "1"})
    assert response.status_code == 302 and response.url == "/rewards/claim/"
    assert queued == [] and not ClaimRelay.objects.exists()
    page = client.get(response.url).content.decode()
    assert "Nothing to claim" in page and "not earned any OPEN yet" in page
    assert "queued" not in page


def test_earnings_waiting_for_the_epoch_say_so(chain, client, dora, alice, charlie, grant, link_wallet,
                                               django_capture_on_commit_callbacks):
    link_wallet(dora, chain.wallets[0])
    _earn(dora, alice, charlie, grant)
    client.force_login(dora)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post("/rewards/claim/", {"relay": "1"}, follow=True)
    assert queued == [] and not ClaimRelay.objects.exists()
    assert "Nothing to claim yet" in response.content.decode() and "next epoch" in response.content.decode()


def test_a_claim_is_queued_on_commit_and_its_status_comes_from_the_database(
        claimable, chain, client, django_capture_on_commit_callbacks):
    client.force_login(claimable)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post("/rewards/claim/", {"relay": "1"})
    assert response.status_code == 302 and response.url == "/rewards/claim/"
    # Nothing was sent in the request: one relay waits for the chain worker, queued on commit.
    assert len(queued) == 1
    relay = ClaimRelay.objects.get(user=claimable)
    assert (relay.state, relay.amount) == (RelayState.QUEUED, 6 * OPEN)
    assert chain.token.balance_of(chain.wallets[0].address) == 0
    page = client.get("/rewards/claim/").content.decode()
    assert 'data-testid="relay-status"' in page and "queued" in page and "6 OPEN" in page

    # A second press while it waits queues nothing more.
    with django_capture_on_commit_callbacks() as again:
        client.post("/rewards/claim/", {"relay": "1"})
    assert again == [] and ClaimRelay.objects.count() == 1

    # The worker runs it (here: the queued callback, eager): the tokens move and the page says so.
    queued[0]()
    relay.refresh_from_db()
    assert relay.state == RelayState.DONE and relay.tx_hash.startswith("0x") and relay.relayed_accounts == 1
    assert chain.token.balance_of(chain.wallets[0].address) == 6 * OPEN
    assert ledger.balance(kind=AccountKind.PAID_OUT, user=claimable) == 6 * OPEN
    page = client.get("/rewards/claim/").content.decode()
    assert f"Relayed in transaction <code>{relay.tx_hash}</code>" in page

    # Everything is claimed now: pressing again says so, and queues nothing.
    with django_capture_on_commit_callbacks() as after:
        response = client.post("/rewards/claim/", {"relay": "1"}, follow=True)
    assert after == [] and ClaimRelay.objects.count() == 1
    assert "already been claimed" in response.content.decode()


def test_reloading_the_result_page_submits_nothing(claimable, client, django_capture_on_commit_callbacks):
    client.force_login(claimable)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/rewards/claim/", {"relay": "1"})
    assert response.status_code == 302
    for _ in range(2):  # what a reload does: GET the page it was redirected to
        with django_capture_on_commit_callbacks() as queued:
            assert client.get(response.url).status_code == 200
        assert queued == []
    assert ClaimRelay.objects.count() == 1


def test_a_failed_relay_is_shown_and_can_be_asked_again(claimable, client, monkeypatch,
                                                        django_capture_on_commit_callbacks):
    def broken(**kwargs):
        raise RuntimeError("node unreachable")

    monkeypatch.setattr(claims, "claim_relay", broken)  # where claim_relay_run finds it
    client.force_login(claimable)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/rewards/claim/", {"relay": "1"})
    relay = ClaimRelay.objects.get()
    assert relay.state == RelayState.FAILED and "node unreachable" in relay.error
    assert "could not be submitted" in client.get("/rewards/claim/").content.decode()
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/rewards/claim/", {"relay": "1"})
    assert ClaimRelay.objects.filter(state=RelayState.DONE).count() == 1
