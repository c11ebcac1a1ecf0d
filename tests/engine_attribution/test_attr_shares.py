"""The share policy: non-negative, sums to one, cap holds, ppm exact, negative influence reported."""

import numpy as np
import pytest

from attribution.engine import (
    PPM,
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
    result = contributor_shares(ids, scores, SharePolicy(noise_floor_multiplier=2.0, cap=1.0))
    assert result.noise_floor == 2.0  # 2 × median(|scores|) = 2 × 1.0
    assert result.shares == pytest.approx({"a": 8 / 12, "e": 4 / 12})
    assert list(result.shares) == ["a", "e"]  # ordered by score
    assert result.negative_influence == {"c": 1.0}


def test_everything_below_the_floor_gives_an_empty_share_set_with_a_reason():
    result = contributor_shares(["a", "b", "c"], [-1.0, -2.0, 0.1], SharePolicy())
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
