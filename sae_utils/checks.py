"""Validation of public inputs: each check raises with the parameter's name, the value and what is allowed."""
from __future__ import annotations

import functools
import inspect
import math
import numbers

import torch


def check_number(name: str, value, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """Return ``value`` as a float after checking it is a finite real number inside the given range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    allowed = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        raise ValueError(f"{name} must lie in {allowed}, got {value!r}")
    return value


def check_rho(value) -> float:
    """The KL target activation: a probability strictly inside (0, 1)."""
    return check_number("rho", value, low=0, high=1, low_open=True, high_open=True)


def check_int(name: str, value, *, low: int = 1) -> int:
    """Return ``value`` after checking it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r} of type {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_choice(name: str, value, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_float_tensor(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}"
            + (" (convert uint8 images with sae_utils.prepare_images)" if x.dtype == torch.uint8 else "")
        )
    return x


def check_values(name: str, x: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Check that every value of the float tensor ``x`` is finite and inside [low, high]."""
    if x.numel() == 0:
        return x
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        where = "" if math.isinf(low) and math.isinf(high) else f" in [{low:g}, {high:g}]"
        raise ValueError(f"{name} contains {int((~finite).sum())} NaN or infinite values; "
                         f"allowed are finite values{where}")
    lo, hi = torch.aminmax(x)
    if lo.item() < low or hi.item() > high:
        raise ValueError(f"{name} must have values in [{low:g}, {high:g}], got values in [{lo.item():g}, {hi.item():g}]")
    return x


def check_code(name: str, code, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """A code of shape (batch, n_hidden), batch >= 1, floating point, finite, values in [low, high]."""
    check_float_tensor(name, code)
    if code.dim() != 2 or code.shape[0] < 1:
        raise ValueError(f"{name} must have shape (batch, n_hidden) with batch >= 1, got {tuple(code.shape)}")
    return check_values(name, code, low, high)


def validated(together=None, **checkers):
    """Decorate a formula so that each named argument is first passed through ``checker(name, value)``
    (and all of them through ``together(arguments)``, for checks that involve several).

    The formula stays one plain function; the checks run at public calls only. Callers that validated
    their inputs once, up front (the training loop), call ``function.unchecked`` instead.
    """
    def decorate(formula):
        signature = inspect.signature(formula)

        @functools.wraps(formula)
        def checked(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            for name, checker in checkers.items():
                if name in bound.arguments:
                    bound.arguments[name] = checker(name, bound.arguments[name])
            if together is not None:
                together(bound.arguments)
            return formula(*bound.args, **bound.kwargs)

        checked.unchecked = formula
        return checked
    return decorate


# Checkers for ``validated``: each takes (name, value) and returns the value.

def rho(name, value) -> float:
    return check_rho(value)


def probabilities(name, tensor) -> torch.Tensor:
    """A floating-point tensor of finite values in [0, 1]."""
    return check_values(name, check_float_tensor(name, tensor))


def finite(name, tensor) -> torch.Tensor:
    """A floating-point tensor of finite values."""
    return check_values(name, check_float_tensor(name, tensor), low=-math.inf, high=math.inf)


def probability_code(name, code) -> torch.Tensor:
    """A code (batch, n_hidden) of values in [0, 1]."""
    return check_code(name, code)


def finite_code(name, code) -> torch.Tensor:
    """A code (batch, n_hidden) of finite values."""
    return check_code(name, code, low=-math.inf, high=math.inf)


def same_shape(first: str, second: str):
    """A check of two arguments together, for ``validated(together=...)``: equal shapes."""
    def check(arguments):
        a, b = arguments[first], arguments[second]
        if a.shape != b.shape:
            raise ValueError(f"{first} and {second} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return check


def describe_shapes(shapes, lead: str) -> str:
    """[(784,), (28, 28)], "N" -> "(N, 784) or (N, 28, 28)": the allowed shapes, for error messages."""
    names = [f"({lead}, {', '.join(map(str, shape))})" for shape in shapes]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_width(name: str, x, shapes) -> torch.Tensor:
    """A floating-point tensor (B, ...) whose trailing shape is one of ``shapes``."""
    check_float_tensor(name, x)
    if x.dim() < 2 or tuple(x.shape[1:]) not in shapes:
        raise ValueError(f"{name} must have shape {describe_shapes(shapes, 'B')}, got {tuple(x.shape)}")
    return x


def check_device(name: str) -> torch.device:
    """"cpu", "cuda" or "auto" (CUDA when available) as a torch.device; CUDA asked for but absent is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available; use device='cpu' or 'auto'")
    return torch.device(name)


def check_type(name: str, value, expected: type):
    if not isinstance(value, expected):
        raise TypeError(f"{name} must be a {expected.__name__}, got {type(value).__name__}")
    return value


# The allowed values of TrainConfig's text fields (the command line offers the same choices).
DEVICES = ("cpu", "cuda", "auto")
STARTS = ("family", "default")
ACTIVATION_CHOICES = ("family", "sigmoid", "relu")  # the family's own code activation, or the ablation's

# The checks of TrainConfig's recipe fields, each ``(name, value) -> value``.
CONFIG_CHECKS = {"positive": lambda name, value: check_number(name, value, low=0, low_open=True),
                 "count": check_int,
                 "seed": lambda name, value: check_int(name, value, low=0),
                 "non-negative": lambda name, value: check_number(name, value, low=0),
                 "fraction": lambda name, value: check_number(name, value, low=0, high=1),
                 "device": lambda name, value: check_choice(name, value, DEVICES),
                 "start": lambda name, value: check_choice(name, value, STARTS),
                 "start_rho": lambda name, value: None if value is None else check_number(
                     name, value, low=0, high=1, low_open=True, high_open=True),
                 "activation": lambda name, value: check_choice(name, value, ACTIVATION_CHOICES)}

