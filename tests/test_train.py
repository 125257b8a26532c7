"""Training (loss goes down, seeds, interruption, divergence, checkpoints) and evaluation by hand."""
import math

import numpy as np
import pytest
import torch
from helpers import assert_same_state, nan_logits, raise_keyboard_interrupt, small_config

import sae_utils
from sae_utils import SparseAutoencoder, TrainingDivergedError, evaluate, train
from sae_utils.files import safe_torch_load
from sae_utils.train import HISTORY_KEYS, TrainConfig


def run(config, train_digits, test_digits, **kwargs):
    return train(config, train_digits, test_digits, progress=False, **kwargs)


@pytest.mark.parametrize("penalty", ["kl", "l1"])
def test_short_run_lowers_the_loss(train_digits, test_digits, penalty):
    config = small_config(penalty=penalty, epochs=3)
    torch.manual_seed(config.seed)
    untrained = SparseAutoencoder.for_penalty(penalty, config.n_hidden, config.rho)
    before = evaluate(untrained, test_digits, **config.hyperparameters())["bce"]
    model, history = run(config, train_digits, test_digits)
    assert history["train_objective"][-1] < 0.8 * history["train_objective"][0]
    assert history["test_bce"][-1] < history["test_bce"][0] < before
    # The history's test BCE is the BCE evaluate() reports for the returned model.
    assert evaluate(model, test_digits, **config.hyperparameters())["bce"] == pytest.approx(history["test_bce"][-1], rel=1e-5)


def test_history_holds_one_entry_per_epoch(train_digits, test_digits):
    config = small_config(epochs=3)
    _, history = run(config, train_digits, test_digits)
    assert set(history) == {*HISTORY_KEYS, "interrupted"} and history["interrupted"] is False
    assert history["epoch"] == [1, 2, 3]
    for key in HISTORY_KEYS:
        assert len(history[key]) == 3 and all(math.isfinite(v) for v in history[key])
    for total, bce, pen in zip(history["train_objective"], history["train_bce"], history["train_penalty"]):
        assert total == pytest.approx(bce + config.weight * pen, rel=1e-5)


def test_seeded_runs_are_identical_and_seeds_matter(train_digits, test_digits):
    first_model, first = run(small_config(seed=5), train_digits, test_digits)
    second_model, second = run(small_config(seed=5), train_digits, test_digits)
    other_model, other = run(small_config(seed=6), train_digits, test_digits)
    assert first == second
    assert_same_state(first_model, second_model)
    assert first["train_objective"] != other["train_objective"]
    assert not torch.equal(first_model.encoder.weight, other_model.encoder.weight)


def test_keyboard_interrupt_returns_model_and_history_so_far(train_digits, test_digits, fail_at_step):
    calls = fail_at_step(13, raise_keyboard_interrupt)  # 10 batches an epoch: epoch 2, batch 3
    with pytest.warns(UserWarning, match="interrupted after 1 complete epochs"):
        model, history = run(small_config(epochs=5), train_digits, test_digits)
    assert calls["n"] == 13
    assert history["interrupted"] is True
    assert history["epoch"] == [1] and len(history["test_bce"]) == 1
    assert isinstance(model, SparseAutoencoder)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_huge_learning_rate_raises_divergence_with_finite_weights(train_digits, test_digits):
    with pytest.raises(TrainingDivergedError) as caught:
        run(small_config(penalty="l1", lr=1e30), train_digits, test_digits)
    message = str(caught.value)
    assert re_search(r"epoch 1, batch \d+", message)
    assert "learning rate" in message and "lr=1e+30" in message
    assert all(torch.isfinite(p).all() for p in caught.value.model.parameters())


def test_divergence_names_epoch_and_batch_and_keeps_last_good_weights(train_digits, test_digits, fail_at_step):
    fail_at_step(13, nan_logits)
    with pytest.raises(TrainingDivergedError, match=r"became nan at epoch 2, batch 3") as caught:
        run(small_config(epochs=5), train_digits, test_digits)
    assert caught.value.history["epoch"] == [1]
    # The same 12 good steps, stopped by Ctrl-C instead: the weights must be the same.
    fail_at_step(13, raise_keyboard_interrupt)
    with pytest.warns(UserWarning):
        interrupted, _ = run(small_config(epochs=5), train_digits, test_digits)
    assert_same_state(caught.value.model, interrupted)


def test_resume_after_interruption_matches_an_uninterrupted_run(train_digits, test_digits, fail_at_step, tmp_path):
    config = small_config(epochs=3)
    full_model, full = run(config, train_digits, test_digits)

    checkpoint = tmp_path / "checkpoint.pt"
    fail_at_step(25, raise_keyboard_interrupt)  # epoch 3, batch 5
    with pytest.warns(UserWarning):
        _, stopped = run(config, train_digits, test_digits, checkpoint=checkpoint)
    assert stopped["epoch"] == [1, 2] and checkpoint.is_file()
    saved = safe_torch_load(checkpoint)  # loadable without executing code
    assert saved["history"]["epoch"] == [1, 2]

    resumed_model, resumed = run(config, train_digits, test_digits, checkpoint=checkpoint, resume=True)
    assert resumed["epoch"] == [1, 2, 3] and resumed["interrupted"] is False
    for key in HISTORY_KEYS:
        assert resumed[key] == pytest.approx(full[key], rel=1e-6)
    assert_same_state(resumed_model, full_model)


def test_resume_with_more_epochs_continues(train_digits, test_digits, tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    run(small_config(epochs=1), train_digits, test_digits, checkpoint=checkpoint)
    _, history = run(small_config(epochs=2), train_digits, test_digits, checkpoint=checkpoint, resume=True)
    _, full = run(small_config(epochs=2), train_digits, test_digits)
    assert history["test_bce"] == pytest.approx(full["test_bce"], rel=1e-6)


def test_resume_with_a_different_config_is_refused(train_digits, test_digits, tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    run(small_config(epochs=1), train_digits, test_digits, checkpoint=checkpoint)
    with pytest.raises(ValueError, match=r"checkpoint .*checkpoint.pt was written for a different config"):
        run(small_config(epochs=2, rho=0.1), train_digits, test_digits, checkpoint=checkpoint, resume=True)


def re_search(pattern, text):
    import re

    return re.search(pattern, text) is not None


# --- evaluate, against a hand computation on a model whose codes are known --------------------------

PIXEL = 300  # the one pixel unit 0 looks at


def hand_images():
    """Four digits in [0, 1]; pixel PIXEL is 1 in the first two and 0 in the last two."""
    x = torch.rand(4, 784, generator=torch.Generator().manual_seed(7))
    x[:, PIXEL] = torch.tensor([1.0, 1.0, 0.0, 0.0])
    return x


def hand_model(activation, weight, biases, decoder_bias):
    model = SparseAutoencoder(3, activation)
    with torch.no_grad():
        model.encoder.weight.zero_()
        model.encoder.weight[0, PIXEL] = weight
        model.encoder.bias.copy_(torch.tensor(biases))
        model.decoder.weight.zero_()
        model.decoder.bias.copy_(decoder_bias)
    return model


def naive_bce(x, logits):
    p = 1 / (1 + np.exp(-logits))
    return -(x * np.log(p) + (1 - x) * np.log(1 - p)).mean()


def test_evaluate_relu_model_by_hand():
    x, decoder_bias = hand_images(), torch.linspace(-2, 2, 784)
    # unit 0 = relu(x_PIXEL - 0.5): 0.5 on the first two digits; unit 1 = 1 always; unit 2 = 0 always (dead).
    model = hand_model("relu", 1.0, [-0.5, 1.0, -1.0], decoder_bias)
    config = TrainConfig(penalty="l1", lam=0.1)
    metrics = evaluate(model, x, **config.hyperparameters())
    bce = naive_bce(x.double().numpy(), decoder_bias.double().numpy())
    assert metrics["bce"] == pytest.approx(bce, rel=1e-6)
    assert metrics["penalty"] == pytest.approx((1.5 + 1.5 + 1 + 1) / 4)
    assert metrics["objective"] == pytest.approx(bce + 0.1 * 1.25, rel=1e-6)
    assert metrics["mean_activation"] == pytest.approx((0.5 + 0.5 + 4 * 1) / 12)
    assert metrics["active_units_per_digit"] == pytest.approx((2 + 2 + 1 + 1) / 4)
    assert metrics["active_fraction_per_digit"] == pytest.approx(1.5 / 3)
    assert metrics["dead_fraction"] == pytest.approx(1 / 3)
    assert metrics["n_images"] == 4


def test_evaluate_sigmoid_model_by_hand():
    x, decoder_bias = hand_images(), torch.zeros(784)
    # unit 0 = sigmoid(8 x_PIXEL - 4): sigmoid(4) or sigmoid(-4); unit 1 = 0.5 exactly, which is not
    # "active" (> 0.5), so it is dead; unit 2 = sigmoid(3), active on every digit.
    model = hand_model("sigmoid", 8.0, [-4.0, 0.0, 3.0], decoder_bias)
    metrics = evaluate(model, x)  # default config: the KL reference setup, rho 0.08, beta 0.005
    s = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    rho_hat = np.array([(2 * s(4) + 2 * s(-4)) / 4, 0.5, s(3)])
    kl = (0.08 * np.log(0.08 / rho_hat) + 0.92 * np.log(0.92 / (1 - rho_hat))).sum()
    assert metrics["bce"] == pytest.approx(math.log(2), rel=1e-6)  # logits 0: log 2 nats whatever x is
    assert metrics["penalty"] == pytest.approx(kl, rel=1e-5)
    assert metrics["objective"] == pytest.approx(math.log(2) + 0.005 * kl, rel=1e-6)
    assert metrics["mean_activation"] == pytest.approx(rho_hat.mean(), rel=1e-6)
    assert metrics["active_units_per_digit"] == pytest.approx(1.5)
    assert metrics["dead_fraction"] == pytest.approx(1 / 3)


def test_evaluate_accepts_uint8_digits(test_digits):
    model = SparseAutoencoder(16)
    assert evaluate(model, test_digits) == evaluate(model, sae_utils.prepare_images(test_digits))
