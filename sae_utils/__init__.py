"""sae_utils: sparse autoencoders on MNIST with the KL and the L1 sparsity penalty."""
from .data import load_mnist, prepare_images, to_float
from .metrics import active_units, evaluate
from .model import SparseAutoencoder
from .penalties import kl_divergence, kl_sparsity_penalty, l1_penalty, reconstruction_bce, sparsity_penalty
from .pretrained import load_pretrained
from .train import TrainConfig, TrainingDivergedError, train

__version__ = "0.1.0"
__all__ = [
    "load_mnist", "prepare_images", "to_float", "SparseAutoencoder", "kl_divergence",
    "kl_sparsity_penalty", "l1_penalty", "reconstruction_bce", "sparsity_penalty", "TrainConfig",
    "TrainingDivergedError", "train", "evaluate", "active_units", "load_pretrained",
]
