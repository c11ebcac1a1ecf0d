"""Epoch close against the real in-process chain: freeze, tree, funding, root, claims, crash and resume."""

import re

import pytest

from accounts.models import AuditEvent
from rewards import ledger, services
from rewards.chain import ChainSendError, verify_proof
from rewards.models import AccountKind, Epoch, EpochState, ReconciliationIssue
from rewards.selectors import claims_for

OPEN = 10**18
MODEL = "cd" * 32


@pytest.fixture
def earners(chain, dora, alice, charlie, staff, grant, link_wallet):
    """Charlie pays; alice owns the model; dora and staff contributed. Dora and alice have wallets."""
    grant(charlie, 100 * OPEN)
    link_wallet(dora, chain.wallets[0])
    link_wallet(alice, chain.wallets[1])
    for n in range(3):
        services.fee_settle(inference_id=f"inf-{n}", payer=charlie, model_owner=alice, fee=7 * OPEN + n,
                            contributor_shares={dora.pk: 700_001, staff.pk: 299_999}, model_version_hash=MODEL,
                            receipt_id=f"r{n}")
    return dora, alice, staff


def _claim(chain, user, account):
    [claim] = claims_for(user=user)
    chain.distributor.claim(claim["address"], claim["cumulative_amount"],
                            [bytes.fromhex(p[2:]) for p in claim["proof"]], sender=account)
    return claim


def test_epoch_close_publishes_and_claims_move_pending_to_paid(chain, earners):
    dora, alice, staff = earners
    epoch = services.epoch_close()
    assert epoch.state == EpochState.CLOSED and epoch.number == 1
    # Staff has no wallet: their earnings keep accruing for a later epoch.
    assert ledger.balance(kind=AccountKind.EARNINGS, user=staff) > 0
    dora_pending = ledger.balance(kind=AccountKind.PENDING, user=dora)
    assert dora_pending > 0 and ledger.balance(kind=AccountKind.EARNINGS, user=dora) == 0
    assert chain.distributor.epoch() == 1 and "0x" + chain.distributor.merkle_root().hex() == epoch.root
    assert chain.token.balance_of(chain.distributor.address) == epoch.total_cumulative == epoch.increase
    claim = _claim(chain, dora, chain.wallets[0])
    assert verify_proof(epoch.root, claim["address"], claim["cumulative_amount"], claim["proof"])
    assert chain.token.balance_of(chain.wallets[0].address) == dora_pending
    assert services.claims_index() == 1
    assert services.claims_index() == 0  # exactly once
    assert ledger.balance(kind=AccountKind.PENDING, user=dora) == 0
    assert ledger.balance(kind=AccountKind.PAID_OUT, user=dora) == dora_pending
    assert ledger.ledger_check().ok
    assert services.chain_reconcile() == []
    assert services.epoch_close() is None  # nothing new to pay


def test_second_epoch_pays_only_the_increase(chain, earners, charlie):
    dora, alice, _ = earners
    services.epoch_close()
    _claim(chain, dora, chain.wallets[0])
    first_paid = chain.token.balance_of(chain.wallets[0].address)
    services.fee_settle(inference_id="inf-later", payer=charlie, model_owner=alice, fee=OPEN,
                        contributor_shares={dora.pk: 10**6}, model_version_hash=MODEL, receipt_id=None)
    epoch = services.epoch_close()
    assert epoch.number == 2
    _claim(chain, dora, chain.wallets[0])
    assert chain.token.balance_of(chain.wallets[0].address) - first_paid == 6 * OPEN // 10
    services.claims_index()
    assert ledger.ledger_check().ok and services.chain_reconcile() == []


def test_close_killed_between_funding_and_root_resumes_and_pays_once(chain, earners, monkeypatch, caplog):
    dora, alice, _ = earners
    real_post_root = services.EPOCH_STEPS[EpochState.FUNDED]

    def crash(epoch, client):
        raise RuntimeError("worker killed")

    monkeypatch.setitem(services.EPOCH_STEPS, EpochState.FUNDED, crash)
    with pytest.raises(RuntimeError, match="worker killed"):
        services.epoch_close()
    epoch = Epoch.objects.get()
    # An unexpected error is stored as a generic message with an error id; its text is only in the logs.
    assert epoch.state == EpochState.FUNDED and "worker killed" not in epoch.last_error
    error_id = re.search(r"error id ([0-9a-f]{12})", epoch.last_error).group(1)
    assert epoch.last_error.startswith("funded: An unexpected error stopped this job")
    assert any(error_id in r.getMessage() and "worker killed" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    funded = chain.token.balance_of(chain.distributor.address)
    assert funded == epoch.total_cumulative and chain.distributor.epoch() == 0

    monkeypatch.setitem(services.EPOCH_STEPS, EpochState.FUNDED, real_post_root)
    epoch = services.epoch_close()
    assert epoch.state == EpochState.CLOSED
    assert chain.token.balance_of(chain.distributor.address) == funded  # not funded twice
    assert chain.distributor.epoch() == 1

    treasury_before = chain.token.balance_of(chain.treasury.address)
    assert services.epoch_close() is None  # a second run is a no-op
    assert chain.token.balance_of(chain.treasury.address) == treasury_before
    assert Epoch.objects.count() == 1

    for user, account in ((dora, chain.wallets[0]), (alice, chain.wallets[1])):
        pending = ledger.balance(kind=AccountKind.PENDING, user=user)
        _claim(chain, user, account)
        assert chain.token.balance_of(account.address) == pending
    services.claims_index()
    assert chain.token.balance_of(chain.distributor.address) == 0
    assert ledger.ledger_check().ok and services.chain_reconcile() == []


def test_a_close_that_keeps_failing_stops_with_a_reason_until_an_admin_runs_it(chain, earners, monkeypatch, settings):
    _, _, staff = earners
    settings.JOB_MAX_ATTEMPTS = 2
    real_post_root = services.EPOCH_STEPS[EpochState.FUNDED]

    def unreachable(epoch, client):
        raise ChainSendError("the node at rpc.example refused the transaction")

    monkeypatch.setitem(services.EPOCH_STEPS, EpochState.FUNDED, unreachable)
    for _ in range(2):  # the first run gets to `funded`; it and one more fail there
        with pytest.raises(ChainSendError):
            services.epoch_close()
    # A chain error is expected: the admin sees it as it is.
    assert Epoch.objects.get().last_error == "funded: the node at rpc.example refused the transaction"
    with pytest.raises(services.EpochBlocked, match="stopped after 2 attempts"):
        services.epoch_close()
    epoch = Epoch.objects.get()
    assert epoch.state == EpochState.FUNDED and epoch.lease_owner == "" and chain.distributor.epoch() == 0
    assert epoch.last_error.startswith("The close of epoch 1 stopped after 2 attempts: none of them got past the "
                                       "funded step. Fix the cause")
    assert epoch.last_error.endswith("Last error: funded: the node at rpc.example refused the transaction")
    assert AuditEvent.objects.filter(action="rewards.epoch_close_stopped").count() == 1

    # Fixed; the automatic runs (beat, task retries) still leave it to a person...
    monkeypatch.setitem(services.EPOCH_STEPS, EpochState.FUNDED, real_post_root)
    with pytest.raises(services.EpochBlocked):
        services.epoch_close()
    assert chain.distributor.epoch() == 0 and Epoch.objects.get().last_error == epoch.last_error
    # ...and an admin running it again (the admin's "Close an epoch now") closes it.
    epoch = services.epoch_close(actor=staff)
    assert epoch.state == EpochState.CLOSED and epoch.last_error == "" and chain.distributor.epoch() == 1
    assert ledger.ledger_check().ok and services.chain_reconcile() == []


def test_crash_after_the_funding_transfer_before_recording_does_not_fund_twice(chain, earners, monkeypatch):
    real_fund = services.EPOCH_STEPS[EpochState.TREE_BUILT]

    def fund_then_die(epoch, client):
        real_fund(epoch, client)
        Epoch.objects.filter(pk=epoch.pk).update(state=EpochState.TREE_BUILT, funding_tx_hash="")
        raise RuntimeError("died before recording")

    monkeypatch.setitem(services.EPOCH_STEPS, EpochState.TREE_BUILT, fund_then_die)
    with pytest.raises(RuntimeError):
        services.epoch_close()
    monkeypatch.setitem(services.EPOCH_STEPS, EpochState.TREE_BUILT, real_fund)
    epoch = services.epoch_close()
    assert chain.token.balance_of(chain.distributor.address) == epoch.total_cumulative
    assert services.chain_reconcile() == []


def test_relay_pays_accounts_above_the_threshold(chain, earners, settings):
    dora, alice, _ = earners
    settings.REWARDS_RELAY_THRESHOLD = 8 * OPEN
    epoch = services.epoch_close()
    assert epoch.relayed_accounts == 1  # dora (about 8.8 OPEN); alice (about 6.3 OPEN) is below
    services.claims_index()
    assert ledger.balance(kind=AccountKind.PENDING, user=dora) == 0
    assert chain.token.balance_of(chain.wallets[0].address) == ledger.balance(kind=AccountKind.PAID_OUT, user=dora)
    assert ledger.balance(kind=AccountKind.PENDING, user=alice) > 0


def test_claim_for_me_relay(chain, earners):
    dora, _, _ = earners
    services.epoch_close()
    result = services.claim_relay(user=dora)
    assert result["relayed"] == 1
    assert chain.token.balance_of(chain.wallets[0].address) == ledger.balance(kind=AccountKind.PAID_OUT, user=dora) > 0


def test_reconcile_reports_disagreements_without_patching(chain, earners):
    services.epoch_close()
    chain.token.transfer(chain.distributor.address, 5)  # someone funds the distributor behind our back
    before = ledger.ledger_check()
    issues = services.chain_reconcile()
    assert [issue.kind for issue in issues] == ["funding_mismatch"]
    assert services.chain_reconcile()[0].pk == issues[0].pk  # reported once while open
    assert ReconciliationIssue.objects.count() == 1
    assert ledger.ledger_check().totals == before.totals


def test_restarted_chain_is_detected_and_reported(chain, earners):
    from rewards.chain import ChainClient
    from rewards.chainio import deployment_ensure, set_chain_client

    services.epoch_close()
    fresh = ChainClient.in_process()
    set_chain_client(fresh)
    try:
        new = deployment_ensure(client=fresh)
        assert new.pk != chain.deployment.pk
        issue = ReconciliationIssue.objects.get(kind="chain_reset")
        assert "Nothing was re-posted" in issue.detail
    finally:
        set_chain_client(chain.client)
