"""Figures: loss curves, inputs above reconstructions, feature images, histogram of rho_hat_j.

Each function returns a matplotlib Figure and draws nothing else; notebooks display it, the CLI saves it.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from .data import prepare_images


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
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _show_images(axes, images, cmap="gray", symmetric=False):
    for ax, img in zip(axes, images):
        limit = img.abs().max().item() if symmetric else 1.0
        ax.imshow(img.cpu().numpy(), cmap=cmap, vmin=-limit if symmetric else 0, vmax=limit)
        ax.set_xticks([]), ax.set_yticks([])


def plot_reconstructions(model, images, n: int = 10, title: str | None = None):
    """The first ``n`` of ``images`` (top row) above the model's reconstructions (bottom row)."""
    x = prepare_images(images[:n]).to(next(model.parameters()).device)
    x_hat = model.reconstruct(x)
    fig, axes = plt.subplots(2, len(x), figsize=(1.1 * len(x), 2.4), squeeze=False)
    _show_images(axes[0], x.reshape(-1, 28, 28))
    _show_images(axes[1], x_hat.reshape(-1, 28, 28))
    axes[0, 0].set_ylabel("input x"), axes[1, 0].set_ylabel("x̂")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_features(model, n: int = 64, title: str | None = None):
    """Encoder weights of the first ``n`` hidden units as 28x28 images (red +, blue -, each unit scaled)."""
    features = model.feature_images()[:n]
    cols = math.ceil(math.sqrt(len(features)))
    rows = math.ceil(len(features) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols, 0.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    _show_images(axes.flat, features, cmap="bwr", symmetric=True)
    fig.suptitle(title or f"Features of {len(features)} hidden units (encoder weights)")
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
