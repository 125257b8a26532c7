"""MNIST, bundled with the package: 70,000 digits, gzip-compressed IDX files, checked by sha256.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J. C. Burges, under the Creative Commons
Attribution-Share Alike 3.0 licence. The files in ``sae_utils/mnist/`` are the canonical IDX files,
gzip-compressed; nothing is ever downloaded.
"""
from __future__ import annotations

import gzip
import hashlib
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .checks import check_values

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


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images of shape (N, 28, 28) or (N, 784) -> float32 of shape (N, 784) with values in [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        raise TypeError(f"images must be a uint8 tensor (0-255), got {getattr(images, 'dtype', type(images).__name__)}")
    return images.reshape(len(images), -1).to(torch.float32).div_(255.0)


def flat_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Validate images and return them flattened to (N, 784), uint8 kept as uint8, floats as float32.

    Accepts uint8 (N, 28, 28) (0-255) or floats of shape (N, 784), (N, 28, 28) or (N, 1, 28, 28)
    with finite values in [0, 1].
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    shapes = {(N_PIXELS,), (IMAGE_SIDE, IMAGE_SIDE), (1, IMAGE_SIDE, IMAGE_SIDE)}
    if images.dim() < 2 or tuple(images.shape[1:]) not in shapes or len(images) == 0:
        raise ValueError(
            f"{name} must have shape (N, 784), (N, 28, 28) or (N, 1, 28, 28) with N >= 1, "
            f"got {tuple(images.shape)}"
        )
    if images.dtype == torch.uint8:
        return images.reshape(len(images), N_PIXELS)
    if not images.is_floating_point():
        raise TypeError(f"{name} must be uint8 (0-255) or floating point in [0, 1], got dtype {images.dtype}")
    return check_values(name, images.reshape(len(images), N_PIXELS).to(torch.float32))


def prepare_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Validate images (see ``flat_images``) and return float32 of shape (N, 784) in [0, 1]."""
    return as_float(flat_images(images, name))


def as_float(flat: torch.Tensor) -> torch.Tensor:
    """The output of ``flat_images`` as float32 in [0, 1]: uint8 is converted, floats pass through."""
    return to_float(flat) if flat.dtype == torch.uint8 else flat
