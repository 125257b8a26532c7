"""sae_utils.stats against independent references: the t density integrated numerically in float64,
printed tables of critical values, and Holm's adjustment worked by hand."""
import math
import re

import numpy as np
import pytest

from sae_utils import stats


def tail_by_integration(t, dof):
    """P(|T| >= |t|) = 1 - 2 * integral of the t density from 0 to |t| (trapezoid rule, float64)."""
    x = np.linspace(0.0, abs(t), 200_001)
    log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    density = np.exp(log_c - (dof + 1) / 2 * np.log1p(x ** 2 / dof))
    return 1.0 - 2.0 * np.trapezoid(density, x)


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 5, 6, 7, 10, 29])
@pytest.mark.parametrize("t", [0.3, 1.0, 2.5, 4.303, 9.0])
def test_the_closed_form_tail_matches_the_integrated_density(t, dof):
    assert stats.t_two_sided_p(t, dof) == pytest.approx(tail_by_integration(t, dof), abs=1e-8)
    assert stats.t_two_sided_p(-t, dof) == stats.t_two_sided_p(t, dof)


def test_two_degrees_of_freedom_has_the_simple_form_and_the_ends_are_exact():
    for t in (0.5, 3.0, 40.0):
        assert stats.t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(t * t + 2), abs=1e-15)
    assert stats.t_two_sided_p(0.0, 5) == 1.0
    assert stats.t_two_sided_p(math.inf, 3) == 0.0 and stats.t_two_sided_p(-math.inf, 2) == 0.0


@pytest.mark.parametrize("dof, printed", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571),
                                          (10, 2.228), (30, 2.042)])
def test_critical_values_match_the_printed_table(dof, printed):
    critical = stats.t_critical(dof)
    assert critical == pytest.approx(printed, abs=5e-4)
    assert stats.t_two_sided_p(critical, dof) == pytest.approx(0.05, abs=1e-12)


def test_paired_change_is_the_t_test_of_the_per_seed_differences():
    before, after = [0.0770, 0.0772, 0.0768], [0.0781, 0.0786, 0.0777]
    result = stats.paired_change(before, after)
    d = np.array(after) - np.array(before)   # 0.0011, 0.0014, 0.0009
    assert result.changes == pytest.approx(tuple(d), abs=1e-15)
    assert result.mean == pytest.approx(0.0034 / 3, abs=1e-15)
    assert result.t == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(3)), rel=1e-12)
    assert result.dof == 2 and result.p == pytest.approx(1 - result.t / math.sqrt(result.t ** 2 + 2))
    assert result.same_sign and result.beyond_noise()
    row = result.row("test BCE", digits=4)
    assert row["mean change"] == "+0.0011" and row["verdict"] == "beyond seed noise"


def test_a_change_of_mixed_sign_is_never_beyond_noise_even_with_a_small_p():
    result = stats.paired_change(np.zeros(10), [5.0] * 9 + [-0.1])
    assert result.p < 1e-4 and not result.same_sign and not result.beyond_noise()
    small = stats.paired_change([1.0, 2.0, 3.0], [1.5, 2.1, 3.9])   # same sign, t = 2.1: p about 0.17
    assert small.same_sign and not small.beyond_noise() and small.beyond_noise(alpha=0.2)


def test_identical_changes_give_an_infinite_t_and_no_change_gives_p_one():
    assert stats.paired_change([1, 2, 3], [2, 3, 4]).t == math.inf
    assert stats.paired_change([1, 2, 3], [0, 1, 2]).p == 0.0
    none = stats.paired_change([1, 2, 3], [1, 2, 3])
    assert none.t == 0.0 and none.p == 1.0 and not none.beyond_noise()


def test_holm_by_hand():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> kept monotone: 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])   # capped at 1
    assert stats.holm([0.02]) == pytest.approx([0.02])           # one test: no correction


@pytest.mark.parametrize("call, message", [
    (lambda: stats.t_two_sided_p(1.0, 0), "dof must be an integer >= 1, got 0"),
    (lambda: stats.t_two_sided_p(float("nan"), 2), "t must be a real number or +-inf, got nan"),
    (lambda: stats.t_critical(2, alpha=1.5), "alpha must lie in (0, 1), got 1.5"),
    (lambda: stats.paired_change([1.0, 2.0], [1.0, 2.0, 3.0]), "same length >= 2"),
    (lambda: stats.paired_change([1.0], [2.0]), "same length >= 2"),
    (lambda: stats.holm([0.2, 1.3]), "p_values must be a non-empty 1-d sequence of numbers in [0, 1]"),
])
def test_bad_input_names_the_parameter_and_what_is_allowed(call, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        call()
