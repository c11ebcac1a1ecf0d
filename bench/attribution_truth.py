"""Attribution quality against ground truth on an exactly solvable model.

Multinomial logistic regression on scikit-learn's bundled digits, L2-regularised and solved by
Newton's method in float64 to a gradient norm of 1e-10, so retraining is exact and deterministic:
  * LOO: for every training row, retrain without it (warm-started) and record each test point's
    loss change; score = mean over test points of Spearman(predicted score, actual change).
  * LDS: 100 retrains on random 50% subsets; for each test point, Spearman between the predicted
    loss (minus the sum of the subset's scores) and the actual test loss; averaged.
Ground truth is cached in var/bench/. Methods scored with the engine's own code paths (the
softmax-regression weights play the role of the LoRA parameters):
  * exact: ExactInfluence (full-parameter exact Hessian of the regularised objective),
  * production: build_index + Attributor with the platform's configuration (bench/platform_index.py:
    orthogonal block projection to k=1024, damped true-Fisher curvature, fp16 Ψ), plus the
    empirical-Fisher, smaller-k and weighted-damping-rule variants for context. The index has one
    damping: LOO Spearman and LDS are both measured on the stored Ψ row scores, which are exactly the
    rows the contributor matrix sums for payouts (checked).
This harness is the exact-plumbing check (d = 650 < k: the projection is nearly lossless here);
bench/attribution_convex.py is the one where d ≫ k and the approximation is exercised.

Usage: .venv/bin/python bench/attribution_truth.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from attribution.engine.build import TrainingBatch  # noqa: E402
from attribution.engine.exact import ExactInfluence  # noqa: E402
from bench.platform_index import lds, platform_config, platform_scores  # noqa: E402

CACHE_DIR = Path(__file__).resolve().parents[1] / "var" / "bench"
L2 = 1.0
CLASSES = 10
NEWTON_TOLERANCE = 1e-10
LDS_SUBSETS = 100
_REFRESH = 20


class SoftmaxRegression(nn.Module):
    def __init__(self, features: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(features, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


def load_data(n_train: int, n_test: int):
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float64)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = order[:n_train], order[n_train : n_train + n_test]
    return x[train], y[train], x[test], y[test]


def with_bias(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)


def hessian(xb: torch.Tensor, theta: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Hessian of Σ_i w_i CE_i + L2/2 ‖θ‖², laid out like θ.reshape(-1)."""
    p = torch.softmax(xb @ theta.T, dim=1)
    a = (torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)) * weights[:, None, None]  # [n, C, C]
    outer = (xb.unsqueeze(2) * xb.unsqueeze(1)).reshape(len(xb), -1)  # [n, (f+1)²]
    f = xb.shape[1]
    h = (a.reshape(len(xb), -1).T @ outer).reshape(CLASSES, CLASSES, f, f).permute(0, 2, 1, 3)
    return h.reshape(CLASSES * f, CLASSES * f) + L2 * torch.eye(CLASSES * f, dtype=torch.float64)


def newton(xb: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, theta: torch.Tensor,
           factor: torch.Tensor | None = None) -> torch.Tensor:
    """Minimise Σ_i w_i CE_i + L2/2 ‖θ‖² (θ: [classes, features+1]) to NEWTON_TOLERANCE.

    Reuses one Hessian factorisation for several steps (a chord iteration, refreshed every
    ``_REFRESH`` steps): warm starts are close to the optimum, so this converges to the same
    tolerance as plain Newton at a fraction of the cost. The fixed point is exact either way.
    """
    onehot = nn.functional.one_hot(y, CLASSES).double()
    if factor is None:  # else: a Cholesky factor of a nearby Hessian, shared by many retrains
        factor = torch.linalg.cholesky(hessian(xb, theta, weights))
    for step in range(1, 500):
        p = torch.softmax(xb @ theta.T, dim=1)
        grad = ((p - onehot) * weights[:, None]).T @ xb + L2 * theta
        if grad.norm() < NEWTON_TOLERANCE:
            return theta
        if step % _REFRESH == 0:
            factor = torch.linalg.cholesky(hessian(xb, theta, weights))
        theta = theta - torch.cholesky_solve(grad.reshape(-1, 1), factor).view_as(theta)
    raise RuntimeError("Newton did not converge")


def test_losses(theta, xb_test, y_test):
    return nn.functional.cross_entropy(xb_test @ theta.T, y_test, reduction="none")


def ground_truth(n_train: int, n_test: int) -> dict:
    key = hashlib.sha256(f"digits:{n_train}:{n_test}:{L2}:{LDS_SUBSETS}:{NEWTON_TOLERANCE}".encode()).hexdigest()[:16]
    path = CACHE_DIR / f"attribution_truth_{key}.npz"
    if path.exists():
        return dict(np.load(path)) | {"cached": True}
    x, y, xt, yt = load_data(n_train, n_test)
    xb, xbt = with_bias(x), with_bias(xt)
    ones = torch.ones(n_train, dtype=torch.float64)
    theta = newton(xb, y, ones, torch.zeros(CLASSES, xb.shape[1], dtype=torch.float64))
    base = test_losses(theta, xbt, yt)
    # One factorisation serves every LOO retrain: dropping one row of hundreds barely changes the
    # Hessian, so the chord iteration from the full-data optimum converges in a few cheap steps.
    full_factor = torch.linalg.cholesky(hessian(xb, theta, ones))
    loo = np.zeros((n_train, n_test))
    for i in range(n_train):
        weights = ones.clone()
        weights[i] = 0
        loo[i] = (test_losses(newton(xb, y, weights, theta, full_factor), xbt, yt) - base).numpy()
    rng = np.random.default_rng(0)
    masks = np.zeros((LDS_SUBSETS, n_train), dtype=bool)
    subset_losses = np.zeros((LDS_SUBSETS, n_test))
    for m in range(LDS_SUBSETS):
        masks[m, rng.choice(n_train, n_train // 2, replace=False)] = True
        weights = torch.tensor(masks[m], dtype=torch.float64)
        subset_losses[m] = test_losses(newton(xb, y, weights, theta), xbt, yt).numpy()
    truth = {"theta": theta.numpy(), "loo": loo, "masks": masks, "subset_losses": subset_losses}
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, **truth)
    return truth | {"cached": False}


def loo_spearman(scores: np.ndarray, loo: np.ndarray) -> float:
    """scores [Q, n] (positive = row lowered the query loss ⇒ removing it raises it)."""
    return float(np.mean([spearmanr(scores[q], loo[:, q]).statistic for q in range(scores.shape[0])]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer training rows and test points")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--threads", type=int, default=1, choices=(1, 2),
                        help="torch threads (default 1: on this shared 2-core machine, 2 OpenMP threads "
                             "measured 7x slower than 1 whenever other jobs held the cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_train, n_test = (400, 50) if args.quick else (1000, 200)

    started = time.perf_counter()
    truth = ground_truth(n_train, n_test)
    truth_s = time.perf_counter() - started
    x, y, xt, yt = load_data(n_train, n_test)
    model = SoftmaxRegression(x.shape[1], CLASSES).double()
    theta = torch.tensor(truth["theta"])
    with torch.no_grad():
        model.linear.weight.copy_(theta[:, :-1])
        model.linear.bias.copy_(theta[:, -1])
    train_inputs = {"features": x, "labels": y}
    test_inputs = {"features": xt, "labels": yt}

    results: dict[str, dict] = {}
    exact_scores = ExactInfluence(model, [train_inputs], curvature="hessian", l2=L2).scores(test_inputs).numpy()
    results["exact"] = {"loo_spearman": loo_spearman(exact_scores, truth["loo"]),
                        "lds": lds(exact_scores, truth["masks"], truth["subset_losses"])}

    batches = [TrainingBatch({"features": x[s : s + 256], "labels": y[s : s + 256]},
                             [f"r{i}" for i in range(s, min(n_train, s + 256))],
                             [f"c{i % 20}" for i in range(s, min(n_train, s + 256))])
               for s in range(0, n_train, 256)]
    # The platform's configuration (bench/platform_index.py), then variants of it for context. One
    # damping: the same stored Ψ scores answer LOO (rows) and LDS (sets of rows, as payouts sum them).
    variants = {"production": {}, "fisher_k256": {"k": 256},
                "empirical_fisher_k1024": {"curvature": "empirical_fisher"},
                "old_rule_mean_eigenvalue_0.01": {"damping_rule": "mean_eigenvalue"}}
    for name, overrides in variants.items():
        k = overrides.pop("k", 1024)
        config = platform_config(seed=1234, k=k, **overrides)
        with tempfile.TemporaryDirectory() as directory:
            scores = platform_scores(model, batches, Path(directory), config, test_inputs, model_hash="digits")
        results[name] = {"lds": lds(scores.rows, truth["masks"], truth["subset_losses"]),
                         "loo_spearman": loo_spearman(scores.rows, truth["loo"]), "k": k, "curvature": config.curvature,
                         "damping_ratio": config.damping_ratio,
                         "damping_rule": config.damping_rule,
                         "contributor_agreement": scores.contributor_agreement}

    print(f"digits softmax regression: {n_train} train rows, {n_test} test points, L2={L2}, "
          f"{LDS_SUBSETS} LDS subsets; ground truth {'cached' if truth['cached'] else 'computed'} "
          f"in {truth_s:.1f} s")
    print(f"  parameters per gradient: {model.linear.weight.numel() + model.linear.bias.numel()}")
    for name, metrics in results.items():
        extra = (f" (k={metrics['k']}, {metrics['curvature']}, {metrics['damping_rule']} "
                 f"{metrics['damping_ratio']})" if "k" in metrics else "")
        print(f"  {name:<24} LOO Spearman {metrics['loo_spearman']:.3f}   LDS {metrics['lds']:.3f}{extra}")
    peers: dict[str, dict] = {}
    print("  peers: scored on the convex harness (bench/attribution_convex.py), where d >> k")
    if args.json:
        print(json.dumps({"exact": results["exact"], "production": results["production"],
                          "variants": {k: v for k, v in results.items() if k not in ("exact", "production")},
                          "peers": peers, "n_train": n_train, "n_test": n_test}))


if __name__ == "__main__":
    main()
