"""Turning per-contributor attribution scores into fee shares.

Policy (``contributor_shares``), applied to each contributor's *net* score (the contributor matrix
already nets helpful and harmful rows, cluster-weighted):

1. Noise floor, per contributor: ``floor_c = max(shared floor, chance floor_c)``, subtracted from
   every score (not just used as a cut-off) so barely-above-noise contributors get barely any share.
   - The shared floor is ``noise_floor_multiplier × median(|net score|)`` over all contributors in
     the index, applied when the index has at least ``median_floor_min_contributors`` of them. With
     many contributors most are unrelated to any given output, so the median absolute score
     measures how large projection and estimation noise is. With a handful it measures the typical
     *relevant* score instead (with two contributors, twice the median exceeds the larger score
     whenever both are positive, and nobody would ever be paid), so it is not used there.
   - The chance floor is ``chance_floor_multiplier × chance_c`` where ``chance_c = |q| |Ψ_c| / √k``
     (the caller passes ``chance``; :class:`~attribution.engine.query.Attributor` does): the standard
     deviation of the score that a contributor matrix row of the same norm but pointing in a random
     direction of the k-dimensional projected space would get against the query ``q``. A
     contributor is paid only for alignment with the output beyond what chance gives a contributor
     of its size; it holds for any number of contributors, and large contributors (many rows, large
     ``|Ψ_c|``) need proportionally more alignment. The null is conservative in the preconditioned
     space (real unrelated contributors score below it), so the default multiplier is 1: on the
     engine's topical test model (12 contributors) the contributor who owns the queried row scored
     1.9-3.1 times its chance level and every other contributor at most 0.75 times.
2. Clip at zero: negative influence is never charged. Each contributor's net negative score is
   reported separately (``negative_influence``, in contributor order) so it can be accumulated
   and shown.
3. Keep the ``top_contributors`` largest remaining scores (small payouts cost more gas than they are
   worth and are dominated by noise).
4. Normalise to 1, then cap every share at ``cap`` by iterative redistribution: contributors over
   the cap are fixed at it and the excess is spread over the rest in proportion to their scores,
   repeated until nobody exceeds it, so the cap holds after normalisation. If fewer than
   ``1 / cap`` contributors remain the cap cannot hold with shares summing to 1; it is then relaxed
   to ``1 / (number remaining)`` (equal split among the capped) and ``effective_cap`` says so.
5. Shares are also given as integer parts per million summing to exactly 1,000,000 (largest
   remainder), so downstream integer accounting never has to round again. Rounding can move a
   share by at most 1 ppm, possibly 1 ppm past the cap.

If no contributor is left above the floor the result is empty (``is_empty``) with a ``reason``.

Documented fallback for the caller: route that contributor fee pool pro rata to cluster-weighted
row counts, which ``row_count_shares`` computes with the same cap and ppm rules.

Cost: everything over all contributors is vectorised (one median, one maximum, one comparison, one
``argpartition``); per-contributor Python objects are made only for the ``top_contributors``
kept. ``negative_influence`` (typically half of all contributors) and ``Attribution``'s full
score map are ``ScoreMap`` views over the score vector that build Python entries only when read,
so a query against 10,000 contributors stays well under a millisecond.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PPM = 1_000_000


@dataclass(frozen=True)
class SharePolicy:
    noise_floor_multiplier: float = 2.0
    top_contributors: int = 50
    cap: float = 0.5
    median_floor_min_contributors: int = 16
    chance_floor_multiplier: float = 1.0

    def __post_init__(self):
        if not 0 < self.cap <= 1:
            raise ValueError("cap must be in (0, 1]")
        if self.top_contributors < 1:
            raise ValueError("top_contributors must be at least 1")
        if self.noise_floor_multiplier < 0:
            raise ValueError("noise_floor_multiplier must be non-negative")
        if self.chance_floor_multiplier < 0:
            raise ValueError("chance_floor_multiplier must be non-negative")
        if self.median_floor_min_contributors < 1:
            raise ValueError("median_floor_min_contributors must be at least 1")


class ScoreMap(Mapping[str, float]):
    """Read-only ``{contributor id: value}`` over a numpy vector, materialised only when read.

    ``positions`` picks the entries (in that order) of ``ids``; ``values[j]`` belongs to
    ``ids[positions[j]]``. Compares equal to any mapping with the same items, like a dict.
    """

    __slots__ = ("_ids", "_positions", "_values", "_lookup")

    def __init__(self, ids: Sequence[str], positions: np.ndarray, values: np.ndarray):
        if positions.shape != values.shape:
            raise ValueError("positions and values must have the same shape")
        self._ids = ids
        self._positions = positions
        self._values = values
        self._lookup: dict[str, int] | None = None

    @classmethod
    def full(cls, ids: Sequence[str], values: np.ndarray) -> ScoreMap:
        return cls(ids, np.arange(len(ids)), np.asarray(values))

    @property
    def values_array(self) -> np.ndarray:
        return self._values

    def total(self) -> float:
        return float(self._values.sum())

    def __len__(self) -> int:
        return len(self._positions)

    def __iter__(self) -> Iterator[str]:
        ids = self._ids
        return (ids[p] for p in self._positions.tolist())

    def __getitem__(self, contributor_id: str) -> float:
        if self._lookup is None:
            self._lookup = {self._ids[p]: j for j, p in enumerate(self._positions.tolist())}
        return float(self._values[self._lookup[contributor_id]])

    def items(self) -> ItemsView[str, float]:
        return _ScoreMapItems(self)

    def to_dict(self) -> dict[str, float]:
        return dict(self.items())

    def __repr__(self) -> str:
        return f"ScoreMap({len(self)} entries)"


class _ScoreMapItems(ItemsView):
    """``items()`` that pairs ids with values in one pass (no per-key lookups)."""

    def __iter__(self):
        mapping = self._mapping
        return zip(mapping, mapping.values_array.tolist())


@dataclass(frozen=True)
class ContributorShares:
    shares: dict[str, float]
    shares_ppm: dict[str, int]
    negative_influence: Mapping[str, float]
    noise_floor: float  # the shared (median) floor; 0.0 when the index has too few contributors for it
    effective_cap: float
    reason: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    floors: dict[str, float] = field(default_factory=dict)  # the floor subtracted from each paid contributor

    @property
    def is_empty(self) -> bool:
        return not self.shares


def largest_remainder_ppm(weights: np.ndarray) -> np.ndarray:
    """Integer parts per million proportional to non-negative ``weights``, summing to ``PPM``."""
    exact = weights / weights.sum() * PPM
    floors = np.floor(exact).astype(np.int64)
    short = PPM - int(floors.sum())
    # Ties go to the earlier position (stable sort), so the result is deterministic.
    order = np.argsort(-(exact - floors), kind="stable")
    floors[order[:short]] += 1
    return floors


def capped_normalise(weights: np.ndarray, cap: float) -> tuple[np.ndarray, float]:
    """Normalise positive ``weights`` to sum 1 with no entry above ``cap`` (iterative redistribution).

    Returns the shares and the cap actually enforced (relaxed to ``1/len`` if ``cap`` is infeasible).
    """
    effective_cap = max(cap, 1.0 / len(weights))
    shares = weights / weights.sum()
    fixed = np.zeros(len(weights), dtype=bool)
    while True:
        over = (shares > effective_cap * (1 + 1e-12)) & ~fixed
        if not over.any():
            return shares, effective_cap
        fixed |= over
        remaining_mass = 1.0 - effective_cap * fixed.sum()
        free = ~fixed
        shares = np.where(fixed, effective_cap, 0.0)
        if free.any() and remaining_mass > 0:
            shares[free] = weights[free] / weights[free].sum() * remaining_mass


def _finish(ids: Sequence[str], weights: np.ndarray, cap: float, floor: float,
            negative: Mapping[str, float], scores: dict[str, float],
            floors: dict[str, float] | None = None) -> ContributorShares:
    shares, effective_cap = capped_normalise(weights, cap)
    ppm = largest_remainder_ppm(shares)
    return ContributorShares(
        shares=dict(zip(ids, shares.tolist())),
        shares_ppm=dict(zip(ids, ppm.tolist())),
        negative_influence=negative,
        noise_floor=floor,
        effective_cap=effective_cap,
        floors=floors or {},
        scores=scores,
    )


def contributor_shares(
    contributor_ids: Sequence[str],
    scores: np.ndarray | Sequence[float],
    policy: SharePolicy = SharePolicy(),
    chance: np.ndarray | Sequence[float] | None = None,
) -> ContributorShares:
    """Apply the share policy (module docstring) to net per-contributor scores of one query.

    ``chance`` (optional, one per contributor): the chance-level score magnitude ``|q| |Ψ_c| / √k`` of
    each contributor against this query; without it only the shared floor applies."""
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (len(contributor_ids),):
        raise ValueError("need exactly one score per contributor")
    negative_positions = np.flatnonzero(values < 0)
    negative = ScoreMap(contributor_ids, negative_positions, -values[negative_positions])
    shared = 0.0
    if len(values) >= policy.median_floor_min_contributors:
        shared = policy.noise_floor_multiplier * float(np.median(np.abs(values)))
    if chance is None:
        floors = np.full(values.shape, shared)
    else:
        chance_values = np.asarray(chance, dtype=np.float64)
        if chance_values.shape != values.shape:
            raise ValueError("need exactly one chance level per contributor")
        floors = np.maximum(shared, policy.chance_floor_multiplier * chance_values)
    candidates = np.flatnonzero(values - floors > 0)
    if candidates.size == 0:
        return ContributorShares({}, {}, negative, shared, policy.cap,
                                 reason="no contributor scored above the noise floor")
    above = values[candidates] - floors[candidates]
    if candidates.size > policy.top_contributors:
        keep = np.argpartition(-above, policy.top_contributors - 1)[: policy.top_contributors]
        candidates, above = candidates[keep], above[keep]
    # Deterministic order: by descending score, then contributor id.
    order = sorted(range(candidates.size), key=lambda j: (-above[j], contributor_ids[candidates[j]]))
    candidates, above = candidates[order], above[order]
    ids = [contributor_ids[i] for i in candidates.tolist()]
    return _finish(ids, above, policy.cap, shared, negative, dict(zip(ids, values[candidates].tolist())),
                   dict(zip(ids, floors[candidates].tolist())))


def row_count_shares(row_counts: Mapping[str, float], cap: float = SharePolicy.cap) -> ContributorShares:
    """Fallback shares pro rata to (cluster-weighted) row counts, with the same cap and ppm rules."""
    ids = sorted(c for c, n in row_counts.items() if n > 0)
    if not ids:
        return ContributorShares({}, {}, {}, 0.0, cap, reason="no rows")
    weights = np.array([row_counts[c] for c in ids], dtype=np.float64)
    result = _finish(ids, weights, cap, 0.0, {}, {})
    return ContributorShares(result.shares, result.shares_ppm, {}, 0.0, result.effective_cap,
                             reason="fallback: pro rata to row counts")
