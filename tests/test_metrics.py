"""The sparsity and reconstruction measures of sae_utils.metrics on small examples computed by hand."""
import pytest
import torch

from sae_utils.metrics import (ACTIVE_THRESHOLD, dead_fraction, firing_frequency, fraction_variance_unexplained, units_by_use,
                               l0, units_for_mass)

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
    assert ACTIVE_THRESHOLD == {"sigmoid": 0.5, "relu": 0.0}


def test_l0_counts_exact_non_zeros():
    assert l0(CODE) == (3 + 0 + 4 + 2) / 4
    assert l0(torch.sigmoid(torch.randn(3, 7))) == 7  # a sigmoid is never exactly 0


def test_units_for_mass_by_hand():
    # digit 0: 0.5 < 0.9 * 1.0, 0.5 + 0.3 = 0.8 < 0.9, + 0.2 reaches it: 3 units. digit 1: all zero: 0 units.
    # digit 2: four equal values, 0.9 * 4 = 3.6 needs 4. digit 3: 0.9 = 0.9 * 1.0 exactly: 1 unit.
    assert units_for_mass(CODE, 0.9) == pytest.approx((3 + 0 + 4 + 1) / 4)
    # share 0.5: digit 0: 0.5 >= 0.5 (1); digit 2: 2 of 4; digit 3: 0.9 (1)
    assert units_for_mass(CODE, 0.5) == pytest.approx((1 + 0 + 2 + 1) / 4)
    # share 1: every non-zero value is needed
    assert units_for_mass(CODE, 1.0) == pytest.approx((3 + 0 + 4 + 2) / 4)


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


def test_units_by_use_orders_by_firing_frequency_then_mean_activation():
    frequency = torch.tensor([0.1, 0.5, 0.5, 0.0, 0.5])
    mean = torch.tensor([0.9, 0.2, 0.3, 0.0, 0.2])
    # 0.5 first (unit 2 has the larger mean; units 1 and 4 tie on both and keep their order), then 0.1, then 0.
    assert units_by_use(frequency, mean).tolist() == [2, 1, 4, 0, 3]
