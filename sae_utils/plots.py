"""Figures: loss curves, inputs above reconstructions, feature images, histograms of rho_hat_j, the
comparisons of notebook 03 (two models side by side, error maps), the trade-off drawn from the atlas (README, notebook 05),
and the mosaics the explorer redraws.

Each function returns a matplotlib Figure and draws nothing else; notebooks display it, the CLI saves it.
"""
from __future__ import annotations

import copy
import io
import itertools
import math

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
from matplotlib.ticker import FormatStrFormatter, FuncFormatter, LogFormatter, NullFormatter, ScalarFormatter
import torch

from .checks import check_choice, check_code, check_int, check_number
from .data import prepare_images
from .metrics import firing_frequency, pixel_bce


def drawn_shape(n_values: int, shape=None) -> tuple[int, int]:
    """The (height, width) to draw an input of ``n_values`` values as: ``shape`` if given, else (s, s) with
    s * s = n_values. Anything else is a ValueError naming the values and what is needed."""
    if shape is not None:
        if (not isinstance(shape, (tuple, list)) or len(shape) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
                or shape[0] * shape[1] != n_values):
            raise ValueError(f"image_shape must be (height, width) with height * width = {n_values}, got {shape!r}")
        return tuple(shape)
    side = math.isqrt(n_values)
    if side * side != n_values:
        raise ValueError(f"inputs of {n_values} values are not square images; pass image_shape=(height, width) "
                         f"with height * width = {n_values}")
    return side, side


def plot_loss_curves(history: dict, published: dict | None = None, title: str = "Loss per epoch", *,
                     from_epoch: int = 1, yscale: str = "log", family: str | None = None, labels: dict | None = None,
                     points: dict | None = None, penalty_from_epoch: int = 1, ylabel: str = "nats per pixel",
                     penalty_points: dict | None = None, penalty_title: str | None = None,
                     hlines: dict | None = None):
    """Two panels against the epoch. Left: training objective, training BCE and test BCE (published
    losses dashed). Right: their gap, the weighted penalty (objective - BCE; for TopK the weighted
    auxiliary loss), which is too small to see on the left's scale, from ``penalty_from_epoch`` (default 1).

    from_epoch: the first epoch drawn in the left panel (2 leaves out epoch 1, whose losses are far above
    the rest); yscale: "log" or "linear" for the left panel (linear limits fit what is drawn);
    family: the family the history was trained with (a ``FAMILIES`` key), which names the right panel's
    quantity (e.g. β·Ω_KL); default a label that fits every family. labels: {default legend text: text
    to show instead}, e.g. {"published test loss": "published test loss (first 1,200 test digits)"}.
    points: {legend text: (epoch, loss)}, single values drawn as black stars on the left panel (its limits
    grow to hold them), e.g. our test BCE on the digits of the published test loss.
    ylabel: the left panel's y-axis label, a non-empty string (default "nats per pixel"), e.g. one that
    says the objective's curve also holds the weighted penalty.
    penalty_points: {legend text: (epoch, value)}, single values drawn as black stars on the right panel, with
    a legend (e.g. the weighted penalty on all training digits at once); the panel's limits grow to hold them.
    penalty_title: the right panel's title (default "objective − BCE (train, epoch mean)").
    hlines: {legend text: value}, horizontal grey dotted lines on the left panel (its limits grow to hold
    them), e.g. the BCE floor no model can beat; None (default) draws none.
    """
    from .families import family as family_named

    if not (isinstance(ylabel, str) and ylabel.strip()):
        raise ValueError(f"ylabel must be a non-empty string, got {ylabel!r}")

    gap_label = "weight × penalty (objective − BCE)"
    objective_label = "train objective (BCE + weight·penalty)"
    if family is not None:
        fam = family_named(family)
        symbol = {h.name: h.symbol for h in fam.hyperparameters}.get(fam.weight)
        if symbol:
            objective_label = f"train objective (BCE + {symbol}·penalty)"
        gap_label = (f"${symbol}\\,\\Omega_{{\\mathrm{{{fam.name.upper()}}}}}$ (weighted penalty)" if symbol
                     else f"{fam.auxiliary_weight:g} × auxiliary loss")
    check_choice("yscale", yscale, ("log", "linear"))
    last = max(history["epoch"], default=1)
    for name, first in (("from_epoch", from_epoch), ("penalty_from_epoch", penalty_from_epoch)):
        if not (isinstance(first, int) and 1 <= first <= last):
            raise ValueError(f"{name} must be an integer in [1, {last}], got {first!r}")

    def since(first: int) -> dict:
        """The history's per-epoch lists from epoch ``first`` on."""
        keep = [i for i, e in enumerate(history["epoch"]) if e >= first]
        return {key: [history[key][i] for i in keep] for key in ("epoch", "train_objective", "train_bce", "test_bce")}

    drawn = since(from_epoch)
    fig, (ax, gap) = plt.subplots(1, 2, figsize=(10, 3.5), gridspec_kw={"width_ratios": (3, 2)})
    epochs = drawn["epoch"]
    ax.plot(epochs, drawn["train_objective"], "o-", label=objective_label)
    ax.plot(epochs, drawn["train_bce"], "s-", label="train BCE")
    ax.plot(epochs, drawn["test_bce"], "^-", label="test BCE")
    for split, style in (("train", "C0"), ("test", "C2")):
        if published and split in published:
            ax.axhline(published[split], color=style, ls="--", lw=1, label=f"published {split} loss")
    for label, (epoch, loss) in (points or {}).items():
        ax.plot([epoch], [loss], "*", ms=12, color="k", label=label)
    for label, value in (hlines or {}).items():
        if not np.isfinite(value) or (yscale == "log" and value <= 0):
            raise ValueError(f"hlines[{label!r}] must be a finite number (positive on a log axis), got {value!r}")
        ax.axhline(float(value), color="grey", ls=":", lw=1.2, label=label)
    # the objective's curve is BCE per pixel plus the weighted penalty, as its legend entry says
    ax.set(xlabel="epoch", ylabel=ylabel, title=title, yscale=yscale)
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3f" if yscale == "linear" else "%.2f"))
    if yscale == "log":
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))  # the 0.07-0.09 region needs its labels
        ax.tick_params(axis="y", which="minor", labelsize=7)
    penalty = since(penalty_from_epoch)
    weighted = [o - b for o, b in zip(penalty["train_objective"], penalty["train_bce"])]
    gap.plot(penalty["epoch"], weighted, "o-", color="C3")
    if penalty_title is not None and not (isinstance(penalty_title, str) and penalty_title.strip()):
        raise ValueError(f"penalty_title must be a non-empty string, got {penalty_title!r}")
    marked = [float(value) for _, value in (penalty_points or {}).values()]
    gap.set(xlabel="epoch", ylabel=gap_label, title=penalty_title or "objective − BCE (train, epoch mean)",
            ylim=(0, 1.15 * max(weighted + marked, default=0) or None))
    for label, (epoch, value) in (penalty_points or {}).items():
        gap.plot([epoch], [value], "*", ms=10, color="k", label=label)
    if penalty_points:
        gap.legend(fontsize=8)
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if last / s <= 6 or s == 1000)
    ticks = sorted({1, *range(step, last + 1, step)})  # the same on both panels, each from its first epoch
    for axis, first in ((ax, from_epoch), (gap, penalty_from_epoch)):
        later = [e for e in ticks if e > first]
        # the first epoch drawn gets a tick too, unless it would crowd the next round one
        axis.set_xticks(([first] if not later or later[0] - first >= step / 2 else []) + later)
    for line in ax.get_lines():
        line.set_label((labels or {}).get(line.get_label(), line.get_label()))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _show_images(axes, images, cmap="gray", symmetric=False):
    for ax, img in zip(axes, images):
        limit = img.abs().max().item() if symmetric else 1.0
        ax.imshow(img.cpu().numpy(), cmap=cmap, vmin=-limit if symmetric else 0, vmax=limit)
        ax.set_xticks([]), ax.set_yticks([])


def plot_reconstructions(model, images, n: int = 10, title: str | None = None, image_shape=None,
                         error_map: bool = False):
    """The first ``n`` of ``images`` (top row) above the model's reconstructions (bottom row).

    image_shape: (height, width) of one input; default (s, s) where the model's input size is s * s.
    error_map: add a third row, each map under its digit: each pixel's KL(x_p || x_hat_p) = its BCE minus the
    BCE floor h(x_p), on one shared colour scale from 0 to the 99.5th percentile of the values shown (brighter
    pixels saturate, and the colour bar says so), with a colour bar; each digit is titled with its BCE and its floor
    (``metrics.bce_floor``), whose difference is the mean of its map.
    """
    shape = drawn_shape(model.n_input, image_shape)
    x = prepare_images(images[:n], n_input=model.n_input).to(next(model.parameters()).device)
    x_hat = model.reconstruct(x)
    rows = 3 if error_map else 2
    fig, axes = plt.subplots(rows, len(x), figsize=(1.1 * len(x) + (1.2 if error_map else 0), 1.2 * rows),
                             squeeze=False, layout="constrained" if error_map else None)
    _show_images(axes[0], x.reshape(-1, *shape))
    _show_images(axes[1], x_hat.reshape(-1, *shape))
    axes[0, 0].set_ylabel("input x"), axes[1, 0].set_ylabel(r"$\hat{x}$")
    if error_map:
        with torch.no_grad():
            x_hat64 = torch.sigmoid(model.decode(model.encode(x)).cpu().double())
        x64 = x.cpu().double()
        floor, bce = pixel_bce(x64, x64), pixel_bce(x64, x_hat64)        # h(x_p) and BCE per pixel
        pixel_kl = (bce - floor).clamp_min(0)          # KL(x_p || x_hat_p) >= 0; clamp: rounding only
        limit = torch.quantile(pixel_kl.flatten(), 0.995).item() or pixel_kl.max().item() or 1.0
        for ax, values in zip(axes[2], pixel_kl):
            shown = ax.imshow(values.reshape(shape).numpy(), cmap="magma", vmin=0, vmax=limit)
            ax.set_xticks([]), ax.set_yticks([])
        for ax, digit_bce, digit_floor in zip(axes[0], bce.mean(dim=1), floor.mean(dim=1)):
            ax.set_title(f"BCE {digit_bce:.3f}\nfloor {digit_floor:.3f}", fontsize=7, pad=2)
        axes[2, 0].set_ylabel(r"KL($x_p\|\hat{x}_p$)")
        bar = fig.colorbar(shown, ax=axes[2].tolist(), shrink=0.9, pad=0.01,
                           extend="max" if pixel_kl.max().item() > limit else "neither")
        bar.set_label(f"nats (cap {limit:.2f}:\n99.5th percentile)", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    if error_map:
        _align_under(fig, axes[2], axes[0])
    else:
        fig.tight_layout()
    return fig


def _align_under(fig, lower, upper) -> None:
    """Give each axis of ``lower`` the horizontal position and width of the axis of ``upper`` above it:
    the colour bar narrows the error-map row in the constrained layout, so the layout is drawn once and frozen."""
    fig.canvas.draw()
    fig.set_layout_engine("none")
    for top, below in zip(upper, lower):
        p, q = top.get_position(), below.get_position()
        below.set_position([p.x0, q.y0, p.width, p.height])


FEATURE_KINDS = ("encoder", "decoder")


def feature_images(model, which: str = "encoder", image_shape=None) -> torch.Tensor:
    """(n_hidden, height, width): encoder rows (the pattern that drives a unit) or decoder columns (what
    it draws); (28, 28) on MNIST, see ``drawn_shape`` for other inputs."""
    if which not in FEATURE_KINDS:
        raise ValueError(f"which must be 'encoder' or 'decoder', got {which!r}")
    weights = model.encoder.weight if which == "encoder" else model.decoder.weight.T  # (H, D) either way
    return weights.detach().reshape(model.n_hidden, *drawn_shape(model.n_input, image_shape))


def _feature_grid(fig, features, labels, title, colorbar_label=None, limit=None, colorbar=True, cols=None):
    """Draw ``features`` (N, h, w) in a grid of ``cols`` columns (default: square) on one shared, symmetric
    colour scale, with a colour bar.

    The scale ends at the 99.5th percentile of the absolute weights (beyond it colours saturate, and the
    colour bar says so): a few large weights would otherwise leave every other tile faint."""
    cols = cols or math.ceil(math.sqrt(len(features)))
    rows = math.ceil(len(features) / cols)
    axes = fig.subplots(rows, cols, squeeze=False)
    if limit is None:
        limit = _scale_limit(features)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, features, labels):
        shown = ax.imshow(image.cpu().numpy(), cmap="bwr", vmin=-limit, vmax=limit)
        ax.set_title(label, fontsize=7.5, pad=1.5)
    if colorbar:
        fig.colorbar(shown, ax=axes, shrink=0.6, extend="both", label=colorbar_label
                     or f"weight (colours saturate beyond ±{limit:.2f}, the 99.5th percentile of |weight|)")
    fig.suptitle(title)
    return axes


def _scale_limit(features) -> float:
    """The colour scale's end: the 99.5th percentile of the absolute weights (else their maximum, else 1)."""
    return torch.quantile(features.abs().flatten().float(), 0.995).item() or features.abs().max().item() or 1.0


def _shared_scale_limit(blocks) -> float:
    """``_scale_limit`` of several blocks of feature images together (each (n_i, ...)): one scale for all."""
    return _scale_limit(torch.cat([f.reshape(len(f), -1) for f in blocks]))


def unit_labels(units, firing_frequency=None) -> list[str]:
    """Tile labels: "unit 17" or, with the units' firing frequencies (H,), "unit 17, 12.3%" (one decimal;
    "<0.1%" for a unit that fires, but on fewer than 0.1 % of the inputs)."""
    if firing_frequency is None:
        return [f"unit {u}" for u in units]
    percent = [100 * float(firing_frequency[u]) for u in units]
    return [f"unit {u}, {'<0.1' if 0 < p < 0.05 else f'{p:.1f}'}%" for u, p in zip(units, percent)]


def plot_features(model, n: int = 64, title: str | None = None, units=None, which: str = "encoder",
                  image_shape=None, firing_frequency=None, colorbar_label: str | None = None,
                  cols: int | None = None):
    """Weights of hidden units as images on one shared colour scale (red +, blue -), with a colour bar.

    ``units``: which units to show, in order (e.g. ``metrics.units_by_use``: the most often active
    first); default the first ``n``. ``which``: "encoder" (default, the input pattern that drives each
    unit) or "decoder" (what it draws). ``image_shape``: (height, width) of one input; default (s, s)
    where the input size is s * s. ``firing_frequency`` (H,): if given, each tile says how often its
    unit is active. ``colorbar_label``: the colour bar's text (default: "weight" and where colours saturate).
    ``cols``: tiles per row (default: a square grid), e.g. 4 to draw 8 units as 2 full rows.
    """
    units = list(range(model.n_hidden))[:n] if units is None else list(units)[:n]
    features = feature_images(model, which, image_shape)[units]
    cols = check_int("cols", cols, low=1) if cols is not None else math.ceil(math.sqrt(len(features)))
    fig = plt.figure(figsize=(1.15 * cols + 1.6, 1.2 * math.ceil(len(features) / cols) + 0.6))
    _feature_grid(fig, features, unit_labels(units, firing_frequency),
                  title or f"Features of {len(features)} hidden units ({which} weights)", colorbar_label, cols=cols)
    return fig


def plot_code_values(code: torch.Tensor, rho: float | None = None, threshold: float = 0.5, title: str | None = None,
                     *, labels: dict | None = None, ylabel: str | None = None, shade_below: bool = False):
    """What a code's values look like, beside what its units' averages say. Left: the distribution of all
    code values (B * H of them) on a log axis, as a share of the values and as a share of their sum, with
    the median, the target ``rho`` and the "on" ``threshold`` marked (values below 1e-5 are not drawn; the
    title says how many). Right: each unit's mean value (rho_hat_j) against the share of inputs on which it
    exceeds ``threshold``, with the line where the two would be equal. code: (B, H), values in (0, 1].
    labels: {default legend text: text to show instead} for either panel, e.g. {"on for a share $\\hat\\rho_j$
    of the inputs": "$f_j = \\hat\\rho_j$ (a 0/1 code)"}; ylabel: the right panel's y-axis label (default
    "share of inputs with $y_j > threshold$"). shade_below: if True, shade the left panel's values
    <= ``threshold``, labelled with their share of the sum of all code values (default False: no shading)."""
    if not isinstance(shade_below, bool):
        raise ValueError(f"shade_below must be True or False, got {shade_below!r}")
    if ylabel is not None and not (isinstance(ylabel, str) and ylabel.strip()):
        raise ValueError(f"ylabel must be a non-empty string, got {ylabel!r}")
    values = check_code("code", code).detach().cpu()
    flat = values.flatten().double().numpy()
    shown = flat >= 1e-5
    median = float(np.median(flat))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for weights, label in ((np.full(shown.sum(), 1 / len(flat)), "share of the values"),
                           (flat[shown] / flat.sum(), "share of the sum of all code values")):
        left.hist(np.log10(flat[shown]), bins=50, range=(-5, 0), weights=weights, histtype="step", lw=1.5, label=label)
    marks = [(median, "C2", "-", f"median: {median:.3f}"), (threshold, "k", ":", f"'on' above {threshold:g}")]
    if rho is not None:
        marks.insert(1, (rho, "C3", "--", f"ρ = {rho:g}"))
    for value, colour, style, name in marks:
        left.axvline(np.log10(value), color=colour, ls=style, label=name)
    if shade_below:
        below = flat[flat <= threshold].sum() / flat.sum()
        left.axvspan(-5, np.log10(threshold), color="C1", alpha=0.12, label=f"values ≤ {threshold:g}: {below:.0%} of the sum")
    left.set_xticks(range(-5, 1), [f"$10^{{{k}}}$" for k in range(-5, 1)])
    left.set(xlabel="code value $y^{(i)}_j$ (log scale)", ylabel="share per bin (bins of 0.1 decade)",
             title=f"All {len(flat):,} code values ({1 - shown.mean():.2%} below $10^{{-5}}$, not drawn)")
    rho_hat = values.double().mean(dim=0).numpy()
    on = firing_frequency(values, threshold).numpy()
    top = 1.1 * max(rho_hat.max(), on.max(), rho or 0)
    right.scatter(rho_hat, on, s=8, alpha=0.6, label="one unit")
    right.plot([0, top], [0, top], "k:", label=r"on for a share $\hat\rho_j$ of the inputs")
    if rho is not None:
        right.axvline(rho, color="C3", ls="--", label=f"target ρ = {rho:g}")
    right.set(xlim=(0, top), ylim=(0, top), xlabel=r"$\hat\rho_j$: mean code value of unit $j$",
              ylabel=ylabel or f"share of inputs with $y_j > {threshold:g}$", title="Each unit: its average and how often it is on")
    for artist in (*left.get_lines(), *left.patches, *right.get_lines(), *right.collections):
        artist.set_label((labels or {}).get(artist.get_label(), artist.get_label()))
    left.legend(fontsize=8, loc="upper left", framealpha=0.6)
    right.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_kl_curves(targets=(0.02, 0.08, 0.2, 0.5), n_points: int = 1000, zoom=(1.5e-3, 0.85)):
    """KL(rho || rho_hat) against the average activation rho_hat on a logit axis, one curve per target rho in
    ``targets`` (each with a dotted line at its rho). Left panel: rho_hat over [sigmoid(-9.2), sigmoid(9.2)]
    (about 1e-4 to 1 - 1e-4), ``n_points`` points evenly spaced in logit; right panel: the same curves over
    ``zoom`` (low, high) with the y axis cut at 0.5 nats, to show the flat minima. Values in nats, computed in
    float64 by ``penalties.kl_divergence``. Returns the figure."""
    from .penalties import kl_divergence
    n_points = check_int("n_points", n_points, low=2)
    if len(targets) == 0:
        raise ValueError("targets must name at least one target rho, got none")
    targets = [check_number("targets", t, low=0, high=1, low_open=True, high_open=True) for t in targets]
    low, high = (check_number("zoom", v, low=0, high=1, low_open=True, high_open=True) for v in zoom)
    if low >= high:
        raise ValueError(f"zoom must be (low, high) with low < high, got {zoom!r}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
    grid = torch.linspace(-9.2, 9.2, n_points, dtype=torch.float64).sigmoid()
    panels = ((axes[0], [1e-4, 0.01, 0.5, 0.99, 0.9999], 9.5, "The KL penalty of one unit"),
              (axes[1], [0.002, 0.02, 0.08, 0.2, 0.5, 0.8], 0.5, "Near the minima (colours as left)"))
    for ax, ticks, top, title in panels:
        for colour, target in zip(itertools.cycle(("C0", "C1", "C2", "C3", "C4", "C5")), targets):
            ax.plot(grid, kl_divergence(target, grid), color=colour, label=f"ρ = {target:g}")
            ax.axvline(target, color=colour, ls=":", lw=1)
        ax.set_xscale("logit")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=8)
        ax.minorticks_off()
        ax.set(xlabel=r"average activation $\hat\rho$ (logit scale)", ylabel=r"KL$(\rho\,\|\,\hat\rho)$  [nats]",
               ylim=(0, top), title=title)
    axes[1].set_xlim(low, high)
    axes[0].legend()
    return fig


def plot_mass_curves(codes: dict, title: str | None = None, marks=(0.5, 0.9), xlabel: str | None = None):
    """For each code set, the mean over inputs of the share of an input's code mass in its k largest values,
    against k on a log axis: the sooner a curve rises, the sparser the code. codes: {label: (N, H)
    non-negative codes}; marks: shares drawn as dotted grey lines. A mean of shares, so its crossing of 0.9 is
    not the mean k90 (``metrics.units_for_mass``). xlabel: the x axis's label (default "k, the largest code
    values of an input")."""
    fig, ax = plt.subplots(figsize=(6, 3.4), layout="constrained")
    for label, code in codes.items():
        ranked = check_code(f"codes[{label!r}]", code, 0.0, math.inf).detach().cpu().sort(dim=1, descending=True).values                       # (N, H)
        curve = (ranked.cumsum(1) / ranked.sum(1, keepdim=True).clamp_min(torch.finfo(ranked.dtype).tiny)).mean(0)
        ax.plot(range(1, ranked.shape[1] + 1), curve.numpy(), label=label)
        ax.set_xlim(1, ranked.shape[1])
    ax.hlines(list(marks), *ax.get_xlim(), colors="grey", linestyles=":", lw=0.8)
    ax.set(xscale="log", xlabel=xlabel or "k, the largest code values of an input", ylabel="share of the code mass",
           title=title or "")
    ax.legend()
    return fig


def plot_code_value_histograms(codes: dict, thresholds: dict, bins: int = 100):
    """One panel per code set: the histogram of all its code values (log counts), with the family's
    "active" threshold as a dotted red line. codes: {label: (N, H) codes}; thresholds: {label: threshold}
    (e.g. ``metrics.ACTIVE_THRESHOLD[model.activation]``), one per code set; bins: bars per panel, over
    each code's own range. Panels share the y axis. Returns the figure."""
    check_int("bins", bins, low=1)
    if not codes or set(codes) != set(thresholds):
        raise ValueError(f"codes and thresholds must name the same non-empty labels, got {list(codes)} and "
                         f"{list(thresholds)}")
    fig, axes = plt.subplots(1, len(codes), figsize=(4.5 * len(codes), 3), sharey=True, layout="constrained",
                             squeeze=False)
    for ax, (label, code) in zip(axes[0], codes.items()):
        code = check_code(f"codes[{label!r}]", code, -math.inf, math.inf)
        ax.hist(code.detach().cpu().flatten().numpy(), bins=bins, log=True)
        ax.axvline(thresholds[label], color="red", linestyle=":")
        ax.set(title=f"{label} code values (dotted: threshold {thresholds[label]})", xlabel="code value y",
               ylabel="count")
    return fig


def plot_reconstruction_comparison(models: dict, images, n: int = 10, title: str | None = None, image_shape=None):
    """The first ``n`` of ``images`` (top row) above each model's reconstructions (one row per model).

    models: {row label: model}, all for inputs of the same size; image_shape as in ``plot_reconstructions``.
    """
    n_input = next(iter(models.values())).n_input
    shape = drawn_shape(n_input, image_shape)
    x = prepare_images(images[:n], n_input=n_input)
    rows = [("input x", x)] + [(f"{name} $\\hat{{x}}$", model.reconstruct(x.to(next(model.parameters()).device)).cpu())
                               for name, model in models.items()]
    fig, axes = plt.subplots(len(rows), len(x), figsize=(1.1 * len(x), 1.15 * len(rows) + 0.3), squeeze=False)
    for ax_row, (label, batch) in zip(axes, rows):
        _show_images(ax_row, batch.reshape(-1, *shape))
        ax_row[0].set_ylabel(label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_error_maps(maps: dict, title: str | None = None, image_shape=(28, 28)):
    """Two per-pixel maps (e.g. each model's mean BCE above the floor at each pixel position) on one shared
    colour scale from 0, then their difference, first minus second, on a symmetric red-blue scale.

    maps: {label: (D,) non-negative values}, exactly two entries, D = the product of image_shape.
    Returns the figure."""
    if not isinstance(maps, dict) or len(maps) != 2:
        raise ValueError(f"maps must be a dict with exactly two entries, got {maps!r}")
    size = int(np.prod(image_shape))
    arrays = {}
    for label, values in maps.items():
        array = torch.as_tensor(values).detach().double().reshape(-1).numpy()
        if array.size != size or not np.isfinite(array).all():
            raise ValueError(f"maps[{label!r}] must hold {size} finite values, got {array.size}")
        arrays[label] = array
    (first, a), (second, b) = arrays.items()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.3), layout="constrained")
    top = max(a.max(), b.max(), 1e-12)
    for ax, (label, array) in zip(axes, arrays.items()):
        handle = ax.imshow(array.reshape(image_shape), cmap="magma", vmin=0, vmax=top)
        ax.set(title=label, xticks=[], yticks=[])
    fig.colorbar(handle, ax=axes[:2], shrink=0.8, label="one scale for both")
    difference = a - b
    limit = max(np.abs(difference).max(), 1e-12)
    handle = axes[2].imshow(difference.reshape(image_shape), cmap="bwr", vmin=-limit, vmax=limit)
    axes[2].set(title=f"{first} − {second}\n(red: the first is higher)", xticks=[], yticks=[])
    fig.colorbar(handle, ax=axes[2], shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_feature_comparison(models: dict, n: int = 36, units: dict | None = None, which: str = "encoder",
                            title: str | None = None, firing_frequency: dict | None = None, image_shape=None,
                            colorbar_label: str | None = None, shared_scale: bool = False):
    """Feature images of ``n`` units of each model, one block per model, side by side; each block on its
    own shared colour scale, with a colour bar, or with ``shared_scale`` all blocks on one scale (the 99.5th
    percentile of all their absolute weights) with one colour bar, beside the last block.

    models: {label: model}; units: {label: indices to show}, default the first ``n`` units;
    which: "encoder" or "decoder" weights, as in ``plot_features``; firing_frequency: {label: (H,)}
    to label each tile with how often its unit is active; image_shape and colorbar_label as in ``plot_features``.
    """
    blocks = {}
    for label, model in models.items():
        chosen = list((units or {}).get(label, range(n)))[:n]
        blocks[label] = (feature_images(model, which, image_shape)[chosen],
                         unit_labels(chosen, (firing_frequency or {}).get(label)))
    return _feature_blocks(blocks, n, title, colorbar_label, shared_scale=shared_scale, one_colorbar=shared_scale)


def _feature_blocks(blocks: dict, n: int, title: str | None, colorbar_label: str | None = None,
                    shared_scale: bool = False, one_colorbar: bool = False):
    """Side by side, one ``_feature_grid`` per block: {label: (features (N, h, w), tile labels)}, each
    block laid out for ``n`` tiles on its own colour scale, or with ``shared_scale`` on one scale for all
    blocks (the 99.5th percentile of all their absolute weights); ``one_colorbar``: only the last block
    draws its colour bar (use it with ``shared_scale``)."""
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=((1.2 * cols + 1.3) * len(blocks), 1.2 * rows + 0.8), layout="constrained")
    limit = _shared_scale_limit(f for f, _ in blocks.values()) if shared_scale else None
    for block, (label, (features, labels)) in zip(fig.subfigures(1, len(blocks), squeeze=False)[0], blocks.items()):
        last = label == list(blocks)[-1]
        _feature_grid(block, features, labels, label, colorbar_label, limit=limit, colorbar=last or not one_colorbar)
    if title:
        fig.suptitle(title, y=1.04)
    return fig


SCATTER_LINEAR_BELOW = 1e-3  # plot_beta_comparison's f_j axis: symlog, linear below this share


def plot_beta_comparison(entries: dict, sweep: list, n: int = 16, moving: str = "beta",
                         bce_key: str = "test BCE", x_keys=("units on per digit", "k90 (units)"),
                         threshold: float = 0.5, title: str | None = None, *, xscale="linear",
                         point_label: str | None = None, ylabel: str | None = None, trade_note: str | None = None):
    """Two stored atlas runs side by side, and a sweep's trade-off. Top: the first ``n`` stored decoder
    columns of each entry (the atlas keeps the most often active units, most often first), all on one colour
    scale; ``n=0`` draws no columns, only the bottom row. Bottom left, on log axes (symlog for f_j): each entry's units, f_j (share of
    test digits with y_j > ``threshold``, the atlas's ``firing_frequency``) against rho_hat_j
    (``mean_activation``), with the line f_j = rho_hat_j. Bottom, then: ``bce_key`` against each of ``x_keys`` over the sweep, each point labelled with its value of ``moving``.
    entries: {label: ``atlas.AtlasEntry``} (one or two); sweep: rows of ``atlas.metric_rows`` with seeds=False
    (numbers, not "mean ± std" text), [{moving: value, bce_key: float, x_key: float, ...}, ...].
    xscale: "linear" (default) or "log" for the trade-off panels' x-axes, or one of them per ``x_keys``
    entry, e.g. ("log", "linear"); point_label: the text before each
    point's value (default ``moving``, e.g. "β"); ylabel: their y-axis label (default ``bce_key``, e.g. one
    with the unit); trade_note: text appended to their titles in parentheses (default none, e.g. "seed 0")."""
    scales = (xscale,) * len(x_keys) if isinstance(xscale, str) else tuple(xscale)
    if len(scales) != len(x_keys):
        raise ValueError(f"xscale must be one scale or one per x_keys entry ({len(x_keys)}), got {xscale!r}")
    for scale in scales:
        check_choice("xscale", scale, ("linear", "log"))
    for name, text in (("point_label", point_label), ("ylabel", ylabel), ("trade_note", trade_note)):
        if text is not None and not (isinstance(text, str) and text.strip()):
            raise ValueError(f"{name} must be a non-empty string or None, got {text!r}")
    if not 1 <= len(entries) <= 2:
        raise ValueError(f"entries must hold one or two atlas entries, got {len(entries)}")
    check_int("n", n, low=0)
    threshold = check_number("threshold", threshold, low=0)
    if not sweep or any(not isinstance(row.get(k), (int, float)) for row in sweep for k in (moving, bce_key, *x_keys)):
        raise ValueError(f"sweep must be a non-empty list of rows with numeric {moving!r}, {bce_key!r} and {list(x_keys)!r}")
    if n == 0:  # the bottom row alone
        fig = bottom = plt.figure(figsize=(4.2 * (1 + len(x_keys)), 4.0), layout="constrained")
    else:
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        fig = plt.figure(figsize=(4.2 * (1 + len(x_keys)), 1.15 * rows + 4.6), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.15 * rows + 0.8, 3.6])
        features = {label: torch.as_tensor(np.asarray(e.features[:n], dtype=np.float32))
                    for label, e in entries.items()}
        limit = _shared_scale_limit(features.values())
        for block, (label, entry) in zip(top.subfigures(1, len(entries), squeeze=False)[0], entries.items()):
            _feature_grid(block, features[label], unit_labels(entry.feature_units[:n], entry.firing_frequency),
                          f"{label}: decoder columns", limit=limit)
    scatter, *trade = bottom.subplots(1, 1 + len(x_keys))
    top_value = 0.0
    for (label, entry), marker in zip(entries.items(), ("o", "s")):
        rho_hat, f = np.asarray(entry.mean_activation), np.asarray(entry.firing_frequency)
        scatter.scatter(rho_hat, f, s=8, alpha=0.5, marker=marker, label=label)
        top_value = max(top_value, rho_hat.max(), f.max())
    # rho_hat_j and f_j span decades (a penalised unit sits near 0.08 and 0.02, an unpenalised one near 0.5),
    # so both axes are logarithmic; symlog keeps the units that are never above the threshold (f_j = 0) in view.
    line = np.geomspace(SCATTER_LINEAR_BELOW, 1.05 * top_value, 50)
    scatter.plot(line, line, "k:", label=r"$f_j = \hat\rho_j$")
    scatter.set_xscale("log")
    scatter.set_yscale("symlog", linthresh=SCATTER_LINEAR_BELOW)
    scatter.set_ylim(bottom=0)
    scatter.set(xlabel=r"$\hat\rho_j$: mean code value (test digits, log scale)",
                ylabel=f"$f_j$: share with $y_j > {threshold:g}$ (log scale; linear below {SCATTER_LINEAR_BELOW:g})",
                title="Each unit: how often on against its average")
    scatter.legend(fontsize=8)
    bce = [row[bce_key] for row in sweep]
    for ax, key, scale in zip(trade, x_keys, scales):
        x = [row[key] for row in sweep]
        ax.plot(x, bce, "o-")
        for xi, yi, row in zip(x, bce, sweep):
            ax.annotate(f"{point_label or moving} {row[moving]:g}", (xi, yi), fontsize=7, xytext=(4, -9),
                        textcoords="offset points")
        ax.set(xlabel=key + (" (log scale)" if scale == "log" else ""), ylabel=ylabel or bce_key, xscale=scale,
               title=f"{bce_key} against {key}" + (f" ({trade_note})" if trade_note else ""))
        ax.margins(x=0.12)  # room for the rightmost point's label
    if title:
        fig.suptitle(title)
    return fig


def plot_atlas_gallery(entries: dict, test_images, n_digits: int = 6, n_features: int = 8,
                       shared_scale: bool = False, text_scale: float = 1.0):
    """Atlas entries side by side, one row each: the reconstructions of the first test digit of ``n_digits``
    classes, then the decoder images of the entry's ``n_features`` most often active units.

    entries: {row label: ``atlas.AtlasEntry``}; test_images: the MNIST test digits (uint8), for the top row.
    The features of a row share one colour scale (red +, blue -), saturating at the 99.5th percentile of
    the absolute weights of the entry's 64 stored features (as the explorer does), which the row's label
    states and a narrow colour bar at the row's end draws; with ``shared_scale`` every row uses one scale
    (the largest of the rows' percentiles), drawn as one colour bar. Each feature tile names its unit and
    how often it is active ("unit 17, 6.3%"); each row's label gives the entry's test BCE and k90.
    text_scale (> 0) multiplies the font sizes of the tile titles and row labels (default 1: 7.5 and 8 pt).
    """
    text_scale = check_number("text_scale", text_scale, low=0, low_open=True)
    first = next(iter(entries.values()))
    scales = {label: float(np.quantile(np.abs(entry.features), 0.995)) or 1.0  # the explorer's scale
              for label, entry in entries.items()}
    if shared_scale:
        scales = dict.fromkeys(scales, max(scales.values()))
    digits, _ = first.first_of_each_class(n_digits)
    cols = n_digits + 1 + n_features
    fig, axes = plt.subplots(len(entries) + 1, cols, figsize=(0.95 * cols, 1.3 * (len(entries) + 1) + 0.4),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * n_digits + [0.3] + [1] * n_features})
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for ax, index in zip(axes[0], digits):
        ax.imshow(test_images[int(index)].numpy(), cmap="gray", vmin=0, vmax=255)
    axes[0, 0].set_ylabel("input", fontsize=8)
    for ax in axes[0, n_digits:]:
        ax.set_visible(False)  # the input row has no features
    for row, (label, entry) in zip(axes[1:], entries.items()):
        for ax, image in zip(row, entry.first_of_each_class(n_digits)[1]):
            ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        features = entry.features[:n_features]
        limit = scales[label]
        for ax, unit, image in zip(row[n_digits + 1:], entry.feature_units, features):
            shown = ax.imshow(image, cmap="bwr", vmin=-limit, vmax=limit)
            ax.set_title(unit_labels([unit], entry.firing_frequency)[0].replace(", ", "\n"), fontsize=7.5 * text_scale,
                         pad=1)
        scores = f"test BCE {entry.metrics['bce']:.4f}, $k_{{90}}$ {entry.metrics['units_for_mass']:.0f}"
        row[0].set_ylabel(f"{label}\n{scores}" + ("" if shared_scale else f"\n(colours saturate at ±{limit:.2f})"),
                          fontsize=8 * text_scale, rotation=0, ha="right", va="center")
    height = fig.get_figheight()
    left = 0.12 if shared_scale else 0.2  # room for the row labels (longer when they state each row's scale)
    fig.subplots_adjust(left=left, right=0.92, top=1 - 0.65 / height, bottom=0.01, wspace=0.05, hspace=0.5)
    if not shared_scale:  # each row its own bar, in its own axes beside the row's last tile
        for row in axes[1:]:
            box = row[-1].get_position()
            bar = fig.colorbar(row[-1].images[0], cax=fig.add_axes((0.93, box.y0, 0.015, box.height)),
                               extend="both")
            bar.ax.tick_params(labelsize=8.5)
            bar.set_label("decoder\nweight", fontsize=8.5)
    else:  # in its own axes, so that the feature tiles keep the size of the digit tiles
        top, bottom = axes[1, -1].get_position(), axes[-1, -1].get_position()
        bar = fig.colorbar(shown, cax=fig.add_axes((0.93, bottom.y0, 0.012, top.y1 - bottom.y0)), extend="both")
        bar.set_label(f"decoder weight (saturates at ±{limit:.2f})", fontsize=8)
    from .families import FAMILIES

    shown_as = {"relu": "ReLU", "topk": "TopK"}  # how the activations are written in prose
    rules = "; ".join(f"{shown_as.get(FAMILIES[name].activation, FAMILIES[name].activation)} units: "
                      f"$y_j > {FAMILIES[name].active_threshold:g}$"
                      for name in dict.fromkeys(entry.family for entry in entries.values()))
    digits = "each class" if n_digits >= 10 else f"each of the classes 0–{n_digits - 1}"
    fig.suptitle(f"left: the first test digit of {digits} (top row) and each model's reconstructions; right: the "
                 "decoder images of the model's most often active units\n"
                 f"(red raises the output logit, blue lowers it; % = how often the unit is active; active: {rules})",
                 fontsize=8.5, y=1 - 0.05 / height, va="top")
    return fig


def plot_atlas_errors(entries: dict, test_images, n_digits: int = 10):
    """Reconstruction error maps of atlas entries, one row each: x - x_hat for the first test digit of
    ``n_digits`` classes (both in [0, 1]: the pixels / 255 and the stored uint8 reconstructions / 255), under
    a top row of the inputs. Every error tile uses one colour scale, -1 to +1 (the largest error a pixel can
    have), with one colour bar: red where the reconstruction lacks ink (x > x_hat), blue where it adds ink.
    entries: {row label: ``atlas.AtlasEntry``}, as ``atlas.gallery_entries``; test_images: the MNIST test
    digits (uint8). Each row's label gives the entry's test BCE and FVU (``metrics``)."""
    n_digits = check_int("n_digits", n_digits, low=1)
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"entries must be a non-empty dict {{label: atlas entry}}, got {entries!r}")
    first = next(iter(entries.values()))
    digits, _ = first.first_of_each_class(n_digits)
    inputs = np.stack([np.asarray(test_images[int(i)], dtype=np.float64) / 255 for i in digits])
    fig, axes = plt.subplots(len(entries) + 1, n_digits, figsize=(0.95 * n_digits + 3.4, 1.0 * (len(entries) + 1) + 0.5),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    for ax, image in zip(axes[0], inputs):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_ylabel("input $x$", fontsize=9, rotation=0, ha="right", va="center")
    for row, (label, entry) in zip(axes[1:], entries.items()):
        indices, recon = entry.first_of_each_class(n_digits)
        if not np.array_equal(indices, digits):
            raise ValueError(f"{label}: its stored test digits differ from the first entry's")
        errors = inputs - recon.astype(np.float64) / 255
        for ax, error in zip(row, errors):
            shown = ax.imshow(error, cmap="bwr", vmin=-1, vmax=1)
        m = entry.metrics
        row[0].set_ylabel(f"{label}\ntest BCE {m['bce']:.4f}, FVU {100 * m['fraction_variance_unexplained']:.1f} %",
                          fontsize=9, rotation=0, ha="right", va="center")
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.24, right=0.86, top=1 - 0.55 / height, bottom=0.02, wspace=0.05, hspace=0.12)
    top, bottom = axes[1, -1].get_position(), axes[-1, -1].get_position()
    bar = fig.colorbar(shown, cax=fig.add_axes((0.875, bottom.y0, 0.013, top.y1 - bottom.y0)))
    bar.set_label("$x - \\hat x$ (red: ink missing,\nblue: ink added)", fontsize=8.5)
    fig.suptitle("Reconstruction errors $x - \\hat x$ of the first test digit of each class, one colour scale",
                 fontsize=10, y=1 - 0.1 / height, va="top")
    return fig


LOG_TICKS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


AXIS_LABELS = {"units_for_mass": "units carrying 90 % of a digit's code mass (mean over test digits)",
               "bce": "test BCE (nats per pixel)", "probe_error": "linear-probe test error (fraction of test digits)",
               "l0": "L0: units not exactly zero per digit (mean over test digits)"}


def plot_tradeoff(records: dict, lines: dict, x_key: str = "units_for_mass", y_key: str = "bce",
                  baselines: dict | None = None, label_points: dict | None = None, xlim=None, ylim=None,
                  title: str | None = None, xlabel: str | None = None, reference_errors: dict | None = None,
                  legend_loc: str = "best", star_alpha: float = 1.0, star_size: float = 220,
                  annotate_stars: bool = False, unpenalised_marker: str | None = None,
                  extra_points: dict | None = None, value_format=None, xticks=None, text_size: float = 7,
                  label_offsets: dict | None = None, star_offsets: dict | None = None,
                  extra_lines: dict | None = None, extra_label_offsets: dict | None = None,
                  hollow_unpenalised: bool = False, extra_point_colors: dict | None = None):
    """A test metric (default the BCE) against sparsity for every stored atlas point, on one shared axis.

    records: {family: ``Atlas.records()``}; lines: {family: [(hyperparameter that moves, the values of the
    others it moves at), ...]}: each such line joins the points where one hyperparameter moves, labelled
    with its values (labels alternate above and below the line so that close points stay readable);
    every other point of the family is drawn as a faint dot, and the family's reference setting as a
    star. x_key, y_key: metrics every family has; the default x is the shared yardstick (units carrying
    90 % of a digit's code mass). baselines: {label: y}, drawn as dashed horizontal lines (e.g. the
    raw pixels' probe error, or the BCE floor). label_points: {family: [params, ...]}, the only points
    of that family to label (default all). A label that would overlap one already drawn is left out
    (the legend and a printed table carry the values), unless label_points asked for it: that one moves
    to the other side of its line, and stays even if it still overlaps. xlim, ylim: (low, high) to zoom on a region
    (labels outside it are hidden); title: the axes' title; xlabel: the x axis's label (default the
    metric's name and "log scale"). reference_errors: {family: (x error, y error)}, drawn as error bars on
    that family's reference star (e.g. a seed tolerance); legend_loc: where the legend goes; star_alpha:
    the stars' opacity (below 1 shows a line point the star would hide); star_size: the stars' area in
    points² (matplotlib's ``s``; the legend draws them at the same size); annotate_stars: write "KL ref."
    (the family's name) beside each star. Stars are drawn above their error bars. unpenalised_marker: when
    given (e.g. "D"), the faint other grid points whose penalty weight is 0 are drawn hollow with this marker
    and their own legend entry, apart from the penalised ones. extra_points: {label: (x, y)} or
    {label: (x, y, x error, y error)}, points that are not grid points (e.g. a seed mean of another start),
    drawn as black-edged white diamonds above everything, with error bars when given and a legend entry each.
    value_format: a function value -> text for the point labels (e.g. ``atlas.label``); default one format
    per line ("g", or ".1e" when a non-zero value is below 1e-3). xticks: the labelled x ticks (positive
    numbers; those inside the shown range are drawn), e.g. more labels on a zoom of the log axis; None
    (default) uses the standard log ticks. text_size: font size (points) of the legend and the point labels,
    a positive number (default 7). label_offsets: {family: {(hyperparameter, value): (dx, dy)}}, points:
    those line labels are placed at this offset from their point instead, joined to it by a thin line, and
    are never hidden or moved. star_offsets: {family: (dx, dy)}, points: the same for the "KL ref." names
    of annotate_stars (default (9, 5), without a line). extra_lines: {legend label: [(x, y, point label), ...]},
    lines that are not one family's grid line (e.g. a penalty on another activation), each drawn in the next
    free colour with plus markers, joined in the order given, each point labelled with its text (below right).
    extra_label_offsets: {legend label of extra_lines: {point label: (dx, dy)}}, points: those extra-line labels
    are placed at this offset from their point instead, joined to it by a thin line (default None: all below
    right). hollow_unpenalised: when True, a line's point whose penalty weight is 0 (e.g. L1 at lambda = 0) is
    drawn hollow (white face, edge in the line's colour) above the line; default False (filled like the rest).
    extra_point_colors: {label of extra_points: face colour}, so that two diamonds differ in the legend too
    (default None: every diamond white).
    """
    from .families import FAMILIES

    if value_format is not None and not callable(value_format):
        raise ValueError(f"value_format must be a function value -> text or None, got {value_format!r}")
    if xticks is not None:
        xticks = [check_number("xticks", t, low=0, low_open=True) for t in xticks]
    text_size = check_number("text_size", text_size, low=0, low_open=True)
    offsets = [(f"label_offsets[{f!r}][{k!r}]", o) for f, d in (label_offsets or {}).items() for k, o in d.items()]
    offsets += [(f"extra_label_offsets[{f!r}][{k!r}]", o) for f, d in (extra_label_offsets or {}).items()
                for k, o in d.items()]
    for where, pair in offsets + [(f"star_offsets[{f!r}]", o) for f, o in (star_offsets or {}).items()]:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"{where} must be a pair (dx, dy) of offsets in points, got {pair!r}")
        for part in pair:
            check_number(where, part)

    fig, ax = plt.subplots(figsize=(8.5, 5))
    for f_index, (name, points) in enumerate(records.items()):
        fam, colour = FAMILIES[name], f"C{f_index}"
        symbols = {h.name: h.symbol for h in fam.hyperparameters}
        on_lines = set()
        for l_index, (moving, fixed) in enumerate(lines.get(name, [])):
            chosen = sorted((p for p in points if all(p["params"][k] == v for k, v in fixed.items())),
                            key=lambda p: p["params"][moving])
            on_lines |= {id(p) for p in chosen}
            xs, ys = [p["metrics"][x_key] for p in chosen], [p["metrics"][y_key] for p in chosen]
            where = ", ".join(f"{symbols[k]} = {v:g}" for k, v in fixed.items())
            label = f"{name.upper()}: {symbols[moving]} varies" + (f" ({where})" if where else "")
            (line,) = ax.plot(xs, ys, "o^sv"[l_index % 4] + "-", color=colour, label=label,
                              alpha=1 - 0.35 * l_index, zorder=2)
            if hollow_unpenalised and moving == fam.weight:
                zero = [(x, y) for p, x, y in zip(chosen, xs, ys) if p["params"][moving] == 0]
                if zero:
                    ax.scatter(*zip(*zero), marker="o^sv"[l_index % 4], s=line.get_markersize() ** 2,
                               facecolor="white", edgecolor=colour, linewidths=1.5, zorder=3,
                               alpha=line.get_alpha()).set_gid("unpenalised")
            wanted = (label_points or {}).get(name)
            spec = _label_format([p["params"][moving] for p in chosen])
            for i, (p, x, y) in enumerate(zip(chosen, xs, ys)):
                if p["params"] == fam.reference() or (wanted is not None and p["params"] not in wanted):
                    continue  # the star and the legend name the reference
                value = p["params"][moving]
                shown = value_format(value) if value_format is not None else (format(value, spec) if value else "0")
                text = f"{symbols[moving]}={shown}" + (
                    " (no penalty)" if moving == fam.weight and value == 0 else "")
                # each line keeps its labels on one side (the first right, the next left), above the line
                # where it falls to the right and below where it rises, so that the line does not cross them
                right = l_index % 2 == 0
                neighbours = chosen[max(i - 1, 0):i + 2]
                falls = (neighbours[-1]["metrics"][y_key] - neighbours[0]["metrics"][y_key]) * \
                        (neighbours[-1]["metrics"][x_key] - neighbours[0]["metrics"][x_key]) < 0
                offset = (4 if right else -4, 6 if falls == right else -10)
                placed = (label_offsets or {}).get(name, {}).get((moving, value))
                if placed is not None:  # an offset asked for: a thin line to the point, never moved
                    note = ax.annotate(text, (x, y), textcoords="offset points", xytext=placed, fontsize=text_size,
                                       color=line.get_color(), ha="left" if placed[0] >= 0 else "right",
                                       va="center", arrowprops=dict(arrowstyle="-", color=line.get_color(), lw=0.7,
                                                                    shrinkA=1, shrinkB=4))
                    note.set_gid("star")
                    continue
                note = ax.annotate(text, (x, y), textcoords="offset points", xytext=offset, fontsize=text_size,
                                   color=line.get_color(), ha="left" if right else "right")
                note.set_gid("asked for" if wanted is not None else None)  # kept even where it overlaps
        others = [p for p in points if id(p) not in on_lines]
        if unpenalised_marker is not None:
            unpenalised = [p for p in others if p["params"].get(fam.weight) == 0]
            others = [p for p in others if p["params"].get(fam.weight) != 0]
            if unpenalised:
                ax.scatter([p["metrics"][x_key] for p in unpenalised], [p["metrics"][y_key] for p in unpenalised],
                           s=18, marker=unpenalised_marker, facecolor="none", edgecolor=colour, alpha=0.5, zorder=1,
                           label=f"{name.upper()}: other grid points, no penalty")
        if others:
            ax.scatter([p["metrics"][x_key] for p in others], [p["metrics"][y_key] for p in others], s=10,
                       color=colour, alpha=0.25, zorder=1, label=f"{name.upper()}: other grid points")
        reference = [p for p in points if p["params"] == fam.reference()]
        for p in reference:
            x, y = p["metrics"][x_key], p["metrics"][y_key]
            ax.scatter([x], [y], marker="*", s=star_size, color=colour, edgecolor="black", zorder=5, alpha=star_alpha,
                       label=f"{name.upper()} reference")
            if annotate_stars:
                placed = (star_offsets or {}).get(name)
                ax.annotate(f"{name.upper()} ref.", (x, y), textcoords="offset points", xytext=placed or (9, 5),
                            fontsize=8, fontweight="bold", color=colour, zorder=6,
                            ha="right" if placed is not None and placed[0] < 0 else "left",
                            arrowprops=None if placed is None else dict(arrowstyle="-", color=colour, lw=0.7,
                                                                        shrinkA=1, shrinkB=6)).set_gid("star")
            if name in (reference_errors or {}):
                x_error, y_error = reference_errors[name]
                ax.errorbar(x, y, xerr=x_error, yerr=y_error, color="black",
                            capsize=3, lw=1, zorder=4)
    for l_index, (label, points) in enumerate((extra_lines or {}).items()):
        if not isinstance(points, (list, tuple)) or not points or any(
                not isinstance(p, (list, tuple)) or len(p) != 3 for p in points):
            raise ValueError(f"extra_lines[{label!r}] must be a non-empty list of (x, y, point label), got {points!r}")
        colour = f"C{len(records) + l_index}"
        xs, ys = [check_number("extra_lines x", p[0]) for p in points], [check_number("extra_lines y", p[1]) for p in points]
        ax.plot(xs, ys, "P-", color=colour, label=label, zorder=3)
        moved = (extra_label_offsets or {}).get(label, {})
        for x, y, text in points:
            if text in moved:  # an offset asked for: a thin line to the point, never hidden
                dx, dy = moved[text]
                ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=text_size,
                            color=colour, ha="left" if dx >= 0 else "right", va="center",
                            arrowprops=dict(arrowstyle="-", color=colour, lw=0.7, shrinkA=1, shrinkB=4)).set_gid("star")
                continue
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=text_size, color=colour)
    for label, point in (extra_points or {}).items():
        x, y, *errors = point
        if errors:
            ax.errorbar(x, y, xerr=errors[0], yerr=errors[1], color="black", capsize=3, lw=1, zorder=6)
        face = (extra_point_colors or {}).get(label, "white")
        ax.scatter([x], [y], marker="D", s=45, facecolor=face, edgecolor="black", zorder=7, label=label)
    for label, y in (baselines or {}).items():
        ax.axhline(y, ls="--", color="0.3", lw=1, label=label)
    ax.margins(x=0.12, y=0.08)  # room for the labels of the outermost points
    ax.set(xscale="log", xlabel=xlabel or f"{AXIS_LABELS.get(x_key, x_key.replace('_', ' '))} (log scale)",
           ylabel=AXIS_LABELS.get(y_key, y_key.replace("_", " ")), title=title or "")
    if xlim is not None:
        ax.set_xlim(xlim)
    if ylim is not None:
        ax.set_ylim(ylim)
    for text in ax.texts:
        text.set_clip_on(True)  # a zoom hides the labels of the points it leaves out
    low, high = ax.get_xlim()
    ax.set_xticks([t for t in (LOG_TICKS if xticks is None else xticks) if low <= t <= high], minor=False)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=text_size, ncol=2, loc=legend_loc)
    fig.tight_layout()
    stars = [(p["metrics"][x_key], p["metrics"][y_key]) for name, points in records.items() for p in points
             if p["params"] == FAMILIES[name].reference()]
    _drop_overlapping_labels(fig, ax, stars)
    return fig


TRADEOFF_VIEWS = {
    "all points": {"ylim": (0.056, 0.108), "legend_loc": "upper right"},
    "zoom": {"xlim": (70, 360), "ylim": (0.064, 0.092), "legend_loc": "upper left", "xticks": (80, 100, 150, 200, 300)},
}


def plot_tradeoff_views(records: dict, lines: dict, views=("all points", "zoom"), view_options: dict | None = None,
                        **kwargs) -> list:
    """The MNIST atlas's trade-off figure (``plot_tradeoff``) once per view, with a fixed layout: the axis limits,
    legend place and x ticks of ``TRADEOFF_VIEWS[view]``, stars of area 90 points² annotated "KL ref." / "L1 ref."
    (offset (-14, -16) points for KL), text size 9, unpenalised points hollow squares, the x axis labelled
    "$k_{90}$, mean over the test digits; log scale", and the KL label of (rho, 0.32) moved off the stars'
    bars. Each figure's title is "Test BCE against $k_{90}$ (<view>); stars ± one KL − L1 tolerance".
    records, lines: as ``plot_tradeoff``; views: names in ``TRADEOFF_VIEWS``, one figure each; kwargs: any
    further ``plot_tradeoff`` argument (baselines, label_points, extra_points, reference_errors, ...), which
    also overrides a layout default of the same name; view_options: {view: {argument: value}}, overrides for that
    view's figure alone (e.g. {"zoom": {"ylim": (0.064, 0.104)}}), applied last. Returns the list of figures,
    one per view, in order."""
    views = (views,) if isinstance(views, str) else tuple(views)
    unknown = [v for v in views if v not in TRADEOFF_VIEWS]
    if not views or unknown:
        raise ValueError(f"views must be a non-empty sequence of {sorted(TRADEOFF_VIEWS)}; got {views!r}")
    view_options = {} if view_options is None else view_options
    if not isinstance(view_options, dict) or any(v not in views or not isinstance(o, dict) for v, o in view_options.items()):
        raise ValueError(f"view_options must be a dict {{view: {{argument: value}}}} over the views drawn {views}; "
                         f"got {view_options!r}")
    layout = {"star_size": 90, "annotate_stars": True, "text_size": 9, "unpenalised_marker": "s",
              "label_offsets": {"kl": {("rho", 0.32): (8, 16)}}, "star_offsets": {"kl": (-14, -16)},
              "xlabel": "$k_{90}$, mean over the test digits; log scale"}
    figures = []
    for view in views:
        options = {**layout, **TRADEOFF_VIEWS[view],
                   "title": f"Test BCE against $k_{{90}}$ ({view}); stars ± one KL − L1 tolerance", **kwargs,
                   **view_options.get(view, {})}
        figures.append(plot_tradeoff(records, lines, **options))
    return figures


KL_L1_TRADEOFF_LABELS = {"kl": [{"rho": 0.08, "beta": b} for b in (0.0, 0.15)] + [{"rho": r, "beta": 0.005} for r in (0.01, 0.32)],
                         "l1": [{"lam": q} for q in (0.0, 1e-5, 6.4e-4)]}
KL_L1_TRADEOFF_VIEWS = {
    "all points": {"ylim": (0.05, 0.156), "title": "Test BCE against $k_{90}$, every atlas point",
                   "label_offsets": {"kl": {("rho", 0.32): (8, 16), ("beta", 0.15): (10, 4)},
                                     "l1": {("lam", 0.0): (14, -16), ("lam", 1e-5): (-66, -16)}},
                   "label_points": {"kl": KL_L1_TRADEOFF_LABELS["kl"][1:], "l1": KL_L1_TRADEOFF_LABELS["l1"]},
                   "extra_label_offsets": {"L1 on sigmoid codes: λ varies": {"λ=1.0e-03": (8, 6), "λ=4.0e-03": (8, 4)}}},
    "zoom": {"ylim": (0.064, 0.086), "xlim": (60, 400), "baselines": None, "xticks": (60, 100, 200, 400),
             "title": "Test BCE against $k_{90}$, zoom", "star_offsets": {"kl": (-14, -22)},
             "label_points": {"kl": KL_L1_TRADEOFF_LABELS["kl"], "l1": [{"lam": q} for q in (0.0, 1e-5, 2e-5, 8e-5)]},
             "label_offsets": {"kl": {("rho", 0.32): (8, 16), ("beta", 0.15): (-62, 2)},
                               "l1": {("lam", 2e-5): (4, 10), ("lam", 1e-5): (6, -12)}},
             "extra_label_offsets": {"L1 on sigmoid codes: λ varies": {"λ=0": (6, -14), "λ=1.0e-04": (0, 14),
                                                                       "λ=2.5e-04": (6, 12), "λ=5.0e-04": (6, 12)}}},
}


def plot_kl_l1_tradeoff(records: dict, lines: dict, sigmoid_l1: list, floor: float,
                        sigmoid_label: str = "L1 on sigmoid codes: λ varies", tolerance: dict | None = None) -> list:
    """Notebook 03's trade-off figures: ``plot_tradeoff_views`` (views "all points" and "zoom") with the label
    placement of ``KL_L1_TRADEOFF_VIEWS``, the points of ``KL_L1_TRADEOFF_LABELS`` labelled (in the first view
    all but KL's beta = 0, whose label would cross the stars; the legend names hollow points), unpenalised points hollow, the BCE floor as a baseline in the first view, the L1-on-sigmoid-codes runs as one
    extra line, and each legend beside its plot (upper left, outside the axes). records, lines: as
    ``plot_tradeoff``; sigmoid_l1: atlas records of L1 on sigmoid codes (each with "params"["lam"] and "metrics"
    with "units_for_mass" and "bce"), drawn in the order given with labels "λ=0" or "λ=<lam:.1e>"; floor: the BCE
    floor, a positive number; tolerance: None (default, no error bars) or {"units_for_mass": x, "bce": y}, one
    KL - L1 tolerance per axis, drawn as a ± error cross on both stars and named in each title. Returns the two
    figures."""
    floor = check_number("floor", floor, low=0, low_open=True)
    extra = {}
    if tolerance is not None:
        if not isinstance(tolerance, dict) or not {"units_for_mass", "bce"} <= set(tolerance):
            raise ValueError(f"tolerance must be None or a dict with 'units_for_mass' and 'bce', got {tolerance!r}")
        bars = (check_number("tolerance k90", tolerance["units_for_mass"], low=0),
                check_number("tolerance bce", tolerance["bce"], low=0))
        extra["reference_errors"] = {"kl": bars, "l1": bars}
    if not isinstance(sigmoid_l1, (list, tuple)) or not sigmoid_l1 or any(
            "lam" not in q.get("params", {}) or not {"units_for_mass", "bce"} <= set(q.get("metrics", {}))
            for q in sigmoid_l1):
        raise ValueError("sigmoid_l1 must be a non-empty list of records with params['lam'] and metrics "
                         "'units_for_mass' and 'bce'")
    line = [(q["metrics"]["units_for_mass"], q["metrics"]["bce"],
             f"λ={q['params']['lam']:.1e}" if q["params"]["lam"] else "λ=0") for q in sigmoid_l1]
    figures = plot_tradeoff_views(records, lines, label_points=KL_L1_TRADEOFF_LABELS,
                                  baselines={"BCE floor (section 2)": floor}, extra_lines={sigmoid_label: line},
                                  view_options=copy.deepcopy(KL_L1_TRADEOFF_VIEWS), hollow_unpenalised=True, **extra)
    for figure in figures:
        if tolerance is not None:
            axis = figure.axes[0]
            axis.set_title(f"{axis.get_title()}; stars ± one KL − L1 tolerance")
        figure.axes[0].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1))
    return figures


SHORT_LABELS = {"units_for_mass": "$k_{90}$: units for 90 %\nof a digit's code mass", "bce": "test BCE\n(nats per pixel)",
                "dead_fraction": "dead fraction", "active_units_per_digit": "active units per digit",
                "probe_error": "linear-probe error", "l0": "L0 per digit"}


def plot_along(records: dict, lines: dict, keys=("bce", "units_for_mass"), spread: dict | None = None,
               n_spreads: float = 3.0, band_label: str | None = None, ylims: dict | None = None,
               log_keys=(), ylabels: dict | None = None):
    """How test metrics move along each slider: one column per line (a hyperparameter that moves, the others
    fixed, as in ``plot_tradeoff``), one row per metric in ``keys``; the x axis is the moving value on a log
    scale, with 0 (no penalty) drawn as a hollow marker left of a break. records: {family:
    ``Atlas.records()``}; lines: {family: [(moving, {fixed: value}), ...]}; spread: {family: {key: std}}
    (e.g. from ``atlas.seed_spread``) draws a band of ± ``n_spreads`` std around the family's reference;
    band_label: how the title names the band (default "reference ± {n_spreads:.3g} seed std"); ylims: {key:
    (low, high)}, that row's y range: a point outside it is drawn as a triangle on the panel's edge (pointing
    the way it lies) with its value written beside it; log_keys: metrics (of ``keys``, positive) whose rows get
    a log y axis; ylabels: {key: text}, that row's y label in place of the default (default None: the short
    labels)."""
    from .families import FAMILIES

    if ylabels is not None and not isinstance(ylabels, dict):
        raise ValueError(f"ylabels must be None or a dict {{key: text}}, got {ylabels!r}")
    unknown = [key for key in log_keys if key not in keys]
    if isinstance(log_keys, str) or unknown:
        raise ValueError(f"log_keys must be a sequence of names from keys {tuple(keys)}, got {log_keys!r}")

    columns = [(name, moving, fixed) for name, family_lines in lines.items() for moving, fixed in family_lines]
    fig, axes = plt.subplots(len(keys), len(columns), figsize=(3.3 * len(columns), 2.4 * len(keys) + 0.3),
                             squeeze=False, sharex="col")
    for c, (name, moving, fixed) in enumerate(columns):
        fam = FAMILIES[name]
        symbols = {h.name: h.symbol for h in fam.hyperparameters}
        chosen = sorted((p for p in records[name] if all(p["params"][k] == v for k, v in fixed.items())),
                        key=lambda p: p["params"][moving])
        positive = [p["params"][moving] for p in chosen if p["params"][moving] > 0]
        zero_at = min(positive) / 4 if positive else 1.0  # where a value of 0 is drawn, left of a break
        xs = [p["params"][moving] or zero_at for p in chosen]
        reference = fam.reference()
        for r, key in enumerate(keys):
            ax = axes[r, c]
            ys = [p["metrics"][key] for p in chosen]
            ax.plot([x for x, p in zip(xs, chosen) if p["params"][moving] > 0],
                    [y for y, p in zip(ys, chosen) if p["params"][moving] > 0], "o-", color=f"C{c}")
            for x, y, p in zip(xs, ys, chosen):
                if p["params"][moving] == 0:
                    ax.plot([x], [y], "o", mfc="white", color=f"C{c}")
                if p["params"] == reference:
                    ax.plot([x], [y], "*", ms=14, color=f"C{c}", mec="black")
                    std = (spread or {}).get(name, {}).get(key)
                    if std:
                        ax.axhspan(y - n_spreads * std, y + n_spreads * std, color="0.85", zorder=0)
            if key in (ylims or {}):
                _mark_off_scale(ax, xs, ys, ylims[key], f"C{c}")
            ax.set_xscale("log")
            if key in log_keys:
                ax.set_yscale("log")
                for axis_set in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
                    axis_set(LogFormatter(labelOnlyBase=False))
                ax.tick_params(axis="y", which="both", labelsize=7)
            if positive and zero_at in xs:
                ax.axvline(zero_at * 2, color="0.6", lw=0.8, ls=":")
            default_label = SHORT_LABELS.get(key, key.replace("_", " "))
            ax.set_ylabel((ylabels or {}).get(key, default_label) if c == 0 else "", fontsize=8)
            ax.tick_params(labelsize=7)
        where = ", ".join(f"{symbols[k]} = {v:g}" for k, v in fixed.items())
        axes[0, c].set_title(f"{fam.title}: {symbols[moving]} varies" + (f" ({where})" if where else ""), fontsize=9)
        has_zero = any(p["params"][moving] == 0 for p in chosen)
        axes[-1, c].set_xlabel(f"{symbols[moving]} (log scale" + (
            f";\nhollow: {symbols[moving]} = 0 at a nominal x, left of the dotted break)" if has_zero else ")"),
            fontsize=8)
    band = f"; grey band: {band_label or f'reference ± {n_spreads:.3g} seed std'}" if spread else ""
    fig.suptitle(f"test metrics along each slider (star: the reference{band})", fontsize=10)
    fig.tight_layout()
    return fig


def _mark_off_scale(ax, xs, ys, limits, colour) -> None:
    """Set the y range to ``limits`` and draw each point outside it as a triangle on the edge, with its value."""
    low, high = limits
    ax.set_ylim(low, high)
    for x, y in zip(xs, ys):
        if low <= y <= high:
            continue
        above = y > high
        edge = high if above else low
        ax.plot([x], [edge], "^" if above else "v", color=colour, ms=8, clip_on=False, zorder=5)
        ax.annotate(f"{y:.3g}", (x, edge), textcoords="offset points", xytext=(-6, -10 if above else 4),
                    ha="right", fontsize=7, color=colour)


def _label_format(values) -> str:
    """One number format for all the labels of a line: "g", or ".1e" ("1.6e-04") when a non-zero value is
    below 1e-3, where "g" would mix "8e-05" with "0.00016"."""
    return ".1e" if any(0 < abs(v) < 1e-3 for v in values) else "g"


def _drop_overlapping_labels(fig, ax, markers=(), marker_radius: float = 9.0) -> None:
    """Hide each value label that overlaps a label drawn before it, the legend, or one of the large
    ``markers`` (data coordinates; a square of ``marker_radius`` pixels around each): first come, first kept.
    A label whose gid is "asked for" is never hidden: it moves to the other side of its point instead; one whose
    gid is "star" (a marker's own name) is placed first and never moved."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    kept = [ax.get_legend().get_window_extent(renderer)] if ax.get_legend() else []
    kept += [Bbox.from_extents(px - marker_radius, py - marker_radius, px + marker_radius, py + marker_radius)
             for px, py in ax.transData.transform(np.array(markers).reshape(-1, 2))]
    for text in sorted(ax.texts, key=lambda t: t.get_gid() != "star"):
        box = text.get_window_extent(renderer)
        if text.get_gid() == "star":
            kept.append(box)
            continue
        if any(box.overlaps(other) for other in kept):
            if text.get_gid() != "asked for":
                text.set_visible(False)
                continue
            dx, dy = text.xyann
            text.xyann = (dx, -4 - dy)  # above <-> below: 6 points above <-> 10 below, as plot_tradeoff places them
            box = text.get_window_extent(renderer)
        kept.append(box)


# --- mosaics: many small images as one PNG, fast enough for the explorer's every redraw ----------------

def tile(images: np.ndarray, cols: int, gap: int = 2, fill: float = 0.5) -> np.ndarray:
    """(N, h, w) -> one 2-D mosaic, row by row, ``cols`` per row, ``gap`` pixels of ``fill`` between."""
    n, h, w = images.shape
    rows = -(-n // cols)
    mosaic = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), fill, dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        mosaic[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = image
    return mosaic


def to_png(array: np.ndarray, cmap: str = "gray", vmin: float = 0.0, vmax: float = 1.0, scale: int = 2) -> bytes:
    """A 2-D float array as PNG bytes, each value a ``scale`` x ``scale`` block (sharp when enlarged).

    Values are mapped linearly from [vmin, vmax] to the 256 colours of ``cmap`` and stored as a
    palette image: a third of the size of an RGBA one, which matters in a saved notebook.
    """
    levels = np.clip(np.rint((array - vmin) / (vmax - vmin) * 255), 0, 255).astype(np.uint8)
    big = np.repeat(np.repeat(levels, scale, axis=0), scale, axis=1)
    palette = np.rint(plt.get_cmap(cmap)(np.arange(256))[:, :3] * 255).astype(np.uint8)
    image = PIL.Image.frombytes("P", (big.shape[1], big.shape[0]), big.tobytes())
    image.putpalette(palette.ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def reconstructions_png(inputs: np.ndarray, reconstructions: np.ndarray) -> bytes:
    """Inputs (N, h, w) in [0, 1] in a top row above their reconstructions (N, h, w), as one PNG."""
    return to_png(tile(np.concatenate([inputs, reconstructions]), cols=len(inputs)))


FEATURE_TILE_GAP, FEATURE_TILE_SCALE = 2, 2     # features_png: pixels between tiles; PNG pixels per weight


def feature_tile_corners(n: int, picture_width: int, picture_height: int) -> list[tuple[int, int]]:
    """The (x, y) pixel of the top-left corner of each of the ``n`` tiles in a picture of
    (picture_width, picture_height) pixels drawn by ``features_png``, in tile order (row by row,
    ceil(sqrt(n)) tiles per row)."""
    cols = math.ceil(math.sqrt(n))
    pitch_x = (picture_width // FEATURE_TILE_SCALE + FEATURE_TILE_GAP) // cols * FEATURE_TILE_SCALE
    pitch_y = (picture_height // FEATURE_TILE_SCALE + FEATURE_TILE_GAP) // math.ceil(n / cols) * FEATURE_TILE_SCALE
    return [(c * pitch_x, r * pitch_y) for r, c in (divmod(i, cols) for i in range(n))]


def features_png(features: np.ndarray, never_active=None) -> tuple[bytes, float]:
    """Feature images (N, h, w) on one shared colour scale, red +, blue -, as one PNG, and the scale's end:
    the 99.5th percentile of the absolute weights (larger ones saturate). never_active: (N,) bools, the
    tiles of units that are active on no input, drawn washed out in grey (they add nothing to any
    reconstruction, whatever their weights). ``feature_tile_corners`` gives where each tile lies."""
    limit = float(np.quantile(np.abs(features), 0.995)) or 1.0
    cols, gap, scale = math.ceil(math.sqrt(len(features))), FEATURE_TILE_GAP, FEATURE_TILE_SCALE
    mosaic = tile(features, cols=cols, gap=gap, fill=0.0)
    if never_active is None or not np.any(never_active):
        return to_png(mosaic, cmap="bwr", vmin=-limit, vmax=limit, scale=scale), limit
    rgb = plt.get_cmap("bwr")(np.clip((mosaic + limit) / (2 * limit), 0, 1))[..., :3]
    h, w = features.shape[1:]
    for i in np.flatnonzero(never_active):
        r, c = divmod(int(i), cols)
        block = rgb[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w]
        block[:] = 0.2 * block + 0.8 * 0.7        # washed out towards grey 0.7
    big = np.repeat(np.repeat(np.rint(rgb * 255).astype(np.uint8), scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    PIL.Image.fromarray(big, "RGB").save(buffer, format="png", optimize=True)
    return buffer.getvalue(), limit


def _percent_label(share: float, _position=None) -> str:
    """A share on a log axis as a percentage: 0.001 -> "0.1%", 0.01 -> "1%", 1 -> "100%"."""
    return f"{100 * share:.10g}%"


def plot_penalty_shapes(rho: float, unit_means: dict, weight_ratio: float | None = None, x_min=None,
                        tick_alpha=0.4, tick_width: float | None = None, rug: bool = False):
    """The KL and the L1 penalty per unit of weight against one unit's mean code value rho_hat_j (left), and their
    slopes d(penalty / weight) / d rho_hat_j (right), on a log x axis. KL: KL(rho || rho_hat), slope
    (1 - rho) / (1 - rho_hat) - rho / rho_hat, zero at rho (a dotted line); L1: rho_hat itself, slope 1 (for
    non-negative codes the L1 penalty is the sum of the unit means). rho: the KL target, in (0, 1).
    unit_means: {"kl": (H,) sigmoid unit means, "l1": (H,) ReLU unit means} (tensors or arrays, e.g.
    ``code.mean(dim=0)`` over the test digits); each family's living means (> 0) are drawn as ticks in a strip
    of their own below the left panel's curves, with a legend entry, and the L1 curve spans the living L1
    means. weight_ratio: beta / lambda, named in the title (the heights are per unit of weight and not
    comparable), or None. x_min: where the KL curves start: None (default) 1e-3; a number in (0, 1); or "means",
    the smallest living unit mean drawn (either family), so that the KL curves span every tick; when given, the
    legend goes to the upper centre, clear of the longer KL curve. tick_alpha: the ticks' opacity in (0, 1], one
    number or {"kl": a, "l1": b} (default 0.4; lower shows where many ticks pile up instead of a solid block; the
    legend draws them at least at 0.4). tick_width: the ticks' line width in points (default None: matplotlib's).
    rug: False (default) draws the ticks in a grey strip below zero on the left panel's axis; True draws them in a
    thin axis of their own under the left panel (shared x, one row per family), so the penalty axis stays
    non-negative, and the legend shows solid tick markers. Returns the figure."""
    from .penalties import kl_divergence

    rho = check_number("rho", rho, low=0, high=1, low_open=True, high_open=True)
    if not isinstance(unit_means, dict) or set(unit_means) != {"kl", "l1"}:
        raise ValueError(f"unit_means must be a dict with keys 'kl' and 'l1', got {unit_means!r}")
    means = {}
    for name, values in unit_means.items():
        values = torch.as_tensor(np.asarray(values), dtype=torch.float64).reshape(-1)
        if values.numel() == 0 or not torch.isfinite(values).all() or (values < 0).any():
            raise ValueError(f"unit_means[{name!r}] must be finite non-negative unit means, got {values}")
        means[name] = values[values > 0]
    if means["l1"].numel() == 0 or (means["kl"] >= 1).any():
        raise ValueError("unit_means['l1'] needs a living unit and unit_means['kl'] values below 1")
    if weight_ratio is not None:
        weight_ratio = check_number("weight_ratio", weight_ratio, low=0, low_open=True)
    if not isinstance(tick_alpha, dict):
        tick_alpha = {"kl": tick_alpha, "l1": tick_alpha}
    if set(tick_alpha) != {"kl", "l1"}:
        raise ValueError(f"tick_alpha must be a number or a dict with keys 'kl' and 'l1', got {tick_alpha!r}")
    tick_alpha = {n: check_number(f"tick_alpha[{n!r}]", a, low=0, high=1, low_open=True) for n, a in tick_alpha.items()}
    legend_loc = "best" if x_min is None else "upper center"
    if tick_width is not None:
        tick_width = check_number("tick_width", tick_width, low=0, low_open=True)
    if x_min is None:
        x_min = 1e-3
    elif isinstance(x_min, str):
        if x_min != "means":
            raise ValueError(f"x_min must be None, a number in (0, 1) or 'means', got {x_min!r}")
        x_min = min(m.min().item() for m in means.values() if m.numel())
    else:
        x_min = check_number("x_min", x_min, low=0, high=1, low_open=True, high_open=True)
    x_min = min(x_min, 10 ** -0.01)
    q_kl = torch.logspace(math.log10(x_min), -0.005, 400, dtype=torch.float64)  # a sigmoid unit's mean lies in (0, 1)
    q_l1 = torch.logspace(means["l1"].min().log10().item(), means["l1"].max().log10().item(), 400, dtype=torch.float64)
    panels = {"penalty / weight": (kl_divergence(rho, q_kl), q_l1),
              "d(penalty / weight) / d$\\hat\\rho_j$": ((1 - rho) / (1 - q_kl) - rho / q_kl, torch.ones_like(q_l1))}
    if rug:
        fig = plt.figure(figsize=(10, 4.2))
        grid = fig.add_gridspec(2, 2, height_ratios=(5, 1), hspace=0.08)
        axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[:, 1])]
        rug_ax = fig.add_subplot(grid[1, 0], sharex=axes[0])
    else:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (what, (kl_curve, l1_curve)) in zip(axes, panels.items()):
        ax.plot(q_kl.numpy(), kl_curve.numpy(), color="C0", label=rf"KL: $\mathrm{{KL}}(\rho\,\|\,\hat\rho_j)$, $\rho$ = {rho:g}")
        ax.plot(q_l1.numpy(), l1_curve.numpy(), color="C1", label=r"L1: $\hat\rho_j$")
        ax.axvline(rho, color="grey", linestyle=":")
        ax.set(xscale="log", xlabel=r"unit mean $\hat\rho_j$ (log scale)", ylabel=what, title=what)
    tick_ax = rug_ax if rug else axes[0]
    for name, y, colour in (("kl", 1.0, "C0"), ("l1", 0.0, "C1")) if rug else (("kl", -0.1, "C0"), ("l1", -0.22, "C1")):
        living = means[name].numpy()   # the ticks: in a rug axis of their own, or in a strip below zero
        tick_ax.plot(living, np.full(len(living), y), "|", color=colour, alpha=tick_alpha[name],
                     **({} if tick_width is None else {"markeredgewidth": tick_width}), label=f"ticks: the {name.upper()} reference's unit means")
    if rug:
        rug_ax.set(ylim=(-0.7, 1.7), yticks=(1.0, 0.0), yticklabels=("KL", "L1"), xlabel=axes[0].get_xlabel())
        axes[0].set(xlabel="", ylim=(0, 1.5))
        axes[0].tick_params(labelbottom=False)
    else:
        axes[0].axhspan(-0.3, -0.03, color="0.93", zorder=0)
        axes[0].set_ylim(-0.3, 1.5)
    axes[1].set(ylim=(-2, 2), xlim=axes[0].get_xlim())
    axes[1].axhline(0, color="black", linewidth=0.5)
    handles = [a + b for a, b in zip(axes[0].get_legend_handles_labels(), rug_ax.get_legend_handles_labels())] if rug else []
    legend = axes[0].legend(*handles, fontsize=8, loc=legend_loc)
    for handle in legend.legend_handles[2:]:   # the ticks' entries stay visible however faint the ticks
        handle.set_alpha(1.0 if rug else max(handle.get_alpha(), 0.4))
        if rug:
            handle.set_markeredgewidth(1.5)
    ratio = "" if weight_ratio is None else f": $\\beta/\\lambda$ = {weight_ratio:.0f}"
    fig.suptitle(f"KL has its minimum at $\\rho$ (dotted), L1 pushes down at one rate. Ticks ({'below the left panel' if rug else 'grey strip'}): the "
                 f"reference models' unit means.\nHeights are per unit of weight and not comparable{ratio}")
    if rug:
        fig.subplots_adjust(top=0.8, wspace=0.3)
    else:
        fig.tight_layout()
    return fig


def plot_unit_statistics(mean_activation: np.ndarray, firing_frequency: np.ndarray, rho: float | None = None,
                         title: str | None = None, threshold: float | None = None):
    """Two histograms over the hidden units: the mean code value y_bar_j over the evaluated digits (the
    test set in the explorer; rho_hat_j is the minibatch mean inside the KL penalty), with the target rho, if any,
    and, on a log scale, how often each unit is active (the feature density of the interpretability
    papers). Units that are never active are counted in the second panel's title, not drawn; so are, in
    the first panel, units whose mean activation is exactly 0 (dead ReLU units), which would otherwise
    be one bar that flattens the rest. threshold: the family's rule for "active" (code > threshold),
    written on the axis."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.8))
    silent = mean_activation == 0
    left.hist(mean_activation[~silent], bins=40, color="C0")
    if silent.any():
        left.set_title(f"{silent.sum()} of {len(mean_activation)} units with $\\bar y_j = 0$ not drawn", fontsize=9)
    if rho is not None:
        left.axvline(rho, color="C3", ls="--", label=f"target ρ = {rho:g}")
        left.legend(fontsize=8)
    left.set(xlabel=r"$\bar y_j$: mean code value over the digits", ylabel="units")
    alive = firing_frequency[firing_frequency > 0]
    if len(alive):
        # bins equally wide on the log axis, from the rarest living unit (or 1 %) to "every digit"
        right.hist(alive, bins=np.logspace(min(np.log10(alive.min()), -2), 0, 31), color="C2")
    right.set_xscale("log")
    right.xaxis.set_major_formatter(FuncFormatter(_percent_label))
    rule = "active" if threshold is None else f"with $y_j > {threshold:g}$"
    right.set(xlabel=f"share of test digits {rule} (log scale)", ylabel="units",
              title=f"{len(firing_frequency) - len(alive)} of {len(firing_frequency)} units never active")
    right.title.set_fontsize(9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.82, wspace=0.25)  # fixed: tight_layout costs 0.1 s
    return fig


def _value_range(low: float, high: float) -> str:
    """"low–high" with the fewest significant digits (3 to 6) that tell them apart and round each by less
    than a hundredth of their distance: "0.99951–0.99999", not "0.9995–1"; equal values: "all 1.0000"."""
    if low == high:
        return f"all {low:.4f}"
    tolerance = (high - low) / 100
    for digits in range(3, 7):
        a, b = f"{low:.{digits}g}", f"{high:.{digits}g}"
        if a != b and abs(float(a) - low) <= tolerance and abs(float(b) - high) <= tolerance:
            break
    return f"{a}–{b}"


def plot_feature_dashboards(features: np.ndarray, dashboards: dict, images, units, title: str | None = None,
                            image_shape=None):
    """One row per unit: its decoder image, its top activating inputs (3 x 3), its activation histogram.

    features: (U, h, w) or (U, D) the units' decoder images; dashboards: ``metrics.unit_dashboards`` of
    those units (top_digits index ``images``); images: the inputs those indices refer to (uint8 or
    [0, 1], (N, D) or image-shaped); units: the unit numbers, for the titles. The histogram counts the
    unit's active values on a log scale; its title gives how often the unit is active. Each decoder image
    has its own symmetric colour scale (red +, blue −), ending at its largest absolute weight.
    """
    x = prepare_images(images).numpy()
    features = np.asarray(features)
    shape = drawn_shape(int(np.prod(features.shape[1:])), image_shape)
    fig, axes = plt.subplots(len(units), 3, figsize=(7.6, 2.1 * len(units)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.6]})
    for row, unit in enumerate(units):
        feature = features[row].reshape(shape)
        limit = float(np.abs(feature).max()) or 1.0
        decoder_ax, top_ax, hist_ax = axes[row]
        shown = decoder_ax.imshow(feature, cmap="bwr", vmin=-limit, vmax=limit)
        decoder_ax.set_title(f"unit {unit}: decoder image", fontsize=8)
        bar = fig.colorbar(shown, ax=decoder_ax, fraction=0.046, pad=0.03)  # its own symmetric scale
        bar.ax.tick_params(labelsize=7)
        bar.set_label("weight (red +, blue −)", fontsize=7.5)
        top = x[dashboards["top_digits"][row]].reshape(-1, *shape)
        top_ax.imshow(tile(top, cols=3), cmap="gray", vmin=0, vmax=1)
        values = dashboards["top_values"][row]
        top_ax.set_title(f"top {len(top)} inputs (activations {_value_range(values.min(), values.max())})", fontsize=8)
        for ax in (decoder_ax, top_ax):
            ax.set_xticks([]), ax.set_yticks([])
        edges, counts = dashboards["edges"][row], dashboards["histogram"][row]
        if counts.sum() > 0:
            hist_ax.stairs(counts, edges, fill=True, color="C0")
            hist_ax.set_yscale("log")
            hist_ax.set_ylim(bottom=0.8)
        else:
            hist_ax.text(0.5, 0.5, "never active: a dead unit", ha="center", va="center", transform=hist_ax.transAxes)
        frequency = 100 * float(dashboards["firing_frequency"][row])
        hist_ax.set_title(f"active on {frequency:.1f}% of inputs", fontsize=8)
        hist_ax.set_xlabel("activation when active", fontsize=8)
        hist_ax.set_ylabel("inputs (log scale)", fontsize=8)
        hist_ax.tick_params(labelsize=7)
    height = 2.1 * len(units)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / height)
    # fixed margins, in inches: tight_layout would cost the explorer 0.1 s a redraw
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.55 / height, bottom=0.45 / height, wspace=0.3,
                        hspace=0.55)
    return fig


def plot_unit_evidence(top_images, differences, decoder, units, firing_frequency=None, title: str | None = None,
                       difference_label: str = "mean of the top inputs\nminus the mean input"):
    """What turns a few units on beside what they draw, one column per unit. Top row: the unit's top
    inputs (the ones with its largest code values), tiled 3 x 3 in grey. Middle row: the mean of its top
    inputs minus the mean input (red: more ink than average, blue: less). Bottom row: its decoder column.
    The middle and the bottom row each share one symmetric colour scale (``_scale_limit``: colours
    saturate beyond the 99.5th percentile), each with its colour bar.

    top_images: (U, 9, h, w) floats in [0, 1], largest code value first; differences, decoder: (U, h, w)
    (or (U, h * w) with square images); units: the U unit numbers; firing_frequency: (H,) the share of
    inputs on which each unit is on, for the titles (``unit_labels``); difference_label: the middle row's label,
    e.g. one that says how many top inputs were averaged."""
    top_images = torch.as_tensor(np.asarray(top_images, dtype=np.float32))
    if top_images.dim() != 4 or top_images.shape[1] != 9:
        raise ValueError(f"top_images must have shape (U, 9, h, w), got {tuple(top_images.shape)}")
    n, shape = len(top_images), tuple(top_images.shape[2:])
    rows = {name: torch.as_tensor(np.asarray(images, dtype=np.float32)).reshape(-1, *shape)
            for name, images in ((difference_label, differences),
                                 ("decoder column", decoder))}
    if any(len(images) != n for images in rows.values()) or len(units) != n:
        raise ValueError(f"top_images, differences, decoder and units must all hold {n} units")
    fig, axes = plt.subplots(3, n, figsize=(1.45 * n + 1.4, 4.9), squeeze=False, layout="constrained")
    for ax, images, label in zip(axes[0], top_images, unit_labels(units, firing_frequency)):
        ax.imshow(tile(images.numpy(), cols=3), cmap="gray", vmin=0, vmax=1)
        ax.set_title(label, fontsize=9)
    axes[0, 0].set_ylabel("top 9 inputs", fontsize=9)
    for row, (name, images) in zip(axes[1:], rows.items()):
        limit = _scale_limit(images)
        for ax, image in zip(row, images):
            shown = ax.imshow(image.numpy(), cmap="bwr", vmin=-limit, vmax=limit)
        row[0].set_ylabel(name, fontsize=9)
        bar = fig.colorbar(shown, ax=row.tolist(), shrink=0.9, extend="both")
        bar.ax.tick_params(labelsize=8)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig

SLIDER_LINES = {"kl": [("rho", {"beta": 0.005}), ("beta", {"rho": 0.08})], "l1": [("lam", {})]}


def plot_sliders(records: dict, spread: dict | None = None):
    """Notebook 04's slider figure: ``plot_along`` on the three series through the references
    (``SLIDER_LINES``: KL ρ at β = 0.005, KL β at ρ = 0.08, L1 λ), rows test BCE, k90 and active units per
    digit (log y axis), with a band of reference ± 4√2 σ_max. records: {"kl": ``Atlas.records()``, "l1": ...};
    spread: {family: {"bce": σ_max, "units_for_mass": σ_max}} (default None: no band). Returns the figure
    (3 rows × 3 columns of axes)."""
    if not isinstance(records, dict) or set(records) != set(SLIDER_LINES):
        raise ValueError(f"records must be a dict with keys {sorted(SLIDER_LINES)}, got {records!r:.80}")
    return plot_along(records, SLIDER_LINES, keys=("bce", "units_for_mass", "active_units_per_digit"),
                      ylims={"bce": (0.064, 0.084), "units_for_mass": (0, 350)},
                      log_keys=("active_units_per_digit",), spread=spread, n_spreads=4 * 2 ** 0.5,
                      band_label="reference ± 4√2 σ_max (test BCE, k90)",
                      ylabels={"active_units_per_digit": "active units per digit\n(KL: y > 0.5; L1: y > 0)"})


def plot_live_units(curves: dict, steps_per_epoch: int, title: str | None = None, n_units: int = 512):
    """Live units against Adam steps, one line per run, on a symlog step axis (linear from 0 to 1,
    logarithmic beyond). curves: {name: (steps, live units)} with equally long sequences. Returns the figure."""
    if not isinstance(curves, dict) or not curves:
        raise ValueError(f"curves must be a non-empty dict of name: (steps, live units), got {curves!r:.80}")
    check_int("steps_per_epoch", steps_per_epoch)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, (steps, n_live) in curves.items():
        if len(steps) != len(n_live):
            raise ValueError(f"{name}: {len(steps)} steps but {len(n_live)} live-unit counts")
        ax.plot(steps, n_live, "o-", ms=3, label=name)
    ax.set_xscale("symlog", linthresh=1)
    ax.set(xlabel=f"Adam steps (symlog axis; {steps_per_epoch} steps per epoch)",
           ylabel=f"live units (of {n_units})", ylim=(0, 1.035 * n_units), title=title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


# Notebook 04's trade-off figure: where its labels go, so that the lesson cell holds no layout offsets.
EXPLORER_TRADEOFF_LABELS = {"kl": {("beta", 0.0): (8, -14), ("rho", 0.32): (6, 8), ("beta", 0.0015): (18, -30),
                                   ("beta", 0.015): (30, -2)},
                            "l1": {("lam", 0.0): (6, -14)}}
EXPLORER_STAR_OFFSETS = {"kl": (-46, -16)}
EXPLORER_SEEDS_OFFSETS = ((-34, 14), (14, -26))  # the "n seeds" names of the warm-up crosses, in order


def plot_explorer_tradeoff(records: dict, lines: dict, warm_up: dict, title: str | None = None,
                           xticks=None, seeds_offsets=None):
    """Notebook 04's figure: ``plot_tradeoff`` with named stars, its line labels placed clear of the KL star,
    and extra crosses for runs at other seeds. warm_up: {legend label: [(x, y), ...]}, one cross per seed;
    the first cross of each is named "<n> seeds" in its own colour, joined to it by a thin line (the first
    group's name above left, the second's below right). xticks: the labelled x ticks, as ``plot_tradeoff``
    (default None: its standard log ticks). seeds_offsets: one (dx, dy) in points per warm_up group, in order,
    for its "<n> seeds" name (default None: ``EXPLORER_SEEDS_OFFSETS``, taken in turn)."""
    if seeds_offsets is not None and len(seeds_offsets) != len(warm_up):
        raise ValueError(f"seeds_offsets must hold one (dx, dy) per warm_up group ({len(warm_up)}), "
                         f"got {len(seeds_offsets)}")
    crosses, names = {}, {}
    for index, (label, points) in enumerate(warm_up.items()):
        if not points:
            raise ValueError(f"warm_up[{label!r}] must hold at least one (x, y) point")
        crosses[label] = [(x, y, f"{len(points)} seeds" if i == 0 else "") for i, (x, y) in enumerate(points)]
        offset = (EXPLORER_SEEDS_OFFSETS[index % len(EXPLORER_SEEDS_OFFSETS)] if seeds_offsets is None
                  else tuple(seeds_offsets[index]))
        names[label] = {f"{len(points)} seeds": offset}
    return plot_tradeoff(records, lines, annotate_stars=True, extra_lines=crosses, extra_label_offsets=names,
                         star_offsets=EXPLORER_STAR_OFFSETS, label_offsets=EXPLORER_TRADEOFF_LABELS, title=title,
                         xticks=xticks)


def plot_sorted_code(values, threshold: float, k: int, title: str | None = None):
    """One input's code values, largest first, against their rank (1 = largest): dots, the 'on' threshold as a
    dotted line and the rank ``k`` (e.g. the input's k90) as a dashed line. values: (H,) code values in any order."""
    values = np.sort(np.asarray(values, dtype=float).ravel())[::-1]
    if values.size == 0:
        raise ValueError("values must hold at least one code value, got none")
    threshold = check_number("threshold", threshold)
    k = check_int("k", k)
    if k > values.size:
        raise ValueError(f"k must be a rank in [1, {values.size}] (the number of values), got {k}")
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(np.arange(1, len(values) + 1), values, ".", ms=3, label=f"its {len(values)} code values, largest first")
    ax.axhline(threshold, color="k", ls=":", label=f"'on' above {threshold:g}")
    ax.axvline(k, color="C3", ls="--", label=f"rank {k}: the first {k} carry 90 % of the sum")
    ax.set(xlabel="rank", ylabel="$y_j$", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_stored_features(entries: dict, n: int = 36, title: str | None = None, colorbar_label: str | None = None):
    """Stored decoder columns of atlas runs side by side, all on one colour scale with one colour bar.

    entries: {label: ``atlas.AtlasEntry``} (at least one); each block shows the entry's first ``n`` stored
    columns (the atlas keeps its most often active units, most often first), each tile labelled with its unit
    and how often it is on (the entry's ``firing_frequency``). colorbar_label as in ``plot_features``."""
    if not entries:
        raise ValueError("entries must hold at least one atlas entry, got none")
    n = check_int("n", n, low=1)
    blocks = {}
    for label, entry in entries.items():
        if n > len(entry.features):
            raise ValueError(f"n must be at most the {len(entry.features)} stored columns of {label!r}, got {n}")
        features = torch.as_tensor(np.asarray(entry.features[:n], dtype=np.float32))
        blocks[label] = (features, unit_labels(entry.feature_units[:n], entry.firing_frequency))
    return _feature_blocks(blocks, n, title, colorbar_label, shared_scale=True, one_colorbar=True)
