"""Hook-based per-example gradients against a per-example autograd loop."""

import pytest
import torch
from attr_tiny_models import (
    causal_inputs,
    random_classification_inputs,
    slice_inputs,
    tiny_causal_lm,
    tiny_classifier,
)

from attribution.engine.gradients import GradientFeaturizer, per_example_loss, trainable_linear_layers


def autograd_loop_gradients(model, inputs, token_reduction="sum"):
    """Reference: one forward/backward per example, gradients read from ``.grad``."""
    featurizer = GradientFeaturizer(model, token_reduction=token_reduction)
    params = featurizer.parameters()
    rows = []
    model.eval()
    for i in range(inputs["labels"].shape[0]):
        single = slice_inputs(inputs, slice(i, i + 1))
        logits = model(input_ids=single["input_ids"], attention_mask=single["attention_mask"]).logits
        loss = per_example_loss(logits, single["labels"], token_reduction).sum()
        grads = torch.autograd.grad(loss, params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def max_relative_error(actual, expected):
    return float((actual - expected).abs().max() / expected.abs().max())


def test_classifier_hook_gradients_match_autograd_loop():
    model = tiny_classifier(dtype=torch.float64)
    inputs = random_classification_inputs(6, seed=1)
    hooked = GradientFeaturizer(model).features(inputs)
    reference = autograd_loop_gradients(model, inputs)
    assert hooked.shape == reference.shape
    assert max_relative_error(hooked, reference) < 1e-5
    # The classification head (modules_to_save) is part of the gradient, and it is not zero.
    names = [block.name for block in GradientFeaturizer(model).blocks]
    assert any("modules_to_save" in name for name in names)
    assert any("lora_A" in name for name in names) and any("lora_B" in name for name in names)


@pytest.mark.parametrize("token_reduction", ["sum", "mean"])
def test_causal_lm_hook_gradients_match_autograd_loop_with_masked_labels(token_reduction):
    model = tiny_causal_lm(dtype=torch.float64)
    inputs = causal_inputs(["Q: 2+2? A:", "Q: hi A:", "Say:"], [" 4", " hello there", " ok"], length=20)
    hooked = GradientFeaturizer(model, token_reduction=token_reduction).features(inputs)
    reference = autograd_loop_gradients(model, inputs, token_reduction)
    assert max_relative_error(hooked, reference) < 1e-5


def test_prompt_tokens_do_not_contribute_to_the_gradient():
    model = tiny_causal_lm(dtype=torch.float64)
    featurizer = GradientFeaturizer(model)
    same_response = causal_inputs(["Q: cat? A:"], [" yes"])
    all_masked = {**same_response, "labels": torch.full_like(same_response["labels"], -100)}
    assert featurizer.features(all_masked).abs().max() == 0
    assert featurizer.features(same_response).abs().max() > 0


def test_gradients_leave_parameter_grads_and_train_mode_untouched():
    model = tiny_classifier()
    model.train()
    GradientFeaturizer(model).features(random_classification_inputs(4))
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_true_fisher_rows_are_the_class_expectation_for_a_classifier():
    model = tiny_classifier(hidden=16, dtype=torch.float64)
    inputs = random_classification_inputs(3, seed=2)
    featurizer = GradientFeaturizer(model)
    rows = featurizer.fisher_features(inputs)  # [B, C, d]
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits, -1)
    for i in range(3):
        expected = torch.zeros(rows.shape[-1], rows.shape[-1], dtype=torch.float64)
        for c in range(probs.shape[1]):
            g = featurizer.features({**slice_inputs(inputs, slice(i, i + 1)), "labels": torch.tensor([c])})[0]
            expected += probs[i, c] * torch.outer(g, g)
        assert torch.allclose(rows[i].T @ rows[i], expected, rtol=1e-8, atol=1e-12)


def test_an_index_builds_features_and_the_exact_fisher_from_backward_passes_along_a_logit_basis():
    """Where a build would draw most classes, it runs C-1 backward passes along a basis of the logits (the
    space every cross-entropy gradient lives in) and forms the labelled gradient and the Fisher rows from
    them: the same features and the exact class expectation, with fewer passes."""
    from attribution.engine import gradients as gradients_module

    model = tiny_classifier(hidden=16, dtype=torch.float64)  # untrained: every class is likely
    inputs = random_classification_inputs(5, seed=3)
    featurizer = GradientFeaturizer(model)
    passes = []
    original = gradients_module.GradientFeaturizer._gradients

    def counted(self, inputs, draws):
        results, classes = original(self, inputs, draws)
        passes.append(len(results))
        return results, classes

    gradients_module.GradientFeaturizer._gradients = counted
    try:
        features, rows = featurizer.features_and_fisher(inputs)
    finally:
        gradients_module.GradientFeaturizer._gradients = original
    classes = rows.shape[1]
    assert passes == [classes - 1]  # not 1 + classes
    assert torch.allclose(features, featurizer.features(inputs), rtol=1e-9, atol=1e-12)
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits, -1)
    for i in range(5):
        expected = torch.zeros(rows.shape[-1], rows.shape[-1], dtype=torch.float64)
        for c in range(classes):
            g = featurizer.features({**slice_inputs(inputs, slice(i, i + 1)), "labels": torch.tensor([c])})[0]
            expected += probs[i, c] * torch.outer(g, g)
        assert torch.allclose(rows[i].T @ rows[i], expected, rtol=1e-8, atol=1e-12)
        assert rows[i, classes - 1].abs().max() == 0  # padded to one row per class, like the drawn rows


def test_trainable_parameters_outside_linear_layers_are_rejected():
    model = tiny_classifier()
    model.base_model.model.bert.embeddings.LayerNorm.weight.requires_grad_(True)
    with pytest.raises(ValueError, match="outside nn.Linear"):
        trainable_linear_layers(model)
