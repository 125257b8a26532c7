"""The TopK family: the code and its gradient against independent references, its start, the decoder
norm, the dead-unit loss, its config and command line, and a short training run."""
import dataclasses

import pytest
import torch
from helpers import small_config

import sae_utils
from sae_utils import SparseAutoencoder, TrainConfig, evaluate, train
from sae_utils.cli import main
from sae_utils.families import (AUXILIARY_UNITS, DEAD_AFTER_DIGITS, FAMILIES, build_model, normalise_decoder,
                                topk_dead_unit_loss)
from sae_utils.metrics import l0
from sae_utils.penalties import dead_unit_loss, topk_code
from sae_utils.train import learning_rate

GEN = torch.Generator().manual_seed(0)


def reference_topk(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Row by row, in float64: keep the values at or above the k-th largest, clip below 0 to 0."""
    out = torch.zeros_like(pre, dtype=torch.float64)
    for b, row in enumerate(pre.double()):
        kth = row.sort(descending=True).values[k - 1]
        out[b] = torch.where(row >= kth, row.clamp_min(0), torch.zeros_like(row))
    return out


@pytest.mark.parametrize("k", [1, 3, 8])
def test_topk_code_keeps_the_k_largest_through_a_relu(k):
    pre = torch.randn(32, 8, generator=GEN) - 0.3  # some kept values are negative: the ReLU zeroes them
    code = topk_code(pre, k)
    torch.testing.assert_close(code.double(), reference_topk(pre, k), rtol=0, atol=0)
    assert ((code != 0).sum(dim=1) <= k).all()
    if k < 8:
        assert ((code != 0).sum(dim=1) < k).any()  # the ReLU does bite on this data


def test_topk_gradient_reaches_the_kept_units_only():
    pre = torch.randn(6, 10, dtype=torch.float64, generator=GEN, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: topk_code(p, 4), (pre,))
    weights = torch.randn(6, 10, dtype=torch.float64, generator=GEN)
    (topk_code(pre, 4) * weights).sum().backward()
    kept = reference_topk(pre.detach(), 4) > 0
    torch.testing.assert_close(pre.grad, torch.where(kept, weights, 0.0), rtol=0, atol=0)


def test_model_l0_is_at_most_k(test_digits):
    model = build_model("topk", 64, k=7)
    code = model.encode(sae_utils.prepare_images(test_digits[:100]))
    assert l0(code) <= 7 and (code >= 0).all()


@pytest.mark.parametrize("k, error, message", [
    (0, ValueError, "k must be an integer >= 1, got 0"),
    (-3, ValueError, "k must be an integer >= 1, got -3"),
    (2.5, TypeError, "k must be an integer >= 1, got 2.5 of type float"),
    (True, TypeError, "k must be an integer >= 1, got True"),
    (65, ValueError, r"k must be an integer in \[1, n_hidden=64\], got 65"),
    (None, ValueError, r"a TopK model needs k"),
])
def test_bad_k_is_refused_by_the_model_and_the_config(k, error, message):
    with pytest.raises(error, match=message):
        SparseAutoencoder(64, "topk", k=k)
    if k is not None:
        with pytest.raises(error, match=message):
            TrainConfig(penalty="topk", n_hidden=64, k=k)


def test_k_is_refused_for_other_codes_and_another_family_weight_for_topk():
    with pytest.raises(ValueError, match="k=5 applies to TopK codes only"):
        SparseAutoencoder(8, "relu", k=5)
    with pytest.raises(ValueError, match=r"beta=0.01 applies to the kl family, not to topk .*no penalty weight"):
        TrainConfig(penalty="topk", beta=0.01)
    with pytest.raises(ValueError, match=r"k=10 applies to the topk family, not to l1"):
        TrainConfig(penalty="l1", k=10)
    assert TrainConfig(penalty="topk", beta=0.005).k == 25  # another family's reference value is harmless


@pytest.mark.parametrize("flags, message", [
    (["--penalty", "topk", "--beta", "0.005"], "--beta does not apply to --penalty topk (it takes --k; it has no penalty weight)"),
    (["--penalty", "topk", "--lam", "1e-4"], "--lam does not apply to --penalty topk"),
    (["--penalty", "kl", "--k", "25"], "--k does not apply to --penalty kl (it takes --rho, --beta)"),
    (["--penalty", "topk", "--k", "0"], "k must be an integer >= 1, got 0"),
    (["--penalty", "topk", "--k", "513"], "k must be an integer in [1, n_hidden=512], got 513"),
    (["--penalty", "topk", "--k", "2.5"], "argument --k: invalid int value: '2.5'"),
])
def test_command_line_refuses_bad_topk_flags(flags, message, tmp_path, capsys):
    try:
        code = main(["train", *flags, "--out", str(tmp_path)])
    except SystemExit as exit_:  # argparse's own type errors exit
        code = exit_.code
    assert code == 2 and message in capsys.readouterr().err


def test_start_ties_decoder_to_encoder_at_unit_length_and_centres_on_the_mean():
    mean = torch.rand(784, generator=GEN) * 0.9 + 0.05
    model = build_model("topk", 16, mean_input=mean, k=4)
    torch.testing.assert_close(model.decoder.weight.norm(dim=0), torch.ones(16))
    torch.testing.assert_close(model.decoder.weight, model.encoder.weight.T, rtol=0, atol=0)
    torch.testing.assert_close(model.input_centre, mean, rtol=0, atol=0)
    torch.testing.assert_close(torch.sigmoid(model.decoder.bias), mean)  # the empty code gives the mean input
    code = model.encode(mean[None])
    torch.testing.assert_close(code, topk_code(model.encoder.bias[None], 4))  # x - centre = 0 at the mean


def test_normalise_decoder_gives_unit_columns_in_the_same_directions():
    model = build_model("topk", 8, k=2)
    with torch.no_grad():
        model.decoder.weight.mul_(torch.rand(8, generator=GEN) * 5 + 0.1)
    before = model.decoder.weight.detach().clone()
    normalise_decoder(model)
    after = model.decoder.weight.detach()
    torch.testing.assert_close(after.norm(dim=0), torch.ones(8))
    torch.testing.assert_close(after * before.norm(dim=0), before)


def test_dead_unit_loss_is_the_bce_of_the_logits_plus_the_dead_topk_code_in_float64():
    pre, columns = torch.randn(5, 6, generator=GEN), torch.randn(784, 6, generator=GEN) * 0.1
    logits, x = torch.randn(5, 784, generator=GEN), torch.rand(5, 784, generator=GEN)
    expected_logits = logits.double() + reference_topk(pre, 2) @ columns.double().T
    p = torch.sigmoid(expected_logits)
    expected = -(x.double() * p.log() + (1 - x.double()) * (1 - p).log()).mean()
    assert dead_unit_loss(pre, columns, logits, x, 2).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="logits and x must have the same shape"):
        dead_unit_loss(pre, columns, logits[:, :10], x, 2)


def test_auxiliary_loss_waits_for_dead_units_then_trains_only_them():
    model = build_model("topk", 12, k=2)
    x = torch.rand(50, 784, generator=GEN)
    logits, code = model(x)
    assert topk_dead_unit_loss(model, x, logits, code).item() == 0  # nobody has been silent long enough
    fired = (code > 0).any(dim=0)
    model.digits_since_fired[~fired] = DEAD_AFTER_DIGITS  # the silent ones now pass the limit
    loss = topk_dead_unit_loss(model, x, logits, code)
    assert (model.digits_since_fired[fired] == 0).all()
    assert (model.digits_since_fired[~fired] == DEAD_AFTER_DIGITS + 50).all()
    loss.backward()
    grad_rows = model.encoder.weight.grad.abs().sum(dim=1) > 0
    assert grad_rows.any() and not (grad_rows & fired).any()  # the live units get nothing from it
    assert AUXILIARY_UNITS >= 1


def test_learning_rate_falls_linearly_to_zero_over_the_last_fraction():
    config = TrainConfig(penalty="topk", lr_decay=0.25, lr=1.0)
    rates = [learning_rate(config, step, 100) for step in range(100)]
    assert rates[:75] == [1.0] * 75 and rates[75] == 1.0
    assert rates[76] == pytest.approx(24 / 25) and rates[99] == pytest.approx(1 / 25)
    assert TrainConfig(penalty="topk").lr_decay == FAMILIES["topk"].recipe["lr_decay"] == 0.3
    assert TrainConfig(penalty="kl").lr_decay == 0.0  # the reference run: a constant learning rate
    assert learning_rate(TrainConfig(), 99, 100) == TrainConfig().lr


def test_short_topk_run_learns_with_unit_decoder_columns_and_l0_at_most_k(train_digits, test_digits):
    config = small_config(penalty="topk", k=5, lr=3e-3)
    model, history = train(config, train_digits, test_digits, progress=False)
    assert history["test_bce"][-1] < history["test_bce"][0] < 0.3
    torch.testing.assert_close(model.decoder.weight.norm(dim=0), torch.ones(32))
    metrics = evaluate(model, test_digits)
    assert metrics["penalty"] == 0 and metrics["objective"] == metrics["bce"]
    code = model.encode(sae_utils.prepare_images(test_digits))
    assert l0(code) <= 5
    with pytest.raises(ValueError, match=r"evaluate got k=10, but k is the model's own \(k=5\)"):
        evaluate(model, test_digits, k=10)
    wider = model.with_k(10)
    assert wider.k == 10 and model.k == 5 and l0(wider.encode(sae_utils.prepare_images(test_digits))) > l0(code)
    rebuilt = SparseAutoencoder(**model.architecture())
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(test_digits.float() / 255)[0], model(test_digits.float() / 255)[0])


def test_replacing_the_family_keeps_the_config_checked():
    with pytest.raises(ValueError, match="beta=0.01 applies to the kl family"):
        dataclasses.replace(TrainConfig(beta=0.01), penalty="topk")
