"""The small hyperparameter sweep behind notebook 03: test BCE against sparsity as rho, beta and lam move.

Each point is a *shortened* reference run, so that the whole sweep takes minutes on two CPU cores
instead of an hour: the first ``TRAIN_SIZE`` training digits for ``EPOCHS`` epochs in minibatches of
``BATCH_SIZE`` (smaller than the reference 1200, for more steps per second of compute), with the
reference learning rate, number of hidden units and seed. One knob moves at a time; the others stay
at the reference setup (KL: rho 0.08, beta 0.005; L1: lam 4e-5). The metrics are those of
``sae_utils.evaluate`` on all 10,000 test digits. Absolute losses are therefore higher than those of the
full reference run; the trends are what the sweep shows.

``python -m sae_utils.sweep`` rewrites ``notebooks/sweep_results.json``; ``tests/test_sweep.py``
recomputes one point and compares.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .checks import check_int
from .data import load_mnist
from .files import atomic_write_json
from .metrics import evaluate
from .train import TrainConfig, train

TRAIN_SIZE = 12_000
BATCH_SIZE = 300
EPOCHS = 8
MONITOR_SIZE = 1_000  # test digits behind the per-epoch test BCE, which the sweep does not use
KNOBS = {  # (penalty, knob that moves): its values
    ("kl", "rho"): (0.01, 0.02, 0.04, 0.08, 0.16, 0.32),
    ("kl", "beta"): (0.0, 0.0015, 0.005, 0.015, 0.05, 0.15),
    ("l1", "lam"): (0.0, 1e-5, 4e-5, 1.6e-4, 6.4e-4),
}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "notebooks" / "sweep_results.json"


def settings() -> dict:
    """What every sweep run shares; stored in the results so a stale file can be recognised."""
    return {"train_size": TRAIN_SIZE, "batch_size": BATCH_SIZE, "epochs": EPOCHS, "test_size": 10_000,
            "reference": TrainConfig().as_dict(),
            "knobs": [{"penalty": p, "knob": k, "values": list(v)} for (p, k), v in KNOBS.items()]}


def sweep_points() -> list[tuple[str, str, float]]:
    """``(penalty, knob, value)`` of every point, in the order of ``KNOBS``."""
    return [(penalty, knob, value) for (penalty, knob), values in KNOBS.items() for value in values]


def point_config(penalty: str, knob: str, value: float) -> TrainConfig:
    """The reference setup of ``penalty`` with ``knob`` set to ``value`` and the sweep's epochs and batch."""
    return TrainConfig(penalty=penalty, epochs=EPOCHS, batch_size=BATCH_SIZE, **{knob: value})


def run_point(config: TrainConfig, train_images=None, test_images=None) -> dict:
    """Train one sweep point and return its test metrics (``evaluate``) plus the last epoch's objective."""
    train_images = load_mnist("train")[0][:TRAIN_SIZE] if train_images is None else train_images
    test_images = load_mnist("test")[0] if test_images is None else test_images
    model, history = train(config, train_images, test_images[:MONITOR_SIZE], progress=False)
    metrics = evaluate(model, test_images, **config.hyperparameters())
    metrics["train_objective_last_epoch"] = history["train_objective"][-1]
    return metrics


def run_sweep(log=print) -> dict:
    """Run every point of ``KNOBS`` (the shared reference point once) and return the results."""
    train_images = load_mnist("train")[0][:TRAIN_SIZE]
    test_images = load_mnist("test")[0]
    done: dict[tuple, dict] = {}
    points = []
    start = time.perf_counter()
    for penalty, knob, value in sweep_points():
        config = point_config(penalty, knob, value)
        key = tuple(sorted(config.as_dict().items()))
        if key not in done:
            tic = time.perf_counter()
            done[key] = {"metrics": run_point(config, train_images, test_images),
                         "seconds": round(time.perf_counter() - tic, 1)}
            log(f"{penalty} {knob}={value:g}: test BCE {done[key]['metrics']['bce']:.4f}, "
                f"active units per digit {done[key]['metrics']['active_units_per_digit']:.1f} "
                f"({done[key]['seconds']:.0f} s)")
        points.append({"penalty": penalty, "knob": knob, "value": value, "config": config.as_dict(),
                       **done[key]})
    return {"settings": settings(), "points": points,
            "total_seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sae_utils.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice); 1 is faster on a busy machine")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(check_int("--threads", args.threads))
    results = run_sweep()
    results["threads"] = torch.get_num_threads()
    atomic_write_json(args.out, results)
    print(f"Wrote {args.out} ({len(results['points'])} points, {results['total_seconds'] / 60:.1f} minutes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
