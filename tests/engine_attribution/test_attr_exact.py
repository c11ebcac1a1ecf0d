"""Exact-mode influence against a brute-force Hessian (torch.autograd.functional.hessian), float64."""

import torch
from attr_tiny_models import random_classification_inputs, slice_inputs, tiny_classifier
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from attribution.engine.exact import ExactInfluence
from attribution.engine.gradients import GradientFeaturizer, per_example_loss

L2 = 0.1


def brute_force_influence(model, train, query):
    model.eval()
    featurizer = GradientFeaturizer(model)
    names = {id(p): n for n, p in model.named_parameters()}
    params = featurizer.parameters()
    shapes = [p.shape for p in params]
    theta = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_at(flat, inputs):
        values, offset = {}, 0
        for p, shape in zip(params, shapes):
            values[names[id(p)]] = flat[offset : offset + shape.numel()].view(shape)
            offset += shape.numel()
        model_inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        logits = functional_call(model, values, kwargs=model_inputs, strict=False).logits
        return per_example_loss(logits, inputs["labels"]).sum()

    def objective(flat):
        return loss_at(flat, train) + 0.5 * L2 * flat.pow(2).sum()

    with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernel has no double backward
        hessian = torch.autograd.functional.hessian(objective, theta)

    def gradient(inputs):
        flat = theta.clone().requires_grad_(True)
        return torch.autograd.grad(loss_at(flat, inputs), flat)[0]

    train_grads = torch.stack([gradient(slice_inputs(train, slice(i, i + 1))) for i in range(train["labels"].shape[0])])
    query_grads = torch.stack([gradient(slice_inputs(query, slice(i, i + 1))) for i in range(query["labels"].shape[0])])
    return -query_grads @ torch.linalg.solve(hessian, train_grads.T)


def test_exact_influence_matches_brute_force_hessian():
    model = tiny_classifier(hidden=8, rank=2, layers=1, dtype=torch.float64)
    train = random_classification_inputs(10, length=8, seed=3)
    query = random_classification_inputs(3, length=8, seed=4)
    exact = ExactInfluence(model, [slice_inputs(train, slice(0, 6)), slice_inputs(train, slice(6, 10))], l2=L2)
    expected = brute_force_influence(model, train, query)
    actual = exact.influence(query)
    assert actual.shape == (3, 10)
    assert float((actual - expected).abs().max()) < 1e-6 * max(1.0, float(expected.abs().max()))
    assert torch.equal(exact.scores(query), -actual)


def test_gauss_newton_equals_hessian_for_a_linear_softmax_model():
    """For softmax regression the loss Hessian is exactly the Gauss-Newton matrix."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 3)).double()
    train = {"input": torch.randn(20, 5, dtype=torch.float64), "labels": torch.randint(0, 3, (20,))}
    hessian = ExactInfluence(model, [train], curvature="hessian", l2=L2).hessian
    gauss_newton = ExactInfluence(model, [train], curvature="gauss_newton", l2=L2).hessian
    assert torch.allclose(hessian, gauss_newton, atol=1e-10)
