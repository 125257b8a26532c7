"""Command line: ``python -m sae_utils train --penalty kl`` (or l1, or ``topk --k 25``) and ``python -m sae_utils evaluate kl``."""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from .data import flat_images, load_mnist
from .families import DEFAULT, HYPERPARAMETERS, family
from .files import safe_torch_load, sha256_file
from .metrics import evaluate
from .pretrained import PRETRAINED_DIR, PRETRAINED_NAMES, load_model, save_model
from .train import PUBLISHED_LOSSES, TrainConfig, TrainingDivergedError, train


class Parser(argparse.ArgumentParser):
    """argparse, but a malformed command line gets one line of error instead of the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m sae_utils", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("train", help="train a sparse autoencoder (reference setup by default)")
    for f in dataclasses.fields(TrainConfig):  # one flag per config field: --penalty, --rho, ..., --batch-size
        default = f"; default {f.default}" if f.default is not None and f.name != "penalty" else ""
        t.add_argument(f"--{f.name.replace('_', '-')}", type=f.metadata.get("type", type(f.default)), default=None,
                       choices=f.metadata.get("choices"), help=f"{f.metadata['help']}{default}")
    t.add_argument("--data", type=Path, default=None,
                   help="train on your own (N, D) array: a .npy file or a .pt file holding one tensor; uint8, "
                        "or floats in [0, 1] (default: the 60,000 MNIST training digits)")
    t.add_argument("--test-data", type=Path, default=None,
                   help="the test set for --data, same D (default: the last tenth of --data)")
    t.add_argument("--train-size", type=int, default=None,
                   help="train on the first N training inputs only (default: all)")
    t.add_argument("--out", type=Path, default=None, help="output folder (default: runs/PENALTY)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    e = commands.add_parser("evaluate", help="evaluate a pretrained model and compare with the published losses")
    e.add_argument("name", choices=PRETRAINED_NAMES)
    e.add_argument("--dir", type=Path, default=PRETRAINED_DIR, help="folder with NAME.json and NAME.pt")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run_train(args) if args.command == "train" else run_evaluate(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, PermissionError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except TrainingDivergedError as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def train_config(args) -> TrainConfig:
    """The config of the flags given (the others at their defaults); a hyperparameter flag of another
    family (``--penalty topk --beta 0.01``) is refused even at its reference value."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    fam = family(given.get("penalty", DEFAULT))
    for name in given.keys() & HYPERPARAMETERS.keys() - {h.name for h in fam.hyperparameters}:
        uses = ", ".join(f"--{h.name}" for h in fam.hyperparameters)
        raise ValueError(f"--{name} does not apply to --penalty {fam.name} (it takes {uses}"
                         f"{'; it has no penalty weight' if fam.weight is None else ''})")
    return TrainConfig(**given)


def run_train(args) -> int:
    config = train_config(args)
    out = args.out or Path("runs") / config.penalty
    ensure_writable(out)
    train_images, test_images, data = training_data(args)
    checkpoint = out / "checkpoint.pt"
    if args.resume and not checkpoint.is_file():
        raise FileNotFoundError(f"--resume: there is no stopped run to continue, {checkpoint} does not exist")
    if not args.resume and checkpoint.is_file():
        raise FileExistsError(f"{checkpoint} holds a stopped run; continue it with --resume, "
                              "or delete it (or choose another --out) to start afresh")
    model, history = train(config, train_images, test_images, checkpoint=checkpoint, resume=args.resume,
                           progress=not args.no_progress)
    if history["interrupted"]:
        print(f"Interrupted after {len(history['epoch'])} epochs; the last complete epoch is in {checkpoint}. "
              f"Continue with the same command and --resume.", file=sys.stderr)
        return 130
    card = make_card(model, config, history, train_images, test_images, data)
    save_model(model, card, out, config.penalty)
    written = save_figures(model, card, test_images, out)
    checkpoint.unlink(missing_ok=True)
    print(loss_table(card))
    print(f"Wrote {', '.join([f'{config.penalty}.pt', f'{config.penalty}.json', *written])} to {out}")
    return 0


def training_data(args):
    """``(train_images, test_images, description)``: MNIST, or the user's --data (and --test-data) arrays.

    Without --test-data, the last tenth of --data is held out as the test set. --train-size keeps the
    first N training inputs.
    """
    if args.data is None:
        train_images, test_images, data = load_mnist("train")[0], load_mnist("test")[0], {"data": "MNIST"}
    else:
        inputs = read_array(args.data, "--data")
        if args.test_data is not None:
            train_images, test_images = inputs, read_array(args.test_data, "--test-data", inputs.shape[1])
        elif len(inputs) < 2:
            raise ValueError(f"--data {args.data} must hold at least 2 rows (a tenth is held out for testing), "
                             f"got {len(inputs)}")
        else:
            n_test = max(1, len(inputs) // 10)
            train_images, test_images = inputs[:-n_test], inputs[-n_test:]
        data = {"data": str(args.data), "data_sha256": sha256_file(args.data),
                "test_data": str(args.test_data) if args.test_data else f"last {len(test_images)} rows of --data"}
    if args.train_size is not None:
        if not 1 <= args.train_size <= len(train_images):
            raise ValueError(f"--train-size must be in [1, {len(train_images)}], got {args.train_size}")
        train_images = train_images[: args.train_size]
    return train_images, test_images, data


def read_array(path: Path, flag: str, n_input: int | None = None) -> torch.Tensor:
    """The (N, D) array in ``path``, a .npy file (read without pickle) or a .pt file holding one tensor
    (read with weights_only), checked as training data: uint8, or floats with values in [0, 1]."""
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {path} does not exist")
    if path.suffix == ".npy":
        try:
            array = torch.from_numpy(np.load(path, allow_pickle=False))
        except (ValueError, OSError, TypeError) as err:
            raise ValueError(f"{flag} {path} is not a plain numeric .npy array (pickled objects are refused): "
                             f"{str(err).splitlines()[0]}") from err
    elif path.suffix == ".pt":
        array = safe_torch_load(path)
        if not isinstance(array, torch.Tensor):
            raise ValueError(f"{flag} {path} must hold one tensor of shape (N, D), got a {type(array).__name__}")
    else:
        raise ValueError(f"{flag} must be a .npy or .pt file, got {path.name!r}")
    if array.dim() != 2:
        raise ValueError(f"{flag} {path} must hold an array of shape (N, D), got shape {tuple(array.shape)}")
    flat_images(array, f"{flag} {path}", n_input)  # the values, checked now, with the file's name
    return array


def run_evaluate(args) -> int:
    model, card = load_model(args.dir / f"{args.name}.json")
    fresh = make_card(model, TrainConfig(**card["config"]), card["history"], load_mnist("train")[0],
                      load_mnist("test")[0], {"data": "MNIST"})
    print(loss_table(fresh))
    return 0


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` and prove it writable before any training time is spent."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise PermissionError(f"output folder {folder} cannot be written: {err.strerror or err}") from err


def make_card(model, config: TrainConfig, history: dict, train_images, test_images, data: dict) -> dict:
    """The run's record: config, data, history, and fresh metrics on the training and test sets;
    on MNIST, the published losses of the reference run beside them."""
    hyperparameters = config.hyperparameters()
    metrics = {split: evaluate(model, images, family=config.penalty, **hyperparameters)
               for split, images in (("train", train_images), ("test", test_images))}
    published = PUBLISHED_LOSSES.get(config.penalty) if data["data"] == "MNIST" else None  # none for TopK
    return {"config": config.as_dict(), **data, "history": history, "metrics": metrics, "published": published}


def loss_table(card: dict) -> str:
    """Our losses beside the published ones (on MNIST), as aligned text."""
    penalty, metrics = card["config"]["penalty"], card["metrics"]
    published = card.get("published") or {}
    rows = [
        ("train loss, last epoch mean (BCE + weight·penalty)", card["history"]["train_objective"][-1],
         published.get("train")),
        ("train objective, final model", metrics["train"]["objective"], None),
        ("train BCE, final model", metrics["train"]["bce"], None),
        ("test BCE", metrics["test"]["bce"], published.get("test")),
        ("test objective", metrics["test"]["objective"], None),
    ]
    lines = [f"{penalty.upper()} sparse autoencoder", f"{'':52} {'ours':>9} {'published' if published else '':>10}"]
    for label, ours, theirs in rows:
        lines.append(f"{label:52} {ours:9.5f} {'' if theirs is None else f'{theirs:10.5f}'}")
    test = metrics["test"]
    lines.append(f"test: mean activation {test['mean_activation']:.4f}, active units per digit "
                 f"{test['active_units_per_digit']:.1f}, dead units {100 * test['dead_fraction']:.1f} %")
    return "\n".join(lines)


def save_figures(model, card: dict, test_images, out: Path) -> list[str]:
    """The loss curve, and the test inputs above their reconstructions where the inputs are square
    images; returns the names of the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_save_figure
    from .plots import plot_loss_curves, plot_reconstructions

    penalty = card["config"]["penalty"]
    name = penalty.upper()
    figures = {f"{penalty}_loss_curve.png": lambda: plot_loss_curves(card["history"], card["published"],
                                                                     f"{name} autoencoder")}
    if math.isqrt(model.n_input) ** 2 == model.n_input:
        figures[f"{penalty}_reconstructions.png"] = lambda: plot_reconstructions(
            model, test_images, 10, f"{name}: test inputs and reconstructions")
    for filename, draw in figures.items():
        fig = draw()
        atomic_save_figure(fig, out / filename)
        plt.close(fig)
    return list(figures)
