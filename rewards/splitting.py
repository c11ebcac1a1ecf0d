"""Largest-remainder splitting: divide a whole number of units in proportion to integer weights, exactly.

Plain Python with no imports at all (no Django, no numpy), so the rewards services and the engines can
share it: fees are split with it (`rewards.services.fees.fee_split`), amounts of any size (uint256) are
exact because everything stays in Python ints, and the parts always sum to the total.
"""


def largest_remainder(total: int, weights) -> dict:
    """Split `total` base units in proportion to `weights` [(key, weight)], exactly: everyone gets the
    floor of their quota, then the leftover units go one each to the largest remainders (ties: the
    order given, so the earlier position wins). The parts always sum to `total`."""
    weights = [(key, int(weight)) for key, weight in weights]
    denominator = sum(weight for _, weight in weights)
    if denominator <= 0:
        raise ValueError("weights must have a positive sum")
    parts, remainders = {}, []
    for index, (key, weight) in enumerate(weights):
        quotient, remainder = divmod(total * weight, denominator)
        parts[key] = quotient
        remainders.append((-remainder, index, key))
    leftover = total - sum(parts.values())
    for _, _, key in sorted(remainders)[:leftover]:
        parts[key] += 1
    return parts
