"""Figures: loss curves, inputs above reconstructions, feature images, histogram of rho_hat_j, and the
comparisons of notebook 03 (two models side by side, the hyperparameter sweep).

Each function returns a matplotlib Figure and draws nothing else; notebooks display it, the CLI saves it.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, ScalarFormatter
import torch

from .data import prepare_images


def drawn_shape(n_values: int, shape=None) -> tuple[int, int]:
    """The (height, width) to draw an input of ``n_values`` values as: ``shape`` if given, else (s, s) with
    s * s = n_values. Anything else is a ValueError naming the values and what is needed."""
    if shape is not None:
        if (not isinstance(shape, (tuple, list)) or len(shape) != 2
                or not all(isinstance(v, int) and v >= 1 for v in shape) or shape[0] * shape[1] != n_values):
            raise ValueError(f"image_shape must be (height, width) with height * width = {n_values}, got {shape!r}")
        return tuple(shape)
    side = math.isqrt(n_values)
    if side * side != n_values:
        raise ValueError(f"inputs of {n_values} values are not square images; pass image_shape=(height, width) "
                         f"with height * width = {n_values}")
    return side, side


def plot_loss_curves(history: dict, published: dict | None = None, title: str = "Loss per epoch"):
    """Training objective, training BCE and test BCE against the epoch; published losses as dashed lines."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = history["epoch"]
    ax.plot(epochs, history["train_objective"], "o-", label="train objective (BCE + weight·penalty)")
    ax.plot(epochs, history["train_bce"], "s-", label="train BCE")
    ax.plot(epochs, history["test_bce"], "^-", label="test BCE")
    for split, style in (("train", "C0"), ("test", "C2")):
        if published and split in published:
            ax.axhline(published[split], color=style, ls="--", lw=1, label=f"published {split} loss")
    ax.set(xlabel="epoch", ylabel="loss per pixel", title=title, yscale="log")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _show_images(axes, images, cmap="gray", symmetric=False):
    for ax, img in zip(axes, images):
        limit = img.abs().max().item() if symmetric else 1.0
        ax.imshow(img.cpu().numpy(), cmap=cmap, vmin=-limit if symmetric else 0, vmax=limit)
        ax.set_xticks([]), ax.set_yticks([])


def plot_reconstructions(model, images, n: int = 10, title: str | None = None, image_shape=None):
    """The first ``n`` of ``images`` (top row) above the model's reconstructions (bottom row).

    image_shape: (height, width) of one input; default (s, s) where the model's input size is s * s.
    """
    shape = drawn_shape(model.n_input, image_shape)
    x = prepare_images(images[:n], n_input=model.n_input).to(next(model.parameters()).device)
    x_hat = model.reconstruct(x)
    fig, axes = plt.subplots(2, len(x), figsize=(1.1 * len(x), 2.4), squeeze=False)
    _show_images(axes[0], x.reshape(-1, *shape))
    _show_images(axes[1], x_hat.reshape(-1, *shape))
    axes[0, 0].set_ylabel("input x"), axes[1, 0].set_ylabel(r"$\hat{x}$")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


FEATURE_KINDS = ("encoder", "decoder")


def feature_images(model, which: str = "encoder", image_shape=None) -> torch.Tensor:
    """(n_hidden, height, width): encoder rows (the pattern that drives a unit) or decoder columns (what
    it draws); (28, 28) on MNIST, see ``drawn_shape`` for other inputs."""
    if which not in FEATURE_KINDS:
        raise ValueError(f"which must be 'encoder' or 'decoder', got {which!r}")
    weights = model.encoder.weight if which == "encoder" else model.decoder.weight.T  # (H, D) either way
    return weights.detach().reshape(model.n_hidden, *drawn_shape(model.n_input, image_shape))


def _chosen_features(model, n, units, which, image_shape=None):
    images = feature_images(model, which, image_shape)
    return images[:n] if units is None else images[list(units)[:n]]


def plot_features(model, n: int = 64, title: str | None = None, units=None, which: str = "encoder",
                  image_shape=None):
    """Weights of hidden units as images (red +, blue -, each unit scaled to its own largest value).

    ``units``: indices of the units to show (e.g. only the living ones); default the first ``n``.
    ``which``: "encoder" (default, the input pattern that drives each unit) or "decoder" (what it draws).
    ``image_shape``: (height, width) of one input; default (s, s) where the input size is s * s.
    """
    features = _chosen_features(model, n, units, which, image_shape)
    cols = math.ceil(math.sqrt(len(features)))
    rows = math.ceil(len(features) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols, 0.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    _show_images(axes.flat, features, cmap="bwr", symmetric=True)
    fig.suptitle(title or f"Features of {len(features)} hidden units ({which} weights)")
    fig.tight_layout()
    return fig


@torch.no_grad()
def plot_activation_histogram(model, images, rho: float | None = None, title: str | None = None):
    """Histogram over hidden units of rho_hat_j, the mean activation of unit j over ``images``."""
    x = prepare_images(images).to(next(model.parameters()).device)
    rho_hat = model.encode(x).mean(dim=0).cpu().numpy()
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(rho_hat, bins=40, color="C0")
    if rho is not None:
        ax.axvline(rho, color="C3", ls="--", label=f"target ρ = {rho:g}")
        ax.legend()
    ax.set(xlabel="mean activation ρ̂_j of a hidden unit", ylabel="number of units",
           title=title or "Mean activation per hidden unit")
    fig.tight_layout()
    return fig


def plot_reconstruction_comparison(models: dict, images, n: int = 10, title: str | None = None):
    """The first ``n`` of ``images`` (top row) above each model's reconstructions (one row per model).

    models: {row label: model}.
    """
    x = prepare_images(images[:n])
    rows = [("input x", x)] + [(f"{name} $\\hat{{x}}$", model.reconstruct(x.to(next(model.parameters()).device)).cpu())
                               for name, model in models.items()]
    fig, axes = plt.subplots(len(rows), len(x), figsize=(1.1 * len(x), 1.15 * len(rows) + 0.3), squeeze=False)
    for ax_row, (label, batch) in zip(axes, rows):
        _show_images(ax_row, batch.reshape(-1, 28, 28))
        ax_row[0].set_ylabel(label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_feature_comparison(models: dict, n: int = 36, units: dict | None = None, which: str = "encoder",
                            title: str | None = None):
    """Feature images of ``n`` units of each model, one block per model, side by side.

    models: {label: model}; units: {label: indices to show}, default the first ``n`` units;
    which: "encoder" or "decoder" weights, as in ``plot_features``.
    """
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=(0.85 * cols * len(models) + 0.3 * (len(models) - 1), 0.85 * rows + 0.5))
    blocks = fig.subfigures(1, len(models), squeeze=False)[0]
    for block, (label, model) in zip(blocks, models.items()):
        features = _chosen_features(model, n, (units or {}).get(label), which)
        axes = block.subplots(rows, cols, squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        _show_images(axes.flat, features, cmap="bwr", symmetric=True)
        block.suptitle(label)
    if title:
        fig.suptitle(title, y=1.04)
    return fig


SWEEP_KNOB_LABELS = {"rho": "ρ varies (β = 0.005)", "beta": "β varies (ρ = 0.08)", "lam": "λ varies"}
SWEEP_LABEL_OFFSETS = {"rho": [(-5, -11)], "beta": [(5, 4)], "lam": [(5, 4), (-5, -11)]}  # off the lines
SWEEP_TICKS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


def plot_sweep(results: dict, x_key: str = "active_units_per_digit"):
    """Test BCE against a sparsity measure for each series of a sweep (``sae_utils.sweep`` results).

    Two panels, KL (sigmoid codes) and L1 (ReLU codes), because "active" means y > 0.5 for the one
    and y > 0 for the other. Each line joins the points where one knob moves, labelled with its values.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    panels = {"kl": axes[0], "l1": axes[1]}
    series = {}
    for point in results["points"]:
        series.setdefault((point["penalty"], point["knob"]), []).append(point)
    for index, ((penalty, knob), points) in enumerate(series.items()):
        ax = panels[penalty]
        points = sorted(points, key=lambda p: p["value"])
        xs = [p["metrics"][x_key] for p in points]
        ys = [p["metrics"]["bce"] for p in points]
        (line,) = ax.plot(xs, ys, "o^sv"[index % 4] + "-", color=f"C{index}", label=SWEEP_KNOB_LABELS.get(knob, knob))
        offsets = SWEEP_LABEL_OFFSETS.get(knob, [(5, 4)])
        for i, (p, x, y) in enumerate(zip(points, xs, ys)):
            dx, dy = offsets[i % len(offsets)]
            ax.annotate(f"{p['value']:g}", (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                        ha="left" if dx > 0 else "right", color=line.get_color())
    for penalty, ax in panels.items():
        rule = "y > 0.5" if penalty == "kl" else "y > 0"
        ax.set(xscale="log", xlabel=f"{x_key.replace('_', ' ')} (active: {rule})",
               title=f"{penalty.upper()} penalty")
        low, high = ax.get_xlim()
        ax.set_xticks([t for t in SWEEP_TICKS if low <= t <= high], minor=False)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8)
    axes[0].set_ylabel("test BCE per pixel")
    fig.tight_layout()
    return fig
