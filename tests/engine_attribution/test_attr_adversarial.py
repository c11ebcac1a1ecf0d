"""Adversaries against the payout path, at tiny scale (issue #16, part 3; bench/attribution_adversarial.py
measures the same cases on MiniLM).

Every case goes through the path the platform pays by: ``build_index(..., eval_inputs=...)`` on a tiny
BERT + LoRA trained on topical rows, ``Attributor(...).attribute(with_predicted_labels(...))``, and the
pool a query actually splits: the attribution's shares, or ``index.fallback_shares()`` when it is empty.
Asserted here are the properties that hold exactly (or robustly) by construction:

* partition invariance: a set of rows earns the same total whether held in 1, 2, 5 or 50 accounts, and
  merging two accounts changes nobody's money, on paid and on empty (fallback) queries alike;
* first come keeps the credit: an exact copy of a row, in the same duplicate cluster and accepted later,
  earns nothing, whoever uploads it;
* junk spread over one-row accounts earns no more than the same junk in one account;
* rows flagged harmful on the evaluation split earn nothing.
"""

import pytest
import torch
from attr_tiny_models import (
    random_classification_inputs,
    slice_inputs,
    tiny_classifier,
    topical_classification_inputs,
    train,
)

from attribution.engine.build import IndexConfig, TrainingBatch
from attribution.engine.build_pass import build_index
from attribution.engine.projection import ProjectionSpec
from attribution.engine.query import Attributor, with_predicted_labels
from attribution.engine.shares import SharePolicy

N_ROWS = 120
TOPICS = 12
BIG_TOPICS = 5  # rows of topics 0..4 (50 rows) belong to one large contributor


def config(seed=7):
    # The platform's kind of index (lineage/settings.py): orthogonal projection, k=1024, true Fisher.
    return IndexConfig(ProjectionSpec(seed=seed, k=1024, kind="orthogonal"), curvature="fisher", damping_ratio=0.01)


def batches(inputs, account, cluster=None, order=None, batch_size=16, prefix="row"):
    n = inputs["labels"].shape[0]
    out = []
    for start in range(0, n, batch_size):
        rows = list(range(start, min(n, start + batch_size)))
        out.append(TrainingBatch(slice_inputs(inputs, rows), [f"{prefix}{i}" for i in rows], [account(i) for i in rows],
                                 cluster_ids=[cluster(i) for i in rows] if cluster else None,
                                 accepted_order=[order(i) for i in rows] if order else None))
    return out


def pay(model, training_batches, path, queries, eval_inputs):
    """(index, per query: the shares that pay (the attribution's, or the fallback when empty), empty flags)."""
    index = build_index(model, training_batches, path, config(), model_hash="sha256:tiny", eval_inputs=eval_inputs)
    attributions = Attributor(model, index, SharePolicy()).attribute(with_predicted_labels(model, queries))
    fallback = index.fallback_shares()
    paid = [a.shares if not a.shares.is_empty else fallback for a in attributions]
    return index, paid, [a.shares.is_empty for a in attributions]


def total(shares, accounts):
    return sum(value for account, value in shares.shares.items() if account in accounts)


def topic(i):
    return i % TOPICS


def honest_account(i):
    return "big" if topic(i) < BIG_TOPICS else f"c{topic(i)}"


@pytest.fixture(scope="module")
def trained():
    """Tiny classifier trained on topical rows; eval split and queries about the same topics, plus random-token
    queries that no group of rows explains (their attributions come out empty: the fallback pays)."""
    data = topical_classification_inputs(N_ROWS, TOPICS, seed=5, topic_fraction=0.8)
    eval_inputs = topical_classification_inputs(64, TOPICS, seed=31, topic_fraction=0.8)
    topical = topical_classification_inputs(24, TOPICS, seed=21, topic_fraction=0.8)
    noise = random_classification_inputs(8, seed=41)
    queries = {key: torch.cat([topical[key], noise[key]]) for key in topical}
    model = train(tiny_classifier(seed=1), data, epochs=4)
    evals = [slice_inputs(eval_inputs, slice(s, s + 32)) for s in range(0, 64, 32)]
    return model, data, queries, evals


@pytest.fixture(scope="module")
def honest_payouts(trained, tmp_path_factory):
    model, data, queries, evals = trained
    return pay(model, batches(data, honest_account), tmp_path_factory.mktemp("honest") / "idx", queries, evals)


@pytest.mark.parametrize("accounts", [2, 5, 50])
def test_a_set_of_rows_earns_the_same_in_one_or_many_accounts(trained, honest_payouts, tmp_path, accounts):
    model, data, queries, evals = trained
    _, one, empty = honest_payouts
    big_rows = [i for i in range(N_ROWS) if topic(i) < BIG_TOPICS]
    alias = {i: f"big~{j % accounts}" for j, i in enumerate(big_rows)}
    _, split, split_empty = pay(model, batches(data, lambda i: alias.get(i, honest_account(i))), tmp_path / "idx",
                                queries, evals)
    assert split_empty == empty
    assert any(empty) and not all(empty)  # both paths are exercised: attribution and fallback
    assert sum(total(s, {"big"}) for s in one) > 0.05  # the set is really paid
    held = {f"big~{j}" for j in range(accounts)}
    for whole, parts in zip(one, split):
        assert total(parts, held) == pytest.approx(total(whole, {"big"}), abs=1e-6)
        # Everybody else is untouched too.
        for account, value in whole.shares.items():
            if account != "big":
                assert parts.shares.get(account, 0.0) == pytest.approx(value, abs=1e-6)


def test_merging_two_accounts_changes_nothing(trained, honest_payouts, tmp_path):
    model, data, queries, evals = trained
    _, before, empty = honest_payouts
    merged_account = {"c5": "c5+c6", "c6": "c5+c6"}
    _, after, after_empty = pay(model, batches(data, lambda i: merged_account.get(honest_account(i), honest_account(i))),
                                tmp_path / "idx", queries, evals)
    assert after_empty == empty and any(empty)
    assert sum(total(s, {"c5", "c6"}) for s in before) > 0
    for b, a in zip(before, after):
        assert a.shares.get("c5+c6", 0.0) == pytest.approx(total(b, {"c5", "c6"}), abs=1e-6)
        for account in set(b.shares) - {"c5", "c6"}:
            assert a.shares.get(account, 0.0) == pytest.approx(b.shares[account], abs=1e-6)
        assert set(a.shares) - {"c5+c6"} == set(b.shares) - {"c5", "c6"}


def test_a_later_exact_copy_in_the_same_cluster_earns_nothing(trained, honest_payouts, tmp_path):
    model, data, queries, evals = trained
    index = honest_payouts[0]
    weight = dict(zip(index.row_ids, index.credit().row_credit.tolist()))
    # The row of contributor c7 that earns the most on its own (value on the eval split, not a rewording).
    copied = max((i for i in range(N_ROWS) if topic(i) == 7), key=lambda i: weight[f"row{i}"])
    with_copy = {key: torch.cat([value, value[copied : copied + 1]]) for key, value in data.items()}
    query = {key: torch.cat([value[copied : copied + 1], queries[key]]) for key, value in data.items()}

    def account(i):
        return "copier" if i == N_ROWS else honest_account(i)

    def cluster(i):
        return "dup" if i in (copied, N_ROWS) else None

    for name, order in (("copy later", lambda i: i), ("copy first", lambda i: -1 if i == N_ROWS else i)):
        index, paid, empty = pay(model, batches(with_copy, account, cluster, order), tmp_path / name, query, evals)
        credited = dict(zip(index.row_ids, index.credit().row_credit.tolist()))
        copy_earns = sum(total(s, {"copier"}) for s in paid)
        original_rows = sum(value for s in paid for rows in s.rows.values() for row, value in rows
                            if row == f"row{copied}")
        if name == "copy later":
            # The original keeps a weight (its value and novelty may trim it below 1); the copy has none.
            assert credited[f"row{N_ROWS}"] == 0 and credited[f"row{copied}"] > 0
            assert copy_earns == 0
            assert not empty[0] and paid[0].shares.get(honest_account(copied), 0) > 0  # the original is paid
        else:  # first come keeps the credit, whoever comes first: the order alone decides it
            assert credited[f"row{N_ROWS}"] > 0 and credited[f"row{copied}"] == 0
            assert original_rows == 0 and copy_earns > 0


def test_junk_in_one_row_accounts_earns_no_more_than_in_one_account(trained, tmp_path):
    _, data, queries, evals = trained
    junk = random_classification_inputs(24, seed=77)  # random tokens, random labels
    training = {key: torch.cat([data[key], junk[key]]) for key in data}
    model = train(tiny_classifier(seed=1), training, epochs=4)
    spread = {f"junk{j}" for j in range(24)}
    earned = {}
    for name, account in (("one", lambda i: "junk" if i >= N_ROWS else honest_account(i)),
                          ("spread", lambda i: f"junk{i - N_ROWS}" if i >= N_ROWS else honest_account(i))):
        _, paid, _ = pay(model, batches(training, account), tmp_path / name, queries, evals)
        earned[name] = sum(total(s, spread | {"junk"}) for s in paid)
    assert earned["spread"] <= earned["one"] + 1e-6


def test_rows_flagged_harmful_earn_nothing(trained, tmp_path):
    _, data, queries, evals = trained
    flipped = [i for i in range(N_ROWS) if i % 10 == 3]  # 12 rows, one per topic, with a wrong label
    labels = data["labels"].clone()
    labels[flipped] = (labels[flipped] + 1) % 3
    noisy = {**data, "labels": labels}
    model = train(tiny_classifier(seed=1), noisy, epochs=6)

    def account(i):
        return f"flip{i}" if i in flipped else honest_account(i)

    index, paid, empty = pay(model, batches(noisy, account), tmp_path / "idx", queries, evals)
    harmful = set(index.manifest["credit"]["harmful_rows"])
    assert harmful & {f"row{i}" for i in flipped}  # the valuation finds flipped rows
    credit = dict(zip(index.row_ids, index.credit().row_credit.tolist()))
    assert all(credit[row] == 0 for row in harmful)
    flagged_accounts = {account(int(row[3:])) for row in harmful}
    only_flagged = {a for a in flagged_accounts if a.startswith("flip")}
    for shares in [*paid, index.fallback_shares()]:
        assert total(shares, only_flagged) == 0
        assert not harmful & {row for rows in shares.rows.values() for row, value in rows if value > 0}


def test_low_value_rule_nets_a_contributors_rows():
    """``credit.low_value_contributors``: the sum of a contributor's row values against as many typical rows."""
    import numpy as np

    from attribution.engine import credit

    values = np.array([1.0, 1.2, 0.8, 1.0,  # honest: worth a typical row each
                       2.0, -1.9, -0.5,  # lucky row + harmful rows: together less than a tenth of three rows
                       0.05])  # one tiny row
    owner = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    held, efficiency = credit.low_value_contributors(values, owner, 5, ratio=0.1, net_errors=np.full(5, 1e-9))
    assert held.tolist() == [2, 3]  # contributor 4 has no rows: never held
    assert efficiency[0] == pytest.approx(1.1 / np.median(values))
    assert efficiency[2] == pytest.approx(-0.4 / 3 / np.median(values))
    assert np.isinf(efficiency[4])
    # Merging accounts nets them together: the honest and the bad rows in one account are not held.
    merged, _ = credit.low_value_contributors(values, np.array([0, 0, 1, 1, 0, 0, 0, 3]), 4, ratio=0.1,
                                              net_errors=np.full(4, 1e-9))
    assert merged.tolist() == [3]
    # Noise: a shortfall within z standard errors of the line holds nobody.
    errors = np.full(5, 1e-9)
    errors[2] = 1.0
    assert credit.low_value_contributors(values, owner, 5, ratio=0.1, net_errors=errors)[0].tolist() == [3]
    # Too few evaluation queries to trust a standard error: nobody is held.
    assert credit.low_value_contributors(values, owner, 5, ratio=0.1, net_errors=np.full(5, 1e-9),
                                         queries=credit.MIN_VALUE_QUERIES - 1)[0].size == 0
    # Without measured errors (an index built before them) nobody is held.
    assert credit.low_value_contributors(values, owner, 5, ratio=0.1, net_errors=None)[0].size == 0
    # A model that learned nothing (median value ≤ 0) holds nobody.
    assert credit.low_value_contributors(-np.abs(values), owner, 4, ratio=0.1, net_errors=np.ones(4))[0].size == 0


def test_an_account_whose_rows_hurt_together_is_held_and_honest_accounts_are_not(trained, tmp_path):
    """24 topical rows with wrong labels in one account: the build's net-value rule (efficiency far below half a
    typical row, beyond the noise) names that account and no honest one."""
    from attribution.engine import credit

    _, data, queries, evals = trained
    wrong = topical_classification_inputs(24, TOPICS, seed=99, topic_fraction=0.8)
    wrong["labels"] = (wrong["labels"] + 1) % 3
    training = {key: torch.cat([data[key], wrong[key]]) for key in data}
    model = train(tiny_classifier(seed=1), training, epochs=4)

    def account(i):
        return "wrong-labels" if i >= N_ROWS else honest_account(i)

    index, _, _ = pay(model, batches(training, account), tmp_path / "idx", queries, evals)
    tables = index.credit()
    assert tables.contributor_value_se is not None and (tables.contributor_value_se > 0).all()
    held, efficiency = credit.low_value_contributors(tables.row_values, tables.row_owner, len(index.contributors),
                                                     ratio=0.5, net_errors=tables.contributor_value_se,
                                                     queries=index.manifest["credit"]["value_queries"])
    assert {index.contributors[p] for p in held} == {"wrong-labels"}
    assert efficiency[index.contributors.index("wrong-labels")] < 0
