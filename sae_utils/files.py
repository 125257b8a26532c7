"""Writing files so a crash never leaves half a file, and reading them without executing code."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
from pathlib import Path

import torch


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``.

    A crash mid-write leaves the previous file whole (os.replace is atomic on POSIX and Windows).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path, obj) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def atomic_torch_save(obj, path) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def figure_png(fig, dpi: int = 100, colors: int | None = None, **savefig_kwargs) -> bytes:
    """A matplotlib figure as PNG bytes; with ``colors``, quantised to a palette of that many colours
    (about a third of the size, which matters for a picture saved in a notebook)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, **savefig_kwargs)
    if colors is None:
        return buffer.getvalue()
    import PIL.Image

    palette = PIL.Image.open(buffer).convert("RGB").quantize(colors, method=PIL.Image.Quantize.FASTOCTREE)
    buffer = io.BytesIO()
    palette.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def atomic_save_figure(fig, path) -> Path:
    return atomic_write_bytes(path, figure_png(fig, bbox_inches="tight"))


def safe_torch_load(path):
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, never arbitrary code.

    A file that is missing, truncated, not a torch file, or asks to run code raises ValueError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" in str(err):  # it names a Python object to build: the one case that could run code
            raise ValueError(
                f"refused to load {path}: it holds objects other than tensors and plain containers, "
                f"and loading it could execute code ({str(err).splitlines()[0]})"
            ) from err
        raise ValueError(f"{path} is not a readable torch weights file; truncated or corrupted? ({err})") from err
    except Exception as err:  # on junk bytes the unpickler also raises KeyError, IndexError, struct.error
        raise ValueError(f"{path} is not a readable torch weights file; truncated or corrupted? ({err})") from err


def read_json(path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a UTF-8 JSON text: {err}") from err


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
