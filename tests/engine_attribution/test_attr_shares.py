"""The share policy (shares.py): BH discovery of credit groups, credit inside groups, accounts as sums of
their rows, ppm exact, negative influence reported, and the result independent of account boundaries."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from attribution.engine.shares import (
    PPM,
    ScoreMap,
    SharePolicy,
    account_shares,
    bh_thresholds,
    credit_within_groups,
    discover_groups,
    largest_remainder_ppm,
    negative_influence,
)


def test_bh_thresholds_are_the_one_sided_normal_quantiles_of_the_step_up_rule():
    thresholds = bh_thresholds(8, 0.1)
    assert thresholds == pytest.approx([norm.isf(0.1 * r / 8) for r in range(1, 9)])
    assert (np.diff(thresholds) < 0).all()


def test_discovery_is_benjamini_hochberg_on_z_scores_and_keeps_the_largest_groups():
    scale = np.ones(6)
    # z = score / (|q| × σ): with |q| = 2, scores are twice the z values.
    z = np.array([5.0, 0.3, 2.2, -4.0, 1.6, 1.0])
    thresholds = bh_thresholds(6, 0.1)
    discovered, z_cut = discover_groups(2 * z, 2.0, scale, thresholds, top_groups=50)
    # Ranked z 5.0, 2.2, 1.6, 1.0 against thresholds 2.13, 1.83, 1.64, 1.50: ranks 1 and 2 pass, 1.6 misses by 0.04.
    assert discovered.tolist() == [0, 2] and z_cut == pytest.approx(norm.isf(0.1 * 2 / 6))
    looser, _ = discover_groups(2 * z, 2.0, scale, bh_thresholds(6, 0.2), top_groups=50)
    assert looser.tolist() == [0, 2, 4]  # at FDR 0.2 the third threshold is 1.28
    top_one, _ = discover_groups(2 * z, 2.0, scale, thresholds, top_groups=1)
    assert top_one.tolist() == [0]
    nothing, cut = discover_groups(np.full(6, 0.1), 1.0, scale, thresholds, top_groups=50)
    assert nothing.size == 0 and cut is None
    # A group with no credit (σ = inf) is never discovered, whatever its score.
    blocked, _ = discover_groups(np.array([100.0, 0.0]), 1.0, np.array([np.inf, 1.0]), bh_thresholds(2, 0.1), 50)
    assert blocked.size == 0


def test_credit_inside_a_group_follows_the_rows_positive_scores():
    credit = credit_within_groups(np.array([0, 0, 0, 1, 1]), np.array([6.0, 2.0]), np.array([3.0, 1.0, -2.0, 0.5, 0.5]))
    assert credit.tolist() == pytest.approx([4.5, 1.5, 0.0, 1.0, 1.0])


def test_accounts_receive_the_sum_of_their_rows_and_ppm_is_exact():
    contributors = ["alice", "bob", "carol"]
    owner = np.array([0, 0, 1, 2, 2])
    result = account_shares(row_positions=np.arange(5), row_credit=np.array([1.0, 2.0, 0.0, 0.5, 0.5]),
                            row_owner=owner, contributors=contributors, row_ids=[f"r{i}" for i in range(5)],
                            rows_per_contributor=1, negative={})
    assert result.shares == pytest.approx({"alice": 0.75, "carol": 0.25})
    assert list(result.shares) == ["alice", "carol"] and sum(result.shares_ppm.values()) == PPM
    assert result.rows == {"alice": [("r1", pytest.approx(0.5))], "carol": [("r3", pytest.approx(0.125))]}
    empty = account_shares(row_positions=np.arange(2), row_credit=np.zeros(2), row_owner=owner,
                           contributors=contributors, row_ids=["r0", "r1"], rows_per_contributor=1, negative={})
    assert empty.is_empty and empty.reason


def test_paid_rows_list_each_accounts_best_rows_in_share_order():
    contributors = ["alice", "bob", "carol", "dave"]
    owner = np.array([1, 3, 1, 1, 3, 0])
    result = account_shares(row_positions=np.arange(6), row_credit=np.array([1.0, 4.0, 3.0, 2.0, 1.0, 0.0]),
                            row_owner=owner, contributors=contributors, row_ids=[f"r{i}" for i in range(6)],
                            rows_per_contributor=2, negative={}, contributor_scores=np.array([0.0, 5.0, 0.0, 7.0]))
    # bob 6/11 first (rows r2, r3 best first; r0 beyond two rows), dave 5/11; alice's only row earned nothing.
    assert list(result.rows) == ["bob", "dave"] == list(result.shares) == list(result.shares_ppm)
    assert result.rows["dave"] == [("r1", pytest.approx(4 / 11)), ("r4", pytest.approx(1 / 11))]
    assert dict(result.rows.items()) == {"bob": [("r2", pytest.approx(3 / 11)), ("r3", pytest.approx(2 / 11))],
                                         "dave": [("r1", pytest.approx(4 / 11)), ("r4", pytest.approx(1 / 11))]}
    assert isinstance(result.shares_ppm["bob"], int) and result.shares_ppm["bob"] + result.shares_ppm["dave"] == PPM
    assert result.scores == {"bob": 5.0, "dave": 7.0} and "alice" not in result.rows
    with pytest.raises(KeyError):
        result.rows["alice"]


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 60), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_a_set_of_rows_earns_the_same_however_its_owner_splits_or_merges_accounts(rows, accounts, seed):
    """Partition invariance: move one contributor's rows into ``accounts`` new accounts (or merge two
    accounts): the total float share of those rows is unchanged, and every other account's share too."""
    rng = np.random.default_rng(seed)
    credit = np.maximum(rng.standard_normal(rows), 0) * rng.choice([1e-6, 1.0, 1e6])
    credit[0] += 1.0
    owner = rng.integers(0, 4, rows)
    contributors = [f"c{i}" for i in range(4 + accounts)]
    row_ids = [f"r{i}" for i in range(rows)]

    def shares(owners):
        return account_shares(row_positions=np.arange(rows), row_credit=credit, row_owner=owners,
                              contributors=contributors, row_ids=row_ids, rows_per_contributor=3, negative={}).shares

    before = shares(owner)
    split = owner.copy()
    mine = np.flatnonzero(owner == 0)
    split[mine] = 4 + rng.integers(0, accounts, mine.size)  # contributor c0's rows over new accounts
    after = shares(split)
    total_after = sum(v for c, v in after.items() if c in {f"c{4 + a}" for a in range(accounts)})
    assert total_after == pytest.approx(before.get("c0", 0.0), abs=1e-12)
    for other in ("c1", "c2", "c3"):
        assert after.get(other, 0.0) == pytest.approx(before.get(other, 0.0), abs=1e-12)
    merged = np.where(owner == 2, 1, owner)  # c2 merges into c1
    assert shares(merged).get("c1", 0.0) == pytest.approx(before.get("c1", 0.0) + before.get("c2", 0.0), abs=1e-12)


def test_negative_influence_is_reported_per_contributor_lazily():
    result = negative_influence(["a", "b", "c"], np.array([-1.0, 2.0, -0.5]))
    assert result == {"a": 1.0, "c": 0.5} and result.total() == pytest.approx(1.5)


def test_share_policy_refuses_nonsense():
    for bad in ({"fdr": 0.0}, {"fdr": 1.0}, {"top_groups": 0}, {"rows_per_contributor": 0}):
        with pytest.raises(ValueError):
            SharePolicy(**bad)


def test_largest_remainder_ppm_is_exact_and_deterministic():
    parts = largest_remainder_ppm(np.array([1.0, 1.0, 1.0]))
    assert parts.tolist() == [333_334, 333_333, 333_333]
    assert largest_remainder_ppm(np.array([0.1, 0.7, 0.2])).sum() == PPM


def test_score_map_reads_like_a_dict_and_rejects_unknown_ids():
    ids = ["a", "b", "c", "d"]
    full = ScoreMap.full(ids, np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32))
    assert dict(full) == {"a": 0.5, "b": -1.0, "c": 2.0, "d": 0.0} == full
    assert "c" in full and "z" not in full and len(full) == 4
    with pytest.raises(KeyError):
        full["z"]
    picked = ScoreMap(ids, np.array([3, 1]), np.array([7.0, 9.0]))
    assert list(picked.items()) == [("d", 7.0), ("b", 9.0)] and picked.to_dict() == {"d": 7.0, "b": 9.0}
    assert picked != {"d": 7.0} and picked != ["d", "b"]
    with pytest.raises(ValueError, match="same shape"):
        ScoreMap(ids, np.array([0, 1]), np.array([1.0]))


def test_score_map_items_behave_like_dict_items():
    picked = ScoreMap(["a", "b", "c"], np.array([2, 0]), np.array([1.5, -2.0]))
    assert len(picked.items()) == 2 and ("c", 1.5) in picked.items() and ("a", 1.5) not in picked.items()
    assert list(picked.values()) == [1.5, -2.0] and list(picked.keys()) == ["c", "a"]
