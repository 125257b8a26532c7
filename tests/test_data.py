"""The bundled MNIST: shapes, dtypes, known label counts and pixel statistics, and its checksums."""
import gzip
import shutil

import pytest
import torch

import sae_utils
from sae_utils import data
from sae_utils.data import pixels

# The well-known MNIST label counts per digit 0..9.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("split, n", [("train", 60_000), ("test", 10_000)])
def test_shapes_and_dtypes(split, n):
    images, labels = sae_utils.load_mnist(split)
    assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert images.min().item() == 0 and images.max().item() == 255


@pytest.mark.parametrize("split, counts", [("train", TRAIN_COUNTS), ("test", TEST_COUNTS)])
def test_label_counts(split, counts):
    labels = sae_utils.load_mnist(split)[1]
    assert torch.bincount(labels, minlength=10).tolist() == counts


def test_first_labels_are_the_famous_five_and_seven():
    assert sae_utils.load_mnist("train")[1][:3].tolist() == [5, 0, 4]
    assert sae_utils.load_mnist("test")[1][:3].tolist() == [7, 2, 1]


def test_pixel_mean_and_std_of_training_set():
    x = sae_utils.prepare_images(sae_utils.load_mnist("train")[0])
    assert x.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert x.std().item() == pytest.approx(0.3081, abs=1e-4)


def test_each_call_returns_a_fresh_copy():
    images, labels = sae_utils.load_mnist("test")
    images[0] = 7
    labels[0] = 3
    again, again_labels = sae_utils.load_mnist("test")
    assert again[0].max().item() == 255 and again_labels[0].item() == 7


def test_prepare_images_accepts_every_layout():
    images = sae_utils.load_mnist("test")[0][:5]
    expected = images.reshape(5, 784).double() / 255
    as_float = expected.float()
    for layout in (images, as_float, as_float.reshape(5, 28, 28), as_float.reshape(5, 1, 28, 28)):
        out = sae_utils.prepare_images(layout)
        assert out.shape == (5, 784) and out.dtype == torch.float32
        torch.testing.assert_close(out.double(), expected, atol=1e-7, rtol=0)


@pytest.fixture
def test_split_copy(tmp_path, monkeypatch):
    """A copy of the test split's files in tmp_path, with MNIST_DIR pointing there and the cache empty."""
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data.MNIST_DIR / name, tmp_path / name)
    monkeypatch.setattr(data, "MNIST_DIR", tmp_path)
    data._load_split.cache_clear()
    yield tmp_path
    data._load_split.cache_clear()


def test_copy_of_bundled_files_loads(test_split_copy):
    assert torch.bincount(sae_utils.load_mnist("test")[1]).tolist() == TEST_COUNTS


@pytest.mark.parametrize("where", [100, -5])  # damaged deflate data (zlib.error), damaged trailer (bad CRC)
def test_flipped_byte_is_reported(test_split_copy, where):
    path = test_split_copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[where] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*corrupted"):
        sae_utils.load_mnist("test")


def test_truncated_file_is_reported(test_split_copy):
    path = test_split_copy / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*truncated"):
        sae_utils.load_mnist("test")


def test_changed_content_fails_the_sha256(test_split_copy):
    """A well-formed gzip whose content differs by one label: only the checksum can catch it."""
    path = test_split_copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*sha256"):
        sae_utils.load_mnist("test")


def test_missing_file_is_reported(test_split_copy):
    (test_split_copy / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz.*missing"):
        sae_utils.load_mnist("test")


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test', got 'validation'"):
        sae_utils.load_mnist("validation")


def test_pixels_converts_bytes_and_never_touches_its_input():
    floats = torch.full((2, 784), 0.5)
    assert pixels(floats) is floats and torch.all(floats == 0.5)  # floats pass through, not divided again
    digits = torch.full((2, 784), 255, dtype=torch.uint8)
    assert torch.all(pixels(digits) == 1.0) and torch.all(digits == 255)


def test_image_shapes_and_flat_images_of_other_inputs():
    assert data.image_shapes(784) == [(784,), (28, 28), (1, 28, 28)]
    assert data.image_shapes(36) == [(36,), (6, 6), (1, 6, 6)]
    assert data.image_shapes(10) == [(10,)] and data.image_shapes(1) == [(1,)]  # 10 is no square; 1 value is not an image
    assert data.describe_shapes(data.image_shapes(36), "N") == "(N, 36), (N, 6, 6) or (N, 1, 6, 6)"
    digits = torch.arange(2 * 36, dtype=torch.uint8).reshape(2, 1, 6, 6)
    flat = data.flat_images(digits)
    assert flat.dtype == torch.uint8 and flat.tolist() == digits.reshape(2, 36).tolist()  # bytes stay bytes
    floats = data.flat_images(torch.rand(3, 10, dtype=torch.float64), n_input=10)
    assert floats.dtype == torch.float32 and floats.shape == (3, 10)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 36\), \(N, 6, 6\) or \(N, 1, 6, 6\) with N >= 1, "
                                         r"got \(2, 36, 1\)"):
        data.flat_images(torch.rand(2, 36, 1), n_input=36)
