"""The linear probe: error against data whose answer is known, determinism, the raw-pixel baseline, bad input."""
import pytest
import torch

from sae_utils import SparseAutoencoder
from sae_utils.families import build_model
from sae_utils.probe import fit_softmax_regression, linear_probe, probe_features

GEN = torch.Generator().manual_seed(0)


def blobs(n_per_class=60, spread=0.02):
    """Ten classes of 784-pixel inputs in [0, 1]: class c is pixel block c lit, plus a little noise."""
    labels = torch.arange(10).repeat_interleave(n_per_class)
    x = torch.rand(len(labels), 784, generator=GEN) * spread
    for c in range(10):
        x[labels == c, 78 * c:78 * c + 78] += 0.9
    return x.clamp(0, 1), labels


def test_separable_classes_are_read_without_error_and_shuffled_labels_near_chance():
    (train_x, train_y), (test_x, test_y) = blobs(), blobs()
    result = linear_probe(None, (train_x, train_y), (test_x, test_y))
    assert result["test_error"] == 0 and result["train_error"] == 0 and result["n_features"] == 784
    shuffled = train_y[torch.randperm(len(train_y), generator=GEN)]
    chance = linear_probe(None, (train_x, shuffled), (test_x, test_y))
    assert chance["test_error"] > 0.6  # nothing to learn: about 9 in 10 wrong


def test_the_fit_minimises_the_regularised_cross_entropy():
    features, labels = torch.randn(200, 5, generator=GEN), torch.randint(0, 3, (200,), generator=GEN)
    weight, bias = fit_softmax_regression(features, labels, l2=0.1)
    weight, bias = weight.requires_grad_(), bias.requires_grad_()
    loss = torch.nn.functional.cross_entropy(features @ weight.T + bias, labels) + 0.05 * weight.pow(2).sum()
    loss.backward()
    # a stationary point of the convex loss (float32 L-BFGS: about 1e-4; the gradient at the start is about 0.1,
    # and a fit of the wrong objective, l2 = 0.05 or 0.2, leaves about 5e-3)
    assert weight.grad.abs().max() < 1e-3 and bias.grad.abs().max() < 1e-3


def test_the_probe_reads_a_model_code_and_is_deterministic():
    model = build_model("topk", 32, k=4)
    (train_x, train_y), (test_x, test_y) = blobs(30), blobs(10)
    first = linear_probe(model, (train_x, train_y), (test_x, test_y))
    again = linear_probe(model, (train_x, train_y), (test_x, test_y))
    assert first["n_features"] == 32 and first["test_error"] == again["test_error"]
    features = probe_features(model, test_x)
    assert torch.equal(features, model.encode(test_x).detach())
    wider = linear_probe(model, (train_x, train_y), (test_x, test_y), k=16)
    assert wider["n_features"] == 32 and model.k == 4  # with_k made a copy


@pytest.mark.parametrize("call, error, message", [
    (lambda x, y: linear_probe(None, (x, y), (x, y), k=5), ValueError, "k=5 needs a TopK model"),
    (lambda x, y: linear_probe(SparseAutoencoder(8, "relu"), (x, y), (x, y), k=5), ValueError, "with_k needs a TopK model"),
    (lambda x, y: linear_probe("model", (x, y), (x, y)), TypeError, "model must be a SparseAutoencoder"),
    (lambda x, y: linear_probe(None, (x, y[:-1]), (x, y)), ValueError, r"labels must be integers of shape \(600,\)"),
    (lambda x, y: linear_probe(None, (x, y.float()), (x, y)), ValueError, "labels must be integers"),
    (lambda x, y: linear_probe(None, (x, y), (x, y), l2=-1), ValueError, r"l2 must lie in \[0, inf\)"),
])
def test_bad_input_is_refused_naming_it(call, error, message):
    x, y = blobs()
    with pytest.raises(error, match=message):
        call(x, y)
