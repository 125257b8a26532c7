"""sae_utils.files: atomic writes (a crash mid-write leaves the previous file whole), the usual permissions,
and safe reading (torch files without running code, JSON with the file's name in every error)."""
import hashlib
import io
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from helpers import Crash  # noqa: E402

from sae_utils.files import (atomic_save_figure, atomic_torch_save, atomic_write_bytes, atomic_write_json,  # noqa: E402
                             figure_png, read_json, safe_torch_load, sha256_file)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

WRITES = [
    lambda path: atomic_write_bytes(path, b"new " * 1000),
    lambda path: atomic_write_json(path, {"new": list(range(1000))}),
    lambda path: atomic_torch_save({"new": torch.ones(1000)}, path),
]


# --- a crash mid-write leaves the previous file whole ------------------------------------------------

@pytest.fixture
def crash_mid_write(monkeypatch):
    """Every write gets as far as the data but crashes before the file is complete on disk."""
    def fsync(fd):
        raise Crash("power cut")

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("write", WRITES, ids=["bytes", "json", "torch"])
def test_crash_mid_write_keeps_the_previous_file(tmp_path, write, crash_mid_write):
    path = tmp_path / "file"
    path.write_bytes(b"old content")
    with pytest.raises(Crash):
        write(path)
    assert path.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # no temporary left behind


def test_atomic_writes_replace_the_previous_file_and_leave_nothing_else(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"old content")
    assert atomic_write_bytes(path, b"\x00new\xff") == path
    assert path.read_bytes() == b"\x00new\xff"
    atomic_write_json(path, {"a": [1, 2.5, None]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2.5,\n    null\n  ]\n}\n'  # indented, newline-terminated
    atomic_torch_save({"w": torch.arange(6.0).reshape(2, 3)}, path)
    torch.testing.assert_close(torch.load(path, weights_only=True)["w"], torch.arange(6.0).reshape(2, 3))
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_files_written_by_the_package_have_the_usual_permissions(tmp_path):
    path = atomic_write_json(tmp_path / "card.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert json.loads(path.read_text()) == {}
    # Under chosen umasks too: the temporary file's 0600 (mkstemp) must not survive the rename.
    for chosen in (0o022, 0o002, 0o077):
        previous = os.umask(chosen)
        try:
            written = atomic_write_bytes(tmp_path / f"file-{chosen:o}", b"x")
        finally:
            os.umask(previous)
        assert written.stat().st_mode & 0o777 == 0o666 & ~chosen, oct(chosen)


# --- figures -------------------------------------------------------------------------------------------

def test_figure_png_and_atomic_save_figure_write_png_images(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    try:
        png = figure_png(fig, dpi=50)
        assert png[:8] == PNG_SIGNATURE
        assert PIL.Image.open(io.BytesIO(png)).size == (100, 50)  # 2 x 1 inches at 50 dpi
        path = atomic_save_figure(fig, tmp_path / "fig.png")
    finally:
        plt.close(fig)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


# --- reading safely --------------------------------------------------------------------------------------

def test_safe_torch_load_reads_tensors_and_plain_containers(tmp_path):
    state = {"weight": torch.randn(3, 4), "history": {"epoch": [1, 2], "interrupted": False}, "name": "kl"}
    torch.save(state, tmp_path / "state.pt")
    loaded = safe_torch_load(tmp_path / "state.pt")
    torch.testing.assert_close(loaded["weight"], state["weight"], rtol=0, atol=0)
    assert loaded["history"] == state["history"] and loaded["name"] == "kl"


def test_safe_torch_load_refuses_code(crafted):
    path, marker = crafted
    with pytest.raises(ValueError, match=r"refused to load .*evil\.pt.*could execute code"):
        safe_torch_load(path)
    assert not marker.exists()


def test_safe_torch_load_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"weights file .*nowhere\.pt does not exist"):
        safe_torch_load(tmp_path / "nowhere.pt")


@pytest.mark.parametrize("junk", [b"PK\x03\x04 half a zip file", b"hello\n", bytes(range(7, 40)), b""])
def test_safe_torch_load_of_junk_names_the_file(tmp_path, junk):
    path = tmp_path / "junk.pt"
    path.write_bytes(junk)
    with pytest.raises(ValueError, match=r"junk\.pt is not a readable torch weights file; truncated or corrupted\?"):
        safe_torch_load(path)


def test_safe_torch_load_of_a_truncated_file_names_it(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"weight": torch.randn(100, 100)}, path)
    path.write_bytes(path.read_bytes()[:20_000])
    with pytest.raises(ValueError, match=r"cut\.pt is not a readable torch weights file"):
        safe_torch_load(path)


def test_read_json_reads_a_card_and_names_the_file_on_errors(tmp_path):
    path = tmp_path / "card.json"
    path.write_text('{"sha256": "00", "n": [1, 2]}')
    assert read_json(path) == {"sha256": "00", "n": [1, 2]}
    path.write_text('{"sha256": "0')  # cut off mid-write
    with pytest.raises(ValueError, match=r"card\.json is not valid JSON"):
        read_json(path)
    path.write_bytes(b'{"name": "\xff\xfe"}')
    with pytest.raises(ValueError, match=r"card\.json is not a UTF-8 JSON text"):
        read_json(path)


def test_sha256_file_known_value(tmp_path):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    # The FIPS 180-2 test vector for "abc".
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    path.write_bytes(bytes(range(256)) * 1000)
    assert sha256_file(path) == hashlib.sha256(bytes(range(256)) * 1000).hexdigest()


def test_figure_png_with_colors_is_a_palette_picture_of_the_same_figure():
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow([[0.0, 1.0], [0.5, 0.25]], cmap="bwr")
    full, palette = figure_png(fig, dpi=50), figure_png(fig, dpi=50, colors=16)
    plt.close(fig)
    full_image, palette_image = PIL.Image.open(io.BytesIO(full)), PIL.Image.open(io.BytesIO(palette))
    assert palette_image.mode == "P" and len(palette_image.getcolors()) <= 16
    assert palette_image.size == full_image.size
    difference = np.abs(np.asarray(full_image.convert("RGB"), dtype=np.float32)
                        - np.asarray(palette_image.convert("RGB"), dtype=np.float32))
    assert difference.mean() < 8   # the same picture, up to the palette's rounding (of 255)
