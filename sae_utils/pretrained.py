"""Saving trained models with a JSON card, and loading them back safely (sha256 checked, no code run)."""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from .checks import check_choice
from .families import DEFAULT
from .files import atomic_torch_save, atomic_write_json, read_json, safe_torch_load, sha256_file
from .model import SparseAutoencoder


def _shipped_models_dir() -> Path:
    """The folder of the shipped models.

    An installed wheel (``pip install .``, ``pip install <wheel>``) carries them as the package data
    ``sae_utils/pretrained_models/`` (pyproject.toml maps that onto the repository's ``pretrained/``);
    a source checkout or an editable install (``pip install -e .``) has no such folder beside this
    file and reads the repository's top-level ``pretrained/`` folder. Both are found from this
    file's location, never from the working directory or another sae_utils on the path.
    """
    here = Path(__file__).resolve().parent
    packaged = here / "pretrained_models"
    return packaged if packaged.is_dir() else here.parent / "pretrained"


PRETRAINED_DIR = _shipped_models_dir()
# The shipped models are the cards present (NAME.json beside NAME.pt): a new model needs no code change.
PRETRAINED_NAMES = tuple(sorted(card.stem for card in PRETRAINED_DIR.glob("*.json")))


def save_model(model, card: dict, directory, name: str) -> dict:
    """Write ``name.pt`` (state dict) and ``name.json`` (card + architecture + sha256) to ``directory``."""
    from . import __version__

    directory = Path(directory)
    weights = directory / f"{name}.pt"
    atomic_torch_save(model.state_dict(), weights)
    card = {**card, "name": name, "architecture": model.architecture(), "weights_file": weights.name,
            "sha256": sha256_file(weights),
            "versions": {"sae_utils": __version__, "torch": torch.__version__, "numpy": np.__version__,
                         "python": platform.python_version()}}
    atomic_write_json(directory / f"{name}.json", card)
    return card


def load_model(card_path) -> tuple[SparseAutoencoder, dict]:
    """Load the model a card describes: check the weights' sha256, load them without running code.

    Any problem (missing or damaged file, a card that is not valid JSON or lacks a field, weights that
    do not fit the card's architecture) raises FileNotFoundError or ValueError naming the file.
    """
    card_path = Path(card_path)
    if not card_path.is_file():
        raise FileNotFoundError(f"model card {card_path} does not exist")
    card = read_json(card_path)
    try:
        weights_file, expected, architecture = card["weights_file"], card["sha256"], card["architecture"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"model card {card_path} must be a JSON object with the fields weights_file, sha256 "
                         f"and architecture; it lacks {err}") from err
    if not isinstance(weights_file, str) or Path(weights_file).name != weights_file:
        raise ValueError(f"model card {card_path}: weights_file must be a file name beside the card, "
                         f"got {weights_file!r}")
    weights = card_path.parent / weights_file
    if not weights.is_file():
        raise FileNotFoundError(f"weights file {weights} named by {card_path} does not exist")
    actual = sha256_file(weights)
    if actual != expected:
        raise ValueError(f"weights file {weights} has sha256 {actual}, but its card {card_path} says {expected}; "
                         "the file was changed or damaged")
    try:
        model = SparseAutoencoder(**architecture)
        model.load_state_dict(safe_torch_load(weights))
    except (TypeError, RuntimeError) as err:  # unknown architecture fields, tensors of the wrong shape
        raise ValueError(f"weights file {weights} does not fit the architecture in {card_path}: "
                         f"{str(err).splitlines()[0]}") from err
    return model.eval(), card


def load_pretrained(name: str = DEFAULT, directory=None) -> tuple[SparseAutoencoder, dict]:
    """Return ``(model, card)`` of a shipped model (one of ``PRETRAINED_NAMES``: "kl", "l1"), after
    checking its sha256; ``directory`` reads NAME.json and NAME.pt from another folder instead."""
    check_choice("name", name, PRETRAINED_NAMES)
    return load_model(Path(directory or PRETRAINED_DIR) / f"{name}.json")
