"""Evaluation: reconstruction BCE, penalty and sparsity statistics of a trained model.

"Active" is defined by each family's ``active_threshold`` in ``families.py``: a sigmoid unit is active on a
digit when its activation exceeds 0.5 (closer to "on" than "off"), a ReLU unit when its activation is above
0 (not exactly zero). A unit is dead when it is active on none of the evaluated digits.
"""
from __future__ import annotations

import copy
import math

import torch

from .data import prepare_images
from .fast_bce import training_bce
from .families import FAMILIES, code_activation, family, family_of_activation
from .model import SparseAutoencoder
from .checks import check_code, check_float_tensor, check_int, check_number
from .penalties import kl_divergence, l1_penalty, reconstruction_bce

ACTIVE_THRESHOLD = {fam.activation: fam.active_threshold for fam in FAMILIES.values()}


def active_units(code: torch.Tensor, activation: str) -> torch.Tensor:
    """Boolean (B, H): which units are active on which digit, by the definition above."""
    return code > ACTIVE_THRESHOLD[activation]


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _family_hyperparameters(model, hyperparameters: dict, caller: str, family_name: str | None = None) -> tuple:
    """(family, hyperparameters): the model's family and its hyperparameters, each checked and defaulting to
    the reference value; a model's own architecture (TopK's k) may be repeated but not changed.
    family_name: the family whose penalty the model was trained with (a ``FAMILIES`` key, which must take
    the model's codes: "l1" for an L1-on-sigmoid model); None: the family of the model's activation."""
    if not isinstance(model, SparseAutoencoder):
        raise TypeError(f"model must be a sae_utils.SparseAutoencoder, got {type(model).__name__}")
    if family_name is None:
        fam = family_of_activation(model.activation)
    else:
        fam = family(family_name)
        code_activation(fam.name, model.activation)  # a ValueError when its penalty cannot take these codes
    hyperparameters = dict(hyperparameters)  # the caller's keyword arguments stay as they were
    own = model.architecture()  # TopK's k is the model's: evaluate(model, x, **config.hyperparameters()) may repeat it
    for name in sorted(set(hyperparameters) & set(own)):
        value = hyperparameters.pop(name)
        if value != own[name]:
            raise ValueError(f"{caller} got {name}={value!r}, but {name} is the model's own "
                             f"({name}={own[name]!r}); to encode with another, use model.with_{name}(...)")
    allowed = {h.name: h for h in fam.hyperparameters if h.name not in own}
    unknown = sorted(set(hyperparameters) - set(allowed))
    if unknown:
        uses = f"its hyperparameters are {', '.join(allowed)}" if allowed else "it takes no hyperparameters"
        raise ValueError(f"{caller} got {', '.join(map(repr, unknown))}, which the {fam.name.upper()} family "
                         f"({model.activation} codes) does not use; {uses}")
    hp = {**fam.reference(), **{name: allowed[name].check(value) for name, value in hyperparameters.items()}}
    return fam, hp


@torch.no_grad()
def evaluate(model, images, *, family: str | None = None, **hyperparameters) -> dict:
    """Metrics of ``model`` on ``images`` (uint8 or floats in [0, 1], (N, D) or image-shaped), as floats.

    bce: mean over inputs and pixels, through the same definition as training (``fast_bce.training_bce``).
    penalty: the unweighted penalty of the model's family, with rho_hat over all N inputs.
    objective: bce + weight * penalty. mean_activation: mean code value. active_fraction_per_digit:
    mean over inputs of the fraction of units active. active_units_per_digit: the same as a count.
    dead_fraction: fraction of units active on no input. ``hyperparameters``: the family's (KL: rho,
    beta; L1: lam), each defaulting to its reference value. A TopK model takes none (its k is the
    model's own: ``model.with_k`` encodes with another) and has penalty 0, objective = bce.
    family: the family whose penalty (and hyperparameters) to use, a ``FAMILIES`` key; None (the default):
    the family of the model's activation. Needed for an ablated model: ``family="l1"`` for L1 on sigmoid
    codes (else it would be taken for KL). "Active" follows the code's activation either way.
    """
    fam, hp = _family_hyperparameters(model, hyperparameters, "evaluate", family)
    x = prepare_images(images, n_input=model.n_input).to(_device(model))
    model.eval()
    logits, code = model(x)
    bce = training_bce(x.device)(logits, x).item()
    # TopK has no penalty: its objective is the BCE (the auxiliary loss is a training aid, see families.py)
    penalty = 0.0 if fam.penalty is None else fam.penalty.unchecked(code, **fam.penalty_arguments(hp)).item()
    active = active_units(code, model.activation)
    return {
        "bce": bce,
        "penalty": penalty,
        "objective": bce + (0.0 if fam.weight is None else hp[fam.weight] * penalty),
        "mean_activation": code.mean().item(),
        "active_fraction_per_digit": active.float().mean().item(),
        "active_units_per_digit": active.sum(dim=1).float().mean().item(),
        "dead_fraction": dead_fraction(code, ACTIVE_THRESHOLD[model.activation]),
        "n_images": len(x),
    }


def minibatch_kl_penalty(code: torch.Tensor, rho: float, beta: float, batch_size: int = 1200,
                         shuffle_seed: int | None = None) -> float:
    """The weighted KL penalty as training sees it: beta * sum_j KL(rho || rho_hat_j), rho_hat_j the mean of
    unit j over one minibatch of ``batch_size`` consecutive rows of ``code`` (B, H) (sigmoid values in [0, 1]),
    averaged over the B // batch_size full minibatches (the rows after the last full one are left out).
    KL is convex in rho_hat, so this is at least the penalty with rho_hat over all B rows (Jensen).
    ``shuffle_seed``: if given, the rows are first put in the random order torch.randperm draws from a generator
    seeded with it (as training shuffles its digits); None (default) keeps the rows' own order."""
    code = check_code("code", code)
    rho = check_number("rho", rho, low=0, high=1, low_open=True, high_open=True)
    beta = check_number("beta", beta, low=0)
    batch_size = check_int("batch_size", batch_size)
    n_batches = len(code) // batch_size
    if n_batches == 0:
        raise ValueError(f"batch_size must be at most the {len(code)} rows of code, got {batch_size}")
    if shuffle_seed is not None:
        shuffle_seed = check_int("shuffle_seed", shuffle_seed, low=0)
        code = code[torch.randperm(len(code), generator=torch.Generator().manual_seed(shuffle_seed))]
    rho_hat = code[:n_batches * batch_size].double().reshape(n_batches, batch_size, -1).mean(dim=1)
    return beta * kl_divergence.unchecked(rho, rho_hat).sum(dim=1).mean().item()


def kl_jensen_gap(code: torch.Tensor, rho: float, beta: float, batch_size: int = 1200) -> float:
    """The second-order estimate of how much random minibatches of ``batch_size`` rows, drawn without
    replacement from the B rows of ``code`` (B, H), raise the expected weighted KL penalty above the penalty
    with rho_hat over all B rows:  beta * sum_j 1/2 KL''(ybar_j) Var(rho_hat_j), where ybar_j is unit j's mean
    over all rows, KL''(q) = rho / q^2 + (1 - rho) / (1 - q)^2 and Var(rho_hat_j) = v_j / batch_size *
    (B - batch_size) / (B - 1), v_j the population variance of column j. A float (nats per pixel), in float64."""
    code = check_code("code", code)
    rho = check_number("rho", rho, low=0, high=1, low_open=True, high_open=True)
    beta = check_number("beta", beta, low=0)
    batch_size = check_int("batch_size", batch_size)
    n = len(code)
    if not 1 <= batch_size <= n or n < 2:
        raise ValueError(f"batch_size must be between 1 and the {n} rows of code (at least 2 rows), got {batch_size}")
    y = code.double()
    q, v = y.mean(dim=0), y.var(dim=0, unbiased=False)
    curvature = rho / q ** 2 + (1 - rho) / (1 - q) ** 2
    variance = v / batch_size * (n - batch_size) / (n - 1)
    return beta * 0.5 * (curvature * variance).sum().item()


# Sparsity and reconstruction measures with written definitions, shared by every penalty family.
# code: non-negative (B, H) tensor, one row per digit, one column per hidden unit.

def _check_code(code: torch.Tensor) -> torch.Tensor:
    check_float_tensor("code", code)
    if code.dim() != 2:
        raise ValueError(f"code must have shape (B, H), got {tuple(code.shape)}")
    return code


def firing_frequency(code: torch.Tensor, threshold: float) -> torch.Tensor:
    """(H,) float: for each unit j, the fraction of the B digits on which code[:, j] > ``threshold``.

    ``threshold``: ``ACTIVE_THRESHOLD[activation]`` (sigmoid 0.5, ReLU 0.0), the definition of "active".
    """
    return (_check_code(code) > threshold).float().mean(dim=0)


def dead_fraction(code: torch.Tensor, threshold: float) -> float:
    """The fraction of the H units whose ``firing_frequency`` is 0: active on none of the B digits."""
    frequency = firing_frequency(code, threshold)
    return (frequency == 0).sum().item() / len(frequency)


def l0(code: torch.Tensor) -> float:
    """Mean over the B digits of the number of code values that are not exactly zero (L0 "norm").

    Meaningful for ReLU codes only: a sigmoid is almost never exactly 0 (in float32 only for z below about -88),
    so for sigmoid codes this is H in practice.
    To compare the sparsity of every family use ``units_for_mass``.
    """
    return (_check_code(code) != 0).sum(dim=1).double().mean().item()


# Relative slack when comparing a cumulative sum with share * total: sums that are equal on paper
# (0.7 + 0.2 of a total 1.0 at share 0.9) may differ in the last bits once rounded.
_MASS_RTOL = 1e-6


def units_for_mass(code: torch.Tensor, share: float = 0.9, per_digit: bool = False):
    """The sparsity yardstick of every family: how few units carry ``share`` of a digit's code mass.

    For each digit b, the smallest number k of units whose k largest values add up to at least
    ``share * sum_j code[b, j]``; returns the mean of k over the B digits (a float), or with ``per_digit``
    the (B,) int64 tensor of each digit's k. A digit whose code is all zero counts 0 units. share in
    (0, 1]. Computed in float64 with a relative slack of 1e-6 on the target.
    """
    share = check_number("share", share, low=0, high=1, low_open=True)
    code = _check_code(code)
    if code.numel() and code.min().item() < 0:
        raise ValueError(f"code must be non-negative, got a smallest value of {code.min().item():g}")
    ordered = code.double().sort(dim=1, descending=True).values
    mass = ordered.cumsum(dim=1)
    total = mass[:, -1:]  # the same rounding as the cumulative sums it is compared with
    reached = mass >= share * total * (1 - _MASS_RTOL)  # non-decreasing along a row: False..., True...
    counts = torch.where(total[:, 0] > 0, code.shape[1] - reached.sum(dim=1) + 1, 0)
    return counts if per_digit else counts.double().mean().item()


def mass_share_below(code: torch.Tensor, threshold: float = 0.5) -> float:
    """The share of a non-negative code's mass in values at or below ``threshold``, pooled over all digits
    and units: sum of code[code <= t] / sum of code, in float64."""
    code = _check_code(code).double()
    return (code[code <= threshold].sum() / code.sum()).item()


def subset_penalty_prediction(code: torch.Tensor, rho: float, n: int) -> float:
    """The KL penalty expected on a random subset of ``n`` of the N rows of ``code``, drawn without replacement,
    to second order (Jensen's excess): sum over units j of KL(rho || q_j) + KL''(q_j) / 2 * s_j^2 / n * (1 - n / N),
    with q_j the unit's mean over all N rows, KL''(q) = rho / q^2 + (1 - rho) / (1 - q)^2 and s_j^2 its variance
    over the N rows (divisor N - 1; Cochran's variance of a sample mean). code: (N, H) in [0, 1], N >= 2;
    rho in (0, 1); n in 1..N. Returns a float (float64 arithmetic); n = N gives the penalty on all rows."""
    code = check_code("code", code).double()
    rho = check_number("rho", rho, low=0, high=1, low_open=True, high_open=True)
    total = code.shape[0]
    if total < 2:
        raise ValueError(f"code must have at least 2 rows for a variance, got {total}")
    n = check_int("n", n, low=1)
    if n > total:
        raise ValueError(f"n must be at most the number of rows of code ({total}), got {n}")
    # Cochran's s_j^2 / n * (1 - n / N) equals kl_jensen_gap's v_j / n * (N - n) / (N - 1): its excess at beta = 1
    return kl_divergence(rho, code.mean(dim=0)).sum().item() + kl_jensen_gap(code, rho, 1.0, batch_size=n)


TRUNCATION_FILLS = ("mean", "min", "zero")


def scale_measures(model: SparseAutoencoder, x: torch.Tensor, lam: float, reference=None) -> dict:
    """What a ReLU model's code looks like on inputs x (N, D), floats in [0, 1], by measures that a rescaling
    of its units (``SparseAutoencoder.rescaled``) does or does not change. Plain floats, means over the N inputs:
    "test J" (BCE + lam * Ω_L1) and "Ω_L1" (change with the scale); "L0" (non-zero values per input), "k90 of y"
    (``units_for_mass`` of the code: changes under per-unit factors only), "k90 of y‖d‖" and "Σ y_j‖d_j‖" (the
    code weighted by its decoder columns' lengths: unchanged by any rescaling). With a ``reference`` model,
    also "largest x̂ change": max |x̂ - x̂_reference| over inputs and pixels."""
    lam = check_number("lam", lam, low=0)
    x = model.flatten(x)
    with torch.no_grad():
        logits, code = model(x)
        weighted = code * model.decoder.weight.norm(dim=0)            # y_j ‖d_j‖
        omega = l1_penalty(code)
        measures = {"test J": (reconstruction_bce(logits, x) + lam * omega).item(),
                    "Ω_L1": omega.item(), "L0": l0(code), "k90 of y": units_for_mass(code),
                    "k90 of y‖d‖": units_for_mass(weighted), "Σ y_j‖d_j‖": weighted.sum(dim=1).mean().item()}
        if reference is not None:
            change = torch.sigmoid(logits) - reference.reconstruct(x)
            measures["largest x̂ change"] = change.abs().max().item()
    return measures


SCALE_KEYS = ("scale", "median ‖d_j‖", "Σ y‖d‖ per value", "Σ y‖d‖", "L0")


def unit_scale_statistics(model: SparseAutoencoder, x: torch.Tensor) -> dict:
    """Per-unit statistics of a ReLU model on inputs x (N, D), floats in [0, 1], from which
    ``scale_summary`` computes scale measures. Returns float64 tensors of shape (H,): "column_norm" ‖d_j‖
    (the length of decoder column j), "mean_activation" ρ̂_j (mean over the N inputs of y_j) and
    "firing_frequency" f_j (share of the N inputs with y_j > 0)."""
    if model.activation != "relu":
        raise ValueError(f"unit_scale_statistics needs a ReLU model; got activation {model.activation!r}")
    with torch.no_grad():
        code = model.encode(model.flatten(x)).double()
        return {"column_norm": model.decoder.weight.double().norm(dim=0), "mean_activation": code.mean(dim=0),
                "firing_frequency": (code > 0).double().mean(dim=0)}


def _check_statistics(name: str, statistics: dict) -> dict:
    keys = ("column_norm", "mean_activation", "firing_frequency")
    if not isinstance(statistics, dict) or any(key not in statistics for key in keys):
        raise ValueError(f"{name} must be a dict with keys {keys} (as unit_scale_statistics returns), "
                         f"got {type(statistics).__name__} with keys {list(statistics)[:5] if isinstance(statistics, dict) else '-'}")
    values = [torch.as_tensor(statistics[key], dtype=torch.float64) for key in keys]
    if any(v.ndim != 1 or v.shape != values[0].shape for v in values):
        raise ValueError(f"{name}'s arrays must all have shape (H,), got {[tuple(v.shape) for v in values]}")
    return dict(zip(keys, values))


def scale_summary(statistics: dict, units=None) -> dict:
    """Scale measures over a set of units, from per-unit statistics (``unit_scale_statistics``, or an atlas
    entry's ``unit_scale_statistics()``, whose column lengths are NaN where the atlas stores no column).

    With ρ̂_j, f_j and ‖d_j‖ summed or taken over the chosen units: "scale" Σρ̂_j / Σf_j (the mean non-zero
    code value, Ω_L1 / L0 when all units are chosen); "median ‖d_j‖"; "Σ y‖d‖" Σ ρ̂_j‖d_j‖ (the mean over
    inputs of Σ_j y_j‖d_j‖); "Σ y‖d‖ per value" Σ ρ̂_j‖d_j‖ / Σ f_j; "L0" Σ f_j (non-zero values per input).
    Plain floats; NaN where a needed column length is NaN. units: indices (U,); default the living units
    (f_j > 0)."""
    s = _check_statistics("statistics", statistics)
    norm, rho, f = s["column_norm"], s["mean_activation"], s["firing_frequency"]
    chosen = f > 0 if units is None else torch.as_tensor(units, dtype=torch.long)
    norm, rho, f = norm[chosen], rho[chosen], f[chosen]
    if len(f) == 0 or f.sum() == 0:
        raise ValueError("units must name at least one unit that fires")
    weighted = (rho * norm).sum()
    return {"scale": (rho.sum() / f.sum()).item(), "median ‖d_j‖": norm.median().item() if not norm.isnan().any()
            else math.nan, "Σ y‖d‖ per value": (weighted / f.sum()).item(), "Σ y‖d‖": weighted.item(),
            "L0": f.sum().item()}


def rescaling_ratios(before: dict, after: dict, units=None) -> dict:
    """How each scale measure of ``scale_summary`` changed between two states of a run, as the ratio
    after / before over the same ``units`` (default: each state's own living units). before, after:
    per-unit statistics as ``unit_scale_statistics`` returns. A common shrink of the code by c < 1 with
    the decoder lengthened by 1/c gives scale < 1, median ‖d_j‖ > 1 and 1 for the other three.
    Returns {measure: float}, or None for a measure either state lacks (a NaN column length), which
    ``atlas.table`` prints as "-"."""
    start, end = scale_summary(before, units), scale_summary(after, units)
    ratios = {key: end[key] / start[key] for key in SCALE_KEYS}
    return {key: None if math.isnan(value) else value for key, value in ratios.items()}


def bce_floor(x: torch.Tensor) -> torch.Tensor:
    """The lowest BCE any reconstruction can reach on each image: the mean binary entropy of its pixels,
    -(1/D) sum_p [x_p log x_p + (1 - x_p) log(1 - x_p)] with 0 log 0 = 0. x: (N, D) floats in [0, 1]
    (e.g. ``prepare_images``); returns (N,) float64. BCE(x, x_hat) minus this is (1/D) sum_p KL(x_p || x_hat_p) >= 0."""
    check_float_tensor("x", x)
    if x.dim() != 2 or (x.numel() and (x.min().item() < 0 or x.max().item() > 1)):
        raise ValueError(f"x must be an (N, D) tensor with values in [0, 1], got shape {tuple(x.shape)}")
    x = x.double()
    return pixel_bce(x, x).mean(dim=1)


GREY_BANDS = {"x = 0": (0, 0), "0 < x < 0.1": (1, 25), "0.1 <= x < 0.9": (26, 229), "0.9 <= x < 1": (230, 254),
              "x = 1": (255, 255)}


def floor_by_grey_level(images: torch.Tensor, bands: dict | None = None) -> tuple[float, list]:
    """The BCE floor of a set of uint8 images and how its pixels and its floor split by grey level.

    images: (N, 28, 28) or (N, D) uint8 (``load_mnist``), grey level k stands for x = k / 255. The floor is
    sum_k p_k H(k / 255), with p_k the share of all N * D pixels at level k and H the binary entropy (0 log 0 = 0);
    it equals the mean of ``bce_floor(prepare_images(images))``. bands: {label: (lowest level, highest level)},
    inclusive, default ``GREY_BANDS``. Returns (floor in nats per pixel, float64 sum; one dict per band:
    "test pixels" (the label), "share of the pixels", "share of the floor")."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() < 2:
        raise ValueError(f"images must be a uint8 tensor of shape (N, 28, 28) or (N, D), got {type(images).__name__} "
                         f"{getattr(images, 'dtype', '')} {tuple(getattr(images, 'shape', ()))}")
    bands = GREY_BANDS if bands is None else bands
    for label, (low, high) in bands.items():
        check_int(f"bands[{label!r}] lowest level", low, low=0)
        if check_int(f"bands[{label!r}] highest level", high, low=low) > 255:
            raise ValueError(f"bands[{label!r}] highest level must be at most 255, got {high}")
    levels = torch.arange(256, dtype=torch.float64) / 255
    share = torch.bincount(images.flatten(), minlength=256).double() / images.numel()
    floor_at = share * pixel_bce(levels, levels)
    floor = floor_at.sum().item()
    rows = [{"test pixels": label, "share of the pixels": share[low:high + 1].sum().item(),
             "share of the floor": floor_at[low:high + 1].sum().item() / floor} for label, (low, high) in bands.items()]
    return floor, rows


def _as_model_input(model: SparseAutoencoder, x) -> torch.Tensor:
    """Images as the model's input: float images (N, D) in [0, 1] keep their values, in the model's dtype and
    on its device; uint8 images go through ``prepare_images``."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.reshape(len(x), model.n_input).to(device=_device(model), dtype=model.encoder.weight.dtype)
    return prepare_images(x, n_input=model.n_input).to(device=_device(model), dtype=model.encoder.weight.dtype)


def bias_pulls(model: SparseAutoencoder, x, rho: float, beta: float, batch_size: int | None = None,
               seed: int = 0, n_batches: int | None = None) -> dict:
    """The two pulls on each encoder bias b_j of a KL (sigmoid) model, on the inputs x taken as one batch.

    x: (N, D) floats in [0, 1] or uint8 images. With code y = sigmoid(W_e x + b_e) (N, H), q_j = rho_hat_j =
    mean_i y_ij, S_j = mean_i y_ij (1 - y_ij) and r_j = S_j / q_j (in (0, 1)), the chain rule gives
      beta * d KL(rho || q_j) / d b_j = beta * r_j * (q_j - rho) / (1 - q_j),
    whose size is at most beta * |q_j - rho| / (1 - q_j) because r_j <= 1. Returns (H,) float64 tensors, all
    computed in float64: "bce" = d BCE / d b_j (BCE a mean over inputs and pixels) and "penalty" =
    beta * d Omega_KL / d b_j, both by autograd; "formula" (the right-hand side above), "bound", "rho_hat" (q),
    "S", "slope_ratio" (r) and "C" = mean over pixels of |W_d[p, j]|, so that |bce| <= C_j S_j.

    batch_size: None (default) takes x as one batch. An integer B shuffles x (torch.Generator seeded with
    ``seed``), splits it into minibatches of B (the last may be smaller) and returns, for every key, the
    unweighted mean over minibatches of that key's per-minibatch value: "bce" + "penalty" is then the mean
    gradient of the minibatch objective J = BCE + beta * Omega_KL that training follows, averaged over one
    shuffled pass. n_batches: None (all minibatches of the pass) or a positive int, to keep only the first
    n_batches minibatches of the shuffled pass (a random subset of the inputs, for speed)."""
    rho = check_number("rho", rho, low=0, high=1, low_open=True, high_open=True)
    beta = check_number("beta", beta, low=0)
    if not isinstance(model, SparseAutoencoder) or model.activation != "sigmoid":
        raise ValueError(f"bias_pulls needs a sigmoid (KL) SparseAutoencoder, got "
                         f"{getattr(model, 'activation', type(model).__name__)!r}")
    net = copy.deepcopy(model).double()
    x = _as_model_input(net, x)
    if batch_size is None:
        return _bias_pulls_of_batch(net, x, rho, beta)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be None or a positive int, got {batch_size!r}")
    if n_batches is not None and (isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 1):
        raise ValueError(f"n_batches must be None or a positive int, got {n_batches!r}")
    per_batch = [_bias_pulls_of_batch(net, x[rows], rho, beta) for rows in _minibatch_rows(len(x), batch_size, seed, n_batches)]
    return {key: torch.stack([p[key] for p in per_batch]).mean(dim=0) for key in per_batch[0]}


def _minibatch_rows(n: int, batch_size: int, seed: int, n_batches: int | None) -> tuple:
    """The row indices of the first ``n_batches`` (None: all) minibatches of one pass over n rows shuffled as
    training shuffles (torch.randperm with a generator seeded with ``seed``); the last may be smaller."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).split(batch_size)[:n_batches]


def _bias_pulls_of_batch(net: SparseAutoencoder, x: torch.Tensor, rho: float, beta: float) -> dict:
    """bias_pulls on one batch x (B, D) of a float64 model ``net``."""
    from .penalties import kl_sparsity_penalty
    with torch.enable_grad():
        logits, code = net(x)
        (bce,) = torch.autograd.grad(reconstruction_bce(logits, x), net.encoder.bias, retain_graph=True)
        (penalty,) = torch.autograd.grad(beta * kl_sparsity_penalty(code, rho), net.encoder.bias)
    y = code.detach()
    q, S = y.mean(dim=0), (y * (1 - y)).mean(dim=0)
    return {"bce": bce, "penalty": penalty, "formula": beta * (S / q) * (q - rho) / (1 - q),
            "bound": beta * (q - rho).abs() / (1 - q), "rho_hat": q, "S": S, "slope_ratio": S / q,
            "C": net.decoder.weight.detach().abs().mean(dim=0)}


def mass_below_bound(active_units_per_digit: float, mean_activation: float, n_hidden: int) -> float:
    """A floor on ``mass_share_below(code, 0.5)`` of a sigmoid code from two averages: a digit has on
    average a = ``active_units_per_digit`` values above 0.5, each below 1, in a code whose mass is on average
    H * ``mean_activation``; so at most a / (H * mean) of the mass lies above 0.5, and at least
    1 - a / (H * mean) at or below it (pooled over digits and units, not per digit)."""
    return 1 - active_units_per_digit / (n_hidden * mean_activation)


def sparsity_summary(code: torch.Tensor, threshold: float) -> dict:
    """The sparsity of one code (N, H), non-negative, by every yardstick of the lessons, with ``threshold``
    the family's "active" rule (``FAMILIES[name].active_threshold``). Living units: active on at least one
    of the N inputs. Keys: "living units", "active per digit" (values > threshold, mean over inputs),
    "k_90", "k_50" (``units_for_mass`` at 0.9 and 0.5) and each divided by the living units ("k_90 / living",
    "k_50 / living"), "unit: own rule" (mean firing frequency of a living unit), "unit: mass rule" (the
    inputs carrying 90 % of a living unit's mass, as a share of N), "mass below 0.5" (``mass_share_below``)."""
    code = _check_code(code)
    frequency = firing_frequency(code, threshold)
    living = frequency > 0
    n_living = int(living.sum())
    summary = {"living units": n_living, "active per digit": (code > threshold).sum(dim=1).double().mean().item(),
               "k_90": units_for_mass(code), "k_50": units_for_mass(code, share=0.5)}
    summary |= {f"{k} / living": summary[k] / n_living for k in ("k_90", "k_50")}
    summary["unit: own rule"] = frequency[living].double().mean().item()
    summary["unit: mass rule"] = units_for_mass(code[:, living].T.contiguous()) / len(code)
    summary["mass below 0.5"] = mass_share_below(code, 0.5)
    return summary


def pixel_bce(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """-[x log x_hat + (1 - x) log(1 - x_hat)] per pixel, no reduction (0 log 0 = 0)."""
    return -(torch.special.xlogy(x, x_hat) + torch.special.xlogy(1 - x, 1 - x_hat))


def _bce_gap(x: torch.Tensor, x_hat: dict) -> tuple:
    """(x, (label A, x_hat_A), (label B, x_hat_B), per-pixel BCE_A - BCE_B), all in float64, for the two
    models' reconstructions in ``x_hat``."""
    if len(x_hat) != 2:
        raise ValueError(f"x_hat must hold exactly two models' reconstructions, got {len(x_hat)}")
    x = x.double()
    (a, x_a), (b, x_b) = ((label, value.double()) for label, value in x_hat.items())
    return x, (a, x_a), (b, x_b), pixel_bce(x, x_a) - pixel_bce(x, x_b)


def _gap_share(name: str, mask: torch.Tensor, gap: torch.Tensor) -> dict:
    """One group's row: its share of the pixels and its part of the summed gap."""
    return {"pixels": name, "share of pixels": mask.double().mean().item(),
            "share of the gap": (gap[mask].sum() / gap.sum()).item()}


def gap_by_brightness(x: torch.Tensor, x_hat: dict, cuts=(0.1, 0.9)) -> list:
    """Where model A's summed BCE exceeds model B's, by which of the two draws a pixel brighter.

    x: (N, D) inputs in [0, 1]; x_hat: {label: (N, D) reconstructions} of exactly two models A, B. Each
    pixel falls in one group: stroke (x > 0) where A draws it brighter (x_hat_A > x_hat_B); stroke where A
    does not, split by the input's value at ``cuts`` (default "0 < x < 0.1", "0.1 <= x < 0.9", "x >= 0.9");
    background (x = 0) where A is brighter; background where it is not. One row per group: "pixels",
    "share of pixels", "share of the gap" (its part of sum BCE_A - sum BCE_B, per-pixel BCE in float64);
    both shares sum to 1 over the groups."""
    x, (a, x_a), (_, x_b), gap = _bce_gap(x, x_hat)
    stroke, brighter = x > 0, x_a > x_b
    edges = [0.0, *cuts, math.inf]
    groups = {f"stroke, {a} brighter": stroke & brighter}
    for low, high in zip(edges, edges[1:]):
        band = f"0 < x < {high:g}" if low == 0 else f"x >= {low:g}" if high == math.inf else f"{low:g} <= x < {high:g}"
        groups[f"stroke, {band}, {a} darker"] = stroke & ~brighter & (x >= low) & (x < high)
    groups |= {f"background, {a} brighter": ~stroke & brighter, f"background, {a} darker": ~stroke & ~brighter}
    return [_gap_share(name, mask, gap) for name, mask in groups.items()]


def stroke_gap_totals(rows: list) -> dict:
    """The stroke totals of a ``gap_by_brightness`` table, whatever the order of its rows. rows: the list of
    dicts it returns (each with "pixels", "share of pixels", "share of the gap"). Returns {"share of pixels",
    "share of the gap"}: sums over the rows whose "pixels" starts with "stroke", and "share of the gap, darker":
    the sum over those stroke rows whose label ends with "darker" (model A draws the pixel no brighter than B)."""
    if not isinstance(rows, (list, tuple)) or not rows or any(
            not isinstance(r, dict) or not {"pixels", "share of pixels", "share of the gap"} <= set(r) for r in rows):
        raise ValueError("rows must be a non-empty list of gap_by_brightness rows")
    stroke = [r for r in rows if r["pixels"].startswith("stroke")]
    return {"share of pixels": float(sum(r["share of pixels"] for r in stroke)),
            "share of the gap": float(sum(r["share of the gap"] for r in stroke)),
            "share of the gap, darker": float(sum(r["share of the gap"] for r in stroke if r["pixels"].endswith("darker")))}


def fraction_variance_unexplained(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """sum (x - x_hat)^2 / sum (x - mean_b x)^2, summed over digits and pixels, computed in float64.

    x, x_hat: (B, ...) floats of the same shape, one digit per row; mean_b x is the mean digit.
    0 is a perfect reconstruction; 1 is no better than drawing the mean digit every time.
    """
    check_float_tensor("x", x)
    check_float_tensor("x_hat", x_hat)
    if x.shape != x_hat.shape or x.dim() < 2:
        raise ValueError(f"x and x_hat must have the same shape (B, ...), got {tuple(x.shape)} and {tuple(x_hat.shape)}")
    x, x_hat = x.double(), x_hat.double()
    spread = (x - x.mean(dim=0)).pow(2).sum()
    if spread == 0:
        raise ValueError("x has no variance across digits, so the fraction of variance unexplained is undefined")
    return ((x - x_hat).pow(2).sum() / spread).item()


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz, as in
    Numerical Recipes' betacf; relative error below 1e-12 for the degrees of freedom used here)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1) / (a + b + 2):                    # the fraction converges fast on this side only
        return 1.0 - _incomplete_beta(1.0 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * h / a


def variance_ratio_p(sd_a: float, n_a: int, sd_b: float, n_b: int) -> float:
    """How often pure sampling noise makes one sample std at least this much larger than another.

    sd_a, sd_b: sample standard deviations (ddof=1) of n_a and n_b independent normal values with EQUAL true
    variance. Returns the one-sided p-value P(F >= (sd_a / sd_b)^2) for F ~ F(n_a - 1, n_b - 1), computed as the
    regularised incomplete beta I_w((n_b - 1) / 2, (n_a - 1) / 2) with w = d_b / (d_b + d_a F). A small value
    (e.g. < 0.05) says sd_a is larger beyond sampling noise; a large one says the ratio is what noise gives."""
    sd_a = check_number("sd_a", sd_a, low=0)
    sd_b = check_number("sd_b", sd_b, low=0, low_open=True)
    n_a = check_int("n_a", n_a, low=2)
    n_b = check_int("n_b", n_b, low=2)
    d_a, d_b, ratio = n_a - 1, n_b - 1, (sd_a / sd_b) ** 2
    return float(_incomplete_beta(d_b / (d_b + d_a * ratio), d_b / 2, d_a / 2))


def units_by_use(firing_frequency: torch.Tensor, mean_activation: torch.Tensor) -> torch.Tensor:
    """Unit indices (H,), the most often active first, ties broken by the higher mean activation: the
    stated order in which the figures and the atlas pick units to show. Both inputs (H,)."""
    order = torch.argsort(mean_activation, descending=True, stable=True)                 # the tie-break first,
    return order[torch.argsort(firing_frequency[order], descending=True, stable=True)]  # then the main key


DASHBOARD_TOP = 9     # top-activating digits shown per unit
DASHBOARD_BINS = 20   # bins of a unit's activation histogram


def unit_dashboards(code: torch.Tensor, units, threshold: float, n_top: int = DASHBOARD_TOP,
                    bins: int = DASHBOARD_BINS) -> dict:
    """What a feature dashboard shows of each unit in ``units``, from the code (B, H) of B digits.

    Returns numpy arrays, one row per unit (U = len(units)): ``top_digits`` int64 (U, n_top), the digits
    with the largest values of the unit, largest first (ties: the lower index); ``top_values`` float32
    (U, n_top) those values; ``histogram`` int64 (U, bins), counts of the unit's active values (above
    ``threshold``) in ``bins`` equal bins from ``threshold`` to the unit's largest value, whose edges are
    ``edges`` float32 (U, bins + 1); ``firing_frequency`` float32 (U,), its share of active digits.
    """
    code = _check_code(code)
    units = torch.as_tensor(units, dtype=torch.long)
    values = code[:, units].T.double()                                     # (U, B)
    order = torch.argsort(-values, dim=1, stable=True)[:, :n_top]          # largest first, ties by index
    histogram, edges = [], []
    for row in values:
        active = row[row > threshold]
        top = active.max().item() if len(active) else threshold + 1.0
        edge = torch.linspace(threshold, top, bins + 1, dtype=torch.float64)
        histogram.append(torch.histc(active, bins, threshold, top) if len(active) else torch.zeros(bins))
        edges.append(edge)
    return {"top_digits": order.numpy(), "top_values": values.gather(1, order).float().numpy(),
            "histogram": torch.stack(histogram).round().long().numpy(), "edges": torch.stack(edges).float().numpy(),
            "firing_frequency": (values > threshold).double().mean(dim=1).float().numpy()}


