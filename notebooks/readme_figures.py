"""Redraw the README's three figures into notebooks/figures/ from the package: the shipped models and the atlas.

    python notebooks/readme_figures.py        # from the repository root

Each figure uses a plotting function of sae_utils.plots that notebook 03 (03_kl_vs_l1.ipynb) also uses:

    kl_vs_l1_reconstructions.png   the first test digit of each class through both models (notebook 03, section 4)
    kl_vs_l1_features.png          decoder weights of each model's 36 most used units (section 5 draws random units)
    tradeoff.png                   test BCE against units carrying 90 % of the code mass, every KL and L1 setting of
                                   the atlas (section 8 draws the same points in two views)
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no window

import torch  # noqa: E402

from sae_utils import load_mnist, load_pretrained, prepare_images  # noqa: E402
from sae_utils import metrics, plots  # noqa: E402
from sae_utils.atlas import load_atlas  # noqa: E402
from sae_utils.files import atomic_save_figure  # noqa: E402

FIGURES = Path(__file__).resolve().parent / "figures"


def reconstructions(models, test_images, test_labels):
    first_of_each_class = torch.stack([torch.nonzero(test_labels == digit)[0, 0] for digit in range(10)])
    return plots.plot_reconstruction_comparison({"KL": models["kl"], "L1": models["l1"]},
                                                test_images[first_of_each_class], 10,
                                                "The same test digits: input x, then $\\hat{x}$ of the KL and the L1 model")


@torch.no_grad()
def features(models, test_images):
    test_pixels = prepare_images(test_images)
    codes = {name: models[name].encode(test_pixels) for name in models}
    frequency = {name: metrics.firing_frequency(codes[name], metrics.ACTIVE_THRESHOLD[models[name].activation])
                 for name in models}
    by_use = {name: metrics.units_by_use(frequency[name], codes[name].mean(dim=0))[:36].tolist() for name in models}
    labels = {"kl": "KL: the 36 most used units", "l1": "L1: the 36 most used units"}
    return plots.plot_feature_comparison({labels[n]: models[n] for n in models}, 36, which="decoder",
                                         units={labels[n]: by_use[n] for n in models},
                                         firing_frequency={labels[n]: frequency[n] for n in models},
                                         title="What each hidden unit draws (decoder weights)")


def tradeoff():
    return plots.plot_tradeoff({f: load_atlas(f).records() for f in ("kl", "l1")},
                               lines={"kl": [("beta", {"rho": 0.08}), ("rho", {"beta": 0.005})], "l1": [("lam", {})]})


def main() -> None:
    test_images, test_labels = load_mnist("test")
    models = {name: load_pretrained(name)[0] for name in ("kl", "l1")}
    FIGURES.mkdir(exist_ok=True)
    for filename, figure in (("kl_vs_l1_reconstructions.png", reconstructions(models, test_images, test_labels)),
                             ("kl_vs_l1_features.png", features(models, test_images)),
                             ("tradeoff.png", tradeoff())):
        print("wrote", atomic_save_figure(figure, FIGURES / filename))


if __name__ == "__main__":
    main()
