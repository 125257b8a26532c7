"""The sparse autoencoder: one hidden layer, so each hidden unit has one feature image (a 28x28 one on MNIST).

    code   y     = f(W_e x + b_e)        (B, D) -> (B, H)   f: sigmoid (KL), ReLU (L1) or TopK (TopK,
                                                                whose encoder reads x - x_mean)
    logits       =   W_d y + b_d         (B, H) -> (B, D)
    reconstruction x_hat = sigmoid(logits)

Training uses the logits directly (a stable BCE). ``encode``, ``decode`` and ``forward`` check the type
and shape of their input (cheap), not its values: they are the training hot path, and ``train`` and
``evaluate`` check their data once, up front. ``reconstruct`` checks the values too.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .checks import check_choice, check_int, check_values, check_width
from .data import N_PIXELS, image_shapes
from .fast_topk import sparse_decode
from .penalties import topk_code

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "topk": topk_code}  # topk_code also takes k


class SparseAutoencoder(nn.Module):
    """x (B, D) -> code (B, n_hidden) -> logits (B, D); D = n_input, 784 for MNIST digits.

    ``activation``: the code activation, "sigmoid" (KL family), "relu" (L1 family) or "topk" (TopK
    family, which keeps the ``k`` largest pre-activations of each input, 1 <= k <= n_hidden).
    """

    def __init__(self, n_hidden: int = 512, activation: str = "sigmoid", n_input: int = N_PIXELS,
                 k: int | None = None):
        super().__init__()
        self.n_hidden = check_int("n_hidden", n_hidden)
        self.n_input = check_int("n_input", n_input)
        self.activation = check_choice("activation", activation, tuple(ACTIVATIONS))
        self.k = check_topk_k(k, self.n_hidden) if activation == "topk" else None
        if activation != "topk" and k is not None:
            raise ValueError(f"k={k!r} applies to TopK codes only; a {activation} model has no k")
        self.encoder = nn.Linear(n_input, n_hidden)
        self.decoder = nn.Linear(n_hidden, n_input)
        if activation == "topk":
            self.register_buffer("input_centre", torch.zeros(n_input))        # subtracted before the encoder
            self.register_buffer("digits_since_fired", torch.zeros(n_hidden))  # for the dead-unit loss

    @classmethod
    def for_penalty(cls, penalty: str, n_hidden: int = 512, rho: float = 0.08, n_input: int = N_PIXELS,
                    **hyperparameters):
        """The model of the family ``penalty`` ("kl", "l1" or "topk"; TopK takes k=...), started as the
        family says (see families.py)."""
        from .families import build_model  # families reads this module's activations

        return build_model(penalty, n_hidden, n_input, rho=rho, **hyperparameters)

    def architecture(self) -> dict:
        """What is needed to rebuild this model: ``SparseAutoencoder(**model.architecture())``."""
        k = {} if self.k is None else {"k": self.k}
        return {"n_hidden": self.n_hidden, "activation": self.activation, "n_input": self.n_input, **k}

    def code_activation(self, pre: torch.Tensor) -> torch.Tensor:
        """The code of pre-activations (B, H) -> (B, H)."""
        if self.k is not None:
            return topk_code(pre, self.k)
        return ACTIVATIONS[self.activation](pre)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D), or image-shaped (B, s, s) / (B, 1, s, s) where D = s * s -> z = W x + b (B, H)."""
        x = self.flatten(x)                              # (B, ...) -> (B, D)
        if self.k is not None:                           # TopK reads x minus the mean training input
            x = x - self.input_centre
        return self.encoder(x)                           # (B, D) -> (B, H)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D), or image-shaped (B, s, s) / (B, 1, s, s) where D = s * s -> code (B, H)."""
        return self.code_activation(self.pre_activation(x))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """code (B, H) -> logits (B, D)."""
        code = check_width("code", code, [(self.n_hidden,)]).to(self.decoder.weight.dtype)
        if self.k is not None and code.device.type == "cpu":     # a TopK code: k of H values non-zero
            return sparse_decode(code, self.decoder.weight, self.decoder.bias)  # the same product, faster
        return self.decoder(code)                                 # (B, H) -> (B, D)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits, code)``: logits (B, D), code (B, H)."""
        code = self.encode(x)
        return self.decode(code), code

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x_hat = sigmoid(decode(encode(x))), shape (B, D), values in (0, 1); x must be finite, in [0, 1]."""
        return torch.sigmoid(self.decode(self.encode(check_values("x", self.flatten(x)))))

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """Floats (B, D) or image-shaped -> (B, D) in the model's dtype. Type and shape only: no pass over values."""
        x = check_width("x", x, image_shapes(self.n_input))
        return x.reshape(len(x), self.n_input).to(self.encoder.weight.dtype)

    def with_k(self, k: int) -> "SparseAutoencoder":
        """A copy of this TopK model that keeps ``k`` units per input (e.g. to encode with a larger k)."""
        if self.k is None:
            raise ValueError(f"with_k needs a TopK model; this one has {self.activation} codes")
        other = copy.deepcopy(self)
        other.k = check_topk_k(k, self.n_hidden)
        return other

    def rescaled(self, factor) -> "SparseAutoencoder":
        """A copy of this ReLU model with unit j's encoder row and bias times c_j and its decoder column divided
        by c_j: every code value y_j is c_j times larger and x-hat is unchanged, since relu(c z) = c relu(z) for
        c > 0. ``factor``: c_j, a positive float (all units) or a (H,) tensor of positive values. This is the
        scale loophole of the L1 penalty (notebook 02): the penalty changes, the reconstruction does not."""
        if self.activation != "relu":
            raise ValueError(f"rescaled needs a ReLU model (relu(c z) = c relu(z)); this one has {self.activation} codes")
        factor = torch.as_tensor(factor, dtype=self.encoder.weight.dtype).expand(self.n_hidden)
        if not bool(torch.isfinite(factor).all()) or bool((factor <= 0).any()):
            raise ValueError(f"factor must be positive and finite, got a smallest value of {factor.min().item():g}")
        other = copy.deepcopy(self)
        with torch.no_grad():
            other.encoder.weight.mul_(factor[:, None])
            other.encoder.bias.mul_(factor)
            other.decoder.weight.div_(factor)
        return other

    def feature_images(self, side: int | None = None) -> torch.Tensor:
        """Encoder weights as images (H, side, side): what input pattern drives each unit (side: sqrt(D))."""
        side = side or math.isqrt(self.n_input)
        return self.encoder.weight.detach().reshape(self.n_hidden, side, -1)


def check_topk_k(k, n_hidden: int) -> int:
    """TopK's k: an integer in [1, n_hidden]."""
    if k is None:
        raise ValueError("a TopK model needs k, the number of units kept per input, an integer in "
                         f"[1, {n_hidden}]")
    k = check_int("k", k)
    if k > n_hidden:
        raise ValueError(f"k must be an integer in [1, n_hidden={n_hidden}], got {k}: a TopK code cannot keep "
                         "more units than it has")
    return k
