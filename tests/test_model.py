"""The model: shapes, the code against a float64 hand computation, initialisation and rebuilding."""
import json

import numpy as np
import pytest
import torch

import sae_utils
from sae_utils import SparseAutoencoder


@pytest.fixture(scope="module")
def x(test_digits):
    return sae_utils.prepare_images(test_digits[:16])


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_every_input_layout_gives_the_same_outputs(x, activation):
    torch.manual_seed(0)
    model = SparseAutoencoder(24, activation)
    logits, code = model(x)
    assert logits.shape == (16, 784) and code.shape == (16, 24)
    for layout in (x.reshape(16, 28, 28), x.reshape(16, 1, 28, 28)):
        other_logits, other_code = model(layout)
        torch.testing.assert_close(other_logits, logits, rtol=0, atol=0)
        torch.testing.assert_close(other_code, code, rtol=0, atol=0)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_encode_decode_forward_reconstruct_agree_with_float64_formula(x, activation):
    torch.manual_seed(1)
    model = SparseAutoencoder(24, activation)
    w_e, b_e = model.encoder.weight.double().detach().numpy(), model.encoder.bias.double().detach().numpy()
    w_d, b_d = model.decoder.weight.double().detach().numpy(), model.decoder.bias.double().detach().numpy()
    pre = x.double().numpy() @ w_e.T + b_e
    code_ref = 1 / (1 + np.exp(-pre)) if activation == "sigmoid" else np.maximum(pre, 0)
    logits_ref = code_ref @ w_d.T + b_d

    code = model.encode(x)
    np.testing.assert_allclose(code.detach().numpy(), code_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.decode(code).detach().numpy(), logits_ref, rtol=1e-4, atol=1e-5)
    logits, forward_code = model(x)
    torch.testing.assert_close(forward_code, code)
    torch.testing.assert_close(logits, model.decode(code))
    reconstruction = model.reconstruct(x)
    np.testing.assert_allclose(reconstruction.numpy(), 1 / (1 + np.exp(-logits_ref)), rtol=1e-4, atol=1e-6)
    assert not reconstruction.requires_grad


def test_sigmoid_codes_lie_in_unit_interval_and_relu_codes_are_sparse(x):
    torch.manual_seed(2)
    sigmoid_code = SparseAutoencoder(64, "sigmoid").encode(x)
    relu_code = SparseAutoencoder(64, "relu").encode(x)
    assert ((sigmoid_code > 0) & (sigmoid_code < 1)).all()
    assert (relu_code >= 0).all()
    assert 0.1 < (relu_code == 0).float().mean().item() < 0.9  # exact zeros, as the L1 penalty wants


def test_for_penalty_picks_the_code_the_penalty_needs():
    assert SparseAutoencoder.for_penalty("kl", 8).activation == "sigmoid"
    assert SparseAutoencoder.for_penalty("l1", 8).activation == "relu"


@pytest.mark.parametrize("rho", [0.02, 0.08, 0.3])
def test_kl_model_starts_near_the_target_activation(test_digits, rho):
    torch.manual_seed(0)
    model = SparseAutoencoder.for_penalty("kl", 512, rho)
    mean_activation = model.encode(sae_utils.prepare_images(test_digits)).mean().item()
    assert mean_activation == pytest.approx(rho, rel=0.1)


def test_architecture_round_trip(x):
    torch.manual_seed(3)
    model = SparseAutoencoder.for_penalty("l1", 40)
    architecture = json.loads(json.dumps(model.architecture()))  # survives a JSON card
    assert architecture == {"n_hidden": 40, "activation": "relu", "n_input": 784}
    rebuilt = SparseAutoencoder(**architecture)
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


def test_feature_images_are_encoder_rows():
    model = SparseAutoencoder(10)
    features = model.feature_images()
    assert features.shape == (10, 28, 28)
    torch.testing.assert_close(features[3].reshape(784), model.encoder.weight[3].detach())


def test_float64_inputs_are_cast_to_the_model_dtype(x):
    model = SparseAutoencoder(8)
    torch.testing.assert_close(model(x.double())[0], model(x)[0])
