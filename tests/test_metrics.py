"""sae_utils.metrics: evaluate, active units, and the sparsity and reconstruction measures, on small
examples computed by hand."""
import math

import numpy as np
import pytest
import torch

import sae_utils
from sae_utils import SparseAutoencoder, TrainConfig, evaluate
from sae_utils.metrics import (ACTIVE_THRESHOLD, above_resting_level, active_units, dead_fraction, dead_units,
                               top_class_share,
                               firing_frequency, fraction_variance_unexplained, l0, unit_dashboards, units_by_use,
                               units_for_mass)

# 4 digits x 5 units, ReLU-like: exact zeros, one all-zero digit, unit 4 never non-zero.
CODE = torch.tensor([
    [0.5, 0.0, 0.3, 0.2, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 0.9, 0.0, 0.1, 0.0],
])


def test_firing_frequency_and_dead_fraction():
    assert firing_frequency(CODE, 0.0).tolist() == [0.5, 0.5, 0.5, 0.75, 0.0]
    assert firing_frequency(CODE, 0.4).tolist() == [0.5, 0.5, 0.25, 0.25, 0.0]
    assert dead_fraction(CODE, 0.0) == 1 / 5
    assert dead_fraction(CODE[[0, 3]], 0.4) == 3 / 5  # digits 0 and 3: only units 0 (0.5) and 1 (0.9) fire
    assert ACTIVE_THRESHOLD == {"sigmoid": 0.5, "relu": 0.0, "topk": 0.0}


def test_dead_units_marks_the_units_active_on_no_digit():
    assert dead_units(CODE, 0.0).tolist() == [False, False, False, False, True]   # unit 4 never non-zero
    assert dead_units(CODE[[0, 3]], 0.4).tolist() == [False, False, True, True, True]


def test_top_class_share_counts_each_units_top_digits_by_class():
    code = torch.tensor([[0.9, 0.0, 0.5], [0.8, 0.0, 0.5], [0.1, 0.7, 0.5], [0.0, 0.6, 0.5]])
    labels = torch.tensor([3, 3, 7, 3])
    # unit 0: top two digits 0, 1 (classes 3, 3); unit 1: digits 2, 3 (7, 3); unit 2 ties: the lower indices 0, 1
    assert top_class_share(code, labels, n_top=2).tolist() == [1.0, 0.5, 1.0]
    assert top_class_share(code, labels, n_top=4).tolist() == [0.75, 0.75, 0.75]  # all digits: 3 of 4 are 3s
    rng = np.random.default_rng(0)  # against a plain numpy loop on random codes
    code, labels = torch.from_numpy(rng.random((200, 6))), torch.from_numpy(rng.integers(0, 10, 200))
    by_hand = [np.bincount(labels.numpy()[np.argsort(-code[:, j].numpy(), kind="stable")[:50]]).max() / 50 for j in range(6)]
    assert top_class_share(code, labels).numpy() == pytest.approx(by_hand)
    with pytest.raises(ValueError, match="labels must have one class per digit"):
        top_class_share(code, labels[:-1])
    with pytest.raises(ValueError, match="n_top must be at most the number of digits, 200; got 201"):
        top_class_share(code, labels, n_top=201)


def test_l0_counts_exact_non_zeros():
    assert l0(CODE) == (3 + 0 + 4 + 2) / 4
    assert l0(torch.sigmoid(torch.randn(3, 7))) == 7  # a sigmoid is never exactly 0


def test_above_resting_level_subtracts_each_units_median():
    code = torch.tensor([[0.1, 5.0], [0.3, 1.0], [0.2, 2.0], [0.9, 0.0], [0.2, 2.0]])   # 5 rows: one middle value
    median = np.median(code.double().numpy(), axis=0)                                   # (0.2, 2.0)
    expected = np.maximum(code.double().numpy() - median, 0.0)
    np.testing.assert_allclose(above_resting_level(code).double().numpy(), expected, atol=1e-7)
    assert above_resting_level(code.double()).dtype == torch.float64
    assert units_for_mass(above_resting_level(torch.full((3, 4), 0.08))) == 0   # a constant code: nothing above rest


def test_above_resting_level_at_the_minimum_shifts_without_clipping():
    code = torch.tensor([[0.1, 5.0], [0.3, 1.0], [0.2, 2.0], [0.9, 0.0], [0.2, 2.0]])
    expected = code.double().numpy() - code.double().numpy().min(axis=0)                # (0.1, 0.0) subtracted
    np.testing.assert_allclose(above_resting_level(code, "minimum").double().numpy(), expected, atol=1e-7)
    with pytest.raises(ValueError, match="level must be one of 'median', 'minimum', got 'mean'"):
        above_resting_level(code, "mean")


def test_units_for_mass_by_hand():
    # digit 0: 0.5 < 0.9 * 1.0, 0.5 + 0.3 = 0.8 < 0.9, + 0.2 reaches it: 3 units. digit 1: all zero: 0 units.
    # digit 2: four equal values, 0.9 * 4 = 3.6 needs 4. digit 3: 0.9 = 0.9 * 1.0 exactly: 1 unit.
    assert units_for_mass(CODE, 0.9) == pytest.approx((3 + 0 + 4 + 1) / 4)
    # share 0.5: digit 0: 0.5 >= 0.5 (1); digit 2: 2 of 4; digit 3: 0.9 (1)
    assert units_for_mass(CODE, 0.5) == pytest.approx((1 + 0 + 2 + 1) / 4)
    # share 1: every non-zero value is needed
    assert units_for_mass(CODE, 1.0) == pytest.approx((3 + 0 + 4 + 2) / 4)
    assert units_for_mass(CODE, 0.9, per_digit=True).tolist() == [3, 0, 4, 1]


def test_units_for_mass_exact_boundary_despite_rounding():
    """0.7 + 0.2 is 0.9 of 0.7 + 0.2 + 0.1 on paper: 2 units. Rounded to float32 and summed, the two
    largest fall 2e-9 short of 0.9 of the total, so a comparison without slack would answer 3."""
    code = torch.tensor([[0.1, 0.7, 0.2]])
    ordered = code.double().sort(dim=1, descending=True).values.cumsum(dim=1)
    assert ordered[0, 1] < 0.9 * ordered[0, 2]  # the rounding the slack is for
    assert units_for_mass(code, 0.9) == 2
    assert units_for_mass(torch.tensor([[0.5, 0.3, 0.2]]), 0.8) == 2


def test_units_for_mass_against_a_float64_loop():
    code = torch.rand(50, 30) * (torch.rand(50, 30) < 0.3)
    code[7] = 0
    expected = []
    for row in code.double().tolist():
        total, running, k = sum(row), 0.0, 0
        for value in sorted(row, reverse=True):
            if total == 0 or running >= 0.9 * total:
                break
            running, k = running + value, k + 1
        expected.append(k)
    assert units_for_mass(code, 0.9) == pytest.approx(sum(expected) / len(expected))


@pytest.mark.parametrize("share", [0, -0.1, 1.5, float("nan")])
def test_units_for_mass_rejects_share_outside_0_1(share):
    with pytest.raises(ValueError, match=r"share must lie in \(0, 1\], got"):
        units_for_mass(CODE, share)


def test_units_for_mass_rejects_negative_codes_and_bad_shapes():
    with pytest.raises(ValueError, match="non-negative"):
        units_for_mass(-CODE)
    with pytest.raises(ValueError, match=r"shape \(B, H\)"):
        units_for_mass(CODE[0])


def test_fraction_variance_unexplained_by_hand():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    # mean digit (0.5, 0.5): every pixel is 0.5 away, sum of squares 8 * 0.25 = 2
    x_hat = torch.tensor([[0.0, 1.0], [1.0, 0.5], [1.0, 0.0], [0.5, 0.0]])  # two pixels off by 0.5: 0.5
    assert fraction_variance_unexplained(x, x_hat) == 0.25
    assert fraction_variance_unexplained(x, x) == 0
    assert fraction_variance_unexplained(x, x.mean(dim=0).expand_as(x)) == 1


def test_fraction_variance_unexplained_errors():
    x = torch.rand(4, 3)
    with pytest.raises(ValueError, match="same shape"):
        fraction_variance_unexplained(x, x[:3])
    with pytest.raises(ValueError, match="no variance"):
        fraction_variance_unexplained(torch.ones(4, 3), x)


# --- evaluate and active_units, against a hand computation on a model whose codes are known ----------

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


def test_evaluate_with_the_l1_family_on_a_sigmoid_model_by_hand():
    """L1 on sigmoid codes (TrainConfig(activation="sigmoid")): family="l1" scores the L1 penalty, the sum
    of the units' mean code values, with lam; "active" stays the sigmoid rule (> 0.5). Without family the
    model is taken for KL, as before."""
    x, decoder_bias = hand_images(), torch.zeros(784)
    model = hand_model("sigmoid", 8.0, [-4.0, 0.0, 3.0], decoder_bias)  # as in the test above
    s = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    rho_hat = np.array([(2 * s(4) + 2 * s(-4)) / 4, 0.5, s(3)])
    metrics = evaluate(model, x, family="l1", lam=0.01)
    assert metrics["penalty"] == pytest.approx(rho_hat.sum(), rel=1e-6)
    assert metrics["objective"] == pytest.approx(math.log(2) + 0.01 * rho_hat.sum(), rel=1e-6)
    assert metrics["active_units_per_digit"] == pytest.approx(1.5) and metrics["dead_fraction"] == pytest.approx(1 / 3)
    assert evaluate(model, x, family="l1")["penalty"] == metrics["penalty"]  # lam at its reference
    default = evaluate(model, x)
    assert default == evaluate(model, x, family="kl") and default["penalty"] != pytest.approx(rho_hat.sum())
    with pytest.raises(ValueError, match="evaluate got 'lam', which the KL family .sigmoid codes. does not use"):
        evaluate(model, x, lam=0.01)
    with pytest.raises(ValueError, match="activation='relu' does not go with penalty='kl'"):
        evaluate(hand_model("relu", 1.0, [0.0, 0.0, 0.0], decoder_bias), x, family="kl")
    with pytest.raises(ValueError, match="activation='sigmoid' does not go with penalty='topk'"):
        evaluate(model, x, family="topk")
    with pytest.raises(ValueError, match="penalty must be one of 'kl', 'l1', 'topk', got 'l2'"):
        evaluate(model, x, family="l2")


def test_evaluate_accepts_uint8_digits(test_digits):
    model = SparseAutoencoder(16)
    assert evaluate(model, test_digits) == evaluate(model, sae_utils.prepare_images(test_digits))


def test_active_units_means_strictly_above_the_threshold_of_the_activation():
    code = torch.tensor([[0.0, 0.5, 0.5000001, 1.0],
                         [1e-30, 0.0, 0.49, 0.51]])
    # sigmoid: active above 0.5, so exactly 0.5 is not; ReLU: active above 0, so any positive value is.
    assert active_units(code, "sigmoid").tolist() == [[False, False, True, True], [False, False, False, True]]
    assert active_units(code, "relu").tolist() == [[False, True, True, True], [True, False, True, True]]


def test_units_by_use_orders_by_firing_frequency_then_mean_activation():
    frequency = torch.tensor([0.1, 0.5, 0.5, 0.0, 0.5])
    mean = torch.tensor([0.9, 0.2, 0.3, 0.0, 0.2])
    # 0.5 first (unit 2 has the larger mean; units 1 and 4 tie on both and keep their order), then 0.1, then 0.
    assert units_by_use(frequency, mean).tolist() == [2, 1, 4, 0, 3]


def test_unit_dashboards_by_hand():
    code = torch.tensor([[0.0, 0.9],
                         [0.5, 0.0],
                         [0.2, 0.3],
                         [0.5, 0.6]])
    d = unit_dashboards(code, [0, 1], threshold=0.0, n_top=2, bins=2)
    assert d["top_digits"].tolist() == [[1, 3], [0, 3]]       # ties (0.5, 0.5): the lower index first
    np.testing.assert_allclose(d["top_values"], [[0.5, 0.5], [0.9, 0.6]], rtol=1e-6)
    np.testing.assert_allclose(d["edges"], [[0.0, 0.25, 0.5], [0.0, 0.45, 0.9]], rtol=1e-6)
    assert d["histogram"].tolist() == [[1, 2], [1, 2]]        # unit 0: 0.2 | 0.5, 0.5; unit 1: 0.3 | 0.6, 0.9
    assert d["firing_frequency"].tolist() == pytest.approx([0.75, 0.75])
    silent = unit_dashboards(torch.zeros(3, 2), [1], threshold=0.0, bins=4)
    assert silent["histogram"].tolist() == [[0, 0, 0, 0]] and silent["firing_frequency"].tolist() == [0.0]


def test_mass_below_a_threshold_by_hand():
    from sae_utils.metrics import mass_share_below

    code = torch.tensor([[0.9, 0.1, 0.2], [0.6, 0.4, 0.0]])  # mass 2.2, of it 0.1 + 0.2 + 0.4 at or below 0.5
    assert mass_share_below(code) == pytest.approx(0.7 / 2.2)


def test_rescaled_relu_model_keeps_the_reconstruction_and_scales_the_code():
    torch.manual_seed(0)
    model = SparseAutoencoder(n_hidden=16, activation="relu", n_input=20)
    x = torch.rand(8, 20)
    factor = 2.0 ** torch.randint(-2, 3, (16,)).float()      # powers of two: the products are exact
    other = model.rescaled(factor)
    assert torch.equal(other.reconstruct(x), model.reconstruct(x))
    assert torch.equal(other.encode(x), model.encode(x) * factor)
    assert torch.equal(model.rescaled(1.0).decoder.weight, model.decoder.weight)


def test_rescaled_rejects_sigmoid_models_and_non_positive_factors():
    with pytest.raises(ValueError, match="needs a ReLU model"):
        SparseAutoencoder(n_hidden=4, activation="sigmoid", n_input=6).rescaled(2.0)
    with pytest.raises(ValueError, match="factor must be positive"):
        SparseAutoencoder(n_hidden=4, activation="relu", n_input=6).rescaled(torch.tensor([1.0, 0.0, 1.0, 1.0]))


def test_scale_measures_what_a_rescaling_changes_and_what_it_keeps():
    torch.manual_seed(1)
    model = SparseAutoencoder(n_hidden=16, activation="relu", n_input=20)
    x = torch.rand(32, 20)
    lam = 0.01
    base = sae_utils.metrics.scale_measures(model, x, lam)
    code = model.encode(x).double()
    assert base["Ω_L1"] == pytest.approx(code.sum(dim=1).mean().item(), rel=1e-6)
    assert base["L0"] == pytest.approx((code != 0).sum(dim=1).double().mean().item())
    weighted = code * model.decoder.weight.double().norm(dim=0)
    assert base["Σ y_j‖d_j‖"] == pytest.approx(weighted.sum(dim=1).mean().item(), rel=1e-6)
    halved = sae_utils.metrics.scale_measures(model.rescaled(0.5), x, lam, reference=model)
    assert halved["largest x̂ change"] == 0.0
    assert halved["Ω_L1"] == pytest.approx(base["Ω_L1"] / 2, rel=1e-6)
    assert halved["test J"] == pytest.approx(base["test J"] - lam * base["Ω_L1"] / 2, rel=1e-6)
    factor = 2.0 ** torch.randint(-2, 3, (16,)).float()
    per_unit = sae_utils.metrics.scale_measures(model.rescaled(factor), x, lam)
    for key in ("L0", "k90 of y‖d‖", "Σ y_j‖d_j‖"):
        assert per_unit[key] == pytest.approx(base[key], rel=1e-6)


def test_scale_summary_by_hand():
    from sae_utils.metrics import scale_summary, unit_scale_statistics
    stats = {"column_norm": torch.tensor([1.0, 2.0, 4.0, 3.0]), "mean_activation": torch.tensor([0.5, 0.25, 0.0, 1.0]),
             "firing_frequency": torch.tensor([0.5, 0.5, 0.0, 1.0])}
    s = scale_summary(stats)   # living: units 0, 1, 3
    assert s["L0"] == 2.0 and s["scale"] == 1.75 / 2.0 and s["median ‖d_j‖"] == 2.0
    assert s["Σ y‖d‖"] == 0.5 * 1 + 0.25 * 2 + 1.0 * 3 and s["Σ y‖d‖ per value"] == 4.0 / 2.0
    assert scale_summary(stats, units=[0, 1])["L0"] == 1.0
    missing = dict(stats, column_norm=torch.tensor([1.0, float("nan"), 4.0, 3.0]))
    assert math.isnan(scale_summary(missing)["median ‖d_j‖"]) and math.isnan(scale_summary(missing)["Σ y‖d‖"])
    with pytest.raises(ValueError, match="statistics"):
        scale_summary({"column_norm": stats["column_norm"]})
    # from a model: Σ ρ̂_j ‖d_j‖ is the mean over inputs of Σ_j y_j ‖d_j‖, and L0 the mean non-zero count
    torch.manual_seed(0)
    model = SparseAutoencoder(n_input=6, n_hidden=5, activation="relu")
    x = torch.rand(40, 6)
    with torch.no_grad():
        code = model.encode(x).double()
        norm = model.decoder.weight.double().norm(dim=0)
    s = scale_summary(unit_scale_statistics(model, x))
    assert s["Σ y‖d‖"] == pytest.approx((code * norm).sum(dim=1).mean().item(), rel=1e-12)
    assert s["L0"] == pytest.approx(l0(code), rel=1e-12)
    assert s["scale"] == pytest.approx(code.sum().item() / (code > 0).sum().item(), rel=1e-12)


def test_bce_floor_is_the_mean_binary_entropy_and_the_bce_of_a_perfect_model():
    from sae_utils.metrics import bce_floor
    x = torch.tensor([[0.5, 0.0, 1.0, 0.25], [0.0, 0.0, 0.0, 0.0]])
    by_hand = (math.log(2) + 0 + 0 + -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))) / 4
    assert torch.allclose(bce_floor(x), torch.tensor([by_hand, 0.0], dtype=torch.float64), atol=1e-12)
    x_hat = torch.tensor([[0.5, 1e-12, 1 - 1e-12, 0.25]], dtype=torch.float64)
    bce = -(x[:1].double() * x_hat.log() + (1 - x[:1].double()) * (1 - x_hat).log()).mean()
    assert abs(bce.item() - bce_floor(x[:1]).item()) < 1e-9           # a perfect x_hat reaches the floor
    with pytest.raises(ValueError, match="values in"):
        bce_floor(torch.tensor([[1.5, 0.0]]))


def test_kl_jensen_gap_matches_the_exact_expectation_over_all_minibatches():
    from itertools import combinations
    from sae_utils.metrics import kl_jensen_gap
    code = (0.3 + 0.02 * torch.randn(8, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)).clamp(0, 1)
    rho, beta, b = 0.1, 1.5, 3

    def penalty(rows):
        q = rows.mean(dim=0)
        return beta * (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum().item()

    # exact: every 3-row subset is equally likely under sampling without replacement
    expected = np.mean([penalty(code[list(c)]) for c in combinations(range(8), b)])
    exact_gap = expected - penalty(code)
    assert kl_jensen_gap(code, rho, beta, batch_size=b) == pytest.approx(exact_gap, rel=0.02)
    assert kl_jensen_gap(code, rho, beta, batch_size=8) == 0.0   # one batch holds every row
    with pytest.raises(ValueError, match="batch_size"):
        kl_jensen_gap(code, rho, beta, batch_size=9)
    with pytest.raises(ValueError, match="rho"):
        kl_jensen_gap(code, 1.0, beta, batch_size=b)


def test_floor_by_grey_level_is_the_mean_pixel_entropy_and_splits_it_by_band():
    from sae_utils import prepare_images
    from sae_utils.metrics import bce_floor, floor_by_grey_level
    images = torch.tensor([[0, 255, 128, 26], [229, 230, 1, 0]], dtype=torch.uint8)          # (2, 4)
    floor, rows = floor_by_grey_level(images)
    assert floor == pytest.approx(bce_floor(prepare_images(images)).mean().item(), rel=1e-6)
    x = torch.tensor([128, 26, 229], dtype=torch.float64) / 255                               # the grey band
    grey = -(x * x.log() + (1 - x) * (1 - x).log()).sum().item() / 8
    by_label = {r["test pixels"]: r for r in rows}
    assert by_label["0.1 <= x < 0.9"]["share of the pixels"] == pytest.approx(3 / 8)
    assert by_label["0.1 <= x < 0.9"]["share of the floor"] == pytest.approx(grey / floor)
    assert by_label["x = 0"]["share of the floor"] == 0 and by_label["x = 0"]["share of the pixels"] == 0.25
    assert sum(r["share of the floor"] for r in rows) == pytest.approx(1)
    with pytest.raises(ValueError, match="uint8"):
        floor_by_grey_level(prepare_images(images))


def test_subset_penalty_prediction_matches_a_float64_formula_and_sampling():
    from sae_utils.metrics import subset_penalty_prediction

    gen = torch.Generator().manual_seed(0)
    code = 0.2 + 0.6 * torch.rand(400, 6, generator=gen, dtype=torch.float64)   # (N, H) in [0.2, 0.8]
    c = code.numpy()
    q, s2, rho, n, N = c.mean(axis=0), c.var(axis=0, ddof=1), 0.5, 50, 400   # rho near q: a visible excess
    kl = rho * np.log(rho / q) + (1 - rho) * np.log((1 - rho) / (1 - q))
    by_hand = (kl + 0.5 * (rho / q**2 + (1 - rho) / (1 - q) ** 2) * s2 / n * (1 - n / N)).sum()
    assert subset_penalty_prediction(code, rho, n) == pytest.approx(by_hand, rel=1e-12)
    assert subset_penalty_prediction(code, rho, N) == pytest.approx(kl.sum(), rel=1e-12)   # n = N: no excess
    rows = torch.stack([torch.randperm(N, generator=gen)[:n] for _ in range(4000)])        # Monte Carlo subsets
    sampled = [((rho * np.log(rho / m) + (1 - rho) * np.log((1 - rho) / (1 - m))).sum()) for m in c[rows.numpy()].mean(axis=1)]
    se = np.std(sampled, ddof=1) / np.sqrt(len(sampled))
    assert abs(np.mean(sampled) - by_hand) < 0.05 * (by_hand - kl.sum()) + 3 * se        # the excess, to second order
    assert by_hand - kl.sum() > 10 * se                                                      # an excess the test can see
    with pytest.raises(ValueError, match="n must be at most"):
        subset_penalty_prediction(code, rho, N + 1)
    with pytest.raises(ValueError, match="rho"):
        subset_penalty_prediction(code, 1.0, n)
