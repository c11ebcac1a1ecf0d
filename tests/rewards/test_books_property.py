"""Property: after any sequence of deposits, grants, inferences (settled at once, or recorded and held
for a later batch), settlement batches, epoch closes and claims, the books balance and the ledger agrees
with the chain."""

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transaction_support import rollback_block

from rewards import ledger, selectors, services
from rewards.models import AccountKind, Epoch, EpochState, Settlement
from rewards.selectors import claims_for

OPEN = 10**18
USERS = 5  # users 0-3 get wallets; user 4 never links one

deposits = st.tuples(st.just("deposit"), st.integers(0, 3), st.integers(1, 50 * OPEN))
grants = st.tuples(st.just("grant"), st.integers(0, USERS - 1), st.integers(1, 50 * OPEN))
inferences = st.tuples(
    st.sampled_from(["infer", "record"]), st.integers(0, USERS - 1), st.integers(0, USERS - 1),
    st.integers(1, 20 * OPEN), st.dictionaries(st.integers(0, USERS - 1), st.integers(1, 1000), max_size=4),
)
settles = st.tuples(st.just("settle"), st.integers(1, 4))
retries = st.tuples(st.just("retry"), st.integers(0, 13))  # the same inference id again
closes = st.tuples(st.just("close"))
claims = st.tuples(st.just("claim"), st.integers(0, 3))
operations = st.lists(st.one_of(deposits, grants, inferences, settles, retries, closes, claims), min_size=1,
                      max_size=16)


def _ppm(weights: dict, users) -> dict:
    if not weights:
        return {}
    total = sum(weights.values())
    shares = {users[i].pk: w * 1_000_000 // total for i, w in weights.items()}
    first = min(shares)
    shares[first] += 1_000_000 - sum(shares.values())
    return shares


@pytest.fixture
def world(chain, make_user, link_wallet):
    """Five users, four with linked wallets holding 200 OPEN each (set up once for all examples)."""
    users = [make_user(f"user{i}") for i in range(USERS)]  # outside the cast: anonymous payers and earners
    for user, account in zip(users, chain.wallets[:4]):
        link_wallet(user, account)
        chain.token.transfer(account.address, 200 * OPEN, sender=chain.treasury)
    return users


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_books_balance_and_agree_with_the_chain(chain, world, ops):
    # Each example starts from the same world: the chain reverts to a snapshot, the database rolls back.
    snapshot = chain.client.snapshot()
    try:
        with rollback_block():
            _run(chain, world, ops)
            transaction.set_rollback(True)
    finally:
        chain.client.revert_to_snapshot(snapshot)


def _run(chain, users, ops):
    tag = "p"
    wallets = chain.wallets[:4]
    charged = {}  # inference id -> the call that charged it
    for n, op in enumerate(ops):
        kind = op[0]
        if kind == "deposit":
            chain.token.transfer(chain.deployment.deposit_address, op[2], sender=wallets[op[1]])
            services.deposits_index()
        elif kind == "grant":
            services.credit_grant(actor=None, user=users[op[1]], amount=op[2], reason="property test")
        elif kind in ("infer", "record"):
            payer, owner, fee, weights = users[op[1]], users[op[2]], op[3], op[4]
            call = dict(inference_id=f"{tag}-{n}", payer=payer, model_owner=owner, fee=fee,
                        contributor_shares=_ppm(weights, users), model_version_hash="ff" * 32, receipt_id=None)
            before = (ledger.ledger_check().totals, selectors.credit_balance(user=payer))
            try:
                if kind == "infer":
                    services.fee_settle(**call)
                else:
                    services.fee_record(**call, settle_soon=False)
                charged[call["inference_id"]] = call
            except services.InsufficientCredit:
                assert (ledger.ledger_check().totals, selectors.credit_balance(user=payer)) == before
        elif kind == "settle":
            services.fee_settle_batch(limit=op[1])
        elif kind == "retry":
            call = charged.get(f"{tag}-{op[1]}")
            if call is not None:
                before = (ledger.ledger_check().totals, selectors.credit_balance(user=call["payer"]))
                services.fee_record(**call, settle_soon=False)
                assert (ledger.ledger_check().totals, selectors.credit_balance(user=call["payer"])) == before
        elif kind == "close":
            services.epoch_close()
        elif kind == "claim":
            for claim in claims_for(user=users[op[1]]):
                if claim["claimable"]:
                    chain.distributor.claim(claim["address"], claim["cumulative_amount"],
                                            [bytes.fromhex(p[2:]) for p in claim["proof"]], sender=wallets[op[1]])
            services.claims_index()

    check = ledger.ledger_check()
    assert check.ok, check.problems
    services.fees_settle_pending()
    assert Settlement.objects.count() == len(charged)  # every fee recorded is booked, each once
    check = ledger.ledger_check()
    assert check.ok, check.problems
    services.claims_index()
    funded = Epoch.objects.filter(deployment=chain.deployment).exclude(
        state__in=[EpochState.FROZEN, EpochState.TREE_BUILT]).order_by("-number").first()
    funded_total = funded.total_cumulative if funded else 0
    distributor_balance = chain.token.balance_of(chain.distributor.address)
    assert distributor_balance + chain.distributor.total_claimed() == funded_total
    for user, account in zip(users, wallets):
        assert chain.distributor.claimed(account.address) == ledger.balance(kind=AccountKind.PAID_OUT, user=user)
    assert services.chain_reconcile() == []
