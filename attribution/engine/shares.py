"""Turning attribution scores into fee shares: a policy whose result does not depend on account boundaries.

Every threshold, floor and selection below acts on rows or on credit groups, which the index forms
without looking at who owns a row (``credit.py``). Accounts receive the plain sum of their rows' credit.
So the total share of any set of rows is the same whether its owner holds it in one account or spreads
it over fifty, and merging accounts changes nothing (tests/engine_attribution/test_attr_adversarial.py;
``bench/attribution_adversarial.py`` measures it on MiniLM). There is no per-account cap: a cap on
accounts is exactly what splitting defeats; one would belong on a verified identity, which the
platform does not have.

Per query (``Attributor.attribute``):

1. **Group scores.** ``S_g = Σ_{i∈g} w_i s_i``: the credit-weighted sum of the scores of the rows in
   group ``g`` (``w_i`` is 1 for the first accepted row of each duplicate cluster, 0 for later copies
   and for rows flagged harmful).
2. **Test against the measured null.** ``z_g = S_g / (|q| σ_g)`` where ``σ_g`` is the group's noise
   scale measured at build time on held-out queries (``credit.group_noise_scale``). One-sided
   Benjamini-Hochberg across all groups at false-discovery rate ``fdr`` (default 0.1: of the groups
   paid on a query, at most about one in ten is expected to be paid on noise): the groups with the
   ``r`` largest ``z`` are discovered where ``r`` is the largest rank with ``z_(r) ≥ Φ⁻¹(1 - fdr·r/G)``.
   The rate is a property of the test, not of the number of accounts or groups. ``bench/`` measures
   how much of the pool goes to contributors whose removal would not raise the loss.
3. **Pay discovered groups their score beyond the cut.** A discovered group's weight is
   ``S_g - z_cut σ_g |q|``: its estimated effect on the answer's loss beyond what it needed to be
   discovered. A group that barely passes earns barely anything, so the edge of the test is worth
   nothing to game (paying whole scores let weak groups of junk rows ride along with one strong
   discovery). At most ``top_groups`` groups (largest weights) are paid, since tiny payouts cost more
   to move than they are worth.
4. **Rows inside a group** split its weight in proportion to ``(w_i s_i)⁺ / √(φ_iᵀF⁻¹φ_i)``: their
   positive credit-weighted scores relative to their own self-influence (RelatIF). Raw influence is
   dominated by rows the model never fitted (random text, wrong labels: huge gradients); relative
   influence credits the rows that pushed this answer in particular.
5. **Accounts** get the sum of their rows' credit, normalised to 1, and as integer parts per million
   summing to exactly 1,000,000 (largest remainder; rounding moves an account by under 1 ppm).

When no group is discovered the attribution is empty (``reason`` says so) and the contributor pool
goes to the data that trained the model (``fallback_shares``): pro rata to each row's positive value
on the model's evaluation split, credit-weighted as above, or pro rata to credit-weighted rows when
the model has no evaluation split. Never to the model owner: the owner must not profit from
attribution failing.

Negative influence is never charged: each contributor's net negative score (the linear sum of their
rows' scores) is reported in ``negative_influence`` so it can be accumulated and shown.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PPM = 1_000_000


@dataclass(frozen=True)
class SharePolicy:
    fdr: float = 0.1
    top_groups: int = 50
    rows_per_contributor: int = 10

    def __post_init__(self):
        if not 0 < self.fdr < 1:
            raise ValueError("fdr must be in (0, 1)")
        if self.top_groups < 1:
            raise ValueError("top_groups must be at least 1")
        if self.rows_per_contributor < 1:
            raise ValueError("rows_per_contributor must be at least 1")


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
        return self._values[self._lookup[contributor_id]].item()  # a Python int for ppm, float for shares

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


class PaidRows(Mapping[str, list[tuple[str, float]]]):
    """``{contributor id: [(row id, credit share), …]}``: each paid account's best rows, built on read.

    The share policy runs per inference and most of its callers read a few entries or serialise the
    receipt once; building every list eagerly was most of the policy's time at 10,000 contributors.
    ``accounts`` are positions in ``contributors`` in share order; rows of ``accounts[j]`` are
    ``row_positions[starts[j]:ends[j]]`` (best first) with shares ``fractions[starts[j]:ends[j]]``.
    """

    __slots__ = ("_contributors", "_row_ids", "_accounts", "_starts", "_ends", "_row_positions", "_fractions",
                 "_lookup")

    def __init__(self, contributors: Sequence[str], row_ids: Sequence[str], accounts: np.ndarray,
                 starts: np.ndarray, ends: np.ndarray, row_positions: np.ndarray, fractions: np.ndarray):
        self._contributors, self._row_ids = contributors, row_ids
        self._accounts, self._starts, self._ends = accounts, starts, ends
        self._row_positions, self._fractions = row_positions, fractions
        self._lookup: dict[str, int] | None = None

    def _rows(self, j: int) -> list[tuple[str, float]]:
        start, end = int(self._starts[j]), int(self._ends[j])
        row_ids = self._row_ids
        return [(row_ids[p], f) for p, f in zip(self._row_positions[start:end].tolist(),
                                                self._fractions[start:end].tolist())]

    def __len__(self) -> int:
        return len(self._accounts)

    def __iter__(self) -> Iterator[str]:
        contributors = self._contributors
        return (contributors[a] for a in self._accounts.tolist())

    def __getitem__(self, contributor_id: str) -> list[tuple[str, float]]:
        if self._lookup is None:
            self._lookup = {self._contributors[a]: j for j, a in enumerate(self._accounts.tolist())}
        return self._rows(self._lookup[contributor_id])

    def items(self) -> ItemsView[str, list[tuple[str, float]]]:
        return _PaidRowsItems(self)

    def __repr__(self) -> str:
        return f"PaidRows({len(self)} contributors)"


class _PaidRowsItems(ItemsView):
    def __iter__(self):
        mapping = self._mapping
        return ((key, mapping._rows(j)) for j, key in enumerate(mapping))


@dataclass(frozen=True)
class ContributorShares:
    # Read-only mappings in share order (largest first); ScoreMap/PaidRows materialise entries on read.
    shares: Mapping[str, float]
    shares_ppm: Mapping[str, int]
    negative_influence: Mapping[str, float]
    basis: str = "attribution"  # or "valuation" / "rows": the fallback that paid an empty attribution
    reason: str | None = None  # why the attribution itself paid nobody (set on fallbacks too)
    scores: Mapping[str, float] = field(default_factory=dict)  # paid contributors' net linear scores
    rows: Mapping[str, list[tuple[str, float]]] = field(default_factory=dict)  # paid rows, credit share
    groups_discovered: int = 0
    z_cut: float | None = None  # the z a group needed on this query (BH); None when nothing was tested

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


def bh_thresholds(groups: int, fdr: float) -> np.ndarray:
    """``z`` a group needs at each rank ``r = 1..groups`` under one-sided Benjamini-Hochberg at ``fdr``."""
    from scipy.special import ndtri

    ranks = np.arange(1, groups + 1, dtype=np.float64)
    return -ndtri(fdr * ranks / groups)


def discover_groups(group_scores: np.ndarray, query_norm: float, group_scale: np.ndarray,
                    thresholds: np.ndarray, top_groups: int) -> tuple[np.ndarray, float | None]:
    """Positions of the discovered groups (largest weight first, at most ``top_groups``) and the z cut. A
    group's weight is its score beyond the cut: ``S_g - z_cut · σ_g · |q|``."""
    query_norm = max(query_norm, 1e-30)
    z = group_scores / (query_norm * group_scale)
    candidates = np.flatnonzero(z >= thresholds[-1])
    if candidates.size == 0:
        return candidates, None
    ranked = candidates[np.argsort(-z[candidates], kind="stable")]
    passing = np.flatnonzero(z[ranked] >= thresholds[: ranked.size])
    if passing.size == 0:
        return passing, None
    discovered = ranked[: passing[-1] + 1]
    z_cut = float(thresholds[passing[-1]])
    excess = group_scores[discovered] - z_cut * group_scale[discovered] * query_norm
    return discovered[np.argsort(-excess, kind="stable")][:top_groups], z_cut


def credit_within_groups(local_group: np.ndarray, group_weight: np.ndarray, weighted_scores: np.ndarray) -> np.ndarray:
    """Each row's credit: its group's weight × its positive weighted score ÷ the group's positive total."""
    positive = np.maximum(weighted_scores, 0.0)
    totals = np.bincount(local_group, weights=positive, minlength=len(group_weight))
    safe = np.where(totals > 0, totals, 1.0)
    return group_weight[local_group] * positive / safe[local_group]


def account_shares(*, row_positions: np.ndarray, row_credit: np.ndarray, row_owner: np.ndarray,
                   contributors: Sequence[str], row_ids: Sequence[str], rows_per_contributor: int,
                   negative: Mapping[str, float], basis: str = "attribution", reason: str | None = None,
                   contributor_scores: np.ndarray | None = None, groups_discovered: int = 0,
                   z_cut: float | None = None) -> ContributorShares:
    """Accounts' shares as the sums of their rows' credit (``row_owner[p]`` indexes ``contributors``)."""
    keep = row_credit > 0
    positions, credit = row_positions[keep], row_credit[keep]
    if credit.size == 0:
        return ContributorShares({}, {}, negative, basis, reason or "no row earned credit",
                                 groups_discovered=groups_discovered, z_cut=z_cut)
    owners = row_owner[positions]
    # One sort does all the grouping: rows by account (ascending position = contributor id order), best
    # credit first inside each account. Accounts are the runs; their totals are sums over the runs.
    ranked = np.lexsort((-credit, owners))
    ranked_owner = owners[ranked]
    run_start = np.flatnonzero(np.r_[True, ranked_owner[1:] != ranked_owner[:-1]])
    run_length = np.diff(np.r_[run_start, ranked.size])
    accounts = ranked_owner[run_start]
    # Summed in row order (not run order) so a total does not depend on how its rows rank.
    account_of_row = np.empty(ranked.size, dtype=np.int64)
    account_of_row[ranked] = np.repeat(np.arange(run_start.size), run_length)
    totals = np.bincount(account_of_row, weights=credit, minlength=run_start.size)
    total = totals.sum()
    # Deterministic order: largest share first, then contributor id (stable sort over id-ordered accounts).
    order = np.argsort(-totals, kind="stable")
    paid = accounts[order]
    weights = totals[order]
    ppm = largest_remainder_ppm(weights)
    # Each paid account's best rows: the first few of its run.
    listed_length = np.minimum(run_length, rows_per_contributor)
    rank_in_run = np.arange(ranked.size) - np.repeat(run_start, run_length)
    listed = ranked[rank_in_run < rows_per_contributor]
    listed_start = np.r_[0, np.cumsum(listed_length)[:-1]]
    starts = listed_start[order]
    ends = starts + listed_length[order]
    rows = PaidRows(contributors, row_ids, paid, starts, ends, positions[listed], credit[listed] / total)
    scores = ({} if contributor_scores is None
              else ScoreMap(contributors, paid, np.asarray(contributor_scores, dtype=np.float64)[paid]))
    return ContributorShares(
        shares=ScoreMap(contributors, paid, weights / total), shares_ppm=ScoreMap(contributors, paid, ppm),
        negative_influence=negative, basis=basis, reason=reason, scores=scores, rows=rows,
        groups_discovered=groups_discovered, z_cut=z_cut)


def negative_influence(contributors: Sequence[str], contributor_scores: np.ndarray) -> ScoreMap:
    """Each contributor's net negative score, as a lazy map in contributor order."""
    positions = np.flatnonzero(contributor_scores < 0)
    return ScoreMap(contributors, positions, -np.asarray(contributor_scores, dtype=np.float64)[positions])
