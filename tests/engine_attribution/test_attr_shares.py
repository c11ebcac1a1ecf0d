"""The share policy: non-negative, sums to one, cap holds, ppm exact, negative influence reported."""

import numpy as np
import pytest

from attribution.engine import (
    PPM,
    ScoreMap,
    SharePolicy,
    capped_normalise,
    contributor_shares,
    largest_remainder_ppm,
    row_count_shares,
)


@pytest.mark.parametrize("trial", range(20))
def test_shares_are_nonnegative_sum_to_one_and_respect_the_cap(trial):
    rng = np.random.default_rng(trial)
    n = int(rng.integers(5, 400))
    scores = rng.standard_normal(n) * rng.choice([1e-6, 1.0, 1e4])
    scores[: int(rng.integers(1, 4))] *= 30  # a few real signals above the noise
    ids = [f"c{i}" for i in range(n)]
    policy = SharePolicy(cap=float(rng.choice([0.1, 0.25, 0.5])), top_contributors=int(rng.integers(1, 60)))
    result = contributor_shares(ids, scores, policy)
    shares = np.array(list(result.shares.values()))
    assert not result.is_empty
    assert (shares >= 0).all()
    assert shares.sum() == pytest.approx(1.0, abs=1e-12)
    assert shares.max() <= result.effective_cap + 1e-12
    assert result.effective_cap == max(policy.cap, 1 / len(shares))
    assert len(shares) <= policy.top_contributors
    assert sum(result.shares_ppm.values()) == PPM
    assert all(abs(result.shares_ppm[c] - result.shares[c] * PPM) < 1 for c in result.shares)
    # Negative influence is never charged but is reported, per contributor.
    assert set(result.negative_influence) == {ids[i] for i in np.flatnonzero(scores < 0)}
    assert not set(result.negative_influence) & {c for c, s in result.shares.items() if s > 0}


def test_noise_floor_is_subtracted_and_only_signal_is_paid():
    ids = ["a", "b", "c", "d", "e"]
    scores = [10.0, 1.0, -1.0, 0.5, 6.0]
    policy = SharePolicy(noise_floor_multiplier=2.0, cap=1.0, median_floor_min_contributors=5)
    result = contributor_shares(ids, scores, policy)
    assert result.noise_floor == 2.0  # 2 × median(|scores|) = 2 × 1.0
    assert result.floors == {"a": 2.0, "e": 2.0}
    assert result.shares == pytest.approx({"a": 8 / 12, "e": 4 / 12})
    assert list(result.shares) == ["a", "e"]  # ordered by score
    assert result.negative_influence == {"c": 1.0}


def test_few_contributors_are_not_judged_by_their_own_median():
    # Twice the median of two positive scores always exceeds the larger one: a median floor would pay nobody.
    result = contributor_shares(["a", "b"], [3.0, 1.0], SharePolicy(cap=1.0))
    assert result.noise_floor == 0.0 and result.shares == pytest.approx({"a": 0.75, "b": 0.25})
    crowded = contributor_shares(["a", "b"], [3.0, 1.0], SharePolicy(cap=1.0, median_floor_min_contributors=2))
    assert crowded.is_empty and crowded.noise_floor == 4.0


def test_chance_floor_is_per_contributor():
    """A contributor is paid only beyond what a random direction of its own size would score."""
    ids = ["big", "small", "tiny"]
    scores = [5.0, 5.0, 0.3]
    chance = [4.0, 0.5, 0.1]  # |q| |Ψ_c| / √k: "big" has many rows, so chance alone gives it a large score
    result = contributor_shares(ids, scores, SharePolicy(cap=1.0, chance_floor_multiplier=2.0), chance=chance)
    assert result.floors == {"small": 1.0, "tiny": 0.2}  # big's 2 × 4.0 = 8.0 floor exceeds its 5.0
    assert result.shares == pytest.approx({"small": 4.0 / 4.1, "tiny": 0.1 / 4.1})
    off = contributor_shares(ids, scores, SharePolicy(cap=1.0, chance_floor_multiplier=0.0), chance=chance)
    assert set(off.shares) == set(ids)
    many = [f"c{i}" for i in range(20)]
    many_scores = np.r_[[9.0, 3.0], np.full(18, 1.0)]
    both = contributor_shares(many, many_scores, SharePolicy(cap=1.0), chance=np.r_[[2.5, 4.0], np.zeros(18)])
    assert both.noise_floor == 2.0 and both.floors == {"c0": 2.5}  # c0: max(2, 1×2.5); c1: 4.0 > 3, unpaid
    with pytest.raises(ValueError, match="one chance level per contributor"):
        contributor_shares(ids, scores, SharePolicy(), chance=[1.0])


def test_everything_below_the_floor_gives_an_empty_share_set_with_a_reason():
    result = contributor_shares(["a", "b", "c"], [-1.0, -2.0, 0.1], SharePolicy(), chance=[0.5, 0.5, 0.5])
    assert result.is_empty and result.shares_ppm == {}
    assert "noise floor" in result.reason
    assert result.negative_influence == {"a": 1.0, "b": 2.0}


def test_cap_redistributes_iteratively_and_relaxes_only_when_infeasible():
    shares, cap = capped_normalise(np.array([100.0, 10.0, 5.0, 5.0]), 0.4)
    assert cap == 0.4
    assert shares == pytest.approx([0.4, 0.3, 0.15, 0.15])
    shares, cap = capped_normalise(np.array([9.0, 1.0]), 0.2)
    assert cap == 0.5 and shares == pytest.approx([0.5, 0.5])


def test_largest_remainder_ppm_is_exact_and_deterministic():
    parts = largest_remainder_ppm(np.array([1.0, 1.0, 1.0]))
    assert parts.tolist() == [333_334, 333_333, 333_333]
    assert largest_remainder_ppm(np.array([0.1, 0.7, 0.2])).sum() == PPM


def test_row_count_fallback_uses_the_same_cap_and_ppm_rules():
    result = row_count_shares({"a": 8, "b": 1.5, "c": 0.5, "d": 0}, cap=0.5)
    assert result.shares == pytest.approx({"a": 0.5, "b": 0.375, "c": 0.125})
    assert sum(result.shares_ppm.values()) == PPM
    assert result.reason.startswith("fallback")


def reference_shares(ids, scores, policy):
    """The policy written out contributor by contributor, as the module docstring states it."""
    floor = 0.0
    if len(scores) >= policy.median_floor_min_contributors:
        floor = policy.noise_floor_multiplier * float(np.median(np.abs(scores)))
    above = {c: s - floor for c, s in zip(ids, scores) if s - floor > 0}
    kept = sorted(above, key=lambda c: (-above[c], c))[: policy.top_contributors]
    negative = {c: -s for c, s in zip(ids, scores) if s < 0}
    return kept, floor, negative


@pytest.mark.parametrize("n", [1, 7, 10_000])
def test_vectorised_policy_agrees_with_the_policy_written_out(n):
    rng = np.random.default_rng(n)
    scores = rng.standard_normal(n)
    scores[rng.choice(n, min(n, 5), replace=False)] += 6.0
    scores[: n // 3] = np.round(scores[: n // 3], 1)  # ties: order falls back to the contributor id
    ids = [f"u{rng.integers(10**6)}-{i}" for i in range(n)]
    policy = SharePolicy(top_contributors=20, cap=0.2)
    result = contributor_shares(ids, scores, policy)
    kept, floor, negative = reference_shares(ids, scores, policy)
    assert result.noise_floor == floor
    assert list(result.shares) == kept == list(result.scores)
    assert result.scores == {c: float(scores[ids.index(c)]) for c in kept}
    assert len(result.negative_influence) == len(negative)
    assert result.negative_influence == negative  # a lazy map, equal to the dict it stands for
    assert list(result.negative_influence) == list(negative)  # contributor order
    if negative:
        some = next(iter(negative))
        assert result.negative_influence[some] == negative[some]
        assert result.negative_influence.total() == pytest.approx(sum(negative.values()))


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
    with pytest.raises(ValueError, match="one score per contributor"):
        contributor_shares(ids, [1.0, 2.0])


def test_score_map_items_behave_like_dict_items():
    picked = ScoreMap(["a", "b", "c"], np.array([2, 0]), np.array([1.5, -2.0]))
    assert len(picked.items()) == 2 and ("c", 1.5) in picked.items() and ("a", 1.5) not in picked.items()
    assert list(picked.values()) == [1.5, -2.0] and list(picked.keys()) == ["c", "a"]
