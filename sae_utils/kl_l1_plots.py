"""Two figures of notebook 03 (KL against L1), kept out of the lesson cells: per-pixel error maps of two
models with their difference, and training BCE beside the weighted penalty of several runs.

Each function returns a matplotlib Figure and draws nothing else.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


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


def plot_bce_and_penalty(runs: dict, title: str | None = None):
    """Per epoch, each run's training BCE (left) and, for runs with a penalty, its weighted penalty (right),
    both on log axes. runs: {label: (history, weight)}: history holds equal-length lists "train_bce" and
    "train_penalty" (an atlas entry's ``history``); weight: beta or lambda, 0 for a run without a penalty
    (drawn dashed, left panel only). Returns the figure."""
    if not isinstance(runs, dict) or not runs:
        raise ValueError(f"runs must be a non-empty dict, got {runs!r}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    for index, (label, (history, weight)) in enumerate(runs.items()):
        if weight < 0:
            raise ValueError(f"runs[{label!r}]: the weight must be >= 0, got {weight!r}")
        bce = np.asarray(history["train_bce"], dtype=np.float64)
        epochs = np.arange(1, len(bce) + 1)
        style = dict(color=f"C{index}", ls="-" if weight > 0 else "--", label=label)
        left.plot(epochs, bce, **style)
        if weight > 0:
            penalty = np.asarray(history["train_penalty"], dtype=np.float64)
            if penalty.shape != bce.shape:
                raise ValueError(f"runs[{label!r}]: train_penalty and train_bce differ in length")
            right.plot(epochs, weight * penalty, **style)
    left.set(yscale="log", xlabel="epoch", ylabel="nats per pixel", title="training BCE (log scale)")
    right.set(yscale="log", xlabel="epoch", ylabel="nats per pixel", title="weighted penalty, β·KL or λ·L1 (log scale)")
    left.legend(fontsize=8)
    if right.lines:
        right.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
