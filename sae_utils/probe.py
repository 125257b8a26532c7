"""The linear probe: how much of the digit's class a code makes linearly readable.

A multinomial logistic regression (softmax over the 10 classes, an L2 penalty on its weights) is fitted
to the frozen codes of the training digits and scored on the test digits. The codes are standardised
with the training set's per-unit mean and spread, so that one penalty weight suits every family (a
sigmoid code lives in (0, 1), a ReLU or TopK code is unbounded). The fit is full-batch L-BFGS from zero
weights for ``MAX_ITERATIONS`` iterations: deterministic, with no learning rate to tune, and about 15-25 s
for 60,000 codes of 512 units on 2 CPU cores. ``linear_probe(None)`` probes the raw pixels, the baseline.

The penalty weight and the iteration budget are fixed here, the same for every code, and were not tuned
on the test digits (a stronger penalty would suit some codes better; notebook 05 measures that on a
held-out part of the training set).
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .checks import check_int, check_number, check_type
from .data import load_mnist, prepare_images
from .model import SparseAutoencoder

L2 = 1e-4             # weight of 0.5 * ||W||^2 added to the mean cross-entropy
MAX_ITERATIONS = 300


@torch.no_grad()
def probe_features(model: SparseAutoencoder | None, images, batch_size: int = 10_000) -> torch.Tensor:
    """The codes (N, H) of ``images`` (any form ``prepare_images`` takes), or the pixels (N, D) for None."""
    x = prepare_images(images) if model is None else prepare_images(images, n_input=model.n_input)
    if model is None:
        return x
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model.encode(part.to(device)).float().cpu() for part in x.split(batch_size)])


def fit_softmax_regression(features: torch.Tensor, labels: torch.Tensor, l2: float = L2,
                           max_iterations: int = MAX_ITERATIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (C, F) and biases (C,) minimising mean cross-entropy + l2/2 ||W||^2 over (N, F) features
    and int64 labels (N,) in [0, C), by full-batch L-BFGS from zero."""
    n_classes = int(labels.max()) + 1
    weight = torch.zeros(n_classes, features.shape[1], requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iterations, history_size=20,
                                  tolerance_grad=1e-6, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = F.cross_entropy(features @ weight.T + bias, labels) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    return weight.detach(), bias.detach()


def linear_probe(model: SparseAutoencoder | None = None, train=None, test=None, *, k: int | None = None,
                 l2: float = L2, max_iterations: int = MAX_ITERATIONS) -> dict:
    """Fit the probe on the codes of ``train`` and score it on ``test``; return floats and ints.

    model: a SparseAutoencoder, or None for the raw pixels. train, test: ``(images, labels)`` pairs,
    default the 60,000 MNIST training and 10,000 test digits. k: encode a TopK model with this many
    units kept instead of its own k (Makhzani and Frey probe with a larger k than they train with).
    Returns ``{"test_error", "train_error", "n_features", "seconds"}``; the errors are fractions.
    """
    start = time.perf_counter()
    if model is not None:
        check_type("model", model, SparseAutoencoder)
        if k is not None:
            model = model.with_k(k)
    elif k is not None:
        raise ValueError(f"k={k!r} needs a TopK model; the raw-pixel probe (model=None) has no k")
    l2 = check_number("l2", l2, low=0)
    max_iterations = check_int("max_iterations", max_iterations)
    (train_images, train_labels), (test_images, test_labels) = (
        pair if pair is not None else load_mnist(split) for pair, split in ((train, "train"), (test, "test")))
    train_features, test_features = probe_features(model, train_images), probe_features(model, test_images)
    train_labels, test_labels = _labels(train_labels, len(train_features)), _labels(test_labels, len(test_features))
    mean, spread = train_features.mean(dim=0), train_features.std(dim=0).clamp_min(1e-6)
    standard = (train_features - mean) / spread
    weight, bias = fit_softmax_regression(standard, train_labels, l2, max_iterations)
    return {"test_error": _error((test_features - mean) / spread, test_labels, weight, bias),
            "train_error": _error(standard, train_labels, weight, bias), "n_features": train_features.shape[1],
            "seconds": round(time.perf_counter() - start, 1)}


def _error(features, labels, weight, bias) -> float:
    """The fraction of rows whose largest logit is not their label's."""
    if len(labels) == 0:
        return float("nan")
    return ((features @ weight.T + bias).argmax(dim=1) != labels).double().mean().item()


def _labels(labels, n: int) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.dtype not in (torch.int64, torch.int32, torch.uint8) or labels.shape != (n,):
        raise ValueError(f"labels must be integers of shape ({n},), one class per input, got dtype "
                         f"{labels.dtype} and shape {tuple(labels.shape)}")
    if n and (labels.min() < 0):
        raise ValueError(f"labels must be class numbers >= 0, got {labels.min().item()}")
    return labels.long()
