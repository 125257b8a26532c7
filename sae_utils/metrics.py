"""Evaluation: reconstruction BCE, penalty and sparsity statistics of a trained model.

"Active" is defined by each family's ``active_threshold`` in ``families.py``: a sigmoid unit is active on a
digit when its activation exceeds 0.5 (closer to "on" than "off"), a ReLU unit when its activation is above
0 (not exactly zero). A unit is dead when it is active on none of the evaluated digits.
"""
from __future__ import annotations

import torch

from .data import prepare_images
from .fast_bce import training_bce
from .families import FAMILIES, family_of_activation
from .model import SparseAutoencoder

ACTIVE_THRESHOLD = {fam.activation: fam.active_threshold for fam in FAMILIES.values()}


def active_units(code: torch.Tensor, activation: str) -> torch.Tensor:
    """Boolean (B, H): which units are active on which digit, by the definition above."""
    return code > ACTIVE_THRESHOLD[activation]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model, images, **hyperparameters) -> dict:
    """Metrics of ``model`` on ``images`` (uint8 or floats in [0, 1], (N, D) or image-shaped), as floats.

    bce: mean over inputs and pixels, through the same definition as training (``fast_bce.training_bce``).
    penalty: the unweighted penalty of the model's family, with rho_hat over all N inputs.
    objective: bce + weight * penalty. mean_activation: mean code value. active_fraction_per_digit:
    mean over inputs of the fraction of units active. active_units_per_digit: the same as a count.
    dead_fraction: fraction of units active on no input. ``hyperparameters``: the family's (KL: rho,
    beta; L1: lam), each defaulting to its reference value.
    """
    if not isinstance(model, SparseAutoencoder):
        raise TypeError(f"model must be a sae_utils.SparseAutoencoder, got {type(model).__name__}")
    fam = family_of_activation(model.activation)
    allowed = {h.name: h for h in fam.hyperparameters}
    unknown = sorted(set(hyperparameters) - set(allowed))
    if unknown:
        raise ValueError(f"evaluate got {', '.join(map(repr, unknown))}, which the {fam.name.upper()} family "
                         f"({model.activation} codes) does not use; its hyperparameters are {', '.join(allowed)}")
    hp = {**fam.reference(), **{name: allowed[name].check(value) for name, value in hyperparameters.items()}}
    x = prepare_images(images, n_input=model.n_input).to(_device(model))
    model.eval()
    logits, code = model(x)
    bce = training_bce(x.device)(logits, x).item()
    penalty = fam.penalty.unchecked(code, **fam.penalty_arguments(hp)).item()
    active = active_units(code, model.activation)
    return {
        "bce": bce,
        "penalty": penalty,
        "objective": bce + hp[fam.weight] * penalty,
        "mean_activation": code.mean().item(),
        "active_fraction_per_digit": active.float().mean().item(),
        "active_units_per_digit": active.sum(dim=1).float().mean().item(),
        "dead_fraction": (~active.any(dim=0)).float().mean().item(),
        "n_images": len(x),
    }
