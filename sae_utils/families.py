"""The table of sparse-autoencoder families: one entry per family, read by everything else.

A family says which code activation its model uses, which penalty it adds to the reconstruction BCE and
with which weight (or, for TopK, which auxiliary loss), its hyperparameters (reference value and allowed
range), its training recipe where it differs from the reference one, and when one of its units counts as
active. ``TrainConfig``, the model, the training loop, ``evaluate``, the plots, the explorer and
the command line all read this table; a new family is a new entry here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from .checks import CONFIG_CHECKS, check_choice, check_int, check_number
from .penalties import dead_unit_loss, kl_sparsity_penalty, l1_penalty


@dataclass(frozen=True)
class Hyperparameter:
    """A number that defines a family's model or penalty, with its reference value and allowed range."""

    name: str
    symbol: str
    label: str  # what it is, in two words, for the explorer's sliders
    reference: float
    help: str
    low: float = 0.0
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    grid: tuple = ()  # the values the atlas trains and the explorer's sliders offer
    integer: bool = False  # a count (TopK's k): an int >= low; its upper bound, n_hidden, is the model's

    def check(self, value) -> float | int:
        """``value`` as a float (an int for a count), or a ValueError / TypeError naming the parameter, the
        value and the range."""
        if self.integer:
            return check_int(self.name, value, low=int(self.low))
        return check_number(self.name, value, low=self.low, high=self.high,
                            low_open=self.open_low, high_open=self.open_high)

    def allowed(self) -> str:
        if self.integer:
            return f"[{self.low:g}, n_hidden]"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{'(' if self.open_low else '['}{self.low:g}, {high}{')' if self.open_high or self.high is None else ']'}"


@dataclass(frozen=True)
class Family:
    """One kind of sparse autoencoder; see the module docstring."""

    name: str
    title: str
    activation: str                 # the model's code activation (SparseAutoencoder.activation)
    penalty: Callable | None        # the unweighted penalty of a code (B, H) -> scalar (checked; .unchecked)
    penalty_args: tuple[str, ...]   # the hyperparameters the penalty takes besides the code
    weight: str | None              # the hyperparameter that weighs the penalty in the objective
    hyperparameters: tuple[Hyperparameter, ...]
    active_threshold: float         # a unit is active on a digit when its code value exceeds this
    start: Callable | None = None   # start(model, mean_input, **hyperparameters): its initialisation, if any
    published: dict | None = None   # the published reference run's losses on MNIST: {"train": .., "test": ..}
    atlas_variants: tuple = ()      # recipe variants the atlas trains besides the grid (other lr, other seeds)
    recipe: dict | None = None      # TrainConfig defaults of this family where they differ (TopK: lr_decay)
    # A family without a penalty (TopK, whose sparsity is the activation) may add an auxiliary loss instead:
    # auxiliary(model, x, logits, code) -> scalar, weighed by auxiliary_weight; after_step(model) runs after
    # every Adam step.
    auxiliary: Callable | None = None
    auxiliary_weight: float = 0.0
    after_step: Callable | None = None
    # The ablation of the code activation (TrainConfig.activation): the other activations its penalty
    # accepts, and, when it accepts none, why its penalty needs its own codes.
    other_activations: tuple[str, ...] = ()
    own_activation_only: str = ""

    def reference(self) -> dict:
        """The reference value of each hyperparameter."""
        return {h.name: h.reference for h in self.hyperparameters}

    def penalty_arguments(self, hyperparameters: Mapping) -> dict:
        return {name: hyperparameters[name] for name in self.penalty_args}

    def weighted_penalty(self, code: torch.Tensor, hyperparameters: Mapping, model=None, x=None,
                         logits=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight * penalty, penalty)`` of a code (B, H), without input checks (the training hot path).

        A family without a penalty returns its auxiliary loss in the penalty's place (weighed by
        ``auxiliary_weight``; it needs the batch: ``model``, ``x`` (B, D) and ``logits`` (B, D)), or zeros.
        """
        if self.penalty is not None:
            penalty = self.penalty.unchecked(code, **self.penalty_arguments(hyperparameters))
            return hyperparameters[self.weight] * penalty, penalty
        if self.auxiliary is not None:
            loss = self.auxiliary(model, x, logits, code)
            return self.auxiliary_weight * loss, loss
        zero = code.new_zeros(())
        return zero, zero


def start_codes_at_rho(model, rho: float, **_) -> None:
    """Start the encoder bias at logit(rho), so every sigmoid unit begins near the target activation
    instead of sigmoid(0) = 0.5 and the penalty shapes features rather than first dragging every unit
    down (test BCE after the reference run: 0.070 instead of 0.078)."""
    with torch.no_grad():
        model.encoder.bias.fill_(math.log(rho / (1 - rho)))


def start_topk(model, mean_input=None, **_) -> None:
    """After Gao et al. (2024): each decoder column starts as its unit's encoder row, at unit length, so
    that a unit first writes back the direction it reads (``normalise_decoder`` keeps the length 1); the
    encoder reads the input minus the mean training input (``model.input_centre``), and the decoder's bias
    starts at the logit of that mean, so the empty code reconstructs the mean digit. Without these two
    (measured once, k = 25, the reference recipe) 36 % of the units were dead after 10 epochs."""
    with torch.no_grad():
        model.encoder.weight /= model.encoder.weight.norm(dim=1, keepdim=True)
        model.decoder.weight.copy_(model.encoder.weight.T)
        if mean_input is not None:
            model.input_centre.copy_(mean_input)
            model.decoder.bias.copy_(torch.logit(mean_input.clamp(1e-3, 1 - 1e-3)))


def normalise_decoder(model) -> None:
    """Rescale each decoder column (the image a unit adds to the logits) to length 1. Without it TopK
    could shrink a code value and grow its column in step, and the dead-unit loss would be scale-free."""
    with torch.no_grad():
        model.decoder.weight /= model.decoder.weight.norm(dim=0, keepdim=True).clamp_min(1e-12)


# A TopK unit is "dead" for the auxiliary loss when it was not among any digit's k for this many digits.
DEAD_AFTER_DIGITS = 60_000
AUXILIARY_UNITS = 256  # k_aux: how many of a digit's dead units the auxiliary loss lets in


def topk_dead_unit_loss(model, x, logits, code) -> torch.Tensor:
    """Gao et al.'s auxiliary loss, with the BCE: the dead units try to explain what the live ones miss.

    Counts, per unit, the digits since it was last in a digit's top k (``model.digits_since_fired``,
    saved with the weights); units silent for ``DEAD_AFTER_DIGITS`` digits are dead. Their pre-activations
    (computed for them only: the cost is the dead fraction of an encoder product) go through a TopK of
    ``AUXILIARY_UNITS``; see ``penalties.dead_unit_loss``. Zero when no unit is dead.
    """
    with torch.no_grad():
        model.digits_since_fired += len(x)
        model.digits_since_fired[(code > 0).any(dim=0)] = 0
        dead = (model.digits_since_fired > DEAD_AFTER_DIGITS).nonzero().squeeze(1)
    if len(dead) == 0:
        return logits.new_zeros(())
    pre = torch.nn.functional.linear(x - model.input_centre, model.encoder.weight[dead],
                                     model.encoder.bias[dead])  # (B, n_dead): the encoder, for the dead only
    return dead_unit_loss.unchecked(pre, model.decoder.weight[:, dead], logits, x, min(AUXILIARY_UNITS, len(dead)))


RHO = Hyperparameter("rho", "ρ", "KL target", 0.08, "KL target mean activation of each unit", low=0, high=1,
                     open_low=True, open_high=True, grid=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32))
BETA = Hyperparameter("beta", "β", "KL weight", 0.005, "weight of the KL penalty", grid=(0.0, 0.0015, 0.005, 0.015, 0.05, 0.15))
LAM = Hyperparameter("lam", "λ", "L1 weight", 4e-5, "weight of the L1 penalty", grid=(0.0, 1e-5, 2e-5, 4e-5, 8e-5, 1.6e-4, 6.4e-4))
K = Hyperparameter("k", "k", "units kept", 25, "units kept per input (TopK), an integer", low=1, integer=True,
                   grid=(5, 10, 25, 50, 100, 200, 300))


def on_seeds(settings: dict, seeds=(0, 1, 2)) -> tuple:
    """One atlas variant per seed of ``settings``, in order; seed 0, the default, is left unnamed, as the
    atlas stores it."""
    return tuple(settings if seed == 0 else {**settings, "seed": seed} for seed in seeds)

FAMILIES = {
    # KL needs rho_hat_j in (0, 1): sigmoid codes. Active: closer to "on" than "off". The weight_decay
    # variants asked an earlier notebook 01 whether weight decay smooths the encoder features; no notebook reads them now.
    # The seeds at rho=0.01, beta=0.005 and at beta=0.15 measure the seed spread at the ends of the rho and
    # beta series, where notebooks 01 and 04 had borrowed it from the reference setting; those at beta=0.0015
    # ask notebook 01's question, how strong beta should be. They were trained after kl_divergence took its
    # logs apart (a float-rounding change: 5e-8 in two epochs at the reference). PyTorch's start at beta=0
    # (seeds 0-2) asks whether that start costs BCE without the penalty (it does not: 0.0661 against 0.0660,
    # the means over seeds; with beta=0.005 it costs 0.0078).
    "kl": Family("kl", "KL divergence", "sigmoid", kl_sparsity_penalty, ("rho",), "beta", (RHO, BETA),
                 active_threshold=0.5, start=start_codes_at_rho, published={"train": 0.0862, "test": 0.0771},
                 own_activation_only="the KL penalty needs sigmoid codes, as each unit's mean rho_hat_j must lie in (0, 1)",
                 atlas_variants=({"rho": 0.08, "beta": 0.005, "seed": 1}, {"rho": 0.08, "beta": 0.005, "seed": 2},
                                 {"rho": 0.08, "beta": 0.005, "lr_decay": 0.3},
                                 {"rho": 0.08, "beta": 0.005, "seed": 3}, {"rho": 0.08, "beta": 0.005, "seed": 4},
                                 {"rho": 0.08, "beta": 0.005, "lr": 2e-2}, {"rho": 0.08, "beta": 0.005, "start": "default"},
                                 *on_seeds({"rho": 0.08, "beta": 0.005, "start": "default"}, seeds=(1, 2)),
                                 *on_seeds({"rho": 0.08, "beta": 0.0, "start": "default"}),
                                 {"rho": 0.08, "beta": 0.0, "seed": 1}, {"rho": 0.08, "beta": 0.0, "seed": 2},
                                 {"rho": 0.08, "beta": 0.005, "lr": 3e-3}, {"rho": 0.08, "beta": 0.005, "lr": 1e-3},
                                 {"rho": 0.08, "beta": 0.0, "lr": 1e-3}, {"rho": 0.08, "beta": 0.005, "epochs": 60},
                                 {"rho": 0.08, "beta": 0.005, "weight_decay": 1e-6},
                                 {"rho": 0.08, "beta": 0.005, "weight_decay": 1e-5},
                                 {"rho": 0.08, "beta": 0.0, "weight_decay": 1e-5},
                                 {"rho": 0.01, "beta": 0.005, "seed": 1}, {"rho": 0.01, "beta": 0.005, "seed": 2},
                                 {"rho": 0.08, "beta": 0.15, "seed": 1}, {"rho": 0.08, "beta": 0.15, "seed": 2},
                                 {"rho": 0.08, "beta": 0.0015, "seed": 1}, {"rho": 0.08, "beta": 0.0015, "seed": 2},
                                 # L1's warm-up (which keeps its units alive) given to KL too, so that the two
                                 # references can be compared under the same recipe.
                                 *on_seeds({"rho": 0.08, "beta": 0.005, "lr_warmup": 0.1}),
                                 *on_seeds({"rho": 0.08, "beta": 0.0, "lr_warmup": 0.1}),   # and the unpenalised sigmoid code
                                 # rho sets both the target and the start (logit(rho)): each moved alone.
                                 {"rho": 0.01, "beta": 0.005, "start_rho": 0.08},
                                 {"rho": 0.08, "beta": 0.005, "start_rho": 0.01})),
    # L1 wants exact zeros: ReLU codes. Active: not exactly zero. The atlas's variants ask notebook 02's
    # question: do smaller Adam steps save the units that die at the reference learning rate? The
    # lr_decay variants of KL and L1 ask notebook 05's: what would TopK's decaying learning rate give them?
    # Its penalty also takes sigmoid codes (activation="sigmoid": the ablation notebook 03 reads).
    "l1": Family("l1", "L1", "relu", l1_penalty, (), "lam", (LAM,), active_threshold=0.0,
                 published={"train": 0.0809, "test": 0.07757}, other_activations=("sigmoid",),
                 atlas_variants=({"lam": 4e-5, "lr": 3e-3}, {"lam": 4e-5, "lr": 1e-3}, {"lam": 0.0, "lr": 1e-3},
                                 {"lam": 4e-5, "seed": 1}, {"lam": 4e-5, "seed": 2}, {"lam": 4e-5, "lr_decay": 0.3},
                                 {"lam": 4e-5, "seed": 3}, {"lam": 4e-5, "seed": 4}, {"lam": 4e-5, "lr": 2e-2},
                                 {"lam": 0.0, "seed": 1}, {"lam": 0.0, "seed": 2}, {"lam": 4e-5, "epochs": 60},
                                 # Is it the activation or the penalty? The L1 penalty on sigmoid codes (PyTorch's
                                 # default start, as L1 has no start of its own); lam = 0 is the unpenalised control.
                                 {"lam": 0.0, "activation": "sigmoid"}, {"lam": 1e-3, "activation": "sigmoid"},
                                 {"lam": 4e-3, "activation": "sigmoid"},
                                 {"lam": 1.6e-2, "activation": "sigmoid"}, {"lam": 1e-4, "activation": "sigmoid"},
                                 {"lam": 2.5e-4, "activation": "sigmoid"}, {"lam": 5e-4, "activation": "sigmoid"},
                                 # The other remedies for the units that die at the reference rate: a warm-up over
                                 # the first tenth of the steps, and the small rate given three times the epochs.
                                 {"lam": 4e-5, "lr_warmup": 0.1}, {"lam": 4e-5, "lr": 1e-3, "epochs": 60},
                                 # The warm-up on more seeds, and without the penalty: an unpenalised ReLU code
                                 # whose units live at the reference rate (is it the penalty or the ReLU?).
                                 *on_seeds({"lam": 4e-5, "lr_warmup": 0.1}, seeds=(1, 2)),
                                 *on_seeds({"lam": 0.0, "lr_warmup": 0.1}),
                                 # Seeds 1 and 2 at λ = 2e-5: notebook 02 compares the warm-up with the constant
                                 # rate at equal L0 on them; notebook 03 pools its seed noise over them.
                                 {"lam": 2e-5, "seed": 1}, {"lam": 2e-5, "seed": 2},
                                 # The L1 penalty on sigmoid codes given KL's start (bias at logit(0.08)): the
                                 # other order of notebook 03's split, the penalty swapped before the activation.
                                 *on_seeds({"lam": 4e-5, "activation": "sigmoid", "start_rho": 0.08}),
                                 *on_seeds({"lam": 4e-5, "activation": "sigmoid", "start_rho": 0.08, "lr_warmup": 0.1}),
                                 # and from PyTorch's start, to measure what KL's start does to that run
                                 *on_seeds({"lam": 4e-5, "activation": "sigmoid"}),
                                 *on_seeds({"lam": 4e-5, "activation": "sigmoid", "lr_warmup": 0.1}))),
    # TopK: the activation keeps each input's k largest pre-activations (ReLU'd), so it needs no penalty;
    # Gao et al.'s recipe keeps its units alive. Active: not exactly zero.
    "topk": Family("topk", "TopK", "topk", None, (), None, (K,), active_threshold=0.0, start=start_topk,
                   recipe={"lr_decay": 0.3}, auxiliary=topk_dead_unit_loss, auxiliary_weight=1 / 32,
                   after_step=normalise_decoder,
                   own_activation_only="a TopK code's sparsity is its activation, which no ablation replaces",
                   atlas_variants=({"k": 25, "seed": 1}, {"k": 25, "seed": 2}, {"k": 25, "lr_decay": 0.0})),
}
DEFAULT = "kl"  # the family used when none is named
HYPERPARAMETERS = {h.name: h for fam in FAMILIES.values() for h in fam.hyperparameters}


def family(name: str) -> Family:
    """The family called ``name``, or a ValueError listing the families."""
    return FAMILIES[check_choice("penalty", name, tuple(FAMILIES))]


def family_of_activation(activation: str) -> Family:
    """The family whose models have ``activation`` codes."""
    for fam in FAMILIES.values():
        if fam.activation == activation:
            return fam
    raise ValueError(f"no family has {activation!r} codes; the families' activations are "
                     f"{', '.join(repr(f.activation) for f in FAMILIES.values())}")


ABLATION_ACTIVATIONS = ("sigmoid", "relu")  # the code activations TrainConfig.activation may swap in


def code_activation(name: str, activation: str | None = None) -> str:
    """The code activation of a model of the family ``name`` whose activation is ``activation``: the family's
    own for None or "family" (or its own name), else one its penalty accepts (``other_activations``: L1 takes
    sigmoid codes); a ValueError naming the family and why otherwise (KL needs sigmoid codes, TopK its own)."""
    fam = family(name)
    if activation is None or activation in ("family", fam.activation):
        return fam.activation
    check_choice("activation", activation, ("family", *ABLATION_ACTIVATIONS))
    if activation not in fam.other_activations:
        why = fam.own_activation_only or f"its penalty takes {fam.activation} codes only"
        raise ValueError(f"activation={activation!r} does not go with penalty={fam.name!r}: {why}; the {fam.name} "
                         f"family takes activation 'family' ({fam.activation})"
                         f"{''.join(f' or {a!r}' for a in fam.other_activations)}")
    return activation


def check_start_rho(start_rho, activation: str, start: str = "family") -> float | None:
    """``start_rho`` checked once for ``TrainConfig`` and ``build_model``: None (the family's start), or a value
    in (0, 1) for sigmoid codes (``activation``, the model's code activation) that take a family start
    (``start`` "family", not PyTorch's "default")."""
    start_rho = CONFIG_CHECKS["start_rho"]("start_rho", start_rho)
    if start_rho is not None and (activation != "sigmoid" or start != "family"):
        raise ValueError(f"start_rho={start_rho!r} sets the start of sigmoid codes, so it needs start='family' and "
                         f"sigmoid codes; got start={start!r} and {activation} codes")
    return start_rho


def build_model(name: str, n_hidden: int = 512, n_input: int = 784, mean_input=None, family_start: bool = True,
                activation: str | None = None, start_rho: float | None = None, **hyperparameters):
    """A ``SparseAutoencoder`` of the family ``name`` with the family's code activation, started as the
    family says (``start``) with the given hyperparameters (the others at their reference values), or
    with PyTorch's default initialisation when ``family_start`` is False (the ablation of the start).
    mean_input: (D,) the mean training input, which TopK's start uses (``train`` passes it).
    activation: None or "family" (the family's own codes), or another that its penalty accepts ("sigmoid"
    for L1: the ablation of the activation, see ``code_activation``); a family's start is for its own codes
    and is left out when the activation is swapped (PyTorch's default initialisation).
    start_rho: None, or in (0, 1) for sigmoid codes: every encoder bias starts at logit(start_rho) in place of
    the family's start (the ablation that moves KL's target rho without moving its start)."""
    from .model import SparseAutoencoder

    fam = family(name)
    activation = code_activation(name, activation)
    values = {**fam.reference(), **{k: v for k, v in hyperparameters.items() if k in fam.reference()}}
    values = {h.name: h.check(values[h.name]) for h in fam.hyperparameters}
    model = SparseAutoencoder(n_hidden, activation, n_input, k=values.get("k"))
    start_rho = check_start_rho(start_rho, activation, "family" if family_start else "default")
    if start_rho is not None:
        start_codes_at_rho(model, start_rho)
    elif fam.start is not None and family_start and activation == fam.activation:
        fam.start(model, mean_input=mean_input, **values)
    return model

