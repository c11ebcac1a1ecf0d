"""Proof-of-Attribution engine: plain Python + PyTorch, no Django.

Flow: ``build_pass.build_index`` (per-example LoRA gradients → seeded block projection → damped curvature →
fp16 Ψ shards + contributor matrix + hashed manifest) → ``query.Attributor.attribute`` per inference (query
gradient → top rows, contributor scores, shares) → ``receipt.build_receipt`` / ``receipt.receipt_digest``.
``valuation.value_training_data`` values rows and flags likely-mislabeled ones; ``exact.ExactInfluence`` is the
full-parameter yardstick for small models. ``verbatim.build_span_index`` / ``SpanIndex.find_spans`` find where a
causal answer repeats a training row verbatim (suffix array; numpy, no torch). Module docstrings explain each rule.

The package re-exports nothing: import from the module that defines a name (``from attribution.engine.shares
import SharePolicy``). Importing the package, or one of its torch-free modules (``canonical``, ``layout``,
``receipt``, ``shares``, ``credit``), never loads torch, so web processes stay light; only the workers that
build, attribute or serve import the torch modules (``build``, ``build_pass``, ``index``, ``query``, ...).
"""
