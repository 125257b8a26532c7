"""How fast ``sae_utils.train`` is, against the matrix-product floor and a conventional DataLoader loop.

Run by hand from the repository root, on an otherwise idle machine (about 2 minutes on 2 cores):

    python benchmarks/train_speed.py                 # --penalty kl --repeats 5 [--threads N]
    python benchmarks/train_speed.py --penalty topk  # TopK (k = 25): its code, decoder norm and dead-unit loss

Every repeat runs each variant once, in turn, so that all of them see the same machine load:

(a) one epoch of ``sae_utils.train`` as a user gets it from ``train(TrainConfig(epochs=1), digits,
    test_digits)`` on the 60,000 bundled uint8 digits: its 50 steps and its evaluation of the 10,000
    test digits, timed from the moment train() opens its progress bar (setup done) to the moment it
    posts the epoch's losses; progress bar off. The whole call, setup included, is shown beside it;
(b) the floor: that epoch's matrix products and nothing else, 50 steps at batch 1200 of x @ We^T,
    y @ Wd^T and the backward products dL/dWd, dL/dy, dL/dWe (no gradient for x);
(c) a conventional loop: ``torchvision.datasets.MNIST`` with ``transforms.ToTensor()``,
    ``DataLoader(batch_size=1200, shuffle=True)``, the same model, Adam and loss
    (the package's BCE (``fast_bce.training_bce``) + the family's weighted penalty, ``loss.item()`` every step), one
    epoch and then the test BCE through a DataLoader, like (a). Also timed: iterating its two
    DataLoaders alone, with no model.

It prints medians and minima, the ratios (a)/(b) and (c)/(a) (targets: at most 1.3, at least 5),
GFLOP/s, the time to load a pretrained model and evaluate the whole test set (target: under 2 s),
peak memory and the machine. Nothing is downloaded: (c) reads the bundled IDX files, decompressed
into a temporary folder in torchvision's layout.
"""
from __future__ import annotations

import argparse
import gzip
import importlib
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import sae_utils
from sae_utils import SparseAutoencoder, TrainConfig, evaluate, load_mnist, load_pretrained, reconstruction_bce, train
from sae_utils.data import MNIST_DIR
from sae_utils.fast_bce import training_bce
from sae_utils.families import FAMILIES
from sae_utils.pretrained import PRETRAINED_DIR

N_TRAIN, N_TEST, N_PIXELS = 60_000, 10_000, 784
TRAIN_MODULE = importlib.import_module("sae_utils.train")  # the name sae_utils.train is the function


def products_per_epoch(config: TrainConfig) -> tuple[int, int]:
    """(steps, FLOPs) of one epoch's matrix products: 5 products of 2 * B * 784 * H each per step."""
    steps = -(-N_TRAIN // config.batch_size)
    return steps, steps * 5 * 2 * config.batch_size * N_PIXELS * config.n_hidden


def floor_epoch(config: TrainConfig, dtype=torch.float32):
    """A callable returning the seconds of one epoch's matrix products, on random matrices of the right shapes."""
    b, h = config.batch_size, config.n_hidden
    steps, _ = products_per_epoch(config)
    x, code, grad_logits, grad_hidden = (torch.rand(b, n, dtype=dtype) for n in (N_PIXELS, h, N_PIXELS, h))
    w_enc, w_dec = torch.randn(h, N_PIXELS, dtype=dtype) * 0.01, torch.randn(N_PIXELS, h, dtype=dtype) * 0.01

    def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            x @ w_enc.T                       # encoder forward
            code @ w_dec.T                    # decoder forward
            grad_logits.T @ code              # dL/dWd
            grad_logits @ w_dec               # dL/dy
            grad_hidden.T @ x                 # dL/dWe
        return time.perf_counter() - start
    return run


class EpochClock:
    """Stands in for train()'s progress bar to timestamp the epoch: train() opens the bar when its
    setup is done and posts the epoch's losses to it after the test evaluation."""

    def __init__(self, *args, **kwargs):
        self.opened, self.epoch_ends = time.perf_counter(), []

    def set_postfix(self, **kwargs):
        self.epoch_ends.append(time.perf_counter())

    def update(self, n=1):
        pass

    def close(self):
        pass


def sae_utils_epoch(config: TrainConfig, train_images, test_images, plain_bce: bool = False):
    """A callable returning (seconds of the epoch: steps and test evaluation, seconds of the whole call).

    plain_bce: train with the plain formula (``penalties.reconstruction_bce``) instead of the BCE that
    ``fast_bce.training_bce`` picks for this machine, to show that the default is the faster of the two.
    """
    def run() -> tuple[float, float]:
        if plain_bce:
            TRAIN_MODULE.training_bce = lambda device: reconstruction_bce.unchecked
        try:
            return timed_run()
        finally:
            TRAIN_MODULE.training_bce = training_bce

    def timed_run() -> tuple[float, float]:
        clocks = []
        TRAIN_MODULE.tqdm = lambda *args, **kwargs: clocks.append(EpochClock()) or clocks[-1]
        try:
            start = time.perf_counter()
            train(config, train_images, test_images, progress=False)
            end = time.perf_counter()
        finally:
            TRAIN_MODULE.tqdm = tqdm
        (clock,) = clocks
        return clock.epoch_ends[0] - clock.opened, end - start
    return run


def write_torchvision_mnist(root: Path) -> Path:
    """Decompress the bundled IDX files into ``root/MNIST/raw/``, where torchvision looks for them."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for gz in MNIST_DIR.glob("*.gz"):
        (raw / gz.stem).write_bytes(gzip.decompress(gz.read_bytes()))
    return root


def conventional_loop(config: TrainConfig, root: Path):
    """Two callables returning seconds: one epoch of the textbook loop over torchvision's MNIST plus
    the test BCE, and the same two passes over the DataLoaders with no model."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    train_set = datasets.MNIST(root, train=True, transform=transforms.ToTensor(), download=False)
    test_set = datasets.MNIST(root, train=False, transform=transforms.ToTensor(), download=False)

    bce, family = training_bce("cpu"), FAMILIES[config.penalty]

    def epoch() -> float:
        start = time.perf_counter()
        torch.manual_seed(config.seed)
        model = SparseAutoencoder.for_penalty(config.penalty, config.n_hidden, **config.hyperparameters())
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        model.train()
        running = 0.0
        for images, _ in DataLoader(train_set, batch_size=config.batch_size, shuffle=True):
            x = images.view(len(images), -1)
            logits, code = model(x)
            loss = bce(logits, x) + family.weighted_penalty(code, config.hyperparameters(), model, x, logits)[0]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if family.after_step is not None:
                family.after_step(model)
            running += loss.item() * len(x)
        model.eval()
        total = 0.0
        with torch.no_grad():
            for images, _ in DataLoader(test_set, batch_size=config.batch_size):
                x = images.view(len(images), -1)
                total += F.binary_cross_entropy_with_logits(model(x)[0], x, reduction="sum").item()
        return time.perf_counter() - start

    def loaders_only() -> float:
        start = time.perf_counter()
        for _ in DataLoader(train_set, batch_size=config.batch_size, shuffle=True):
            pass
        for _ in DataLoader(test_set, batch_size=config.batch_size):
            pass
        return time.perf_counter() - start
    return epoch, loaders_only


def pretrained_evaluation(name: str) -> float:
    """Seconds to load a shipped model (sha256 check included) and evaluate all 10,000 test digits,
    read from the bundled file (decompression and sha256 check included)."""
    sae_utils.data._load_split.cache_clear()
    start = time.perf_counter()
    model, _ = load_pretrained(name)
    evaluate(model, load_mnist("test")[0])
    return time.perf_counter() - start


def peak_memory_mb(variant: str, args) -> tuple[float, float]:
    """(MB after imports and data, peak MB) of a fresh Python process that runs one epoch of ``variant``."""
    command = [sys.executable, __file__, "--penalty", args.penalty, "--peak-memory-of", variant]
    if args.threads:
        command += ["--threads", str(args.threads)]
    before, peak = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()[-2:]
    return float(before), float(peak)


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM on Linux (ru_maxrss survives fork and exec, so a
    child would report its parent's peak), ru_maxrss elsewhere (bytes on macOS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def machine() -> str:
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return (f"{cpu}, {os.cpu_count()} logical cores{' (' + ' '.join(shown) + ')' if shown else ''}; "
            f"torch {torch.__version__} (kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} threads), Python {platform.python_version()}, {platform.system()}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--penalty", choices=tuple(FAMILIES), default="kl")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--peak-memory-of", choices=("a", "c"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(penalty=args.penalty, epochs=1)
    train_images, test_images = load_mnist("train")[0], load_mnist("test")[0]

    with tempfile.TemporaryDirectory() as tmp:
        root = write_torchvision_mnist(Path(tmp))
        if args.peak_memory_of:
            run = (sae_utils_epoch(config, train_images, test_images) if args.peak_memory_of == "a"
                   else conventional_loop(config, root)[0])
            before = peak_rss_mb()
            run()
            print(before, peak_rss_mb())
            return
        conventional, loaders = conventional_loop(config, root)
        variants = {"a": sae_utils_epoch(config, train_images, test_images), "b": floor_epoch(config),
                    "c": conventional, "loaders": loaders,
                    "a_plain": sae_utils_epoch(config, train_images, test_images, plain_bce=True)}
        if torch.backends.mkldnn.is_available():
            variants["b16"] = floor_epoch(config, torch.bfloat16)

        steps, flops = products_per_epoch(config)
        test_flops = 2 * 2 * N_TEST * N_PIXELS * config.n_hidden
        print(f"machine: {machine()}")
        print(f"setup: penalty {config.penalty}, {config.n_hidden} hidden units, batch {config.batch_size}, "
              f"{steps} steps an epoch, {flops / 1e9:.1f} GFLOP of matrix products "
              f"(+{test_flops / 1e9:.1f} for the test evaluation in (a) and (c)); "
              f"{args.repeats} repeats after a warm-up, variants interleaved")
        load_start = os.getloadavg()[0]
        for run in variants.values():
            run()  # warm-up: allocator, thread pool, torchvision's first read
        times = {name: [] for name in ["a", "a_call", *variants]}
        for _ in range(args.repeats):
            for name, run in variants.items():
                result = run()
                if name in ("a", "a_plain"):
                    times[name].append(result[0])
                    if name == "a":
                        times["a_call"].append(result[1])
                else:
                    times[name].append(result)
        load_end = os.getloadavg()[0]

    med = {name: statistics.median(t) for name, t in times.items()}
    paired = lambda x, y: statistics.median(p / q for p, q in zip(times[x], times[y]))  # noqa: E731
    print(f"load average (1 min) at start {load_start:.2f}, at end {load_end:.2f} "
          f"(above ~{torch.get_num_threads()}: other processes competed for the cores, and medians are noisy)")
    print(f"\n{'':62}{'median':>9}{'min':>10}{'GFLOP/s':>9}")
    rows = [("a", "(a) sae_utils.train: one epoch (50 steps + test evaluation)"),
            ("a_call", "    the whole train(epochs=1) call, setup included"),
            ("b", "(b) floor: the epoch's matrix products only"),
            ("c", "(c) torchvision MNIST + DataLoader loop: one epoch + test"),
            ("loaders", "    of which iterating its two DataLoaders, no model"),
            ("b16", "    for comparison: (b)'s products in bfloat16"),
            ("a_plain", "    (a) with the plain BCE formula instead of the default")]
    for name, label in rows:
        if times.get(name):
            speed = "" if name == "loaders" else f"{flops / med[name] / 1e9:9.1f}"
            print(f"{label:62}{med[name]:8.3f}s{min(times[name]):9.3f}s{speed}")
    print(f"\n(a)/(b) = {med['a'] / med['b']:.2f}  (target <= 1.3; median of per-repeat ratios "
          f"{paired('a', 'b'):.2f}; whole call {med['a_call'] / med['b']:.2f})")
    print(f"(c)/(a) = {med['c'] / med['a']:.2f}  (target >= 5; median of per-repeat ratios {paired('c', 'a'):.2f}; "
          f"even an (a) as fast as (b) would give {med['c'] / med['b']:.2f})")

    default = "the fast kernel" if training_bce("cpu") is not reconstruction_bce.unchecked else "the plain formula"
    print(f"BCE: the default on this machine is {default}; an epoch with the plain formula takes "
          f"{paired('a_plain', 'a'):.2f} times the default's (median of per-repeat ratios; > 1: the default is faster)")

    present = [name for name in ("kl", "l1") if (PRETRAINED_DIR / f"{name}.json").is_file()]
    for name in present:
        seconds = statistics.median(pretrained_evaluation(name) for _ in range(args.repeats))
        print(f"load pretrained {name} + evaluate the 10,000 test digits: {seconds:.3f} s (target < 2 s)")
    if not present:
        print(f"load pretrained + evaluate: skipped, no cards in {PRETRAINED_DIR}")
    for variant in ("a", "c"):
        before, peak = peak_memory_mb(variant, args)
        print(f"peak memory of a fresh process running ({variant}) once: {peak:.0f} MB "
              f"({peak - before:.0f} MB above the process after imports and data)")


if __name__ == "__main__":
    main()
