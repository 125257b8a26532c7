"""Helpers shared by several test files (plain functions and constants; the fixtures live in conftest.py).

pytest puts this folder on ``sys.path`` (rootdir-style conftest), so test files import these with
``from helpers import ...``.
"""
from __future__ import annotations

import functools
import os

import torch

from sae_utils import TrainConfig
from sae_utils.probe import linear_probe


def small_config(**changes) -> TrainConfig:
    """A few seconds of training: 2 epochs of 10 batches of 200 digits, 32 hidden units."""
    return TrainConfig(**{"epochs": 2, "batch_size": 200, "n_hidden": 32, **changes})


# The linear probe with 30 L-BFGS steps instead of 300, for tiny atlas builds whose probe errors no test reads
# closely (the probe's own fit is tested in test_probe.py); the probe is most of a tiny build's time.
short_probe = functools.partial(linear_probe, max_iterations=30)


# Random uint8 "digits" and a config that trains on them in a blink: for error paths and file handling.
RANDOM_DIGITS = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
TINY = dict(epochs=1, batch_size=10, n_hidden=4)


def raise_keyboard_interrupt(_logits):
    """An action for the ``fail_at_step`` fixture: Ctrl-C at that step."""
    raise KeyboardInterrupt


def nan_logits(logits):
    """An action for the ``fail_at_step`` fixture: NaN logits at that step, as a diverged run would have."""
    return logits * float("nan")


def assert_same_state(a, b):
    """Two models have the same parameters (same names, same values up to float rounding)."""
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, msg=lambda m: f"{name}: {m}")


class Crash(Exception):
    """A stand-in for a power cut or a full disk in the middle of a write."""


class RunsCode:
    """Unpickling this calls os.system: what a malicious weights file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
