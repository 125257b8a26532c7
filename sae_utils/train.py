"""The training loop: minibatches drawn from tensors in memory, Adam, BCE + weight * penalty.

``train(TrainConfig())`` is the reference setup (Adam, lr 9e-3, 20 epochs, batch 1200; KL rho 0.08,
beta 0.005; L1 lam 4e-5) on all 60,000 MNIST training digits, evaluated on the 10,000 test digits.

An epoch costs about 1.25 times its matrix products alone on a 2-core CPU (benchmarks/train_speed.py):
batches are taken from the uint8 digits in memory, the loss is computed without torch's slow log1p
kernel, Adam takes one fused step, and each step synchronises once.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checks import check_choice, check_int, check_number, check_rho
from .data import as_float, flat_images, load_mnist
from .files import atomic_torch_save, safe_torch_load
from .model import SparseAutoencoder
from .penalties import PENALTIES, mean_bce_with_logits, objective

HISTORY_KEYS = ("epoch", "train_objective", "train_bce", "train_penalty", "test_bce")


@dataclass
class TrainConfig:
    """Hyperparameters; the defaults are the published reference setup.

    penalty: "kl" (sigmoid codes, weight beta, target rho) or "l1" (ReLU codes, weight lam).
    device: "cpu", "cuda" or "auto" (CUDA when available).
    """

    penalty: str = "kl"
    rho: float = 0.08
    beta: float = 0.005
    lam: float = 4e-5
    lr: float = 9e-3
    epochs: int = 20
    batch_size: int = 1200
    n_hidden: int = 512
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        check_choice("penalty", self.penalty, PENALTIES)
        self.rho = check_rho(self.rho)
        self.beta = check_number("beta", self.beta, low=0)
        self.lam = check_number("lam", self.lam, low=0)
        self.lr = check_number("lr", self.lr, low=0, low_open=True)
        self.epochs = check_int("epochs", self.epochs)
        self.batch_size = check_int("batch_size", self.batch_size)
        self.n_hidden = check_int("n_hidden", self.n_hidden)
        self.seed = check_int("seed", self.seed, low=0)
        check_choice("device", self.device, ("cpu", "cuda", "auto"))

    @property
    def weight(self) -> float:
        """The penalty's weight: beta for KL, lam for L1."""
        return self.beta if self.penalty == "kl" else self.lam

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite. ``model`` holds the weights of the last good step."""

    def __init__(self, message: str, model, history: dict):
        super().__init__(message)
        self.model, self.history = model, history


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available; use device='cpu' or 'auto'")
    return torch.device(name)


def new_history() -> dict:
    """Per-epoch lists (epoch numbers count from 1) and whether training was interrupted."""
    return {**{key: [] for key in HISTORY_KEYS}, "interrupted": False}


def train(config: TrainConfig | None = None, train_images=None, test_images=None, *,
          checkpoint=None, resume: bool = False, progress: bool = True):
    """Train a sparse autoencoder; return ``(model, history)``.

    train_images / test_images: uint8 (N, 28, 28) or floats in [0, 1] (see ``flat_images``);
    default: the MNIST training and test sets. ``checkpoint``: a path written after every epoch;
    with ``resume=True`` an existing checkpoint is continued (its config must match).
    Ctrl-C stops training and returns the model and the history of the completed epochs, with
    ``history["interrupted"] = True``. A NaN or infinite loss raises ``TrainingDivergedError``.
    """
    config = config if config is not None else TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config = TrainConfig(**config.as_dict())  # checks again fields changed after construction (sliders)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=PATH, the file to continue from")
    device = resolve_device(config.device)
    # uint8 digits stay uint8 and each batch is converted when taken: a quarter of the memory
    x_train = flat_images(load_mnist("train")[0] if train_images is None else train_images, "train_images")
    x_test = flat_images(load_mnist("test")[0] if test_images is None else test_images, "test_images")
    if config.batch_size > len(x_train):
        raise ValueError(f"batch_size must be at most the number of training images ({len(x_train)}), "
                         f"got {config.batch_size}")
    x_train, x_test = x_train.to(device), x_test.to(device)

    torch.manual_seed(config.seed)
    model = SparseAutoencoder.for_penalty(config.penalty, config.n_hidden, config.rho).to(device)
    optimizer = _new_adam(model, config.lr)
    shuffler = torch.Generator().manual_seed(config.seed)
    history = new_history()
    if resume and Path(checkpoint).exists():
        history = load_checkpoint(checkpoint, config, model, optimizer, shuffler, len(x_train))

    n_batches = math.ceil(len(x_train) / config.batch_size)
    start_epoch = len(history["epoch"])
    bar = tqdm(total=(config.epochs - start_epoch) * n_batches, disable=not progress,
               desc=f"{config.penalty.upper()} autoencoder", unit="batch")
    try:
        for epoch in range(start_epoch + 1, config.epochs + 1):
            means = _train_epoch(model, optimizer, x_train, config, shuffler, epoch, bar, history)
            _record_epoch(history, epoch, means, _test_bce(model, x_test, config.batch_size))
            bar.set_postfix(loss=f"{means[0]:.4f}", test_bce=f"{history['test_bce'][-1]:.4f}")
            if checkpoint is not None:
                save_checkpoint(checkpoint, config, model, optimizer, shuffler, history, len(x_train))
    except KeyboardInterrupt:
        history["interrupted"] = True
        warnings.warn(f"training interrupted after {len(history['epoch'])} complete epochs; "
                      "returning the model and history so far", stacklevel=2)
    finally:
        bar.close()
    return model, history


def _train_epoch(model, optimizer, x_train, config, shuffler, epoch, bar, history):
    """One pass over x_train in shuffled minibatches; returns the mean (objective, bce, penalty)."""
    model.train()
    n = len(x_train)
    order = torch.randperm(n, generator=shuffler).to(x_train.device)
    totals = [0.0, 0.0, 0.0]
    for batch, start in enumerate(range(0, n, config.batch_size), start=1):
        xb = as_float(x_train.index_select(0, order[start:start + config.batch_size]))
        logits, code = model(xb)
        loss, bce, pen = objective(logits, code, xb, penalty=config.penalty, rho=config.rho, weight=config.weight)
        values = torch.stack((loss, bce, pen)).tolist()  # the step's one synchronisation
        if not math.isfinite(values[0]):
            raise TrainingDivergedError(
                f"training diverged: the loss became {values[0]} at epoch {epoch}, batch {batch}. "
                f"The weights of the last good step are kept (error.model). Try a smaller learning rate "
                f"(lr={config.lr:g}) or a smaller penalty weight (={config.weight:g}).", model, history)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for i, value in enumerate(values):
            totals[i] += value * len(xb)
        bar.update()
    return [total / n for total in totals]


@torch.no_grad()
def _test_bce(model, x_test, batch_size: int) -> float:
    """Mean BCE over x_test, computed a batch at a time: no 30 MB temporaries to allocate every epoch."""
    model.eval()
    total = sum(mean_bce_with_logits(model(xb)[0], xb) * len(xb)
                for xb in map(as_float, x_test.split(batch_size)))
    return total.item() / len(x_test)


def _new_adam(model, lr: float) -> torch.optim.Optimizer:
    """Adam with its fused one-kernel step where this torch has it for the device (CPU: torch >= 2.4)."""
    params = list(model.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(params, lr=lr)


def _record_epoch(history, epoch, means, test_bce):
    for key, value in zip(HISTORY_KEYS, (epoch, *means, test_bce)):
        history[key].append(value)


def save_checkpoint(path, config, model, optimizer, shuffler, history, n_train: int) -> None:
    """Everything needed to continue training exactly, written atomically; loadable with weights_only."""
    atomic_torch_save({"config": config.as_dict(), "n_train": n_train, "model": model.state_dict(),
                       "optimizer": optimizer.state_dict(), "shuffler": shuffler.get_state(),
                       "history": history}, path)


def load_checkpoint(path, config, model, optimizer, shuffler, n_train: int) -> dict:
    """Restore model, optimizer and shuffler state in place from ``path``; return the history."""
    state = safe_torch_load(path)
    needed = {"config", "model", "optimizer", "shuffler", "history"}
    if not isinstance(state, dict) or not needed <= state.keys():
        raise ValueError(f"{path} is not a sae_utils training checkpoint: it must hold {', '.join(sorted(needed))}")
    saved = {k: v for k, v in state["config"].items() if k not in ("device", "epochs")}
    wanted = {k: v for k, v in config.as_dict().items() if k not in ("device", "epochs")}
    if saved != wanted:
        raise ValueError(f"checkpoint {path} was written for a different config: {saved}, not {wanted}")
    if state.get("n_train") != n_train:
        raise ValueError(f"checkpoint {path} was written for {state.get('n_train')} training images, not {n_train}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    shuffler.set_state(state["shuffler"])
    return state["history"]


# The losses the published reference setup reported (per-pixel BCE-based, see the README).
PUBLISHED_LOSSES = {"kl": {"train": 0.0862, "test": 0.0771}, "l1": {"train": 0.0809, "test": 0.07757}}
