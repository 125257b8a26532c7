"""The sparse autoencoder: one hidden layer, so each hidden unit has a 28x28 feature image."""
from __future__ import annotations

import math

import torch
from torch import nn

from .checks import check_choice, check_float_tensor, check_int, check_rho, check_values
from .data import IMAGE_SIDE, N_PIXELS

CODE_ACTIVATIONS = ("sigmoid", "relu")
CODE_FOR_PENALTY = {"kl": "sigmoid", "l1": "relu"}  # KL needs rho_hat in (0, 1); L1 wants exact zeros


class SparseAutoencoder(nn.Module):
    """x (B, 784) -> code y = act(W_e x + b_e) (B, n_hidden) -> logits W_d y + b_d (B, 784).

    The reconstruction is ``sigmoid(logits)``; training uses the logits directly (stable BCE).
    ``activation`` is "sigmoid" (for the KL penalty) or "relu" (for the L1 penalty).
    """

    def __init__(self, n_hidden: int = 512, activation: str = "sigmoid", n_input: int = N_PIXELS):
        super().__init__()
        self.n_hidden = check_int("n_hidden", n_hidden)
        self.n_input = check_int("n_input", n_input)
        self.activation = check_choice("activation", activation, CODE_ACTIVATIONS)
        self.encoder = nn.Linear(n_input, n_hidden)
        self.decoder = nn.Linear(n_hidden, n_input)
        self._act = torch.sigmoid if activation == "sigmoid" else torch.relu

    @classmethod
    def for_penalty(cls, penalty: str, n_hidden: int = 512, rho: float = 0.08) -> "SparseAutoencoder":
        """The model the penalty needs: sigmoid codes for "kl", ReLU codes for "l1".

        For "kl" the encoder bias starts at logit(rho), so every unit starts near the target activation
        instead of sigmoid(0) = 0.5; the penalty then shapes features rather than first dragging every
        unit down (test BCE after the reference run: 0.070 instead of 0.078).
        """
        check_choice("penalty", penalty, tuple(CODE_FOR_PENALTY))
        model = cls(n_hidden, CODE_FOR_PENALTY[penalty])
        if penalty == "kl":
            rho = check_rho(rho)
            with torch.no_grad():
                model.encoder.bias.fill_(math.log(rho / (1 - rho)))
        return model

    def architecture(self) -> dict:
        """What is needed to rebuild this model: ``SparseAutoencoder(**model.architecture())``."""
        return {"n_hidden": self.n_hidden, "activation": self.activation, "n_input": self.n_input}

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """Accept floats of shape (B, 784), (B, 28, 28) or (B, 1, 28, 28); return (B, 784) in the model's dtype.

        Checks type, dtype and shape only (no pass over the values), so it is cheap enough for every batch.
        """
        check_float_tensor("x", x)
        shapes = {(self.n_input,)}
        if self.n_input == N_PIXELS:
            shapes |= {(IMAGE_SIDE, IMAGE_SIDE), (1, IMAGE_SIDE, IMAGE_SIDE)}
        if x.dim() < 2 or tuple(x.shape[1:]) not in shapes:
            raise ValueError(
                f"x must have shape (B, {self.n_input}), (B, 28, 28) or (B, 1, 28, 28), got {tuple(x.shape)}"
            )
        return x.reshape(len(x), self.n_input).to(self.encoder.weight.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 784) or image-shaped, finite values in [0, 1] -> code (B, n_hidden)."""
        return self._act(self.encoder(check_values("x", self.flatten(x))))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """code (B, n_hidden) -> logits (B, 784)."""
        check_float_tensor("code", code)
        if code.dim() != 2 or code.shape[1] != self.n_hidden:
            raise ValueError(f"code must have shape (B, {self.n_hidden}), got {tuple(code.shape)}")
        return self.decoder(code.to(self.decoder.weight.dtype))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(logits, code)``: logits (B, 784), code (B, n_hidden).

        The training loop's hot path: x's type and shape are checked but not its values (train and
        evaluate validate their images once, up front); use ``encode`` or ``reconstruct`` for that.
        """
        code = self._act(self.encoder(self.flatten(x)))
        return self.decoder(code), code

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """sigmoid(decode(encode(x))), shape (B, 784), values in (0, 1); x must be finite and in [0, 1]."""
        return torch.sigmoid(self.decode(self.encode(x)))

    def feature_images(self) -> torch.Tensor:
        """Encoder weights as images, shape (n_hidden, 28, 28): what input pattern drives each unit."""
        return self.encoder.weight.detach().reshape(self.n_hidden, IMAGE_SIDE, IMAGE_SIDE)
