"""Command line: ``python -m sae_utils train --penalty kl`` and ``python -m sae_utils evaluate kl``."""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from .data import load_mnist
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
        t.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                       choices=f.metadata.get("choices"), help=f.metadata["help"])
    t.add_argument("--train-size", type=int, default=None,
                   help="train on the first N training digits only (default: all 60,000)")
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


def run_train(args) -> int:
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    out = args.out or Path("runs") / config.penalty
    ensure_writable(out)
    train_images = load_mnist("train")[0]
    if args.train_size is not None:
        if not 1 <= args.train_size <= len(train_images):
            raise ValueError(f"--train-size must be in [1, {len(train_images)}], got {args.train_size}")
        train_images = train_images[: args.train_size]
    checkpoint = out / "checkpoint.pt"
    if args.resume and not checkpoint.is_file():
        raise FileNotFoundError(f"--resume: there is no stopped run to continue, {checkpoint} does not exist")
    if not args.resume and checkpoint.is_file():
        raise FileExistsError(f"{checkpoint} holds a stopped run; continue it with --resume, "
                              "or delete it (or choose another --out) to start afresh")
    model, history = train(config, train_images, checkpoint=checkpoint, resume=args.resume,
                           progress=not args.no_progress)
    if history["interrupted"]:
        print(f"Interrupted after {len(history['epoch'])} epochs; the last complete epoch is in {checkpoint}. "
              f"Continue with the same command and --resume.", file=sys.stderr)
        return 130
    card = make_card(model, config, history, train_images)
    save_model(model, card, out, config.penalty)
    save_figures(model, history, config, out)
    checkpoint.unlink(missing_ok=True)
    print(loss_table(card))
    print(f"Wrote {config.penalty}.pt, {config.penalty}.json, {config.penalty}_loss_curve.png and "
          f"{config.penalty}_reconstructions.png to {out}")
    return 0


def run_evaluate(args) -> int:
    model, card = load_model(args.dir / f"{args.name}.json")
    fresh = make_card(model, TrainConfig(**card["config"]), card["history"], load_mnist("train")[0])
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


def make_card(model, config: TrainConfig, history: dict, train_images) -> dict:
    """The run's record: config, history, and fresh metrics on the training and test sets."""
    hyperparameters = config.hyperparameters()
    metrics = {split: evaluate(model, images, **hyperparameters)
               for split, images in (("train", train_images), ("test", load_mnist("test")[0]))}
    return {"config": config.as_dict(), "history": history, "metrics": metrics,
            "published": PUBLISHED_LOSSES[config.penalty]}


def loss_table(card: dict) -> str:
    """Our losses beside the published ones, as aligned text."""
    penalty = card["config"]["penalty"]
    published, metrics = PUBLISHED_LOSSES[penalty], card["metrics"]
    rows = [
        ("train loss, last epoch mean (BCE + weight·penalty)", card["history"]["train_objective"][-1], published["train"]),
        ("train objective, final model", metrics["train"]["objective"], None),
        ("train BCE, final model", metrics["train"]["bce"], None),
        ("test BCE", metrics["test"]["bce"], published["test"]),
        ("test objective", metrics["test"]["objective"], None),
    ]
    lines = [f"{penalty.upper()} sparse autoencoder", f"{'':52} {'ours':>9} {'published':>10}"]
    for label, ours, theirs in rows:
        lines.append(f"{label:52} {ours:9.5f} {'' if theirs is None else f'{theirs:10.5f}'}")
    test = metrics["test"]
    lines.append(f"test: mean activation {test['mean_activation']:.4f}, active units per digit "
                 f"{test['active_units_per_digit']:.1f}, dead units {100 * test['dead_fraction']:.1f} %")
    return "\n".join(lines)


def save_figures(model, history, config, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_save_figure
    from .plots import plot_loss_curves, plot_reconstructions

    name = config.penalty.upper()
    for filename, fig in (
        (f"{config.penalty}_loss_curve.png", plot_loss_curves(history, PUBLISHED_LOSSES[config.penalty], f"{name} autoencoder")),
        (f"{config.penalty}_reconstructions.png", plot_reconstructions(model, load_mnist("test")[0], 10, f"{name}: test inputs and reconstructions")),
    ):
        atomic_save_figure(fig, out / filename)
        plt.close(fig)
