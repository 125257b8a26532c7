"""The losses of the lesson, each written once, as the notebooks' equations.

Notation: x is an input of D pixels in [0, 1] (D = 784 for MNIST), the code y = f(W_e x + b_e) has one
value per hidden unit j, and rho_hat_j is the mean of y_j over a batch of B inputs. Training minimises

    BCE(x, x_hat) + beta * sum_j KL(rho || rho_hat_j)      (KL family, sigmoid codes)
    BCE(x, x_hat) + lam * mean_b sum_j |y_bj|               (L1 family, ReLU codes)

A TopK code (notebook 05) needs no penalty: ``dead_unit_loss`` is its auxiliary loss, which keeps units alive.

Each function checks its inputs when called (``checks.validated``); the training loop, which checks its
data once up front, calls ``function.unchecked``, the same formula without the checks.
The fast BCE used for training on CPUs lives in ``fast_bce.py``, pinned to ``reconstruction_bce`` by a test.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import checks
from .checks import validated


@validated(rho=checks.rho, rho_hat=checks.probabilities)
def kl_divergence(rho: float, rho_hat: torch.Tensor) -> torch.Tensor:
    """KL(Bernoulli(rho) || Bernoulli(rho_hat)), elementwise: same shape as ``rho_hat``.

    rho in (0, 1); rho_hat in [0, 1], clamped to [tiny, 1 - eps] (the dtype's smallest normal number and its
    machine epsilon) so that value and gradient stay finite at 0 and 1; the gradient is zero past the clamp.
    Why these two ends: 1 - rho_hat rounds to 0 just above 1 - eps, while log rho_hat and its derivative
    1 / rho_hat stay finite for every normal rho_hat, so a unit whose average falls to 1e-30 still feels the
    pull -rho / rho_hat back towards rho; only a subnormal or zero average is clamped. The logs are taken
    apart, log rho - log rho_hat, because the derivative of log(rho / rho_hat) goes through rho / rho_hat^2,
    which overflows in float32 below rho_hat of about 1e-19.
    """
    finfo = torch.finfo(rho_hat.dtype)
    rho_hat = rho_hat.clamp(finfo.tiny, 1 - finfo.eps)
    return rho * (math.log(rho) - torch.log(rho_hat)) + (1 - rho) * (math.log(1 - rho) - torch.log1p(-rho_hat))


@validated(code=checks.probability_code, rho=checks.rho)
def kl_sparsity_penalty(code: torch.Tensor, rho: float) -> torch.Tensor:
    """sum_j KL(rho || rho_hat_j). code: (B, H) sigmoid activations in [0, 1]. Returns a scalar."""
    rho_hat = code.mean(dim=0)  # (B, H) -> (H,): each unit's mean activation over the batch
    return kl_divergence.unchecked(rho, rho_hat).sum()


@validated(code=checks.finite_code)
def l1_penalty(code: torch.Tensor) -> torch.Tensor:
    """mean over the batch of sum_j |y_j|. code: (B, H). Returns a scalar."""
    return code.abs().sum(dim=1).mean()


@validated(checks.same_shape("logits", "x"), logits=checks.finite, x=checks.probabilities)
def reconstruction_bce(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of targets x in [0, 1] against x_hat = sigmoid(logits), mean over batch and pixels.

    -[x log x_hat + (1 - x) log(1 - x_hat)], computed from the logits so that it is finite for any finite
    logits. logits, x: the same shape, e.g. (B, 784). Returns a scalar.
    """
    return F.binary_cross_entropy_with_logits(logits, x)


def topk_code(pre: torch.Tensor, k: int) -> torch.Tensor:
    """The TopK code: each row's k largest pre-activations through a ReLU, every other value exactly 0.

    pre (B, H) -> code (B, H) with at most k non-zeros per row; the gradient reaches the kept values only.
    """
    values, indices = pre.topk(k, dim=1, sorted=False)  # (B, k) each, in no particular order
    return torch.zeros_like(pre).scatter(1, indices, values.relu())


@validated(checks.same_shape("logits", "x"), pre=checks.finite, decoder_columns=checks.finite,
           logits=checks.finite, x=checks.probabilities)
def dead_unit_loss(pre: torch.Tensor, decoder_columns: torch.Tensor, logits: torch.Tensor, x: torch.Tensor,
                   k: int) -> torch.Tensor:
    """The auxiliary loss of Gao et al. (2024, "AuxK"), with the BCE in place of their squared error.

    pre: (B, n) pre-activations of the n dead units; decoder_columns: (D, n) their decoder columns;
    logits, x: (B, D) the model's logits and the inputs. The k largest dead pre-activations of each input
    form a TopK code; added to the model's logits, held fixed, it should lower the BCE: the dead units are
    asked to explain what the live ones miss, which gives them gradient again. Scalar, mean over B and D.
    """
    code = topk_code(pre, k)                                          # (B, n)
    return F.binary_cross_entropy_with_logits(logits.detach() + code @ decoder_columns.T, x)


def sparsity_penalty(penalty: str, code: torch.Tensor, rho: float = 0.08) -> torch.Tensor:
    """The unweighted penalty of the family named ``penalty`` ("kl" or "l1"; TopK has none) of ``code`` (B, H)."""
    from .families import family  # the table of families is built from the functions above

    fam = family(penalty)
    if fam.penalty is None:
        raise ValueError(f"the {penalty} family has no sparsity penalty: its activation makes the code sparse")
    return fam.penalty(code, **fam.penalty_arguments({"rho": rho}))
