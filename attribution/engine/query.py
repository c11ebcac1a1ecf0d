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

import torch
from torch import nn

from .gradients import GradientFeaturizer, eval_mode, model_inputs, model_logits
from .index import AttributionIndex, RowScore
from .projection import BlockProjector
from .shares import ContributorShares, ScoreMap, SharePolicy, contributor_shares


@dataclass(frozen=True)
class Attribution:
    """One inference's attribution."""

    top_rows: list[RowScore]
    contributor_scores: Mapping[str, float]  # every contributor's net score (a lazy ScoreMap)
    shares: ContributorShares
    latency_ms: float


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

    def __init__(self, model: nn.Module, index: AttributionIndex, policy: SharePolicy = SharePolicy()):
        self.index = index
        self.policy = policy
        self.featurizer = GradientFeaturizer(model, token_reduction=index.method["token_reduction"])
        if self.featurizer.blocks != index.blocks:
            raise ValueError("model's trainable layers differ from the layers the index was built on")
        self.featurizer.projector = BlockProjector(self.featurizer.blocks, index.projection,
                                                   device=self.featurizer.device)
        # Load the contributor matrix and compile the scan kernel now (seconds, once per process)
        # rather than inside the first inference's latency.
        index.contributor_scores(torch.zeros(1, index.k))
        index.contributor_norms()

    def query_features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Projected query gradients ``[Q, k]`` on the CPU, where the index is scored."""
        return self.featurizer.features(inputs).float().cpu()

    def attribute(self, inputs: Mapping[str, torch.Tensor], top_k_rows: int = 10) -> list[Attribution]:
        """Attribute a batch of inferences (``labels`` = the outputs). ``latency_ms`` is the batch's
        wall time divided by its size."""
        started = time.perf_counter()
        queries = self.query_features(inputs)
        top = self.index.top_rows(queries, top_k_rows)
        contributor_scores = self.index.contributor_scores(queries).numpy()
        chance = self.index.chance_scores(queries).numpy()
        contributors = self.index.contributors
        results = []
        for q in range(queries.shape[0]):
            scores = contributor_scores[q]
            shares = contributor_shares(contributors, scores, self.policy, chance=chance[q])
            rows = [self.index.row_score(int(p), float(s)) for p, s in zip(top.positions[q], top.scores[q])]
            results.append((rows, scores, shares))
        latency_ms = (time.perf_counter() - started) * 1000 / max(1, queries.shape[0])
        return [
            Attribution(rows, ScoreMap.full(contributors, scores), shares, latency_ms)
            for rows, scores, shares in results
        ]
