"""Credit structure of an index, formed at build time without looking at who owns any row.

Everything the share policy (``shares.py``) thresholds or selects is defined here on rows and on
groups of rows, never on accounts, so that splitting one's rows over many accounts (or merging
accounts) cannot change what those rows earn:

* **Credit groups** (:func:`credit_groups`): spherical k-means of the rows' projected training
  gradients (unit-normalised; farthest-point seeding, so the groups depend on the gradients' geometry
  and not on a random draw: with random seeding, two projection seeds moved 26% of the pool between
  contributors on the engine's topical test model, with farthest-point seeding far less; large
  indexes cluster a 256-dim sketch), about ``group_size`` rows per group, at most ``MAX_GROUPS``
  groups. Rows in one group push the model the same way, so their scores rise and fall together; a
  group's summed score is what the policy tests against noise. At least ``min_groups`` groups (8), so a small dataset is not cut into a few broad
  groups that each matter to a large part of all queries. The grouping depends only on gradients, the seed and the row order.
* **Duplicate clusters** (:func:`ingestion_roots`, :func:`whitened_duplicates`): rows named as
  near-duplicates at ingestion (MinHash, ``cluster_ids``) and rows whose training gradients are
  near-identical in the preconditioned geometry (whitened cosine ≥ ``duplicate_cosine``, compared
  inside each credit group, star-shaped so similarity never chains) are one cluster; rewordings that
  MinHash misses still teach the model the same thing and are caught here. The threshold is high on
  purpose: a false merge costs an honest later contributor the row's credit
  (``gradient_duplicate_pairs`` in the manifest says how many rows the rule joined).
* **First come keeps the credit** (:func:`first_come_weights`): inside a duplicate cluster only the
  earliest accepted row (smallest ``accepted_order``, then position) carries credit weight 1; later
  copies carry 0, whoever uploaded them. Curvature still counts each cluster once in total
  (``1/|cluster|`` per row), so copies distort neither credit nor curvature.
* **Value and harm** (:func:`value_weights`, :func:`harmful_rows`): with held-out evaluation queries,
  each row's value is the mean score of the evaluation loss gradient against it. A row earns on answers
  in proportion to its value up to the typical row's (``value_weights``: nothing when it makes the
  held-out loss worse); one whose harm is more than ``outlier_z`` (3) robust SDs above the median harm
  is also flagged, so the platform holds its contributor's earnings and queues the row for review.
  Per-row rules: spreading harmful rows over accounts does not dilute them. A credit group whose rows
  together are worth significantly less than ``low_value_ratio`` of as many typical rows (:func:`low_value_sets`)
  earns nothing at all: groups of junk rows, which single rows of could win on answers by chance.
* **Self-influence** ``φ_iᵀF⁻¹φ_i`` of every row: inside a paid group, rows share the group's credit in
  proportion to their score divided by its square root (RelatIF, Barshan et al. 2020). Rows the model
  never fitted (random text, wrong labels) have huge gradients and so huge raw scores on every answer
  whose label they share; relative to their own self-influence they are ordinary.
* **Measured null** (:func:`group_noise_scale`): each group's score scale under queries it is mostly
  unrelated to, measured on real held-out queries (the model's evaluation split; with fewer than
  ``MIN_NULL_QUERIES`` of those, topped up with a deterministic sample of training rows used as
  queries). Scores are divided by the query's norm, then the group's scale is 1.4826 × the median
  absolute deviation of those normalised scores about their median: robust to the minority of
  queries for which the group genuinely matters. ``shares.py`` turns it into z-scores and controls
  the false-discovery rate across groups.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MAX_GROUPS = 4096
SKETCH_DIMS = 256
FULL_KMEANS_WORK = 2e9  # n × groups × k multiply-adds per pass below which k-means uses exact cosines
KMEANS_ITERATIONS = 12
KMEANS_SAMPLE = 50_000
MIN_NULL_QUERIES = 64
MAD_TO_STD = 1.4826


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) % (2**63))


def unit_rows(features: torch.Tensor) -> torch.Tensor:
    norms = torch.linalg.vector_norm(features, dim=1, keepdim=True)
    return features / norms.clamp_min(1e-30)


def group_count(rows: int, group_size: int, min_groups: int = 8) -> int:
    """About ``group_size`` rows per group, but at least ``min_groups`` (a few broad groups of a small
    dataset each matter to a large part of all queries, which a per-group null cannot separate from noise)
    and at most ``MAX_GROUPS``."""
    return max(1, min(rows, MAX_GROUPS, max(min_groups, math.ceil(rows / max(1, group_size)))))


def _farthest_point_centroids(rows: torch.Tensor, count: int) -> torch.Tensor:
    """Deterministic k-means seeding: start from the row least like the mean direction, then repeatedly
    add the row least like every centroid so far. It depends only on the rows' geometry (which the
    projection preserves), not on any random draw, so two projection seeds give nearly the same groups."""
    mean = unit_rows(rows.mean(0, keepdim=True))
    chosen = [int(torch.argmin(rows @ mean.T))]
    closest = rows @ rows[chosen[0]]
    for _ in range(1, count):
        chosen.append(int(torch.argmin(closest)))
        closest = torch.maximum(closest, rows @ rows[chosen[-1]])
    return rows[chosen].clone()


def credit_groups(unit_features: torch.Tensor, group_size: int, seed: int, min_groups: int = 8) -> torch.Tensor:
    """Group id ``[n]`` int64 of every row: spherical k-means of unit gradients, farthest-point seeded.

    Exact cosines while ``n × groups × k`` stays small; beyond ``FULL_KMEANS_WORK`` multiply-adds per
    pass, on a fixed ``SKETCH_DIMS``-dim Gaussian sketch (a sample of ``KMEANS_SAMPLE`` rows sets the
    centroids, then every row is assigned). Empty clusters are re-seeded with the rows least like their
    own centroid, so every group holds at least one row."""
    n = unit_features.shape[0]
    groups = group_count(n, group_size, min_groups)
    if groups == 1:
        return torch.zeros(n, dtype=torch.int64)
    rows = unit_features.float()
    if n * groups * rows.shape[1] > FULL_KMEANS_WORK:
        sketch_map = torch.randn(rows.shape[1], SKETCH_DIMS, generator=_generator(seed + 1)) / math.sqrt(SKETCH_DIMS)
        rows = unit_rows(rows @ sketch_map)
    sample = rows if n <= KMEANS_SAMPLE else rows[torch.randperm(n, generator=_generator(seed + 2))[:KMEANS_SAMPLE]]
    centroids = _farthest_point_centroids(sample, groups)
    for _ in range(KMEANS_ITERATIONS):
        similarity = sample @ centroids.T
        assignment = similarity.argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, sample)
        counts = torch.bincount(assignment, minlength=groups)
        empty = torch.nonzero(counts == 0).view(-1)
        if empty.numel():
            fit = similarity.gather(1, assignment.view(-1, 1)).view(-1)
            sums[empty] = sample[torch.argsort(fit)[: empty.numel()]]
        centroids = unit_rows(sums)
    return torch.cat([(chunk @ centroids.T).argmax(dim=1) for chunk in rows.split(65536)])


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def ingestion_roots(cluster_ids: list[str | None]) -> np.ndarray:
    """Duplicate cluster of every row from the ingestion (MinHash) cluster ids: the first row position in it."""
    first_of: dict[str, int] = {}
    return np.array([position if cluster is None else first_of.setdefault(cluster, position)
                     for position, cluster in enumerate(cluster_ids)], dtype=np.int64)


def whitened_duplicates(roots: np.ndarray, groups: torch.Tensor, accepted_order: list[int], features_of, psi_of,
                        threshold: float | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Join rows whose training gradients are near-identical *in the preconditioned geometry*, and measure
    every row's self-influence ``φ_iᵀ F⁻¹ φ_i``.

    Plain gradient cosine cannot tell a rewording from a classmate: on a fitted classifier all rows of a
    class share the head's gradient direction (cosine ≥ 0.99 across a whole intent class was measured on
    MiniLM), so thresholding it merges honest rows by the dozen. The whitened cosine
    ``φ_iᵀF⁻¹φ_j / √(φ_iᵀF⁻¹φ_i · φ_jᵀF⁻¹φ_j)`` divides out the directions every row shares (they carry
    the most curvature) and compares what is specific to each row. Clusters are stars, not chains: inside
    each credit group, rows are taken in accepted order and a row joins the earliest representative it
    matches at ``threshold``; otherwise it becomes a representative. So A≈B and B≈C never pull C into A.

    Every row also gets its **novelty** ``√(1 - c²)``, where ``c`` is its largest whitened cosine with a row
    of its group accepted before it: the fraction of what it teaches the model that earlier rows had not
    already taught. A first upload, or a row unlike anything before it, has novelty ≈ 1; a rewording of an
    earlier row (cosine 0.9) about 0.44; an exact copy 0. Rows earn in proportion to it, so a later
    paraphrase shares little of the credit of the row it rewords, whoever uploads it, and no threshold
    decides it.

    ``features_of(positions)`` and ``psi_of(positions)`` give φ and Ψ rows. Returns the new roots, each
    row's self-influence, its novelty and the number of rows joined by the threshold alone."""
    union = _UnionFind(len(roots))
    for position, root in enumerate(roots.tolist()):
        union.union(position, root)
    self_influence = np.zeros(len(roots))
    novelty = np.ones(len(roots))
    order = np.asarray(accepted_order, dtype=np.int64)
    joined = 0
    sorted_rows = torch.argsort(groups, stable=True).numpy()
    bounds = np.r_[0, torch.bincount(groups).cumsum(0).numpy()]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        members = sorted_rows[start:stop]
        members = members[np.lexsort((members, order[members]))]  # accepted order, then position
        inner = (features_of(members) @ psi_of(members).T).numpy()
        diagonal = np.clip(np.diag(inner), 1e-300, None)
        self_influence[members] = diagonal
        if members.size < 2:
            continue
        cosine = np.clip((inner + inner.T) / 2 / np.sqrt(np.outer(diagonal, diagonal)), -1.0, 1.0)
        earlier = np.tril(np.maximum(cosine, 0.0), k=-1)  # members are in accepted order
        novelty[members] = np.sqrt(np.clip(1.0 - earlier.max(axis=1) ** 2, 0.0, 1.0))
        if threshold is None:
            continue
        representatives: list[int] = []  # local indices
        for local in range(members.size):
            if representatives:
                similarity = cosine[local, representatives]
                best = int(np.argmax(similarity))
                if similarity[best] >= threshold:
                    if union.find(int(members[local])) != union.find(int(members[representatives[best]])):
                        joined += 1
                        union.union(int(members[local]), int(members[representatives[best]]))
                    continue
            representatives.append(local)
    return np.array([union.find(i) for i in range(len(roots))], dtype=np.int64), self_influence, novelty, joined


def curvature_weights(roots: np.ndarray) -> torch.Tensor:
    """``1/|cluster|`` per row: a cluster counts as one row in the curvature."""
    sizes = np.bincount(roots, minlength=len(roots))
    return torch.from_numpy(1.0 / sizes[roots])


def first_come_weights(roots: np.ndarray, accepted_order: list[int]) -> np.ndarray:
    """1.0 for the earliest accepted row of each duplicate cluster (ties: the earlier position), else 0."""
    order = np.asarray(accepted_order, dtype=np.int64)
    positions = np.arange(len(roots))
    # Sort by (cluster, accepted order, position); the first row of each cluster run wins.
    ranked = np.lexsort((positions, order, roots))
    winners = ranked[np.r_[True, roots[ranked][1:] != roots[ranked][:-1]]]
    weights = np.zeros(len(roots))
    weights[winners] = 1.0
    return weights


def harmful_rows(values: np.ndarray, outlier_z: float) -> tuple[np.ndarray, float]:
    """Rows whose harm (``-value``) is positive and ``outlier_z`` robust SDs above the median harm."""
    harm = -values
    median = float(np.median(harm))
    threshold = max(0.0, median + outlier_z * MAD_TO_STD * float(np.median(np.abs(harm - median))))
    return np.flatnonzero(harm > threshold), threshold


MIN_VALUE_QUERIES = 30  # evaluation queries below which values are too noisy to take credit away on


def low_value_sets(values: np.ndarray, membership: np.ndarray, sets: int, ratio: float,
                   net_errors: np.ndarray | None, fdr: float = 0.05,
                   queries: int = MIN_VALUE_QUERIES) -> tuple[np.ndarray, np.ndarray]:
    """Sets of rows (``membership[i]``: the set of row ``i``; credit groups or contributors) whose rows, taken
    together, are worth significantly less than ``ratio`` of as many typical rows on the held-out evaluation
    split. Returns their positions and every set's *efficiency* ``Σ_{i in c} v_i / (n_c · median(v))`` (1 = its
    rows are worth a typical row each).

    The test, per set ``c`` with ``n_c`` rows: ``z_c = (ratio · n_c · median(v) - Σ v_i) / SE_c``, where
    ``SE_c`` is the standard error of ``Σ v_i`` over the evaluation queries (``net_errors``, measured at build:
    the sum is a mean over those ``queries``), its one-sided p-value from Student's t with ``queries - 1``
    degrees of freedom (a standard error from few queries is itself noisy), and Benjamini-Hochberg at ``fdr``
    across sets: of the sets named, at most about ``fdr`` are expected to be worth ``ratio`` of a typical row or
    more. With fewer than ``MIN_VALUE_QUERIES`` evaluation queries nothing is named (measured: the demo's 15-row
    eval split silenced honest groups on some projection seeds).

    Applied to **credit groups** (formed from gradients, without looking at owners, so partition-invariant),
    a named group's rows earn nothing: random strings or random words with random labels form groups of
    their own in gradient space (measured on MiniLM: every junk or spam row in groups that were 100% junk or
    spam, honest groups 0%) and those groups are worth next to nothing on held-out data while single rows in
    them earn on answers by chance (the junk lottery). Applied to **contributors**, it holds their earnings
    for review (below).

    Why: per-row rules pay a row for the answers it helped and cannot charge it for the answers it hurt
    (payouts are never negative), so a contributor can upload many rows of which some help by chance and more
    hurt: random words with random labels that happen to name their label (measured on MiniLM, 50 such rows
    from one account: efficiency 0.07 ± 0.08, while the lucky rows earned 7.6% of the pool; honest
    contributors 0.77 and up). Netting their rows' values exposes it; the platform holds the contributor's
    earnings for a curator's review, it does not take them. First-order values can mislead on a poorly fitted
    model (on the engine's tiny test model one topical contributor's rows sum to -2 typical rows), which is
    why this is a review and not a verdict. It acts on accounts, as holds must: the same rows spread over
    one-row accounts escape it and meet the per-row rules instead (the junk lottery in
    ``bench/attribution_adversarial.py``). With a median of zero or less (a model that did not learn), or
    without measured errors (an index built before them), nobody is held."""
    from scipy.special import stdtr

    median = float(np.median(values)) if values.size else 0.0
    rows = np.bincount(membership, minlength=sets).astype(np.float64)
    net = np.bincount(membership, weights=values, minlength=sets)
    efficiency = np.where(rows > 0, net / np.maximum(rows, 1.0) / median if median > 0 else np.inf, np.inf)
    present = np.flatnonzero(rows > 0)
    if median <= 0 or net_errors is None or present.size == 0 or queries < MIN_VALUE_QUERIES:
        return np.zeros(0, dtype=np.int64), efficiency
    errors = np.maximum(np.asarray(net_errors, dtype=np.float64)[present], 1e-12)
    z = (ratio * rows[present] * median - net[present]) / errors
    p_values = stdtr(queries - 1, -z)  # small when the net value is far below the line
    order = np.argsort(p_values, kind="stable")
    passing = np.flatnonzero(p_values[order] <= fdr * np.arange(1, present.size + 1) / present.size)
    if passing.size == 0:
        return np.zeros(0, dtype=np.int64), efficiency
    return np.sort(present[order[: passing[-1] + 1]]), efficiency


def low_value_contributors(values: np.ndarray, row_owner: np.ndarray, contributors: int, ratio: float,
                           net_errors: np.ndarray | None, fdr: float = 0.05,
                           queries: int = MIN_VALUE_QUERIES) -> tuple[np.ndarray, np.ndarray]:
    """``low_value_sets`` over contributors: whose earnings the platform holds for review."""
    return low_value_sets(values, row_owner, contributors, ratio, net_errors, fdr, queries)


def values_and_set_errors(stored_rows, eval_queries: torch.Tensor, membership: torch.Tensor,
                          sets: int) -> tuple[np.ndarray, np.ndarray]:
    """In one pass over the stored rows: each row's value (its mean score over the evaluation queries: the
    first-order decrease of the evaluation loss training on it caused) and, per set of rows (``membership``),
    the standard error over those queries of the set's summed value (``low_value_sets``)."""
    queries = eval_queries.double()
    m = queries.shape[0]
    values = []
    per_query = torch.zeros(sets, m, dtype=torch.float64)
    for first, rows in stored_rows:
        for offset in range(0, rows.shape[0], 8192):  # bounds the [rows, m] product whatever the shard size
            scores = rows[offset : offset + 8192] @ queries.T
            values.append(scores.mean(1).numpy())
            start = first + offset
            per_query.index_add_(0, membership[start : start + scores.shape[0]], scores)
    errors = (per_query.std(1) / math.sqrt(m)).numpy() if m > 1 else np.full(sets, np.inf)
    return np.concatenate(values), errors


def value_weights(values: np.ndarray) -> np.ndarray:
    """Each row's credit weight from its value on the held-out evaluation split: ``clip(v / median(v), 0, 1)``.

    A row that makes the held-out loss worse (v ≤ 0) earns nothing on answers; one worth at least the
    typical row earns fully; in between, in proportion. Rows the model memorised without learning
    anything general (random text, random or wrong labels) score high on answers that share their label
    but are worth little or less than nothing on held-out data (on MiniLM: spam median value 0.05 and
    poisoned rows -0.63 against honest rows' 1.2). With a median of zero or less (a model that did not
    learn) every row keeps weight 1."""
    median = float(np.median(values))
    if median <= 0:
        return np.ones(len(values))
    return np.clip(values / median, 0.0, 1.0)


def group_noise_scale(null_scores: torch.Tensor, null_norms: torch.Tensor, group_credit: np.ndarray,
                      own_group: np.ndarray | None = None) -> np.ndarray:
    """Per-group scale of norm-divided scores under the null queries ``[m, G]`` (robust: 1.4826 × MAD).

    ``own_group[j]``: the group of the training row query ``j`` was taken from (-1: a held-out query); that
    entry is left out. A group with no credit weight (all copies or flagged) gets ``inf``: it can never be
    discovered. A degenerate zero scale is lifted to a thousandth of the median scale so a z-score stays
    finite."""
    normalised = (null_scores.double() / null_norms.double().clamp_min(1e-30).view(-1, 1)).numpy()
    if own_group is not None:
        rows = np.flatnonzero(own_group >= 0)
        masked = normalised.copy()
        masked[rows, own_group[rows]] = np.nan
        # A group every null query comes from (one group for the whole index) keeps its own scores.
        keep = np.isnan(masked).all(axis=0)
        masked[:, keep] = normalised[:, keep]
        normalised = masked
    median = np.nanmedian(normalised, axis=0)
    scale = MAD_TO_STD * np.nanmedian(np.abs(normalised - median), axis=0)
    positive = scale[(scale > 0) & (group_credit > 0)]
    lift = 1e-3 * float(np.median(positive)) if positive.size else 1e-30
    scale = np.maximum(scale, lift)
    scale[group_credit <= 0] = np.inf
    return scale
