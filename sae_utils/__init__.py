"""sae_utils: sparse autoencoders on MNIST (or your own data) with the KL and the L1 sparsity penalty, and TopK.

The lesson lives in three modules, read in this order: ``model`` (the autoencoder), ``penalties`` (the
losses and the TopK code, as the notebooks' equations) and ``train`` (the training loop); ``families`` is the table
that ties a family's code activation, penalty and hyperparameters together. Everything else is tooling
around them: ``data`` (bundled MNIST), ``metrics`` (evaluation), ``fast_bce`` (a faster CPU kernel for
the BCE), ``plots``, ``explorer`` and ``explorer_app`` (the interactive explorer), ``pretrained`` and
``files`` (saving and safe loading), ``probe`` (the linear probe), ``stats`` (paired tests over
seeds), ``checks`` (input validation) and ``cli``
(the command line).
"""
from .data import load_mnist, prepare_images
from .families import FAMILIES
from .metrics import active_units, evaluate
from .model import SparseAutoencoder
from .penalties import kl_divergence, kl_sparsity_penalty, l1_penalty, reconstruction_bce, sparsity_penalty
from .pretrained import load_pretrained
from .probe import linear_probe
from .train import TrainConfig, TrainingDivergedError, train

__version__ = "0.1.0"
__all__ = [
    "load_mnist", "prepare_images", "FAMILIES", "SparseAutoencoder", "kl_divergence",
    "kl_sparsity_penalty", "l1_penalty", "reconstruction_bce", "sparsity_penalty", "TrainConfig",
    "TrainingDivergedError", "train", "evaluate", "active_units", "load_pretrained", "linear_probe",
]
