"""sae_utils.checks: each check returns the value it accepts and refuses the rest with the parameter's
name, the value and what is allowed; ``validated`` runs the checks and keeps the plain formula."""
import math

import numpy as np
import pytest
import torch

from sae_utils.checks import (check_choice, check_code, check_float_tensor, check_int, check_number, check_rho,
                              check_values, validated)


# --- numbers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [3, 0.25, np.float64(0.5), np.int32(2), -7])
def test_check_number_returns_a_float(value):
    result = check_number("x", value)
    assert type(result) is float and result == float(value)


@pytest.mark.parametrize("kwargs, value, message", [
    (dict(low=0, high=1), 1.5, "x must lie in [0, 1], got 1.5"),
    (dict(low=0, high=1), -0.5, "x must lie in [0, 1], got -0.5"),
    (dict(low=0, high=1, low_open=True, high_open=True), 0, "x must lie in (0, 1), got 0.0"),
    (dict(low=0, high=1, low_open=True, high_open=True), 1, "x must lie in (0, 1), got 1.0"),
    (dict(low=0), -1, "x must lie in [0, inf), got -1.0"),
    (dict(low=0, low_open=True), 0, "x must lie in (0, inf), got 0.0"),
    (dict(high=1), 2, "x must lie in (-inf, 1], got 2.0"),
    (dict(low=1e-5), 0, "x must lie in [1e-05, inf), got 0.0"),
    (dict(low=0.1 + 0.2, high=2 / 3), 1, "x must lie in [0.3, 0.666667], got 1.0"),  # bounds shown with :g
    (dict(), math.nan, "x must lie in (-inf, inf), got nan"),
    (dict(), math.inf, "x must lie in (-inf, inf), got inf"),
    (dict(low=0), -math.inf, "x must lie in [0, inf), got -inf"),
])
def test_check_number_refuses_values_outside_the_range(kwargs, value, message):
    with pytest.raises(ValueError) as caught:
        check_number("x", value, **kwargs)
    assert str(caught.value) == message


def test_check_number_accepts_the_closed_ends_only():
    assert check_number("x", 0, low=0, high=1) == 0.0 and check_number("x", 1, low=0, high=1) == 1.0
    assert check_number("x", 1e-300, low=0, low_open=True) == 1e-300


@pytest.mark.parametrize("value, shown", [(True, "True of type bool"), ("0.1", "'0.1' of type str"),
                                          (None, "None of type NoneType"), (1 + 2j, "(1+2j) of type complex"),
                                          (torch.tensor(0.5), "tensor(0.5000) of type Tensor")])
def test_check_number_refuses_what_is_not_a_real_number(value, shown):
    with pytest.raises(TypeError) as caught:
        check_number("beta", value, low=0)
    assert str(caught.value) == f"beta must be a real number, got {shown}"


def test_check_rho_is_an_open_probability():
    assert check_rho(0.08) == 0.08
    for value in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"rho must lie in \(0, 1\), got"):
            check_rho(value)


@pytest.mark.parametrize("value", [1, 512, np.int64(7)])
def test_check_int_returns_an_int(value):
    result = check_int("n", value)
    assert type(result) is int and result == value


def test_check_int_refuses_non_integers_and_values_below_low():
    for value, shown in ((2.0, "2.0 of type float"), (True, "True of type bool"), ("3", "'3' of type str")):
        with pytest.raises(TypeError) as caught:
            check_int("n", value)
        assert str(caught.value) == f"n must be an integer >= 1, got {shown}"
    with pytest.raises(ValueError) as caught:
        check_int("n", 0)
    assert str(caught.value) == "n must be an integer >= 1, got 0"
    assert check_int("seed", 0, low=0) == 0
    with pytest.raises(ValueError, match=r"seed must be an integer >= 0, got -1"):
        check_int("seed", -1, low=0)


def test_check_choice():
    assert check_choice("penalty", "l1", ("kl", "l1")) == "l1"
    with pytest.raises(ValueError) as caught:
        check_choice("penalty", "KL", ("kl", "l1"))
    assert str(caught.value) == "penalty must be one of 'kl', 'l1', got 'KL'"


# --- tensors ------------------------------------------------------------------------------------------

def test_check_float_tensor():
    x = torch.zeros(2, dtype=torch.float16)
    assert check_float_tensor("x", x) is x
    with pytest.raises(TypeError) as caught:
        check_float_tensor("x", [0.5])
    assert str(caught.value) == "x must be a torch.Tensor, got list"
    with pytest.raises(TypeError) as caught:
        check_float_tensor("x", torch.zeros(2, dtype=torch.int64))
    assert str(caught.value) == "x must be a floating-point tensor, got dtype torch.int64"
    with pytest.raises(TypeError) as caught:
        check_float_tensor("x", torch.zeros(2, dtype=torch.uint8))
    assert str(caught.value) == ("x must be a floating-point tensor, got dtype torch.uint8 "
                                 "(convert uint8 images with sae_utils.prepare_images)")


def test_check_values():
    x = torch.tensor([0.0, 0.5, 1.0])
    assert check_values("x", x) is x  # both ends allowed
    assert check_values("x", torch.empty(0, 3)).shape == (0, 3)  # nothing to check
    with pytest.raises(ValueError) as caught:
        check_values("x", torch.tensor([math.nan, math.inf, -math.inf, 0.5]))
    assert str(caught.value) == "x contains 3 NaN or infinite values; allowed are finite values in [0, 1]"
    with pytest.raises(ValueError) as caught:
        check_values("logits", torch.tensor([math.nan]), low=-math.inf, high=math.inf)
    assert str(caught.value) == "logits contains 1 NaN or infinite values; allowed are finite values"
    with pytest.raises(ValueError) as caught:
        check_values("x", torch.tensor([[0.5, 2.0], [-0.5, 0.0]]))
    assert str(caught.value) == "x must have values in [0, 1], got values in [-0.5, 2]"
    assert check_values("code", torch.tensor([-3.0, 3.0]), low=-3, high=3).tolist() == [-3.0, 3.0]  # custom ends


def test_check_code():
    code = torch.rand(4, 3)
    assert check_code("code", code) is code
    assert check_code("code", torch.tensor([[-2.0, 5.0]]), low=-math.inf, high=math.inf).shape == (1, 2)
    for bad, shown in ((torch.rand(3), "(3,)"), (torch.rand(0, 3), "(0, 3)"), (torch.rand(2, 3, 4), "(2, 3, 4)")):
        with pytest.raises(ValueError) as caught:
            check_code("code", bad)
        assert str(caught.value) == f"code must have shape (batch, n_hidden) with batch >= 1, got {shown}"
    with pytest.raises(ValueError, match=r"code must have values in \[0, 1\], got values in \[1.5, 1.5\]"):
        check_code("code", torch.full((2, 2), 1.5))


# --- validated ----------------------------------------------------------------------------------------

def test_validated_checks_named_arguments_however_passed_and_keeps_the_formula():
    seen = []

    def doubled(name, value):
        seen.append(name)
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        return 2 * value

    def formula(a, b, c=1):
        """a + b + c"""
        return a + b + c

    checked = validated(a=doubled, c=doubled)(formula)
    assert checked(1, 10) == 2 + 10 + 1 and seen == ["a"]  # c not given: nothing to check
    assert checked(b=10, a=1, c=3) == 2 + 10 + 6 and seen == ["a", "a", "c"]  # the checker's value is used
    with pytest.raises(ValueError, match="c must be >= 0, got -1"):
        checked(1, 10, -1)
    assert checked.unchecked is formula and formula(1, 10, -1) == 10
    assert checked.__name__ == "formula" and checked.__doc__ == "a + b + c"
    with pytest.raises(TypeError):
        checked(1)  # a missing argument is still a TypeError, as for the formula
