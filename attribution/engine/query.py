"""Attributing inferences: from a model output to top rows, contributor scores and shares.

The query's gradient is the gradient of ``-log p(output)`` of the inference itself: for a
classifier the predicted label (``with_predicted_labels``), for a causal LM the generated response
tokens (labels = response token ids, ``-100`` on the prompt). It is projected with the index's
seed and scored against Ψ, so ``score(row) = q_gradᵀ F⁻¹ g_row``: how much training on the row
made this output more likely.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .gradients import GradientFeaturizer, eval_mode, model_inputs, model_logits
from .index import AttributionIndex, RowScore, TopRows
from .projection import BlockProjector
from .shares import (
    ContributorShares,
    ScoreMap,
    SharePolicy,
    account_shares,
    bh_thresholds,
    credit_within_groups,
    discover_groups,
    negative_influence,
)

# From this many rows on, a receipt's most similar rows are searched in the 64 best credit groups (measured
# recall of the exact top 10 in bench/attribution_latency.py), not by scanning every row.
PROBE_MIN_ROWS = 262_144
PROBE_GROUPS = 64
NOBODY_ABOVE_NOISE = ("no group of training rows scored above its measured noise level "
                      "(false-discovery rate {fdr:.0%})")


@dataclass(frozen=True)
class Attribution:
    """One inference's attribution."""

    top_rows: list[RowScore]
    contributor_scores: Mapping[str, float]  # every contributor's net score (a lazy ScoreMap)
    shares: ContributorShares  # what the attribution itself pays (may be empty)
    latency_ms: float
    fallback: ContributorShares | None = None  # what pays instead when ``shares`` is empty
    policy_fdr: float = SharePolicy.fdr

    @property
    def payout(self) -> ContributorShares:
        """The shares the contributor pool is actually split by."""
        return self.shares if not self.shares.is_empty or self.fallback is None else self.fallback


def with_predicted_labels(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Classifier queries: attach the model's own predicted class as ``labels``."""
    device = next(model.parameters()).device
    with torch.no_grad(), eval_mode(model):
        logits = model_logits(model(**model_inputs(inputs, device)))
    return {**inputs, "labels": logits.argmax(dim=-1)}


class Attributor:
    """Scores inferences of ``model`` against ``index``.

    Checks at construction that the model's trainable layers match the layout the index was built
    with; a different adapter would make every score meaningless.
    """

    def __init__(self, model: nn.Module, index: AttributionIndex, policy: SharePolicy = SharePolicy(),
                 probe_groups: int | None = None):
        """``probe_groups``: search a receipt's most similar rows among the rows of this many highest-scoring
        credit groups instead of scanning the whole index (``AttributionIndex.probed_top_rows``). Default:
        ``PROBE_GROUPS`` for indexes of at least ``PROBE_MIN_ROWS`` rows, an exact scan below."""
        self.index = index
        self.policy = policy
        if probe_groups is None:
            probe_groups = PROBE_GROUPS if index.num_rows >= PROBE_MIN_ROWS else 0
        self.probe_groups = probe_groups
        self.featurizer = GradientFeaturizer(model, token_reduction=index.method["token_reduction"])
        if self.featurizer.blocks != index.blocks:
            raise ValueError("model's trainable layers differ from the layers the index was built on")
        self.featurizer.projector = BlockProjector(self.featurizer.blocks, index.projection,
                                                   device=self.featurizer.device, bases=index.projection_bases())
        # Load the matrices and compile the scan kernel now (seconds, once per process) rather than
        # inside the first inference's latency.
        index.contributor_scores(torch.zeros(1, index.k))
        index.group_scores(torch.zeros(1, index.k))
        self.thresholds = bh_thresholds(index.manifest["credit"]["groups"], policy.fdr)

    def query_features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Projected query gradients ``[Q, k]`` on the CPU, where the index is scored."""
        return self.featurizer.features(inputs).float().cpu()

    def shares_for(self, query: torch.Tensor, group_scores: np.ndarray,
                   contributor_scores: np.ndarray | None = None) -> ContributorShares:
        """The share policy (shares.py) for one projected query ``[k]``. Shares need only the credit-group
        scores and the gathered rows; ``contributor_scores`` (every contributor's net score) only adds the
        negative influence and the paid contributors' net scores to the result."""
        index, tables, policy = self.index, self.index.credit(), self.policy
        negative = (negative_influence(index.contributors, contributor_scores) if contributor_scores is not None
                    else ScoreMap(index.contributors, np.zeros(0, dtype=np.int64), np.zeros(0)))
        query_norm = float(torch.linalg.vector_norm(query.double()))
        discovered, z_cut = discover_groups(group_scores, query_norm, tables.group_noise, self.thresholds,
                                            policy.top_groups)
        if discovered.size == 0:
            return ContributorShares({}, {}, negative, reason=NOBODY_ABOVE_NOISE.format(fdr=policy.fdr))
        spans = [tables.group_rows[tables.group_offsets[g]:tables.group_offsets[g + 1]] for g in discovered.tolist()]
        positions = np.concatenate(spans)
        local_group = np.repeat(np.arange(len(spans)), [len(span) for span in spans])
        row_scores = index.row_scores(positions, query)
        # A paid group's weight is its score beyond the cut it had to pass, so a group that barely passes
        # earns barely anything; rows share it by score relative to their own self-influence (RelatIF).
        weights = group_scores[discovered] - z_cut * tables.group_noise[discovered] * query_norm
        relative = tables.row_credit[positions] * row_scores / np.sqrt(tables.row_self_influence[positions])
        credit = credit_within_groups(local_group, weights, relative)
        return account_shares(row_positions=positions, row_credit=credit, row_owner=tables.row_owner,
                              contributors=index.contributors, row_ids=index.row_ids,
                              rows_per_contributor=policy.rows_per_contributor, negative=negative,
                              contributor_scores=contributor_scores, groups_discovered=int(discovered.size),
                              z_cut=z_cut)

    def attribute(self, inputs: Mapping[str, torch.Tensor], top_k_rows: int = 10) -> list[Attribution]:
        """Attribute a batch of inferences (``labels`` = the outputs). ``latency_ms`` is the batch's
        wall time divided by its size."""
        started = time.perf_counter()
        queries = self.query_features(inputs)
        contributor_scores = self.index.contributor_scores(queries).double().numpy()
        group_scores = self.index.group_scores(queries).double().numpy()
        probe = self.probe_groups
        top = None if probe else self.index.top_rows(queries, top_k_rows)
        contributors = self.index.contributors
        results = []
        for q in range(queries.shape[0]):
            shares = self.shares_for(queries[q], group_scores[q], contributor_scores[q])
            fallback = (self.index.fallback_shares(self.policy.rows_per_contributor, reason=shares.reason)
                        if shares.is_empty else None)
            found = (self.index.probed_top_rows(queries[q], group_scores[q], top_k_rows, probe) if probe
                     else TopRows(top.scores[q:q + 1], top.positions[q:q + 1]))
            rows = [self.index.row_score(int(p), float(s)) for p, s in zip(found.positions[0], found.scores[0])]
            results.append((rows, contributor_scores[q], shares, fallback))
        latency_ms = (time.perf_counter() - started) * 1000 / max(1, queries.shape[0])
        return [
            Attribution(rows, ScoreMap.full(contributors, scores), shares, latency_ms, fallback, self.policy.fdr)
            for rows, scores, shares, fallback in results
        ]
