"""MNIST, bundled with the package: 70,000 digits, gzip-compressed IDX files, checked by sha256.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J. C. Burges, under the Creative Commons
Attribution-Share Alike 3.0 licence. The files in ``sae_utils/mnist/`` are the canonical IDX files,
gzip-compressed; nothing is ever downloaded.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .checks import check_values, describe_shapes

MNIST_DIR = Path(__file__).with_name("mnist")
IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE

# sha256 of the *uncompressed* canonical IDX files (see the README's data section).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
FILE_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: Path, expected_sha256: str) -> np.ndarray:
    """Read a gzip-compressed IDX file after checking the sha256 of its uncompressed bytes."""
    if not path.is_file():
        raise FileNotFoundError(f"bundled MNIST file {path} is missing; reinstall the package")
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as err:  # bad CRC, cut-off stream, damaged deflate data
        raise ValueError(f"bundled MNIST file {path} is corrupted or truncated ({err})") from err
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        raise ValueError(
            f"bundled MNIST file {path} is corrupted: sha256 {digest}, expected {expected_sha256}"
        )
    n_dims = raw[3]  # IDX header: two zero bytes, a type byte (0x08 = uint8), the number of dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(shape)


@lru_cache(maxsize=2)
def _load_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = FILE_PREFIX[split]
    images = read_idx(MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz", SHA256[f"{prefix}-images-idx3-ubyte"])
    labels = read_idx(MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz", SHA256[f"{prefix}-labels-idx1-ubyte"])
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images, labels)`` of the MNIST ``split``, "train" (60,000) or "test" (10,000).

    images: uint8 tensor of shape (N, 28, 28), 0 is background; labels: int64 tensor of shape (N,).
    Each call returns fresh copies, so callers may modify them.
    """
    if split not in FILE_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = _load_split(split)
    return images.clone(), labels.clone()


def image_shapes(n_input: int) -> list[tuple[int, ...]]:
    """The shapes one input of D = ``n_input`` values may have: (D,), and (s, s), (1, s, s) where D = s * s."""
    side = math.isqrt(n_input)
    return [(n_input,)] + ([(side, side), (1, side, side)] if side > 1 and side * side == n_input else [])


def flat_images(images: torch.Tensor, name: str = "images", n_input: int | None = None) -> torch.Tensor:
    """Validate images and return them flattened to (N, D): uint8 kept as uint8, floats as float32.

    Accepts uint8 (0-255) or floats with finite values in [0, 1], of shape (N, D) or, where D = s * s,
    (N, s, s) or (N, 1, s, s); N >= 1. ``n_input``: the D required (a model's input size); default: the
    number of values per input that ``images`` has.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    d = n_input or (math.prod(images.shape[1:]) if images.dim() >= 2 else N_PIXELS) or N_PIXELS
    shapes = image_shapes(d)
    if images.dim() < 2 or tuple(images.shape[1:]) not in shapes or len(images) == 0:
        raise ValueError(f"{name} must have shape {describe_shapes(shapes, 'N')} with N >= 1, got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.reshape(len(images), d)
    if not images.is_floating_point():
        raise TypeError(f"{name} must be uint8 (0-255) or floating point in [0, 1], got dtype {images.dtype}")
    return check_values(name, images.reshape(len(images), d).to(torch.float32))


def prepare_images(images: torch.Tensor, name: str = "images", n_input: int | None = None) -> torch.Tensor:
    """The public conversion: validate images (see ``flat_images``), return float32 (N, D) in [0, 1]."""
    return pixels(flat_images(images, name, n_input))


def pixels(flat: torch.Tensor) -> torch.Tensor:
    """A batch from ``flat_images`` as float32 in [0, 1]: uint8 is divided by 255, floats pass through."""
    return flat.to(torch.float32).div_(255.0) if flat.dtype == torch.uint8 else flat


def training_inputs(train_images, test_images, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``train``'s data, checked once, up front: (x_train (N, D), x_test (M, D)), uint8 kept as uint8
    (each batch is converted when taken: a quarter of the memory of float32).

    Defaults (None): the MNIST training and test digits; test_images must be given when D != 784.
    """
    x_train = flat_images(load_mnist("train")[0] if train_images is None else train_images, "train_images")
    n_input = x_train.shape[1]
    if test_images is None and n_input != N_PIXELS:
        raise ValueError(f"test_images must be given when training on inputs of {n_input} values "
                         f"(the default test set, MNIST, has {N_PIXELS})")
    x_test = flat_images(load_mnist("test")[0] if test_images is None else test_images, "test_images", n_input)
    if batch_size > len(x_train):
        raise ValueError(f"batch_size must be at most the number of training images ({len(x_train)}), "
                         f"got {batch_size}")
    return x_train, x_test

