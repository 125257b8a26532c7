"""Evaluation: reconstruction BCE, penalty and sparsity statistics of a trained model.

"Active" is defined here and only here: a sigmoid unit is active on a digit when its activation
exceeds 0.5 (closer to "on" than "off"), a ReLU unit when its activation is above 0 (not exactly zero).
A unit is dead when it is active on none of the evaluated digits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import prepare_images
from .model import CODE_FOR_PENALTY, SparseAutoencoder
from .penalties import unchecked_penalty

ACTIVE_THRESHOLD = {"sigmoid": 0.5, "relu": 0.0}


def active_units(code: torch.Tensor, activation: str) -> torch.Tensor:
    """Boolean (B, H): which units are active on which digit, by the definition above."""
    return code > ACTIVE_THRESHOLD[activation]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model, images, config=None) -> dict:
    """Metrics of ``model`` on ``images`` (uint8 (N, 28, 28) or floats in [0, 1]), as plain floats.

    bce: mean over digits and pixels. penalty: the unweighted penalty with rho_hat over all N digits.
    objective: bce + weight * penalty. mean_activation: mean code value. active_fraction_per_digit:
    mean over digits of the fraction of units active. active_units_per_digit: the same as a count.
    dead_fraction: fraction of units active on no digit. ``config``: a TrainConfig for rho and the
    weight; by default the reference setup of the model's penalty (sigmoid -> KL, ReLU -> L1).
    """
    from .train import TrainConfig  # train imports this module

    if not isinstance(model, SparseAutoencoder):
        raise TypeError(f"model must be a sae_utils.SparseAutoencoder, got {type(model).__name__}")
    if config is None:
        config = TrainConfig(penalty="kl" if model.activation == "sigmoid" else "l1")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or None, got {type(config).__name__}")
    if CODE_FOR_PENALTY[config.penalty] != model.activation:
        raise ValueError(f"config.penalty {config.penalty!r} needs a {CODE_FOR_PENALTY[config.penalty]} model, "
                         f"got a model with {model.activation!r} codes")
    x = prepare_images(images).to(_device(model))
    model.eval()
    logits, code = model(x)
    bce = F.binary_cross_entropy_with_logits(logits, x).item()
    penalty = unchecked_penalty(config.penalty, code, config.rho).item()
    active = active_units(code, model.activation)
    return {
        "bce": bce,
        "penalty": penalty,
        "objective": bce + config.weight * penalty,
        "mean_activation": code.mean().item(),
        "active_fraction_per_digit": active.float().mean().item(),
        "active_units_per_digit": active.sum(dim=1).float().mean().item(),
        "dead_fraction": (~active.any(dim=0)).float().mean().item(),
        "n_images": len(x),
    }
