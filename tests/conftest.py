"""Shared fixtures: small slices of the bundled MNIST and a hook to stop training at a chosen step."""
from __future__ import annotations

import pytest
import torch

import sae_utils
from sae_utils import SparseAutoencoder, TrainConfig


@pytest.fixture(scope="session")
def train_digits() -> torch.Tensor:
    """The first 2,000 training digits, uint8 (2000, 28, 28)."""
    return sae_utils.load_mnist("train")[0][:2000]


@pytest.fixture(scope="session")
def test_digits() -> torch.Tensor:
    """The first 500 test digits, uint8 (500, 28, 28)."""
    return sae_utils.load_mnist("test")[0][:500]


def small_config(**changes) -> TrainConfig:
    """A few seconds of training: 2 epochs of 10 batches of 200 digits, 32 hidden units."""
    return TrainConfig(**{"epochs": 2, "batch_size": 200, "n_hidden": 32, **changes})


@pytest.fixture
def fail_at_step(monkeypatch):
    """``fail_at_step(k, action)``: the k-th training forward pass (counting from 1) runs ``action(logits)``.

    ``action`` may raise (KeyboardInterrupt) or return replacement logits (NaN ones, to fake divergence).
    Only forward passes in training mode count, so the evaluation after each epoch does not.
    """
    def install(step: int, action):
        original = SparseAutoencoder.forward
        calls = {"n": 0}

        def forward(self, x):
            logits, code = original(self, x)
            if self.training:
                calls["n"] += 1
                if calls["n"] == step:
                    logits = action(logits)
            return logits, code

        monkeypatch.setattr(SparseAutoencoder, "forward", forward)
        return calls

    return install


def raise_keyboard_interrupt(_logits):
    raise KeyboardInterrupt


def nan_logits(logits):
    return logits * float("nan")
