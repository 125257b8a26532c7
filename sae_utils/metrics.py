"""Evaluation: reconstruction BCE, penalty and sparsity statistics of a trained model.

"Active" is defined by each family's ``active_threshold`` in ``families.py``: a sigmoid unit is active on a
digit when its activation exceeds 0.5 (closer to "on" than "off"), a ReLU unit when its activation is above
0 (not exactly zero). A unit is dead when it is active on none of the evaluated digits.
"""
from __future__ import annotations

import math

import torch

from .data import prepare_images
from .fast_bce import training_bce
from .families import FAMILIES, code_activation, family, family_of_activation
from .model import SparseAutoencoder
from .checks import check_choice, check_code, check_float_tensor, check_int, check_number
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


def dead_units(code: torch.Tensor, threshold: float) -> torch.Tensor:
    """(H,) bool: True for each unit active on none of the B digits (its ``firing_frequency`` is 0)."""
    return ~(_check_code(code) > threshold).any(dim=0)


def dead_fraction(code: torch.Tensor, threshold: float) -> float:
    """The fraction of the H units that are dead (``dead_units``): active on none of the B digits."""
    dead = dead_units(code, threshold)
    return dead.sum().item() / len(dead)


def top_class_share(code: torch.Tensor, labels: torch.Tensor, n_top: int = 50) -> torch.Tensor:
    """(H,) float64: for each unit j, the share of its ``n_top`` digits with the largest code[:, j] (ties:
    the lower index) that belong to their most common class. 1 for a unit whose top digits are all one
    class; about 0.18 for ``n_top`` = 50 random MNIST digits. labels: (B,) int class of each digit."""
    code = _check_code(code)
    labels = torch.as_tensor(labels)
    if labels.shape != code.shape[:1]:
        raise ValueError(f"labels must have one class per digit, shape ({code.shape[0]},); got {tuple(labels.shape)}")
    n_top = check_int("n_top", n_top)
    if n_top > code.shape[0]:
        raise ValueError(f"n_top must be at most the number of digits, {code.shape[0]}; got {n_top}")
    top = torch.argsort(-code.double(), dim=0, stable=True)[:n_top].T           # (H, n_top) digit indices
    counts = torch.nn.functional.one_hot(labels.long()[top]).sum(dim=1)         # (H, classes)
    return counts.max(dim=1).values.double() / n_top


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


RESTING_LEVELS = ("median", "minimum")


def above_resting_level(code: torch.Tensor, level: str = "median") -> torch.Tensor:
    """Each unit's code above its resting level: max(0, code[b, j] - m_j). (B, H) in, (B, H) out, same dtype.

    level: "median", m_j the median of unit j over the B rows (``torch.median``: the lower middle value when
    B is even), the value a unit rests at on most digits; or "minimum", m_j its smallest value.

    A constant part of a unit can move into the decoder's bias without changing any reconstruction, so a
    sparsity count such as ``units_for_mass`` may be taken on this code instead of on the raw one. With the
    minimum that move is exact (nothing is clipped); with the median, the values below it are set to 0.
    """
    code = _check_code(code)
    level = check_choice("level", level, RESTING_LEVELS)
    rest = code.median(dim=0).values if level == "median" else code.min(dim=0).values
    return (code - rest).clamp(min=0)


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


def pixel_bce(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """-[x log x_hat + (1 - x) log(1 - x_hat)] per pixel, no reduction (0 log 0 = 0)."""
    return -(torch.special.xlogy(x, x_hat) + torch.special.xlogy(1 - x, 1 - x_hat))


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


