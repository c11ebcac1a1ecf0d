"""The pass over the training data that builds an index (``build_index``): gradients in, ``IndexBuilder`` out.

``build.py`` holds what an index is built from and how it is finalised (``IndexConfig``, ``TrainingBatch``,
``IndexBuilder``); this module drives one build: fit the eigenbasis projection on the first rows when the
configuration asks for it, take every training row's projected gradient (and Fisher rows), and finalise.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

from .build import IndexBuilder, IndexConfig, TrainingBatch
from .eigenbasis import BasisFit, refine
from .gradients import FisherGradients, GradientFeaturizer
from .index import AttributionIndex
from .projection import BlockProjector, allocate_block_dims

# Memory an eigenbasis build may hold its fit sample's unprojected gradients in (MiniLM + LoRA r=8: about
# 1.5 MB a row with four Fisher draws, so about 700 rows); past it, rows are read a second time.
DEFAULT_GRADIENT_BUFFER_BYTES = 1 << 30


def build_index(
    model: torch.nn.Module,
    batches: Iterable[TrainingBatch],
    directory: Path | str,
    config: IndexConfig,
    model_hash: str,
    eval_inputs: Iterable[Mapping[str, torch.Tensor]] | None = None,
    gradient_buffer_bytes: int = DEFAULT_GRADIENT_BUFFER_BYTES,
) -> AttributionIndex:
    """Build an index for ``model`` (a peft LoRA model or any model whose trainable layers are
    Linear) over ``batches`` of training rows. ``model_hash`` identifies the model + adapter the
    gradients were taken at; it is recorded and becomes part of the index hash. ``eval_inputs``
    (held-out rows with their true labels, in batches) value the rows, flag harmful ones and measure
    the share policy's noise null (``IndexBuilder.finalize``). ``gradient_buffer_bytes`` bounds the memory an
    eigenbasis build may spend keeping its fit sample's unprojected gradients (``_fit_eigenbasis``); it changes
    the build's time, never the index."""
    featurizer = GradientFeaturizer(model, token_reduction=config.token_reduction)
    if config.curvature not in ("fisher", "empirical_fisher"):
        raise ValueError(f"unknown curvature {config.curvature!r}")
    bases, kept = None, []
    if config.projection.kind == "eigenbasis":
        batches, bases, kept = _fit_eigenbasis(featurizer, batches, config, gradient_buffer_bytes)
    projector = BlockProjector(featurizer.blocks, config.projection, device=featurizer.device, bases=bases)
    featurizer.projector = projector
    builder = IndexBuilder(directory, config, featurizer.blocks, model_hash)
    builder.projection_bases = bases
    for batch, gradients in kept:  # the fit sample's gradients, projected now that the basis is known
        if config.curvature == "fisher":
            features, curvature_rows = featurizer.project_fisher(gradients)
        else:
            features, curvature_rows = featurizer.projector.project(gradients.gradients[0]), None
        builder.add(features, batch.row_ids, batch.contributor_ids, batch.cluster_ids, curvature_rows,
                    batch.accepted_order)
    kept.clear()
    for batch in batches:
        curvature_rows = None
        if config.curvature == "fisher":  # one forward for both (GradientFeaturizer.features_and_fisher)
            features, curvature_rows = featurizer.features_and_fisher(
                batch.inputs, samples=config.fisher_samples, seed=config.projection.seed)
        else:
            features = featurizer.features(batch.inputs)
        builder.add(features, batch.row_ids, batch.contributor_ids, batch.cluster_ids, curvature_rows,
                    batch.accepted_order)
    eval_queries = None
    if eval_inputs is not None:
        parts = [featurizer.features(inputs).float().cpu() for inputs in eval_inputs]
        eval_queries = torch.cat(parts) if parts else None
    return builder.finalize(eval_queries)


def _fit_eigenbasis(featurizer: GradientFeaturizer, batches: Iterable[TrainingBatch], config: IndexConfig,
                    buffer_bytes: int) -> tuple[Iterable[TrainingBatch], dict, list[tuple[TrainingBatch, FisherGradients]]]:
    """Fit each block's eigenbasis on the first ``config.eigenbasis_rows`` training rows (their unprojected
    gradients), and hand back what the build still has to do: the fit sample's gradients that were kept
    (projected as soon as the basis is known), then the batches to read again, then the rest of the stream.

    The fit needs every row's full gradient before anything can be projected, and so does the index. Taking
    the index's gradients (the labelled loss's and the Fisher draws', ``fisher_gradients``) in the fit pass and
    keeping them, up to ``buffer_bytes``, spares those rows a second forward and backward: an index over fewer
    rows than the fit sample is one pass over the data, as it was before the eigenbasis. Rows past the budget
    are read again; the index is the same either way (tests/engine_attribution/test_attr_eigenbasis.py)."""
    iterator = iter(batches)
    kept: list[tuple[TrainingBatch, FisherGradients]] = []
    again: list[TrainingBatch] = []
    kept_bytes = 0
    fit = BasisFit(featurizer.blocks)
    for batch in iterator:
        gradients = _fit_gradients(featurizer, batch, config)
        fit.add(gradients.gradients[0])
        if not again and kept_bytes + gradients.nbytes <= buffer_bytes:
            kept.append((batch, gradients))
            kept_bytes += gradients.nbytes
        else:  # rows stay in their order: the kept ones are a prefix of the stream
            again.append(batch)
        if fit.rows >= config.eigenbasis_rows:
            break
    block_dims = allocate_block_dims([block.size for block in featurizer.blocks], config.projection.k)
    bases = fit.bases(block_dims, config.eigenbasis_fraction, config.eigenbasis_candidates)
    if config.eigenbasis_candidates > 1:
        # The principal directions need the fit sample's gradients once more: the kept ones from memory, the
        # rest taken again (the same gradients the fit took, so the basis does not depend on the buffer).
        def fit_sample_gradients():
            for _, gradients in kept:
                yield gradients.gradients[0]
            for batch in again:
                yield _fit_gradients(featurizer, batch, config).gradients[0]

        sample = [batch for batch, _ in kept] + again
        bases = refine(bases, featurizer.blocks, block_dims, config.eigenbasis_fraction, fit_sample_gradients(),
                       row_weights=duplicate_vote_weights(sample))
    return itertools.chain(again, iterator), bases, kept


def duplicate_vote_weights(batches: Sequence[TrainingBatch]) -> list[torch.Tensor | None]:
    """Per batch, ``1/|cluster|`` for each row (its ingestion near-duplicate cluster, counted over ``batches``),
    or ``None`` for a batch whose rows are all unique: a row and its copies share one vote in the fit."""
    sizes = Counter(cluster for batch in batches for cluster in (batch.cluster_ids or ()) if cluster is not None)
    weights: list[torch.Tensor | None] = []
    for batch in batches:
        clusters = batch.cluster_ids or ()
        if not any(cluster is not None and sizes[cluster] > 1 for cluster in clusters):
            weights.append(None)
            continue
        weights.append(torch.tensor([1.0 / sizes[cluster] if cluster is not None else 1.0 for cluster in clusters],
                                    dtype=torch.float64))
    return weights


def _fit_gradients(featurizer: GradientFeaturizer, batch: TrainingBatch, config: IndexConfig) -> FisherGradients:
    """The gradients the fit pass takes of a batch: the labelled loss's and, for the true Fisher, its rows."""
    if config.curvature == "fisher":
        return featurizer.fisher_gradients(batch.inputs, samples=config.fisher_samples, seed=config.projection.seed)
    return FisherGradients([featurizer.per_example_gradients(batch.inputs)], 0, False, True)
