"""`rewards.splitting.largest_remainder`, the one largest-remainder split (fees use it through
`rewards.services.fees.fee_split`): exact to the unit at any size, ties to the earlier position."""

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from rewards.splitting import largest_remainder


def test_ties_go_to_the_earlier_position_in_the_order_given():
    assert largest_remainder(1, [("a", 1), ("b", 1), ("c", 1)]) == {"a": 1, "b": 0, "c": 0}
    assert largest_remainder(2, [("a", 1), ("b", 1), ("c", 1)]) == {"a": 1, "b": 1, "c": 0}
    assert largest_remainder(1, [("z", 1), ("a", 1)]) == {"z": 1, "a": 0}  # position, not key order


def test_a_larger_remainder_beats_an_earlier_position():
    assert largest_remainder(1, [("a", 1), ("b", 2)]) == {"a": 0, "b": 1}
    assert largest_remainder(10, [("a", 1), ("b", 1), ("c", 1)]) == {"a": 4, "b": 3, "c": 3}


def test_exact_for_uint256_amounts_and_zero_weights():
    total = 2**256 - 1  # divisible by 3
    assert largest_remainder(total, [("a", 1), ("b", 2), ("c", 0)]) == {"a": total // 3, "b": 2 * (total // 3), "c": 0}
    assert largest_remainder(0, [("a", 5)]) == {"a": 0}


def test_weights_without_a_positive_sum_are_refused():
    for weights in ([], [("a", 0)], [("a", 0), ("b", 0)]):
        with pytest.raises(ValueError, match="positive sum"):
            largest_remainder(10, weights)


@hsettings(max_examples=300, deadline=None)
@given(total=st.integers(0, 2**256), weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=12).filter(any))
def test_each_part_is_its_quota_rounded_and_the_leftover_goes_by_remainder_then_position(total, weights):
    parts = largest_remainder(total, list(enumerate(weights)))
    assert sum(parts.values()) == total
    quotas = [Fraction(total * w, sum(weights)) for w in weights]
    bonus = [parts[i] - (q.numerator // q.denominator) for i, q in enumerate(quotas)]
    assert set(bonus) <= {0, 1}
    remainders = [q - q.numerator // q.denominator for q in quotas]
    for i in range(len(weights)):
        for j in range(len(weights)):
            if bonus[i] and not bonus[j]:  # i was preferred: a larger remainder, or the same one earlier
                assert remainders[i] > remainders[j] or (remainders[i] == remainders[j] and i < j)


def test_importing_it_loads_neither_django_nor_numpy():
    """Engines must not import Django: the split is plain Python, so any of them may use it."""
    probe = "import sys, rewards.splitting; print(sorted({'django', 'numpy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parents[2],
                            capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
