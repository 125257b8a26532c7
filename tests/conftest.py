"""Shared fixtures: small slices of the bundled MNIST, a hook to stop training at a chosen step, and a
weights file crafted to run code. Shared plain helpers live in helpers.py."""
from __future__ import annotations

import os

# pytest runs two xdist workers on the two cores (pyproject addopts). Each worker, and the notebook kernels
# and subprocesses it starts, gets one thread: two processes of two OpenMP threads each on two cores wait on
# each other (notebook 05's trainings ran 8x slower, measured on a 2-core AMD EPYC). Set before torch loads.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
from helpers import RunsCode, short_probe

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


TINY_POINTS = {"kl": [{"rho": 0.08, "beta": 0.005}, {"rho": 0.08, "beta": 0.015}, {"rho": 0.16, "beta": 0.005},
                      {"rho": 0.04, "beta": 0.005}, {"rho": 0.08, "beta": 0.0015}],
               "l1": [{"lam": 4e-5}, {"lam": 2e-5}, {"lam": 8e-5}],
               "topk": [{"k": 25}, {"k": 10}]}


@pytest.fixture(scope="session")
def tiny_atlas(tmp_path_factory):
    """A folder with kl.npz, l1.npz and topk.npz standing in for the shipped atlas: the reference settings
    and some neighbours (TINY_POINTS), each trained for 1 epoch on 1,000 digits with 32 hidden units and
    measured (a short linear probe included) on the first 500 test digits (which hold two of each class)."""
    from sae_utils import atlas

    folder = tmp_path_factory.mktemp("atlas")
    patch = pytest.MonkeyPatch()
    full = {split: atlas.load_mnist(split) for split in ("train", "test")}
    size = {"train": 1000, "test": 500}
    patch.setattr(atlas, "load_mnist", lambda split: (full[split][0][:size[split]].clone(),
                                                      full[split][1][:size[split]].clone()))
    patch.setattr(atlas, "point_config", lambda family, params: TrainConfig(
        penalty=family, epochs=1, batch_size=100, n_hidden=32, **params))
    patch.setattr(atlas, "linear_probe", short_probe)
    try:
        for family, points in TINY_POINTS.items():
            atlas.build(family, points, folder, progress=False, log=lambda *_: None)
    finally:
        patch.undo()
    return folder
