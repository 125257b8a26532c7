"""Training: the config, the loss going down, seeds, interruption and divergence; and resuming
(``train(..., checkpoint=..., resume=True)``), tested here and nowhere else. ``evaluate`` is in test_metrics.py."""
import copy
import dataclasses
import math
import os
import re
import sys

import pytest
import torch
from helpers import (RANDOM_DIGITS, TINY, Crash, assert_same_state, nan_logits, raise_keyboard_interrupt,
                     small_config)

from sae_utils import SparseAutoencoder, TrainingDivergedError, evaluate, prepare_images, train
from sae_utils.files import safe_torch_load
from sae_utils.train import CODE_HISTORY_KEYS, HISTORY_KEYS, TrainConfig, first_batch, learning_rate, replay


def run(config, train_digits, test_digits, **kwargs):
    return train(config, train_digits, test_digits, progress=False, **kwargs)


def tiny_run(config=None, train_images=RANDOM_DIGITS, **kwargs):
    """A blink of training on 50 random digits (TINY: 1 epoch of 5 batches, 4 hidden units)."""
    return train(config or TrainConfig(**TINY), train_images, RANDOM_DIGITS, progress=False, **kwargs)


# --- the config -------------------------------------------------------------------------------------

def test_a_config_cannot_be_changed_after_its_checks_only_replaced():
    config = TrainConfig(**TINY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = -1.0  # as a slider bound to the field would do
    with pytest.raises(ValueError, match=r"lr must lie in \(0, inf\), got -1.0"):
        dataclasses.replace(config, lr=-1.0)
    assert dataclasses.replace(config, lr=0.5).lr == 0.5


# --- training ---------------------------------------------------------------------------------------

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
    assert set(history) == {*HISTORY_KEYS, *CODE_HISTORY_KEYS, "interrupted"} and history["interrupted"] is False
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
    assert re.search(r"epoch 1, batch \d+", message)
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


# --- resume: train(..., checkpoint=PATH, resume=True) -------------------------------------------------
# (The command line's --resume flag is tested in test_cli.py.)

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


def test_resume_of_a_finished_run_trains_nothing_and_returns_it(tmp_path, fail_at_step):
    checkpoint = tmp_path / "checkpoint.pt"
    finished, history = tiny_run(checkpoint=checkpoint)
    calls = fail_at_step(10**9, raise_keyboard_interrupt)  # never fires: only counts the training steps
    again, again_history = tiny_run(checkpoint=checkpoint, resume=True)
    assert calls["n"] == 0
    assert again_history == history
    assert_same_state(again, finished)


def test_resume_without_a_checkpoint_file_yet_starts_afresh(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    model, history = tiny_run(checkpoint=checkpoint, resume=True)
    fresh_model, fresh = tiny_run()
    assert history == fresh and history["epoch"] == [1]
    assert_same_state(model, fresh_model)
    assert safe_torch_load(checkpoint)["history"] == history  # and the checkpoint was written


def test_resume_without_a_checkpoint_path_is_refused():
    with pytest.raises(ValueError, match=r"resume=True needs checkpoint=PATH"):
        train(TrainConfig(**TINY), RANDOM_DIGITS, RANDOM_DIGITS, resume=True, progress=False)


def test_a_torch_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.ones(3)}, path)
    with pytest.raises(ValueError, match=r"checkpoint\.pt is not a sae_utils training checkpoint"):
        train(TrainConfig(**TINY), RANDOM_DIGITS, RANDOM_DIGITS, checkpoint=path, resume=True, progress=False)


def test_resume_on_different_training_data_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    train(TrainConfig(**TINY), RANDOM_DIGITS[:30], RANDOM_DIGITS, checkpoint=path, progress=False)
    with pytest.raises(ValueError, match=r"written for 30 training images, not 40"):
        train(TrainConfig(**{**TINY, "epochs": 2}), RANDOM_DIGITS[:40], RANDOM_DIGITS, checkpoint=path, resume=True,
              progress=False)


def test_resume_refuses_a_crafted_checkpoint(crafted, train_digits, test_digits):
    path, marker = crafted
    config = TrainConfig(epochs=1, batch_size=500, n_hidden=8)
    with pytest.raises(ValueError, match="refused to load"):
        train(config, train_digits, test_digits, checkpoint=path, resume=True, progress=False)
    assert not marker.exists()


def test_crash_during_training_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    checkpoint = tmp_path / "checkpoint.pt"
    train(TrainConfig(**TINY), RANDOM_DIGITS, RANDOM_DIGITS, checkpoint=checkpoint, progress=False)
    before = checkpoint.read_bytes()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(Crash("disk full")))
    with pytest.raises(Crash):
        train(TrainConfig(**{**TINY, "epochs": 2}), RANDOM_DIGITS, RANDOM_DIGITS, checkpoint=checkpoint, resume=True,
              progress=False)
    assert checkpoint.read_bytes() == before
    assert safe_torch_load(checkpoint)["history"]["epoch"] == [1]


@pytest.mark.parametrize("penalty", ["l1", "topk"])
def test_replay_takes_the_steps_train_takes(train_digits, test_digits, penalty):
    config = small_config(penalty=penalty, epochs=2, **({"k": 5} if penalty == "topk" else {}))
    copies = replay(config, (3, 20, 10), train_digits)
    assert sorted(copies) == [0, 3, 10, 20]  # 10 batches an epoch: step 20 ends the second epoch
    model, _ = train(config, train_digits, test_digits, progress=False)
    assert_same_state(copies[20], model)
    one_epoch, _ = train(dataclasses.replace(config, epochs=1), train_digits, test_digits, progress=False)
    assert_same_state(replay(dataclasses.replace(config, epochs=1), (10,), train_digits)[10], one_epoch)
    assert not torch.equal(copies[3].encoder.weight, copies[0].encoder.weight)
    slower = replay(config, (3,), train_digits, lr_schedule=lambda step: 1e-6)[3]
    assert (slower.encoder.weight - copies[0].encoder.weight).abs().max() < 1e-4 < (
        copies[3].encoder.weight - copies[0].encoder.weight).abs().max()
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        replay(config, (0,), train_digits)


def test_replay_with_other_adam_betas(train_digits):
    """beta1 = beta2 = 0 makes Adam sign descent, g / (|g| + eps): each weight moves by at most the learning
    rate, and almost never by a fraction of it between 0.1 and 0.9 (only where |g| is near eps), on every
    step; PyTorch's betas give that only on the first step (bias correction), then many partial moves."""
    config, lr = small_config(penalty="l1"), 1e-3
    sign = replay(config, (1, 2, 3), train_digits, lr_schedule=lambda step: lr, adam_betas=(0.0, 0.0))
    usual = replay(config, (1, 2), train_digits, lr_schedule=lambda step: lr)
    assert_same_state(sign[1], usual[1])
    for step in (2, 3):
        moved = (sign[step].encoder.weight - sign[step - 1].encoder.weight).abs() / lr
        assert moved.max() <= 1 + 1e-4 and ((moved > 0.1) & (moved < 0.9)).float().mean() < 0.02
    moved = (usual[2].encoder.weight - usual[1].encoder.weight).abs() / lr
    assert ((moved > 0.1) & (moved < 0.9)).float().mean() > 0.2
    with pytest.raises(ValueError, match=r"adam_betas\[0\] must lie in \[0, 1\), got 1"):
        replay(config, (1,), train_digits, adam_betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="adam_betas must be a pair"):
        replay(config, (1,), train_digits, adam_betas=0.9)


@pytest.mark.parametrize("penalty", ["kl", "l1"])
def test_code_history_is_the_code_of_the_model_after_each_epoch(train_digits, test_digits, penalty):
    """The per-epoch code statistics, against evaluate() and a float64 recount of each epoch's model."""
    config = small_config(penalty=penalty, epochs=2)
    _, history = run(config, train_digits, test_digits)
    for epoch in (1, 2):
        model = replay(config, (10 * epoch,), train_digits)[10 * epoch]   # 10 batches an epoch
        scores = evaluate(model, test_digits, **config.hyperparameters())
        with torch.no_grad():
            code = model.encode(prepare_images(test_digits)).double()
        active = code > {"kl": 0.5, "l1": 0.0}[penalty]
        living = active.any(dim=0)
        lengths = model.decoder.weight.detach().double()[:, living].norm(dim=0)
        i = epoch - 1
        assert history["test_penalty"][i] == pytest.approx(scores["penalty"], rel=1e-5)
        assert history["test_active_per_digit"][i] == pytest.approx(active.sum(dim=1).double().mean().item(), rel=1e-6)
        assert history["test_living_units"][i] == int(living.sum()) == round((1 - scores["dead_fraction"]) * 32)
        assert history["decoder_norm_median"][i] == pytest.approx(lengths.median().item(), rel=1e-5)
        all_lengths = model.decoder.weight.detach().double().norm(dim=0)
        assert history["test_scaled_mass"][i] == pytest.approx(
            sum(code[:, j].abs().mean().item() * all_lengths[j].item() for j in range(32)), rel=1e-5)
    assert history["test_penalty"][0] != history["test_penalty"][1]


def test_code_history_of_an_old_checkpoint_starts_with_none():
    from sae_utils.train import _record_epoch
    history = {key: [1.0] for key in HISTORY_KEYS}   # one epoch, recorded before the code statistics existed
    scores = {"test_bce": 0.1, **{key: 2.0 for key in CODE_HISTORY_KEYS}}
    _record_epoch(history, 2, [0.3, 0.2, 0.1], scores)
    assert history["test_bce"] == [1.0, 0.1]
    for key in CODE_HISTORY_KEYS:
        assert history[key] == [None, 2.0]


def test_warmup_raises_the_learning_rate_linearly_over_the_first_fraction():
    config = TrainConfig(lr=1.0, lr_warmup=0.1, lr_decay=0.2)
    rates = [learning_rate(config, step, 100) for step in range(100)]
    assert rates[:10] == pytest.approx([s / 10 for s in range(1, 11)])   # step s of 10 takes lr * s / 10
    assert rates[10:81] == [1.0] * 71 and rates[81] == pytest.approx(19 / 20) and rates[99] == pytest.approx(1 / 20)
    assert TrainConfig().lr_warmup == 0.0
    with pytest.raises(ValueError, match=r"lr_warmup must lie in \[0, 1\], got 1.5"):
        TrainConfig(lr_warmup=1.5)


def test_train_takes_the_warmup_steps(train_digits, test_digits):
    """A warm-up over the whole of one epoch (10 steps) ends where a replay with lr * s / 10 does."""
    config = small_config(epochs=1, lr_warmup=1.0)
    model, _ = run(config, train_digits, test_digits)
    by_hand = replay(dataclasses.replace(config, lr_warmup=0.0), (10,), train_digits,
                     lr_schedule=lambda step: config.lr * step / 10)[10]
    assert_same_state(by_hand, model)
    constant = replay(dataclasses.replace(config, lr_warmup=0.0), (10,), train_digits)[10]
    assert not torch.equal(constant.encoder.weight, model.encoder.weight)


def test_first_batch_is_the_batch_train_takes_first(monkeypatch, train_digits):
    train_module = sys.modules["sae_utils.train"]   # the package name "train" is the function
    seen = []
    real_pixels = train_module.pixels
    monkeypatch.setattr(train_module, "pixels", lambda rows: seen.append(rows.clone()) or real_pixels(rows))
    config = small_config(seed=3)
    replay(config, (1,), train_digits)
    expected = train_digits.reshape(len(train_digits), -1)[first_batch(config, len(train_digits))]
    assert seen[-1].shape == (200, 784) and torch.equal(seen[-1], expected)
    assert not torch.equal(first_batch(config, 2000), first_batch(small_config(seed=4), 2000))
    with pytest.raises(ValueError, match="n_inputs must be an integer >= 1, got 0"):
        first_batch(config, 0)


def test_start_default_leaves_the_family_start_out():
    """The ablation of KL's start: the encoder bias at logit(rho) with start="family" (the default), and
    PyTorch's uniform initialisation, the same as an unstarted model of that seed, with start="default"."""
    family = replay(TrainConfig(**TINY), (1,), RANDOM_DIGITS)[0]
    default = replay(TrainConfig(**TINY, start="default"), (1,), RANDOM_DIGITS)[0]
    rho = TrainConfig(**TINY).rho
    assert torch.equal(family.encoder.bias, torch.full_like(family.encoder.bias, math.log(rho / (1 - rho))))
    torch.manual_seed(TrainConfig(**TINY).seed)
    plain = SparseAutoencoder(TINY["n_hidden"], "sigmoid")
    assert_same_state(default, plain)
    with pytest.raises(ValueError, match="start must be one of 'family', 'default', got 'zeros'"):
        TrainConfig(start="zeros")


def test_activation_is_checked_and_refuses_what_makes_no_sense():
    """The ablation of the code activation: L1 takes sigmoid codes; KL needs sigmoid codes and TopK its own."""
    assert TrainConfig().activation == "family" and TrainConfig().code_activation == "sigmoid"
    ablated = TrainConfig(penalty="l1", activation="sigmoid")
    assert ablated.activation == "sigmoid" and ablated.code_activation == "sigmoid"
    assert ablated.hyperparameters() == {"lam": 4e-5}
    # the family's own activation, named, is the same config as "family"
    assert TrainConfig(penalty="l1", activation="relu") == TrainConfig(penalty="l1")
    assert TrainConfig(penalty="kl", activation="sigmoid").activation == "family"
    with pytest.raises(ValueError, match="activation must be one of 'family', 'sigmoid', 'relu', got 'tanh'"):
        TrainConfig(penalty="l1", activation="tanh")
    with pytest.raises(ValueError, match=re.escape("activation='relu' does not go with penalty='kl': the KL "
                                                   "penalty needs sigmoid codes, as each unit's mean rho_hat_j "
                                                   "must lie in (0, 1)")):
        TrainConfig(penalty="kl", activation="relu")
    for activation in ("sigmoid", "relu"):
        with pytest.raises(ValueError, match=f"activation='{activation}' does not go with penalty='topk': a "
                                             "TopK code's sparsity is its activation"):
            TrainConfig(penalty="topk", activation=activation)
    with pytest.raises(ValueError, match="activation must be one of"):
        TrainConfig(penalty="topk", activation="topk")


def test_l1_on_sigmoid_codes_trains_with_the_l1_penalty_of_its_sigmoid_code():
    """A few steps of L1 on sigmoid codes: the model starts as PyTorch's default (L1 has no start), its code
    lies in (0, 1), and each step's penalty is sum_j mean_b y_bj (weighted by lam), by hand in float64."""
    config = TrainConfig(**{**TINY, "n_hidden": 8}, penalty="l1", lam=1e-3, activation="sigmoid")
    copies = replay(config, range(1, 6), RANDOM_DIGITS)  # the model before each of the epoch's 5 steps
    torch.manual_seed(config.seed)
    assert_same_state(copies[0], SparseAutoencoder(8, "sigmoid"))
    model, history = tiny_run(config)
    assert model.activation == "sigmoid"
    assert_same_state(model, copies[5])
    x = prepare_images(RANDOM_DIGITS).double()
    code = model.encode(x.float())
    assert bool((code > 0).all()) and bool((code < 1).all())
    order = first_batch(dataclasses.replace(config, batch_size=50), 50)  # the epoch's shuffle
    hand = []
    for step in range(5):
        before, batch = copies[step], x[order[10 * step:10 * (step + 1)]]
        y = torch.sigmoid(batch @ before.encoder.weight.double().T + before.encoder.bias.double())  # (B, H)
        hand.append(sum(y[:, j].mean().item() for j in range(8)))                                    # sum_j mean_b y_bj
    assert history["train_penalty"][0] == pytest.approx(sum(hand) / 5, rel=1e-6)
    assert history["train_objective"][0] - history["train_bce"][0] == pytest.approx(1e-3 * sum(hand) / 5, rel=1e-4)
    y_test = torch.sigmoid(x @ model.encoder.weight.double().T + model.encoder.bias.double())
    assert history["test_penalty"][-1] == pytest.approx(y_test.mean(dim=0).sum().item(), rel=1e-6)


def test_a_checkpoint_written_before_a_config_field_existed_still_resumes(tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    tiny_run(checkpoint=checkpoint)
    state = safe_torch_load(checkpoint)
    del state["config"]["start"]  # as an older version wrote it
    torch.save(state, checkpoint)
    _, history = tiny_run(TrainConfig(**{**TINY, "epochs": 2}), checkpoint=checkpoint, resume=True)
    assert len(history["epoch"]) == 2


class _RecordingOptimizer:
    """Stands in for Adam in ``train_epoch``: keeps the gradients of the first step and changes nothing."""

    def __init__(self, model):
        self.model, self.grads = model, None

    def zero_grad(self, set_to_none=True):
        self.model.zero_grad(set_to_none=set_to_none)

    def step(self):
        self.grads = self.grads or {name: p.grad.clone() for name, p in self.model.named_parameters()}


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_weight_decay_adds_half_the_squared_weights_to_what_the_step_descends(train_digits, weight_decay):
    """The gradient of the first step against a float64 autograd of the textbook objective,
    BCE + beta * sum_j KL(rho || rho_hat_j) + (weight_decay / 2) * (sum W_enc^2 + sum W_dec^2), biases not decayed."""
    train_module = sys.modules["sae_utils.train"]
    config = small_config(weight_decay=weight_decay)
    start = replay(config, (1,), train_digits)[0]
    model = copy.deepcopy(start)
    recorder = _RecordingOptimizer(model)
    x_train = train_digits.reshape(len(train_digits), -1)
    shuffler = torch.Generator().manual_seed(config.seed)
    values, _ = next(train_module.train_epoch(model, recorder, x_train, config, train_module.training_bce("cpu"),
                                              shuffler, 1))
    reference = copy.deepcopy(start).double()
    x = x_train[first_batch(config, len(x_train))].double() / 255
    logits, code = reference(x)
    rho, rho_hat = config.rho, code.mean(dim=0)
    kl = (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x)
    decay = reference.encoder.weight.square().sum() + reference.decoder.weight.square().sum()
    (bce + config.beta * kl + weight_decay / 2 * decay).backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(recorder.grads[name].double(), p.grad, rtol=1e-4, atol=1e-7)
    assert values[0] == pytest.approx((bce + config.beta * kl).item(), rel=1e-5)  # the objective leaves it out
    with pytest.raises(ValueError, match=re.escape("weight_decay must lie in [0, inf), got -1.0")):
        small_config(weight_decay=-1)
