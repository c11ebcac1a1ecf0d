"""Per-example gradients of the training loss with respect to a model's trainable Linear layers.

Why hooks and not a per-example loop: for a Linear layer ``y = x Wᵀ + b`` the gradient of example
``i``'s loss is ``Σ_t g_it ⊗ x_it`` (``g`` = gradient w.r.t. the layer output, summed over sequence
positions ``t``), because examples in a batch never mix (eval mode, no batch norm). So one forward
and one backward over a whole batch give exact per-example gradients: a forward hook keeps each
layer's input and output, and ``torch.autograd.grad`` with respect to those outputs returns the
``g`` tensors. Asking autograd for output gradients (instead of backpropagating into ``.grad``)
leaves the parameters' ``.grad`` untouched and skips the batch-summed weight-gradient GEMMs that
would be thrown away anyway.

Which parameters: every ``nn.Linear`` whose weight requires grad. On a peft LoRA model those are
exactly the ``lora_A`` / ``lora_B`` layers plus a trained head in ``modules_to_save`` (the frozen
base layers are skipped); on a plain model (the logistic-regression harness) it is the model's own
Linear layer. Any other trainable parameter (e.g. LoRA on embeddings) is rejected up front rather
than silently left out of attribution.

Loss convention: the per-example loss is the negative log-likelihood of the example's labelled
tokens. ``labels`` of shape ``[B]`` mean sequence classification (one class id per row); ``[B, T]``
mean a causal LM, where labels are shifted by one position and ``-100`` marks prompt and padding
tokens, so only response tokens count. ``token_reduction="sum"`` (default) sums over response
tokens, which makes a query's loss exactly ``-log p(response)``; ``"mean"`` divides by each row's
response length so long rows do not get proportionally larger gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import nn

from .canonical import derived_seed

TokenReduction = Literal["sum", "mean"]
IGNORE_INDEX = -100
# Classifier Fisher draws stop once every row's drawn classes hold all but this much probability.
FISHER_TAIL_MASS = 1e-3


@dataclass(frozen=True)
class GradientBlock:
    """One trainable Linear layer: its gradient is flattened as ``weight`` (row-major) then ``bias``."""

    name: str
    out_features: int
    in_features: int
    has_bias: bool

    @property
    def size(self) -> int:
        return self.out_features * self.in_features + (self.out_features if self.has_bias else 0)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "out_features": self.out_features,
            "in_features": self.in_features,
            "has_bias": self.has_bias,
        }


def trainable_linear_layers(model: nn.Module) -> list[tuple[GradientBlock, nn.Linear]]:
    """The model's trainable Linear layers in ``named_modules`` order, with their gradient layout.

    Raises ``ValueError`` if a trainable parameter lives outside a Linear layer, because attribution
    that ignores part of what was trained would under-credit the rows that shaped it.
    """
    layers: list[tuple[GradientBlock, nn.Linear]] = []
    covered: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.weight.requires_grad:
            has_bias = module.bias is not None and module.bias.requires_grad
            layers.append((GradientBlock(name, module.out_features, module.in_features, has_bias), module))
            covered.add(id(module.weight))
            if has_bias:
                covered.add(id(module.bias))
    uncovered = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
    if uncovered:
        raise ValueError(f"trainable parameters outside nn.Linear layers cannot be attributed: {uncovered}")
    if not layers:
        raise ValueError("model has no trainable nn.Linear layer to attribute")
    return layers


class Projector(Protocol):
    """Maps per-layer per-example gradients ``{name: [B, d_m]}`` to features ``[B, k]``."""

    @property
    def dim(self) -> int: ...

    def project(self, gradients: Mapping[str, torch.Tensor]) -> torch.Tensor: ...


class ConcatProjector:
    """No projection: the full flattened gradient (exact mode, and tests of the hooks)."""

    def __init__(self, blocks: Sequence[GradientBlock]):
        self.blocks = list(blocks)

    @property
    def dim(self) -> int:
        return sum(block.size for block in self.blocks)

    def project(self, gradients: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([gradients[block.name] for block in self.blocks], dim=1)


def _token_log_likelihood_terms(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token negative log-likelihoods ``[B, T']`` and the mask of tokens that count."""
    if labels.dim() == 1:
        losses = nn.functional.cross_entropy(logits, labels, reduction="none")
        return losses.unsqueeze(1), torch.ones_like(losses, dtype=torch.bool).unsqueeze(1)
    shifted_logits = logits[:, :-1, :]
    shifted_labels = labels[:, 1:]
    mask = shifted_labels != IGNORE_INDEX
    losses = nn.functional.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.shape[-1]),
        shifted_labels.reshape(-1).clamp_min(0),
        reduction="none",
    ).view_as(shifted_labels)
    return losses * mask, mask


def per_example_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    token_reduction: TokenReduction = "sum",
    token_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-example negative log-likelihood ``[B]`` (module docstring: labels, shifting, reduction).

    ``token_weights`` (broadcastable to ``[B, T']``) scale individual tokens; the true-Fisher label
    draws use it to weight each drawn label by its probability.
    """
    token_losses, mask = _token_log_likelihood_terms(logits, labels)
    weights = mask.to(token_losses.dtype)
    if token_reduction == "mean":
        weights = weights / mask.sum(dim=1, keepdim=True).clamp_min(1)
    elif token_reduction != "sum":
        raise ValueError(f"unknown token_reduction {token_reduction!r}")
    if token_weights is not None:
        weights = weights * token_weights
    return (token_losses * weights).sum(dim=1)


@dataclass(frozen=True)
class LogitCotangent:
    """A backward seeded with ``vectors [B, C]`` on the logits instead of a loss: per example ``J_iᵀ v_i``."""

    vectors: torch.Tensor


def centred_logit_basis(classes: int) -> torch.Tensor:
    """``[C, C-1]`` orthonormal columns spanning the logit directions orthogonal to all-ones.

    A classifier's cross-entropy gradient on the logits is ``p - e_y``, which sums to zero, and so is every
    term of the true Fisher ``diag(p) - ppᵀ``: all of them live in this ``C-1``-dimensional space. Backward
    passes along its basis give the labelled gradient and the exact Fisher of a row as linear combinations
    (``logit_basis_coefficients``): ``C-1`` backward passes instead of one plus one per drawn class."""
    centred = torch.eye(classes, dtype=torch.float64) - 1.0 / classes
    q, _ = torch.linalg.qr(centred[:, : classes - 1])
    return q


def logit_basis_coefficients(probs: torch.Tensor, labels: torch.Tensor,
                             basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the labelled gradient's coordinates ``[B, C-1]`` on ``basis`` (``Uᵀ(p - e_y)``) and a square
    root ``R [B, C-1, C-1]`` of the Fisher's ``UᵀMU`` (``M = diag(p) - ppᵀ``): Fisher rows ``J U R[:, m]``
    sum, as outer products, to exactly ``J M Jᵀ``."""
    probs = probs.double()
    residual = probs - nn.functional.one_hot(labels, probs.shape[-1]).to(probs.dtype)
    labelled = residual @ basis
    fisher = torch.diag_embed(probs) - probs.unsqueeze(2) * probs.unsqueeze(1)
    small = basis.T @ fisher @ basis
    values, vectors = torch.linalg.eigh((small + small.transpose(1, 2)) / 2)
    return labelled, vectors * values.clamp_min(0.0).sqrt().unsqueeze(1)


def _combine(gradients: list[dict[str, torch.Tensor]], coefficients: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Per-example linear combinations: output ``m`` = ``Σ_j coefficients[m][:, j] · gradients[j]``, per row."""
    out = []
    for weights in coefficients:
        combined = {}
        for name in gradients[0]:
            stacked = torch.stack([g[name] for g in gradients])  # [J, B, d]
            combined[name] = torch.einsum("jbd,bj->bd", stacked, weights.to(stacked.dtype).to(stacked.device))
        out.append(combined)
    return out


@dataclass
class FisherGradients:
    """Unprojected per-example gradients ``[{layer: [B, d_m]}, …]``: the labelled loss's first when
    ``with_features``, then one per Fisher draw; ``classes`` is the logits' last dimension."""

    gradients: list[dict[str, torch.Tensor]]
    classes: int
    classifier: bool
    with_features: bool

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for g in self.gradients for t in g.values())


def model_logits(output) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output


class GradientFeaturizer:
    """Turns batches of tokenised rows into per-example gradient features.

    ``inputs`` is a dict of tensors: ``labels`` plus whatever the model's forward takes
    (``input_ids``, ``attention_mask``, or ``features`` for a plain model). Gradients are taken in
    eval mode so dropout (LoRA dropout included) cannot make a row's features random.
    """

    def __init__(
        self,
        model: nn.Module,
        projector: Projector | None = None,
        token_reduction: TokenReduction = "sum",
    ):
        self.model = model
        self._layers = trainable_linear_layers(model)
        self.blocks = [block for block, _ in self._layers]
        self.projector: Projector = projector if projector is not None else ConcatProjector(self.blocks)
        self.token_reduction = token_reduction

    @property
    def dim(self) -> int:
        return self.projector.dim

    @property
    def device(self) -> torch.device:
        return self._layers[0][1].weight.device

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters in gradient-layout order (each layer's weight, then its bias)."""
        params = []
        for block, module in self._layers:
            params.append(module.weight)
            if block.has_bias:
                params.append(module.bias)
        return params

    def per_example_gradients(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Unprojected per-example gradients ``{layer name: [B, d_m]}`` of the labelled loss."""
        labels = inputs["labels"].to(self.device)
        return self._gradients(inputs, [(labels, None)])[0][0]

    def features(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Projected per-example gradients ``[B, k]`` of the labelled loss (train rows and queries)."""
        return self.projector.project(self.per_example_gradients(inputs))

    def fisher_features(self, inputs: Mapping[str, torch.Tensor], samples: int = 1, seed: int = 0) -> torch.Tensor:
        """Rows ``[B, R, k]`` whose outer products sum to each example's true-Fisher contribution.

        The true Fisher (equal to the Gauss-Newton matrix for softmax cross-entropy) takes the
        expectation of ``g gᵀ`` over labels drawn from the model's own predictive distribution
        instead of the observed label (the empirical Fisher). For a classifier the expectation is
        exact: ``Σ_c p_c g_c g_cᵀ``, i.e. one row per class weighted by ``√p_c``. For a causal LM the
        vocabulary is too large, so ``samples`` label sequences are drawn (deterministically from
        ``seed``) at the response positions, each weighted by ``1/√samples``.
        """
        return self.features_and_fisher(inputs, samples, seed, with_features=False)[1]

    def features_and_fisher(self, inputs: Mapping[str, torch.Tensor], samples: int = 1, seed: int = 0,
                            with_features: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``features(inputs)`` and ``fisher_features(inputs)`` from one forward pass (an index build needs
        both for every training row): the labelled loss's backward, then one backward per Fisher draw.

        For a classifier the draws go by rank: the 1st most likely class of every row, then the 2nd, and
        so on, stopping once every row's drawn classes hold all but ``FISHER_TAIL_MASS`` of its predictive
        probability. A fitted model puts almost all of it on one or two classes, so a build does two or
        three backward passes per batch instead of one per class; the classes left out would each
        contribute less than ``FISHER_TAIL_MASS`` of the row's Fisher trace, by weight. Rows are padded
        with zeros to one per class, so every batch has the same shape."""
        return self.project_fisher(self.fisher_gradients(inputs, samples, seed, with_features))

    def fisher_gradients(self, inputs: Mapping[str, torch.Tensor], samples: int = 1, seed: int = 0,
                         with_features: bool = True) -> FisherGradients:
        """The unprojected per-example gradients behind ``features_and_fisher`` (same draws, same order)."""
        labels = inputs["labels"].to(self.device)
        combine: dict[str, torch.Tensor] = {}

        def draws(logits: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
            probs = torch.softmax(logits.detach().double(), dim=-1)
            chosen: list[tuple[torch.Tensor, torch.Tensor | None]] = [(labels, None)] if with_features else []
            if labels.dim() == 1:
                ranked_probs, ranked_classes = torch.sort(probs, dim=-1, descending=True, stable=True)
                covered = ranked_probs.cumsum(dim=-1)
                needed = int((covered < 1.0 - FISHER_TAIL_MASS).sum(dim=-1).max()) + 1  # draws by rank
                classes = probs.shape[-1]
                if with_features and 1 < classes and classes - 1 < len(chosen) + needed and bool((labels >= 0).all()):
                    basis = centred_logit_basis(classes).to(probs.device)
                    combine["labelled"], combine["fisher"] = logit_basis_coefficients(probs, labels, basis)
                    return [(LogitCotangent(basis[:, j].to(logits.dtype).expand_as(logits)), None)
                            for j in range(classes - 1)]
                for rank in range(probs.shape[-1]):
                    chosen.append((ranked_classes[:, rank], ranked_probs[:, rank].sqrt().to(logits.dtype).unsqueeze(1)))
                    if bool((covered[:, rank] >= 1.0 - FISHER_TAIL_MASS).all()):
                        break
                return chosen
            generator = torch.Generator(device="cpu").manual_seed(derived_seed(seed, "fisher"))
            predictive = probs[:, :-1, :].reshape(-1, probs.shape[-1]).cpu()
            weight = torch.full(labels[:, 1:].shape, samples ** -0.5, dtype=logits.dtype, device=self.device)
            for _ in range(samples):
                sampled = torch.multinomial(predictive.float(), 1, generator=generator).view(labels.shape[0], -1)
                draw = labels.clone()
                draw[:, 1:] = torch.where(labels[:, 1:] == IGNORE_INDEX, labels[:, 1:], sampled.to(self.device))
                chosen.append((draw, weight))
            return chosen

        gradients, classes = self._gradients(inputs, draws)
        if combine:  # gradients along the logit basis → the labelled gradient and exact Fisher rows
            gradients = _combine(gradients, [combine["labelled"], *combine["fisher"].unbind(dim=2)])
        return FisherGradients(gradients, classes, labels.dim() == 1, with_features)

    def project_fisher(self, gradients: FisherGradients) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``features_and_fisher``'s projection step, for gradients taken before the projector was known (an
        eigenbasis build keeps its fit sample's gradients and projects them once the basis is fitted)."""
        projected = [self.projector.project(g) for g in gradients.gradients]
        features = projected.pop(0) if gradients.with_features else None
        fisher = torch.stack(projected, dim=1)
        if gradients.classifier and fisher.shape[1] < gradients.classes:
            fisher = torch.cat([fisher, fisher.new_zeros(fisher.shape[0], gradients.classes - fisher.shape[1],
                                                         fisher.shape[2])], dim=1)
        return features, fisher

    def _gradients(
        self, inputs: Mapping[str, torch.Tensor],
        draws: Sequence[tuple[torch.Tensor, torch.Tensor | None]]
        | Callable[[torch.Tensor], Sequence[tuple[torch.Tensor, torch.Tensor | None]]],
    ) -> tuple[list[dict[str, torch.Tensor]], int]:
        """One forward, one backward per label draw; each draw's optional weights scale its tokens.
        ``draws`` may be a function of the forward's logits. Also returns the logits' last dimension."""
        capture = _LinearCapture(self._layers)
        with eval_mode(self.model), torch.enable_grad(), capture:
            logits = model_logits(self.model(**model_inputs(inputs, self.device)))
            outputs = capture.outputs_requiring_grad()
            chosen = draws(logits) if callable(draws) else draws
            results = []
            for position, (labels, extra_weights) in enumerate(chosen):
                if isinstance(labels, LogitCotangent):  # J_iᵀ v_i: the gradient of logits_i · v_i
                    loss = (logits * labels.vectors.to(logits.dtype)).sum()
                    labels = labels.vectors
                else:
                    loss = per_example_loss(logits, labels, self.token_reduction, extra_weights).sum()
                output_grads = torch.autograd.grad(
                    loss, outputs, retain_graph=position < len(chosen) - 1, allow_unused=True
                )
                results.append(capture.per_example_gradients(output_grads, batch_size=labels.shape[0]))
        return results, logits.shape[-1]


def model_inputs(inputs: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Everything but ``labels``, on the model's device: what the model's forward receives."""
    return {key: value.to(device) for key, value in inputs.items() if key != "labels"}


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside (no dropout), the caller's train/eval state restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class _LinearCapture:
    """Forward hooks that keep each trainable Linear layer's inputs and outputs for one forward."""

    def __init__(self, layers: Sequence[tuple[GradientBlock, nn.Linear]]):
        self.layers = layers
        self.calls: list[tuple[GradientBlock, torch.Tensor, torch.Tensor]] = []
        self._handles: list = []

    def __enter__(self):
        for block, module in self.layers:
            self._handles.append(module.register_forward_hook(self._hook(block)))
        return self

    def __exit__(self, *exc):
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, block: GradientBlock):
        def keep(module, args, output):
            # Outputs computed without grad (e.g. under no_grad) take no part in the loss gradient.
            if output.requires_grad:
                self.calls.append((block, args[0].detach(), output))

        return keep

    def outputs_requiring_grad(self) -> list[torch.Tensor]:
        if not self.calls:
            raise RuntimeError("no trainable Linear layer produced a differentiable output")
        return [output for _, _, output in self.calls]

    def per_example_gradients(
        self, output_grads: Sequence[torch.Tensor | None], batch_size: int
    ) -> dict[str, torch.Tensor]:
        # A layer called several times in one forward (weight sharing) sums its calls' gradients.
        result: dict[str, torch.Tensor] = {}
        for (block, layer_input, _output), grad_output in zip(self.calls, output_grads):
            if grad_output is None:
                continue
            x = layer_input.reshape(batch_size, -1, block.in_features).to(grad_output.dtype)
            g = grad_output.reshape(batch_size, -1, block.out_features)
            parts = [torch.einsum("bto,bti->boi", g, x).reshape(batch_size, -1)]
            if block.has_bias:
                parts.append(g.sum(dim=1))
            flat = torch.cat(parts, dim=1)
            result[block.name] = result[block.name] + flat if block.name in result else flat
        for block, module in self.layers:
            if block.name not in result:
                result[block.name] = torch.zeros(batch_size, block.size, dtype=module.weight.dtype,
                                                 device=module.weight.device)
        return result
