"""Shared fixtures: small slices of the bundled MNIST, a hook to stop training at a chosen step, and a
weights file crafted to run code. Shared plain helpers live in helpers.py."""
from __future__ import annotations

import pytest
import torch
from helpers import RunsCode

import sae_utils
from sae_utils import SparseAutoencoder


@pytest.fixture(scope="session")
def train_digits() -> torch.Tensor:
    """The first 2,000 training digits, uint8 (2000, 28, 28)."""
    return sae_utils.load_mnist("train")[0][:2000]


@pytest.fixture(scope="session")
def test_digits() -> torch.Tensor:
    """The first 500 test digits, uint8 (500, 28, 28)."""
    return sae_utils.load_mnist("test")[0][:500]


@pytest.fixture
def fail_at_step(monkeypatch):
    """``fail_at_step(k, action)``: the k-th training forward pass (counting from 1) runs ``action(logits)``.

    ``action`` may raise (KeyboardInterrupt) or return replacement logits (NaN ones, to fake divergence).
    Only forward passes in training mode count, so the evaluation after each epoch does not. Returns
    ``{"n": forward passes counted so far}``.
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


@pytest.fixture
def crafted(tmp_path):
    """(weights file that runs ``touch marker`` when unpickled, marker path); proven dangerous first."""
    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    torch.save({"encoder.weight": RunsCode(marker)}, path)
    torch.load(path, weights_only=False)  # the unsafe way really does run the code...
    assert marker.exists()
    marker.unlink()  # ...so its absence below means the code did not run
    return path, marker
